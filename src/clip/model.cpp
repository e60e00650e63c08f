// The CLIP ViT forward pass, op for op as OpenAI's model.py with nn.MultiheadAttention and
// CLIP-ES's modified vision forward compute it in PyTorch 1.13 (spec §0, §2, §3): the same ATen
// operators on tensors of the same shapes and strides in the same order, so that with the same
// LibTorch and BLAS kernels the numbers are the reference's bit for bit (clipes/core/blas.h).
// A batch of one image runs exactly the reference's shapes; the K-copies GradCAM mode and
// batches of several images may round differently in the last bits.

#include "clipes/clip/model.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <vector>

#include "clip_weights.h"
#include "clipes/core/error.h"

namespace clipes::clip {

struct ClipModel::Impl {
  detail::ClipWeights w;
  ClipCheckpointInfo checkpoint;
  c10::Device device{c10::kCPU};
  at::ScalarType dtype = at::kFloat;
  at::Tensor text_mask;  ///< [context, context]: 0 on and below the diagonal, -inf above
};

namespace {

constexpr double kLayerNormEps = 1e-5;

std::string shape_text(at::IntArrayRef shape) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

// OpenAI's LayerNorm subclass: computed in float32, cast back to the input's dtype.
at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const auto dtype = x.scalar_type();
  return at::layer_norm(x.to(at::kFloat), {x.size(-1)}, weight, bias, kLayerNormEps).to(dtype);
}

// torch 1.13's F.multi_head_attention_forward for self-attention with packed in_proj, no
// dropout, sequence-first y [L, B, W]. `mask` [L, L] or undefined. When `mean_weights` is
// given it receives the head-averaged attention weights [B, L, L] (in the compute dtype).
at::Tensor self_attention(const detail::BlockWeights& b, const at::Tensor& y, std::int64_t heads,
                          const at::Tensor& mask, at::Tensor* mean_weights) {
  const std::int64_t length = y.size(0);
  const std::int64_t batch = y.size(1);
  const std::int64_t width = y.size(2);
  const std::int64_t head_dim = width / heads;
  const auto qkv = at::linear(y, b.in_proj_weight, b.in_proj_bias).chunk(3, -1);
  const auto split = [&](const at::Tensor& t) {
    return t.contiguous().view({length, batch * heads, head_dim}).transpose(0, 1);
  };
  const at::Tensor q = split(qkv[0]);
  const at::Tensor k = split(qkv[1]);
  const at::Tensor v = split(qkv[2]);
  const at::Tensor q_scaled = q / std::sqrt(static_cast<double>(head_dim));
  at::Tensor weights = mask.defined()
                           ? at::baddbmm(mask.unsqueeze(0), q_scaled, k.transpose(-2, -1))
                           : at::bmm(q_scaled, k.transpose(-2, -1));
  weights = at::softmax(weights, -1);
  at::Tensor out = at::bmm(weights, v);
  out = out.transpose(0, 1).contiguous().view({length * batch, width});
  out = at::linear(out, b.out_proj_weight, b.out_proj_bias).view({length, batch, width});
  if (mean_weights != nullptr) {
    *mean_weights = weights.view({batch, heads, length, length}).sum(1) / heads;
  }
  return out;
}

// c_fc -> QuickGELU (x * sigmoid(1.702 x)) or GELU (nn.GELU(), erf) -> c_proj.
at::Tensor mlp(const detail::BlockWeights& b, const at::Tensor& x, Activation activation) {
  at::Tensor h = at::linear(x, b.c_fc_weight, b.c_fc_bias);
  h = activation == Activation::kQuickGelu ? h * at::sigmoid(1.702 * h) : at::gelu(h);
  return at::linear(h, b.c_proj_weight, b.c_proj_bias);
}

// x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)), sequence-first x [L, B, W].
at::Tensor residual_block(const detail::BlockWeights& b, const at::Tensor& x, std::int64_t heads,
                          Activation activation, const at::Tensor& mask,
                          at::Tensor* mean_weights) {
  const at::Tensor y = layer_norm(x, b.ln_1_weight, b.ln_1_bias);
  at::Tensor out = x + self_attention(b, y, heads, mask, mean_weights);
  return out + mlp(b, layer_norm(out, b.ln_2_weight, b.ln_2_bias), activation);
}

// OpenAI's encode_text on token rows ids [T, context] cut to their first `used` positions:
// embedding + positional, the causal transformer (sequence-first), ln_final, the row at the
// end token (the largest id) @ text_projection. Returns [T, E].
at::Tensor text_transformer(const detail::ClipWeights& w, const at::Tensor& full_mask,
                            at::ScalarType dtype, const at::Tensor& ids, std::int64_t used) {
  const at::Tensor cut = ids.slice(1, 0, used);
  at::Tensor x = at::embedding(w.token_embedding, cut).to(dtype);
  x = x + w.text_positional_embedding.slice(0, 0, used).to(dtype);
  x = x.permute({1, 0, 2});
  const at::Tensor mask = full_mask.slice(0, 0, used).slice(1, 0, used);
  for (const auto& block : w.text_blocks) {
    x = residual_block(block, x, w.arch.text_heads, w.arch.activation, mask, nullptr);
  }
  x = x.permute({1, 0, 2});
  x = layer_norm(x, w.ln_final_weight, w.ln_final_bias).to(dtype);
  // x[arange(T), tokens.argmax(-1)]
  const std::int64_t count = x.size(0);
  const at::Tensor rows = at::arange(count, ids.options()) * used + ids.argmax(-1);
  const at::Tensor selected = x.reshape({count * used, x.size(2)}).index_select(0, rows);
  return at::matmul(selected, w.text_projection);
}

void check_tokens(const at::Tensor& tokens, std::int64_t width, const char* what) {
  if (!tokens.defined() || tokens.dim() != 3 || tokens.size(2) != width || tokens.size(1) < 2) {
    throw Error(fmt::format("{}: expected vision tokens [B, N+1, {}], got {}", what, width,
                            tokens.defined() ? shape_text(tokens.sizes()) : "an empty tensor"));
  }
}

}  // namespace

// ---- ClipArchitecture ------------------------------------------------------------------------

std::string ClipArchitecture::describe() const {
  std::string name = "custom CLIP ViT";
  if (vision_width == 768 && vision_layers == 12 && vision_grid_size == 7 &&
      vision_patch_size == 32) {
    name = "ViT-B/32";
  } else if (vision_width == 768 && vision_layers == 12 && vision_patch_size == 16 &&
             vision_grid_size == 14) {
    name = "ViT-B/16";
  } else if (vision_width == 1024 && vision_layers == 24 && vision_patch_size == 14) {
    name = vision_grid_size == 24 ? "ViT-L/14@336px" : "ViT-L/14";
  }
  std::string out = fmt::format("architecture: {}\n", name);
  const std::pair<const char*, std::int64_t> items[] = {
      {"vision_width", vision_width},
      {"vision_layers", vision_layers},
      {"vision_heads", vision_heads},
      {"vision_mlp_width", vision_mlp_width},
      {"vision_patch_size", vision_patch_size},
      {"vision_grid_size", vision_grid_size},
      {"image_resolution", image_resolution},
      {"text_width", text_width},
      {"text_layers", text_layers},
      {"text_heads", text_heads},
      {"text_mlp_width", text_mlp_width},
      {"context_length", context_length},
      {"vocab_size", vocab_size},
      {"embed_dim", embed_dim},
  };
  const auto source = [&](const char* key) {
    const auto it = sources.find(key);
    return it == sources.end() ? std::string() : " (" + it->second + ")";
  };
  for (const auto& [key, value] : items) out += fmt::format("{}: {}{}\n", key, value, source(key));
  out += fmt::format("activation: {}{}\n", to_string(activation), source("activation"));
  return out;
}

// ---- loading ---------------------------------------------------------------------------------

ClipModel::ClipModel(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

ClipModel ClipModel::load(const std::filesystem::path& path, const ClipLoadOptions& options) {
  const c10::Device device = detail::parse_device(options.device);
  if (options.keep_fp16 && !device.is_cuda()) {
    throw Error(
        fmt::format("keep_fp16 needs a CUDA device, got device \"{}\" (LibTorch 1.13 "
                    "has no float16 convolution on CPU; the CPU runs float32)",
                    options.device));
  }
  detail::ClipWeights stored;
  ClipCheckpointInfo checkpoint;
  {
    const detail::NamedTensors named = detail::read_checkpoint(path, options);
    stored = detail::assemble_clip_weights(named, named.info.weights);
    checkpoint = named.info;
  }
  auto impl = std::make_shared<Impl>();
  impl->checkpoint = std::move(checkpoint);
  impl->w = detail::place_clip_weights(stored, device, options.keep_fp16);
  impl->device = device;
  impl->dtype = impl->w.conv1_weight.scalar_type();
  const std::int64_t context = impl->w.arch.context_length;
  impl->text_mask = at::full({context, context}, -std::numeric_limits<float>::infinity(),
                             at::TensorOptions().dtype(at::kFloat).device(device))
                        .triu(1)
                        .to(impl->dtype);
  return ClipModel(std::move(impl));
}

const ClipArchitecture& ClipModel::architecture() const { return impl_->w.arch; }
const ClipCheckpointInfo& ClipModel::checkpoint() const { return impl_->checkpoint; }
c10::Device ClipModel::device() const { return impl_->device; }
c10::ScalarType ClipModel::dtype() const { return impl_->dtype; }

at::Tensor ClipModel::logit_scale() const {
  at::NoGradGuard no_grad;
  return impl_->w.logit_scale.exp();
}

// ---- text ------------------------------------------------------------------------------------

bool ClipModel::has_text_tower() const { return impl_->w.token_embedding.defined(); }

std::int64_t ClipModel::release_text_tower() {
  if (!has_text_tower()) return 0;
  // Copies of this model share its weights: this one gets a new Impl without the text side, and
  // the text tensors are freed once no copy holds them.
  const detail::ClipWeights& w = impl_->w;
  std::int64_t bytes = 0;
  const auto count = [&bytes](const at::Tensor& t) {
    if (t.defined()) bytes += static_cast<std::int64_t>(t.nbytes());
  };
  for (const auto* t : {&w.token_embedding, &w.text_positional_embedding, &w.ln_final_weight,
                        &w.ln_final_bias, &w.text_projection, &impl_->text_mask}) {
    count(*t);
  }
  for (const auto& block : w.text_blocks) {
    for (const auto* t : {&block.ln_1_weight, &block.ln_1_bias, &block.in_proj_weight,
                          &block.in_proj_bias, &block.out_proj_weight, &block.out_proj_bias,
                          &block.ln_2_weight, &block.ln_2_bias, &block.c_fc_weight,
                          &block.c_fc_bias, &block.c_proj_weight, &block.c_proj_bias}) {
      count(*t);
    }
  }
  auto vision_only = std::make_shared<Impl>(*impl_);
  auto& v = vision_only->w;
  v.token_embedding = v.text_positional_embedding = v.ln_final_weight = v.ln_final_bias =
      v.text_projection = vision_only->text_mask = at::Tensor();
  v.text_blocks.clear();
  impl_ = std::move(vision_only);
#if defined(__GLIBC__)
  malloc_trim(0);  // hand the freed pages back to the system rather than keep them in the heap
#endif
  return bytes;
}

at::Tensor ClipModel::encode_text(const at::Tensor& tokens, TextEncoding encoding) const {
  const auto& a = impl_->w.arch;
  if (!has_text_tower()) {
    throw Error("encode_text: this model's text tower was released (release_text_tower) after "
                "its text bank was built; load the model again to encode text");
  }
  if (!tokens.defined() || tokens.dim() != 2 || tokens.size(1) != a.context_length ||
      tokens.size(0) == 0 || at::isFloatingType(tokens.scalar_type())) {
    throw Error(fmt::format("encode_text: expected integer tokens [T >= 1, {}], got {} {}",
                            a.context_length,
                            tokens.defined() ? c10::toString(tokens.scalar_type()) : "empty",
                            tokens.defined() ? shape_text(tokens.sizes()) : ""));
  }
  at::NoGradGuard no_grad;
  const at::Tensor ids = tokens.to(impl_->device, at::kLong);
  const std::int64_t lo = ids.min().item<std::int64_t>();
  const std::int64_t hi = ids.max().item<std::int64_t>();
  if (lo < 0 || hi >= a.vocab_size) {
    throw Error(fmt::format("encode_text: token ids must lie in [0, {}), got [{}, {}]",
                            a.vocab_size, lo, hi));
  }
  const auto& w = impl_->w;
  const auto dtype = impl_->dtype;
  if (encoding == TextEncoding::kReference) {
    // One row at a time over the full context, as the reference encodes each sentence alone:
    // the matrix shapes, and so the float rounding, do not depend on the other rows.
    std::vector<at::Tensor> rows;
    rows.reserve(static_cast<std::size_t>(ids.size(0)));
    for (std::int64_t i = 0; i < ids.size(0); ++i) {
      rows.push_back(text_transformer(w, impl_->text_mask, dtype, ids.slice(0, i, i + 1),
                                      a.context_length));
    }
    return rows.size() == 1 ? rows.front() : at::cat(rows, 0);
  }
  // The end-of-text token holds the row's largest id; under the causal mask nothing after the
  // last one in the batch can reach it, so the transformer runs on positions 0..that one only.
  const std::int64_t used = ids.argmax(-1).max().item<std::int64_t>() + 1;
  return text_transformer(w, impl_->text_mask, dtype, ids, used);
}

// ---- vision ----------------------------------------------------------------------------------

at::Tensor ClipModel::positional_embedding(std::int64_t grid_h, std::int64_t grid_w) const {
  if (grid_h < 1 || grid_w < 1) {
    throw Error(
        fmt::format("positional_embedding: grid must be at least 1x1, got {}x{}", grid_h, grid_w));
  }
  at::NoGradGuard no_grad;
  const auto& a = impl_->w.arch;
  const at::Tensor& pos = impl_->w.vision_positional_embedding;  // float32
  const at::Tensor first = pos.slice(0, 0, 1);
  at::Tensor grid = pos.slice(0, 1).permute({1, 0});
  grid = grid.view({1, a.vision_width, a.vision_grid_size, a.vision_grid_size}).contiguous();
  grid = at::upsample_bilinear2d(grid, {grid_h, grid_w}, /*align_corners=*/false, c10::nullopt,
                                 c10::nullopt);
  grid = grid.view({a.vision_width, -1}).contiguous().permute({1, 0});
  // (quirk, spec §2) CLIP-ES stores the result as a float16 Parameter.
  return at::cat({first, grid}, 0).to(at::kHalf).to(impl_->dtype);
}

at::Tensor ClipModel::embed_image(const at::Tensor& pixels) const {
  const auto& a = impl_->w.arch;
  const std::int64_t patch = a.vision_patch_size;
  if (!pixels.defined() || pixels.dim() != 4 || pixels.size(1) != 3 ||
      !at::isFloatingType(pixels.scalar_type()) || pixels.size(2) < patch ||
      pixels.size(3) < patch || pixels.size(2) % patch != 0 || pixels.size(3) % patch != 0) {
    throw Error(fmt::format(
        "embed_image: expected float pixels [B, 3, H, W] with H and W positive multiples of "
        "the patch size {}, got {} {}",
        patch, pixels.defined() ? c10::toString(pixels.scalar_type()) : "empty",
        pixels.defined() ? shape_text(pixels.sizes()) : ""));
  }
  at::NoGradGuard no_grad;
  const auto& w = impl_->w;
  const std::int64_t grid_h = pixels.size(2) / patch;
  const std::int64_t grid_w = pixels.size(3) / patch;
  at::Tensor x =
      at::conv2d(pixels.to(impl_->device, impl_->dtype), w.conv1_weight, {}, {patch, patch});
  const std::int64_t batch = x.size(0);
  x = x.reshape({batch, x.size(1), -1}).permute({0, 2, 1});
  const at::Tensor cls =
      w.class_embedding.to(x.scalar_type()) + at::zeros({batch, 1, x.size(-1)}, x.options());
  x = at::cat({cls, x}, 1);
  x = x + positional_embedding(grid_h, grid_w).to(x.scalar_type());
  return layer_norm(x, w.ln_pre_weight, w.ln_pre_bias);
}

VisionTrunkOutput ClipModel::run_trunk(const at::Tensor& tokens,
                                       std::int64_t attention_blocks) const {
  const auto& a = impl_->w.arch;
  check_tokens(tokens, a.vision_width, "run_trunk");
  if (attention_blocks < 1) {
    throw Error(fmt::format("run_trunk: attention_blocks must be >= 1, got {}", attention_blocks));
  }
  at::NoGradGuard no_grad;
  // Sequence-first inside, as the reference's transformer runs.
  at::Tensor x = tokens.to(impl_->device, impl_->dtype).permute({1, 0, 2});
  const std::int64_t layers = a.vision_layers;
  // 0-based index of the first trunk block whose attention is kept.
  const std::int64_t first_kept = std::max<std::int64_t>(0, layers - attention_blocks);
  VisionTrunkOutput out;
  for (std::int64_t i = 0; i + 1 < layers; ++i) {
    at::Tensor weights;
    const bool keep = i >= first_kept;
    x = residual_block(impl_->w.vision_blocks[static_cast<std::size_t>(i)], x, a.vision_heads,
                       a.activation, {}, keep ? &weights : nullptr);
    if (keep) out.attention.push_back(weights.to(at::kFloat));
  }
  out.tokens = x.permute({1, 0, 2});
  return out;
}

at::Tensor ClipModel::last_block_norm(const at::Tensor& tokens, std::int64_t copies) const {
  check_tokens(tokens, impl_->w.arch.vision_width, "last_block_norm");
  if (copies < 1 || (tokens.size(0) != 1 && tokens.size(0) != copies)) {
    throw Error(fmt::format("last_block_norm: cannot make {} copies from tokens {}", copies,
                            shape_text(tokens.sizes())));
  }
  at::Tensor normed;
  {
    at::NoGradGuard no_grad;
    const auto& last = impl_->w.vision_blocks.back();
    normed = layer_norm(tokens.to(impl_->device, impl_->dtype), last.ln_1_weight, last.ln_1_bias);
    normed = normed.expand({copies, normed.size(1), normed.size(2)}).contiguous();
  }
  normed.set_requires_grad(true);
  return normed;
}

LastBlockOutput ClipModel::last_block_forward(const at::Tensor& tokens,
                                              const at::Tensor& normed) const {
  const auto& a = impl_->w.arch;
  check_tokens(tokens, a.vision_width, "last_block_forward (tokens)");
  check_tokens(normed, a.vision_width, "last_block_forward (normed)");
  if (tokens.size(1) != normed.size(1) ||
      (tokens.size(0) != 1 && tokens.size(0) != normed.size(0))) {
    throw Error(
        fmt::format("last_block_forward: tokens {} do not fit normed {} (expected "
                    "[1 or K, N+1, D] and [K, N+1, D])",
                    shape_text(tokens.sizes()), shape_text(normed.sizes())));
  }
  const auto& w = impl_->w;
  const auto& last = w.vision_blocks.back();
  at::Tensor x_in;
  {
    at::NoGradGuard no_grad;  // X is a constant: GradCAM's gradient reaches A only (spec §3)
    x_in = tokens.to(impl_->device, impl_->dtype).permute({1, 0, 2});
  }
  const at::Tensor y = normed.to(impl_->device, impl_->dtype).permute({1, 0, 2});
  at::Tensor weights;
  at::Tensor x = x_in + self_attention(last, y, a.vision_heads, {}, &weights);
  x = x + mlp(last, layer_norm(x, last.ln_2_weight, last.ln_2_bias), a.activation);
  x = x.permute({1, 0, 2});
  x = layer_norm(x, w.ln_post_weight, w.ln_post_bias);
  x = at::mean(x.slice(1, 1), 1);  // CLIP-ES: mean of the patch tokens, not the class token
  LastBlockOutput out;
  out.image_features = at::matmul(x, w.visual_proj);
  out.attention = weights.detach().to(at::kFloat);
  return out;
}

ImageEncoding ClipModel::encode_image(const at::Tensor& pixels,
                                      std::int64_t attention_blocks) const {
  at::NoGradGuard no_grad;
  const VisionTrunkOutput trunk = run_trunk(embed_image(pixels), attention_blocks);
  const LastBlockOutput last =
      last_block_forward(trunk.tokens, last_block_norm(trunk.tokens, trunk.tokens.size(0)));
  ImageEncoding out;
  out.tokens = trunk.tokens;
  out.attention_mean = mean_attention(trunk, last.attention);
  out.image_features = last.image_features;
  return out;
}

// ---- free functions --------------------------------------------------------------------------

at::Tensor l2_normalize(const at::Tensor& features) {
  // Python's x.norm(dim=-1, keepdim=True) runs torch.linalg.vector_norm(x, 2, -1, True).
  return features / at::linalg_vector_norm(features, 2, {-1}, /*keepdim=*/true, c10::nullopt);
}

at::Tensor mean_attention(const VisionTrunkOutput& trunk, const at::Tensor& last_block_attention) {
  std::vector<at::Tensor> blocks = trunk.attention;
  blocks.push_back(last_block_attention.detach().to(at::kFloat));
  // ATen's sum over the stacked dimension takes its summation order from the stacked tensor's
  // shape (vectorised columns, a scalar tail with another order), so the patch block is
  // stacked and reduced alone, exactly as the reference's mean over [a[:, 1:, 1:] ...].
  const auto mean_of = [&](const auto& part) {
    std::vector<at::Tensor> parts;
    parts.reserve(blocks.size());
    for (const at::Tensor& block : blocks) parts.push_back(part(block));
    return at::mean(at::stack(parts, 0), 0);
  };
  const at::Tensor& first = blocks.front();
  at::Tensor out = at::empty(first.sizes(), first.options());
  out.slice(1, 1).slice(2, 1).copy_(
      mean_of([](const at::Tensor& a) { return a.slice(1, 1).slice(2, 1); }));
  out.slice(1, 0, 1).copy_(mean_of([](const at::Tensor& a) { return a.slice(1, 0, 1); }));
  out.slice(1, 1).slice(2, 0, 1).copy_(
      mean_of([](const at::Tensor& a) { return a.slice(1, 1).slice(2, 0, 1); }));
  return out;
}

}  // namespace clipes::clip

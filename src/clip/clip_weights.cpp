// CLIP ViT weights from named tensors: architecture inference (as OpenAI's build_model), name
// and shape checks with errors that say what is missing, and placement on a device.

#include "clip_weights.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>
#include <set>
#include <sstream>

#include "clipes/core/error.h"

namespace clipes::clip::detail {
namespace {

constexpr std::int64_t kHeadWidth = 64;  // OpenAI's build_model: heads = width // 64

const char* const kBlockSuffixes[] = {
    "ln_1.weight",          "ln_1.bias",          "attn.in_proj_weight", "attn.in_proj_bias",
    "attn.out_proj.weight", "attn.out_proj.bias", "ln_2.weight",         "ln_2.bias",
    "mlp.c_fc.weight",      "mlp.c_fc.bias",      "mlp.c_proj.weight",   "mlp.c_proj.bias"};

std::string shape_text(at::IntArrayRef shape) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

bool has_prefix(const std::map<std::string, at::Tensor>& tensors, const std::string& prefix) {
  const auto it = tensors.lower_bound(prefix);
  return it != tensors.end() && it->first.compare(0, prefix.size(), prefix) == 0;
}

class Assembler {
 public:
  Assembler(const NamedTensors& named, const std::filesystem::path& file)
      : named_(named), file_(file.string()) {}

  ClipWeights run() {
    reject_non_vit();
    check_required();
    ClipWeights w;
    infer(&w.arch);
    auto& a = w.arch;
    w.conv1_weight =
        get("visual.conv1.weight", {a.vision_width, 3, a.vision_patch_size, a.vision_patch_size});
    w.class_embedding = get("visual.class_embedding", {a.vision_width});
    w.vision_positional_embedding =
        get("visual.positional_embedding",
            {a.vision_grid_size * a.vision_grid_size + 1, a.vision_width});
    w.ln_pre_weight = get("visual.ln_pre.weight", {a.vision_width});
    w.ln_pre_bias = get("visual.ln_pre.bias", {a.vision_width});
    w.ln_post_weight = get("visual.ln_post.weight", {a.vision_width});
    w.ln_post_bias = get("visual.ln_post.bias", {a.vision_width});
    w.visual_proj = get("visual.proj", {a.vision_width, a.embed_dim});
    for (std::int64_t i = 0; i < a.vision_layers; ++i) {
      w.vision_blocks.push_back(block(fmt::format("visual.transformer.resblocks.{}.", i),
                                      a.vision_width, a.vision_mlp_width));
    }
    w.token_embedding = get("token_embedding.weight", {a.vocab_size, a.text_width});
    w.text_positional_embedding = get("positional_embedding", {a.context_length, a.text_width});
    for (std::int64_t i = 0; i < a.text_layers; ++i) {
      w.text_blocks.push_back(
          block(fmt::format("transformer.resblocks.{}.", i), a.text_width, a.text_mlp_width));
    }
    w.ln_final_weight = get("ln_final.weight", {a.text_width});
    w.ln_final_bias = get("ln_final.bias", {a.text_width});
    w.text_projection = get("text_projection", {a.text_width, a.embed_dim});
    w.logit_scale = get("logit_scale", {});
    return w;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(fmt::format("CLIP model file {} ({}): {}", file_, named_.format, what));
  }

  void reject_non_vit() const {
    const auto& t = named_.tensors;
    std::vector<std::string> resnet;
    for (const char* prefix : {"visual.attnpool.", "visual.bn1.", "visual.layer1."}) {
      if (has_prefix(t, prefix)) resnet.push_back(std::string(prefix) + "*");
    }
    if (!resnet.empty()) {
      fail(
          fmt::format("this is a ResNet CLIP (it has {}), not a CLIP ViT; clipes needs a ViT "
                      "(visual.class_embedding, visual.transformer.resblocks.*), e.g. "
                      "OpenAI's ViT-B-16.pt",
                      fmt::join(resnet, ", ")));
    }
    if (!has_prefix(t, "visual.")) {
      fail(fmt::format("not a CLIP model: it has no visual.* parameters ({} tensors, e.g. {})",
                       t.size(), t.empty() ? std::string("none") : t.begin()->first));
    }
  }

  void check_required() const {
    std::vector<std::string> missing;
    for (const char* name :
         {"visual.conv1.weight", "visual.class_embedding", "visual.positional_embedding",
          "visual.ln_pre.weight", "visual.ln_pre.bias", "visual.ln_post.weight",
          "visual.ln_post.bias", "visual.proj", "token_embedding.weight", "positional_embedding",
          "ln_final.weight", "ln_final.bias", "text_projection", "logit_scale"}) {
      if (named_.tensors.count(name) == 0) missing.emplace_back(name);
    }
    for (const char* prefix : {"visual.transformer.resblocks.", "transformer.resblocks."}) {
      if (!has_prefix(named_.tensors, prefix)) missing.push_back(std::string(prefix) + "*");
    }
    if (missing.empty()) return;
    const std::size_t shown = std::min<std::size_t>(missing.size(), 8);
    fail(fmt::format("not a CLIP ViT: missing {}{}",
                     fmt::join(missing.begin(), missing.begin() + shown, ", "),
                     missing.size() > shown ? fmt::format(" and {} more", missing.size() - shown)
                                            : std::string()));
  }

  // Number of blocks under `prefix` ("visual.transformer.resblocks."), checked to be 0..n-1.
  std::int64_t count_blocks(const std::string& prefix) const {
    std::set<std::int64_t> indices;
    for (auto it = named_.tensors.lower_bound(prefix);
         it != named_.tensors.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      const std::string rest = it->first.substr(prefix.size());
      const auto dot = rest.find('.');
      std::int64_t index = -1;
      try {
        std::size_t used = 0;
        index = std::stoll(rest.substr(0, dot), &used);
        if (used != dot) index = -1;
      } catch (const std::exception&) {
        index = -1;
      }
      if (index < 0) fail(fmt::format("unexpected parameter name {}", it->first));
      indices.insert(index);
    }
    const auto n = static_cast<std::int64_t>(indices.size());
    if (*indices.rbegin() != n - 1) {
      fail(fmt::format("{}* blocks are numbered up to {} but only {} are present", prefix,
                       *indices.rbegin(), n));
    }
    return n;
  }

  const at::Tensor& raw(const std::string& name) const {
    const auto it = named_.tensors.find(name);
    if (it == named_.tensors.end()) fail(fmt::format("missing {}", name));
    return it->second;
  }

  at::Tensor get(const std::string& name, std::vector<std::int64_t> shape) const {
    const at::Tensor& t = raw(name);
    if (t.sizes() != at::IntArrayRef(shape)) {
      fail(fmt::format("{} has shape {}, expected {}", name, shape_text(t.sizes()),
                       shape_text(shape)));
    }
    if (!at::isFloatingType(t.scalar_type())) {
      fail(fmt::format("{} has dtype {}, expected a floating-point type", name,
                       c10::toString(t.scalar_type())));
    }
    return t;
  }

  BlockWeights block(const std::string& p, std::int64_t width, std::int64_t mlp) const {
    BlockWeights b;
    b.ln_1_weight = get(p + "ln_1.weight", {width});
    b.ln_1_bias = get(p + "ln_1.bias", {width});
    b.in_proj_weight = get(p + "attn.in_proj_weight", {3 * width, width});
    b.in_proj_bias = get(p + "attn.in_proj_bias", {3 * width});
    b.out_proj_weight = get(p + "attn.out_proj.weight", {width, width});
    b.out_proj_bias = get(p + "attn.out_proj.bias", {width});
    b.ln_2_weight = get(p + "ln_2.weight", {width});
    b.ln_2_bias = get(p + "ln_2.bias", {width});
    b.c_fc_weight = get(p + "mlp.c_fc.weight", {mlp, width});
    b.c_fc_bias = get(p + "mlp.c_fc.bias", {mlp});
    b.c_proj_weight = get(p + "mlp.c_proj.weight", {width, mlp});
    b.c_proj_bias = get(p + "mlp.c_proj.bias", {width});
    return b;
  }

  std::int64_t heads(const std::string& attn_module, std::int64_t width) const {
    std::int64_t h = 0;
    if (const auto it = named_.num_heads.find(attn_module); it != named_.num_heads.end()) {
      h = it->second;
    } else if (width % kHeadWidth == 0) {
      h = width / kHeadWidth;
    } else {
      fail(
          fmt::format("cannot tell the head count of {}: width {} is not a multiple of {} and "
                      "the file does not say",
                      attn_module, width, kHeadWidth));
    }
    if (h <= 0 || width % h != 0) {
      fail(fmt::format("{} has {} heads, which do not divide its width {}", attn_module, h, width));
    }
    return h;
  }

  void infer(ClipArchitecture* a) const {
    const at::Tensor& conv = raw("visual.conv1.weight");
    if (conv.dim() != 4 || conv.size(1) != 3 || conv.size(2) != conv.size(3)) {
      fail(fmt::format("visual.conv1.weight has shape {}, expected [width, 3, patch, patch]",
                       shape_text(conv.sizes())));
    }
    a->vision_width = conv.size(0);
    a->vision_patch_size = conv.size(3);
    a->vision_layers = count_blocks("visual.transformer.resblocks.");
    a->vision_heads = heads("visual.transformer.resblocks.0.attn", a->vision_width);
    a->vision_mlp_width = dim_of("visual.transformer.resblocks.0.mlp.c_fc.weight", 2, 0);
    const std::int64_t rows = dim_of("visual.positional_embedding", 2, 0);
    a->vision_grid_size = std::llround(std::sqrt(static_cast<double>(rows - 1)));
    if (a->vision_grid_size * a->vision_grid_size + 1 != rows) {
      fail(
          fmt::format("visual.positional_embedding has {} rows, expected grid² + 1 for a "
                      "square patch grid",
                      rows));
    }
    a->image_resolution = a->vision_patch_size * a->vision_grid_size;
    a->text_width = dim_of("ln_final.weight", 1, 0);
    a->text_layers = count_blocks("transformer.resblocks.");
    a->text_heads = heads("transformer.resblocks.0.attn", a->text_width);
    a->text_mlp_width = dim_of("transformer.resblocks.0.mlp.c_fc.weight", 2, 0);
    a->context_length = dim_of("positional_embedding", 2, 0);
    a->vocab_size = dim_of("token_embedding.weight", 2, 0);
    a->embed_dim = dim_of("text_projection", 2, 1);
  }

  std::int64_t dim_of(const std::string& name, std::int64_t rank, std::int64_t d) const {
    const at::Tensor& t = raw(name);
    if (t.dim() != rank) {
      fail(fmt::format("{} has shape {}, expected {} dimensions", name, shape_text(t.sizes()),
                       rank));
    }
    return t.size(d);
  }

  const NamedTensors& named_;
  std::string file_;
};

at::Tensor place(const at::Tensor& t, c10::Device device, at::ScalarType dtype) {
  // detach(): a view without autograd history (the file's tensor is dropped after loading).
  at::Tensor out = t.detach().to(device, dtype).contiguous();
  out.set_requires_grad(false);
  return out;
}

}  // namespace

ClipWeights assemble_clip_weights(const NamedTensors& named, const std::filesystem::path& file) {
  return Assembler(named, file).run();
}

ClipWeights place_clip_weights(const ClipWeights& w, c10::Device device, bool keep_fp16) {
  const at::ScalarType f32 = at::kFloat;
  // OpenAI's convert_weights: these go to float16 in the release; the rest stays float32.
  const at::ScalarType half = keep_fp16 ? at::kHalf : at::kFloat;
  auto block = [&](const BlockWeights& b) {
    BlockWeights o;
    o.ln_1_weight = place(b.ln_1_weight, device, f32);
    o.ln_1_bias = place(b.ln_1_bias, device, f32);
    o.in_proj_weight = place(b.in_proj_weight, device, half);
    o.in_proj_bias = place(b.in_proj_bias, device, half);
    o.out_proj_weight = place(b.out_proj_weight, device, half);
    o.out_proj_bias = place(b.out_proj_bias, device, half);
    o.ln_2_weight = place(b.ln_2_weight, device, f32);
    o.ln_2_bias = place(b.ln_2_bias, device, f32);
    o.c_fc_weight = place(b.c_fc_weight, device, half);
    o.c_fc_bias = place(b.c_fc_bias, device, half);
    o.c_proj_weight = place(b.c_proj_weight, device, half);
    o.c_proj_bias = place(b.c_proj_bias, device, half);
    return o;
  };
  ClipWeights o;
  o.arch = w.arch;
  o.conv1_weight = place(w.conv1_weight, device, half);
  o.class_embedding = place(w.class_embedding, device, f32);
  o.vision_positional_embedding = place(w.vision_positional_embedding, device, f32);
  o.ln_pre_weight = place(w.ln_pre_weight, device, f32);
  o.ln_pre_bias = place(w.ln_pre_bias, device, f32);
  for (const auto& b : w.vision_blocks) o.vision_blocks.push_back(block(b));
  o.ln_post_weight = place(w.ln_post_weight, device, f32);
  o.ln_post_bias = place(w.ln_post_bias, device, f32);
  o.visual_proj = place(w.visual_proj, device, half);
  o.token_embedding = place(w.token_embedding, device, f32);
  o.text_positional_embedding = place(w.text_positional_embedding, device, f32);
  for (const auto& b : w.text_blocks) o.text_blocks.push_back(block(b));
  o.ln_final_weight = place(w.ln_final_weight, device, f32);
  o.ln_final_bias = place(w.ln_final_bias, device, f32);
  o.text_projection = place(w.text_projection, device, half);
  o.logit_scale = place(w.logit_scale, device, f32);
  return o;
}

}  // namespace clipes::clip::detail

// CLIP ViT weights from named tensors: architecture inference (as OpenAI's build_model), name
// and shape checks with errors that say what is missing, and placement on a device.

#include "clip_weights.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "clipes/core/error.h"

namespace clipes::clip::detail {
namespace {

constexpr std::int64_t kHeadWidth = 64;  // OpenAI's build_model: heads = width // 64

// Buffers of OpenAI's release archives, no parameters of the model.
const char* const kReleaseBuffers[] = {"input_resolution", "context_length", "vocab_size"};

// Parameters of heads and towers clipes does not run, by prefix, with what they are.
const std::pair<const char*, const char*> kUnsupported[] = {
    {"visual.attn_pool.", "an attentional pooler (open_clip attentional_pool, CoCa)"},
    {"text_decoder.", "a CoCa text decoder"},
    {"visual.trunk.", "a timm vision tower (SigLIP's MAP head, ConvNeXt, EVA, ...)"},
    {"visual.head.", "a timm vision head"},
    {"text.transformer.", "a Hugging Face text tower (open_clip hf_model_name)"},
    {"logit_bias", "a SigLIP logit bias (sigmoid loss)"},
};

constexpr const char* kSupported =
    "clipes runs CLIP ViTs with OpenAI's blocks: OpenAI's ViT-B/32, ViT-B/16, ViT-L/14, "
    "ViT-L/14@336px and open_clip's ViT models of the same design (ViT-B-16, ViT-L-14, "
    "ViT-H-14, ...), with a QuickGELU or GELU MLP";

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
    reject_unsupported();
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
    reject_unused();
    return w;
  }

 private:
  // `name`, with the file's own name when it differs (transformers' names).
  std::string shown(const std::string& name) const {
    if (!named_.file_name) return name;
    const std::string own = named_.file_name(name);
    return own == name ? name : fmt::format("{} ({})", own, name);
  }

  // The first 8 names, then how many more.
  static std::string listed(const std::vector<std::string>& names) {
    const std::size_t shown = std::min<std::size_t>(names.size(), 8);
    return fmt::format("{}{}", fmt::join(names.begin(), names.begin() + shown, ", "),
                       names.size() > shown ? fmt::format(" and {} more", names.size() - shown)
                                            : std::string());
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(fmt::format("CLIP model file {} ({}): {}", file_, named_.info.format, what));
  }

  void reject_non_vit() const {
    const auto& t = named_.tensors;
    std::vector<std::string> resnet;
    for (const char* prefix : {"visual.attnpool.", "visual.bn1.", "visual.layer1."}) {
      if (has_prefix(t, prefix)) resnet.push_back(std::string(prefix) + "*");
    }
    if (!resnet.empty()) {
      fail(
          fmt::format("this is a ResNet CLIP (it has {}), not a CLIP ViT; {}",
                      fmt::join(resnet, ", "), kSupported));
    }
    if (!has_prefix(t, "visual.")) {
      fail(fmt::format("not a CLIP model: it has no visual.* parameters ({} tensors, e.g. {})",
                       t.size(), t.empty() ? std::string("none") : t.begin()->first));
    }
  }

  void reject_unsupported() const {
    for (const auto& [prefix, what] : kUnsupported) {
      if (has_prefix(named_.tensors, prefix)) {
        fail(fmt::format("it has {} ({}*), which clipes does not support: {}", what, prefix,
                         kSupported));
      }
    }
  }

  // Every tensor must be a parameter the model uses or a release buffer.
  void reject_unused() const {
    std::vector<std::string> unused;
    for (const auto& entry : named_.tensors) {
      const std::string& name = entry.first;
      if (used_.count(name) != 0) continue;
      if (std::any_of(std::begin(kReleaseBuffers), std::end(kReleaseBuffers),
                      [&](const char* b) { return name == b; })) {
        continue;
      }
      unused.push_back(name);
    }
    if (unused.empty()) return;
    fail(fmt::format("unexpected parameter{} {}: not part of a CLIP ViT as clipes runs it ({})",
                     unused.size() > 1 ? "s" : "", listed(unused), kSupported));
  }

  void check_required() const {
    std::vector<std::string> missing;
    for (const char* name :
         {"visual.conv1.weight", "visual.class_embedding", "visual.positional_embedding",
          "visual.ln_pre.weight", "visual.ln_pre.bias", "visual.ln_post.weight",
          "visual.ln_post.bias", "visual.proj", "token_embedding.weight", "positional_embedding",
          "ln_final.weight", "ln_final.bias", "text_projection", "logit_scale"}) {
      if (named_.tensors.count(name) == 0) missing.push_back(shown(name));
    }
    for (const char* prefix : {"visual.transformer.resblocks.", "transformer.resblocks."}) {
      if (!has_prefix(named_.tensors, prefix)) missing.push_back(std::string(prefix) + "*");
    }
    if (missing.empty()) return;
    fail(fmt::format("not a CLIP ViT: missing {}", listed(missing)));
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
    if (it == named_.tensors.end()) fail(fmt::format("missing {}", shown(name)));
    return it->second;
  }

  at::Tensor get(const std::string& name, std::vector<std::int64_t> shape) const {
    const at::Tensor& t = raw(name);
    used_.insert(name);
    if (t.sizes() != at::IntArrayRef(shape)) {
      fail(fmt::format("{} has shape {}, expected {}", shown(name), shape_text(t.sizes()),
                       shape_text(shape)));
    }
    if (!at::isFloatingType(t.scalar_type())) {
      fail(fmt::format("{} has dtype {}, expected a floating-point type", shown(name),
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

  std::int64_t heads(const char* field, const std::string& attn_module, std::int64_t width,
                     ClipArchitecture* a) const {
    const auto declared = named_.declared.find(field);
    const auto attribute = named_.num_heads.find(attn_module);
    std::int64_t h = 0;
    std::string source;
    if (declared != named_.declared.end()) {
      h = declared->second.value;
      source = declared->second.source;
      if (attribute != named_.num_heads.end() && attribute->second != h) {
        fail(fmt::format("{} says {} {}, but the archive's {}.num_heads is {}", source, field, h,
                         attn_module, attribute->second));
      }
    } else if (attribute != named_.num_heads.end()) {
      h = attribute->second;
      source = fmt::format("archive attribute {}.num_heads", attn_module);
    } else if (named_.openai_head_rule && width % kHeadWidth == 0) {
      h = width / kHeadWidth;
      source = fmt::format("OpenAI's build_model rule: width {} / {}", width, kHeadWidth);
    } else {
      fail(fmt::format(
          "the checkpoint does not say how many heads {} has (width {}): give the head counts "
          "(--model-heads VISION,TEXT, or model_heads in the config) or the open_clip model "
          "config (--model-config NAME|FILE)",
          attn_module, width));
    }
    if (h <= 0 || width % h != 0) {
      fail(fmt::format("{} gives {} {} heads, which do not divide its width {}", source,
                       attn_module, h, width));
    }
    a->sources[field] = source;
    return h;
  }

  // A size read off the weights (`what` names the tensor and dimension); a declared value must
  // agree.
  std::int64_t size(const char* field, std::int64_t from_weights, const std::string& what,
                    ClipArchitecture* a) const {
    const auto declared = named_.declared.find(field);
    if (declared == named_.declared.end()) {
      a->sources[field] = "weights: " + what;
      return from_weights;
    }
    if (declared->second.value != from_weights) {
      fail(fmt::format("{} says {} {}, but the weights have {} ({})", declared->second.source,
                       field, declared->second.value, from_weights, what));
    }
    a->sources[field] = declared->second.source;
    return from_weights;
  }

  void activation(ClipArchitecture* a) const {
    if (named_.activation.source.empty()) {
      fail(
          "the checkpoint does not say which activation its MLPs use: give it (--model-act "
          "quick_gelu|gelu, or model_act in the config; OpenAI's CLIP uses quick_gelu, "
          "open_clip's LAION models gelu) or the open_clip model config (--model-config "
          "NAME|FILE)");
    }
    a->activation = static_cast<Activation>(named_.activation.value);
    a->sources["activation"] = named_.activation.source;
  }

  void infer(ClipArchitecture* a) const {
    const at::Tensor& conv = raw("visual.conv1.weight");
    if (conv.dim() != 4 || conv.size(1) != 3 || conv.size(2) != conv.size(3)) {
      fail(fmt::format("visual.conv1.weight has shape {}, expected [width, 3, patch, patch]",
                       shape_text(conv.sizes())));
    }
    a->vision_width = size("vision_width", conv.size(0), "visual.conv1.weight rows", a);
    a->vision_patch_size =
        size("vision_patch_size", conv.size(3), "visual.conv1.weight kernel", a);
    a->vision_layers = size("vision_layers", count_blocks("visual.transformer.resblocks."),
                            "visual.transformer.resblocks.* count", a);
    a->vision_heads =
        heads("vision_heads", "visual.transformer.resblocks.0.attn", a->vision_width, a);
    a->vision_mlp_width =
        size("vision_mlp_width", dim_of("visual.transformer.resblocks.0.mlp.c_fc.weight", 2, 0),
             "visual.transformer.resblocks.0.mlp.c_fc.weight rows", a);
    const std::int64_t rows = dim_of("visual.positional_embedding", 2, 0);
    const std::int64_t grid = std::llround(std::sqrt(static_cast<double>(rows - 1)));
    if (grid * grid + 1 != rows) {
      fail(
          fmt::format("visual.positional_embedding has {} rows, expected grid² + 1 for a "
                      "square patch grid",
                      rows));
    }
    a->vision_grid_size = grid;
    a->sources["vision_grid_size"] = "weights: visual.positional_embedding rows";
    a->image_resolution = size("image_resolution", a->vision_patch_size * grid,
                               "patch size × visual.positional_embedding grid", a);
    a->text_width =
        size("text_width", dim_of("ln_final.weight", 1, 0), "ln_final.weight size", a);
    a->text_layers = size("text_layers", count_blocks("transformer.resblocks."),
                          "transformer.resblocks.* count", a);
    a->text_heads = heads("text_heads", "transformer.resblocks.0.attn", a->text_width, a);
    a->text_mlp_width =
        size("text_mlp_width", dim_of("transformer.resblocks.0.mlp.c_fc.weight", 2, 0),
             "transformer.resblocks.0.mlp.c_fc.weight rows", a);
    a->context_length = size("context_length", dim_of("positional_embedding", 2, 0),
                             "positional_embedding rows", a);
    a->vocab_size = size("vocab_size", dim_of("token_embedding.weight", 2, 0),
                         "token_embedding.weight rows", a);
    a->embed_dim =
        size("embed_dim", dim_of("text_projection", 2, 1), "text_projection columns", a);
    activation(a);
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
  mutable std::set<std::string> used_;
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

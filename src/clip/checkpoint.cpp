// The CLIP checkpoint formats: which one a path is, the tensors it holds under OpenAI's
// parameter names (transformers' CLIPModel names mapped, q/k/v fused), and what its metadata
// (transformers' config.json, open_clip's model config, load options) says of the architecture.
// LibTorch's own readers (TorchScript, torch.save) are in model_loader.cpp.

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "clip_weights.h"
#include "clipes/core/error.h"
#include "clipes/io/safetensors.h"

namespace clipes::clip {
namespace detail {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- safetensors -----------------------------------------------------------------------------

at::ScalarType scalar_type(io::SafetensorsDtype dtype) {
  switch (dtype) {
    case io::SafetensorsDtype::kBool:
      return at::kBool;
    case io::SafetensorsDtype::kU8:
      return at::kByte;
    case io::SafetensorsDtype::kI8:
      return at::kChar;
    case io::SafetensorsDtype::kI16:
      return at::kShort;
    case io::SafetensorsDtype::kI32:
      return at::kInt;
    case io::SafetensorsDtype::kI64:
      return at::kLong;
    case io::SafetensorsDtype::kF16:
      return at::kHalf;
    case io::SafetensorsDtype::kBF16:
      return at::kBFloat16;
    case io::SafetensorsDtype::kF32:
      return at::kFloat;
    case io::SafetensorsDtype::kF64:
      return at::kDouble;
  }
  return at::kFloat;
}

std::map<std::string, at::Tensor> read_safetensors(const fs::path& file) {
  const io::SafetensorsFile st = io::SafetensorsFile::open(file);
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, entry] : st.entries()) {
    // A copy: the mapped bytes are not aligned to the element size in general.
    at::Tensor t = at::empty(entry.shape, at::TensorOptions().dtype(scalar_type(entry.dtype)));
    if (entry.end > entry.begin) std::memcpy(t.data_ptr(), st.data(entry), entry.end - entry.begin);
    out.emplace(name, std::move(t));
  }
  return out;
}

// ---- JSON metadata ---------------------------------------------------------------------------

json read_json(const fs::path& file, const char* what) {
  std::ifstream in(file);
  if (!in) throw Error(fmt::format("{} {} cannot be read", what, file.string()));
  try {
    return json::parse(in);
  } catch (const json::parse_error& e) {
    throw Error(fmt::format("{} {} is not valid JSON: {}", what, file.string(), e.what()));
  }
}

// A positive integer at `object[key]`, or `fallback` (0: none) when absent.
std::int64_t positive(const json& object, const std::string& key, const std::string& where,
                      std::int64_t fallback, bool* absent = nullptr) {
  const auto it = object.find(key);
  if (absent != nullptr) *absent = it == object.end() || it->is_null();
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_number_integer() || it->get<std::int64_t>() <= 0) {
    throw Error(fmt::format("{}{} must be a positive integer, got {}", where, key, it->dump()));
  }
  return it->get<std::int64_t>();
}

// ---- transformers CLIPModel ------------------------------------------------------------------

// Whole-name pairs: OpenAI's name, transformers' name.
const std::pair<const char*, const char*> kTransformersNames[] = {
    {"visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight"},
    {"visual.class_embedding", "vision_model.embeddings.class_embedding"},
    {"visual.positional_embedding", "vision_model.embeddings.position_embedding.weight"},
    {"visual.ln_pre.weight", "vision_model.pre_layrnorm.weight"},  // sic: transformers' name
    {"visual.ln_pre.bias", "vision_model.pre_layrnorm.bias"},
    {"visual.ln_post.weight", "vision_model.post_layernorm.weight"},
    {"visual.ln_post.bias", "vision_model.post_layernorm.bias"},
    {"visual.proj", "visual_projection.weight"},  // transposed
    {"token_embedding.weight", "text_model.embeddings.token_embedding.weight"},
    {"positional_embedding", "text_model.embeddings.position_embedding.weight"},
    {"ln_final.weight", "text_model.final_layer_norm.weight"},
    {"ln_final.bias", "text_model.final_layer_norm.bias"},
    {"text_projection", "text_projection.weight"},  // transposed
    {"logit_scale", "logit_scale"},
};
// Block suffixes: OpenAI's, transformers'. in_proj is q, k, v concatenated.
const std::pair<const char*, const char*> kTransformersBlockNames[] = {
    {"ln_1.weight", "layer_norm1.weight"},
    {"ln_1.bias", "layer_norm1.bias"},
    {"attn.out_proj.weight", "self_attn.out_proj.weight"},
    {"attn.out_proj.bias", "self_attn.out_proj.bias"},
    {"ln_2.weight", "layer_norm2.weight"},
    {"ln_2.bias", "layer_norm2.bias"},
    {"mlp.c_fc.weight", "mlp.fc1.weight"},
    {"mlp.c_fc.bias", "mlp.fc1.bias"},
    {"mlp.c_proj.weight", "mlp.fc2.weight"},
    {"mlp.c_proj.bias", "mlp.fc2.bias"},
    {"attn.in_proj_weight", "self_attn.{q,k,v}_proj.weight"},
    {"attn.in_proj_bias", "self_attn.{q,k,v}_proj.bias"},
};
const std::pair<const char*, const char*> kTransformersTowers[] = {
    {"visual.transformer.resblocks.", "vision_model.encoder.layers."},
    {"transformer.resblocks.", "text_model.encoder.layers."},
};

bool has_transformers_names(const std::map<std::string, at::Tensor>& tensors) {
  for (const auto& [name, t] : tensors) {
    if (name.rfind("vision_model.", 0) == 0 || name.rfind("text_model.", 0) == 0) return true;
  }
  return false;
}

// transformers' name of the OpenAI parameter `name` (for errors).
std::string transformers_name(const std::string& name) {
  for (const auto& [openai, hf] : kTransformersNames) {
    if (name == openai) return hf;
  }
  for (const auto& [openai_tower, hf_tower] : kTransformersTowers) {
    const std::string tower = openai_tower;
    if (name.rfind(tower, 0) != 0) continue;
    const auto dot = name.find('.', tower.size());
    if (dot == std::string::npos) break;
    const std::string suffix = name.substr(dot + 1);
    for (const auto& [openai, hf] : kTransformersBlockNames) {
      if (suffix == openai)
        return hf_tower + name.substr(tower.size(), dot - tower.size()) + "." + hf;
    }
  }
  return name;
}

// The tensors under OpenAI's names: renamed, projections transposed, q/k/v concatenated into
// the in-projection (PyTorch's MHA packing: rows q, then k, then v). Unknown names are kept as
// they are (the assembler names them); position_ids buffers are dropped.
std::map<std::string, at::Tensor> from_transformers_names(std::map<std::string, at::Tensor> hf,
                                                          const fs::path& file) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [openai, name] : kTransformersNames) {
    auto it = hf.find(name);
    if (it == hf.end()) continue;
    const bool transpose =
        std::strcmp(openai, "visual.proj") == 0 || std::strcmp(openai, "text_projection") == 0;
    out[openai] = transpose && it->second.dim() == 2 ? it->second.t() : it->second;
    hf.erase(it);
  }
  static const std::regex block(R"(^(vision|text)_model\.encoder\.layers\.(\d+)\.(.+)$)");
  std::map<std::string, std::map<std::string, at::Tensor>> qkv;  // openai prefix -> "q.weight"...
  for (auto it = hf.begin(); it != hf.end();) {
    std::smatch m;
    const std::string& name = it->first;
    if (name == "vision_model.embeddings.position_ids" ||
        name == "text_model.embeddings.position_ids") {
      it = hf.erase(it);
      continue;
    }
    if (!std::regex_match(name, m, block)) {
      ++it;
      continue;
    }
    const std::string prefix =
        (m[1] == "vision" ? "visual.transformer.resblocks." : "transformer.resblocks.") +
        m[2].str() + ".";
    const std::string suffix = m[3];
    bool mapped = false;
    for (const auto& [openai, hf_suffix] : kTransformersBlockNames) {
      if (suffix == hf_suffix) {
        out[prefix + openai] = it->second;
        mapped = true;
      }
    }
    static const std::regex proj(R"(^self_attn\.([qkv])_proj\.(weight|bias)$)");
    std::smatch p;
    if (!mapped && std::regex_match(suffix, p, proj)) {
      qkv[prefix][p[1].str() + "." + p[2].str()] = it->second;
      mapped = true;
    }
    it = mapped ? hf.erase(it) : std::next(it);
  }
  for (const auto& [prefix, parts] : qkv) {
    for (const char* kind : {"weight", "bias"}) {
      std::vector<at::Tensor> rows;
      for (const char* which : {"q", "k", "v"}) {
        const auto it = parts.find(std::string(which) + "." + kind);
        if (it == parts.end()) {
          std::string missing = transformers_name(prefix + "attn.in_proj_" + kind);
          missing.replace(missing.find("{q,k,v}"), 7, which);
          throw Error(fmt::format(
              "CLIP model file {} (transformers CLIPModel): missing {} (the in-projection {} "
              "is q, k and v together)",
              file.string(), missing, prefix + "attn.in_proj_" + kind));
        }
        rows.push_back(it->second);
      }
      if (rows[0].sizes() != rows[1].sizes() || rows[0].sizes() != rows[2].sizes()) {
        throw Error(
            fmt::format("CLIP model file {} (transformers CLIPModel): {} have shapes "
                        "that differ",
                        file.string(), transformers_name(prefix + "attn.in_proj_" + kind)));
      }
      out[prefix + "attn.in_proj_" + kind] = at::cat(rows, 0);
    }
  }
  for (auto& [name, t] : hf) out[name] = t;  // unknown: the assembler reports them
  return out;
}

// transformers' CLIPConfig defaults (configuration_clip.py), for keys a config.json omits.
struct TransformersField {
  const char* field;  // ClipArchitecture field
  const char* tower;  // "vision_config", "text_config" or "" (top level)
  const char* key;
  std::int64_t fallback;
};
const TransformersField kTransformersFields[] = {
    {"vision_width", "vision_config", "hidden_size", 768},
    {"vision_layers", "vision_config", "num_hidden_layers", 12},
    {"vision_heads", "vision_config", "num_attention_heads", 12},
    {"vision_mlp_width", "vision_config", "intermediate_size", 3072},
    {"vision_patch_size", "vision_config", "patch_size", 32},
    {"image_resolution", "vision_config", "image_size", 224},
    {"text_width", "text_config", "hidden_size", 512},
    {"text_layers", "text_config", "num_hidden_layers", 12},
    {"text_heads", "text_config", "num_attention_heads", 8},
    {"text_mlp_width", "text_config", "intermediate_size", 2048},
    {"context_length", "text_config", "max_position_embeddings", 77},
    {"vocab_size", "text_config", "vocab_size", 49408},
    {"embed_dim", "", "projection_dim", 512},
};

void apply_transformers_config(const fs::path& config_file, NamedTensors* named) {
  const json config = read_json(config_file, "transformers config");
  const std::string where = config_file.filename().string() + ": ";
  const auto fail = [&](const std::string& what) {
    return Error(fmt::format("transformers config {}: {}", config_file.string(), what));
  };
  if (!config.is_object()) throw fail("not a JSON object");
  const std::string model_type = config.value("model_type", std::string("clip"));
  if (model_type != "clip") {
    throw fail(fmt::format(
        "model_type is \"{}\"; clipes reads transformers' CLIPModel (model_type \"clip\"): "
        "SigLIP, Chinese-CLIP, CLIPSeg and other variants are not supported",
        model_type));
  }
  const auto tower = [&](const std::string& name) {
    // Old configs also keep the towers' keys in *_config_dict, which wins (as in transformers).
    json merged = json::object();
    for (const std::string& key : {name, name + "_dict"}) {
      const auto it = config.find(key);
      if (it != config.end() && it->is_object()) merged.update(*it);
    }
    return merged;
  };
  const json vision = tower("vision_config");
  const json text = tower("text_config");
  for (const auto& f : kTransformersFields) {
    const std::string tower_name = f.tower;
    const json& object = tower_name.empty()              ? config
                         : tower_name == "vision_config" ? vision
                                                         : text;
    const std::string path = tower_name.empty() ? std::string() : tower_name + ".";
    bool absent = false;
    const std::int64_t value = positive(object, f.key, where + path, f.fallback, &absent);
    declare(named, f.field, value,
            absent ? fmt::format("{}{}{} (absent: transformers' default)", where, path, f.key)
                   : fmt::format("{}{}{}", where, path, f.key));
  }
  std::string activation;
  std::string activation_source;
  for (const auto& [name, object] : {std::pair<std::string, const json*>("vision_config", &vision),
                                     std::pair<std::string, const json*>("text_config", &text)}) {
    const std::string act = object->value("hidden_act", std::string("quick_gelu"));
    const std::string source =
        object->contains("hidden_act")
            ? fmt::format("{}{}.hidden_act", where, name)
            : fmt::format("{}{}.hidden_act (absent: transformers' default)", where, name);
    if (!config::parse_enum<Activation>(act)) {
      throw fail(fmt::format("{}.hidden_act is \"{}\"; clipes runs {}", name, act,
                             config::enum_choices<Activation>()));
    }
    if (!activation.empty() && act != activation) {
      throw fail(
          fmt::format("{} is \"{}\" but {} is \"{}\"; clipes runs one activation in both "
                      "towers",
                      activation_source, activation, source, act));
    }
    activation = act;
    activation_source = source;
    const auto eps = object->find("layer_norm_eps");
    if (eps != object->end() &&
        (!eps->is_number() || std::abs(eps->get<double>() - 1e-5) > 1e-12)) {
      throw fail(fmt::format("{}.layer_norm_eps is {}; clipes runs CLIP's LayerNorm eps 1e-05",
                             name, eps->dump()));
    }
  }
  declare_activation(named, *config::parse_enum<Activation>(activation), activation_source);
  named->info.config = config_file;
}

// ---- open_clip model config ------------------------------------------------------------------

// open_clip's model_configs for the ViTs clipes runs (src/open_clip/model_configs/*.json):
// vision image size, layers, width, head width, patch; text width, heads, layers; embed dim.
struct OpenClipModel {
  const char* name;
  std::int64_t embed_dim, image_size, vision_layers, vision_width, head_width, patch_size;
  std::int64_t text_width, text_heads, text_layers;
};
const OpenClipModel kOpenClipModels[] = {
    {"ViT-B-32", 512, 224, 12, 768, 64, 32, 512, 8, 12},
    {"ViT-B-16", 512, 224, 12, 768, 64, 16, 512, 8, 12},
    {"ViT-L-14", 768, 224, 24, 1024, 64, 14, 768, 12, 12},
    {"ViT-L-14-336", 768, 336, 24, 1024, 64, 14, 768, 12, 12},
    {"ViT-H-14", 1024, 224, 32, 1280, 80, 14, 1024, 16, 24},
};

json open_clip_model_json(const OpenClipModel& m, bool quick_gelu) {
  json j = {{"embed_dim", m.embed_dim},
            {"vision_cfg",
             {{"image_size", m.image_size},
              {"layers", m.vision_layers},
              {"width", m.vision_width},
              {"patch_size", m.patch_size}}},
            {"text_cfg",
             {{"context_length", 77},
              {"vocab_size", 49408},
              {"width", m.text_width},
              {"heads", m.text_heads},
              {"layers", m.text_layers}}}};
  if (m.head_width != 64) j["vision_cfg"]["head_width"] = m.head_width;  // as open_clip's files
  if (quick_gelu) j["quick_gelu"] = true;
  return j;
}

// Keys of open_clip's configs that change nothing clipes computes, and keys whose default is
// the only value clipes runs.
const char* const kOpenClipIgnored[] = {"patch_dropout", "output_tokens", "cast_dtype",
                                        "pad_id",        "output_dim",    "timm_model_pretrained"};
const std::pair<const char*, json> kOpenClipDefaults[] = {
    {"ls_init_value", nullptr},
    {"attentional_pool", false},
    {"no_ln_pre", false},
    {"final_ln_after_pool", false},
    {"timm_model_name", nullptr},
    {"hf_model_name", nullptr},
    {"pos_embed_type", "learnable"},
    {"pool_type", nullptr},
    {"proj_bias", false},
    {"embed_cls", false},
    {"no_causal_mask", false},
    {"custom_text", false},
    {"act_kwargs", nullptr},
    {"norm_kwargs", nullptr},
    {"input_patchnorm", false},
    {"global_average_pool", false},
    {"attn_pooler_heads", nullptr},
    {"attn_pooler_queries", nullptr},
    {"multimodal_cfg", nullptr},
    {"init_logit_bias", nullptr},
    {"init_logit_scale", nullptr},
    {"proj_type", nullptr},
    {"proj", nullptr},
};

void check_open_clip_keys(const json& object, const std::string& where,
                          const std::vector<std::string>& read) {
  for (const auto& [key, value] : object.items()) {
    if (std::find(read.begin(), read.end(), key) != read.end()) continue;
    if (std::any_of(std::begin(kOpenClipIgnored), std::end(kOpenClipIgnored),
                    [&, k = key](const char* i) { return k == i; })) {
      continue;
    }
    bool fine = false;
    bool known = false;
    for (const auto& [name, default_value] : kOpenClipDefaults) {
      if (key != name) continue;
      known = true;
      // pool_type: "tok" (vision) and "argmax" (text) are OpenAI's; CLIP-ES pools itself.
      fine = value.is_null() || value == default_value || (value.is_object() && value.empty()) ||
             (key == "pool_type" && (value == "tok" || value == "argmax")) ||
             (key == "proj_type" && value == "linear") || (key == "proj" && value == "linear") ||
             (key == "init_logit_scale");
    }
    if (fine) continue;
    throw Error(fmt::format(
        "{}{} is {}: {}; clipes runs CLIP ViTs with OpenAI's blocks (class token, learnable "
        "positions, ln_pre, no layer scale, no attentional pooler, a causal text transformer "
        "pooled at the end token)",
        where, key, value.dump(), known ? "not supported" : "unknown to clipes"));
  }
}

/// Where an open_clip config's values come from, for messages and the dry run's size sources.
struct OpenClipPaths {
  std::string where;  ///< "<file>: "
  std::string m;      ///< "model_cfg." inside open_clip_config.json, else ""

  std::string source(const std::string& path, const json& object, const std::string& key) const {
    return object.contains(key) ? where + m + path + key
                                : where + m + path + key + " (absent: open_clip's default)";
  }
  double mlp_ratio(const json& object, const std::string& path) const {
    const auto it = object.find("mlp_ratio");
    if (it == object.end()) return 4.0;
    if (!it->is_number() || it->get<double>() <= 0) {
      throw Error(fmt::format("{}{}{}mlp_ratio must be a positive number, got {}", where, m, path,
                              it->dump()));
    }
    return it->get<double>();
  }
  /// A derived size's source: "<where>vision_cfg.width / vision_cfg.head_width", or the default
  /// spelled out when the key is absent.
  std::string derived(const std::string& path, const json& object, const char* op,
                      const std::string& key, const char* fallback) const {
    return where + m + path + "width " + op + " " +
           (object.contains(key)
                ? path + key
                : fmt::format("{} ({} absent: open_clip's default)", fallback, key));
  }
};

void declare_open_clip_vision(const json& vision, const OpenClipPaths& p, NamedTensors* named) {
  const std::string v = "vision_cfg.";
  std::int64_t image = 224;
  if (vision.contains("image_size") && vision.at("image_size").is_array()) {
    const json& sides = vision.at("image_size");
    if (sides.size() != 2 || sides[0] != sides[1] || !sides[0].is_number_integer()) {
      throw Error(fmt::format("{}{}vision_cfg.image_size is {}: clipes runs square position grids",
                              p.where, p.m, sides.dump()));
    }
    image = sides[0].get<std::int64_t>();
  } else {
    image = positive(vision, "image_size", p.where + p.m + v, 224);
  }
  declare(named, "image_resolution", image, p.source(v, vision, "image_size"));
  const std::int64_t width = positive(vision, "width", p.where + p.m + v, 768);
  declare(named, "vision_width", width, p.source(v, vision, "width"));
  declare(named, "vision_layers", positive(vision, "layers", p.where + p.m + v, 12),
          p.source(v, vision, "layers"));
  declare(named, "vision_patch_size", positive(vision, "patch_size", p.where + p.m + v, 16),
          p.source(v, vision, "patch_size"));
  const std::int64_t head_width = positive(vision, "head_width", p.where + p.m + v, 64);
  if (width % head_width != 0) {
    throw Error(fmt::format("{}{}vision_cfg.head_width {} does not divide vision_cfg.width {}",
                            p.where, p.m, head_width, width));
  }
  declare(named, "vision_heads", width / head_width,
          p.derived(v, vision, "/", "head_width", "64"));
  declare(named, "vision_mlp_width",
          static_cast<std::int64_t>(static_cast<double>(width) * p.mlp_ratio(vision, v)),
          p.derived(v, vision, "×", "mlp_ratio", "4"));
}

void declare_open_clip_text(const json& text, const OpenClipPaths& p, NamedTensors* named) {
  const std::string t = "text_cfg.";
  const std::string at = p.where + p.m + t;
  const std::int64_t width = positive(text, "width", at, 512);
  declare(named, "text_width", width, p.source(t, text, "width"));
  declare(named, "text_layers", positive(text, "layers", at, 12), p.source(t, text, "layers"));
  declare(named, "text_heads", positive(text, "heads", at, 8), p.source(t, text, "heads"));
  declare(named, "text_mlp_width",
          static_cast<std::int64_t>(static_cast<double>(width) * p.mlp_ratio(text, t)),
          p.derived(t, text, "×", "mlp_ratio", "4"));
  declare(named, "context_length", positive(text, "context_length", at, 77),
          p.source(t, text, "context_length"));
  declare(named, "vocab_size", positive(text, "vocab_size", at, 49408),
          p.source(t, text, "vocab_size"));
}

/// clipes normalises images with OpenAI's mean and std (spec §2): another preprocess_cfg is an
/// error.
void check_open_clip_preprocess(const json& document, const std::string& where) {
  const auto preprocess = document.find("preprocess_cfg");
  if (preprocess == document.end() || !preprocess->is_object()) return;
  static const double mean[] = {0.48145466, 0.4578275, 0.40821073};
  static const double std_[] = {0.26862954, 0.26130258, 0.27577711};
  for (const auto& [key, expected] :
       {std::pair<const char*, const double*>("mean", mean), std::pair("std", std_)}) {
    const auto it = preprocess->find(key);
    if (it == preprocess->end()) continue;
    bool same = it->is_array() && it->size() == 3;
    for (std::size_t i = 0; same && i < 3; ++i) {
      same = (*it)[i].is_number() && std::abs((*it)[i].get<double>() - expected[i]) < 1e-6;
    }
    if (!same) {
      throw Error(fmt::format(
          "{}preprocess_cfg.{} is {}: this model was trained on images normalised otherwise "
          "than OpenAI's CLIP, and clipes normalises with OpenAI's mean and std",
          where, key, it->dump()));
    }
  }
}

void apply_open_clip_config(const json& document, const std::string& name, NamedTensors* named) {
  const std::string where = name + ": ";
  const json& model = document.contains("model_cfg") ? document.at("model_cfg") : document;
  if (!model.is_object() || !model.contains("vision_cfg")) {
    throw Error(
        fmt::format("{}no vision_cfg: not an open_clip model config (or "
                    "open_clip_config.json with model_cfg)",
                    where));
  }
  const OpenClipPaths paths{where, document.contains("model_cfg") ? "model_cfg." : ""};
  const std::string& m = paths.m;
  const json& vision = model.at("vision_cfg");
  const json text = model.value("text_cfg", json::object());
  if (vision.contains("layers") && vision.at("layers").is_array()) {
    throw Error(
        fmt::format("{}{}vision_cfg.layers is {}: a ResNet CLIP, not a ViT; clipes runs "
                    "CLIP ViTs",
                    where, m, vision.at("layers").dump()));
  }
  check_open_clip_keys(model, where + m, {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu"});
  check_open_clip_keys(vision, where + m + "vision_cfg.",
                       {"image_size", "layers", "width", "head_width", "patch_size", "mlp_ratio"});
  check_open_clip_keys(text, where + m + "text_cfg.",
                       {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio"});
  if (model.contains("embed_dim")) {
    declare(named, "embed_dim", positive(model, "embed_dim", where + m, 0),
            where + m + "embed_dim");
  }
  declare_open_clip_vision(vision, paths, named);
  declare_open_clip_text(text, paths, named);
  const auto quick = model.find("quick_gelu");
  if (quick != model.end() && !quick->is_boolean()) {
    throw Error(
        fmt::format("{}{}quick_gelu must be true or false, got {}", where, m, quick->dump()));
  }
  const bool quick_gelu = quick != model.end() && quick->get<bool>();
  declare_activation(named, quick_gelu ? Activation::kQuickGelu : Activation::kGelu,
                     quick != model.end() ? where + m + "quick_gelu"
                                          : where + m + "quick_gelu (absent: open_clip's GELU)");
  check_open_clip_preprocess(document, where);
}

}  // namespace

void apply_open_clip_model_config(const std::string& model_config, NamedTensors* named) {
  for (const auto& m : kOpenClipModels) {
    for (const bool quick : {false, true}) {
      const std::string name = std::string(m.name) + (quick ? "-quickgelu" : "");
      if (model_config == name) {
        apply_open_clip_config(open_clip_model_json(m, quick),
                               fmt::format("open_clip model config {}", name), named);
        return;
      }
    }
  }
  const fs::path file(model_config);
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) {
    throw Error(
        fmt::format("model config \"{}\" is neither an open_clip model name clipes knows "
                    "({}) nor a JSON file",
                    model_config, known_open_clip_models()));
  }
  apply_open_clip_config(read_json(file, "open_clip model config"),
                         fmt::format("open_clip model config {}", file.string()), named);
  named->info.config = file;
}

namespace {

// ---- formats ---------------------------------------------------------------------------------

// A training checkpoint's state dict under DistributedDataParallel: every name "module.*".
void strip_module_prefix(std::map<std::string, at::Tensor>* tensors) {
  if (tensors->empty()) return;
  for (const auto& [name, t] : *tensors) {
    if (name.rfind("module.", 0) != 0) return;
  }
  std::map<std::string, at::Tensor> out;
  for (auto& [name, t] : *tensors) out.emplace(name.substr(7), std::move(t));
  *tensors = std::move(out);
}

// Tensors with transformers' names, mapped, with the config.json beside them.
void read_transformers(NamedTensors* named, const fs::path& config_file, const char* weights) {
  const fs::path& file = named->info.weights;
  std::error_code ec;
  if (!fs::is_regular_file(config_file, ec)) {
    throw Error(fmt::format(
        "CLIP model file {} has transformers' CLIPModel names (vision_model.*, text_model.*) "
        "but there is no {} beside it: transformers' config says the activation and head "
        "counts; put the model's config.json (it comes with the weights on the hub) beside them",
        file.string(), config_file.string()));
  }
  named->tensors = from_transformers_names(std::move(named->tensors), file);
  named->info.format = fmt::format("transformers CLIPModel (config.json + {})", weights);
  named->file_name = transformers_name;
  named->openai_head_rule = false;
  apply_transformers_config(config_file, named);
}

NamedTensors read_file(const fs::path& file) {
  NamedTensors named;
  if (io::looks_like_safetensors(file)) {
    named.tensors = read_safetensors(file);
    named.info.weights = file;
    named.info.format = "safetensors (OpenAI / open_clip names)";
  } else {
    named = read_torch_file(file);
  }
  strip_module_prefix(&named.tensors);
  if (has_transformers_names(named.tensors)) {
    const bool safetensors = io::looks_like_safetensors(file);
    read_transformers(&named, file.parent_path() / "config.json",
                      safetensors ? "model.safetensors" : "pytorch_model.bin");
    return named;
  }
  const fs::path beside = file.parent_path() / "open_clip_config.json";
  std::error_code ec;
  if (named.info.format != "TorchScript archive" && fs::is_regular_file(beside, ec)) {
    apply_open_clip_config(read_json(beside, "open_clip config"),
                           fmt::format("open_clip_config.json"), &named);
    named.info.config = beside;
    named.info.format = io::looks_like_safetensors(file) ? "open_clip safetensors"
                                                         : "open_clip state dict (torch.save)";
  }
  return named;
}

NamedTensors read_folder(const fs::path& folder) {
  std::error_code ec;
  const auto has = [&](const char* name) { return fs::is_regular_file(folder / name, ec); };
  if (has("config.json")) {
    for (const char* weights : {"model.safetensors", "pytorch_model.bin"}) {
      if (has(weights)) return read_file(folder / weights);
    }
    throw Error(
        fmt::format("CLIP model folder {} has a config.json but neither model.safetensors "
                    "nor pytorch_model.bin",
                    folder.string()));
  }
  for (const char* weights : {"open_clip_model.safetensors", "open_clip_pytorch_model.bin"}) {
    if (has(weights)) return read_file(folder / weights);
  }
  throw Error(fmt::format(
      "CLIP model folder {} holds none of the checkpoints clipes reads: config.json with "
      "model.safetensors or pytorch_model.bin (transformers), open_clip_model.safetensors or "
      "open_clip_pytorch_model.bin (open_clip)",
      folder.string()));
}

Activation parse_activation(const std::string& text) {
  if (const auto activation = config::parse_enum<Activation>(text)) return *activation;
  throw Error(fmt::format("model activation must be {}, got \"{}\"",
                          config::enum_choices<Activation>(), text));
}

}  // namespace

void declare(NamedTensors* named, const std::string& field, std::int64_t value,
             const std::string& source) {
  const auto [it, fresh] = named->declared.emplace(field, Declared{value, source});
  if (!fresh && it->second.value != value) {
    throw Error(fmt::format("CLIP model file {} ({}): {} says {} {}, but {} says {}",
                            named->info.weights.string(), named->info.format, it->second.source,
                            field, it->second.value, source, value));
  }
}

void declare_activation(NamedTensors* named, Activation activation, const std::string& source) {
  auto& known = named->activation;
  if (!known.source.empty() && known.value != static_cast<std::int64_t>(activation)) {
    throw Error(fmt::format("CLIP model file {} ({}): {} says activation {}, but {} says {}",
                            named->info.weights.string(), named->info.format, known.source,
                            to_string(static_cast<Activation>(known.value)), source,
                            to_string(activation)));
  }
  if (known.source.empty()) known = Declared{static_cast<std::int64_t>(activation), source};
}

std::string to_safetensors_command(const fs::path& file) {
  std::string stem = file.stem().string();
  if (stem == "pytorch_model") stem = "model";
  if (stem == "open_clip_pytorch_model") stem = "open_clip_model";
  const fs::path out = file.parent_path() / (stem + ".safetensors");
  return fmt::format(
      "python3 -c \"import torch, safetensors.torch as st; sd = torch.load('{}', "
      "map_location='cpu'); sd = sd.get('state_dict', sd); st.save_file({{k: "
      "v.contiguous().clone() for k, v in sd.items()}}, '{}')\"",
      file.string(), out.string());
}

NamedTensors read_checkpoint(const fs::path& path, const ClipLoadOptions& options) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw Error(fmt::format("CLIP model file {} does not exist", path.string()));
  }
  NamedTensors named;
  if (fs::is_directory(path, ec)) {
    named = read_folder(path);
  } else if (!fs::is_regular_file(path, ec)) {
    throw Error(fmt::format("CLIP model file {} is not a regular file", path.string()));
  } else {
    named = read_file(path);
  }
  if (!options.model_config.empty()) apply_open_clip_model_config(options.model_config, &named);
  if (!options.activation.empty()) {
    declare_activation(&named, parse_activation(options.activation), "model_act (--model-act)");
  }
  if (options.vision_heads > 0) {
    declare(&named, "vision_heads", options.vision_heads, "model_heads (--model-heads)");
  }
  if (options.text_heads > 0) {
    declare(&named, "text_heads", options.text_heads, "model_heads (--model-heads)");
  }
  return named;
}

}  // namespace detail

std::string known_open_clip_models() {
  std::string out;
  for (const auto& m : detail::kOpenClipModels) {
    out += fmt::format("{}{}, {}-quickgelu", out.empty() ? "" : ", ", m.name, m.name);
  }
  return out;
}

}  // namespace clipes::clip

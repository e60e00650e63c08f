#pragma once
/// Internal: CLIP ViT weights by role, and how they are read from a file (model_loader.cpp) and
/// assembled from named tensors (clip_weights.cpp). Not part of the public API.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "clipes/clip/model.h"

namespace clipes::clip::detail {

/// One ResidualAttentionBlock of OpenAI's model.py.
struct BlockWeights {
  at::Tensor ln_1_weight, ln_1_bias;
  at::Tensor in_proj_weight, in_proj_bias;    ///< [3W, W], [3W]: q, k, v packed
  at::Tensor out_proj_weight, out_proj_bias;  ///< [W, W], [W]
  at::Tensor ln_2_weight, ln_2_bias;
  at::Tensor c_fc_weight, c_fc_bias;      ///< [M, W], [M]
  at::Tensor c_proj_weight, c_proj_bias;  ///< [W, M], [W]
};

struct ClipWeights {
  ClipArchitecture arch;
  // vision
  at::Tensor conv1_weight;                 ///< [D, 3, P, P]
  at::Tensor class_embedding;              ///< [D]
  at::Tensor vision_positional_embedding;  ///< [grid² + 1, D], float32 always
  at::Tensor ln_pre_weight, ln_pre_bias;
  std::vector<BlockWeights> vision_blocks;
  at::Tensor ln_post_weight, ln_post_bias;
  at::Tensor visual_proj;  ///< [D, E]
  // text
  at::Tensor token_embedding;            ///< [vocab, W]
  at::Tensor text_positional_embedding;  ///< [context, W]
  std::vector<BlockWeights> text_blocks;
  at::Tensor ln_final_weight, ln_final_bias;
  at::Tensor text_projection;  ///< [W, E]
  at::Tensor logit_scale;      ///< 0-dim, log of the scale
};

/// A size or the activation known before the weights are read, and where it was said.
struct Declared {
  std::int64_t value = 0;
  std::string source;  ///< e.g. "config.json: vision_config.num_attention_heads"
};

/// What a checkpoint holds: its tensors under OpenAI's parameter names, the num_heads attributes
/// of attention modules (TorchScript archives) by the module's name
/// ("visual.transformer.resblocks.0.attn"), and what its metadata (config files, the archive's
/// module types, the load options) says of the architecture.
struct NamedTensors {
  std::map<std::string, at::Tensor> tensors;
  std::map<std::string, std::int64_t> num_heads;
  /// By ClipArchitecture field name ("vision_heads", "image_resolution", ...): every declared
  /// size is checked against the weights; heads are only known from here or num_heads.
  std::map<std::string, Declared> declared;
  /// Activation (value: an Activation) when known, else source empty.
  Declared activation;
  /// Heads without num_heads attributes or a declaration follow OpenAI's build_model rule
  /// (width / 64): TorchScript archives, which are OpenAI's release format (its traced files
  /// keep no num_heads). Otherwise they must be declared.
  bool openai_head_rule = false;
  ClipCheckpointInfo info;
  /// The file's own name of a parameter given OpenAI's (transformers' names), for errors;
  /// empty: the same.
  std::function<std::string(const std::string&)> file_name;
};

/// Reads the checkpoint at `path` (a file or a folder) in any format ClipModel::load accepts,
/// maps its names onto OpenAI's and collects what its metadata and `options` say of the
/// architecture. Throws clipes::Error naming the file and what is wrong.
NamedTensors read_checkpoint(const std::filesystem::path& path, const ClipLoadOptions& options);

/// Records what a metadata `source` says of `field` (a ClipArchitecture field name); throws
/// clipes::Error when an earlier source said otherwise.
void declare(NamedTensors* named, const std::string& field, std::int64_t value,
             const std::string& source);
void declare_activation(NamedTensors* named, Activation activation, const std::string& source);

/// Declares what open_clip's model config `model_config` (a name clipes knows or a JSON file)
/// says; throws clipes::Error for an unknown name, an unreadable file or an unsupported model.
void apply_open_clip_model_config(const std::string& model_config, NamedTensors* named);

/// The Python line that converts the torch.save'd `file` to safetensors beside it.
std::string to_safetensors_command(const std::filesystem::path& file);

/// Every parameter and buffer of a TorchScript archive (with its num_heads attributes and the
/// class of its activation modules), or the entries of a torch.save'd plain dict (model_loader.cpp,
/// LibTorch's readers). Throws clipes::Error naming `file` when it is neither.
NamedTensors read_torch_file(const std::filesystem::path& file);

/// "cpu", "cuda", "cuda:N" as a device, checking that CUDA is there when asked for; throws
/// clipes::Error otherwise.
c10::Device parse_device(const std::string& text);

/// Infers the architecture (declared sizes first, checked against the weights), checks every
/// required name and shape and that no tensor is left unused, and returns the weights as stored
/// (CPU, file dtypes). `file` only names the source in errors.
ClipWeights assemble_clip_weights(const NamedTensors& named, const std::filesystem::path& file);

/// The weights moved to `device`; float32 everywhere, or, with keep_fp16, OpenAI's release
/// precision (convert_weights: conv/linear/attention weights and biases, proj and
/// text_projection float16; the rest float32). Every tensor contiguous, requires_grad false.
ClipWeights place_clip_weights(const ClipWeights& weights, c10::Device device, bool keep_fp16);

}  // namespace clipes::clip::detail

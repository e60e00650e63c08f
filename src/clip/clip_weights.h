#pragma once
/// Internal: CLIP ViT weights by role, and how they are read from a file (model_loader.cpp) and
/// assembled from named tensors (clip_weights.cpp). Not part of the public API.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
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

/// What a file holds: its tensors by name, and the num_heads attributes of attention modules
/// (TorchScript archives only) by the module's name ("visual.transformer.resblocks.0.attn").
struct NamedTensors {
  std::map<std::string, at::Tensor> tensors;
  std::map<std::string, std::int64_t> num_heads;
  std::string format;  ///< "TorchScript archive" or "state dict"
};

/// Reads every parameter and buffer of a TorchScript archive, or the entries of a torch.save'd
/// state dict. Throws clipes::Error naming `file` when it is neither.
NamedTensors read_named_tensors(const std::filesystem::path& file);

/// "cpu", "cuda", "cuda:N" as a device, checking that CUDA is there when asked for; throws
/// clipes::Error otherwise.
c10::Device parse_device(const std::string& text);

/// Infers the architecture, checks every required name and shape, and returns the weights as
/// stored (CPU, file dtypes). `file` only names the source in errors.
ClipWeights assemble_clip_weights(const NamedTensors& named, const std::filesystem::path& file);

/// The weights moved to `device`; float32 everywhere, or, with keep_fp16, OpenAI's release
/// precision (convert_weights: conv/linear/attention weights and biases, proj and
/// text_projection float16; the rest float32). Every tensor contiguous, requires_grad false.
ClipWeights place_clip_weights(const ClipWeights& weights, c10::Device device, bool keep_fp16);

}  // namespace clipes::clip::detail

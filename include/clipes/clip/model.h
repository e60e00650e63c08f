#pragma once
/// The frozen CLIP ViT of CLIP-ES (spec §0): loaded from OpenAI's release file (`ViT-B-16.pt`,
/// a TorchScript archive), open_clip's and transformers' checkpoints (safetensors) or a
/// torch.save'd state dict, the architecture from the checkpoint's metadata first and the
/// weights second, and run as separately callable pieces so that GradCAM can work inside the
/// last block (spec §3).
///
/// Vision, for one image of h×w patches (N = h·w, D = vision width, E = embedding size, L blocks):
///
///   pixels [B,3,P·h,P·w] --embed_image--> tokens [B,N+1,D]
///          --run_trunk(n)--> X = tokens entering block L [B,N+1,D]  (+ attention of blocks < L)
///          --last_block_norm(X, K)--> A = ln_1(X) [K,N+1,D]  (GradCAM target, autograd leaf)
///          --last_block_forward(X, A)--> image features [K,E] (+ attention of block L)
///
/// Layouts are batch-first, class token first. Everything runs in the model's compute dtype
/// (float32 on CPU; float16 on CUDA when the release fp16 weights are kept) on its device;
/// inputs on another device or dtype are moved there. All weights are frozen
/// (requires_grad false): a backward pass through last_block_forward computes gradients for A
/// only. A ClipModel is immutable after load; its methods are const and may run concurrently.
///
/// On the CPU each piece runs the reference's ATen operators on its shapes (a batch of one
/// image, one copy of A, one sentence per text row): with the same LibTorch and BLAS kernels
/// the numbers are CLIP-ES's bit for bit (clipes/core/blas.h).

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "clipes/clip/activation.h"

namespace clipes::clip {


/// Every size of a CLIP ViT: from the checkpoint's metadata when it has any (config.json,
/// open_clip's model config, the archive's attributes), checked against the weights, else read
/// off the weights the way OpenAI's build_model does.
struct ClipArchitecture {
  std::int64_t vision_width = 0;       ///< D: conv1.weight rows (768 for ViT-B/16)
  std::int64_t vision_layers = 0;      ///< L: visual.transformer.resblocks count (12)
  std::int64_t vision_heads = 0;       ///< from metadata, or OpenAI's width / 64 for its archives
  std::int64_t vision_mlp_width = 0;   ///< c_fc rows (4·D)
  std::int64_t vision_patch_size = 0;  ///< P: conv1 kernel (16)
  std::int64_t vision_grid_size = 0;   ///< sqrt(positional rows − 1) (14)
  std::int64_t image_resolution = 0;   ///< P · grid (224), the training resolution
  std::int64_t text_width = 0;         ///< ln_final size (512)
  std::int64_t text_layers = 0;        ///< transformer.resblocks count (12)
  std::int64_t text_heads = 0;         ///< from metadata, or OpenAI's width / 64 for its archives
  std::int64_t text_mlp_width = 0;     ///< c_fc rows (4·width)
  std::int64_t context_length = 0;     ///< text positional rows (77)
  std::int64_t vocab_size = 0;         ///< token_embedding rows (49408)
  std::int64_t embed_dim = 0;          ///< E: text_projection columns (512)
  Activation activation = Activation::kQuickGelu;
  /// Where each item came from, by field name ("vision_heads": "config.json
  /// vision_config.num_attention_heads", "vision_width": "weights visual.conv1.weight", ...).
  std::map<std::string, std::string> sources;

  /// One "name: value (source)" line per item (what `clipes-generate --dry-run` prints).
  std::string describe() const;
};

/// What was loaded.
struct ClipCheckpointInfo {
  /// "OpenAI TorchScript archive", "open_clip safetensors", "transformers CLIPModel
  /// (config.json + model.safetensors)", "state dict (torch.save)", ...
  std::string format;
  std::filesystem::path weights;  ///< the file the tensors were read from
  std::filesystem::path config;   ///< the metadata file used (config.json, ...); empty if none
};

/// How ClipModel::encode_text runs the text transformer.
enum class TextEncoding {
  /// Each row alone over the full context, as the reference's zeroshot_classifier encodes each
  /// sentence: the reference's numbers bit for bit (same LibTorch, same BLAS kernels), whatever
  /// the other rows of the batch.
  kReference,
  /// All rows in one batch over the positions up to the batch's last end token (nothing after
  /// it can reach an end token under the causal mask): the same values up to float rounding
  /// (~1e-6), several times less work; for ranking many prompts (spec §5).
  kFast,
};

/// Where and how the model runs.
struct ClipLoadOptions {
  /// "cpu", "cuda" or "cuda:N". CUDA needs a CUDA build of LibTorch and a visible GPU.
  std::string device = "cpu";
  /// Keep the release precision (conv/linear/attention weights and projections in float16,
  /// LayerNorm and embeddings in float32, as OpenAI runs on GPU). CUDA only: LibTorch 1.13 has
  /// no float16 convolution on CPU. False: everything float32 (what the reference ran on CPU).
  bool keep_fp16 = false;
  /// open_clip model config: a name clipes knows ("ViT-B-16", "ViT-L-14-quickgelu", ...; see
  /// known_open_clip_models) or a JSON file (open_clip's model_configs/*.json or an
  /// open_clip_config.json). Empty: the open_clip_config.json beside the weights, if any.
  std::string model_config;
  /// "quick_gelu" or "gelu" when the checkpoint does not say (a state dict); when it does, it
  /// must agree. Empty: from the checkpoint.
  std::string activation;
  /// Head counts when the checkpoint does not say; when it does, they must agree. 0: from the
  /// checkpoint.
  std::int64_t vision_heads = 0;
  std::int64_t text_heads = 0;
};

/// The open_clip model names `ClipLoadOptions::model_config` accepts, comma-separated.
std::string known_open_clip_models();

/// run_trunk's result.
struct VisionTrunkOutput {
  /// X: the tokens entering the last block, [B, N+1, D], compute dtype, no autograd history.
  at::Tensor tokens;
  /// The head-averaged attention weights [B, N+1, N+1] (float32, class token row and column
  /// included) of blocks max(1, L−n+1) .. L−1 (1-based), in block order, where n was
  /// run_trunk's `attention_blocks`; empty when n is 1. Kept one matrix per block (not as a
  /// running sum) because mean_attention must reduce them exactly as the reference does.
  std::vector<at::Tensor> attention;
};

/// last_block_forward's result.
struct LastBlockOutput {
  /// Image features [K, E], compute dtype, NOT L2-normalised: ln_post, then the MEAN of the
  /// patch tokens (not the class token: CLIP-ES, spec §3), then @ visual.proj. Carries the
  /// autograd graph back to A when A requires grad.
  at::Tensor image_features;
  /// Head-averaged attention weights of block L, [K, N+1, N+1] float32, detached.
  at::Tensor attention;
};

/// Whole-tower convenience result (no gradients).
struct ImageEncoding {
  at::Tensor tokens;          ///< X entering block L, [B, N+1, D]
  at::Tensor attention_mean;  ///< mean attention of the last n blocks, [B, N+1, N+1] float32
  at::Tensor image_features;  ///< [B, E], unnormalised (CLIP-ES mean pooling)
};

class ClipModel {
 public:
  /// Reads `path`, one of:
  ///  - OpenAI's release TorchScript archive (scripted or traced; storages saved on CUDA load
  ///    on the CPU);
  ///  - a safetensors file with OpenAI/open_clip parameter names (open_clip_model.safetensors),
  ///    with open_clip_config.json beside it or options.model_config;
  ///  - a transformers CLIPModel: a folder holding config.json and model.safetensors (or a
  ///    pytorch_model.bin LibTorch can read), or that model.safetensors itself;
  ///  - a torch.save'd plain dict of tensors with OpenAI's names (activation and heads from
  ///    options).
  /// Throws clipes::Error naming the file and what is wrong (missing file, unknown format, a
  /// pickle LibTorch cannot read — with the Python line that converts it —, a ResNet CLIP or an
  /// unsupported head, missing, misshapen or unknown parameters, metadata contradicting the
  /// weights, an activation or head count nothing says, an unavailable device).
  static ClipModel load(const std::filesystem::path& path, const ClipLoadOptions& options = {});

  const ClipArchitecture& architecture() const;
  const ClipCheckpointInfo& checkpoint() const;
  c10::Device device() const;
  /// float32, or float16 when keep_fp16 on CUDA.
  c10::ScalarType dtype() const;
  /// exp(logit_scale) as a 0-dim float32 tensor on the model's device (100 for the release).
  at::Tensor logit_scale() const;

  // ---- text (spec §0, §1) ----------------------------------------------------------------

  /// tokens: [T, context_length] int64 (start token, BPE ids, end token = the row's largest id,
  /// zero padding). Returns [T, E] in the compute dtype, NOT normalised (see l2_normalize):
  /// causal transformer, ln_final at the position of the largest token id, @ text_projection.
  at::Tensor encode_text(const at::Tensor& tokens,
                         TextEncoding encoding = TextEncoding::kReference) const;

  /// Frees the text transformer's weights (a third of ViT-B/16's: 250 MB in float32) once the
  /// text bank is built; the vision tower is untouched. encode_text throws clipes::Error after
  /// this. Copies of the model share its weights: the memory is freed once no copy holds the
  /// text tower. Returns the bytes of the text tensors dropped by this model (0 when done before).
  std::int64_t release_text_tower();
  bool has_text_tower() const;

  // ---- vision (spec §2, §3) --------------------------------------------------------------

  /// The positional embedding for an h×w patch grid, [1 + h·w, D] in the compute dtype: the
  /// class row kept, the grid rows resized bilinearly (align_corners false) from the weights'
  /// grid, then (quirk, spec §2) everything rounded through float16.
  at::Tensor positional_embedding(std::int64_t grid_h, std::int64_t grid_w) const;

  /// pixels: [B, 3, P·h, P·w] float (normalised as spec §2). Returns the tokens [B, N+1, D]
  /// entering block 1: conv1 (no bias) patches, class token first, positional_embedding(h, w)
  /// added, ln_pre. Throws clipes::Error for a wrong shape or sides not multiples of P.
  at::Tensor embed_image(const at::Tensor& pixels) const;

  /// tokens: embed_image's output [B, N+1, D]. Runs blocks 1..L−1 without autograd and returns
  /// X with the attention of the blocks that, together with block L, make the last
  /// `attention_blocks` blocks (CLIP-ES: 8, spec §4; more than L means all). attention_blocks
  /// must be >= 1; 1 keeps no attention. Memory: besides X, the n−1 kept matrices of
  /// (N+1)² floats per image (as the reference keeps them), and while a block runs its per-head
  /// weights [B·heads, N+1, N+1] float (as PyTorch's MHA does): 12·(N+1)² floats for ViT-B/16,
  /// 50 MB at 512×512 pixels, 0.8 GB at 1024×1024.
  VisionTrunkOutput run_trunk(const at::Tensor& tokens, std::int64_t attention_blocks) const;

  /// A = ln_1 of block L applied to X (run_trunk's tokens, [1, N+1, D], repeated to `copies`
  /// along dim 0; or already [copies, N+1, D]), returned as a fresh contiguous autograd leaf
  /// [copies, N+1, D] with requires_grad true: the GradCAM target layer (spec §3). K copies let
  /// K class gradients come out of one backward pass (loss = Σ_k score_k(copy k): the copies do
  /// not interact, so A.grad[k] = ∂score_k/∂A).
  at::Tensor last_block_norm(const at::Tensor& tokens, std::int64_t copies = 1) const;

  /// Rest of block L: x = X + MHA(A); x = x + MLP(ln_2(x)); then ln_post, mean of the patch
  /// tokens, @ proj. tokens X: [1 or K, N+1, D] (broadcast over A's copies); normed A:
  /// [K, N+1, D]. The gradient reaches A through the attention branch only (X is a constant).
  LastBlockOutput last_block_forward(const at::Tensor& tokens, const at::Tensor& normed) const;

  /// embed_image → run_trunk → last block, without gradients: features and the mean
  /// head-averaged attention of the last `attention_blocks` blocks (all if fewer).
  ImageEncoding encode_image(const at::Tensor& pixels, std::int64_t attention_blocks = 8) const;

  struct Impl;

 private:
  explicit ClipModel(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

/// features / ||features|| along the last dim (CLIP's normalisation, spec §1 and §3).
at::Tensor l2_normalize(const at::Tensor& features);

/// The mean head-averaged attention of the last n blocks, [B, N+1, N+1] float32: each element
/// the mean over trunk.attention then last_block_attention (block order). The patch block
/// [:, 1:, 1:] is reduced as the reference's
/// torch.mean(torch.stack([a[:, 1:, 1:] for a in weights[-8:]]), dim=0) does, bit for bit
/// (spec §4); the class token's row and column are reduced apart.
/// last_block_attention: LastBlockOutput::attention of one copy, [1, N+1, N+1].
at::Tensor mean_attention(const VisionTrunkOutput& trunk, const at::Tensor& last_block_attention);

}  // namespace clipes::clip

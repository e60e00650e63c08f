#pragma once
/// Softmax-GradCAM (spec §3): class activation maps from the gradient of the softmax over
/// [present classes; background words] with respect to the last block's ln_1 output.

#include <cstdint>
#include <functional>

#include <ATen/core/Tensor.h>

namespace clipes::cam {

/// The differentiable rest of the vision tower: maps the GradCAM target A = ln_1(X) of the last
/// block, [1, N+1, D] float32 (class token first), to the image feature [1, E] (before the L2
/// normalisation). Autograd must be able to differentiate it with respect to its argument.
using ImageHead = std::function<at::Tensor(const at::Tensor& activations)>;

struct GradCamResult {
  at::Tensor cams;   ///< [K, h, w] float32 in [0, 1], min-max normalised twice (spec §3)
  at::Tensor probs;  ///< [K + M] float32, the softmax over [present classes; background words]
};

/// activations: [N+1, D] float32, A = ln_1(X) of the last block (class token first; no grad
/// needed: a leaf copy is made). text_features: [K + M, E], the K present classes in label order
/// then the M background words (re-normalised here, as the reference does). logit_scale: the
/// multiplier of the cosine similarities (exp of CLIP's logit_scale, 100 for the release models).
/// grid_h·grid_w must equal N. One forward of `head`, then one backward per class on the same
/// graph: the K gradients cost K backward passes of the last block and no parameter gradients.
GradCamResult softmax_gradcam(const at::Tensor& activations, const ImageHead& head,
                              const at::Tensor& text_features, std::int64_t num_classes,
                              std::int64_t grid_h, std::int64_t grid_w, double logit_scale);

/// The softmax over [present classes; background words] for an image feature [E] or [1, E]
/// (unnormalised): softmax(logit_scale · f̂ · T̂ᵀ). Spec §3 and §5 (prompt ranking).
at::Tensor class_probabilities(const at::Tensor& image_feature, const at::Tensor& text_features,
                               double logit_scale);

}  // namespace clipes::cam

#include "clipes/cam/gradcam.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "clipes/cam/affinity.h"

namespace clipes::cam {

namespace {

at::Tensor l2_normalise_rows(const at::Tensor& x) { return x / x.norm(2, {1}, /*keepdim=*/true); }

}  // namespace

at::Tensor class_probabilities(const at::Tensor& image_feature, const at::Tensor& text_features,
                               double logit_scale) {
  const auto f = l2_normalise_rows(image_feature.reshape({1, -1}));
  const auto t = l2_normalise_rows(text_features.to(f.scalar_type()));
  return (at::mm(f, t.t()) * logit_scale).softmax(-1).reshape({-1});
}

GradCamResult softmax_gradcam(const at::Tensor& activations, const ImageHead& head,
                              const at::Tensor& text_features, std::int64_t num_classes,
                              std::int64_t grid_h, std::int64_t grid_w, double logit_scale) {
  TORCH_CHECK(activations.dim() == 2, "softmax_gradcam: activations must be [N+1, D], got ",
              activations.sizes());
  const std::int64_t n = activations.size(0) - 1;
  TORCH_CHECK(grid_h * grid_w == n, "softmax_gradcam: grid ", grid_h, "x", grid_w,
              " does not match ", n, " patch tokens");
  TORCH_CHECK(num_classes >= 1 && num_classes <= text_features.size(0),
              "softmax_gradcam: num_classes ", num_classes, " out of range for ",
              text_features.size(0), " text features");

  at::AutoGradMode enable_grad(true);
  const auto leaf = activations.detach().unsqueeze(0).clone().requires_grad_(true);
  const auto probs = class_probabilities(head(leaf), text_features, logit_scale);

  const auto patches = activations.detach().slice(0, 1);  // [N, D]
  auto weights = at::empty({num_classes, activations.size(1)}, activations.options());
  for (std::int64_t k = 0; k < num_classes; ++k) {
    const bool last = k + 1 == num_classes;
    const auto grads = torch::autograd::grad({probs[k]}, {leaf}, {}, /*retain_graph=*/!last);
    // GradCAM weights: the gradient averaged over the patch positions (class token dropped).
    weights[k] = grads[0][0].slice(0, 1).mean(0);
  }
  auto cams = at::mm(weights, patches.t()).clamp_min(0).reshape({num_classes, grid_h, grid_w});
  // The reference normalises once per target layer and once more after aggregating the layers.
  cams = minmax_normalize(minmax_normalize(cams));
  return {cams, probs.detach()};
}

}  // namespace clipes::cam

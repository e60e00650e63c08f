#include "clipes/cam/gradcam.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <vector>

#include "clipes/cam/caa.h"
#include "clipes/cam/numpy_reduce.h"

namespace clipes::cam {

namespace {

at::Tensor l2_normalise_rows(const at::Tensor& x) { return x / x.norm(2, {1}, /*keepdim=*/true); }

// grads: [N+1, D] (class token first). The GradCAM weights [D]: the gradient averaged over the N
// patch positions (class token dropped). On the CPU in float32 the sum runs position by position,
// as NumPy's mean over the (h, w) axes of the reference's [1, D, h, w] view does.
at::Tensor channel_weights(const at::Tensor& grads) {
  const auto patches = grads.slice(0, 1);
  if (!(patches.is_cpu() && patches.scalar_type() == at::kFloat)) return patches.mean(0);
  const auto g = patches.contiguous();
  const std::int64_t n = g.size(0);
  const std::int64_t d = g.size(1);
  auto weights = at::zeros({d}, g.options());
  float* w = weights.data_ptr<float>();
  const float* row = g.data_ptr<float>();
  for (std::int64_t i = 0; i < n; ++i, row += d) {
    for (std::int64_t c = 0; c < d; ++c) w[c] += row[c];
  }
  const auto count = static_cast<float>(n);
  for (std::int64_t c = 0; c < d; ++c) w[c] /= count;
  return weights;
}

// weights: [K, D]; patches: [N, D]. The maps Σ_c w_c·A_c, [K, N]. On the CPU in float32 each
// product is rounded and the channel sum is NumPy's pairwise sum, as the reference's
// (weights[:, :, None, None] * activations).sum(axis=1) on its channel-contiguous view.
at::Tensor weighted_maps(const at::Tensor& weights, const at::Tensor& patches) {
  if (!(patches.is_cpu() && patches.scalar_type() == at::kFloat)) {
    return at::mm(weights, patches.t());
  }
  const auto w = weights.contiguous();
  const auto a = patches.contiguous();
  const std::int64_t k_count = w.size(0);
  const std::int64_t n = a.size(0);
  const std::int64_t d = a.size(1);
  auto maps = at::empty({k_count, n}, a.options());
  std::vector<float> products(static_cast<std::size_t>(d));
  for (std::int64_t k = 0; k < k_count; ++k) {
    const float* wk = w.data_ptr<float>() + k * d;
    float* out = maps.data_ptr<float>() + k * n;
    for (std::int64_t i = 0; i < n; ++i) {
      const float* ai = a.data_ptr<float>() + i * d;
      for (std::int64_t c = 0; c < d; ++c) products[c] = wk[c] * ai[c];
      out[i] = numpy_pairwise_sum(products.data(), d);
    }
  }
  return maps;
}

}  // namespace

at::Tensor class_probabilities(const at::Tensor& image_feature, const at::Tensor& text_features,
                               double logit_scale) {
  const auto f = l2_normalise_rows(image_feature.reshape({1, -1}));
  const auto t = l2_normalise_rows(text_features.to(f.scalar_type()));
  // As the reference: logit_scale * image_features @ text_features.t(), the scale applied first.
  return at::mm(f * logit_scale, t.t()).softmax(-1).reshape({-1});
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
    weights[k] = channel_weights(grads[0][0]);
  }
  auto cams = weighted_maps(weights, patches).clamp_min(0).reshape({num_classes, grid_h, grid_w});
  // The reference normalises once per target layer and once more after aggregating the layers.
  cams = minmax_normalize(minmax_normalize(cams));
  return {cams, probs.detach()};
}

}  // namespace clipes::cam

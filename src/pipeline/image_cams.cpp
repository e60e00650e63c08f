#include "clipes/pipeline/image_cams.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <chrono>

#include "clipes/cam/caa.h"
#include "clipes/cam/gradcam.h"
#include "clipes/clip/model.h"
#include "clipes/data/resize.h"

namespace clipes::pipeline {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

ImageCams compute_image_cams(const clip::ClipModel& model, const at::Tensor& pixels,
                             const at::Tensor& text_matrix, std::int64_t num_classes,
                             int image_width, int image_height, const cam::CamConfig& cam,
                             const cam::CaaConfig& caa) {
  TORCH_CHECK(pixels.dim() == 4 && pixels.size(0) == 1, "compute_image_cams: pixels must be "
              "[1, 3, H, W], got ", pixels.sizes());
  const std::int64_t patch = model.architecture().vision_patch_size;
  const std::int64_t grid_h = pixels.size(2) / patch;
  const std::int64_t grid_w = pixels.size(3) / patch;
  ImageCams result;

  auto start = std::chrono::steady_clock::now();
  clip::VisionTrunkOutput trunk;
  {
    at::NoGradGuard no_grad;
    trunk = model.run_trunk(model.embed_image(pixels), cam.attention_blocks);
  }
  result.timings.trunk = seconds_since(start);

  start = std::chrono::steady_clock::now();
  at::Tensor last_attention;
  const auto head = [&](const at::Tensor& normed) {
    auto out = model.last_block_forward(trunk.tokens, normed);
    last_attention = out.attention;
    return out.image_features;
  };
  const at::Tensor activations = model.last_block_norm(trunk.tokens).detach()[0];
  const auto gradcam = cam::softmax_gradcam(activations, head, text_matrix, num_classes, grid_h,
                                            grid_w, model.logit_scale().item<double>());
  const at::Tensor initial = gradcam.cams.to(at::kFloat);
  result.initial = initial.to(at::kCPU).contiguous();
  result.probs = gradcam.probs.to(at::kCPU, at::kFloat);
  result.timings.last_block = seconds_since(start);

  start = std::chrono::steady_clock::now();
  at::NoGradGuard no_grad;
  const auto attention = clip::mean_attention(trunk, last_attention)[0].slice(0, 1).slice(1, 1);
  // On the model's device; the box contours are found on the CPU (OpenCV).
  const auto affinity = cam::sinkhorn_affinity(attention.to(at::kFloat), caa);
  const auto masks = cam::box_masks(result.initial, caa.box_threshold).to(initial.device());
  const auto refined = cam::refine_with_affinity(initial, affinity, masks, caa);
  result.refined = data::resize_maps_bilinear(cam::minmax_normalize(refined).to(at::kCPU),
                                              image_height, image_width);
  result.timings.caa = seconds_since(start);
  return result;
}

}  // namespace clipes::pipeline

#include "clipes/cam/caa.h"

#include <ATen/ATen.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>

#include <fmt/format.h>

#include "clipes/core/error.h"

namespace clipes::cam {

at::Tensor sinkhorn_affinity(const at::Tensor& attention, const CaaConfig& cfg) {
  TORCH_CHECK(attention.dim() == 2 && attention.size(0) == attention.size(1),
              "sinkhorn_affinity: attention must be [N, N], got ", attention.sizes());
  TORCH_CHECK(cfg.sinkhorn_rounds >= 1, "sinkhorn_affinity: sinkhorn_rounds must be >= 1");
  auto t = attention.to(at::kFloat).clone();
  for (int round = 0; round < cfg.sinkhorn_rounds; ++round) {
    t.div_(t.sum(0, /*keepdim=*/true));  // each column sums to 1
    t.div_(t.sum(1, /*keepdim=*/true));  // then each row
  }
  return t.add(t.t()).div_(2);
}

std::vector<Box> cam_boxes(const at::Tensor& cam, float box_threshold) {
  TORCH_CHECK(cam.dim() == 2, "cam_boxes: cam must be [h, w], got ", cam.sizes());
  const auto cpu = cam.to(at::kCPU, at::kFloat).contiguous();
  const int h = static_cast<int>(cpu.size(0));
  const int w = static_cast<int>(cpu.size(1));
  cv::Mat u8(h, w, CV_8UC1);
  const float* values = cpu.data_ptr<float>();
  std::uint8_t peak = 0;
  for (int i = 0; i < h * w; ++i) {
    // numpy: (cam * 255) in float32, then astype(uint8) truncates.
    const float scaled = values[i] * 255.0f;
    const auto v = static_cast<std::uint8_t>(std::clamp(scaled, 0.0f, 255.0f));
    u8.data[i] = v;
    peak = std::max(peak, v);
  }
  const auto threshold = static_cast<int>(box_threshold * static_cast<double>(peak));
  cv::Mat binary;
  cv::threshold(u8, binary, threshold, 255, cv::THRESH_BINARY);
  std::vector<std::vector<cv::Point>> contours;
  std::vector<cv::Vec4i> hierarchy;
  cv::findContours(binary, contours, hierarchy, cv::RETR_TREE, cv::CHAIN_APPROX_SIMPLE);
  std::vector<Box> boxes;
  boxes.reserve(contours.size());
  for (const auto& contour : contours) {
    const cv::Rect r = cv::boundingRect(contour);
    boxes.push_back({r.x, r.y, std::min(r.x + r.width, w - 1), std::min(r.y + r.height, h - 1)});
  }
  return boxes;
}

at::Tensor box_masks(const at::Tensor& cams, float box_threshold) {
  TORCH_CHECK(cams.dim() == 3, "box_masks: cams must be [K, h, w], got ", cams.sizes());
  auto masks = at::zeros(cams.sizes(), at::TensorOptions().dtype(at::kFloat));
  for (int64_t k = 0; k < cams.size(0); ++k) {
    auto mask = masks[k];
    for (const Box& box : cam_boxes(cams[k], box_threshold)) {
      if (box.x1 > box.x0 && box.y1 > box.y0) {
        mask.slice(0, box.y0, box.y1).slice(1, box.x0, box.x1).fill_(1.0f);
      }
    }
  }
  return masks.to(cams.device());
}

at::Tensor refine_with_affinity(const at::Tensor& cams, const at::Tensor& affinity,
                                const at::Tensor& masks, const CaaConfig& cfg) {
  TORCH_CHECK(cams.dim() == 3, "refine_with_affinity: cams must be [K, h, w], got ", cams.sizes());
  TORCH_CHECK(masks.sizes() == cams.sizes(), "refine_with_affinity: masks ", masks.sizes(),
              " do not match cams ", cams.sizes());
  const int64_t k = cams.size(0);
  const int64_t n = cams.size(1) * cams.size(2);
  TORCH_CHECK(affinity.dim() == 2 && affinity.size(0) == n && affinity.size(1) == n,
              "refine_with_affinity: affinity must be [", n, ", ", n, "], got ", affinity.sizes());
  TORCH_CHECK(cfg.power >= 1, "refine_with_affinity: power must be >= 1");
  if (!cfg.explicit_power) {
    // Columns of V are the masked CAMs; D^t V as t products with D (N²K each).
    auto v = cams.to(at::kFloat).mul(masks).reshape({k, n}).t().contiguous();  // [N, K]
    for (int step = 0; step < cfg.power; ++step) v = at::mm(affinity, v);
    return v.t().reshape(cams.sizes()).contiguous();
  }
  // The reference's ops, so that its numbers come out bit for bit: D^t formed as a matrix
  // (torch.matmul(D, D) for t = 2), then per class its columns masked and one product with the
  // CAM as an [N, 1] column.
  const auto d = affinity.to(at::kFloat).contiguous();
  auto dt = d;
  for (int step = 1; step < cfg.power; ++step) dt = at::matmul(dt, d);
  const auto flat_cams = cams.to(at::kFloat).reshape({k, n}).contiguous();
  const auto flat_masks = masks.to(at::kFloat).reshape({k, n}).contiguous();
  auto refined = at::empty({k, n}, flat_cams.options());
  for (int64_t c = 0; c < k; ++c) {
    const auto masked = dt * flat_masks[c].reshape({1, n});
    refined[c].copy_(at::matmul(masked, flat_cams[c].reshape({n, 1})).reshape({n}));
  }
  return refined.reshape(cams.sizes());
}

at::Tensor minmax_normalize(const at::Tensor& maps) {
  TORCH_CHECK(maps.dim() >= 1, "minmax_normalize: maps must have a leading class dimension");
  const auto flat = maps.to(at::kFloat).reshape({maps.size(0), -1});
  const auto shifted = flat - std::get<0>(flat.min(1, /*keepdim=*/true));
  // The reference divides by the float64 value 1e-7 + max, which numpy casts to float32.
  const auto peak = std::get<0>(shifted.max(1, /*keepdim=*/true)).to(at::kDouble);
  const auto denominator = peak.add(1e-7).to(at::kFloat);
  return shifted.div(denominator).reshape(maps.sizes());
}

}  // namespace clipes::cam

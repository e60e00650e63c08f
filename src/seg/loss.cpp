#include "clipes/seg/loss.h"

#include <ATen/ATen.h>

#include <cmath>

namespace clipes::seg {

namespace {

/// Per-pixel cross-entropy [N,h,w] (0 on ignored pixels).
at::Tensor pixel_cross_entropy(const at::Tensor& logits, const at::Tensor& labels) {
  TORCH_CHECK(logits.dim() == 4 && labels.dim() == 3 && logits.size(0) == labels.size(0) &&
                  logits.size(2) == labels.size(1) && logits.size(3) == labels.size(2),
              "loss: logits ", logits.sizes(), " and labels ", labels.sizes(), " do not match");
  return at::cross_entropy_loss(logits, labels.to(at::kLong), /*weight=*/{}, at::Reduction::None,
                                kIgnoreLabel);
}

/// Sum of `loss` over `mask` divided by the count, or an empty tensor when the mask is empty.
at::Tensor masked_mean(const at::Tensor& loss, const at::Tensor& mask, bool* present) {
  const at::Tensor count = mask.sum();
  if (present != nullptr) *present = count.item<double>() > 0;
  return (loss * mask).sum() / count.clamp_min(1);
}

at::Tensor source_index(std::int64_t in, std::int64_t out) {
  at::Tensor i = at::arange(out, at::kDouble);
  return ((i + 0.5) * (static_cast<double>(in) / static_cast<double>(out)))
      .floor()
      .clamp_max(static_cast<double>(in - 1))
      .to(at::kLong);
}

}  // namespace

at::Tensor mask_unconfident(const at::Tensor& labels, const at::Tensor& confidence, float mu) {
  TORCH_CHECK(labels.sizes() == confidence.sizes(), "mask_unconfident: labels ", labels.sizes(),
              " and confidence ", confidence.sizes(), " differ");
  return labels.masked_fill(confidence < mu, kIgnoreLabel);
}

at::Tensor mean_cross_entropy(const at::Tensor& logits, const at::Tensor& labels) {
  const at::Tensor loss = pixel_cross_entropy(logits, labels);
  return masked_mean(loss, (labels != kIgnoreLabel).to(loss.scalar_type()), nullptr);
}

at::Tensor class_balanced_cross_entropy(const at::Tensor& logits, const at::Tensor& labels) {
  const at::Tensor loss = pixel_cross_entropy(logits, labels);
  bool has_bg = false;
  bool has_fg = false;
  const at::Tensor bg = masked_mean(loss, (labels == 0).to(loss.scalar_type()), &has_bg);
  const at::Tensor fg =
      masked_mean(loss, ((labels != 0) & (labels != kIgnoreLabel)).to(loss.scalar_type()), &has_fg);
  if (has_bg && has_fg) return (bg + fg) / 2;
  if (has_fg) return fg;
  return bg;  // also the all-ignored case: 0 (with a gradient path, zero everywhere)
}

at::Tensor segmentation_loss(const at::Tensor& logits, const at::Tensor& labels, LossKind kind) {
  return kind == LossKind::kClassBalanced ? class_balanced_cross_entropy(logits, labels)
                                          : mean_cross_entropy(logits, labels);
}

at::Tensor resize_labels_nearest(const at::Tensor& labels, std::int64_t height,
                                 std::int64_t width) {
  TORCH_CHECK(labels.dim() == 2 || labels.dim() == 3,
              "resize_labels_nearest: expected [H,W] or "
              "[N,H,W], got ",
              labels.sizes());
  const std::int64_t in_h = labels.size(-2);
  const std::int64_t in_w = labels.size(-1);
  if (in_h == height && in_w == width) return labels;
  const at::Tensor rows = source_index(in_h, height).to(labels.device());
  const at::Tensor cols = source_index(in_w, width).to(labels.device());
  return labels.index_select(-2, rows).index_select(-1, cols);
}

at::Tensor multi_scale_loss(const std::vector<at::Tensor>& outputs, const at::Tensor& labels,
                            LossKind kind) {
  TORCH_CHECK(!outputs.empty(), "multi_scale_loss: no outputs");
  at::Tensor total;
  for (const auto& logits : outputs) {
    at::Tensor l = segmentation_loss(
        logits, resize_labels_nearest(labels, logits.size(2), logits.size(3)), kind);
    total = total.defined() ? total + l : l;
  }
  return total;
}

}  // namespace clipes::seg

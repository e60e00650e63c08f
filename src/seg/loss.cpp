#include "clipes/seg/loss.h"

#include <ATen/ATen.h>

#include <algorithm>
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

namespace {

/// The (sum, count) terms of one output's loss: cross-entropy one, class-balanced two.
void add_terms(const at::Tensor& logits, const at::Tensor& labels, LossKind kind,
               LossTerms& terms) {
  const at::Tensor loss = pixel_cross_entropy(logits, labels);
  auto add = [&](const at::Tensor& mask) {
    const at::Tensor m = mask.to(loss.scalar_type());
    terms.sums.push_back((loss * m).sum());
    terms.counts.push_back(m.sum().item<double>());
  };
  if (kind == LossKind::kClassBalanced) {
    add(labels == 0);
    add((labels != 0) & (labels != kIgnoreLabel));
  } else {
    add(labels != kIgnoreLabel);
  }
}

/// One output's loss from its terms; T is at::Tensor or double.
template <typename T>
T combine_output(const T* sums, const double* counts, LossKind kind) {
  auto mean = [&](int i) { return sums[i] / std::max(counts[i], 1.0); };
  if (kind != LossKind::kClassBalanced) return mean(0);
  if (counts[0] > 0 && counts[1] > 0) return (mean(0) + mean(1)) / 2;
  if (counts[1] > 0) return mean(1);
  return mean(0);  // also the all-ignored case: 0 (with a gradient path, zero everywhere)
}

template <typename T>
T combine(const std::vector<T>& sums, const std::vector<double>& counts, LossKind kind, T zero) {
  const std::size_t per = kind == LossKind::kClassBalanced ? 2 : 1;
  TORCH_CHECK(!sums.empty() && sums.size() == counts.size() && sums.size() % per == 0,
              "combine_loss_terms: ", sums.size(), " sums and ", counts.size(), " counts");
  T total = zero;
  for (std::size_t i = 0; i < sums.size(); i += per) {
    const T l = combine_output(&sums[i], &counts[i], kind);
    total = i == 0 ? l : total + l;
  }
  return total;
}

}  // namespace

LossTerms multi_scale_loss_terms(const std::vector<at::Tensor>& outputs, const at::Tensor& labels,
                                 LossKind kind) {
  TORCH_CHECK(!outputs.empty(), "multi_scale_loss: no outputs");
  LossTerms terms;
  for (const auto& logits : outputs) {
    add_terms(logits, resize_labels_nearest(labels, logits.size(2), logits.size(3)), kind, terms);
  }
  return terms;
}

at::Tensor combine_loss_terms(const std::vector<at::Tensor>& sums,
                              const std::vector<double>& counts, LossKind kind) {
  return combine(sums, counts, kind, at::Tensor());
}

double combine_loss_terms(const std::vector<double>& sums, const std::vector<double>& counts,
                          LossKind kind) {
  return combine(sums, counts, kind, 0.0);
}

at::Tensor segmentation_loss(const at::Tensor& logits, const at::Tensor& labels, LossKind kind) {
  LossTerms terms;
  add_terms(logits, labels, kind, terms);
  return combine_loss_terms(terms.sums, terms.counts, kind);
}

at::Tensor mean_cross_entropy(const at::Tensor& logits, const at::Tensor& labels) {
  return segmentation_loss(logits, labels, LossKind::kCrossEntropy);
}

at::Tensor class_balanced_cross_entropy(const at::Tensor& logits, const at::Tensor& labels) {
  return segmentation_loss(logits, labels, LossKind::kClassBalanced);
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
  const LossTerms terms = multi_scale_loss_terms(outputs, labels, kind);
  return combine_loss_terms(terms.sums, terms.counts, kind);
}

}  // namespace clipes::seg

#pragma once
/// Losses of the segmentation model (spec §8): cross-entropy on the labelled pixels, the
/// confidence-guided loss (CGL: pixels whose pseudo-mask confidence is below μ do not count) and
/// the class-balanced cross-entropy of the COCO recipe. Labels use 255 for "ignore".

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "clipes/data/mask_files.h"
#include "clipes/seg/seg_config.h"

namespace clipes::seg {

constexpr std::int64_t kIgnoreLabel = data::kIgnoreLabel;

/// CGL's mask: labels with every pixel whose confidence is below `mu` set to 255.
/// labels: [..., H, W] integer; confidence: same shape, on the scale of `mu` (float in [0, 1], or
/// the 16-bit integers of a confidence PNG with mu = round(μ * 65535)). Returns labels' dtype.
at::Tensor mask_unconfident(const at::Tensor& labels, const at::Tensor& confidence, float mu);

/// Mean cross-entropy over the pixels whose label is not 255 (0 when there are none, never NaN).
/// logits: [N,C,h,w] float32; labels: [N,h,w] int64 on the logits' device, values 0..C-1 or 255.
at::Tensor mean_cross_entropy(const at::Tensor& logits, const at::Tensor& labels);

/// Class-balanced cross-entropy: (mean over background pixels + mean over foreground pixels) / 2,
/// where background is label 0 and foreground any other label except 255. A batch without
/// foreground (or without background) uses the mean of the group that is present (the Python
/// recipe divides 0 by 0 there and turns NaN); no labelled pixel at all gives 0.
at::Tensor class_balanced_cross_entropy(const at::Tensor& logits, const at::Tensor& labels);

at::Tensor segmentation_loss(const at::Tensor& logits, const at::Tensor& labels, LossKind kind);

/// Nearest-neighbour resize of a label map with pixel-centre alignment (as PIL's NEAREST, which
/// the Python recipe uses): source index floor((i + 0.5) * in / out). labels: [N,H,W] or [H,W].
at::Tensor resize_labels_nearest(const at::Tensor& labels, std::int64_t height, std::int64_t width);

/// The MSC training loss: the sum over the outputs of DeepLabImpl::forward_all of the loss against
/// the labels resized (nearest) to each output's size. labels: [N,H,W] int64.
at::Tensor multi_scale_loss(const std::vector<at::Tensor>& outputs, const at::Tensor& labels,
                            LossKind kind);

/// multi_scale_loss taken apart so that ranks of a data-parallel step can add up their shares:
/// the loss of each output is a function of summed pixel losses and the pixel counts they are
/// divided by (cross-entropy: one (sum, count) per output; class-balanced: background then
/// foreground per output). With the counts of the whole global batch, the sum over the ranks of
/// combine_loss_terms(local sums, global counts) is the loss of the global batch.
struct LossTerms {
  std::vector<at::Tensor> sums;  ///< scalar tensors, with their gradient paths
  std::vector<double> counts;    ///< labelled pixels each sum is over
};
LossTerms multi_scale_loss_terms(const std::vector<at::Tensor>& outputs, const at::Tensor& labels,
                                 LossKind kind);

/// The loss from the terms' sums (tensors or plain numbers) and counts: for each output the sum
/// over its count (count 0: the term is dropped as in class_balanced_cross_entropy), summed.
at::Tensor combine_loss_terms(const std::vector<at::Tensor>& sums,
                              const std::vector<double>& counts, LossKind kind);
double combine_loss_terms(const std::vector<double>& sums, const std::vector<double>& counts,
                          LossKind kind);

}  // namespace clipes::seg

#pragma once
/// Confusion matrices and the scores of the WSSS literature's evaluation code (the `scores()` of
/// deeplab-pytorch / CLIP-ES, spec §6): pixel accuracy, mean class accuracy, per-class IoU, mIoU
/// as the nanmean of the defined IoUs, frequency-weighted IoU, plus per-class precision/recall.

#include <cstdint>
#include <opencv2/core/mat.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clipes/core/config_fields.h"
#include "clipes/data/mask_files.h"

namespace clipes::eval {

/// The label value that means "ignore" in ground truth and "no prediction" in predictions.
inline constexpr int kIgnoreLabel = data::kIgnoreLabel;
/// The most classes (background included) 8-bit label maps can hold: ids 0..254.
inline constexpr int kMaxClasses = 255;

/// What a predicted value of 255 (a pixel the method left unlabelled) counts as.
enum class PredIgnore {
  kExclude,     ///< left out of the matrix, reported through the coverage
  kBackground,  ///< counted as a prediction of background (id 0)
};
constexpr auto enum_names(PredIgnore) {
  return config::EnumNames<PredIgnore, 2>{
      {{"exclude", PredIgnore::kExclude}, {"background", PredIgnore::kBackground}}};
}

/// n x n pixel counts: row = ground-truth class, column = predicted class (the reference's `hist`).
struct ConfusionMatrix {
  int n = 0;
  std::vector<std::int64_t> counts;  ///< [n * n], row-major

  ConfusionMatrix() = default;
  explicit ConfusionMatrix(int classes);
  std::int64_t at(int gt, int pred) const {
    return counts[static_cast<std::size_t>(gt) * n + pred];
  }
  void add(int gt, int pred, std::int64_t count = 1) {
    counts[static_cast<std::size_t>(gt) * n + pred] += count;
  }
  std::int64_t total() const;
};

/// How many ground-truth pixels that count (label < n) carry a prediction (value != 255).
struct Coverage {
  std::int64_t gt_valid = 0;   ///< GT pixels with a label < n
  std::int64_t predicted = 0;  ///< of those, pixels whose prediction is not 255
  /// predicted / gt_valid (NaN when there is no valid GT pixel).
  double fraction() const;
};

/// Counts of every (GT byte value, predicted byte value) pair, so that the number of classes and
/// the meaning of 255 can be chosen after a pass over the data. Cheap to merge across threads.
class JointHistogram {
 public:
  JointHistogram();
  /// Adds one image. gt, pred: CV_8UC1 of the same size (checked by the caller).
  void add(const cv::Mat& gt, const cv::Mat& pred);
  /// Adds one image whose every pixel is predicted as `pred_value` (a missing prediction).
  void add_constant(const cv::Mat& gt, int pred_value);
  void merge(const JointHistogram& other);
  std::int64_t count(int gt, int pred) const { return counts_[(gt << 8) | pred]; }

  /// The reference's matrix over GT pixels with label < n: predictions of 255 handled per
  /// `pred_ignore`. Throws clipes::Error if a counted pixel has a prediction in [n, 255).
  ConfusionMatrix confusion(int n, PredIgnore pred_ignore) const;
  Coverage coverage(int n) const;
  /// Largest GT / predicted value other than 255 (-1 when there is none).
  int max_gt_value() const;
  int max_pred_value() const;

 private:
  std::vector<std::int64_t> counts_;  // [256 * 256], index (gt << 8) | pred
};

/// Scores of one class. NaN marks an undefined ratio (0 / 0), as NumPy gives.
struct ClassScores {
  double iou = 0;        ///< tp / (gt_pixels + pred_pixels - tp)
  double precision = 0;  ///< tp / pred_pixels
  double recall = 0;     ///< tp / gt_pixels (the reference's per-class accuracy)
  std::int64_t gt_pixels = 0;
  std::int64_t pred_pixels = 0;
  std::int64_t true_positives = 0;
};

/// The reference's scores() of a confusion matrix (NaN where NumPy gives NaN).
struct Scores {
  double pixel_accuracy = 0;         ///< diag.sum() / hist.sum()
  double mean_accuracy = 0;          ///< nanmean(recall)
  double mean_iou = 0;               ///< nanmean(iou): over `counted`
  double fw_iou = 0;                 ///< sum over classes with GT pixels of freq * iou
  std::int64_t pixels = 0;           ///< hist.sum()
  std::vector<ClassScores> classes;  ///< [n]
  /// Classes in the mIoU: those with GT or predicted pixels (IoU defined).
  std::vector<int> counted;
  /// Classes predicted but absent from the GT: in the mIoU with IoU 0.
  std::vector<int> predicted_not_in_gt;
  /// Classes with neither GT nor predicted pixels: IoU NaN, left out of the mIoU.
  std::vector<int> absent;
  /// Mean IoU over the classes that occur in the GT only (differs from mean_iou exactly when
  /// predicted_not_in_gt is not empty): CLIP-ES's own evaluation's definition.
  double mean_iou_gt_classes = 0;
};

Scores compute_scores(const ConfusionMatrix& matrix);

/// The two mIoU definitions of the literature; reports give both, each named, and one headline.
enum class MiouDefinition {
  kGtOrPred,  ///< "gt-or-pred": nanmean over classes with GT or predicted pixels (Scores::mean_iou)
  kGt,        ///< "gt": mean over classes with GT pixels (Scores::mean_iou_gt_classes)
};
constexpr auto enum_names(MiouDefinition) {
  return config::EnumNames<MiouDefinition, 2>{
      {{"gt-or-pred", MiouDefinition::kGtOrPred}, {"gt", MiouDefinition::kGt}}};
}
/// "gt-or-pred", "gt".
inline std::string_view to_string(MiouDefinition definition) {
  return config::enum_name(definition);
}
/// What it averages and whose definition it is, for reports.
std::string_view describe(MiouDefinition definition);
/// The mIoU of `scores` under `definition`.
double mean_iou(const Scores& scores, MiouDefinition definition);

}  // namespace clipes::eval

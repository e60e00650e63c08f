#include "clipes/eval/confusion.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "clipes/core/error.h"

namespace clipes::eval {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double ratio(std::int64_t num, std::int64_t den) {
  return den == 0 ? kNaN : static_cast<double>(num) / static_cast<double>(den);
}

// NumPy's nanmean: the mean of the non-NaN entries, NaN when there is none.
double nanmean(const std::vector<double>& values) {
  double sum = 0;
  int count = 0;
  for (double v : values) {
    if (std::isnan(v)) continue;
    sum += v;
    ++count;
  }
  return count == 0 ? kNaN : sum / count;
}

}  // namespace

ConfusionMatrix::ConfusionMatrix(int classes)
    : n(classes), counts(static_cast<std::size_t>(classes) * classes, 0) {}

std::int64_t ConfusionMatrix::total() const {
  std::int64_t sum = 0;
  for (std::int64_t c : counts) sum += c;
  return sum;
}

double Coverage::fraction() const { return ratio(predicted, gt_valid); }

JointHistogram::JointHistogram() : counts_(256 * 256, 0) {}

void JointHistogram::add(const cv::Mat& gt, const cv::Mat& pred) {
  // Label maps are mostly long runs of one (gt, pred) pair: counting runs avoids incrementing
  // the same counter back to back, which would stall on the store of the previous increment.
  std::int64_t* counts = counts_.data();
  for (int y = 0; y < gt.rows; ++y) {
    const std::uint8_t* g = gt.ptr<std::uint8_t>(y);
    const std::uint8_t* p = pred.ptr<std::uint8_t>(y);
    int key = (g[0] << 8) | p[0];
    std::int64_t run = 0;
    for (int x = 0; x < gt.cols; ++x) {
      const int k = (g[x] << 8) | p[x];
      if (k != key) {
        counts[key] += run;
        key = k;
        run = 0;
      }
      ++run;
    }
    counts[key] += run;
  }
}

void JointHistogram::add_constant(const cv::Mat& gt, int pred_value) {
  std::int64_t row_counts[256] = {};
  for (int y = 0; y < gt.rows; ++y) {
    const std::uint8_t* g = gt.ptr<std::uint8_t>(y);
    for (int x = 0; x < gt.cols; ++x) ++row_counts[g[x]];
  }
  for (int v = 0; v < 256; ++v) counts_[(v << 8) | pred_value] += row_counts[v];
}

void JointHistogram::merge(const JointHistogram& other) {
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
}

ConfusionMatrix JointHistogram::confusion(int n, PredIgnore pred_ignore) const {
  if (n < 1 || n > kMaxClasses) {
    throw Error(fmt::format("the number of classes must be in 1..{}, got {}", kMaxClasses, n));
  }
  ConfusionMatrix matrix(n);
  for (int g = 0; g < n; ++g) {
    for (int p = 0; p < 256; ++p) {
      const std::int64_t c = count(g, p);
      if (c == 0) continue;
      if (p < n) {
        matrix.add(g, p, c);
      } else if (p == kIgnoreLabel) {
        if (pred_ignore == PredIgnore::kBackground) matrix.add(g, 0, c);
      } else {
        throw Error(fmt::format(
            "{} pixels are predicted as {}, beyond the {} classes (0..{}, 255 = no prediction)", c,
            p, n, n - 1));
      }
    }
  }
  return matrix;
}

Coverage JointHistogram::coverage(int n) const {
  Coverage coverage;
  for (int g = 0; g < n && g < 256; ++g) {
    for (int p = 0; p < 256; ++p) {
      coverage.gt_valid += count(g, p);
      if (p != kIgnoreLabel) coverage.predicted += count(g, p);
    }
  }
  return coverage;
}

int JointHistogram::max_gt_value() const {
  for (int g = kIgnoreLabel - 1; g >= 0; --g) {
    for (int p = 0; p < 256; ++p) {
      if (count(g, p) != 0) return g;
    }
  }
  return -1;
}

int JointHistogram::max_pred_value() const {
  for (int p = kIgnoreLabel - 1; p >= 0; --p) {
    for (int g = 0; g < 256; ++g) {
      if (count(g, p) != 0) return p;
    }
  }
  return -1;
}

Scores compute_scores(const ConfusionMatrix& matrix) {
  const int n = matrix.n;
  Scores s;
  s.classes.resize(static_cast<std::size_t>(n));
  std::int64_t diagonal = 0;
  for (int g = 0; g < n; ++g) {
    for (int p = 0; p < n; ++p) {
      const std::int64_t c = matrix.at(g, p);
      s.pixels += c;
      s.classes[g].gt_pixels += c;
      s.classes[p].pred_pixels += c;
    }
    s.classes[g].true_positives = matrix.at(g, g);
    diagonal += matrix.at(g, g);
  }
  std::vector<double> recalls(n), ious(n), ious_gt(n, kNaN);
  for (int k = 0; k < n; ++k) {
    ClassScores& c = s.classes[k];
    c.recall = ratio(c.true_positives, c.gt_pixels);
    c.precision = ratio(c.true_positives, c.pred_pixels);
    c.iou = ratio(c.true_positives, c.gt_pixels + c.pred_pixels - c.true_positives);
    recalls[k] = c.recall;
    ious[k] = c.iou;
    if (std::isnan(c.iou)) {
      s.absent.push_back(k);
    } else {
      s.counted.push_back(k);
      if (c.gt_pixels == 0) s.predicted_not_in_gt.push_back(k);
    }
    if (c.gt_pixels > 0) ious_gt[k] = c.iou;
  }
  s.pixel_accuracy = ratio(diagonal, s.pixels);
  s.mean_accuracy = nanmean(recalls);
  s.mean_iou = nanmean(ious);
  s.mean_iou_gt_classes = nanmean(ious_gt);
  // freq = hist.sum(axis=1) / hist.sum(); fwavacc = (freq[freq > 0] * iu[freq > 0]).sum(), which
  // is 0 for an empty matrix (every freq is NaN there).
  s.fw_iou = 0.0;
  for (int k = 0; k < n; ++k) {
    if (s.classes[k].gt_pixels == 0) continue;
    const double freq = static_cast<double>(s.classes[k].gt_pixels) / static_cast<double>(s.pixels);
    s.fw_iou += freq * ious[k];
  }
  return s;
}

std::string_view describe(MiouDefinition definition) {
  return definition == MiouDefinition::kGt
             ? "mean over classes with GT pixels (CLIP-ES's own eval)"
             : "nanmean over classes with GT or predicted pixels (deeplab-pytorch scores())";
}

double mean_iou(const Scores& scores, MiouDefinition definition) {
  return definition == MiouDefinition::kGt ? scores.mean_iou_gt_classes : scores.mean_iou;
}

}  // namespace clipes::eval

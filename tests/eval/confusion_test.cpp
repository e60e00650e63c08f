#include "clipes/eval/confusion.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "clipes/core/error.h"

namespace clipes::eval {
namespace {

cv::Mat mask(int rows, int cols, std::initializer_list<int> values) {
  cv::Mat m(rows, cols, CV_8UC1);
  auto it = values.begin();
  for (int y = 0; y < rows; ++y)
    for (int x = 0; x < cols; ++x) m.at<std::uint8_t>(y, x) = static_cast<std::uint8_t>(*it++);
  return m;
}

void expect_same(double expected, double got, const std::string& what, double tol = 1e-12) {
  if (std::isnan(expected)) {
    EXPECT_TRUE(std::isnan(got)) << what << ": expected NaN, got " << got;
  } else {
    EXPECT_NEAR(got, expected, tol) << what;
  }
}

// (gt, pred) pairs, counted by hand below:
//   (0,0) (0,1)   (1,1)   (1,1)
//   (0,0) (255,0) (1,255) (2,2)
//   (2,2) (2,0)   (255,3) (0,3)
const cv::Mat kGt = mask(3, 4, {0, 0, 1, 1, 0, 255, 1, 2, 2, 2, 255, 0});
const cv::Mat kPred = mask(3, 4, {0, 1, 1, 1, 0, 0, 255, 2, 2, 0, 3, 3});

TEST(JointHistogram, HandCountedMatrixLeavesOutIgnoreAndUnpredictedPixels) {
  JointHistogram h;
  h.add(kGt, kPred);
  const ConfusionMatrix m = h.confusion(5, PredIgnore::kExclude);
  const std::vector<std::int64_t> expected = {2, 1, 0, 1, 0,   // gt 0
                                              0, 2, 0, 0, 0,   // gt 1 (its 255 prediction left out)
                                              1, 0, 2, 0, 0,   // gt 2
                                              0, 0, 0, 0, 0,   // gt 3: predicted once, never in GT
                                              0, 0, 0, 0, 0};  // gt 4: absent from both
  EXPECT_EQ(m.counts, expected);
  const Coverage c = h.coverage(5);
  EXPECT_EQ(c.gt_valid, 10);
  EXPECT_EQ(c.predicted, 9);
  EXPECT_DOUBLE_EQ(c.fraction(), 0.9);
}

TEST(ComputeScores, HandCountedScoresFollowTheReferenceNanmean) {
  JointHistogram h;
  h.add(kGt, kPred);
  const Scores s = compute_scores(h.confusion(5, PredIgnore::kExclude));
  EXPECT_EQ(s.pixels, 9);
  expect_same(6.0 / 9, s.pixel_accuracy, "pixel accuracy");
  expect_same((2.0 / 4 + 2.0 / 2 + 2.0 / 3) / 3, s.mean_accuracy, "mean accuracy");
  expect_same(2.0 / 5, s.classes[0].iou, "iou 0");
  expect_same(2.0 / 3, s.classes[1].iou, "iou 1");
  expect_same(2.0 / 3, s.classes[2].iou, "iou 2");
  expect_same(0.0, s.classes[3].iou, "iou 3 (predicted, not in GT)");
  expect_same(NAN, s.classes[4].iou, "iou 4 (absent)");
  // nanmean: class 3 counts with IoU 0, class 4 is left out.
  expect_same((2.0 / 5 + 2.0 / 3 + 2.0 / 3 + 0.0) / 4, s.mean_iou, "mIoU");
  expect_same((2.0 / 5 + 2.0 / 3 + 2.0 / 3) / 3, s.mean_iou_gt_classes, "mIoU over GT classes");
  expect_same(4.0 / 9 * 2 / 5 + 2.0 / 9 * 2 / 3 + 3.0 / 9 * 2 / 3, s.fw_iou, "fwIoU");
  expect_same(2.0 / 3, s.classes[0].precision, "precision 0");
  expect_same(1.0, s.classes[2].precision, "precision 2");
  expect_same(0.0, s.classes[3].precision, "precision 3");
  expect_same(NAN, s.classes[3].recall, "recall 3");
  expect_same(NAN, s.classes[4].precision, "precision 4");
  EXPECT_EQ(s.counted, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(s.predicted_not_in_gt, (std::vector<int>{3}));
  EXPECT_EQ(s.absent, (std::vector<int>{4}));
  EXPECT_EQ(s.classes[0].gt_pixels, 4);
  EXPECT_EQ(s.classes[0].pred_pixels, 3);
  EXPECT_EQ(s.classes[0].true_positives, 2);
}

TEST(JointHistogram, UnpredictedPixelsCanCountAsBackground) {
  JointHistogram h;
  h.add(kGt, kPred);
  const ConfusionMatrix m = h.confusion(5, PredIgnore::kBackground);
  EXPECT_EQ(m.at(1, 0), 1);  // the (1, 255) pixel
  EXPECT_EQ(m.total(), 10);
  const Scores s = compute_scores(m);
  expect_same(6.0 / 10, s.pixel_accuracy, "pixel accuracy");
  expect_same(2.0 / (4 + 4 - 2), s.classes[0].iou, "iou 0");
  expect_same(2.0 / (3 + 3 - 2), s.classes[1].iou, "iou 1");
  EXPECT_EQ(h.coverage(5).predicted, 9);  // coverage still says what was predicted
}

TEST(JointHistogram, EmptyPredictionsGiveNaNScoresAndZeroCoverage) {
  const cv::Mat gt = mask(2, 3, {0, 1, 1, 2, 255, 0});
  const cv::Mat none(2, 3, CV_8UC1, cv::Scalar(255));
  JointHistogram h;
  h.add(gt, none);
  const ConfusionMatrix m = h.confusion(3, PredIgnore::kExclude);
  EXPECT_EQ(m.total(), 0);
  const Scores s = compute_scores(m);
  expect_same(NAN, s.pixel_accuracy, "pixel accuracy");
  expect_same(NAN, s.mean_accuracy, "mean accuracy");
  expect_same(NAN, s.mean_iou, "mIoU");
  expect_same(0.0, s.fw_iou, "fwIoU of an empty matrix (numpy: empty sum)");
  EXPECT_TRUE(s.counted.empty());
  EXPECT_EQ(h.coverage(3).gt_valid, 5);
  EXPECT_EQ(h.coverage(3).predicted, 0);
  EXPECT_DOUBLE_EQ(h.coverage(3).fraction(), 0.0);
  // As background: GT background right, everything else wrong.
  const Scores b = compute_scores(h.confusion(3, PredIgnore::kBackground));
  expect_same(2.0 / 5, b.pixel_accuracy, "pixel accuracy");
  expect_same((2.0 / 5 + 0 + 0) / 3, b.mean_iou, "mIoU");
}

TEST(JointHistogram, AddConstantEqualsAddingAConstantImage) {
  JointHistogram a, b;
  a.add_constant(kGt, 0);
  b.add(kGt, cv::Mat(kGt.size(), CV_8UC1, cv::Scalar(0)));
  EXPECT_EQ(a.confusion(4, PredIgnore::kExclude).counts,
            b.confusion(4, PredIgnore::kExclude).counts);
  EXPECT_EQ(a.count(255, 0), 2);
}

TEST(JointHistogram, MergeSumsAndMaxValuesSkipIgnore) {
  JointHistogram a, b;
  a.add(kGt, kPred);
  b.add(kGt, kPred);
  a.merge(b);
  EXPECT_EQ(a.confusion(5, PredIgnore::kExclude).at(0, 0), 4);
  EXPECT_EQ(a.max_gt_value(), 2);
  EXPECT_EQ(a.max_pred_value(), 3);
  EXPECT_EQ(JointHistogram().max_gt_value(), -1);
}

TEST(JointHistogram, PredictionBeyondTheClassesIsAnError) {
  JointHistogram h;
  h.add(kGt, kPred);
  try {
    h.confusion(3, PredIgnore::kExclude);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("predicted as 3, beyond the 3 classes"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(h.confusion(0, PredIgnore::kExclude), Error);
  EXPECT_THROW(h.confusion(256, PredIgnore::kExclude), Error);
}

// ---- random masks against a straightforward transcription of the reference ---------------------

struct Reference {
  double acc, acc_cls, mean_iu, fwavacc;
  std::vector<double> iu;
};

// The reference's scores() written out over a dense hist of doubles, as NumPy evaluates it.
Reference reference_scores(const std::vector<cv::Mat>& gts, const std::vector<cv::Mat>& preds,
                           int n) {
  std::vector<std::vector<double>> hist(n, std::vector<double>(n, 0.0));
  for (std::size_t i = 0; i < gts.size(); ++i) {
    for (int y = 0; y < gts[i].rows; ++y) {
      for (int x = 0; x < gts[i].cols; ++x) {
        const int t = gts[i].at<std::uint8_t>(y, x);
        const int p = preds[i].at<std::uint8_t>(y, x);
        if (t >= 0 && t < n) hist[t][p] += 1;  // mask = (gt >= 0) & (gt < n)
      }
    }
  }
  double diag = 0, total = 0;
  std::vector<double> row(n, 0), col(n, 0);
  for (int a = 0; a < n; ++a) {
    diag += hist[a][a];
    for (int b = 0; b < n; ++b) {
      total += hist[a][b];
      row[a] += hist[a][b];
      col[b] += hist[a][b];
    }
  }
  Reference r;
  r.acc = diag / total;
  double sum_cls = 0, sum_iu = 0;
  int n_cls = 0, n_iu = 0;
  r.iu.resize(n);
  for (int k = 0; k < n; ++k) {
    const double cls = hist[k][k] / row[k];
    if (!std::isnan(cls)) sum_cls += cls, ++n_cls;
    r.iu[k] = hist[k][k] / (row[k] + col[k] - hist[k][k]);
    if (!std::isnan(r.iu[k])) sum_iu += r.iu[k], ++n_iu;
  }
  r.acc_cls = sum_cls / n_cls;
  r.mean_iu = sum_iu / n_iu;
  r.fwavacc = 0;
  for (int k = 0; k < n; ++k) {
    const double freq = row[k] / total;
    if (freq > 0) r.fwavacc += freq * r.iu[k];
  }
  return r;
}

TEST(ComputeScores, EqualsTheReferenceFormulasOnRandomMasks) {
  std::mt19937 rng(1234);
  for (int n : {2, 5, 21, 81}) {
    for (int trial = 0; trial < 3; ++trial) {
      // A few classes never occur in the GT, a few never in the predictions.
      std::uniform_int_distribution<int> gt_value(0, std::max(1, n - 3)), pred_value(0, n - 1),
          size(5, 60), coin(0, 19);
      std::vector<cv::Mat> gts, preds;
      JointHistogram h;
      for (int image = 0; image < 4; ++image) {
        cv::Mat gt(size(rng), size(rng), CV_8UC1), pred(gt.size(), CV_8UC1);
        for (int y = 0; y < gt.rows; ++y) {
          for (int x = 0; x < gt.cols; ++x) {
            const bool agree = coin(rng) < 12;
            const int g = coin(rng) == 0 ? 255 : gt_value(rng);
            gt.at<std::uint8_t>(y, x) = static_cast<std::uint8_t>(g);
            int p = agree && g != 255 ? g : pred_value(rng);
            if (p == n - 2 && n > 3) p = 0;  // class n-2 never predicted
            pred.at<std::uint8_t>(y, x) = static_cast<std::uint8_t>(p);
          }
        }
        gts.push_back(gt);
        preds.push_back(pred);
        h.add(gt, pred);
      }
      const Scores s = compute_scores(h.confusion(n, PredIgnore::kExclude));
      const Reference r = reference_scores(gts, preds, n);
      const std::string what = "n=" + std::to_string(n) + " trial " + std::to_string(trial);
      expect_same(r.acc, s.pixel_accuracy, what + " acc", 1e-9);
      expect_same(r.acc_cls, s.mean_accuracy, what + " acc_cls", 1e-9);
      expect_same(r.mean_iu, s.mean_iou, what + " mean_iu", 1e-9);
      expect_same(r.fwavacc, s.fw_iou, what + " fwavacc", 1e-9);
      for (int k = 0; k < n; ++k) {
        expect_same(r.iu[k], s.classes[k].iou, what + " iu " + std::to_string(k), 1e-9);
      }
    }
  }
}

}  // namespace
}  // namespace clipes::eval

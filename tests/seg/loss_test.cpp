#include "clipes/seg/loss.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

namespace clipes::seg {
namespace {

/// -log softmax(logits[n,:,y,x])[label], in double, by hand.
double pixel_ce(const at::Tensor& logits, std::int64_t n, std::int64_t y, std::int64_t x,
                std::int64_t label) {
  auto a = logits.accessor<float, 4>();
  double max = -1e30;
  for (std::int64_t c = 0; c < logits.size(1); ++c)
    max = std::max(max, static_cast<double>(a[n][c][y][x]));
  double sum = 0;
  for (std::int64_t c = 0; c < logits.size(1); ++c) sum += std::exp(a[n][c][y][x] - max);
  return std::log(sum) + max - a[n][label][y][x];
}

struct Case {
  at::Tensor logits;      // [2,4,3,5]
  at::Tensor labels;      // [2,3,5]
  at::Tensor confidence;  // [2,3,5]
};

Case make_case(std::uint64_t seed) {
  at::manual_seed(seed);
  Case c;
  c.logits = at::randn({2, 4, 3, 5}) * 3;
  c.labels = at::randint(0, 4, {2, 3, 5}, at::kLong);
  c.labels.index_put_({0, 0, 1}, 255);
  c.labels.index_put_({1, 2, 4}, 255);
  c.confidence = at::rand({2, 3, 5});
  return c;
}

TEST(Loss, CglEqualsHandComputedMaskedCrossEntropy) {
  const Case c = make_case(1);
  const float mu = 0.6f;
  double sum = 0;
  int count = 0;
  auto lab = c.labels.accessor<std::int64_t, 3>();
  auto conf = c.confidence.accessor<float, 3>();
  for (std::int64_t n = 0; n < 2; ++n) {
    for (std::int64_t y = 0; y < 3; ++y) {
      for (std::int64_t x = 0; x < 5; ++x) {
        if (lab[n][y][x] == 255 || conf[n][y][x] < mu) continue;
        sum += pixel_ce(c.logits, n, y, x, lab[n][y][x]);
        ++count;
      }
    }
  }
  ASSERT_GT(count, 5);
  ASSERT_LT(count, 28);  // some pixels are really left out
  const at::Tensor masked = mask_unconfident(c.labels, c.confidence, mu);
  EXPECT_NEAR(mean_cross_entropy(c.logits, masked).item<double>(), sum / count, 1e-5);
  // mu = 0 keeps every labelled pixel.
  const at::Tensor all = mask_unconfident(c.labels, c.confidence, 0.0f);
  EXPECT_TRUE(at::equal(all, c.labels));
}

TEST(Loss, MaskUnconfidentSetsExactlyTheLowPixelsTo255) {
  const at::Tensor labels = at::tensor({1, 2, 3, 0}, at::kLong);
  const at::Tensor confidence = at::tensor({0.96f, 0.95f, 0.94f, 0.2f});
  const at::Tensor out = mask_unconfident(labels, confidence, 0.95f);
  EXPECT_TRUE(at::equal(out, at::tensor({1, 2, 255, 255}, at::kLong)));
}

TEST(Loss, CrossEntropyWithEveryPixelIgnoredIsZeroNotNan) {
  const at::Tensor logits = at::randn({1, 3, 2, 2}).requires_grad_(true);
  const at::Tensor labels = at::full({1, 2, 2}, 255, at::kLong);
  const at::Tensor loss = mean_cross_entropy(logits, labels);
  EXPECT_EQ(loss.item<double>(), 0.0);
  loss.backward();
  EXPECT_EQ(logits.grad().abs().sum().item<double>(), 0.0);
}

TEST(Loss, ClassBalancedIsTheMeanOfBackgroundAndForegroundMeans) {
  const Case c = make_case(2);
  double bg = 0;
  double fg = 0;
  int nbg = 0;
  int nfg = 0;
  auto lab = c.labels.accessor<std::int64_t, 3>();
  for (std::int64_t n = 0; n < 2; ++n) {
    for (std::int64_t y = 0; y < 3; ++y) {
      for (std::int64_t x = 0; x < 5; ++x) {
        const std::int64_t l = lab[n][y][x];
        if (l == 255) continue;
        (l == 0 ? bg : fg) += pixel_ce(c.logits, n, y, x, l);
        ++(l == 0 ? nbg : nfg);
      }
    }
  }
  ASSERT_GT(nbg, 0);
  ASSERT_GT(nfg, 0);
  EXPECT_NEAR(class_balanced_cross_entropy(c.logits, c.labels).item<double>(),
              (bg / nbg + fg / nfg) / 2, 1e-5);
}

TEST(Loss, ClassBalancedWithoutForegroundDoesNotNan) {
  const Case c = make_case(3);
  at::Tensor labels = c.labels.clone();
  labels.masked_fill_(labels != 255, 0);  // background and ignore only
  const at::Tensor logits = c.logits.clone().requires_grad_(true);
  const at::Tensor loss = class_balanced_cross_entropy(logits, labels);
  ASSERT_TRUE(std::isfinite(loss.item<double>()));
  EXPECT_NEAR(loss.item<double>(), mean_cross_entropy(c.logits, labels).item<double>(), 1e-6);
  loss.backward();
  EXPECT_TRUE(at::isfinite(logits.grad()).all().item<bool>());
  // The Python recipe's formula (sum / count per group) divides 0 by 0 here.
  const at::Tensor fg_mask = ((labels != 0) & (labels != 255)).to(at::kFloat);
  EXPECT_TRUE(std::isnan((fg_mask.sum() / fg_mask.sum()).item<double>()));
  // No background: the foreground mean; nothing labelled: 0.
  at::Tensor fg_only = c.labels.clone();
  fg_only.masked_fill_(fg_only == 0, 1);
  EXPECT_NEAR(class_balanced_cross_entropy(c.logits, fg_only).item<double>(),
              mean_cross_entropy(c.logits, fg_only).item<double>(), 1e-6);
  EXPECT_EQ(
      class_balanced_cross_entropy(c.logits, at::full({2, 3, 5}, 255, at::kLong)).item<double>(),
      0.0);
}

TEST(Loss, NearestLabelResizeUsesPixelCentres) {
  // PIL NEAREST: source index floor((i + 0.5) * in / out).
  const at::Tensor row = at::arange(4, at::kLong).view({1, 4});
  EXPECT_TRUE(
      at::equal(resize_labels_nearest(row, 1, 2), at::tensor({1, 3}, at::kLong).view({1, 2})));
  const at::Tensor three = at::arange(3, at::kLong).view({1, 3});
  EXPECT_TRUE(at::equal(resize_labels_nearest(three, 1, 5),
                        at::tensor({0, 0, 1, 2, 2}, at::kLong).view({1, 5})));
  const at::Tensor grid = at::arange(12, at::kLong).view({1, 3, 4});
  const at::Tensor out = resize_labels_nearest(grid, 2, 2);
  // rows floor((0.5, 1.5) * 1.5) = (0, 2); cols floor((0.5, 1.5) * 2) = (1, 3).
  EXPECT_TRUE(at::equal(out, at::tensor({1, 3, 9, 11}, at::kLong).view({1, 2, 2})));
}

TEST(Loss, MultiScaleLossSumsEveryOutputAgainstResizedLabels) {
  at::manual_seed(4);
  const at::Tensor labels = at::randint(0, 3, {2, 9, 9}, at::kLong);
  const std::vector<at::Tensor> outs{at::randn({2, 3, 9, 9}), at::randn({2, 3, 5, 5}),
                                     at::randn({2, 3, 7, 7}), at::randn({2, 3, 9, 9})};
  double expected = 0;
  for (const auto& o : outs) {
    expected +=
        mean_cross_entropy(o, resize_labels_nearest(labels, o.size(2), o.size(3))).item<double>();
  }
  EXPECT_NEAR(multi_scale_loss(outs, labels, LossKind::kCrossEntropy).item<double>(), expected,
              1e-5);
}

}  // namespace
}  // namespace clipes::seg

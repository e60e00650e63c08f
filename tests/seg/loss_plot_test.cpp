#include "clipes/seg/loss_plot.h"

#include <gtest/gtest.h>

#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "support/test_support.h"

namespace clipes::seg {
namespace {

int count_colour(const cv::Mat& img, cv::Vec3b colour) {
  int n = 0;
  for (int y = 0; y < img.rows; ++y) {
    for (int x = 0; x < img.cols; ++x) n += img.at<cv::Vec3b>(y, x) == colour ? 1 : 0;
  }
  return n;
}

TEST(LossPlot, DrawsAxesAndBothCurves) {
  std::vector<HistoryRow> history;
  for (int i = 1; i <= 500; ++i)
    history.push_back({i, 2.0 * std::exp(-i / 100.0) + 0.1 * (i % 7) / 7.0, 1e-3, 0.1});
  const cv::Mat img = draw_loss_plot(history, 900, 520);
  ASSERT_EQ(img.size(), cv::Size(900, 520));
  ASSERT_EQ(img.type(), CV_8UC3);
  // The axes: a dark vertical line at x = 80 and a horizontal one at y = 460.
  EXPECT_EQ(img.at<cv::Vec3b>(300, 80), cv::Vec3b(40, 40, 40));
  EXPECT_EQ(img.at<cv::Vec3b>(460, 500), cv::Vec3b(40, 40, 40));
  EXPECT_GT(count_colour(img, cv::Vec3b(180, 90, 20)), 300);    // moving average
  EXPECT_GT(count_colour(img, cv::Vec3b(185, 185, 185)), 300);  // raw loss
  // The curve starts high on the left and ends low on the right.
  auto curve_rows = [&](int x) {
    std::vector<int> rows;
    for (int y = 0; y < img.rows; ++y) {
      if (img.at<cv::Vec3b>(y, x) == cv::Vec3b(180, 90, 20)) rows.push_back(y);
    }
    return rows;
  };
  ASSERT_FALSE(curve_rows(100).empty());
  ASSERT_FALSE(curve_rows(860).empty());
  EXPECT_LT(curve_rows(100).front(), curve_rows(860).front() - 200);
}

TEST(LossPlot, EmptyHistoryGivesAxesOnlyAndTheFileIsAPng) {
  const cv::Mat img = draw_loss_plot({}, 400, 300);
  EXPECT_EQ(count_colour(img, cv::Vec3b(180, 90, 20)), 0);
  const auto dir = clipes::testing::make_temp_dir("seg_loss_plot");
  write_loss_plot(dir / "loss.png", {{1, 1.0, 0.1, 1.0}, {2, 0.5, 0.1, 1.0}});
  const cv::Mat back = cv::imread((dir / "loss.png").string(), cv::IMREAD_COLOR);
  EXPECT_EQ(back.size(), cv::Size(900, 520));
}

}  // namespace
}  // namespace clipes::seg

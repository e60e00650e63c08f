#include "clipes/eval/confusion_plot.h"

#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include "clipes/core/error.h"
#include "clipes/data/class_names.h"
#include "support/test_support.h"

namespace clipes::eval {
namespace {

TEST(ConfusionPlot, CellColoursFollowTheRowShares) {
  ConfusionMatrix m(3);
  m.add(0, 0, 100);  // row 0: all correct
  m.add(1, 1, 50);   // row 1: half and half
  m.add(1, 2, 50);   // row 2: no GT pixels
  const cv::Mat image = render_confusion(m, {"background", "cat", "dog"}, "title");
  ASSERT_EQ(image.type(), CV_8UC3);
  // Find the matrix: the top-left cell is the full-share colour (bright yellow in viridis).
  cv::Point full(-1, -1);
  for (int y = 0; y < image.rows && full.x < 0; ++y)
    for (int x = 0; x < image.cols; ++x) {
      const cv::Vec3b c = image.at<cv::Vec3b>(y, x);
      if (c[2] > 240 && c[1] > 220 && c[0] < 60) {  // BGR yellow
        full = {x, y};
        break;
      }
    }
  ASSERT_GE(full.x, 0) << "no full-share cell found";
  const int cell = 30;
  // Probe near cell corners (the centres hold the percentage text).
  const cv::Vec3b zero = image.at<cv::Vec3b>(full.y + 2, full.x + cell + 2);         // (0, 1): 0 %
  const cv::Vec3b half = image.at<cv::Vec3b>(full.y + cell + 2, full.x + cell + 2);  // (1, 1)
  const cv::Vec3b none = image.at<cv::Vec3b>(full.y + 2 * cell + 2, full.x + 2);     // row 2: grey
  EXPECT_LT(zero[1], 30);   // viridis 0: dark purple
  EXPECT_GT(half[1], 100);  // viridis 0.5: teal
  EXPECT_LT(half[1], 180);
  EXPECT_EQ(none, cv::Vec3b(215, 215, 215));
}

TEST(ConfusionPlot, CocoSizedPlotIsWrittenAsAReadablePng) {
  const auto names = data::with_background(data::coco_class_names());
  ConfusionMatrix m(81);
  for (int k = 0; k < 81; ++k) m.add(k, (k * 7) % 81, 10 + k);
  const auto dir = testing::make_temp_dir("confusion_plot");
  write_confusion_png(dir / "c.png", m, names, "COCO");
  const cv::Mat back = cv::imread((dir / "c.png").string(), cv::IMREAD_COLOR);
  ASSERT_FALSE(back.empty());
  EXPECT_GT(back.cols, 81 * 15);
  EXPECT_LT(back.cols, 2000);
  EXPECT_THROW(render_confusion(m, {"a"}, "x"), Error);
}

}  // namespace
}  // namespace clipes::eval

#include "clipes/io/png.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <gtest/gtest.h>

#include "clipes/core/error.h"
#include "clipes/io/files.h"
#include "support/test_support.h"

namespace clipes::io {
namespace {

TEST(VocPalette, KnownColours) {
  const Palette p = voc_palette();
  EXPECT_EQ((std::array<int, 3>{p[3], p[4], p[5]}), (std::array<int, 3>{128, 0, 0}));   // aeroplane
  EXPECT_EQ((std::array<int, 3>{p[45], p[46], p[47]}), (std::array<int, 3>{192, 128, 128}));  // person
  EXPECT_EQ((std::array<int, 3>{p[765], p[766], p[767]}), (std::array<int, 3>{224, 224, 192}));
}

TEST(Png, IndexedRoundTripKeepsIndices) {
  cv::Mat labels(5, 7, CV_8UC1);
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 7; ++x) labels.at<std::uint8_t>(y, x) = static_cast<std::uint8_t>((x * 37 + y) % 256);
  labels.at<std::uint8_t>(0, 0) = 255;
  const auto dir = testing::make_temp_dir("png");
  write_png_indexed(dir / "m.png", labels, voc_palette());
  const cv::Mat back = read_png_u8(dir / "m.png");
  EXPECT_EQ(cv::countNonZero(back != labels), 0);
  // Viewers see the palette colours: OpenCV decodes the palette to BGR.
  const cv::Mat colour = cv::imread((dir / "m.png").string(), cv::IMREAD_COLOR);
  const auto px = colour.at<cv::Vec3b>(0, 0);
  EXPECT_EQ(px, cv::Vec3b(192, 224, 224));
}

TEST(Png, SixteenBitRoundTrip) {
  cv::Mat values(3, 4, CV_16UC1);
  for (int i = 0; i < 12; ++i) values.at<std::uint16_t>(i / 4, i % 4) = static_cast<std::uint16_t>(i * 5957);
  const auto dir = testing::make_temp_dir("png16");
  write_png_u16(dir / "c.png", values);
  EXPECT_EQ(cv::countNonZero(read_png_u16(dir / "c.png") != values), 0);
  const cv::Mat cv_read = cv::imread((dir / "c.png").string(), cv::IMREAD_UNCHANGED);
  EXPECT_EQ(cv_read.type(), CV_16UC1);
  EXPECT_EQ(cv::countNonZero(cv_read != values), 0);
}

TEST(Png, ReadsVocGroundTruthIndices) {
  const auto gt = testing::shared_path("data/voc-mini/SegmentationClass/2007_000032.png");
  CLIPES_REQUIRE_FILE(gt);
  const cv::Mat m = read_png_u8(gt);
  EXPECT_EQ(m.cols, 500);
  EXPECT_EQ(m.rows, 281);
  std::set<int> values;
  for (int y = 0; y < m.rows; ++y)
    for (int x = 0; x < m.cols; ++x) values.insert(m.at<std::uint8_t>(y, x));
  EXPECT_EQ(values, (std::set<int>{0, 1, 15, 255}));  // background, aeroplane, person, void
}

TEST(Png, ColourAndBrokenFilesAreRejectedWithReason) {
  const auto dir = testing::make_temp_dir("png_bad");
  cv::Mat colour(2, 2, CV_8UC3, cv::Scalar(1, 2, 3));
  write_file_atomic(dir / "rgb.png", encode_png_u8(colour));
  try {
    read_png_u8(dir / "rgb.png");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rgb.png: expected a single-channel (palette or grey) PNG, "
                                         "found RGB 8-bit"), std::string::npos) << e.what();
  }
  cv::Mat labels(20, 20, CV_8UC1, cv::Scalar(3));
  const std::string bytes = encode_png_indexed(labels, voc_palette());
  write_file_atomic(dir / "cut.png", bytes.substr(0, bytes.size() - 30));
  EXPECT_THROW(read_png_u8(dir / "cut.png"), Error);
  write_file_atomic(dir / "text.png", "hello");
  try {
    read_png_u8(dir / "text.png");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("text.png: not a PNG file"), std::string::npos);
  }
}

}  // namespace
}  // namespace clipes::io

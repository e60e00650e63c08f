#include "clipes/data/mask_files.h"

#include <gtest/gtest.h>

#include <cmath>

#include "clipes/core/error.h"
#include "clipes/io/files.h"
#include "support/test_support.h"

namespace clipes::data {
namespace {

namespace fs = std::filesystem;
using clipes::testing::error_of;

TEST(MaskFiles, ConfidenceIsStoredOnThe16BitScale) {
  EXPECT_EQ(encode_confidence(0.0f), 0);
  EXPECT_EQ(encode_confidence(1.0f), 65535);
  EXPECT_EQ(encode_confidence(0.95f), 62258);  // round(0.95 * 65535) = round(62258.25)
  EXPECT_EQ(encode_confidence(-1.0f), 0);
  EXPECT_EQ(encode_confidence(2.0f), 65535);
  EXPECT_EQ(encode_confidence(NAN), 0);
  for (int v : {0, 1, 12345, 62258, 65535}) {
    EXPECT_EQ(encode_confidence(decode_confidence(static_cast<std::uint16_t>(v))), v);
  }
  const cv::Mat f = (cv::Mat_<float>(1, 3) << 0.5f, 0.25f, 1.0f);
  const cv::Mat stored = encode_confidence_map(f);
  EXPECT_EQ(stored.type(), CV_16UC1);
  EXPECT_EQ(stored.at<std::uint16_t>(0, 0), 32768);
  EXPECT_EQ(stored.at<std::uint16_t>(0, 1), 16384);
  EXPECT_EQ(stored.at<std::uint16_t>(0, 2), 65535);
}

TEST(MaskFiles, TheMuTestOnStoredValuesOnlyTightensGeneratesMasks) {
  // Every confidence generate keeps at μ (q >= μ) is kept again on the stored scale at μ.
  const float mu = 0.95f;
  for (int i = 0; i <= 20000; ++i) {
    const float q = 0.94f + 0.02f * static_cast<float>(i) / 20000.0f;
    if (!below_confidence_threshold(q, mu)) {
      ASSERT_FALSE(below_stored_threshold(encode_confidence(q), mu)) << q;
    }
  }
  cv::Mat labels = (cv::Mat_<std::uint8_t>(1, 4) << 1, 2, 3, 0);
  const cv::Mat conf = (cv::Mat_<std::uint16_t>(1, 4) << 62257, 62258, 65535, 0);
  ignore_below_threshold(labels, conf, mu);
  EXPECT_EQ(labels.at<std::uint8_t>(0, 0), kIgnoreLabel);  // one step below round(μ · 65535)
  EXPECT_EQ(labels.at<std::uint8_t>(0, 1), 2);             // exactly μ: kept
  EXPECT_EQ(labels.at<std::uint8_t>(0, 2), 3);
  EXPECT_EQ(labels.at<std::uint8_t>(0, 3), kIgnoreLabel);
  cv::Mat wrong(2, 4, CV_8UC1);
  EXPECT_NE(error_of([&] { ignore_below_threshold(wrong, conf, mu); }).find("of one size"),
            std::string::npos);
}

TEST(MaskFiles, FindsTheRunRecordBesideTheMasks) {
  const fs::path dir = clipes::testing::make_temp_dir("mask_run");
  fs::create_directories(dir / "masks");
  EXPECT_FALSE(find_mask_run(dir / "masks").has_value());
  io::write_file_atomic(dir / "run-1of2.json", R"({"tool": "clipes-generate", "config": {
      "classes": [{"name": "cat"}, {"name": "dog"}], "mask": {"confidence_threshold": 0.9},
      "input": {"exif_orientation": "apply"}}, "outputs": {"masks": {}, "labels": {}}})");
  const auto run = find_mask_run(dir / "masks/");
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->file, dir / "run-1of2.json");
  EXPECT_EQ(run->class_names, (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(run->num_classes(), 3);
  EXPECT_FLOAT_EQ(run->confidence_threshold, 0.9f);
  EXPECT_EQ(run->exif, ExifOrientation::kApply);
  EXPECT_TRUE(run->labels);

  // run.json wins over shard records; an older record without the image policy means "stored".
  io::write_file_atomic(dir / "run.json", R"({"tool": "clipes-generate", "config": {
      "classes": [{"name": "cat"}], "mask": {"confidence_threshold": 0.95}}, "outputs": {}})");
  const auto plain = find_mask_run(dir / "masks");
  EXPECT_EQ(plain->file, dir / "run.json");
  EXPECT_EQ(plain->exif, ExifOrientation::kStored);
  EXPECT_FALSE(plain->labels);

  io::write_file_atomic(dir / "run.json", R"({"tool": "something else"})");
  EXPECT_NE(error_of([&] { find_mask_run(dir / "masks"); }).find("not the run record of clipes-generate"),
            std::string::npos);
  io::write_file_atomic(dir / "run.json", R"({"tool": "clipes-generate", "config": {}})");
  EXPECT_NE(error_of([&] { find_mask_run(dir / "masks"); }).find("config.classes[].name"),
            std::string::npos);
}

}  // namespace
}  // namespace clipes::data

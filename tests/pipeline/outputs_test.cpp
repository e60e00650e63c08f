#include "clipes/pipeline/outputs.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "clipes/core/error.h"
#include "clipes/io/half.h"
#include "clipes/io/npy.h"
#include "clipes/io/png.h"
#include "support/test_support.h"

namespace clipes::pipeline {
namespace {

namespace fs = std::filesystem;

using clipes::testing::error_of;

// Every regular file under `dir`, relative, sorted.
std::vector<std::string> files_under(const fs::path& dir) {
  std::vector<std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) files.push_back(fs::relative(entry.path(), dir).string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// A 6x8 mask with background, classes 0 (value 1) and 14 (value 15), and ignored pixels.
cv::Mat test_mask() {
  cv::Mat mask(6, 8, CV_8UC1, cv::Scalar(0));
  mask(cv::Rect(0, 0, 4, 3)).setTo(1);
  mask(cv::Rect(4, 3, 4, 3)).setTo(15);
  mask(cv::Rect(0, 5, 2, 1)).setTo(255);
  return mask;
}

ImageOutputs test_outputs(int height = 6, int width = 8) {
  ImageOutputs o;
  o.keys = {0, 14};
  o.mask = cv::Mat(height, width, CV_8UC1, cv::Scalar(0));
  o.mask(cv::Rect(0, 0, width / 2, height / 2)).setTo(1);
  o.confidence = cv::Mat(height, width, CV_32FC1, cv::Scalar(0.97f));
  o.cams = at::rand({2, height, width}, at::kFloat);
  o.initial = at::rand({2, 2, 3}, at::kFloat);
  o.image_rgb = cv::Mat(height, width, CV_8UC3, cv::Scalar(10, 120, 230));
  return o;
}

TEST(OutputPaths, LayoutAndUnsafeIds) {
  const fs::path out = "/o";
  EXPECT_EQ(output_path(out, OutputKind::kMask, "2007_000032"),
            fs::path("/o/masks/2007_000032.png"));
  EXPECT_EQ(output_path(out, OutputKind::kConfidence, "a"), fs::path("/o/confidence/a.png"));
  EXPECT_EQ(output_path(out, OutputKind::kCams, "a"), fs::path("/o/cams/a.npz"));
  EXPECT_EQ(output_path(out, OutputKind::kOverlay, "a"), fs::path("/o/overlays/a.jpg"));
  EXPECT_EQ(error_of([&] { output_path(out, OutputKind::kMask, "../etc/x"); }),
            "cannot write outputs: id '../etc/x' starts with '.' (unusable as an output file "
            "name)");
  EXPECT_EQ(error_of([&] { output_path(out, OutputKind::kMask, "a/b"); }),
            "cannot write outputs: id 'a/b' contains a '/', '\\', space or control character "
            "(unusable as an output file name)");
  EXPECT_EQ(error_of([&] { output_path(out, OutputKind::kMask, "a..b"); }),
            "cannot write outputs: id 'a..b' contains '..' (unusable as an output file name)");
}

TEST(Outputs, MaskIsAVocPalettePngOfTheLabels) {
  const auto out = testing::make_temp_dir("out-mask");
  const cv::Mat mask = test_mask();
  write_mask(out, "m", mask);
  const auto file = out / "masks/m.png";
  EXPECT_EQ(cv::countNonZero(io::read_png_u8(file) != mask), 0);
  // A viewer sees the VOC colours: OpenCV expands the palette (BGR).
  const cv::Mat colour = cv::imread(file.string(), cv::IMREAD_COLOR);
  EXPECT_EQ(colour.at<cv::Vec3b>(0, 0), cv::Vec3b(0, 0, 128));      // aeroplane (128, 0, 0)
  EXPECT_EQ(colour.at<cv::Vec3b>(5, 7), cv::Vec3b(128, 128, 192));  // person (192, 128, 128)
  EXPECT_EQ(colour.at<cv::Vec3b>(5, 0), cv::Vec3b(192, 224, 224));  // ignored (224, 224, 192)
  EXPECT_EQ(colour.at<cv::Vec3b>(3, 0), cv::Vec3b(0, 0, 0));        // background
  EXPECT_EQ(error_of([&] { write_mask(out, "f", cv::Mat(2, 2, CV_32FC1)); }),
            "mask of f: expected CV_8UC1, got a 2x2 matrix of type 5");
}

TEST(Outputs, ConfidenceIsRoundedTo16Bits) {
  const auto out = testing::make_temp_dir("out-conf");
  const std::vector<float> values{0.0f, 1.0f, 0.5f, 0.123456f, 0.95f, -0.2f, 1.7f, 1.0f / 65535};
  cv::Mat confidence(2, 4, CV_32FC1);
  std::copy(values.begin(), values.end(), confidence.ptr<float>());
  write_confidence(out, "c", confidence);
  const cv::Mat back = io::read_png_u16(out / "confidence/c.png");
  ASSERT_EQ(back.type(), CV_16UC1);
  const std::vector<int> expected{0, 65535, 32768, 8091, 62258, 0, 65535, 1};
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(back.at<std::uint16_t>(i / 4, i % 4), expected[static_cast<std::size_t>(i)]) << i;
    if (values[static_cast<std::size_t>(i)] >= 0 && values[static_cast<std::size_t>(i)] <= 1) {
      EXPECT_NEAR(back.at<std::uint16_t>(i / 4, i % 4) / 65535.0,
                  values[static_cast<std::size_t>(i)], 0.5 / 65535 + 1e-9);
    }
  }
}

TEST(Outputs, CamsNpzHoldsKeysCamsAndInitial) {
  const auto out = testing::make_temp_dir("out-cams");
  const std::vector<std::int64_t> keys{3, 14, 7};
  const at::Tensor cams = at::rand({3, 5, 6}, at::kFloat);
  const at::Tensor initial = at::rand({3, 2, 2}, at::kFloat);
  for (const auto dtype : {CamDtype::kFloat16, CamDtype::kFloat32}) {
    write_cams(out, "x", keys, cams, initial, dtype);
    const auto entries = io::read_npz(out / "cams/x.npz");
    ASSERT_EQ(entries.size(), 3u);
    const auto& k = io::npz_member(entries, "keys", "x.npz");
    EXPECT_EQ(k.dtype, io::DType::kInt64);
    EXPECT_EQ(k.to_int64(), keys);
    const auto& c = io::npz_member(entries, "cams", "x.npz");
    EXPECT_EQ(c.shape, (std::vector<std::int64_t>{3, 5, 6}));
    const auto* src = cams.data_ptr<float>();
    const auto got = c.to_float32();
    if (dtype == CamDtype::kFloat16) {
      EXPECT_EQ(c.dtype, io::DType::kFloat16);
      for (std::size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i], io::half_to_float(io::float_to_half(src[i])));
        EXPECT_NEAR(got[i], src[i], 1e-3);
      }
    } else {
      EXPECT_EQ(c.dtype, io::DType::kFloat32);
      for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], src[i]);
    }
    const auto& init = io::npz_member(entries, "initial", "x.npz");
    EXPECT_EQ(init.dtype, io::DType::kFloat32);
    EXPECT_EQ(init.shape, (std::vector<std::int64_t>{3, 2, 2}));
    EXPECT_EQ(init.to_float32(),
              std::vector<float>(initial.data_ptr<float>(), initial.data_ptr<float>() + 12));
  }
}

TEST(Outputs, CamsNpzIsReadableByNumpy) {
  const fs::path python = "/usr/bin/python3";
  CLIPES_REQUIRE_FILE(python);
  if (testing::run_command(python.string() + " -c 'import numpy'") != 0) {
    GTEST_SKIP() << "SKIPPED: /usr/bin/python3 has no numpy";
  }
  const auto out = testing::make_temp_dir("out-numpy");
  const at::Tensor cams = at::arange(24, at::kFloat).reshape({2, 3, 4}) / 32.0;
  write_cams(out, "n", {5, 9}, cams, at::ones({2, 1, 2}, at::kFloat), CamDtype::kFloat16);
  std::string output;
  const int rc = testing::run_command(
      python.string() + " -c \"import numpy as np; z = np.load('" + (out / "cams/n.npz").string() +
          "'); print(sorted(z.files), z['keys'].dtype, z['keys'].tolist(), z['cams'].dtype, "
          "z['cams'].shape, float(z['cams'][1, 2, 3]), z['initial'].dtype, z['initial'].shape)\"",
      &output);
  EXPECT_EQ(rc, 0) << output;
  EXPECT_EQ(output,
            "['cams', 'initial', 'keys'] int64 [5, 9] float16 (2, 3, 4) 0.71875 float32 (2, 1, "
            "2)\n");
}

TEST(Outputs, CamShapesAreChecked) {
  const auto out = testing::make_temp_dir("out-cam-shapes");
  EXPECT_EQ(error_of([&] {
              write_cams(out, "y", {1, 2}, at::zeros({3, 4, 4}), at::zeros({2, 2, 2}),
                         CamDtype::kFloat16);
            }),
            "cams of y: expected a float tensor [K = 2, height, width], got [3, 4, 4] Float");
  EXPECT_EQ(error_of([&] {
              write_cams(out, "y", {1}, at::zeros({1, 4, 4}), at::Tensor(), CamDtype::kFloat16);
            }),
            "initial of y: expected a float tensor [K = 1, height, width], got none");
  EXPECT_FALSE(fs::exists(out / "cams"));  // nothing written, not even a temporary
}

TEST(Overlay, BlendsClassColoursHatchesIgnoredAndDrawsALegend) {
  cv::Mat image(120, 160, CV_8UC3, cv::Scalar(200, 100, 50));  // RGB
  cv::Mat mask(120, 160, CV_8UC1, cv::Scalar(0));
  mask(cv::Rect(100, 60, 60, 60)).setTo(15);  // person, bottom right
  mask(cv::Rect(0, 100, 40, 20)).setTo(255);  // ignored, bottom left
  const cv::Mat picture =
      render_overlay(image, mask,
                     {"aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
                      "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person"});
  ASSERT_EQ(picture.type(), CV_8UC3);
  // Background pixels keep the image (BGR now).
  EXPECT_EQ(picture.at<cv::Vec3b>(60, 60), cv::Vec3b(50, 100, 200));
  // Person pixels: half image, half (192, 128, 128).
  EXPECT_EQ(picture.at<cv::Vec3b>(110, 150), cv::Vec3b(89, 114, 196));
  // Ignored pixels alternate dark and light stripes, unlike the flat image under them.
  const cv::Vec3b a = picture.at<cv::Vec3b>(110, 0);
  const cv::Vec3b b = picture.at<cv::Vec3b>(110, 4);
  EXPECT_GT(cv::norm(cv::Vec3d(a) - cv::Vec3d(b)), 100.0);
  // The legend (top left) darkens the image and shows the person swatch; elsewhere untouched.
  bool swatch = false;
  for (int y = 0; y < 30; ++y) {
    for (int x = 0; x < 30; ++x) swatch |= picture.at<cv::Vec3b>(y, x) == cv::Vec3b(128, 128, 192);
  }
  EXPECT_TRUE(swatch);
  EXPECT_LT(picture.at<cv::Vec3b>(2, 2)[2], 100);
  EXPECT_EQ(picture.at<cv::Vec3b>(2, 158), cv::Vec3b(50, 100, 200));
  EXPECT_EQ(error_of([&] { render_overlay(image, cv::Mat(10, 10, CV_8UC1), {}); }),
            "overlay image of overlay: sizes differ: 160x120 against the mask's 10x10");
}

TEST(Overlay, WritesAJpegOfTheImageSize) {
  const auto image_file = testing::shared_path("data/voc-mini/JPEGImages/2007_000032.jpg");
  const auto gt_file = testing::shared_path("data/voc-mini/SegmentationClass/2007_000032.png");
  CLIPES_REQUIRE_FILE(image_file);
  CLIPES_REQUIRE_FILE(gt_file);
  cv::Mat image = cv::imread(image_file.string(), cv::IMREAD_COLOR);
  cv::cvtColor(image, image, cv::COLOR_BGR2RGB);
  const auto out = testing::make_temp_dir("out-overlay");
  std::vector<std::string> names(20);
  names[0] = "aeroplane";
  names[14] = "person";
  write_overlay(out, "2007_000032", image, io::read_png_u8(gt_file), names);
  const cv::Mat back = cv::imread((out / "overlays/2007_000032.jpg").string(), cv::IMREAD_COLOR);
  EXPECT_EQ(back.cols, image.cols);
  EXPECT_EQ(back.rows, image.rows);
}

TEST(Outputs, WriteImageOutputsWritesExactlyTheExpectedFiles) {
  const auto out = testing::make_temp_dir("out-all");
  OutputsConfig config;  // cams on, overlays off
  write_image_outputs(out, "a", test_outputs(), config, {"aeroplane"});
  EXPECT_EQ(files_under(out),
            (std::vector<std::string>{"cams/a.npz", "confidence/a.png", "masks/a.png"}));
  config.cams = false;
  config.overlays = true;
  write_image_outputs(out, "b", test_outputs(), config, {"aeroplane"});
  EXPECT_EQ(files_under(out),
            (std::vector<std::string>{"cams/a.npz", "confidence/a.png", "confidence/b.png",
                                      "masks/a.png", "masks/b.png", "overlays/b.jpg"}));
  // A bad input fails before anything of that id is written.
  auto bad = test_outputs();
  bad.confidence = cv::Mat(3, 3, CV_32FC1, cv::Scalar(1.0f));
  EXPECT_EQ(error_of([&] { write_image_outputs(out, "c", bad, config, {}); }),
            "confidence of c: sizes differ: 3x3 against the mask's 8x6");
  EXPECT_EQ(files_under(out).size(), 6u);
}

TEST(Outputs, LabelsBeforeMuAreWrittenWhenAskedFor) {
  const auto out = testing::make_temp_dir("out-labels");
  OutputsConfig config;
  config.cams = false;
  config.labels = true;
  EXPECT_EQ(expected_outputs(config),
            (std::vector<OutputKind>{OutputKind::kMask, OutputKind::kConfidence,
                                     OutputKind::kLabels}));
  EXPECT_EQ(output_path(out, OutputKind::kLabels, "a"), out / "labels" / "a.png");
  auto o = test_outputs();
  EXPECT_EQ(error_of([&] { write_image_outputs(out, "a", o, config, {}); }),
            "labels of a: expected CV_8UC1, got a 0x0 matrix of type 0");
  EXPECT_TRUE(files_under(out).empty());
  o.labels = test_mask();
  o.labels.setTo(3, o.labels == 255);  // before μ: a class everywhere
  write_image_outputs(out, "a", o, config, {});
  EXPECT_EQ(files_under(out),
            (std::vector<std::string>{"confidence/a.png", "labels/a.png", "masks/a.png"}));
  EXPECT_EQ(cv::norm(io::read_png_u8(out / "labels" / "a.png"), o.labels, cv::NORM_INF), 0);
  EXPECT_TRUE(outputs_complete(out, "a", config));
}

TEST(Resume, CompleteMeansEveryExpectedFileExists) {
  const auto out = testing::make_temp_dir("out-resume");
  OutputsConfig with_cams;
  OutputsConfig with_overlays;
  with_overlays.overlays = true;
  OutputsConfig minimal;
  minimal.cams = false;
  EXPECT_EQ(
      expected_outputs(with_cams),
      (std::vector<OutputKind>{OutputKind::kMask, OutputKind::kConfidence, OutputKind::kCams}));
  EXPECT_EQ(expected_outputs(minimal),
            (std::vector<OutputKind>{OutputKind::kMask, OutputKind::kConfidence}));
  OutputsConfig cams_only;  // --no-crf: the CAM stage alone
  cams_only.masks = false;
  EXPECT_EQ(expected_outputs(cams_only), (std::vector<OutputKind>{OutputKind::kCams}));

  write_image_outputs(out, "done", test_outputs(), with_cams, {"a"});
  const auto o = test_outputs();
  write_mask(out, "partial", o.mask);  // killed before the others
  write_confidence(out, "nocams", o.confidence);
  write_mask(out, "nocams", o.mask);

  EXPECT_TRUE(outputs_complete(out, "done", with_cams));
  EXPECT_FALSE(outputs_complete(out, "done", with_overlays));
  EXPECT_FALSE(outputs_complete(out, "partial", with_cams));
  EXPECT_FALSE(outputs_complete(out, "partial", minimal));
  EXPECT_FALSE(outputs_complete(out, "nocams", with_cams));
  EXPECT_TRUE(outputs_complete(out, "nocams", minimal));
  EXPECT_FALSE(outputs_complete(out, "never", minimal));
  EXPECT_FALSE(outputs_complete(out, "../done", minimal));

  const std::vector<std::string> ids{"done", "partial", "nocams", "never", "a/b"};
  EXPECT_EQ(find_complete_ids(out, ids, with_cams), (std::unordered_set<std::string>{"done"}));
  EXPECT_EQ(find_complete_ids(out, ids, minimal),
            (std::unordered_set<std::string>{"done", "nocams"}));
  EXPECT_TRUE(find_complete_ids(out, ids, with_overlays).empty());  // no overlays/ at all
  EXPECT_TRUE(find_complete_ids(out / "missing", ids, minimal).empty());
}

TEST(Resume, StaleTemporariesAreFoundByAgeAndRemoved) {
  const auto out = testing::make_temp_dir("out-stale");
  write_image_outputs(out, "a", test_outputs(), OutputsConfig{}, {"a"});
  EXPECT_TRUE(find_stale_temporaries(out, std::chrono::seconds(0)).empty());  // nothing left over
  const auto old_mask = out / "masks/.b.png.1234.5678.tmp";
  const auto old_run = out / ".run.json.99.1.tmp";
  const auto fresh = out / "cams/.c.npz.42.7.tmp";
  for (const auto& f : {old_mask, old_run, fresh}) std::ofstream(f) << "half";
  std::ofstream(out / "masks/.hidden") << "not ours";
  std::ofstream(out / "masks/notes.tmp") << "not ours";
  const auto hour_ago = fs::file_time_type::clock::now() - std::chrono::hours(1);
  fs::last_write_time(old_mask, hour_ago);
  fs::last_write_time(old_run, hour_ago);

  EXPECT_EQ(find_stale_temporaries(out, std::chrono::minutes(10)),
            (std::vector<fs::path>{old_run, old_mask}));
  EXPECT_EQ(find_stale_temporaries(out, std::chrono::seconds(0)).size(), 3u);
  EXPECT_EQ(remove_stale_temporaries(out, std::chrono::minutes(10)), 2u);
  EXPECT_FALSE(fs::exists(old_mask));
  EXPECT_TRUE(fs::exists(fresh));  // another process may still be writing it
  EXPECT_TRUE(fs::exists(out / "masks/.hidden"));
  EXPECT_TRUE(fs::exists(out / "masks/a.png"));
  EXPECT_EQ(remove_stale_temporaries(out, std::chrono::seconds(0)), 1u);
  EXPECT_EQ(remove_stale_temporaries(out / "missing", std::chrono::seconds(0)), 0u);
}

}  // namespace
}  // namespace clipes::pipeline

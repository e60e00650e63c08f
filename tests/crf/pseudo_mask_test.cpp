#include "clipes/crf/pseudo_mask.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "clipes/core/error.h"
#include "clipes/io/npy.h"
#include "clipes/io/png.h"
#include "crf/crf_oracle.h"
#include "support/test_support.h"

namespace clipes::crf {
namespace {

namespace fs = std::filesystem;

const char* const kReferenceDir = "reference/small12-voc-mini";

// The JPEG as the reference read it (OpenCV), returned in RGB order as the API expects.
cv::Mat read_rgb(const fs::path& file) {
  const cv::Mat bgr = cv::imread(file.string(), cv::IMREAD_COLOR);
  if (bgr.empty()) throw Error("cannot read " + file.string());
  cv::Mat rgb(bgr.rows, bgr.cols, CV_8UC3);
  for (int y = 0; y < bgr.rows; ++y) {
    for (int x = 0; x < bgr.cols; ++x) {
      const cv::Vec3b p = bgr.at<cv::Vec3b>(y, x);
      rgb.at<cv::Vec3b>(y, x) = cv::Vec3b(p[2], p[1], p[0]);
    }
  }
  return rgb;
}

using clipes::testing::error_of;

// ---- The reference's CRF image (spec §7 quirk) --------------------------------------------------

TEST(PseudoMask, ReferenceImageWrapsBgrMinusMeanLikeNumpy) {
  cv::Mat rgb(1, 4, CV_8UC3);
  rgb.at<cv::Vec3b>(0, 0) = cv::Vec3b(0, 0, 0);
  rgb.at<cv::Vec3b>(0, 1) = cv::Vec3b(255, 255, 255);
  rgb.at<cv::Vec3b>(0, 2) = cv::Vec3b(122, 116, 104);  // r − 122.675 = −0.675 -> 0 (truncation)
  rgb.at<cv::Vec3b>(0, 3) = cv::Vec3b(121, 115, 102);  // −1.675 -> −1 -> 255; b: −2.008 -> 254
  const cv::Mat out = crf_input_image(rgb, CrfImageMode::kReference);
  // BGR order: (0 − 104.008, 0 − 116.669, 0 − 122.675) -> (−104, −116, −122) mod 256.
  EXPECT_EQ(out.at<cv::Vec3b>(0, 0), cv::Vec3b(152, 140, 134));
  EXPECT_EQ(out.at<cv::Vec3b>(0, 1), cv::Vec3b(150, 138, 132));
  EXPECT_EQ(out.at<cv::Vec3b>(0, 2), cv::Vec3b(0, 0, 0));
  EXPECT_EQ(out.at<cv::Vec3b>(0, 3), cv::Vec3b(254, 255, 255));
  // The default mode passes the image through untouched.
  const cv::Mat same = crf_input_image(rgb, CrfImageMode::kRgb);
  EXPECT_EQ(same.data, rgb.data);
}

TEST(PseudoMask, ReferenceImageMatchesTheReferenceCrfImage) {
  for (const std::string id : {"2007_000032", "2009_000177"}) {
    const fs::path npy = clipes::testing::shared_path(kReferenceDir) / id / "crf_image.npy";
    const fs::path jpeg = clipes::testing::shared_path("data/voc-mini/JPEGImages/" + id + ".jpg");
    CLIPES_REQUIRE_FILE(npy);
    CLIPES_REQUIRE_FILE(jpeg);
    const io::NpyArray expected = io::read_npy(npy);
    const cv::Mat image = crf_input_image(read_rgb(jpeg), CrfImageMode::kReference);
    ASSERT_EQ(expected.shape, (std::vector<std::int64_t>{image.rows, image.cols, 3}));
    ASSERT_TRUE(image.isContinuous());
    std::size_t same = 0;
    for (std::size_t t = 0; t < expected.bytes.size(); ++t) {
      same += image.data[t] == expected.bytes[t];
    }
    std::printf("[ image  ] %s: %zu of %zu values equal crf_image.npy\n", id.c_str(), same,
                expected.bytes.size());
    EXPECT_EQ(same, expected.bytes.size()) << id;
  }
}

// ---- Probabilities and unary ------------------------------------------------------------------

TEST(PseudoMask, ProbabilitiesAreBackgroundThenCams) {
  const std::vector<float> cams{0.2f, 0.9f, 0.0f,   // cam 0, 1×3 image
                                0.6f, 0.3f, 0.0f};  // cam 1
  const std::vector<float> p = crf_probabilities({cams.data(), 2, 1, 3}, CrfImageMode::kRgb);
  const std::vector<float> expected{1.0f - 0.6f, 1.0f - 0.9f, 1.0f, 0.2f, 0.9f,
                                    0.0f,        0.6f,        0.3f, 0.0f};
  EXPECT_EQ(p, expected);
  // Reference mode: CAMs rounded to float16, 1 − max rounded to float16 (numpy's float16 ops).
  const std::vector<float> odd{0.3001f, 0.6002f};
  const std::vector<float> ph = crf_probabilities({odd.data(), 2, 1, 1}, CrfImageMode::kReference);
  EXPECT_EQ(ph, (std::vector<float>{0.39990234375f, 0.300048828125f, 0.60009765625f}));
}

TEST(PseudoMask, UnaryIsMinusLogOfClippedProbabilities) {
  const std::vector<float> p{0.0f, 1e-6f, 0.5f, 1.0f, 0.3f, 2.0f};
  const std::vector<float> u = crf_unary({p.data(), 6, 1, 1}, CrfImageMode::kRgb);
  EXPECT_FLOAT_EQ(u[0], -std::log(1e-5f));
  EXPECT_FLOAT_EQ(u[1], -std::log(1e-5f));
  EXPECT_FLOAT_EQ(u[2], -std::log(0.5f));
  EXPECT_EQ(u[3], 0.0f);
  EXPECT_FLOAT_EQ(u[4], -std::log(0.3f));
  EXPECT_EQ(u[5], 0.0f);
  // numpy: -np.log(np.clip(np.float16([...]), 1e-5, 1.0)) in float16.
  const std::vector<float> uh = crf_unary({p.data(), 6, 1, 1}, CrfImageMode::kReference);
  EXPECT_EQ(
      uh, (std::vector<float>{11.5078125f, 11.5078125f, 0.693359375f, 0.0f, 1.2041015625f, 0.0f}));
}

TEST(PseudoMask, ReferenceProbabilitiesMatchTheReferenceCrfInput) {
  for (const std::string id : {"2007_000032", "2009_000177"}) {
    const fs::path dir = clipes::testing::shared_path(kReferenceDir) / id;
    CLIPES_REQUIRE_FILE(dir / "crf_prob.npy");
    const io::NpyArray cams = io::read_npy(dir / "attn_highres.npy");
    const std::vector<float> cam_values = cams.to_float32();
    const PlanarView view{cam_values.data(), static_cast<int>(cams.shape[0]),
                          static_cast<int>(cams.shape[1]), static_cast<int>(cams.shape[2])};
    EXPECT_EQ(crf_probabilities(view, CrfImageMode::kReference),
              io::read_npy(dir / "crf_prob.npy").to_float32())
        << id;
  }
}

// ---- Labels from marginals ----------------------------------------------------------------------

TEST(PseudoMask, MarginalsMapToDatasetIdsWithIgnoreBelowThreshold) {
  // 3 labels (background, keys 4 and 14) on 1×5 pixels.
  const std::vector<float> q{0.97f, 0.02f, 0.10f, 0.50f, 0.4f,   // background
                             0.02f, 0.96f, 0.85f, 0.25f, 0.4f,   // key 4
                             0.01f, 0.02f, 0.05f, 0.25f, 0.2f};  // key 14
  const PseudoMask mask = pseudo_mask_from_marginals({q.data(), 3, 1, 5}, {4, 14}, 0.95f);
  ASSERT_EQ(mask.labels.type(), CV_8UC1);
  ASSERT_EQ(mask.confidence.type(), CV_32FC1);
  const std::vector<int> expected{0, 5, 255, 255, 255};
  for (int x = 0; x < 5; ++x) EXPECT_EQ(mask.labels.at<std::uint8_t>(0, x), expected[x]) << x;
  const std::vector<float> confidence{0.97f, 0.96f, 0.85f, 0.50f, 0.4f};
  for (int x = 0; x < 5; ++x) EXPECT_EQ(mask.confidence.at<float>(0, x), confidence[x]) << x;
  // Threshold 0: nothing ignored; ties go to the first label (numpy's argmax).
  const PseudoMask all = pseudo_mask_from_marginals({q.data(), 3, 1, 5}, {4, 14}, 0.0f);
  const std::vector<int> labels{0, 5, 5, 0, 0};
  for (int x = 0; x < 5; ++x) EXPECT_EQ(all.labels.at<std::uint8_t>(0, x), labels[x]) << x;
  // argmax: the labels before μ, whatever the threshold.
  for (int x = 0; x < 5; ++x) {
    EXPECT_EQ(mask.argmax.at<std::uint8_t>(0, x), labels[x]) << x;
    EXPECT_EQ(all.argmax.at<std::uint8_t>(0, x), labels[x]) << x;
  }
}

// ---- The whole step against the reference pseudo masks ------------------------------------------

TEST(PseudoMask, ReferenceModeReproducesReferencePseudoMasks) {
  const fs::path root = clipes::testing::shared_path(kReferenceDir);
  CLIPES_REQUIRE_FILE(root);
  PseudoMaskConfig config;
  config.crf.image = CrfImageMode::kReference;
  config.crf.threads = 2;  // the parallel path (identical results to one thread)
  int images = 0;
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(root)) dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());
  for (const fs::path& dir : dirs) {
    if (!fs::exists(dir / "attn_highres.npy") || !fs::exists(dir / "keys.npy")) continue;
    const std::string id = dir.filename().string();
    const io::NpyArray cams = io::read_npy(dir / "attn_highres.npy");
    std::vector<int> keys;
    for (std::int64_t k : io::read_npy(dir / "keys.npy").to_int64())
      keys.push_back(static_cast<int>(k));
    const std::vector<float> cam_values = cams.to_float32();
    const cv::Mat rgb =
        read_rgb(clipes::testing::shared_path("data/voc-mini/JPEGImages/" + id + ".jpg"));
    const PseudoMask mask =
        make_pseudo_mask({cam_values.data(), static_cast<int>(cams.shape[0]),
                          static_cast<int>(cams.shape[1]), static_cast<int>(cams.shape[2])},
                         keys, rgb, config);
    const cv::Mat expected = io::read_png_u8(dir / "pseudo_mask.png");
    ASSERT_EQ(expected.size(), mask.labels.size()) << id;
    const double total = static_cast<double>(expected.total());
    const double agreement = static_cast<double>(cv::countNonZero(expected == mask.labels)) / total;
    std::printf("[ mask   ] %s: %d classes, %.4f%% of pixels equal pseudo_mask.png\n", id.c_str(),
                static_cast<int>(keys.size()), 100.0 * agreement);
    EXPECT_GE(agreement, 0.999) << id;
    ++images;
  }
  EXPECT_EQ(images, 20);
}

TEST(PseudoMask, RgbModeGivesValidMask) {
  const cv::Mat rgb = testing::synthetic_image(30, 40, 3);
  std::vector<float> cams(2 * 30 * 40);
  for (int y = 0; y < 30; ++y) {
    for (int x = 0; x < 40; ++x) {
      cams[y * 40 + x] = x < 20 ? 0.9f : 0.05f;
      cams[1200 + y * 40 + x] = y < 10 ? 0.8f : 0.1f;
    }
  }
  const PseudoMask mask =
      make_pseudo_mask({cams.data(), 2, 30, 40}, {2, 7}, rgb, PseudoMaskConfig{});
  for (int y = 0; y < 30; ++y) {
    for (int x = 0; x < 40; ++x) {
      const int label = mask.labels.at<std::uint8_t>(y, x);
      const float c = mask.confidence.at<float>(y, x);
      ASSERT_TRUE(label == 0 || label == 3 || label == 8 || label == 255) << label;
      ASSERT_EQ(label == 255, c < 0.95f);
      ASSERT_GE(c, 1.0f / 3.0f);
      ASSERT_LE(c, 1.0f);
    }
  }
  EXPECT_EQ(mask.labels.at<std::uint8_t>(20, 5), 3);   // cam 0 strong, cam 1 weak
  EXPECT_EQ(mask.labels.at<std::uint8_t>(25, 35), 0);  // both weak: background
}

TEST(PseudoMask, RejectsBadInputs) {
  const cv::Mat rgb = testing::synthetic_image(4, 5, 1);
  const std::vector<float> cams(2 * 4 * 5, 0.5f);
  EXPECT_EQ(error_of([&] {
              make_pseudo_mask({cams.data(), 2, 4, 5}, {1}, rgb, PseudoMaskConfig{});
            }),
            "pseudo mask: 2 CAMs for 1 keys; expected one CAM per key");
  EXPECT_EQ(error_of([&] {
              make_pseudo_mask({cams.data(), 2, 5, 4}, {1, 2}, rgb, PseudoMaskConfig{});
            }),
            "pseudo mask: the image is 5x4 but the CAMs are 4x5 (width x height)");
  EXPECT_EQ(error_of([&] {
              make_pseudo_mask({cams.data(), 2, 4, 5}, {1, 254}, rgb, PseudoMaskConfig{});
            }),
            "pseudo mask: class index 254 (key 1) must be in [0, 253]");
  PseudoMaskConfig config;
  config.confidence_threshold = 1.5f;
  EXPECT_EQ(error_of([&] {
              make_pseudo_mask({cams.data(), 2, 4, 5}, {1, 2}, rgb, config);
            }),
            "pseudo mask: pseudo_mask.confidence_threshold must be in [0, 1], got 1.5");
  EXPECT_NE(error_of([&] {
              make_pseudo_mask({cams.data(), 2, 4, 5}, {1, 2}, cv::Mat(4, 5, CV_8UC1),
                               PseudoMaskConfig{});
            }).find("expected an 8-bit RGB image (CV_8UC3)"),
            std::string::npos);
  std::vector<float> nan_cams = cams;
  nan_cams[25] = std::nanf("");
  EXPECT_EQ(error_of([&] {
              make_pseudo_mask({nan_cams.data(), 2, 4, 5}, {1, 2}, rgb, PseudoMaskConfig{});
            }),
            "CRF probabilities: cam 1 at (row 1, column 0) is nan");
  EXPECT_EQ(error_of([&] {
              make_pseudo_mask({nullptr, 0, 4, 5}, {}, rgb, PseudoMaskConfig{});
            }),
            "pseudo mask: cams: expected a non-empty [channels, height, width] array, got [0, 4, "
            "5] with no data");
}

}  // namespace
}  // namespace clipes::crf

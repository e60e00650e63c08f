#include "clipes/clip/preprocess.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <opencv2/core.hpp>
#include <string>

#include "clipes/core/error.h"
#include "clipes/data/image.h"
#include "clipes/io/npy.h"
#include "clipes/io/npy_tensor.h"
#include "support/test_support.h"

namespace clipes::clip {
namespace {

using clipes::testing::error_of;

TEST(ClipInputSize, RoundsEachSideUpToThePatch) {
  EXPECT_EQ(clip_input_size({500, 375}, 16), cv::Size(512, 384));
  EXPECT_EQ(clip_input_size({500, 281}, 16), cv::Size(512, 288));
  EXPECT_EQ(clip_input_size({400, 300}, 16), cv::Size(400, 304));
  EXPECT_EQ(clip_input_size({16, 17}, 16), cv::Size(16, 32));
  EXPECT_EQ(clip_input_size({1, 1}, 16), cv::Size(16, 16));
  EXPECT_EQ(clip_input_size({225, 14}, 14), cv::Size(238, 14));
  EXPECT_EQ(clip_input_size({7, 3}, 1), cv::Size(7, 3));
  EXPECT_NE(error_of([] {
              clip_input_size({5, 5}, 0);
            }).find("patch size must be >= 1, got 0"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              clip_input_size({0, 5}, 16);
            }).find("non-empty image, got 0x5"),
            std::string::npos);
}

TEST(NormalizeForClip, ChannelPlanesAndFloat32Arithmetic) {
  cv::Mat rgb(1, 2, CV_8UC3);
  rgb.at<cv::Vec3b>(0, 0) = cv::Vec3b(0, 128, 255);
  rgb.at<cv::Vec3b>(0, 1) = cv::Vec3b(255, 1, 77);
  const at::Tensor t = normalize_for_clip(rgb);
  ASSERT_EQ(t.sizes().vec(), (std::vector<std::int64_t>{1, 3, 1, 2}));
  ASSERT_EQ(t.scalar_type(), at::kFloat);
  const auto expect = [](int v, int c) {
    const float scaled = static_cast<float>(v) / 255.0F;
    return (scaled - kClipMean[static_cast<std::size_t>(c)]) /
           kClipStd[static_cast<std::size_t>(c)];
  };
  const int values[2][3] = {{0, 128, 255}, {255, 1, 77}};
  for (int x = 0; x < 2; ++x) {
    for (int c = 0; c < 3; ++c) {
      EXPECT_EQ(t[0][c][0][x].item<float>(), expect(values[x][c], c)) << x << " " << c;
    }
  }
  // Sanity on the constants: black is -mean/std, white (1 - mean)/std.
  EXPECT_NEAR(t[0][0][0][0].item<float>(), -0.48145466 / 0.26862954, 1e-6);
  EXPECT_NEAR(t[0][2][0][0].item<float>(), (1 - 0.40821073) / 0.27577711, 1e-6);
  EXPECT_NE(error_of([] {
              normalize_for_clip(cv::Mat(2, 2, CV_8UC4));
            }).find("expects a non-empty 8-bit RGB image (CV_8UC3), got 2x2 of OpenCV type 24"),
            std::string::npos);
}

// Pillow bicubic in the file's own mode, convert("RGB"), ToTensor + Normalize, computed by
// scripts/make_resize_fixtures.py: grey, colour, RGBA and palette files.
TEST(PreprocessForClip, BitExactOnFixtureFiles) {
  const auto npz_file = testing::source_dir() / "tests/data/image/expected.npz";
  const io::NpzEntries expected = io::read_npz(npz_file);
  for (const char* name : {"grey.jpg", "colour.jpg", "rgba.png", "palette.png"}) {
    SCOPED_TRACE(name);
    std::string stem = name;
    stem[stem.find('.')] = '_';
    const data::DecodedImage image =
        data::decode_image(testing::source_dir() / "tests/data/image/files" / name);
    const at::Tensor out = preprocess_for_clip(image);
    const at::Tensor want = io::to_tensor(io::npz_member(expected, stem + "__clip", npz_file));
    ASSERT_EQ(out.sizes(), want.sizes());
    EXPECT_EQ(at::ne(out, want).sum().item<std::int64_t>(), 0);
  }
}

// The reference's input tensor (shared/reference/README.md): bit for bit.
TEST(PreprocessForClip, MatchesReferenceInputTensors) {
  const auto ref = testing::shared_path("reference/small12-voc-mini");
  const auto images = testing::shared_path("data/voc-mini/JPEGImages");
  CLIPES_REQUIRE_FILE(ref / "2007_000032/input.npy");
  int checked = 0;
  for (const char* id :
       {"2007_000032", "2008_003333", "2009_000177", "2010_005830", "2011_002770"}) {
    SCOPED_TRACE(id);
    const at::Tensor want = io::read_npy_tensor(ref / id / "input.npy");
    const data::LoadedImage image = data::load_image(images / (std::string(id) + ".jpg"));
    const at::Tensor out = preprocess_for_clip(image.decoded, 16);
    ASSERT_EQ(out.sizes(), want.sizes());
    EXPECT_EQ(at::ne(out, want).sum().item<std::int64_t>(), 0)
        << "max |diff| " << (out - want).abs().max().item<float>();
    ++checked;
  }
  EXPECT_EQ(checked, 5);
}

}  // namespace
}  // namespace clipes::clip

#include "clipes/data/resize.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <opencv2/core.hpp>
#include <string>

#include "clipes/core/error.h"
#include "clipes/io/npy.h"
#include "clipes/io/npy_tensor.h"
#include "support/test_support.h"

namespace clipes::data {
namespace {

cv::Mat to_mat(const io::NpyArray& a) {
  EXPECT_EQ(a.dtype, io::DType::kUInt8);
  EXPECT_EQ(a.shape.size(), 3U);
  const int h = static_cast<int>(a.shape[0]);
  const int w = static_cast<int>(a.shape[1]);
  const int c = static_cast<int>(a.shape[2]);
  cv::Mat m(h, w, CV_8UC(c));
  std::memcpy(m.data, a.data<std::uint8_t>(), a.bytes.size());
  return m;
}

int differing_bytes(const cv::Mat& a, const cv::Mat& b) {
  if (a.size() != b.size() || a.type() != b.type()) return -1;
  const cv::Mat flat_a = a.reshape(1);
  const cv::Mat flat_b = b.reshape(1);
  return cv::countNonZero(flat_a != flat_b);
}

using clipes::testing::error_of;

// Every case Pillow computed in scripts/make_resize_fixtures.py: up/down-scaling, odd sizes, 1xN,
// ratios up to 1000:3, 1 to 4 channels, nearest neighbour where the accumulated position matters.
TEST(PillowResize, BitExactOnAllPillowFixtureCases) {
  const auto file = testing::source_dir() / "tests/data/image/resize_cases.npz";
  const io::NpzEntries npz = io::read_npz(file);
  const io::NpyArray& cases = io::npz_member(npz, "cases", file);
  ASSERT_EQ(cases.shape.size(), 2U);
  ASSERT_EQ(cases.shape[1], 6);
  const std::vector<std::int64_t> v = cases.to_int64();
  int total_bytes = 0;
  for (std::int64_t i = 0; i < cases.shape[0]; ++i) {
    const std::int64_t* row = &v[static_cast<std::size_t>(i * 6)];
    const cv::Mat in = to_mat(io::npz_member(npz, "in_" + std::to_string(i), file));
    const cv::Mat expected = to_mat(io::npz_member(npz, "out_" + std::to_string(i), file));
    ASSERT_EQ(in.cols, row[0]);
    ASSERT_EQ(in.rows, row[1]);
    ASSERT_EQ(in.channels(), row[2]);
    const auto filter = row[5] == 0 ? PillowFilter::kNearest : PillowFilter::kBicubic;
    const cv::Mat out =
        pillow_resize(in, cv::Size(static_cast<int>(row[3]), static_cast<int>(row[4])), filter);
    EXPECT_EQ(differing_bytes(out, expected), 0)
        << "case " << i << ": " << row[0] << "x" << row[1] << "x" << row[2] << " -> " << row[3]
        << "x" << row[4] << (row[5] == 0 ? " nearest" : " bicubic");
    total_bytes += static_cast<int>(expected.total() * expected.elemSize());
  }
  EXPECT_GT(cases.shape[0], 60);
  EXPECT_GT(total_bytes, 50000);
}

TEST(PillowResize, ConstantImageStaysConstant) {
  // The coefficients of each output pixel sum to 1 (normalised in double, then rounded): a flat
  // image must stay flat at every ratio, including extreme ones.
  for (const cv::Size from : {cv::Size(1, 1), cv::Size(7, 3), cv::Size(500, 2), cv::Size(3, 333)}) {
    for (const cv::Size to :
         {cv::Size(1, 1), cv::Size(16, 5), cv::Size(2, 700), cv::Size(999, 1)}) {
      for (const int value : {0, 1, 128, 254, 255}) {
        const cv::Mat in(from, CV_8UC3, cv::Scalar::all(value));
        const cv::Mat out = pillow_resize(in, to, PillowFilter::kBicubic);
        EXPECT_EQ(cv::countNonZero(out.reshape(1) != value), 0)
            << from << " -> " << to << " value " << value;
      }
    }
  }
}

TEST(PillowResize, BicubicOvershootIsClippedAndNotWrapped) {
  // A 0/255 step upsampled rings below 0 and above 255 before clipping (a = -0.5 has negative
  // lobes); a wrap-around would show 255 next to the dark side or 0 next to the bright side.
  cv::Mat step(1, 8, CV_8UC1, cv::Scalar(0));
  step.colRange(4, 8).setTo(255);
  const cv::Mat out = pillow_resize(step, cv::Size(32, 1), PillowFilter::kBicubic);
  for (int x = 0; x < 14; ++x) EXPECT_EQ(out.at<std::uint8_t>(0, x), 0) << x;
  for (int x = 18; x < 32; ++x) EXPECT_EQ(out.at<std::uint8_t>(0, x), 255) << x;
  EXPECT_LT(out.at<std::uint8_t>(0, 15), 128);
  EXPECT_GT(out.at<std::uint8_t>(0, 16), 128);
}

TEST(PillowResize, NearestFollowsAccumulatedPositions) {
  // 3 -> 7: step 3/7, positions 3/14 + k * 3/7 -> source indices 0 0 1 1 1 2 2.
  cv::Mat in(1, 3, CV_8UC1);
  in.at<std::uint8_t>(0, 0) = 10;
  in.at<std::uint8_t>(0, 1) = 20;
  in.at<std::uint8_t>(0, 2) = 30;
  const cv::Mat out = pillow_resize(in, cv::Size(7, 2), PillowFilter::kNearest);
  const std::uint8_t expected[7] = {10, 10, 20, 20, 20, 30, 30};
  for (int y = 0; y < 2; ++y) {
    for (int x = 0; x < 7; ++x) EXPECT_EQ(out.at<std::uint8_t>(y, x), expected[x]) << x;
  }
}

TEST(PillowResize, SameSizeIsAnIndependentCopy) {
  cv::Mat in(3, 4, CV_8UC3, cv::Scalar(1, 2, 3));
  const cv::Mat out = pillow_resize(in, in.size(), PillowFilter::kBicubic);
  EXPECT_EQ(differing_bytes(in, out), 0);
  EXPECT_NE(in.data, out.data);
}

TEST(PillowResize, BadInputsAreRejectedWithReason) {
  const cv::Mat rgb(4, 4, CV_8UC3, cv::Scalar::all(0));
  EXPECT_NE(error_of([&] {
              pillow_resize(cv::Mat(), {2, 2}, PillowFilter::kBicubic);
            }).find("expected a non-empty 8-bit image"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              pillow_resize(cv::Mat(4, 4, CV_16UC1, cv::Scalar(0)), {2, 2}, PillowFilter::kBicubic);
            }).find("OpenCV depth 2"),
            std::string::npos);
  EXPECT_NE(
      error_of([&] {
        pillow_resize(cv::Mat(4, 4, CV_8UC(5), cv::Scalar(0)), {2, 2}, PillowFilter::kBicubic);
      }).find("with 5 channel(s)"),
      std::string::npos);
  EXPECT_NE(error_of([&] {
              pillow_resize(rgb, {0, 3}, PillowFilter::kBicubic);
            }).find("at least 1x1, got 0x3"),
            std::string::npos);
}

TEST(ResizeMapsBilinear, HalfPixelCentresKnownAnswer) {
  // 1x2 -> 1x4 horizontally: sources x = (dx + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 -> edge
  // clamped, 0.75a + 0.25b, 0.25a + 0.75b, edge clamped. Plane 2 is the same times 2.
  at::Tensor maps = at::zeros({2, 1, 2});
  maps[0][0][0] = 1.0F;
  maps[0][0][1] = 5.0F;
  maps[1][0][0] = 2.0F;
  maps[1][0][1] = 10.0F;
  const at::Tensor out = resize_maps_bilinear(maps, 3, 4);
  ASSERT_EQ(out.sizes().vec(), (std::vector<std::int64_t>{2, 3, 4}));
  const float expected[4] = {1.0F, 2.0F, 4.0F, 5.0F};
  for (int y = 0; y < 3; ++y) {
    for (int x = 0; x < 4; ++x) {
      EXPECT_FLOAT_EQ(out[0][y][x].item<float>(), expected[x]);
      EXPECT_FLOAT_EQ(out[1][y][x].item<float>(), 2 * expected[x]);
    }
  }
}

TEST(ResizeMapsBilinear, PlanesAreIndependentAndInputUntouched) {
  const at::Tensor maps = at::rand({3, 5, 7});
  const at::Tensor copy = maps.clone();
  const at::Tensor all = resize_maps_bilinear(maps, 17, 11);
  for (int k = 0; k < 3; ++k) {
    const at::Tensor one = resize_maps_bilinear(maps.slice(0, k, k + 1), 17, 11);
    EXPECT_TRUE(at::equal(one[0], all[k])) << k;
  }
  EXPECT_TRUE(at::equal(maps, copy));
  // A non-contiguous view gives the same result.
  const at::Tensor strided = maps.transpose(1, 2).contiguous().transpose(1, 2);
  EXPECT_TRUE(at::equal(resize_maps_bilinear(strided, 17, 11), all));
}

TEST(ResizeMapsBilinear, BadInputsAreRejectedWithReason) {
  EXPECT_NE(error_of([] {
              resize_maps_bilinear(at::zeros({4, 4}), 8, 8);
            }).find("expected a [K, h, w] float32 tensor, got [4, 4] Float"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              resize_maps_bilinear(at::zeros({1, 4, 4}, at::kDouble), 8, 8);
            }).find("Double"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              resize_maps_bilinear(at::zeros({1, 4, 4}), 0, 8);
            }).find("at least 1x1"),
            std::string::npos);
}

// The reference's final CAMs: attn_highres = cv2.resize(minmax(cam_refined), (W, H)) per class,
// with numpy's float32 min-max: x - min, then x / float32(1e-7 + max).
TEST(ResizeMapsBilinear, MatchesReferenceHighResCams) {
  const auto dir = testing::shared_path("reference/small12-voc-mini");
  CLIPES_REQUIRE_FILE(dir / "2007_000032/cam_refined.npy");
  int images = 0;
  for (const char* id :
       {"2007_000032", "2008_003333", "2009_000177", "2010_005830", "2011_002770"}) {
    const at::Tensor refined = io::read_npy_tensor(dir / id / "cam_refined.npy");
    const at::Tensor expected = io::read_npy_tensor(dir / id / "attn_highres.npy");
    at::Tensor normalised = refined.clone();
    for (std::int64_t k = 0; k < normalised.size(0); ++k) {
      at::Tensor plane = normalised[k];
      plane.sub_(plane.min());
      const double max = plane.max().item<float>();
      plane.div_(at::scalar_tensor(static_cast<float>(max + 1e-7)));
    }
    const at::Tensor out = resize_maps_bilinear(normalised, static_cast<int>(expected.size(1)),
                                                static_cast<int>(expected.size(2)));
    const double diff = (out - expected).abs().max().item<double>();
    EXPECT_EQ(diff, 0.0) << id;
    ++images;
  }
  EXPECT_EQ(images, 5);
}

}  // namespace
}  // namespace clipes::data

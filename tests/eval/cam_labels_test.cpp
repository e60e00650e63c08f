#include "clipes/eval/cam_labels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <opencv2/core.hpp>
#include <random>

#include "clipes/core/error.h"
#include "clipes/io/half.h"

namespace clipes::eval {
namespace {

using Kind = BackgroundSetting::Kind;

io::NpyArray keys_of(std::vector<std::int64_t> keys) {
  return io::NpyArray::from<std::int64_t>({static_cast<std::int64_t>(keys.size())}, keys.data());
}

io::NpyArray cams_f32(std::int64_t k, std::int64_t h, std::int64_t w, const std::vector<float>& v) {
  return io::NpyArray::from<float>({k, h, w}, v.data());
}

std::vector<int> labels_of(const cv::Mat& m) {
  std::vector<int> out;
  for (int y = 0; y < m.rows; ++y)
    for (int x = 0; x < m.cols; ++x) out.push_back(m.at<std::uint8_t>(y, x));
  return out;
}

TEST(CamLabels, HandWorkedPixelsForPowersAndThreshold) {
  // Pixels (cam of key 4, cam of key 14): a (0.7, 0.2), b (0.3, 0.6), c (0.4, 0.1), d (0.5, 0.5).
  const auto cams = cams_f32(2, 1, 4, {0.7f, 0.3f, 0.4f, 0.5f, 0.2f, 0.6f, 0.1f, 0.5f});
  const std::vector<BackgroundSetting> settings = {
      {Kind::kPower, 1.0}, {Kind::kPower, 2.0}, {Kind::kThreshold, 0.45}};
  const auto maps = cam_labels(keys_of({4, 14}), cams, settings, 21, "test");
  ASSERT_EQ(maps.size(), 3u);
  // α = 1: bg = 0.3, 0.4, 0.6, 0.5 -> a: 5, b: 15, c: bg, d: tie with the max, bg comes first.
  EXPECT_EQ(labels_of(maps[0]), (std::vector<int>{5, 15, 0, 0}));
  // α = 2: bg = 0.09, 0.16, 0.36, 0.25 -> d: tie between the classes, the first (key 4) wins.
  EXPECT_EQ(labels_of(maps[1]), (std::vector<int>{5, 15, 5, 5}));
  // t = 0.45: c -> bg, d -> key 4.
  EXPECT_EQ(labels_of(maps[2]), (std::vector<int>{5, 15, 0, 5}));
}

TEST(CamLabels, NoClassesGiveAllBackground) {
  const float unused = 0;
  const io::NpyArray cams = io::NpyArray::from<float>({0, 2, 3}, &unused);
  const auto maps = cam_labels(keys_of({}), cams, {{Kind::kPower, 1.0}}, 21, "test");
  ASSERT_EQ(maps.size(), 1u);
  EXPECT_EQ(maps[0].size(), cv::Size(3, 2));
  EXPECT_EQ(cv::countNonZero(maps[0]), 0);
}

TEST(CamLabels, Float16FollowsNumpyHalfArithmetic) {
  // m = float16(0.382): in float16, (1 - m)^2 rounds up to m itself, so the background wins the
  // tie; computed in float32 it stays below m (NumPy agrees: argmax([(1-m)**2, m]) = 0 for
  // float16 arrays).
  const std::uint16_t m16 = io::float_to_half(0.382f);
  const float m = io::half_to_float(m16);
  const float h = 1.0f - m;
  ASSERT_LT(h * h, m);
  const io::NpyArray half_cams = io::NpyArray::float16_from({1, 1, 1}, &m);
  const io::NpyArray float_cams = io::NpyArray::from<float>({1, 1, 1}, &m);
  const std::vector<BackgroundSetting> alpha2 = {{Kind::kPower, 2.0}};
  EXPECT_EQ(cam_labels(keys_of({6}), half_cams, alpha2, 21, "f16")[0].at<std::uint8_t>(0, 0), 0);
  EXPECT_EQ(cam_labels(keys_of({6}), float_cams, alpha2, 21, "f32")[0].at<std::uint8_t>(0, 0), 7);
}

// argmax over [bg, cams] written out per pixel, with NumPy's dtype rules.
int brute_force_label(const std::vector<float>& values, const std::vector<std::int64_t>& keys,
                      const BackgroundSetting& s, bool half) {
  auto r = [&](float v) { return half ? io::half_to_float(io::float_to_half(v)) : v; };
  const float m = *std::max_element(values.begin(), values.end());
  float bg = 0;
  if (s.kind == Kind::kThreshold) {
    bg = r(static_cast<float>(s.value));
  } else {
    const float h = r(1.0f - m);
    bg = s.value == 1.0 ? h : r(h * h);
  }
  std::vector<float> all{bg};
  all.insert(all.end(), values.begin(), values.end());
  const auto first_max = std::max_element(all.begin(), all.end()) - all.begin();
  return first_max == 0 ? 0 : static_cast<int>(keys[first_max - 1] + 1);
}

TEST(CamLabels, MatchesPerPixelArgmaxOnRandomCams) {
  std::mt19937 rng(7);
  const std::vector<BackgroundSetting> settings = {
      {Kind::kPower, 1.0}, {Kind::kPower, 2.0}, {Kind::kThreshold, 0.375}, {Kind::kThreshold, 0.3}};
  for (bool half : {false, true}) {
    for (int trial = 0; trial < 12; ++trial) {
      const int k = 1 + trial % 4, height = 17, width = 19;
      std::vector<std::int64_t> keys;
      for (int i = 0; i < k; ++i) keys.push_back((i * 7 + trial) % 20);
      // Even trials: coarse values (multiples of 1/16) so that ties happen often; odd trials:
      // any value in [0, 1), which exercises the float16 rounding of the background.
      std::uniform_int_distribution<int> level(0, 16);
      std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
      std::vector<float> values(static_cast<std::size_t>(k * height * width));
      for (float& v : values) {
        v = trial % 2 == 0 ? static_cast<float>(level(rng)) / 16.0f : uniform(rng);
        if (half) v = io::half_to_float(io::float_to_half(v));
      }
      io::NpyArray cams;
      if (half) {
        cams = io::NpyArray::float16_from({k, height, width}, values.data());
      } else {
        cams = cams_f32(k, height, width, values);
      }
      const auto maps = cam_labels(keys_of(keys), cams, settings, 21, "random");
      for (std::size_t s = 0; s < settings.size(); ++s) {
        for (int p = 0; p < height * width; ++p) {
          std::vector<float> pixel;
          for (int c = 0; c < k; ++c)
            pixel.push_back(values[static_cast<std::size_t>(c * height * width + p)]);
          ASSERT_EQ(maps[s].at<std::uint8_t>(p / width, p % width),
                    brute_force_label(pixel, keys, settings[s], half))
              << "setting " << settings[s].name() << " pixel " << p << " half " << half;
        }
      }
    }
  }
}

void expect_error(const io::NpyArray& keys, const io::NpyArray& cams, int n,
                  const std::string& fragment) {
  try {
    cam_labels(keys, cams, {{Kind::kPower, 1.0}}, n, "x.npz");
    FAIL() << "expected an error containing: " << fragment;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("x.npz"), std::string::npos) << e.what();
  }
}

TEST(CamLabels, BadInputsAreNamed) {
  const auto two = cams_f32(2, 1, 1, {0.1f, 0.2f});
  expect_error(keys_of({3, 20}), two, 21, "key 20 is beyond the 21 classes");
  expect_error(keys_of({-1, 2}), two, 21, "key -1 is beyond");
  expect_error(keys_of({1}), two, 21, "expected cams of shape [K=1, H, W], got [2, 1, 1]");
  expect_error(keys_of({1, 2}), cams_f32(2, 1, 1, {0.1f, NAN}), 21, "non-finite");
  const std::vector<std::int32_t> ints = {1, 2};
  expect_error(keys_of({1, 2}), io::NpyArray::from<std::int32_t>({2, 1, 1}, ints.data()), 21,
               "float16, float32 or float64");
}

TEST(BackgroundSetting, Names) {
  EXPECT_EQ((BackgroundSetting{Kind::kPower, 2.0}.name()), "(1-max)^2");
  EXPECT_EQ((BackgroundSetting{Kind::kThreshold, 0.35}.name()), "t=0.35");
}

}  // namespace
}  // namespace clipes::eval

#include "clipes/eval/cam_labels.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "clipes/core/error.h"
#include "clipes/eval/confusion.h"
#include "clipes/io/half.h"

namespace clipes::eval {

namespace {

// float32 -> nearest float16 (ties to even) -> float32. In the normal float16 range this is
// rounding the mantissa to 10 bits; elsewhere (subnormal, overflow, NaN) the exact converter.
float round_half(float v) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &v, sizeof bits);
  const std::uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude < 0x38800000u || magnitude >= 0x477fe000u) {  // below 2^-14, or rounds past 65504
    return io::half_to_float(io::float_to_half(v));
  }
  bits += 0x0fffu + ((bits >> 13) & 1u);
  bits &= ~0x1fffu;
  float out = 0;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

// Every float16 bit pattern as float32 (immutable after first use).
const std::vector<float>& half_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (std::uint32_t h = 0; h < 65536; ++h)
      t[h] = io::half_to_float(static_cast<std::uint16_t>(h));
    return t;
  }();
  return table;
}

// Per pixel: the largest CAM value (`best`) and the first class index reaching it (`arg`).
template <class C, class Load>
void max_over_classes(std::int64_t classes, std::int64_t pixels, Load load, std::vector<C>& best,
                      std::vector<std::int32_t>& arg, std::string_view what) {
  best.assign(static_cast<std::size_t>(pixels), C(0));
  arg.assign(static_cast<std::size_t>(pixels), 0);
  for (std::int64_t k = 0; k < classes; ++k) {
    for (std::int64_t p = 0; p < pixels; ++p) {
      const C v = load(k * pixels + p);
      if (!std::isfinite(v)) {
        throw Error(fmt::format("{}: cams[{}] holds a non-finite value ({}) at pixel {}", what, k,
                                static_cast<double>(v), p));
      }
      if (k == 0 || v > best[p]) {
        best[p] = v;
        arg[p] = static_cast<std::int32_t>(k);
      }
    }
  }
}

// bg for one pixel with the NumPy arithmetic of dtype C (`half`: float16 stored, float32 math).
template <class C>
C background(const BackgroundSetting& s, C max_cam, bool half) {
  auto round = [&](C v) { return half ? static_cast<C>(round_half(static_cast<float>(v))) : v; };
  if (s.kind == BackgroundSetting::Kind::kThreshold) return round(static_cast<C>(s.value));
  const C h = round(C(1) - max_cam);
  if (s.value == 1.0) return h;
  if (s.value == 2.0) return round(h * h);
  return round(static_cast<C>(std::pow(h, static_cast<C>(s.value))));
}

template <class C, class Load>
std::vector<cv::Mat> label_maps(const std::vector<std::uint8_t>& ids, int height, int width,
                                Load load, bool half,
                                const std::vector<BackgroundSetting>& settings,
                                std::string_view what) {
  const std::int64_t pixels = static_cast<std::int64_t>(height) * width;
  const auto classes = static_cast<std::int64_t>(ids.size());
  std::vector<C> best;
  std::vector<std::int32_t> arg;
  max_over_classes<C>(classes, pixels, load, best, arg, what);
  std::vector<cv::Mat> out;
  for (const BackgroundSetting& s : settings) {
    cv::Mat labels(height, width, CV_8UC1);
    auto* l = labels.ptr<std::uint8_t>();
    if (classes == 0) {
      labels.setTo(0);
    } else if (s.kind == BackgroundSetting::Kind::kThreshold) {
      const C bg = background<C>(s, C(0), half);
      for (std::int64_t p = 0; p < pixels; ++p) l[p] = bg >= best[p] ? 0 : ids[arg[p]];
    } else {
      for (std::int64_t p = 0; p < pixels; ++p) {
        const C bg = background<C>(s, best[p], half);
        // numpy.argmax takes the first NaN as the maximum: a NaN background wins.
        l[p] = (std::isnan(bg) || bg >= best[p]) ? 0 : ids[arg[p]];
      }
    }
    out.push_back(labels);
  }
  return out;
}

}  // namespace

std::string BackgroundSetting::name() const {
  if (kind == Kind::kThreshold) return fmt::format("t={:g}", value);
  return fmt::format("(1-max)^{:g}", value);
}

std::vector<cv::Mat> cam_labels(const io::NpyArray& keys, const io::NpyArray& cams,
                                const std::vector<BackgroundSetting>& settings, int num_classes,
                                std::string_view what) {
  if (keys.shape.size() != 1) {
    throw Error(
        fmt::format("{}: expected keys of shape [K], got {} dimensions", what, keys.shape.size()));
  }
  if (cams.shape.size() != 3 || cams.shape[0] != keys.shape[0]) {
    throw Error(fmt::format("{}: expected cams of shape [K={}, H, W], got [{}]", what,
                            keys.shape[0], fmt::join(cams.shape, ", ")));
  }
  if (cams.shape[1] <= 0 || cams.shape[2] <= 0 || cams.shape[1] > 1 << 20 ||
      cams.shape[2] > 1 << 20) {
    throw Error(fmt::format("{}: cams have an empty or oversized image plane [{}]", what,
                            fmt::join(cams.shape, ", ")));
  }
  const int limit = num_classes > 0 ? num_classes : kMaxClasses;
  std::vector<std::uint8_t> ids;
  for (std::int64_t key : keys.to_int64()) {
    if (key < 0 || key + 1 >= limit) {
      throw Error(
          fmt::format("{}: key {} is beyond the {} classes (keys are 0-based class "
                      "indices 0..{}, id = key + 1)",
                      what, key, limit, limit - 2));
    }
    ids.push_back(static_cast<std::uint8_t>(key + 1));
  }
  const int height = static_cast<int>(cams.shape[1]);
  const int width = static_cast<int>(cams.shape[2]);
  switch (cams.dtype) {
    case io::DType::kFloat16: {
      const std::uint16_t* d = cams.data<std::uint16_t>();
      const float* table = half_table().data();
      return label_maps<float>(
          ids, height, width, [d, table](std::int64_t i) { return table[d[i]]; }, true, settings,
          what);
    }
    case io::DType::kFloat32: {
      const float* d = cams.data<float>();
      return label_maps<float>(
          ids, height, width, [d](std::int64_t i) { return d[i]; }, false, settings, what);
    }
    case io::DType::kFloat64: {
      const double* d = cams.data<double>();
      return label_maps<double>(
          ids, height, width, [d](std::int64_t i) { return d[i]; }, false, settings, what);
    }
    default:
      throw Error(fmt::format("{}: expected cams of dtype float16, float32 or float64, got {}",
                              what, io::dtype_descr(cams.dtype)));
  }
}

}  // namespace clipes::eval

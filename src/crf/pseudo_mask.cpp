#include "clipes/crf/pseudo_mask.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "clipes/core/error.h"
#include "clipes/data/mask_files.h"
#include "clipes/io/half.h"

namespace clipes::crf {

namespace {

// The DeepLab/Caffe mean in BGR order, as the reference subtracted it.
constexpr double kMeanBgr[3] = {104.008, 116.669, 122.675};

float to_half(float v) { return io::half_to_float(io::float_to_half(v)); }

// numpy's float -> uint8 cast on x86-64: truncation toward zero to an integer, then the low
// eight bits (-0.5 -> 0, -1.3 -> 255, -128.5 -> 128).
std::uint8_t numpy_to_uint8(float v) {
  return static_cast<std::uint8_t>(static_cast<std::int64_t>(v) & 0xff);
}

void check_planar(const PlanarView& view, const char* what) {
  if (view.data == nullptr || view.channels < 1 || view.height < 1 || view.width < 1) {
    throw Error(fmt::format(
        "{}: expected a non-empty [channels, height, width] array, got [{}, {}, "
        "{}]{}",
        what, view.channels, view.height, view.width, view.data == nullptr ? " with no data" : ""));
  }
}

}  // namespace

cv::Mat crf_input_image(const cv::Mat& rgb, CrfImageMode mode) {
  if (rgb.empty() || rgb.type() != CV_8UC3) {
    throw Error(
        fmt::format("CRF image: expected an 8-bit RGB image (CV_8UC3), got {}x{} of type {}",
                    rgb.cols, rgb.rows, rgb.type()));
  }
  if (mode == CrfImageMode::kRgb) return rgb;
  cv::Mat out(rgb.rows, rgb.cols, CV_8UC3);
  for (int y = 0; y < rgb.rows; ++y) {
    const std::uint8_t* in = rgb.ptr<std::uint8_t>(y);
    std::uint8_t* o = out.ptr<std::uint8_t>(y);
    for (int x = 0; x < rgb.cols; ++x) {
      for (int c = 0; c < 3; ++c) {
        // BGR channel c is RGB channel 2 − c; numpy computed float32(pixel − mean) in double.
        const double value = static_cast<double>(in[3 * x + 2 - c]) - kMeanBgr[c];
        o[3 * x + c] = numpy_to_uint8(static_cast<float>(value));
      }
    }
  }
  return out;
}

std::vector<float> crf_probabilities(const PlanarView& cams, CrfImageMode mode) {
  check_planar(cams, "CRF probabilities: cams");
  const bool half = mode == CrfImageMode::kReference;
  const std::int64_t n = static_cast<std::int64_t>(cams.height) * cams.width;
  const int k_count = cams.channels;
  std::vector<float> prob(static_cast<std::size_t>(k_count + 1) * n);
  float* bg = prob.data();
  std::fill_n(bg, n, -std::numeric_limits<float>::infinity());
  for (int k = 0; k < k_count; ++k) {
    const float* cam = cams.data + k * n;
    float* p = prob.data() + (k + 1) * n;
    for (std::int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(cam[i])) {
        throw Error(fmt::format("CRF probabilities: cam {} at (row {}, column {}) is {}", k,
                                i / cams.width, i % cams.width, cam[i]));
      }
      p[i] = half ? to_half(cam[i]) : cam[i];
      bg[i] = std::max(bg[i], p[i]);
    }
  }
  for (std::int64_t i = 0; i < n; ++i) {
    bg[i] = half ? to_half(1.0f - bg[i]) : 1.0f - bg[i];
  }
  return prob;
}

std::vector<float> crf_unary(const PlanarView& probabilities, CrfImageMode mode) {
  check_planar(probabilities, "CRF unary: probabilities");
  const std::size_t count =
      static_cast<std::size_t>(probabilities.channels) * probabilities.height * probabilities.width;
  std::vector<float> unary(count);
  if (mode == CrfImageMode::kReference) {
    const float lo = to_half(1e-5f);
    for (std::size_t i = 0; i < count; ++i) {
      const float p = std::clamp(to_half(probabilities.data[i]), lo, 1.0f);
      unary[i] = -to_half(std::log(p));
    }
  } else {
    for (std::size_t i = 0; i < count; ++i) {
      unary[i] = -std::log(std::clamp(probabilities.data[i], 1e-5f, 1.0f));
    }
  }
  return unary;
}

PseudoMask pseudo_mask_from_marginals(const PlanarView& q, const std::vector<int>& keys,
                                      float confidence_threshold) {
  check_planar(q, "pseudo mask: marginals");
  if (static_cast<std::size_t>(q.channels) != keys.size() + 1) {
    throw Error(fmt::format("pseudo mask: expected {} marginals (background + {} keys), got {}",
                            keys.size() + 1, keys.size(), q.channels));
  }
  std::vector<std::uint8_t> ids(keys.size() + 1, 0);
  for (std::size_t k = 0; k < keys.size(); ++k) {
    if (keys[k] < 0 || keys[k] > 253) {
      throw Error(
          fmt::format("pseudo mask: class index {} (key {}) must be in [0, 253]", keys[k], k));
    }
    ids[k + 1] = static_cast<std::uint8_t>(keys[k] + 1);
  }
  const std::int64_t n = static_cast<std::int64_t>(q.height) * q.width;
  PseudoMask mask;
  mask.labels.create(q.height, q.width, CV_8UC1);
  mask.argmax.create(q.height, q.width, CV_8UC1);
  std::uint8_t* argmax = mask.argmax.ptr<std::uint8_t>(0);
  mask.confidence.create(q.height, q.width, CV_32FC1);
  std::uint8_t* labels = mask.labels.ptr<std::uint8_t>(0);
  float* confidence = mask.confidence.ptr<float>(0);
  for (std::int64_t i = 0; i < n; ++i) {
    int best = 0;
    float best_q = q.data[i];
    for (int l = 1; l < q.channels; ++l) {
      const float v = q.data[l * n + i];
      if (v > best_q) {
        best_q = v;
        best = l;
      }
    }
    confidence[i] = best_q;
    argmax[i] = ids[best];
    labels[i] = data::below_confidence_threshold(best_q, confidence_threshold)
                    ? static_cast<std::uint8_t>(data::kIgnoreLabel)
                    : ids[best];
  }
  return mask;
}

PseudoMask make_pseudo_mask(const PlanarView& cams, const std::vector<int>& keys,
                            const cv::Mat& rgb, const PseudoMaskConfig& config,
                            CrfWorkspace* workspace) {
  validate(config, config::Validator("pseudo mask").nested("pseudo_mask"));
  check_planar(cams, "pseudo mask: cams");
  if (static_cast<std::size_t>(cams.channels) != keys.size()) {
    throw Error(fmt::format("pseudo mask: {} CAMs for {} keys; expected one CAM per key",
                            cams.channels, keys.size()));
  }
  if (rgb.rows != cams.height || rgb.cols != cams.width) {
    throw Error(
        fmt::format("pseudo mask: the image is {}x{} but the CAMs are {}x{} (width x "
                    "height)",
                    rgb.cols, rgb.rows, cams.width, cams.height));
  }
  const CrfImageMode mode = config.crf.image;
  const cv::Mat image = crf_input_image(rgb, mode);
  const std::vector<float> prob = crf_probabilities(cams, mode);
  const PlanarView prob_view{prob.data(), cams.channels + 1, cams.height, cams.width};
  const std::vector<float> unary = crf_unary(prob_view, mode);
  const PlanarView unary_view{unary.data(), cams.channels + 1, cams.height, cams.width};
  const std::vector<float> q = DenseCrf(image, config.crf, workspace).infer(unary_view, workspace);
  const PlanarView q_view{q.data(), cams.channels + 1, cams.height, cams.width};
  return pseudo_mask_from_marginals(q_view, keys, config.confidence_threshold);
}

}  // namespace clipes::crf

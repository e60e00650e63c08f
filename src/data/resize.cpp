#include "clipes/data/resize.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include <fmt/format.h>
#include <opencv2/imgproc.hpp>

#include "clipes/core/error.h"

// This file must be compiled without floating-point contraction (see src/data/CMakeLists.txt):
// the coefficients are computed in double exactly as Pillow's C code writes them.

namespace clipes::data {

namespace {

// Pillow: 8 bits for the result, 2 for overflow of negative lobes, the rest for the fraction.
constexpr int kPrecisionBits = 32 - 8 - 2;

// Keys' cubic convolution kernel with a = -0.5, support 2 (libImaging/Resample.c).
double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}
constexpr double kBicubicSupport = 2.0;

// Per output position: the first input index, the number of taps and `ksize` fixed-point
// weights (only the first `count` are used).
struct Coefficients {
  int ksize = 0;
  std::vector<int> first;
  std::vector<int> count;
  std::vector<std::int32_t> weights;
};

// precompute_coeffs + normalize_coeffs_8bpc of Resample.c for the box [0, in_size).
Coefficients bicubic_coefficients(int in_size, int out_size) {
  const float in0 = 0.0F;
  const auto in1 = static_cast<float>(in_size);
  const double scale = static_cast<double>(in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = kBicubicSupport * filterscale;
  Coefficients c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(static_cast<std::size_t>(out_size));
  c.count.resize(static_cast<std::size_t>(out_size));
  c.weights.assign(static_cast<std::size_t>(out_size) * static_cast<std::size_t>(c.ksize), 0);
  std::vector<double> k(static_cast<std::size_t>(c.ksize));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);  // truncation, as in C
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = bicubic_filter((x + xmin - center + 0.5) * ss);
      k[static_cast<std::size_t>(x)] = w;
      ww += w;
    }
    std::int32_t* out = &c.weights[static_cast<std::size_t>(xx) * static_cast<std::size_t>(c.ksize)];
    for (int x = 0; x < xmax; ++x) {
      double w = k[static_cast<std::size_t>(x)];
      if (ww != 0.0) w /= ww;
      out[x] = w < 0 ? static_cast<std::int32_t>(-0.5 + w * (1 << kPrecisionBits))
                     : static_cast<std::int32_t>(0.5 + w * (1 << kPrecisionBits));
    }
    c.first[static_cast<std::size_t>(xx)] = xmin;
    c.count[static_cast<std::size_t>(xx)] = xmax;
  }
  return c;
}

// Pillow's clip8: the fixed-point sum shifted down (arithmetic shift) and clamped to [0, 255].
inline std::uint8_t clip8(std::int32_t sum) {
  const std::int32_t v = sum >> kPrecisionBits;
  return static_cast<std::uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

template <int C>
void horizontal_pass(const cv::Mat& in, cv::Mat& out, const Coefficients& c) {
  const int out_w = out.cols;
  for (int y = 0; y < in.rows; ++y) {
    const std::uint8_t* src = in.ptr<std::uint8_t>(y);
    std::uint8_t* dst = out.ptr<std::uint8_t>(y);
    for (int xx = 0; xx < out_w; ++xx) {
      const std::int32_t* k =
          &c.weights[static_cast<std::size_t>(xx) * static_cast<std::size_t>(c.ksize)];
      const int xmin = c.first[static_cast<std::size_t>(xx)];
      const int n = c.count[static_cast<std::size_t>(xx)];
      std::int32_t ss[C];
      for (int ch = 0; ch < C; ++ch) ss[ch] = 1 << (kPrecisionBits - 1);
      const std::uint8_t* p = src + static_cast<std::ptrdiff_t>(xmin) * C;
      for (int x = 0; x < n; ++x) {
        for (int ch = 0; ch < C; ++ch) ss[ch] += static_cast<std::int32_t>(p[x * C + ch]) * k[x];
      }
      for (int ch = 0; ch < C; ++ch) dst[xx * C + ch] = clip8(ss[ch]);
    }
  }
}

// Each output row is a weighted sum of whole input rows: same sums as Pillow's per-pixel loop
// (same terms in the same order), laid out so the compiler vectorises the inner loop.
void vertical_pass(const cv::Mat& in, cv::Mat& out, const Coefficients& c) {
  const int row_len = in.cols * in.channels();
  std::vector<std::int32_t> acc(static_cast<std::size_t>(row_len));
  for (int yy = 0; yy < out.rows; ++yy) {
    const std::int32_t* k =
        &c.weights[static_cast<std::size_t>(yy) * static_cast<std::size_t>(c.ksize)];
    const int ymin = c.first[static_cast<std::size_t>(yy)];
    const int n = c.count[static_cast<std::size_t>(yy)];
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    for (int y = 0; y < n; ++y) {
      const std::uint8_t* src = in.ptr<std::uint8_t>(ymin + y);
      const std::int32_t w = k[y];
      std::int32_t* a = acc.data();
      for (int i = 0; i < row_len; ++i) a[i] += static_cast<std::int32_t>(src[i]) * w;
    }
    std::uint8_t* dst = out.ptr<std::uint8_t>(yy);
    for (int i = 0; i < row_len; ++i) dst[i] = clip8(acc[static_cast<std::size_t>(i)]);
  }
}

void horizontal_any(const cv::Mat& in, cv::Mat& out, const Coefficients& c) {
  switch (in.channels()) {
    case 1: horizontal_pass<1>(in, out, c); break;
    case 2: horizontal_pass<2>(in, out, c); break;
    case 3: horizontal_pass<3>(in, out, c); break;
    default: horizontal_pass<4>(in, out, c); break;
  }
}

// ImagingResampleInner: horizontal pass (only over the rows the vertical pass reads), then the
// vertical pass; a pass is skipped when its dimension is unchanged.
cv::Mat resample_bicubic(const cv::Mat& image, cv::Size size) {
  const bool need_horizontal = size.width != image.cols;
  const bool need_vertical = size.height != image.rows;
  const Coefficients horiz = bicubic_coefficients(image.cols, size.width);
  Coefficients vert = bicubic_coefficients(image.rows, size.height);
  cv::Mat current = image;
  if (need_horizontal) {
    const int first_row = vert.first.front();
    const int last_row = vert.first.back() + vert.count.back();
    for (int& f : vert.first) f -= first_row;
    cv::Mat temp(last_row - first_row, size.width, image.type());
    horizontal_any(image.rowRange(first_row, last_row), temp, horiz);
    current = temp;
  }
  if (need_vertical) {
    cv::Mat out(size.height, current.cols, image.type());
    vertical_pass(current, out, vert);
    return out;
  }
  return current.data == image.data ? image.clone() : current;
}

// ImagingScaleAffine (Geometry.c) with a = (in/out, 0, 0, 0, in/out, 0): the source position
// starts at half a step and is accumulated step by step in double.
std::vector<int> nearest_indices(int in_size, int out_size) {
  const double step = static_cast<double>(static_cast<float>(in_size) - 0.0F) / out_size;
  std::vector<int> index(static_cast<std::size_t>(out_size), -1);
  double pos = 0.0 + step * 0.5;
  for (int x = 0; x < out_size; ++x) {
    const int i = pos < 0.0 ? -1 : static_cast<int>(pos);
    if (i >= 0 && i < in_size) index[static_cast<std::size_t>(x)] = i;
    pos += step;
  }
  return index;
}

cv::Mat resample_nearest(const cv::Mat& image, cv::Size size) {
  const std::vector<int> xs = nearest_indices(image.cols, size.width);
  const std::vector<int> ys = nearest_indices(image.rows, size.height);
  const int channels = image.channels();
  cv::Mat out(size, image.type(), cv::Scalar::all(0));  // Pillow fills what no source covers
  for (int y = 0; y < size.height; ++y) {
    const int sy = ys[static_cast<std::size_t>(y)];
    if (sy < 0) continue;
    const std::uint8_t* src = image.ptr<std::uint8_t>(sy);
    std::uint8_t* dst = out.ptr<std::uint8_t>(y);
    for (int x = 0; x < size.width; ++x) {
      const int sx = xs[static_cast<std::size_t>(x)];
      if (sx < 0) continue;
      for (int ch = 0; ch < channels; ++ch) dst[x * channels + ch] = src[sx * channels + ch];
    }
  }
  return out;
}

}  // namespace

cv::Mat pillow_resize(const cv::Mat& image, cv::Size size, PillowFilter filter) {
  if (image.empty() || image.depth() != CV_8U || image.channels() > 4 || image.dims != 2) {
    throw Error(fmt::format(
        "pillow_resize: expected a non-empty 8-bit image with 1 to 4 channels, got {}x{} with {} "
        "channel(s) of OpenCV depth {}",
        image.cols, image.rows, image.channels(), image.depth()));
  }
  if (size.width < 1 || size.height < 1) {
    throw Error(fmt::format("pillow_resize: output size must be at least 1x1, got {}x{}",
                            size.width, size.height));
  }
  if (size.width == image.cols && size.height == image.rows) return image.clone();
  return filter == PillowFilter::kNearest ? resample_nearest(image, size)
                                          : resample_bicubic(image, size);
}

at::Tensor resize_maps_bilinear(const at::Tensor& maps, int height, int width) {
  if (maps.dim() != 3 || maps.scalar_type() != at::kFloat) {
    throw Error(fmt::format("resize_maps_bilinear: expected a [K, h, w] float32 tensor, got {} {}",
                            c10::str(maps.sizes()), c10::toString(maps.scalar_type())));
  }
  if (maps.size(1) < 1 || maps.size(2) < 1 || height < 1 || width < 1) {
    throw Error(fmt::format("resize_maps_bilinear: sizes must be at least 1x1, got maps {} -> {}x{}",
                            c10::str(maps.sizes()), height, width));
  }
  const at::Tensor in = maps.to(at::kCPU).contiguous();
  const auto planes = in.size(0);
  const int h = static_cast<int>(in.size(1));
  const int w = static_cast<int>(in.size(2));
  at::Tensor out = at::empty({planes, height, width}, in.options());
  for (std::int64_t k = 0; k < planes; ++k) {
    const cv::Mat src(h, w, CV_32FC1, in[k].data_ptr<float>());
    cv::Mat dst(height, width, CV_32FC1, out[k].data_ptr<float>());
    cv::resize(src, dst, cv::Size(width, height), 0.0, 0.0, cv::INTER_LINEAR);
    TORCH_INTERNAL_ASSERT(dst.data == out[k].data_ptr(), "cv::resize reallocated its output");
  }
  return out;
}

}  // namespace clipes::data

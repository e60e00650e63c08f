#include "clipes/clip/preprocess.h"

#include <ATen/ATen.h>

#include <cstdint>

#include <fmt/format.h>

#include "clipes/core/error.h"

namespace clipes::clip {

cv::Size clip_input_size(cv::Size image_size, int patch_size) {
  if (patch_size < 1) throw Error(fmt::format("CLIP patch size must be >= 1, got {}", patch_size));
  if (image_size.width < 1 || image_size.height < 1) {
    throw Error(fmt::format("CLIP preprocessing needs a non-empty image, got {}x{}",
                            image_size.width, image_size.height));
  }
  // The reference: int(np.ceil(scale * H / patch) * patch) with scale 1.0; exact in integers.
  const auto round_up = [patch_size](int v) { return (v + patch_size - 1) / patch_size * patch_size; };
  return {round_up(image_size.width), round_up(image_size.height)};
}

at::Tensor normalize_for_clip(const cv::Mat& rgb) {
  if (rgb.empty() || rgb.type() != CV_8UC3) {
    throw Error(fmt::format("CLIP normalisation expects a non-empty 8-bit RGB image (CV_8UC3), got "
                            "{}x{} of OpenCV type {}",
                            rgb.cols, rgb.rows, rgb.type()));
  }
  // torchvision: ToTensor divides the float32 image by 255, Normalize subtracts the float32 mean
  // and divides by the float32 std, each rounded to float32. 256 values per channel: a table.
  std::array<std::array<float, 256>, 3> table{};
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      const float scaled = static_cast<float>(v) / 255.0F;
      const float centred = scaled - kClipMean[static_cast<std::size_t>(c)];
      table[static_cast<std::size_t>(c)][static_cast<std::size_t>(v)] =
          centred / kClipStd[static_cast<std::size_t>(c)];
    }
  }
  const int h = rgb.rows;
  const int w = rgb.cols;
  at::Tensor out = at::empty({1, 3, h, w}, at::TensorOptions().dtype(at::kFloat));
  float* planes[3];
  for (int c = 0; c < 3; ++c) planes[c] = out.data_ptr<float>() + static_cast<std::ptrdiff_t>(c) * h * w;
  for (int y = 0; y < h; ++y) {
    const std::uint8_t* s = rgb.ptr<std::uint8_t>(y);
    const std::ptrdiff_t row = static_cast<std::ptrdiff_t>(y) * w;
    for (int x = 0; x < w; ++x) {
      planes[0][row + x] = table[0][s[3 * x]];
      planes[1][row + x] = table[1][s[3 * x + 1]];
      planes[2][row + x] = table[2][s[3 * x + 2]];
    }
  }
  return out;
}

at::Tensor preprocess_for_clip(const data::DecodedImage& image, int patch_size) {
  const cv::Size size = clip_input_size(image.pixels.size(), patch_size);
  return normalize_for_clip(data::to_rgb(data::resize_image(image, size, data::PillowFilter::kBicubic)));
}

}  // namespace clipes::clip

#pragma once
/// Resizing as the reference does it, bit for bit.
///
/// - pillow_resize: Pillow's Image.resize on 8-bit images (Pillow 9.x, libImaging/Resample.c and
///   Geometry.c), the resize the reference's torchvision Resize(BICUBIC) runs on a PIL image.
///   Spec §2. Bicubic is Keys' cubic with a = -0.5, support 2, widened by the scale factor when
///   downscaling (antialiasing); each output pixel's coefficients are normalised to sum 1 in
///   double, then rounded to fixed point with 22 fractional bits (PRECISION_BITS = 32 - 8 - 2).
///   Two separable passes: horizontal first into a uint8 intermediate (rounded half up, clipped to
///   [0, 255]), then vertical; a pass whose dimension is unchanged is skipped. Nearest picks
///   source pixel floor((x + 0.5) * in / out), the position accumulated in double step by step as
///   Pillow does (which moves a few picks compared with a direct product).
///   The mode rules of Image.resize (palette and bilevel images always nearest, alpha images
///   premultiplied) are in clipes/data/image.h: this function resamples every channel alike.
/// - resize_maps_bilinear: OpenCV's cv::resize INTER_LINEAR on float maps, the reference's
///   cv2.resize(cam, (W, H)) per class.

#include <ATen/core/Tensor.h>
#include <opencv2/core/mat.hpp>

namespace clipes::data {

/// Pillow's resampling filters that clipes reproduces.
enum class PillowFilter {
  kNearest,  ///< Image.NEAREST
  kBicubic,  ///< Image.BICUBIC (torchvision's InterpolationMode.BICUBIC on PIL images)
};

/// image: CV_8UC1 .. CV_8UC4 (interleaved channels, each resampled independently; any order),
/// non-empty. size: the output (width, height), both >= 1. Returns a new image of the same type;
/// the same size returns a copy (Pillow's shortcut). Throws clipes::Error on an empty image, an
/// unsupported type or a non-positive size.
cv::Mat pillow_resize(const cv::Mat& image, cv::Size size, PillowFilter filter);

/// maps: [K, h, w] float32 (any device; computed on CPU), h, w >= 1. Returns [K, height, width]
/// float32 on the CPU: each of the K planes resized alone with cv::resize(..., INTER_LINEAR)
/// (half-pixel centres, no antialiasing), as the reference resizes each class's CAM. Throws
/// clipes::Error on another dtype, rank or an empty size.
at::Tensor resize_maps_bilinear(const at::Tensor& maps, int height, int width);

}  // namespace clipes::data

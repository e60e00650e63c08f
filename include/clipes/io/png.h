#pragma once
/// PNG files of masks and maps, through libpng: palette indices are read as they are stored
/// (OpenCV would expand a palette PNG to colours). Writers are atomic.

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>

#include <opencv2/core/mat.hpp>

namespace clipes::io {

/// 256 RGB entries, 768 bytes.
using Palette = std::array<std::uint8_t, 768>;

/// The PASCAL VOC colour map (bit-interleaved label colours; 255 = (224, 224, 192)).
Palette voc_palette();

/// A single-channel 8-bit PNG (palette indices, or grey values; 1/2/4-bit depths widened without
/// rescaling) as CV_8UC1. Anything else (RGB, 16-bit, a broken file) throws clipes::Error naming
/// the file and what it holds.
cv::Mat read_png_u8(const std::filesystem::path& file);

/// A 16-bit grey PNG as CV_16UC1 (8-bit grey is widened by 257 so that 255 maps to 65535).
cv::Mat read_png_u16(const std::filesystem::path& file);

/// PNG bytes of an 8-bit indexed image (CV_8UC1) with `palette`.
std::string encode_png_indexed(const cv::Mat& labels, const Palette& palette);
/// PNG bytes of a 16-bit grey image (CV_16UC1).
std::string encode_png_u16(const cv::Mat& values);
/// PNG bytes of an 8-bit grey (CV_8UC1) or colour (CV_8UC3, BGR as OpenCV holds it) image.
std::string encode_png_u8(const cv::Mat& image);

void write_png_indexed(const std::filesystem::path& file, const cv::Mat& labels,
                       const Palette& palette);
void write_png_u16(const std::filesystem::path& file, const cv::Mat& values);

}  // namespace clipes::io

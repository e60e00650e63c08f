#pragma once
/// Image files as the reference sees them. The reference opens each image with Pillow, resizes it
/// in the file's own mode (a grey "L" image is resampled as grey, a palette "P" image by nearest
/// neighbour on its indices, an "RGBA" image premultiplied), and only then converts it to RGB
/// (spec §2). decode_image keeps that mode; to_rgb is Pillow's convert("RGB"); resize_image is
/// Pillow's Image.resize with its mode rules.
///
/// Formats: JPEG (decoded by OpenCV/libjpeg, which agrees with Pillow bit for bit; EXIF
/// orientation is NOT applied, as Pillow does not) with 1 (grey) or 3 (colour) components; PNG
/// with 1-bit grey, 2/4/8-bit grey, 8/16-bit grey+alpha, RGB and RGBA (16-bit samples keep their
/// high byte, as Pillow reads them), and 1/2/4/8-bit palettes. Anything else (CMYK JPEG, 16-bit
/// grey PNG, which Pillow reads as 32-bit integers, other formats) is rejected with a
/// clipes::Error.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include <opencv2/core/mat.hpp>

#include "clipes/core/config_fields.h"
#include "clipes/data/resize.h"
#include "clipes/io/png.h"

namespace clipes::data {

/// The pixel modes clipes reads, named after Pillow's Image.mode.
enum class ImageMode {
  kBilevel,    ///< "1": CV_8UC1 holding 0 or 255 (a 1-bit grey PNG)
  kGrey,       ///< "L": CV_8UC1 (grey JPEG; 2/4/8-bit grey PNG, 2/4-bit values scaled to 0..255)
  kGreyAlpha,  ///< "LA": CV_8UC2, channels (grey, alpha)
  kPalette,    ///< "P": CV_8UC1 palette indices; colours in DecodedImage::palette
  kRgb,        ///< "RGB": CV_8UC3 in R, G, B order
  kRgba,       ///< "RGBA": CV_8UC4 in R, G, B, A order (straight, not premultiplied, alpha)
};

/// Pillow's name of the mode: "1", "L", "LA", "P", "RGB" or "RGBA".
const char* image_mode_name(ImageMode mode);

/// A decoded image in its own mode, as Pillow's Image.open sees it.
struct DecodedImage {
  ImageMode mode = ImageMode::kRgb;
  /// H x W, type as listed for `mode`.
  cv::Mat pixels;
  /// kPalette only: 256 RGB entries. Entries the file's PLTE lacks hold Pillow's default grey
  /// ramp (i, i, i), which is what Pillow shows for an index past the palette.
  io::Palette palette{};

  int width() const { return pixels.cols; }
  int height() const { return pixels.rows; }
};

/// What the pipeline reads from an image file.
struct LoadedImage {
  /// The pixels in the file's own mode: what CLIP preprocessing resizes (spec §2).
  DecodedImage decoded;
  /// CV_8UC3 in R, G, B order at the original size: Pillow's convert("RGB") (for the dense CRF,
  /// overlays). Alpha is dropped (not composited), palette indices looked up.
  cv::Mat rgb;
};

/// What the tools do with a JPEG's EXIF orientation tag: one policy for every tool that reads a
/// photo (generate, train-seg, predict, overlays, benches). kStored, the default, keeps the
/// stored pixel array as Pillow's Image.open and the authors' code do; kApply turns the pixels
/// as the tag says (Pillow's ImageOps.exif_transpose), as phone galleries show them. A generate
/// run records its policy (config input.exif_orientation, run.json) and train-seg and predict
/// follow it, so that masks and the pixels they label stay aligned.
enum class ExifOrientation { kStored, kApply };
constexpr auto enum_names(ExifOrientation) {
  return config::EnumNames<ExifOrientation, 2>{
      {{"stored", ExifOrientation::kStored}, {"apply", ExifOrientation::kApply}}};
}
/// "stored", "apply".
inline std::string_view to_string(ExifOrientation policy) { return config::enum_name(policy); }
/// Inverse of to_string; std::nullopt for anything else.
inline std::optional<ExifOrientation> parse_exif_orientation(std::string_view text) {
  return config::parse_enum<ExifOrientation>(text);
}

/// The EXIF orientation (1..8) of a JPEG file's bytes: tag 0x0112 of IFD0 in its APP1 "Exif"
/// segment; 1 (as stored) when there is none or it is malformed or out of range.
int jpeg_exif_orientation(std::string_view jpeg_bytes);

/// `pixels` (any type) turned as EXIF orientation `orientation` asks (Pillow's exif_transpose):
/// 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate
/// 90 counter-clockwise; 1 (or anything else) returns `pixels` unchanged.
cv::Mat apply_exif_orientation(const cv::Mat& pixels, int orientation);

/// Decodes a JPEG or PNG file (recognised by its signature, not its name); with kApply, a JPEG's
/// EXIF orientation is applied to the pixels. Throws clipes::Error naming the file and what was
/// found when it is missing, unreadable, empty, truncated, corrupt, of zero size, or in a format
/// or mode listed as unsupported above.
DecodedImage decode_image(const std::filesystem::path& file,
                          ExifOrientation exif = ExifOrientation::kStored);

/// Pillow's convert("RGB"): CV_8UC3, R, G, B order, same size. "1"/"L"/"LA" replicate the grey
/// value, "P" looks the index up in the palette, "RGBA" drops alpha.
cv::Mat to_rgb(const DecodedImage& image);

/// Pillow's Image.resize(size, filter) in the image's own mode: "1" and "P" images always use
/// nearest neighbour; "LA" and "RGBA" images are resampled premultiplied by alpha (converted to
/// "La"/"RGBa" and back, with Pillow's integer rounding) unless the filter is nearest; the same
/// size returns a copy. size: (width, height), both >= 1.
DecodedImage resize_image(const DecodedImage& image, cv::Size size,
                          PillowFilter filter = PillowFilter::kBicubic);

/// decode_image + to_rgb: the one image decoder of every tool.
LoadedImage load_image(const std::filesystem::path& file,
                       ExifOrientation exif = ExifOrientation::kStored);

}  // namespace clipes::data

#include "clipes/data/image.h"

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "clipes/core/error.h"
#include "clipes/io/files.h"

namespace clipes::data {

namespace {

using Bytes = std::string_view;

std::uint8_t byte_at(Bytes b, std::size_t i) { return static_cast<std::uint8_t>(b[i]); }

std::uint32_t be32(Bytes b, std::size_t i) {
  return (std::uint32_t{byte_at(b, i)} << 24) | (std::uint32_t{byte_at(b, i + 1)} << 16) |
         (std::uint32_t{byte_at(b, i + 2)} << 8) | std::uint32_t{byte_at(b, i + 3)};
}

std::uint32_t be16(Bytes b, std::size_t i) {
  return (std::uint32_t{byte_at(b, i)} << 8) | std::uint32_t{byte_at(b, i + 1)};
}

constexpr std::array<std::uint8_t, 8> kPngSignature{0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};

bool is_png(Bytes b) {
  if (b.size() < kPngSignature.size()) return false;
  for (std::size_t i = 0; i < kPngSignature.size(); ++i) {
    if (byte_at(b, i) != kPngSignature[i]) return false;
  }
  return true;
}

bool is_jpeg(Bytes b) {
  return b.size() >= 3 && byte_at(b, 0) == 0xFF && byte_at(b, 1) == 0xD8 && byte_at(b, 2) == 0xFF;
}

std::string leading_bytes(Bytes b) {
  std::string out;
  for (std::size_t i = 0; i < b.size() && i < 8; ++i) {
    out += fmt::format("{}{:02x}", i == 0 ? "" : " ", byte_at(b, i));
  }
  return out;
}

[[noreturn]] void fail(const std::filesystem::path& file, const std::string& reason) {
  throw Error(fmt::format("{}: {}", file.string(), reason));
}

cv::Mat imdecode_unchanged(Bytes bytes) {
  const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8UC1,
                       const_cast<char*>(bytes.data()));
  return cv::imdecode(buffer, cv::IMREAD_UNCHANGED);
}

// ---- JPEG ------------------------------------------------------------------------------------

struct JpegHeader {
  int components = 0;
  int width = 0;
  int height = 0;
};

// Walks the JPEG's marker segments and entropy-coded data up to the end-of-image marker, reading
// the frame header. libjpeg (hence OpenCV) only warns on a truncated file and fills the rest with
// grey, where Pillow raises "image file is truncated": a missing end-of-image marker is an error.
JpegHeader scan_jpeg(Bytes b, const std::filesystem::path& file) {
  JpegHeader header;
  std::size_t pos = 2;
  const std::size_t n = b.size();
  while (true) {
    while (pos < n && byte_at(b, pos) != 0xFF) ++pos;  // libjpeg skips extraneous bytes too
    while (pos < n && byte_at(b, pos) == 0xFF) ++pos;  // fill bytes
    if (pos >= n) fail(file, "truncated JPEG (the end-of-image marker is missing)");
    const std::uint8_t marker = byte_at(b, pos++);
    if (marker == 0xD9) break;                                      // EOI
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no payload
    if (pos + 2 > n) fail(file, "truncated JPEG (inside a marker segment)");
    const std::size_t length = be16(b, pos);
    if (length < 2 || pos + length > n) {
      fail(file, fmt::format("truncated or corrupt JPEG (segment 0x{:02X} of {} bytes at offset {} "
                             "runs past the end of the {}-byte file)",
                             marker, length, pos - 2, n));
    }
    const bool is_sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 &&
                        marker != 0xCC;
    if (is_sof && header.components == 0) {
      if (length < 8) fail(file, "corrupt JPEG (frame header too short)");
      header.height = static_cast<int>(be16(b, pos + 3));
      header.width = static_cast<int>(be16(b, pos + 5));
      header.components = byte_at(b, pos + 7);
    }
    pos += length;
    if (marker == 0xDA) {  // start of scan: entropy-coded data up to the next real marker
      while (pos + 1 < n) {
        if (byte_at(b, pos) == 0xFF) {
          const std::uint8_t next = byte_at(b, pos + 1);
          if (next != 0x00 && next != 0xFF && !(next >= 0xD0 && next <= 0xD7)) break;
        }
        ++pos;
      }
    }
  }
  if (header.components == 0) fail(file, "corrupt JPEG (no frame header before the end)");
  return header;
}

DecodedImage decode_jpeg(Bytes bytes, const std::filesystem::path& file) {
  const JpegHeader header = scan_jpeg(bytes, file);
  if (header.width == 0 || header.height == 0) {
    fail(file, fmt::format("JPEG of zero size ({}x{} in its frame header)", header.width,
                           header.height));
  }
  if (header.components != 1 && header.components != 3) {
    fail(file, fmt::format("unsupported JPEG with {} colour components{} (expected 1, grey, or 3, "
                           "colour)",
                           header.components, header.components == 4 ? " (CMYK)" : ""));
  }
  const cv::Mat decoded = imdecode_unchanged(bytes);
  if (decoded.empty()) fail(file, "corrupt JPEG (the decoder failed)");
  const int expected = header.components == 1 ? CV_8UC1 : CV_8UC3;
  if (decoded.type() != expected || decoded.cols != header.width ||
      decoded.rows != header.height) {
    fail(file, fmt::format("JPEG decoded to {}x{} with {} channel(s), expected {}x{} with {}",
                           decoded.cols, decoded.rows, decoded.channels(), header.width,
                           header.height, header.components));
  }
  DecodedImage image;
  if (header.components == 1) {
    image.mode = ImageMode::kGrey;
    image.pixels = decoded;
  } else {
    image.mode = ImageMode::kRgb;
    cv::cvtColor(decoded, image.pixels, cv::COLOR_BGR2RGB);
  }
  return image;
}

// ---- PNG -------------------------------------------------------------------------------------

struct PngHeader {
  std::uint32_t width = 0;
  std::uint32_t height = 0;
  int depth = 0;
  int color_type = -1;
  std::vector<std::uint8_t> palette;  // PLTE payload, 3 bytes per entry
};

const char* png_color_type_name(int type) {
  switch (type) {
    case 0: return "grey";
    case 2: return "RGB";
    case 3: return "palette";
    case 4: return "grey+alpha";
    case 6: return "RGBA";
    default: return "unknown colour type";
  }
}

// Pillow reads 16-bit colour PNGs into its 8-bit modes keeping each sample's high byte.
cv::Mat high_bytes(const cv::Mat& wide) {
  cv::Mat out(wide.size(), CV_8UC(wide.channels()));
  for (int y = 0; y < wide.rows; ++y) {
    const std::uint16_t* s = wide.ptr<std::uint16_t>(y);
    std::uint8_t* d = out.ptr<std::uint8_t>(y);
    for (int i = 0; i < wide.cols * wide.channels(); ++i) d[i] = static_cast<std::uint8_t>(s[i] >> 8);
  }
  return out;
}

// IHDR and PLTE, read from the chunk list (libpng validates the rest when decoding).
PngHeader scan_png(Bytes b, const std::filesystem::path& file) {
  std::size_t pos = kPngSignature.size();
  if (b.size() < pos + 8 + 13 || b.substr(pos + 4, 4) != "IHDR" || be32(b, pos) != 13) {
    fail(file, "corrupt PNG (no valid IHDR header after the signature)");
  }
  PngHeader header;
  header.width = be32(b, pos + 8);
  header.height = be32(b, pos + 12);
  header.depth = byte_at(b, pos + 16);
  header.color_type = byte_at(b, pos + 17);
  pos += 8 + 13 + 4;
  while (pos + 8 <= b.size()) {
    const std::size_t length = be32(b, pos);
    const Bytes type = b.substr(pos + 4, 4);
    if (type == "IDAT" || type == "IEND") break;
    if (pos + 12 + length > b.size()) break;  // truncated: the decoder reports it
    if (type == "PLTE") {
      const auto* data = reinterpret_cast<const std::uint8_t*>(b.data() + pos + 8);
      header.palette.assign(data, data + length);
    }
    pos += 12 + length;
  }
  return header;
}

DecodedImage decode_png(Bytes bytes, const std::filesystem::path& file) {
  const PngHeader header = scan_png(bytes, file);
  if (header.width == 0 || header.height == 0) {
    fail(file, fmt::format("PNG of zero size ({}x{} in its header)", header.width, header.height));
  }
  const int type = header.color_type;
  const int depth = header.depth;
  const std::string found = fmt::format("{}-bit {}", depth, png_color_type_name(type));
  if (depth == 16 && type == 0) {
    fail(file, fmt::format("unsupported PNG: {} (Pillow reads it as 32-bit integers, mode I; "
                           "clipes reads 8-bit grey)",
                           found));
  }
  const bool known = (type == 0 && (depth == 1 || depth == 2 || depth == 4 || depth == 8)) ||
                     (type == 3 && (depth == 1 || depth == 2 || depth == 4 || depth == 8)) ||
                     ((type == 2 || type == 4 || type == 6) && (depth == 8 || depth == 16));
  if (!known) fail(file, fmt::format("unsupported or corrupt PNG: {}", found));

  DecodedImage image;
  if (type == 3) {
    // Indices as stored (libpng via io::read_png_u8); OpenCV would expand them to colours.
    image.mode = ImageMode::kPalette;
    image.pixels = io::read_png_u8(file);
    const std::size_t entries = std::min<std::size_t>(header.palette.size() / 3, 256);
    if (entries == 0) fail(file, "corrupt PNG: palette image without a PLTE palette");
    for (std::size_t i = 0; i < 256; ++i) {
      for (std::size_t c = 0; c < 3; ++c) {
        image.palette[3 * i + c] =
            i < entries ? header.palette[3 * i + c] : static_cast<std::uint8_t>(i);
      }
    }
    return image;
  }
  cv::Mat decoded = imdecode_unchanged(bytes);
  if (decoded.empty()) fail(file, fmt::format("corrupt or truncated PNG ({})", found));
  if (depth == 16 && decoded.depth() == CV_16U) decoded = high_bytes(decoded);
  if (decoded.depth() != CV_8U || decoded.cols != static_cast<int>(header.width) ||
      decoded.rows != static_cast<int>(header.height)) {
    fail(file, fmt::format("PNG ({}) decoded to {}x{}, OpenCV depth {}, expected {}x{} 8-bit", found,
                           decoded.cols, decoded.rows, decoded.depth(), header.width,
                           header.height));
  }
  // OpenCV's layouts: grey -> 1 channel (tRNS ignored); RGB -> BGR, or BGRA when a tRNS chunk
  // exists; grey+alpha -> BGRA with B = G = R; RGBA -> BGRA.
  const int channels = decoded.channels();
  if (type == 0 && channels == 1) {
    image.mode = depth == 1 ? ImageMode::kBilevel : ImageMode::kGrey;
    image.pixels = decoded;
  } else if (type == 2 && (channels == 3 || channels == 4)) {
    image.mode = ImageMode::kRgb;
    cv::cvtColor(decoded, image.pixels, channels == 3 ? cv::COLOR_BGR2RGB : cv::COLOR_BGRA2RGB);
  } else if (type == 4 && channels == 4) {
    image.mode = ImageMode::kGreyAlpha;
    image.pixels.create(decoded.rows, decoded.cols, CV_8UC2);
    const std::array<int, 4> from_to{0, 0, 3, 1};
    cv::mixChannels(&decoded, 1, &image.pixels, 1, from_to.data(), 2);
  } else if (type == 6 && channels == 4) {
    image.mode = ImageMode::kRgba;
    cv::cvtColor(decoded, image.pixels, cv::COLOR_BGRA2RGBA);
  } else {
    fail(file, fmt::format("PNG ({}) decoded to {} channel(s), which clipes does not expect", found,
                           channels));
  }
  return image;
}

// ---- Pillow's premultiplied-alpha round trip (libImaging/Convert.c) --------------------------

// MULDIV255: a * b / 255 rounded, in integers.
inline std::uint8_t mul_div_255(unsigned a, unsigned b) {
  const unsigned tmp = a * b + 128;
  return static_cast<std::uint8_t>(((tmp >> 8) + tmp) >> 8);
}

// "RGBA" -> "RGBa" and "LA" -> "La": colour channels times alpha.
cv::Mat premultiply(const cv::Mat& in) {
  cv::Mat out(in.size(), in.type());
  const int channels = in.channels();
  for (int y = 0; y < in.rows; ++y) {
    const std::uint8_t* s = in.ptr<std::uint8_t>(y);
    std::uint8_t* d = out.ptr<std::uint8_t>(y);
    for (int x = 0; x < in.cols; ++x, s += channels, d += channels) {
      const unsigned alpha = s[channels - 1];
      for (int c = 0; c < channels - 1; ++c) d[c] = mul_div_255(s[c], alpha);
      d[channels - 1] = static_cast<std::uint8_t>(alpha);
    }
  }
  return out;
}

// "RGBa" -> "RGBA" and "La" -> "LA": alpha 0 and 255 keep the values, else 255 * v / alpha
// (integer division) clipped to 255.
cv::Mat unpremultiply(const cv::Mat& in) {
  cv::Mat out(in.size(), in.type());
  const int channels = in.channels();
  for (int y = 0; y < in.rows; ++y) {
    const std::uint8_t* s = in.ptr<std::uint8_t>(y);
    std::uint8_t* d = out.ptr<std::uint8_t>(y);
    for (int x = 0; x < in.cols; ++x, s += channels, d += channels) {
      const unsigned alpha = s[channels - 1];
      for (int c = 0; c < channels - 1; ++c) {
        if (alpha == 0 || alpha == 255) {
          d[c] = s[c];
        } else {
          const unsigned v = 255U * s[c] / alpha;
          d[c] = static_cast<std::uint8_t>(v > 255 ? 255 : v);
        }
      }
      d[channels - 1] = static_cast<std::uint8_t>(alpha);
    }
  }
  return out;
}

int expected_type(ImageMode mode) {
  switch (mode) {
    case ImageMode::kBilevel:
    case ImageMode::kGrey:
    case ImageMode::kPalette: return CV_8UC1;
    case ImageMode::kGreyAlpha: return CV_8UC2;
    case ImageMode::kRgb: return CV_8UC3;
    case ImageMode::kRgba: return CV_8UC4;
  }
  return -1;
}

void check_image(const DecodedImage& image, const char* what) {
  if (image.pixels.empty() || image.pixels.type() != expected_type(image.mode)) {
    throw Error(fmt::format("{}: a mode {} image must hold non-empty pixels of OpenCV type {}, got "
                            "{}x{} of type {}",
                            what, image_mode_name(image.mode), expected_type(image.mode),
                            image.pixels.cols, image.pixels.rows, image.pixels.type()));
  }
}

}  // namespace

const char* image_mode_name(ImageMode mode) {
  switch (mode) {
    case ImageMode::kBilevel: return "1";
    case ImageMode::kGrey: return "L";
    case ImageMode::kGreyAlpha: return "LA";
    case ImageMode::kPalette: return "P";
    case ImageMode::kRgb: return "RGB";
    case ImageMode::kRgba: return "RGBA";
  }
  return "?";
}

int jpeg_exif_orientation(std::string_view b) {
  if (!is_jpeg(b)) return 1;
  std::size_t pos = 2;
  while (pos + 4 <= b.size() && byte_at(b, pos) == 0xFF) {
    const std::uint8_t marker = byte_at(b, pos + 1);
    if (marker == 0xDA || marker == 0xD9) break;  // the metadata segments come before the scan
    const std::size_t length = be16(b, pos + 2);
    if (length < 2 || pos + 2 + length > b.size()) break;
    const std::string_view payload = b.substr(pos + 4, length - 2);
    pos += 2 + length;
    if (marker != 0xE1 || payload.size() < 14 || payload.substr(0, 6) != std::string_view("Exif\0\0", 6)) {
      continue;
    }
    const std::string_view tiff = payload.substr(6);
    const bool little = tiff.substr(0, 2) == "II";
    if (!little && tiff.substr(0, 2) != "MM") return 1;
    const auto u16 = [&](std::size_t i) -> std::uint32_t {
      const auto lo = byte_at(tiff, little ? i : i + 1), hi = byte_at(tiff, little ? i + 1 : i);
      return static_cast<std::uint32_t>(hi) << 8 | lo;
    };
    const auto u32 = [&](std::size_t i) -> std::uint32_t {
      return little ? u16(i + 2) << 16 | u16(i) : u16(i) << 16 | u16(i + 2);
    };
    const std::size_t ifd = u32(4);  // from a file: checked before any read through it
    if (ifd > tiff.size() || tiff.size() - ifd < 2) return 1;
    const std::size_t entries = u16(ifd);
    for (std::size_t e = 0; e < entries && (tiff.size() - ifd - 2) / 12 > e; ++e) {
      const std::size_t at = ifd + 2 + 12 * e;
      if (u16(at) == 0x0112 && u16(at + 2) == 3) {  // Orientation, SHORT
        const std::uint32_t v = u16(at + 8);
        return v >= 1 && v <= 8 ? static_cast<int>(v) : 1;
      }
    }
    return 1;
  }
  return 1;
}

cv::Mat apply_exif_orientation(const cv::Mat& pixels, int orientation) {
  cv::Mat out;
  switch (orientation) {
    case 2: cv::flip(pixels, out, 1); break;
    case 3: cv::rotate(pixels, out, cv::ROTATE_180); break;
    case 4: cv::flip(pixels, out, 0); break;
    case 5: cv::transpose(pixels, out); break;
    case 6: cv::rotate(pixels, out, cv::ROTATE_90_CLOCKWISE); break;
    case 7: cv::transpose(pixels, out); cv::rotate(out, out, cv::ROTATE_180); break;
    case 8: cv::rotate(pixels, out, cv::ROTATE_90_COUNTERCLOCKWISE); break;
    default: return pixels;
  }
  return out;
}

DecodedImage decode_image(const std::filesystem::path& file, ExifOrientation exif) {
  const std::string bytes = io::read_file(file);  // names the file if missing or unreadable
  if (bytes.empty()) fail(file, "empty file, expected a JPEG or PNG image");
  if (is_jpeg(bytes)) {
    DecodedImage image = decode_jpeg(bytes, file);
    if (exif == ExifOrientation::kApply) {
      image.pixels = apply_exif_orientation(image.pixels, jpeg_exif_orientation(bytes));
    }
    return image;
  }
  if (is_png(bytes)) return decode_png(bytes, file);
  fail(file, fmt::format("not a JPEG or PNG image (the file starts with bytes {})",
                         leading_bytes(bytes)));
}

cv::Mat to_rgb(const DecodedImage& image) {
  check_image(image, "to_rgb");
  cv::Mat rgb;
  switch (image.mode) {
    case ImageMode::kBilevel: {  // Pillow's bit2rgb: any non-zero value is white
      cv::Mat white;
      cv::compare(image.pixels, 0, white, cv::CMP_NE);
      cv::cvtColor(white, rgb, cv::COLOR_GRAY2RGB);
      break;
    }
    case ImageMode::kGrey: cv::cvtColor(image.pixels, rgb, cv::COLOR_GRAY2RGB); break;
    case ImageMode::kGreyAlpha: {
      rgb.create(image.pixels.size(), CV_8UC3);
      const std::array<int, 6> from_to{0, 0, 0, 1, 0, 2};
      cv::mixChannels(&image.pixels, 1, &rgb, 1, from_to.data(), 3);
      break;
    }
    case ImageMode::kPalette: {
      rgb.create(image.pixels.size(), CV_8UC3);
      for (int y = 0; y < rgb.rows; ++y) {
        const std::uint8_t* s = image.pixels.ptr<std::uint8_t>(y);
        std::uint8_t* d = rgb.ptr<std::uint8_t>(y);
        for (int x = 0; x < rgb.cols; ++x) {
          const std::size_t i = 3U * s[x];
          d[3 * x] = image.palette[i];
          d[3 * x + 1] = image.palette[i + 1];
          d[3 * x + 2] = image.palette[i + 2];
        }
      }
      break;
    }
    case ImageMode::kRgb: rgb = image.pixels.clone(); break;
    case ImageMode::kRgba: cv::cvtColor(image.pixels, rgb, cv::COLOR_RGBA2RGB); break;
  }
  return rgb;
}

DecodedImage resize_image(const DecodedImage& image, cv::Size size, PillowFilter filter) {
  check_image(image, "resize_image");
  DecodedImage out;
  out.mode = image.mode;
  out.palette = image.palette;
  if (image.mode == ImageMode::kBilevel || image.mode == ImageMode::kPalette) {
    filter = PillowFilter::kNearest;
  }
  const bool alpha = image.mode == ImageMode::kGreyAlpha || image.mode == ImageMode::kRgba;
  if (alpha && filter != PillowFilter::kNearest && size != image.pixels.size()) {
    out.pixels = unpremultiply(pillow_resize(premultiply(image.pixels), size, filter));
  } else {
    out.pixels = pillow_resize(image.pixels, size, filter);
  }
  return out;
}

LoadedImage load_image(const std::filesystem::path& file, ExifOrientation exif) {
  LoadedImage loaded;
  loaded.decoded = decode_image(file, exif);
  loaded.rgb = to_rgb(loaded.decoded);
  return loaded;
}

}  // namespace clipes::data

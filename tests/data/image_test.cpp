#include "clipes/data/image.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>

#include "clipes/core/error.h"
#include "clipes/io/files.h"
#include "clipes/io/npy.h"
#include "clipes/io/png.h"
#include "support/test_support.h"

namespace clipes::data {
namespace {

std::filesystem::path fixture(const std::string& name) {
  return testing::source_dir() / "tests/data/image/files" / name;
}

cv::Mat to_mat(const io::NpyArray& a) {
  EXPECT_EQ(a.dtype, io::DType::kUInt8);
  EXPECT_EQ(a.shape.size(), 3U);
  cv::Mat m(static_cast<int>(a.shape[0]), static_cast<int>(a.shape[1]),
            CV_8UC(static_cast<int>(a.shape[2])));
  std::memcpy(m.data, a.data<std::uint8_t>(), a.bytes.size());
  return m;
}

int differing_bytes(const cv::Mat& a, const cv::Mat& b) {
  if (a.size() != b.size() || a.type() != b.type()) return -1;
  return cv::countNonZero(a.reshape(1) != b.reshape(1));
}

using clipes::testing::error_of;

// Each fixture file, the mode Pillow opens it in (scripts/make_resize_fixtures.py prints them).
const std::map<std::string, std::string>& fixture_modes() {
  static const std::map<std::string, std::string> modes{
      {"bilevel.png", "1"},       {"colour.jpg", "RGB"}, {"grey.jpg", "L"},
      {"grey.png", "L"},          {"grey2.png", "L"},    {"grey_alpha.png", "LA"},
      {"palette.png", "P"},       {"palette4.png", "P"}, {"palette_short.png", "P"},
      {"progressive.jpg", "RGB"}, {"rgb.png", "RGB"},    {"rgb_trns.png", "RGB"},
      {"rgb16.png", "RGB"},       {"rgba.png", "RGBA"}};
  return modes;
}

// Decoding, convert("RGB") and Image.resize(BICUBIC) in the file's own mode, byte for byte
// against Pillow, for every mode clipes reads.
TEST(Image, EveryModeMatchesPillowBitForBit) {
  const auto npz_file = testing::source_dir() / "tests/data/image/expected.npz";
  const io::NpzEntries expected = io::read_npz(npz_file);
  for (const auto& [name, mode] : fixture_modes()) {
    SCOPED_TRACE(name);
    std::string stem = name;
    stem[stem.find('.')] = '_';
    const LoadedImage image = load_image(fixture(name));
    EXPECT_EQ(image_mode_name(image.decoded.mode), mode);
    const cv::Mat rgb = to_mat(io::npz_member(expected, stem + "__rgb", npz_file));
    EXPECT_EQ(differing_bytes(image.rgb, rgb), 0);
    EXPECT_EQ(image.rgb.cols, 37);  // colour.jpg's EXIF orientation is not applied, as in Pillow
    EXPECT_EQ(image.rgb.rows, 23);
    for (const char* which : {"__up", "__down"}) {
      const cv::Mat want = to_mat(io::npz_member(expected, stem + which, npz_file));
      const DecodedImage resized = resize_image(image.decoded, want.size());
      EXPECT_EQ(resized.mode, image.decoded.mode);
      EXPECT_EQ(differing_bytes(to_rgb(resized), want), 0) << which;
    }
  }
}

TEST(Image, ModesHoldTheDocumentedLayouts) {
  const DecodedImage bilevel = decode_image(fixture("bilevel.png"));
  EXPECT_EQ(bilevel.pixels.type(), CV_8UC1);
  EXPECT_EQ(cv::countNonZero((bilevel.pixels != 0) & (bilevel.pixels != 255)), 0);
  EXPECT_GT(cv::countNonZero(bilevel.pixels), 0);

  const DecodedImage la = decode_image(fixture("grey_alpha.png"));
  EXPECT_EQ(la.pixels.type(), CV_8UC2);
  const DecodedImage rgba = decode_image(fixture("rgba.png"));
  EXPECT_EQ(rgba.pixels.type(), CV_8UC4);
  // Both were written with the same grey channel 0, alpha and pattern.
  std::vector<cv::Mat> la_planes;
  std::vector<cv::Mat> rgba_planes;
  cv::split(la.pixels, la_planes);
  cv::split(rgba.pixels, rgba_planes);
  EXPECT_EQ(differing_bytes(la_planes[1], rgba_planes[3]), 0);
  EXPECT_EQ(differing_bytes(la_planes[0], rgba_planes[0]), 0);

  // Indices past a 5-entry palette show Pillow's grey ramp.
  const DecodedImage pal = decode_image(fixture("palette_short.png"));
  ASSERT_EQ(pal.mode, ImageMode::kPalette);
  EXPECT_EQ((std::array<int, 3>{pal.palette[3], pal.palette[4], pal.palette[5]}),
            (std::array<int, 3>{10, 200, 10}));
  EXPECT_EQ((std::array<int, 3>{pal.palette[21], pal.palette[22], pal.palette[23]}),
            (std::array<int, 3>{7, 7, 7}));
  double max_index = 0;
  cv::minMaxLoc(pal.pixels, nullptr, &max_index);
  EXPECT_GE(max_index, 5);
}

TEST(Image, PaletteResizeIsNearestOnIndicesWhateverTheFilter) {
  const DecodedImage pal = decode_image(fixture("palette.png"));
  const DecodedImage a = resize_image(pal, {50, 40}, PillowFilter::kBicubic);
  const DecodedImage b = resize_image(pal, {50, 40}, PillowFilter::kNearest);
  EXPECT_EQ(a.mode, ImageMode::kPalette);
  EXPECT_EQ(differing_bytes(a.pixels, b.pixels), 0);
  EXPECT_EQ(a.palette, pal.palette);
}

TEST(Image, AlphaImagesAreResampledPremultiplied) {
  // A fully transparent red pixel next to an opaque blue one: premultiplied, the red carries no
  // weight, so the blend keeps pure blue; resampling straight colours would mix in red.
  DecodedImage image;
  image.mode = ImageMode::kRgba;
  image.pixels = cv::Mat(1, 2, CV_8UC4);
  image.pixels.at<cv::Vec4b>(0, 0) = cv::Vec4b(255, 0, 0, 0);
  image.pixels.at<cv::Vec4b>(0, 1) = cv::Vec4b(0, 0, 255, 255);
  const DecodedImage out = resize_image(image, {5, 1});
  const cv::Vec4b mid = out.pixels.at<cv::Vec4b>(0, 2);
  EXPECT_EQ(mid[0], 0);
  EXPECT_EQ(mid[2], 255);
  EXPECT_GT(mid[3], 0);
  EXPECT_LT(mid[3], 255);
}

TEST(Image, VocGroundTruthPngIsAPaletteImage) {
  const auto gt = testing::shared_path("data/voc-mini/SegmentationClass/2007_000032.png");
  CLIPES_REQUIRE_FILE(gt);
  const DecodedImage image = decode_image(gt);
  EXPECT_EQ(image.mode, ImageMode::kPalette);
  EXPECT_EQ(differing_bytes(image.pixels, io::read_png_u8(gt)), 0);
  const io::Palette voc = io::voc_palette();
  for (int i : {0, 1, 15, 255}) {
    for (int c = 0; c < 3; ++c) EXPECT_EQ(image.palette[3 * i + c], voc[3 * i + c]) << i;
  }
}

TEST(Image, VocPhotoDecodesAsRgb) {
  const auto jpg = testing::shared_path("data/voc-mini/JPEGImages/2009_000177.jpg");
  CLIPES_REQUIRE_FILE(jpg);
  const LoadedImage image = load_image(jpg);
  EXPECT_EQ(image.decoded.mode, ImageMode::kRgb);
  EXPECT_EQ(image.rgb.size(), cv::Size(500, 375));
  EXPECT_EQ(differing_bytes(image.rgb, image.decoded.pixels), 0);
}

class ImageErrors : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::make_temp_dir("image_errors"); }
  std::filesystem::path write(const std::string& name, const std::string& bytes) {
    io::write_file_atomic(dir_ / name, bytes);
    return dir_ / name;
  }
  std::filesystem::path dir_;
};

TEST_F(ImageErrors, MissingEmptyAndForeignFiles) {
  EXPECT_NE(error_of([&] { decode_image(dir_ / "absent.jpg"); }).find("absent.jpg"),
            std::string::npos);
  const auto empty = write("empty.png", "");
  EXPECT_NE(error_of([&] {
              decode_image(empty);
            }).find("empty.png: empty file, expected a JPEG or PNG image"),
            std::string::npos);
  const auto text = write("notes.jpg", "GIF89a....");
  EXPECT_NE(error_of([&] {
              decode_image(text);
            }).find("notes.jpg: not a JPEG or PNG image (the file starts with bytes 47 49 46 38"),
            std::string::npos);
}

TEST_F(ImageErrors, TruncatedAndCorruptFiles) {
  const std::string jpg = io::read_file(fixture("grey.jpg"));
  const auto cut_jpg = write("cut.jpg", jpg.substr(0, jpg.size() * 2 / 3));
  EXPECT_NE(error_of([&] {
              decode_image(cut_jpg);
            }).find("cut.jpg: truncated JPEG (the end-of-image marker is missing)"),
            std::string::npos);
  const auto head_jpg = write("head.jpg", jpg.substr(0, 40));
  EXPECT_NE(error_of([&] { decode_image(head_jpg); }).find("head.jpg: truncated"),
            std::string::npos);

  const std::string png = io::read_file(fixture("rgb.png"));
  const auto cut_png = write("cut.png", png.substr(0, png.size() - 40));
  EXPECT_NE(error_of([&] {
              decode_image(cut_png);
            }).find("cut.png: corrupt or truncated PNG (8-bit RGB)"),
            std::string::npos);
  std::string garbled = png;
  for (std::size_t i = 60; i < 120; ++i) garbled[i] = static_cast<char>(garbled[i] ^ 0x5A);
  const auto bad_png = write("garbled.png", garbled);
  EXPECT_NE(error_of([&] { decode_image(bad_png); }).find("garbled.png: corrupt"),
            std::string::npos);
  const auto no_header = write("noihdr.png", png.substr(0, 12));
  EXPECT_NE(error_of([&] {
              decode_image(no_header);
            }).find("noihdr.png: corrupt PNG (no valid IHDR header"),
            std::string::npos);
}

TEST_F(ImageErrors, ZeroSizeAndUnsupportedModes) {
  std::string png = io::read_file(fixture("grey.png"));
  for (int i = 16; i < 20; ++i) png[static_cast<std::size_t>(i)] = '\0';  // IHDR width = 0
  const auto zero = write("zero.png", png);
  EXPECT_NE(error_of([&] { decode_image(zero); }).find("zero.png: PNG of zero size (0x23"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              decode_image(fixture("grey16.png"));
            }).find("grey16.png: unsupported PNG: 16-bit grey (Pillow reads it as 32-bit integers"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              decode_image(fixture("cmyk.jpg"));
            }).find("cmyk.jpg: unsupported JPEG with 4 colour components (CMYK)"),
            std::string::npos);
}

TEST(Image, ToRgbFollowsPillowPerMode) {
  DecodedImage image;
  image.mode = ImageMode::kBilevel;  // Pillow: any non-zero bit is white
  image.pixels = (cv::Mat_<std::uint8_t>(1, 3) << 0, 1, 255);
  cv::Mat rgb = to_rgb(image);
  EXPECT_EQ(rgb.at<cv::Vec3b>(0, 0), cv::Vec3b(0, 0, 0));
  EXPECT_EQ(rgb.at<cv::Vec3b>(0, 1), cv::Vec3b(255, 255, 255));
  image.mode = ImageMode::kGrey;
  rgb = to_rgb(image);
  EXPECT_EQ(rgb.at<cv::Vec3b>(0, 1), cv::Vec3b(1, 1, 1));
  image.mode = ImageMode::kPalette;
  image.palette[3] = 9;
  image.palette[4] = 8;
  image.palette[5] = 7;
  rgb = to_rgb(image);
  EXPECT_EQ(rgb.at<cv::Vec3b>(0, 1), cv::Vec3b(9, 8, 7));
  image.mode = ImageMode::kRgba;  // alpha dropped, not composited
  image.pixels = cv::Mat(1, 1, CV_8UC4, cv::Scalar(10, 20, 30, 0));
  EXPECT_EQ(to_rgb(image).at<cv::Vec3b>(0, 0), cv::Vec3b(10, 20, 30));
}

TEST(Image, InconsistentDecodedImagesAreRejected) {
  DecodedImage image;
  image.mode = ImageMode::kRgb;
  image.pixels = cv::Mat(2, 2, CV_8UC1, cv::Scalar(0));
  EXPECT_NE(error_of([&] {
              to_rgb(image);
            }).find("to_rgb: a mode RGB image must hold non-empty pixels of OpenCV type 16"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              resize_image(DecodedImage{}, {2, 2});
            }).find("resize_image"),
            std::string::npos);
}

}  // namespace
}  // namespace clipes::data

namespace clipes::data {
namespace {

namespace fs = std::filesystem;

// A 5x3 colour JPEG of distinct pixels, written losslessly enough to compare layouts.
std::string small_jpeg(cv::Mat* pixels_rgb) {
  cv::Mat bgr(3, 5, CV_8UC3);
  for (int y = 0; y < 3; ++y) {
    for (int x = 0; x < 5; ++x) bgr.at<cv::Vec3b>(y, x) = cv::Vec3b(40 * x, 80 * y, 200);
  }
  std::vector<std::uint8_t> bytes;
  cv::imencode(".jpg", bgr, bytes, {cv::IMWRITE_JPEG_QUALITY, 100});
  const std::string jpeg(bytes.begin(), bytes.end());
  const fs::path dir = clipes::testing::make_temp_dir("exif_plain");
  io::write_file_atomic(dir / "a.jpg", jpeg);
  *pixels_rgb = decode_image(dir / "a.jpg").pixels;  // the stored array, as decoded
  return jpeg;
}

TEST(ExifOrientation, ReadsTheTagInBothByteOrders) {
  cv::Mat rgb;
  const std::string jpeg = small_jpeg(&rgb);
  EXPECT_EQ(jpeg_exif_orientation(jpeg), 1);
  for (int o = 1; o <= 8; ++o) {
    EXPECT_EQ(jpeg_exif_orientation(clipes::testing::jpeg_with_exif_orientation(jpeg, o)), o);
    EXPECT_EQ(jpeg_exif_orientation(clipes::testing::jpeg_with_exif_orientation(jpeg, o, true)), o);
  }
  EXPECT_EQ(jpeg_exif_orientation(clipes::testing::jpeg_with_exif_orientation(jpeg, 9)), 1);
  EXPECT_EQ(jpeg_exif_orientation("not a jpeg"), 1);
  // Malformed metadata is "as stored", never a read past the segment: an IFD offset far beyond
  // it (bytes 16..19 of the file: after SOI, the APP1 header, "Exif\0\0" and "II*\0"), and a
  // segment cut short.
  std::string bad = clipes::testing::jpeg_with_exif_orientation(jpeg, 6);
  bad.replace(16, 4, "\xFF\xFF\xFF\xFF");
  EXPECT_EQ(jpeg_exif_orientation(bad), 1);
  bad.replace(16, 4, std::string("\x30\0\0\0", 4));
  EXPECT_EQ(jpeg_exif_orientation(bad), 1);
  EXPECT_EQ(jpeg_exif_orientation(clipes::testing::jpeg_with_exif_orientation(jpeg, 6).substr(0, 30)),
            1);
  EXPECT_EQ(parse_exif_orientation("apply"), ExifOrientation::kApply);
  EXPECT_EQ(parse_exif_orientation("stored"), ExifOrientation::kStored);
  EXPECT_FALSE(parse_exif_orientation("rotate").has_value());
}

// Pillow's exif_transpose, pixel by pixel: where the displayed pixel (x, y) comes from in a W x H
// stored array.
cv::Point source_of(int o, int x, int y, int w, int h) {
  switch (o) {
    case 2: return {w - 1 - x, y};
    case 3: return {w - 1 - x, h - 1 - y};
    case 4: return {x, h - 1 - y};
    case 5: return {y, x};
    case 6: return {y, h - 1 - x};
    case 7: return {w - 1 - y, h - 1 - x};
    case 8: return {w - 1 - y, x};
    default: return {x, y};
  }
}

TEST(ExifOrientation, StoredKeepsThePixelArrayAndApplyTurnsItAsPillow) {
  cv::Mat stored;
  const std::string jpeg = small_jpeg(&stored);
  const fs::path dir = clipes::testing::make_temp_dir("exif_decode");
  for (int o = 1; o <= 8; ++o) {
    const fs::path file = dir / ("o" + std::to_string(o) + ".jpg");
    io::write_file_atomic(file, clipes::testing::jpeg_with_exif_orientation(jpeg, o));
    const cv::Mat as_stored = load_image(file).rgb;
    EXPECT_EQ(cv::norm(as_stored, stored, cv::NORM_INF), 0) << o;  // the default: the array
    const cv::Mat turned = load_image(file, ExifOrientation::kApply).rgb;
    const bool swapped = o >= 5;
    ASSERT_EQ(turned.cols, swapped ? 3 : 5) << o;
    ASSERT_EQ(turned.rows, swapped ? 5 : 3) << o;
    for (int y = 0; y < turned.rows; ++y) {
      for (int x = 0; x < turned.cols; ++x) {
        const cv::Point s = source_of(o, x, y, 5, 3);
        EXPECT_EQ(turned.at<cv::Vec3b>(y, x), stored.at<cv::Vec3b>(s)) << o << " " << x << "," << y;
      }
    }
  }
}

// The same against Pillow itself (ImageOps.exif_transpose) on a real photo, when the system
// Python has Pillow.
TEST(ExifOrientation, ApplyMatchesPillowsExifTranspose) {
  const fs::path photo = clipes::testing::shared_path("data/voc-mini/JPEGImages/2007_000032.jpg");
  CLIPES_REQUIRE_FILE(photo);
  if (clipes::testing::run_command("/usr/bin/python3 -c 'import PIL'") != 0) {
    GTEST_SKIP() << "SKIPPED: /usr/bin/python3 has no Pillow";
  }
  const fs::path dir = clipes::testing::make_temp_dir("exif_pillow");
  for (int o : {3, 6, 8}) {
    const fs::path tagged = dir / ("t" + std::to_string(o) + ".jpg");
    const fs::path shown = dir / ("t" + std::to_string(o) + ".png");
    io::write_file_atomic(tagged,
                          clipes::testing::jpeg_with_exif_orientation(io::read_file(photo), o));
    std::string out;
    ASSERT_EQ(clipes::testing::run_command(
                  "/usr/bin/python3 -c 'import sys; from PIL import Image, ImageOps; "
                  "ImageOps.exif_transpose(Image.open(sys.argv[1])).save(sys.argv[2])' " +
                      tagged.string() + " " + shown.string(),
                  &out),
              0)
        << out;
    const cv::Mat ours = load_image(tagged, ExifOrientation::kApply).rgb;
    const cv::Mat pillow = load_image(shown).rgb;
    ASSERT_EQ(ours.size(), pillow.size()) << o;
    EXPECT_EQ(cv::norm(ours, pillow, cv::NORM_INF), 0) << o;
    EXPECT_EQ(cv::norm(load_image(tagged).rgb, load_image(photo).rgb, cv::NORM_INF), 0) << o;
  }
}

}  // namespace
}  // namespace clipes::data

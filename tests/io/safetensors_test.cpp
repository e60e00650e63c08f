#include "clipes/io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "support/test_support.h"

namespace clipes::io {
namespace {

using clipes::testing::error_of;

// A file of: the header's length as 8 little-endian bytes, the header, the data.
std::filesystem::path write_file(const std::string& name, const std::string& header,
                                 const std::string& data) {
  static const auto dir = clipes::testing::make_temp_dir("safetensors");
  const auto path = dir / name;
  std::ofstream out(path, std::ios::binary);
  std::uint64_t size = header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((size >> (8 * i)) & 0xff));
  out << header << data;
  return path;
}

std::string bytes_of(const void* p, std::size_t n) {
  return std::string(static_cast<const char*>(p), n);
}

TEST(Safetensors, ReadsDtypesShapesOffsetsAndMetadata) {
  const float f32[] = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.5f};
  const std::uint16_t f16[] = {0x3c00, 0xc000};   // 1, -2
  const std::uint16_t bf16[] = {0x3fc0, 0x4049};  // 1.5, 3.140625
  const std::string data = bytes_of(f32, 24) + bytes_of(f16, 4) + bytes_of(bf16, 4);
  const auto path = write_file("good.safetensors",
                               R"({"__metadata__": {"format": "pt"},
          "b": {"dtype": "F16", "shape": [2], "data_offsets": [24, 28]},
          "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
          "c": {"dtype": "BF16", "shape": [1, 2], "data_offsets": [28, 32]},
          "empty": {"dtype": "F32", "shape": [0, 4], "data_offsets": [32, 32]}})",
                               data);
  const SafetensorsFile file = SafetensorsFile::open(path);
  ASSERT_EQ(file.entries().size(), 4u);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  const auto& a = file.entries().at("a");
  EXPECT_EQ(a.dtype, SafetensorsDtype::kF32);
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{2, 3}));
  float read[6];
  std::memcpy(read, file.data(a), sizeof read);
  EXPECT_EQ(std::vector<float>(read, read + 6), std::vector<float>(f32, f32 + 6));
  const auto& c = file.entries().at("c");
  EXPECT_EQ(c.dtype, SafetensorsDtype::kBF16);
  EXPECT_EQ(c.begin, 28u);
  EXPECT_EQ(std::memcmp(file.data(c), bf16, 4), 0);
  EXPECT_EQ(file.entries().at("b").dtype, SafetensorsDtype::kF16);
  EXPECT_EQ(file.entries().at("empty").shape, (std::vector<std::int64_t>{0, 4}));
  EXPECT_TRUE(looks_like_safetensors(path));

  // The data outlives the object it came from through copies.
  const unsigned char* bytes = nullptr;
  SafetensorsFile copy = file;
  bytes = copy.data(copy.entries().at("b"));
  EXPECT_EQ(std::memcmp(bytes, f16, 4), 0);
}

TEST(Safetensors, DtypeNamesRoundTrip) {
  for (const char* name : {"BOOL", "U8", "I8", "I16", "I32", "I64", "F16", "BF16", "F32", "F64"}) {
    const auto dtype = parse_safetensors_dtype(name);
    ASSERT_TRUE(dtype.has_value()) << name;
    EXPECT_EQ(to_string(*dtype), name);
  }
  EXPECT_EQ(element_size(SafetensorsDtype::kBF16), 2u);
  EXPECT_EQ(element_size(SafetensorsDtype::kI64), 8u);
  EXPECT_FALSE(parse_safetensors_dtype("F8_E4M3").has_value());
}

TEST(Safetensors, EveryMalformedFileIsAnErrorNamingTheFileAndTensor) {
  const std::string four(16, '\0');
  const auto error = [&](const std::string& name, const std::string& header,
                         const std::string& data = std::string(16, '\0')) {
    const auto path = write_file(name, header, data);
    return std::pair(path.string(), error_of([&] { SafetensorsFile::open(path); }));
  };
  {
    static const auto dir = clipes::testing::make_temp_dir("safetensors_short");
    const auto path = dir / "short.safetensors";
    std::ofstream(path, std::ios::binary) << "abc";
    EXPECT_EQ(
        error_of([&] { SafetensorsFile::open(path); }),
        "safetensors file " + path.string() + ": 3 bytes, too short for the 8-byte header size");
    EXPECT_FALSE(looks_like_safetensors(path));
    const auto missing = dir / "missing.safetensors";
    EXPECT_EQ(
        error_of([&] { SafetensorsFile::open(missing); }),
        "safetensors file " + missing.string() + ": cannot open it: No such file or directory");
  }
  {
    // The header size claims more than the file holds.
    static const auto dir = clipes::testing::make_temp_dir("safetensors_long");
    const auto path = dir / "long.safetensors";
    std::ofstream out(path, std::ios::binary);
    const unsigned char size[8] = {0x00, 0x10, 0, 0, 0, 0, 0, 0};  // 4096
    out.write(reinterpret_cast<const char*>(size), 8);
    out << "{}";
    out.close();
    EXPECT_EQ(error_of([&] { SafetensorsFile::open(path); }),
              "safetensors file " + path.string() +
                  ": the header size says 4096 bytes but the file has 2 after it");
  }
  auto [file, message] = error("json.safetensors", R"({"a": {"dtype": "F32",)");
  EXPECT_EQ(message.rfind("safetensors file " + file + ": the header is not valid JSON: ", 0), 0u)
      << message;
  std::tie(file, message) = error("array.safetensors", "[1, 2]");
  EXPECT_EQ(message,
            "safetensors file " + file + ": the header is a JSON array, expected an object");
  std::tie(file, message) =
      error("dtype.safetensors",
            R"({"w": {"dtype": "F8_E4M3", "shape": [16], "data_offsets": [0, 16]}})");
  EXPECT_EQ(message,
            "safetensors file " + file +
                ": tensor w: dtype \"F8_E4M3\" is not one clipes reads (BOOL, U8, I8, I16, "
                "I32, I64, F16, BF16, F32, F64)");
  std::tie(file, message) = error(
      "range.safetensors", R"({"w": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}})");
  EXPECT_EQ(message,
            "safetensors file " + file +
                ": tensor w: data_offsets [0, 32] are outside the data section of 16 bytes");
  std::tie(file, message) = error(
      "reversed.safetensors", R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})");
  EXPECT_EQ(message,
            "safetensors file " + file +
                ": tensor w: data_offsets [8, 4] are outside the data section of 16 bytes");
  std::tie(file, message) = error(
      "span.safetensors", R"({"w": {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 16]}})");
  EXPECT_EQ(message, "safetensors file " + file +
                         ": tensor w: data_offsets [0, 16] span 16 bytes, but shape [2,2] of F16 "
                         "needs 8");
  std::tie(file, message) = error("overlap.safetensors",
                                  R"({"u": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
                                      "v": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})");
  EXPECT_EQ(message, "safetensors file " + file +
                         ": tensor v (bytes 8..16) overlaps tensor u (bytes 0..12)");
  std::tie(file, message) = error("gap.safetensors",
                                  R"({"u": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                      "v": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})");
  EXPECT_EQ(message, "safetensors file " + file +
                         ": tensor v begins at byte 8 of the data section, but the tensors before "
                         "it end at 4 (a gap)");
  std::tie(file, message) = error(
      "trailing.safetensors", R"({"u": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})");
  EXPECT_EQ(message, "safetensors file " + file +
                         ": the tensors cover 8 bytes of the data section, but it has 16 "
                         "(truncated, or trailing bytes)");
  std::tie(file, message) = error(
      "shape.safetensors", R"({"w": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}})");
  EXPECT_EQ(message, "safetensors file " + file + ": tensor w: shape [-4] is not a list of sizes");
  std::tie(file, message) =
      error("offsets.safetensors", R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0]}})");
  EXPECT_EQ(message, "safetensors file " + file + ": tensor w: no \"data_offsets\" [begin, end]");
  std::tie(file, message) = error("meta.safetensors", R"({"__metadata__": {"n": 3}})", "");
  EXPECT_EQ(message, "safetensors file " + file + ": __metadata__.n is not a string");
}

}  // namespace
}  // namespace clipes::io

#include "clipes/io/npy.h"

#include <ATen/ATen.h>

#include <gtest/gtest.h>

#include "clipes/core/error.h"
#include "clipes/io/files.h"
#include "clipes/io/npy_tensor.h"
#include "support/test_support.h"

namespace clipes::io {
namespace {

TEST(Npy, RoundTripKeepsShapeDtypeAndValues) {
  const std::vector<float> values{1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.5f};
  const auto array = NpyArray::from<float>({2, 3}, values.data());
  const auto parsed = parse_npy(serialize_npy(array), "memory");
  EXPECT_EQ(parsed.dtype, DType::kFloat32);
  EXPECT_EQ(parsed.shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(parsed.to_float32(), values);
  // Header is padded so the data starts on a 64-byte boundary, as numpy writes it.
  EXPECT_EQ(serialize_npy(array).size() % 64, values.size() * 4 % 64);
}

TEST(Npy, FortranOrderArraysAreReadInCOrder) {
  // numpy.asfortranarray([[1, 2, 3], [4, 5, 6]]) stores 1 4 2 5 3 6.
  const std::vector<float> column_major{1, 4, 2, 5, 3, 6};
  std::string bytes = serialize_npy(NpyArray::from<float>({2, 3}, column_major.data()));
  const auto at = bytes.find("'fortran_order': False");
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, 22, "'fortran_order': True ");
  const auto parsed = parse_npy(bytes, "memory");
  EXPECT_EQ(parsed.shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(parsed.to_float32(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

TEST(Npy, ScalarAndOneDimensionalShapes) {
  const std::int64_t one = 42;
  const auto scalar = parse_npy(serialize_npy(NpyArray::from<std::int64_t>({}, &one)), "m");
  EXPECT_TRUE(scalar.shape.empty());
  EXPECT_EQ(scalar.to_int64(), std::vector<std::int64_t>{42});
  EXPECT_NE(serialize_npy(NpyArray::from<std::int64_t>({1}, &one)).find("'shape': (1,)"),
            std::string::npos);
}

TEST(Npy, Float16StoresRoundedValues) {
  const std::vector<float> values{0.1f, 1.0f, 65504.0f};
  const auto array = NpyArray::float16_from({3}, values.data());
  const auto back = parse_npy(serialize_npy(array), "m").to_float32();
  EXPECT_FLOAT_EQ(back[0], 0.0999755859375f);
  EXPECT_EQ(back[1], 1.0f);
  EXPECT_EQ(back[2], 65504.0f);
}

TEST(Npy, ReadsReferenceDumps) {
  const auto keys_file = testing::shared_path("reference/small12-voc-mini/2007_000032/keys.npy");
  CLIPES_REQUIRE_FILE(keys_file);
  const auto keys = read_npy(keys_file);
  EXPECT_EQ(keys.dtype, DType::kInt64);
  EXPECT_EQ(keys.to_int64(), (std::vector<std::int64_t>{0, 14}));  // aeroplane, person
  const auto cam = read_npy(testing::shared_path(
      "reference/small12-voc-mini/2007_000032/grayscale_cam.npy"));
  ASSERT_EQ(cam.shape.size(), 3u);
  EXPECT_EQ(cam.shape[0], 2);
  for (float v : cam.to_float32()) {
    ASSERT_GE(v, 0.0f);
    ASSERT_LE(v, 1.0f);
  }
}

TEST(Npy, BadInputNamesTheSource) {
  try {
    parse_npy("not numpy at all", "x.npy");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "x.npy: not a .npy file (bad magic)");
  }
  const float v = 1;
  std::string bytes = serialize_npy(NpyArray::from<float>({4}, &v));  // claims 4, holds garbage
  bytes.resize(bytes.size() - 4);
  EXPECT_THROW(parse_npy(bytes.substr(0, bytes.size() - 8), "x.npy"), Error);
}

TEST(Npz, RoundTripAndMemberLookup) {
  const std::vector<std::int64_t> keys{3, 14};
  const std::vector<float> cams{0.f, 0.25f, 0.5f, 1.f};
  const NpzEntries entries{{"keys", NpyArray::from<std::int64_t>({2}, keys.data())},
                           {"cams", NpyArray::float16_from({2, 2}, cams.data())}};
  const auto dir = testing::make_temp_dir("npz");
  write_npz(dir / "a.npz", entries);
  const auto back = read_npz(dir / "a.npz");
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(npz_member(back, "keys", dir / "a.npz").to_int64(), keys);
  EXPECT_EQ(npz_member(back, "cams", dir / "a.npz").to_float32(), cams);
  try {
    npz_member(back, "initial", dir / "a.npz");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no array 'initial' in the archive (it holds: keys, cams)"),
              std::string::npos);
  }
}

TEST(Npz, ReadsNumpyWrittenArchivesStoredAndDeflated) {
  const auto compressed = read_npz(testing::source_dir() / "tests/data/compressed.npz");
  const auto& keys = npz_member(compressed, "keys", "compressed.npz");
  EXPECT_EQ(keys.to_int64(), (std::vector<std::int64_t>{3, 14}));
  const auto cams = npz_member(compressed, "cams", "compressed.npz").to_float32();
  ASSERT_EQ(cams.size(), 24u);
  for (int i = 0; i < 24; ++i) EXPECT_EQ(cams[i], i / 8.0f);
  const auto plain = read_npz(testing::source_dir() / "tests/data/plain.npz");
  EXPECT_EQ(npz_member(plain, "a", "plain.npz").to_float32(), (std::vector<float>{1.5f, -2.25f}));
  EXPECT_EQ(npz_member(plain, "b", "plain.npz").to_int64(), std::vector<std::int64_t>{7});
}

TEST(Npz, TruncatedArchiveIsAnError) {
  const auto dir = testing::make_temp_dir("npz_bad");
  const std::string bytes = read_file(testing::source_dir() / "tests/data/plain.npz");
  write_file_atomic(dir / "cut.npz", bytes.substr(0, bytes.size() / 2));
  EXPECT_THROW(read_npz(dir / "cut.npz"), Error);
}

TEST(NpyTensor, ConvertsBothWays) {
  const auto t = at::arange(6, at::kFloat).reshape({2, 3}).div(4);
  const auto array = from_tensor(t);
  EXPECT_EQ(array.shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_TRUE(at::equal(to_tensor(array), t));
  EXPECT_EQ(to_tensor(from_tensor(t.to(at::kHalf))).scalar_type(), at::kHalf);
}

}  // namespace
}  // namespace clipes::io

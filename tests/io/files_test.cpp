#include "clipes/io/files.h"

#include <gtest/gtest.h>

#include "clipes/core/error.h"
#include "support/test_support.h"

namespace clipes::io {
namespace {

TEST(WriteFileAtomic, WritesCreatesParentsAndLeavesNoTemporary) {
  const auto dir = testing::make_temp_dir("atomic");
  write_file_atomic(dir / "sub" / "a.bin", "hello");
  EXPECT_EQ(read_file(dir / "sub" / "a.bin"), "hello");
  write_file_atomic(dir / "sub" / "a.bin", "again");
  EXPECT_EQ(read_file(dir / "sub" / "a.bin"), "again");
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir / "sub")) {
    ++files;
    EXPECT_FALSE(is_atomic_temporary(entry.path()));
  }
  EXPECT_EQ(files, 1);
}

TEST(WriteFileAtomic, FailureLeavesNothingBehind) {
  const auto dir = testing::make_temp_dir("atomic_fail");
  // The target is an existing folder: the rename fails and the temporary is removed.
  std::filesystem::create_directories(dir / "target" / "inner");
  EXPECT_THROW(write_file_atomic(dir / "target", "x"), Error);
  int files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 1);
}

TEST(WriteFileAtomic, StreamsPiecesAndAnExceptionLeavesNothing) {
  const auto dir = testing::make_temp_dir("atomic_stream");
  write_file_atomic(dir / "s.bin", [](const ByteSink& sink) {
    sink("ab", 2);
    sink("", 0);
    sink("cde", 3);
  });
  EXPECT_EQ(read_file(dir / "s.bin"), "abcde");
  // The producer fails halfway: the old file stays as it was and no temporary is left.
  EXPECT_THROW(write_file_atomic(dir / "s.bin",
                                 [](const ByteSink& sink) {
                                   sink("xy", 2);
                                   throw Error("producer failed");
                                 }),
               Error);
  EXPECT_EQ(read_file(dir / "s.bin"), "abcde");
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    ++files;
    EXPECT_FALSE(is_atomic_temporary(entry.path())) << entry.path();
  }
  EXPECT_EQ(files, 1);
}

TEST(ReadFile, MissingFileIsNamed) {
  try {
    read_file("/nonexistent/clipes.bin");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "cannot read /nonexistent/clipes.bin: no such file");
  }
}

TEST(IsAtomicTemporary, RecognisesOnlyTemporaryNames) {
  EXPECT_TRUE(is_atomic_temporary(".a.png.123.456.tmp"));
  EXPECT_FALSE(is_atomic_temporary("a.png"));
  EXPECT_FALSE(is_atomic_temporary("a.tmp"));
}

}  // namespace
}  // namespace clipes::io

#include "clipes/io/sha256.h"

namespace clipes::io {
namespace {

TEST(Sha256, KnownAnswers) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const auto dir = testing::make_temp_dir("sha256");
  const std::string big(3 << 20, 'a');  // spans several read chunks
  write_file_atomic(dir / "big.bin", big);
  EXPECT_EQ(sha256_file(dir / "big.bin"), sha256_hex(big));
  EXPECT_THROW(sha256_file(dir / "missing.bin"), Error);
}

}  // namespace
}  // namespace clipes::io

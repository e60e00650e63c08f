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

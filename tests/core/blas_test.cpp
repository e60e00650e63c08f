// The BLAS kernel report, and the test main's pinning of OpenBLAS to the reference's kernels.

#include "clipes/core/blas.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>

namespace clipes {
namespace {

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

TEST(Blas, NamesTheKernelsThatOpenblasRuns) {
  at::mm(at::ones({4, 4}), at::ones({4, 4}));  // LibTorch's BLAS is loaded and initialised
  const std::string core = openblas_core_name();
  if (core.empty()) GTEST_SKIP() << "SKIPPED: LibTorch's BLAS here is not OpenBLAS";
  // The test main sets OPENBLAS_CORETYPE (to the reference's kernels) on CPUs with AVX2 and FMA
  // before OpenBLAS loads; OpenBLAS then runs the kernels it names.
  const char* asked = std::getenv("OPENBLAS_CORETYPE");
  if (asked == nullptr) {
    GTEST_SKIP() << "SKIPPED: OPENBLAS_CORETYPE is unset (no AVX2 and FMA?); OpenBLAS chose "
                 << core;
  }
  EXPECT_EQ(lower(core), lower(asked));
}

}  // namespace
}  // namespace clipes

#pragma once
// Helpers of the clip tests: the tiny fixture's paths and tensor comparisons.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "clipes/io/npy_tensor.h"
#include "support/test_support.h"

namespace clipes::clip::testing {

inline std::filesystem::path tiny_clip_path() {
  return clipes::testing::fixture_dir() / "tiny_clip.pt";
}

inline std::filesystem::path tiny_reference(const std::string& name) {
  return clipes::testing::fixture_dir() / "tiny_clip_reference" / (name + ".npy");
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.detach().to(at::kDouble).cpu() - b.detach().to(at::kDouble).cpu())
      .abs()
      .max()
      .item<double>();
}

// Same shape and every element within `tol`.
inline ::testing::AssertionResult all_close(const at::Tensor& actual, const at::Tensor& expected,
                                            double tol) {
  if (actual.sizes() != expected.sizes()) {
    return ::testing::AssertionFailure()
           << "shape " << actual.sizes() << " != expected " << expected.sizes();
  }
  const double diff = max_abs_diff(actual, expected);
  if (!(diff <= tol)) {
    return ::testing::AssertionFailure()
           << "max |difference| " << diff << " > " << tol << " (expected values up to "
           << expected.abs().max().item<double>() << ")";
  }
  return ::testing::AssertionSuccess() << "max |difference| " << diff;
}

}  // namespace clipes::clip::testing

// Skips the test unless the build made the tiny CLIP fixtures.
#define CLIPES_REQUIRE_TINY_CLIP()                                                      \
  do {                                                                                  \
    if (!std::filesystem::exists(clipes::testing::fixture_dir() / "tiny_clip.stamp")) { \
      GTEST_SKIP() << "SKIPPED: the tiny CLIP fixtures are missing from "               \
                   << clipes::testing::fixture_dir().string()                           \
                   << " (the build makes them with scripts/make_tiny_clip.py when "     \
                      "/usr/bin/python3 can import torch and numpy)";                   \
    }                                                                                   \
  } while (0)

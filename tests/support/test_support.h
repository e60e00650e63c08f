#pragma once
/// Helpers shared by the test suites: where ../shared and the build's fixtures are, fresh
/// temporary folders, running the real tools.

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "clipes/core/error.h"

namespace clipes::testing {

/// The shared reference folder: $CLIPES_SHARED_DIR, else the path configured at build time
/// (CLIPES_SHARED_DIR, default <source>/../shared).
std::filesystem::path shared_dir();
/// shared_dir() / relative.
std::filesystem::path shared_path(std::string_view relative);
/// Where the build keeps generated fixtures (tiny models): $CLIPES_FIXTURE_DIR, else
/// <build>/fixtures.
std::filesystem::path fixture_dir();
/// The build's tool folder: <build>/bin.
std::filesystem::path bin_dir();
/// The source tree (for configs/ and tests/data/).
std::filesystem::path source_dir();
/// A new empty folder under <build>/test-tmp named after `name` and the process id.
std::filesystem::path make_temp_dir(std::string_view name);

/// How close this build's numbers can come to ../shared/reference's.
enum class Numerics {
  /// LibTorch 1.13 (Debian's) on OpenBLAS's Haswell kernels, which computed the reference (the
  /// test main arranges them on CPUs with AVX2 and FMA, tools/common/process_setup.h): the same
  /// bits.
  kReference,
  /// LibTorch 1.13 on other OpenBLAS kernels: every matrix product rounds differently (~1e-6).
  kOtherKernels,
  /// Another LibTorch or BLAS (PyPI's LibTorch 2.x runs on MKL, and its interpolation rounds
  /// differently): ~1e-5 relative on CLIP's tokens, one float16 step on a positional embedding.
  kOtherLibrary,
};
Numerics numerics();
/// numerics() == kReference: the parity tests ask for the reference's numbers bit for bit.
bool on_reference_blas();
/// The bound a parity test allows under numerics(): `reference`, `other_kernels` or
/// `other_library`.
double parity_bound(double reference, double other_kernels, double other_library);
/// "LibTorch V on OpenBLAS kernels X" or "LibTorch V on a BLAS other than OpenBLAS", for test
/// messages.
std::string blas_description();

/// What error_of returns when nothing is thrown.
inline constexpr const char* kNoError = "(no clipes::Error thrown)";

/// The message of the clipes::Error that `statement()` throws, or kNoError.
template <class F>
std::string error_of(F&& statement) {
  try {
    statement();
  } catch (const Error& e) {
    return e.what();
  }
  return kNoError;
}

/// `jpeg` (a whole JPEG file) with an APP1 "Exif" segment holding orientation tag `orientation`
/// inserted after its start marker: the same pixel array, tagged as a phone tags a turned photo.
/// big_endian: a Motorola ("MM") TIFF header instead of Intel ("II").
std::string jpeg_with_exif_orientation(std::string_view jpeg, int orientation,
                                       bool big_endian = false);

/// Runs a shell command, capturing stdout and stderr together; returns the exit code.
int run_command(const std::string& command, std::string* output = nullptr);

}  // namespace clipes::testing

/// Skips the current test (saying so loudly) when a required file is absent.
#define CLIPES_REQUIRE_FILE(file_path)                                                \
  do {                                                                                \
    const std::filesystem::path clipes_required_path_ = (file_path);                  \
    if (!std::filesystem::exists(clipes_required_path_)) {                            \
      GTEST_SKIP() << "SKIPPED: " << clipes_required_path_.string()                   \
                   << " is missing (the shared reference data or fixture is absent)"; \
    }                                                                                 \
  } while (0)

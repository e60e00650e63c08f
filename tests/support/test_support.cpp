#include "support/test_support.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>

#include <torch/version.h>

#include "clipes/core/blas.h"

namespace clipes::testing {

std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("CLIPES_SHARED_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
  return std::filesystem::path(CLIPES_SHARED_DIR_DEFAULT).lexically_normal();
}

std::filesystem::path shared_path(std::string_view relative) {
  return shared_dir() / std::filesystem::path(relative);
}

std::filesystem::path fixture_dir() {
  if (const char* env = std::getenv("CLIPES_FIXTURE_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
  return std::filesystem::path(CLIPES_BINARY_DIR) / "fixtures";
}

std::filesystem::path bin_dir() { return std::filesystem::path(CLIPES_BINARY_DIR) / "bin"; }

std::filesystem::path source_dir() { return CLIPES_SOURCE_DIR; }

std::filesystem::path make_temp_dir(std::string_view name) {
  const auto dir = std::filesystem::path(CLIPES_BINARY_DIR) / "test-tmp" /
                   (std::string(name) + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

Numerics numerics() {
  const std::string core = openblas_core_name();
  if (core.empty() || TORCH_VERSION_MAJOR != 1 || TORCH_VERSION_MINOR != 13) {
    return Numerics::kOtherLibrary;
  }
  return core == kReferenceOpenblasCore ? Numerics::kReference : Numerics::kOtherKernels;
}

bool on_reference_blas() { return numerics() == Numerics::kReference; }

double parity_bound(double reference, double other_kernels, double other_library) {
  switch (numerics()) {
    case Numerics::kReference:
      return reference;
    case Numerics::kOtherKernels:
      return other_kernels;
    case Numerics::kOtherLibrary:
      break;
  }
  return other_library;
}

std::string blas_description() {
  const std::string core = openblas_core_name();
  return "LibTorch " TORCH_VERSION " on " +
         (core.empty() ? std::string("a BLAS other than OpenBLAS") : "OpenBLAS kernels " + core);
}

int run_command(const std::string& command, std::string* output) {
  const std::string full = "(" + command + ") 2>&1";
  FILE* pipe = ::popen(full.c_str(), "r");
  if (pipe == nullptr) return -1;
  std::array<char, 4096> buffer{};
  std::string text;
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) text.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  if (output != nullptr) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string jpeg_with_exif_orientation(std::string_view jpeg, int orientation, bool big_endian) {
  const auto u16 = [&](std::string& out, unsigned v) {
    const char hi = static_cast<char>(v >> 8), lo = static_cast<char>(v & 0xFF);
    out += big_endian ? hi : lo;
    out += big_endian ? lo : hi;
  };
  const auto u32 = [&](std::string& out, unsigned v) {
    if (big_endian) {
      u16(out, v >> 16);
      u16(out, v & 0xFFFF);
    } else {
      u16(out, v & 0xFFFF);
      u16(out, v >> 16);
    }
  };
  std::string tiff = big_endian ? "MM" : "II";
  u16(tiff, 42);
  u32(tiff, 8);  // IFD0 right after the header
  u16(tiff, 2);  // two entries: a harmless one first, then Orientation
  u16(tiff, 0x010F);  // Make, ASCII, 4 bytes inline
  u16(tiff, 2);
  u32(tiff, 4);
  tiff += std::string("cam", 4);
  u16(tiff, 0x0112);  // Orientation, SHORT, 1
  u16(tiff, 3);
  u32(tiff, 1);
  u16(tiff, static_cast<unsigned>(orientation));
  u16(tiff, 0);
  u32(tiff, 0);  // no next IFD
  const std::string payload = std::string("Exif\0\0", 6) + tiff;
  std::string segment = "\xFF\xE1";
  const std::size_t length = payload.size() + 2;
  segment += static_cast<char>(length >> 8);
  segment += static_cast<char>(length & 0xFF);
  segment += payload;
  return std::string(jpeg.substr(0, 2)) + segment + std::string(jpeg.substr(2));
}

}  // namespace clipes::testing

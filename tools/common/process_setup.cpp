#include "process_setup.h"

#include <ATen/Parallel.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <array>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>

#include "clipes/core/blas.h"

namespace clipes::cli {

namespace {

// OpenBLAS kernel sets that predate AVX2: what 0.3.21 falls back to on a CPU it does not know.
bool is_pre_avx2_core(std::string_view name) {
  static constexpr std::array<std::string_view, 16> kOld = {
      "Prescott",  "Core2",  "Penryn",     "Dunnington", "Nehalem", "Sandybridge",
      "Atom",      "Katmai", "Coppermine", "Northwood",  "Banias",  "Opteron",
      "Barcelona", "Bobcat", "Bulldozer",  "Piledriver"};
  for (const auto old : kOld) {
    if (name == old) return true;
  }
  return false;
}

bool cpu_has_avx2_fma() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

// What OpenBLAS's SkylakeX kernels need.
bool cpu_has_avx512() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

}  // namespace

void reexec_with_runtime_settings(char** argv, BlasKernels kernels) {
#if defined(__linux__)
  bool change = false;
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    change = true;
  }
  if (std::getenv("OPENBLAS_CORETYPE") == nullptr && cpu_has_avx2_fma()) {
    const std::string core = openblas_core_name();
    const char* wanted = nullptr;
    if (kernels == BlasKernels::kReference) {
      wanted = kReferenceOpenblasCore;
    } else if (is_pre_avx2_core(core)) {
      wanted = cpu_has_avx512() ? "SkylakeX" : "Haswell";
    }
    if (!core.empty() && wanted != nullptr && core != wanted) {
      setenv("OPENBLAS_CORETYPE", wanted, 1);
      change = true;
    }
  }
  if (change) {
    execv("/proc/self/exe", argv);  // returns only when it failed: run on as we are
  }
  // Unless the user tuned glibc's allocator (MALLOC_* variables), serve the transformer's large
  // short-lived tensors (attention maps of 12 x 769 x 769 floats, 28 MiB at 512 x 384) from the
  // heap and keep up to 256 MiB of freed memory: by default each of them is a fresh mmap whose
  // pages fault in on first touch, which costs 20 % of the vision tower's time.
#if defined(__GLIBC__)
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr &&
      std::getenv("MALLOC_TRIM_THRESHOLD_") == nullptr) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum on 64-bit
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
  }
#endif
#else
  (void)argv;
  (void)kernels;
#endif
}

int set_threads(int requested) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = requested > 0 ? requested : cores;
  at::set_num_threads(threads);
  return threads;
}

}  // namespace clipes::cli

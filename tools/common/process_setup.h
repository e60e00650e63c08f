#pragma once
/// Process set-up for the mains (tools, benchmarks, test binaries): what the library must not do
/// itself because it changes the whole process (environment, allocator, thread pools).

namespace clipes::cli {

/// How a main wants its numerical runtime set up (see reexec_with_runtime_settings).
enum class BlasKernels {
  kReference,  ///< always OpenBLAS's Haswell kernels when the CPU has AVX2 and FMA (tests)
  /// Only when OpenBLAS fell back to generic pre-AVX2 kernels: SkylakeX on AVX-512 CPUs (about
  /// 2x faster than Haswell here, rounding differently), else Haswell (tools)
  kFastest,
};

/// Process set-up for a main, before it does anything else. OpenMP and OpenBLAS read their
/// settings from the environment when they load, before main, so the only way to change them is
/// to run the binary again; this does that (execv of /proc/self/exe with the same arguments)
/// when a variable the user has not set should change:
///   - OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep instead of spinning. Spinning threads
///     make LibTorch up to 10x slower when anything else (another process, the CRF's threads)
///     competes for the cores.
///   - OPENBLAS_CORETYPE (see BlasKernels): OpenBLAS 0.3.21 does not know recent CPUs and falls
///     back to its SSE3 kernels, 2x slower than its AVX2 ("Haswell": the kernels of the reference
///     outputs, clipes::kReferenceOpenblasCore) and 4x slower than its AVX-512 ones ("SkylakeX").
/// Returns when nothing had to change (or execv failed: the process goes on as it is), after
/// setting glibc's allocator to keep large freed blocks (M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD
/// 256 MiB) unless a MALLOC_* variable sets them: fresh mmaps for every attention map otherwise
/// cost 20 % of the vision tower's time in page faults.
void reexec_with_runtime_settings(char** argv, BlasKernels kernels);

/// Sets LibTorch's intra-op threads (0 = all cores) and returns the count in use.
int set_threads(int requested);

}  // namespace clipes::cli

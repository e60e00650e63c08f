#pragma once
/// Which BLAS kernels run LibTorch's CPU matrix products. Debian's LibTorch calls OpenBLAS, which
/// picks a kernel set for the CPU when it loads (or the one OPENBLAS_CORETYPE names). The kernel
/// set decides how every matrix product rounds, so the same program gives the same bits only on
/// the same kernel set: ../shared/reference was computed on OpenBLAS's "Haswell" kernels (AVX2 +
/// FMA), and clipes reproduces those numbers bit for bit on them. On CPUs that its version does
/// not know, OpenBLAS 0.3.21 falls back to its "Prescott" kernels (SSE3), slower and rounding
/// differently (~1e-6 on CLIP features). Choosing the kernel set is process set-up, a main's job
/// (tools/common/process_setup.h); the library only reports it.

#include <string>

namespace clipes {

/// The kernel set that produced the reference outputs of ../shared/reference.
inline constexpr const char* kReferenceOpenblasCore = "Haswell";

/// The OpenBLAS kernel set that runs LibTorch's matrix products ("Haswell", "Prescott",
/// "SkylakeX", ...), or "" when LibTorch uses another BLAS (MKL in PyPI's and pytorch.org's
/// builds, whose numbers then differ from the reference in the last bits).
std::string openblas_core_name();

}  // namespace clipes

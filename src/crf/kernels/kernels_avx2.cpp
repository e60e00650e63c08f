// The AVX2+FMA variant of the CRF's loops, on x86 with GCC or Clang: the loop files of
// kernels_baseline.cpp compiled again into namespace `avx2`, inside a region where every function
// targets AVX2+FMA, with a·b + c as one fused multiply-add (CLIPES_CRF_FMA 1). Only the functions
// defined in the region use AVX2: the standard library's, included above it, stay baseline, so
// the binary runs on any x86-64 CPU and kernels_for() picks this table where the CPU has AVX2 and
// FMA. README.md explains the scheme.

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels.h"
#include "simd_rows.h"

#if CLIPES_CRF_HAS_AVX2

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

namespace clipes::crf::detail::avx2 {

#define CLIPES_CRF_FMA 1
// The row toolkit first, then the loops that use it.
// clang-format off
#include "simd_rows.inc"
#include "embed_loops.inc"
#include "lattice_loops.inc"
#include "mean_field_loops.inc"
// clang-format on
#undef CLIPES_CRF_FMA

const KernelTable kKernels = {SimdLevel::kAvx2, "avx2",       &embed,      &scatter_splat,
                              &gather_splat,    &blur,        &blur_lines, &slice,
                              &mean_field,      &negated_rows};

}  // namespace clipes::crf::detail::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // CLIPES_CRF_HAS_AVX2

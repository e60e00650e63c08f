// The baseline variant of the CRF's loops (SSE2 on x86-64, plain C++ elsewhere): the loop files
// compiled into namespace `baseline`, with a·b + c as a product and a sum (CLIPES_CRF_FMA 0).
// kernels_avx2.cpp compiles the same files for AVX2+FMA; README.md explains the scheme.

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels.h"
#include "simd_rows.h"

namespace clipes::crf::detail::baseline {

#define CLIPES_CRF_FMA 0
// The row toolkit first, then the loops that use it.
// clang-format off
#include "simd_rows.inc"
#include "embed_loops.inc"
#include "lattice_loops.inc"
#include "mean_field_loops.inc"
// clang-format on
#undef CLIPES_CRF_FMA

const KernelTable kKernels = {SimdLevel::kBaseline, "baseline",   &embed,      &scatter_splat,
                              &gather_splat,        &blur,        &blur_lines, &slice,
                              &mean_field,          &negated_rows};

}  // namespace clipes::crf::detail::baseline

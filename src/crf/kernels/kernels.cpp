// The choice of SIMD variant: which of the two KernelTables (kernels_baseline.cpp,
// kernels_avx2.cpp) runs.

#include "kernels.h"

namespace clipes::crf::detail {

SimdLevel best_simd_level() {
#if CLIPES_CRF_HAS_AVX2
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdLevel::kAvx2;
#endif
  return SimdLevel::kBaseline;
}

const KernelTable& kernels_for(SimdLevel level) {
#if CLIPES_CRF_HAS_AVX2
  if (level == SimdLevel::kAvx2) return avx2::kKernels;
#else
  (void)level;
#endif
  return baseline::kKernels;
}

}  // namespace clipes::crf::detail

// Entry points of the permutohedral filter's loops and the choice of SIMD variant; the loops
// themselves are in lattice_kernels.inc, compiled once per variant.

#include "lattice_kernels.h"

#include <cstdlib>
#include <string_view>
#include <vector>

#include "simd_rows.h"

namespace clipes::crf::detail {

SimdLevel detect_simd_level() {
  const char* forced = std::getenv("CLIPES_CRF_SIMD");
  if (forced != nullptr && std::string_view(forced) == "baseline") return SimdLevel::kBaseline;
#if CLIPES_CRF_DISPATCH
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdLevel::kAvx2;
#endif
  return SimdLevel::kBaseline;
}

#define CLIPES_CRF_VARIANT_BODY "lattice_kernels.inc"
#include "simd_variants.inc"
#undef CLIPES_CRF_VARIANT_BODY

void scatter_splat_range(SimdLevel simd, const LatticeView& lattice, const float* values,
                         const float* point_scale, int stride, float* vertex_values, int begin,
                         int end) {
  CLIPES_CRF_CALL(simd, scatter, lattice, values, point_scale, stride, vertex_values, begin, end);
}

void gather_splat_range(SimdLevel simd, const LatticeView& lattice, const float* values,
                        const float* point_scale, int stride, float* vertex_values, int begin,
                        int end) {
  CLIPES_CRF_CALL(simd, gather, lattice, values, point_scale, stride, vertex_values, begin, end);
}

void blur_range(SimdLevel simd, const LatticeView& lattice, int axis, const float* in, float* out,
                int stride, int begin, int end) {
  CLIPES_CRF_CALL(simd, blur, lattice, axis, in, out, stride, begin, end);
}

void blur_lines_range(SimdLevel simd, const LatticeView& lattice, float* values, int stride,
                      std::int64_t begin, std::int64_t end) {
  std::vector<float> scratch(3 * static_cast<std::size_t>(stride));  // the generic loop's rows
  CLIPES_CRF_CALL(simd, blur_lines, lattice, values, stride, begin, end, scratch.data());
}

void slice_range(SimdLevel simd, const LatticeView& lattice, const float* vertex_values, int stride,
                 float* out, int begin, int end) {
  CLIPES_CRF_CALL(simd, slice, lattice, vertex_values, stride, out, begin, end);
}

}  // namespace clipes::crf::detail

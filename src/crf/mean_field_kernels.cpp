// Entry points of the mean-field update and of the layout change at the start of inference; the
// loops themselves are in mean_field_kernels.inc, compiled once per SIMD variant.

#include <algorithm>
#include <cassert>
#include <vector>

#include "lattice_kernels.h"
#include "simd_rows.h"

namespace clipes::crf::detail {

#define CLIPES_CRF_VARIANT_BODY "mean_field_kernels.inc"
#include "simd_variants.inc"
#undef CLIPES_CRF_VARIANT_BODY

void mean_field_range(SimdLevel simd, const MessageKernel* kernels, int num_kernels,
                      const float* neg_unary, int labels, int stride, bool scatter, float* q,
                      std::int64_t plane_size, int begin, int end) {
  assert(num_kernels >= 0 && num_kernels <= 2);
  // Scratch of the generic form: kPointBlock rows of a-values and one message row.
  std::vector<float> scratch(static_cast<std::size_t>(baseline::kPointBlock + 1) * stride);
  CLIPES_CRF_CALL(simd, mean_field, kernels, num_kernels, neg_unary, labels, stride, scatter, q,
                  plane_size, begin, end, scratch.data());
}

bool negated_rows_from_planes(SimdLevel simd, const float* planes, int labels, std::int64_t n,
                              int stride, float* rows) {
  return CLIPES_CRF_CALL(simd, negated_rows, planes, labels, n, stride, rows);
}

}  // namespace clipes::crf::detail

// Entry point of Phase A of the lattice build; the loops are in embed_kernels.inc, compiled once
// per SIMD variant.

#include <algorithm>
#include <cstdint>

#include "lattice_kernels.h"
#include "simd_rows.h"

namespace clipes::crf::detail {

#define CLIPES_CRF_VARIANT_BODY "embed_kernels.inc"
#include "simd_variants.inc"
#undef CLIPES_CRF_VARIANT_BODY

std::int64_t embed_range(SimdLevel simd, int dim, const float* features, const float* scale,
                         std::int64_t begin, std::int64_t end, const EmbedTables& out) {
  return CLIPES_CRF_CALL(simd, embed, dim, features, scale, begin, end, out);
}

}  // namespace clipes::crf::detail

#pragma once
/// Internal: what the SIMD loop files share outside their variants: the vector types and the
/// compiler macros. The loops themselves (and the row toolkit, simd_rows.inc) are compiled once
/// per variant, by kernels_baseline.cpp and (on x86 with GCC or Clang) kernels_avx2.cpp.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels.h"

#if CLIPES_CRF_HAS_AVX2
#include <immintrin.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CLIPES_CRF_INLINE inline __attribute__((always_inline))
#define CLIPES_CRF_NOINLINE __attribute__((noinline))
#define CLIPES_CRF_RESTRICT __restrict__
#define CLIPES_CRF_PREFETCH(address, write) __builtin_prefetch((address), (write), 3)
#else
#define CLIPES_CRF_INLINE inline
#define CLIPES_CRF_NOINLINE
#define CLIPES_CRF_RESTRICT
#define CLIPES_CRF_PREFETCH(address, write) ((void)(address))
#endif

// 32-byte vectors in the baseline variant only live inside always-inline functions.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpsabi"
#elif defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace clipes::crf::detail {

// ---- Vector types. -----------------------------------------------------------
// With GCC/Clang vector extensions a row of stride S is S/8 vectors of 8 floats (S % 8 == 0), one
// vector of 4 (S == 4) or S scalars (S <= 2); the baseline variant lowers 8-wide vectors to SSE
// pairs, the AVX2 variant to ymm registers. Other strides (and other compilers) take the generic
// loops (kS == 0).
#if defined(__GNUC__) || defined(__clang__)
#define CLIPES_CRF_VECTORS 1
typedef float V8 __attribute__((vector_size(32)));
typedef std::uint32_t U8 __attribute__((vector_size(32)));
typedef float V4 __attribute__((vector_size(16)));
typedef std::uint32_t U4 __attribute__((vector_size(16)));
typedef std::int32_t I8 __attribute__((vector_size(32)));
typedef std::int32_t I4 __attribute__((vector_size(16)));
#else
#define CLIPES_CRF_VECTORS 0
#endif

#if CLIPES_CRF_VECTORS
typedef float V8u __attribute__((vector_size(32), aligned(4)));
typedef float V4u __attribute__((vector_size(16), aligned(4)));
#endif

}  // namespace clipes::crf::detail

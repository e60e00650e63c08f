#pragma once
/// Internal: what the SIMD loop files share outside their variants: the vector types, the compiler
/// macros, and the dispatch on the stride and on the compiled variant. The loops themselves (and
/// the row toolkit, simd_rows.inc) are compiled once per variant by simd_variants.inc: a baseline
/// variant and, on x86 with GCC or Clang, an AVX2+FMA variant chosen at run time.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "lattice_kernels.h"

// Runtime dispatch: on x86 with GCC or Clang the loops are compiled a second time, in a region
// whose functions all target AVX2+FMA. Everywhere else only the baseline variant exists.
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define CLIPES_CRF_DISPATCH 1
#include <immintrin.h>
#else
#define CLIPES_CRF_DISPATCH 0
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

// ---- Dispatch on the stride and on the compiled variant. ----------------------------------------
// clang-format off
#define CLIPES_CRF_STRIDE_SWITCH(stride, CALL) \
  switch (stride) {                            \
    case 1: CALL(1); break;                    \
    case 2: CALL(2); break;                    \
    case 4: CALL(4); break;                    \
    case 8: CALL(8); break;                    \
    case 16: CALL(16); break;                  \
    case 24: CALL(24); break;                  \
    case 32: CALL(32); break;                  \
    default: CALL(0); break;                   \
  }

#if CLIPES_CRF_DISPATCH
#define CLIPES_CRF_CALL(simd, name, ...) \
  ((simd) == SimdLevel::kAvx2 ? avx2::name(__VA_ARGS__) : baseline::name(__VA_ARGS__))
#else
#define CLIPES_CRF_CALL(simd, name, ...) baseline::name(__VA_ARGS__)
#endif
// clang-format on

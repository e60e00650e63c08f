#pragma once
/// Internal: rows of `stride` floats held in vector registers, and the per-point pieces of the
/// splat and slice shared by lattice_kernels.cpp and mean_field_kernels.cpp. Everything here is
/// always-inline: each kernel file compiles it twice, into a baseline variant and (x86 with GCC
/// or Clang) an AVX2+FMA variant chosen at run time. Both files are compiled without
/// floating-point contraction, so the two variants round identically.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "lattice_kernels.h"

// Runtime dispatch: on x86 with GCC or Clang the loops are compiled a second time for AVX2+FMA
// (`flatten` inlines the always-inline templates below into that variant, so they are compiled
// with its instruction set). Everywhere else only the baseline variant exists.
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define CLIPES_CRF_DISPATCH 1
#define CLIPES_CRF_AVX2 __attribute__((target("avx2,fma"), flatten))
#else
#define CLIPES_CRF_DISPATCH 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CLIPES_CRF_INLINE inline __attribute__((always_inline))
#define CLIPES_CRF_RESTRICT __restrict__
#define CLIPES_CRF_PREFETCH(address, write) __builtin_prefetch((address), (write), 3)
#else
#define CLIPES_CRF_INLINE inline
#define CLIPES_CRF_RESTRICT
#define CLIPES_CRF_PREFETCH(address, write) ((void)(address))
#endif

#if defined(__GNUC__) && !defined(__clang__)
// 32-byte vectors in the baseline variant only live inside always-inline functions.
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace clipes::crf::detail::rows {

// ---- Rows of S floats in registers. -----------------------------------------------------------
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

template <int kS>
struct RowShape {
#if CLIPES_CRF_VECTORS
  using Vec = std::conditional_t<kS % 8 == 0, V8, std::conditional_t<kS == 4, V4, float>>;
  using Mask = std::conditional_t<kS % 8 == 0, U8, std::conditional_t<kS == 4, U4, std::uint32_t>>;
  using Index = std::conditional_t<kS % 8 == 0, I8, std::conditional_t<kS == 4, I4, std::int32_t>>;
#else
  using Vec = float;
  using Mask = std::uint32_t;
  using Index = std::int32_t;
#endif
  static constexpr int kWidth = static_cast<int>(sizeof(Vec) / sizeof(float));
  static constexpr int kCount = kS / kWidth;
};

// Loads and stores of rows go through float-typed lvalues (vector types alias their element
// type), not memcpy: stores to rows then cannot alias the index tables and kernel descriptors,
// which the compiler keeps in registers.
#if CLIPES_CRF_VECTORS
typedef float V8u __attribute__((vector_size(32), aligned(4)));
typedef float V4u __attribute__((vector_size(16), aligned(4)));
#endif
template <class V>
struct UnalignedOf {
  using type = V;
};
#if CLIPES_CRF_VECTORS
template <>
struct UnalignedOf<V8> {
  using type = V8u;
};
template <>
struct UnalignedOf<V4> {
  using type = V4u;
};
#endif
template <class V>
CLIPES_CRF_INLINE V vload(const float* p) {
  return *reinterpret_cast<const typename UnalignedOf<V>::type*>(p);
}
template <class V>
CLIPES_CRF_INLINE void vstore(float* p, V v) {
  *reinterpret_cast<typename UnalignedOf<V>::type*>(p) = v;
}
template <class To, class From>
CLIPES_CRF_INLINE To bit_cast(From from) {
  static_assert(sizeof(To) == sizeof(From));
  To to;
  std::memcpy(&to, &from, sizeof to);
  return to;
}
// x in every lane (V: float or a float vector).
template <class V>
CLIPES_CRF_INLINE V splat_value(float x) {
  return V{} + x;
}
// All-ones lanes where a < b, zero lanes otherwise (a broadcast compare, for selecting without
// touching NaN or garbage). I: int32_t or a signed int vector; M: the unsigned type of its size.
template <class I, class M>
CLIPES_CRF_INLINE M less_mask(std::int32_t a, std::int32_t b) {
  if constexpr (std::is_scalar_v<I>) {
    return 0u - static_cast<std::uint32_t>(a < b);
  } else {
    return bit_cast<M>((I{} + a) < (I{} + b));
  }
}

CLIPES_CRF_INLINE float hmax(float v) { return v; }
CLIPES_CRF_INLINE float hsum(float v) { return v; }
#if CLIPES_CRF_VECTORS
CLIPES_CRF_INLINE float hmax(V4 v) {
  V4 s = __builtin_shufflevector(v, v, 2, 3, 0, 1);
  v = v > s ? v : s;
  s = __builtin_shufflevector(v, v, 1, 0, 3, 2);
  v = v > s ? v : s;
  return v[0];
}
CLIPES_CRF_INLINE float hmax(V8 v) {
  const V4 lo = __builtin_shufflevector(v, v, 0, 1, 2, 3);
  const V4 hi = __builtin_shufflevector(v, v, 4, 5, 6, 7);
  return hmax(lo > hi ? lo : hi);
}
CLIPES_CRF_INLINE float hsum(V4 v) {
  v += __builtin_shufflevector(v, v, 2, 3, 0, 1);
  v += __builtin_shufflevector(v, v, 1, 0, 3, 2);
  return v[0];
}
CLIPES_CRF_INLINE float hsum(V8 v) {
  return hsum(__builtin_shufflevector(v, v, 0, 1, 2, 3) +
              __builtin_shufflevector(v, v, 4, 5, 6, 7));
}
#endif

// Rows are read or written at random (vertex order is not point order): for wide rows (many
// labels, buffers far larger than the caches) their cache lines are requested a few items ahead
// so that the misses overlap. Narrow rows fit the caches well enough without.
constexpr int kPrefetchPoints = 6;
constexpr int kPrefetchVertices = 12;
constexpr int kPrefetchMinStride = 8;

template <int kS>
CLIPES_CRF_INLINE void prefetch_row(const float* row, int write) {
  // Buffers are 64-byte aligned: rows of up to 16 floats lie in one line, wider ones in two.
  if (write) {
    CLIPES_CRF_PREFETCH(row, 1);
    if constexpr (kS > 16) CLIPES_CRF_PREFETCH(row + kS - 1, 1);
  } else {
    CLIPES_CRF_PREFETCH(row, 0);
    if constexpr (kS > 16) CLIPES_CRF_PREFETCH(row + kS - 1, 0);
  }
}

// ---- exp for the softmax: Cephes' expf (range reduction by ln 2, degree-6 polynomial, about
// 1 ulp), branch-free so that it runs on whole vectors. V: float or a float vector; U: the
// unsigned integer type of the same size.
template <class V, class U>
CLIPES_CRF_INLINE V exp_approx(V x) {
  x = x < -87.0f ? splat_value<V>(-87.0f) : x;
  x = x > 88.0f ? splat_value<V>(88.0f) : x;
  // t = 1.5·2^23 + round(x·log2 e): the rounded integer n sits in t's low mantissa bits.
  const V t = x * 1.44269504088896341f + 12582912.0f;
  const V n = t - 12582912.0f;
  V r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const V r2 = r * r;
  V p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  const U two_n = (bit_cast<U>(t) - 0x4B400000u + 127u) << 23;  // 2^n
  return p * bit_cast<V>(two_n);
}

CLIPES_CRF_INLINE void exp_in_place(float* CLIPES_CRF_RESTRICT x, int count) {
  int t = 0;
#if CLIPES_CRF_VECTORS
  for (; t + 8 <= count; t += 8) vstore(x + t, exp_approx<V8, U8>(vload<V8>(x + t)));
#endif
  for (; t < count; ++t) x[t] = exp_approx<float, std::uint32_t>(x[t]);
}

// ---- Step 3 (scatter form): points in order, each corner row updated in place. --------------
// kCorners > 0: the lattice has d + 1 = kCorners (unrolled loops); 0: read it at run time.
template <int kS, int kCorners = 0>
CLIPES_CRF_INLINE void scatter_point(const LatticeView& lattice, std::int64_t i,
                                     const typename RowShape<kS>::Vec* x,
                                     float* CLIPES_CRF_RESTRICT out) {
  using Shape = RowShape<kS>;
  using Vec = typename Shape::Vec;
  using Mask = typename Shape::Mask;
  const int corners = kCorners > 0 ? kCorners : lattice.dim + 1;
  const std::int32_t* vert = lattice.point_vertices + i * corners;
  const float* bary = lattice.barycentric + i * corners;
  const std::int32_t first_new = lattice.first_new[i];
  for (int m = 0; m < corners; ++m) {
    float* row = out + static_cast<std::int64_t>(vert[m]) * kS;
    const float w = bary[m];
    const Mask keep = less_mask<typename Shape::Index, Mask>(vert[m], first_new);
    for (int t = 0; t < Shape::kCount; ++t) {
      const Vec old = bit_cast<Vec>(bit_cast<Mask>(vload<Vec>(row + t * Shape::kWidth)) & keep);
      vstore(row + t * Shape::kWidth, old + w * x[t]);
    }
  }
}

// ---- Step 5: slice one point into registers (fixed stride) or into `acc` (generic). -----------
// The weight is α·b as densecrf's SSE path computes it.
// kAlpha false: Σ b_m · row (the caller folds α into its own scale). kCorners as for
// scatter_point.
template <int kS, bool kAlpha = true, int kCorners = 0>
CLIPES_CRF_INLINE void slice_point(const LatticeView& lattice, const float* CLIPES_CRF_RESTRICT vv,
                                   std::int64_t point, typename RowShape<kS>::Vec* acc) {
  using Shape = RowShape<kS>;
  using Vec = typename Shape::Vec;
  const int corners = kCorners > 0 ? kCorners : lattice.dim + 1;
  const std::int32_t* vert = lattice.point_vertices + point * corners;
  const float* bary = lattice.barycentric + point * corners;
  for (int t = 0; t < Shape::kCount; ++t) acc[t] = splat_value<Vec>(0.0f);
  for (int m = 0; m < corners; ++m) {
    const float* x = vv + static_cast<std::int64_t>(vert[m]) * kS;
    const float w = kAlpha ? bary[m] * lattice.alpha : bary[m];
    for (int t = 0; t < Shape::kCount; ++t) acc[t] += w * vload<Vec>(x + t * Shape::kWidth);
  }
}

inline void slice_point_generic(const LatticeView& lattice, const float* vv, int S,
                                std::int64_t point, float* acc) {
  const int corners = lattice.dim + 1;
  const std::int32_t* vert = lattice.point_vertices + point * corners;
  const float* bary = lattice.barycentric + point * corners;
  for (int c = 0; c < S; ++c) acc[c] = 0.0f;
  for (int m = 0; m < corners; ++m) {
    const float* x = vv + static_cast<std::int64_t>(vert[m]) * S;
    const float w = bary[m] * lattice.alpha;
    for (int c = 0; c < S; ++c) acc[c] += w * x[c];
  }
}

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
  ((simd) == SimdLevel::kAvx2 ? name##_avx2(__VA_ARGS__) : name##_baseline(__VA_ARGS__))
#else
#define CLIPES_CRF_CALL(simd, name, ...) name##_baseline(__VA_ARGS__)
#endif
// clang-format on

}  // namespace clipes::crf::detail::rows

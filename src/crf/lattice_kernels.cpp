#include "lattice_kernels.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string_view>
#include <type_traits>
#include <vector>

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

namespace clipes::crf::detail {

SimdLevel detect_simd_level() {
  const char* forced = std::getenv("CLIPES_CRF_SIMD");
  if (forced != nullptr && std::string_view(forced) == "baseline") return SimdLevel::kBaseline;
#if CLIPES_CRF_DISPATCH
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdLevel::kAvx2;
#endif
  return SimdLevel::kBaseline;
}

namespace {

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
  return hsum(__builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7));
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

template <int kS, bool kScaled>
CLIPES_CRF_INLINE void scatter_splat_impl(const LatticeView& lattice,
                                          const float* CLIPES_CRF_RESTRICT values,
                                          const float* CLIPES_CRF_RESTRICT scale, int stride,
                                          float* CLIPES_CRF_RESTRICT out, int begin, int end) {
  if constexpr (kS > 0) {
    using Shape = RowShape<kS>;
    using Vec = typename Shape::Vec;
    for (int i = begin; i < end; ++i) {
      Vec x[Shape::kCount];
      const float s = kScaled ? scale[i] : 1.0f;
      for (int t = 0; t < Shape::kCount; ++t) {
        x[t] = vload<Vec>(values + static_cast<std::int64_t>(i) * kS + t * Shape::kWidth);
        if constexpr (kScaled) x[t] = x[t] * s;
      }
      scatter_point<kS>(lattice, i, x, out);
    }
  } else {
    const int S = stride;
    const int corners = lattice.dim + 1;
    for (int i = begin; i < end; ++i) {
      const float* x = values + static_cast<std::int64_t>(i) * S;
      const float s = kScaled ? scale[i] : 1.0f;
      for (int m = 0; m < corners; ++m) {
        const std::int32_t v = lattice.point_vertices[static_cast<std::int64_t>(i) * corners + m];
        const float w = lattice.barycentric[static_cast<std::int64_t>(i) * corners + m];
        float* row = out + static_cast<std::int64_t>(v) * S;
        if (v >= lattice.first_new[i]) {
          for (int c = 0; c < S; ++c) row[c] = w * (kScaled ? x[c] * s : x[c]);
        } else {
          for (int c = 0; c < S; ++c) row[c] += w * (kScaled ? x[c] * s : x[c]);
        }
      }
    }
  }
}

// ---- Step 3 (gather form): each vertex sums its points in point order. ------------------------
template <int kS, bool kScaled>
CLIPES_CRF_INLINE void gather_splat_impl(const LatticeView& lattice,
                                         const float* CLIPES_CRF_RESTRICT values,
                                         const float* CLIPES_CRF_RESTRICT scale, int stride,
                                         float* CLIPES_CRF_RESTRICT out, int begin, int end) {
  const std::int32_t* starts = lattice.splat_begin;
  const SplatEntry* entries = lattice.splat_entries;
  if constexpr (kS > 0) {
    using Shape = RowShape<kS>;
    using Vec = typename Shape::Vec;
    for (int v = begin; v < end; ++v) {
      Vec acc[Shape::kCount];
      for (int t = 0; t < Shape::kCount; ++t) acc[t] = splat_value<Vec>(0.0f);
      for (std::int32_t e = starts[v]; e < starts[v + 1]; ++e) {
        const SplatEntry entry = entries[e];
        const float* x = values + static_cast<std::int64_t>(entry.point) * kS;
        const float w = entry.weight;
        if constexpr (kScaled) {
          const float s = scale[entry.point];
          for (int t = 0; t < Shape::kCount; ++t) {
            acc[t] += w * (vload<Vec>(x + t * Shape::kWidth) * s);
          }
        } else {
          for (int t = 0; t < Shape::kCount; ++t) acc[t] += w * vload<Vec>(x + t * Shape::kWidth);
        }
      }
      float* o = out + static_cast<std::int64_t>(v) * kS;
      for (int t = 0; t < Shape::kCount; ++t) vstore(o + t * Shape::kWidth, acc[t]);
    }
  } else {
    const int S = stride;
    for (int v = begin; v < end; ++v) {
      float* sum = out + static_cast<std::int64_t>(v) * S;
      for (int c = 0; c < S; ++c) sum[c] = 0.0f;
      for (std::int32_t e = starts[v]; e < starts[v + 1]; ++e) {
        const SplatEntry entry = entries[e];
        const float* x = values + static_cast<std::int64_t>(entry.point) * S;
        const float w = entry.weight;
        const float s = kScaled ? scale[entry.point] : 1.0f;
        for (int c = 0; c < S; ++c) sum[c] += w * (kScaled ? x[c] * s : x[c]);
      }
    }
  }
}

// ---- Step 4: one blur pass along one axis (Jacobi: reads `in`, writes `out`). -----------------
template <int kS>
CLIPES_CRF_INLINE void blur_impl(const LatticeView& lattice, int axis,
                                 const float* CLIPES_CRF_RESTRICT in, float* CLIPES_CRF_RESTRICT out,
                                 int stride, int begin, int end) {
  const BlurNeighbours* nb =
      lattice.neighbours + static_cast<std::int64_t>(axis) * lattice.num_vertices;
  if constexpr (kS > 0) {
    using Shape = RowShape<kS>;
    using Vec = typename Shape::Vec;
    for (int v = begin; v < end; ++v) {
      if (kS >= kPrefetchMinStride && v + kPrefetchVertices < end) {
        prefetch_row<kS>(in + static_cast<std::int64_t>(nb[v + kPrefetchVertices].n1) * kS, 0);
        prefetch_row<kS>(in + static_cast<std::int64_t>(nb[v + kPrefetchVertices].n2) * kS, 0);
      }
      const float* o = in + static_cast<std::int64_t>(v) * kS;
      const float* a = in + static_cast<std::int64_t>(nb[v].n1) * kS;
      const float* b = in + static_cast<std::int64_t>(nb[v].n2) * kS;
      float* d = out + static_cast<std::int64_t>(v) * kS;
      for (int t = 0; t < Shape::kCount; ++t) {
        const int c = t * Shape::kWidth;
        vstore(d + c, vload<Vec>(o + c) + 0.5f * (vload<Vec>(a + c) + vload<Vec>(b + c)));
      }
    }
  } else {
    const int S = stride;
    for (int v = begin; v < end; ++v) {
      const float* o = in + static_cast<std::int64_t>(v) * S;
      const float* a = in + static_cast<std::int64_t>(nb[v].n1) * S;
      const float* b = in + static_cast<std::int64_t>(nb[v].n2) * S;
      float* d = out + static_cast<std::int64_t>(v) * S;
      for (int c = 0; c < S; ++c) d[c] = o[c] + 0.5f * (a[c] + b[c]);
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

template <int kS>
CLIPES_CRF_INLINE void slice_impl(const LatticeView& lattice, const float* CLIPES_CRF_RESTRICT vv,
                                  int stride, float* CLIPES_CRF_RESTRICT out, int begin, int end) {
  if constexpr (kS > 0) {
    using Shape = RowShape<kS>;
    typename Shape::Vec acc[Shape::kCount];
    for (int i = begin; i < end; ++i) {
      slice_point<kS>(lattice, vv, i, acc);
      float* o = out + static_cast<std::int64_t>(i) * kS;
      for (int t = 0; t < Shape::kCount; ++t) vstore(o + t * Shape::kWidth, acc[t]);
    }
  } else {
    for (int i = begin; i < end; ++i) {
      slice_point_generic(lattice, vv, stride, i, out + static_cast<std::int64_t>(i) * stride);
    }
  }
}

// ---- The mean-field update. -------------------------------------------------------------------
// The pixel loops are compiled for 0, 1 and 2 kernels (DenseCrf has at most two) with the kernel
// descriptors copied into locals, and for the lattice dimensions of the CRF's kernels (d = 2 and
// d = 5) with unrolled corner loops.

// a = −U + Σ_k (w_k α_k) · (Σ_m b_m · blurred_k[v_m]) · n_k for one point, in densecrf's order
// (Gaussian kernel first); α of the slice is folded into the kernel weight.
template <int kS, int kK>
CLIPES_CRF_INLINE void messages_point(const MessageKernel* kernels,
                                      const float* CLIPES_CRF_RESTRICT neg_unary, std::int64_t i,
                                      typename RowShape<kS>::Vec* a) {
  using Shape = RowShape<kS>;
  using Vec = typename Shape::Vec;
  for (int t = 0; t < Shape::kCount; ++t) a[t] = vload<Vec>(neg_unary + i * kS + t * Shape::kWidth);
  for (int k = 0; k < kK; ++k) {
    const MessageKernel& kernel = kernels[k];
    if (kernel.blurred == nullptr) continue;
    Vec msg[Shape::kCount];
    switch (kernel.lattice.dim) {
      case 2: slice_point<kS, false, 3>(kernel.lattice, kernel.blurred, i, msg); break;
      case 5: slice_point<kS, false, 6>(kernel.lattice, kernel.blurred, i, msg); break;
      default: slice_point<kS, false>(kernel.lattice, kernel.blurred, i, msg); break;
    }
    const float nk = kernel.norm[i];
    const float wk = kernel.weight * kernel.lattice.alpha;
    for (int t = 0; t < Shape::kCount; ++t) a[t] += wk * (msg[t] * nk);
  }
}

// Requests the rows point i will read (blurred messages) and write (splat targets) in lattices
// whose vertex order is far from the point order.
template <int kS, int kK>
CLIPES_CRF_INLINE void prefetch_point(const MessageKernel* kernels, bool scatter, std::int64_t i) {
  for (int k = 0; k < kK; ++k) {
    const MessageKernel& kernel = kernels[k];
    if (!kernel.lattice.scattered) continue;
    const int corners = kernel.lattice.dim + 1;
    const std::int32_t* vert = kernel.lattice.point_vertices + i * corners;
    for (int m = 0; m < corners; ++m) {
      const std::int64_t offset = static_cast<std::int64_t>(vert[m]) * kS;
      if (kernel.blurred != nullptr) prefetch_row<kS>(kernel.blurred + offset, 0);
      if (scatter) prefetch_row<kS>(kernel.splat_target + offset, 1);
    }
  }
}

template <int kS, int kK>
CLIPES_CRF_INLINE void emit_point(const MessageKernel* kernels, bool scatter, std::int64_t i,
                                  const typename RowShape<kS>::Vec* qv,
                                  float* CLIPES_CRF_RESTRICT q) {
  using Shape = RowShape<kS>;
  using Vec = typename Shape::Vec;
  if (scatter) {
    for (int k = 0; k < kK; ++k) {
      Vec x[Shape::kCount];
      const float nk = kernels[k].norm[i];
      for (int t = 0; t < Shape::kCount; ++t) x[t] = qv[t] * nk;
      switch (kernels[k].lattice.dim) {
        case 2: scatter_point<kS, 3>(kernels[k].lattice, i, x, kernels[k].splat_target); break;
        case 5: scatter_point<kS, 6>(kernels[k].lattice, i, x, kernels[k].splat_target); break;
        default: scatter_point<kS>(kernels[k].lattice, i, x, kernels[k].splat_target); break;
      }
    }
  } else {
    for (int t = 0; t < Shape::kCount; ++t) vstore(q + i * kS + t * Shape::kWidth, qv[t]);
  }
}

constexpr int kPointBlock = 16;

// Fixed strides. Softmax over the lanes < labels with masked vector reductions; exp on the
// registers of each point (rows of >= 8 floats) or over a block of points (narrow rows, so that
// exp runs on full 8-wide vectors).
template <int kS, int kK>
CLIPES_CRF_INLINE void mean_field_fixed(const MessageKernel* kernels_in,
                                        const float* CLIPES_CRF_RESTRICT neg_unary, int labels,
                                        bool scatter, float* CLIPES_CRF_RESTRICT q, int begin,
                                        int end) {
  using Shape = RowShape<kS>;
  using Vec = typename Shape::Vec;
  using Mask = typename Shape::Mask;
  constexpr bool kBlockExp = kS <= 4;
  MessageKernel kernels[kK > 0 ? kK : 1];
  for (int k = 0; k < kK; ++k) kernels[k] = kernels_in[k];
  Mask valid[Shape::kCount];  // lanes < labels
  for (int t = 0; t < Shape::kCount; ++t) {
    if constexpr (Shape::kWidth == 1) {
      valid[t] = t < labels ? ~0u : 0u;
    } else {
      for (int c = 0; c < Shape::kWidth; ++c) {
        valid[t][c] = t * Shape::kWidth + c < labels ? ~0u : 0u;
      }
    }
  }
  const Vec lowest = splat_value<Vec>(std::numeric_limits<float>::lowest());
  alignas(64) float block[kBlockExp ? kPointBlock * kS : 1];
  for (int i0 = begin; i0 < end; i0 += kBlockExp ? kPointBlock : 1) {
    const int n = kBlockExp ? std::min(kPointBlock, end - i0) : 1;
    Vec a[Shape::kCount];
    for (int j = 0; j < n; ++j) {
      const int i = i0 + j;
      if (kS >= kPrefetchMinStride && i + kPrefetchPoints < end) {
        prefetch_point<kS, kK>(kernels, scatter, i + kPrefetchPoints);
      }
      messages_point<kS, kK>(kernels, neg_unary, i, a);
      Vec mx = lowest;
      for (int t = 0; t < Shape::kCount; ++t) {
        const Vec v = bit_cast<Vec>((bit_cast<Mask>(a[t]) & valid[t]) |
                                    (bit_cast<Mask>(lowest) & ~valid[t]));
        mx = v > mx ? v : mx;
      }
      const float m = hmax(mx);
      for (int t = 0; t < Shape::kCount; ++t) a[t] = a[t] - m;
      if constexpr (kBlockExp) {
        for (int t = 0; t < Shape::kCount; ++t) vstore(block + j * kS + t * Shape::kWidth, a[t]);
      }
    }
    if constexpr (kBlockExp) exp_in_place(block, n * kS);
    for (int j = 0; j < n; ++j) {
      const int i = i0 + j;
      Vec sum = splat_value<Vec>(0.0f);
      for (int t = 0; t < Shape::kCount; ++t) {
        const Vec e = kBlockExp ? vload<Vec>(block + j * kS + t * Shape::kWidth)
                                : exp_approx<Vec, Mask>(a[t]);
        a[t] = bit_cast<Vec>(bit_cast<Mask>(e) & valid[t]);
        sum += a[t];
      }
      const float inverse = 1.0f / hsum(sum);
      for (int t = 0; t < Shape::kCount; ++t) a[t] = a[t] * inverse;
      emit_point<kS, kK>(kernels, scatter, i, a, q);
    }
  }
}

// Any stride: plain loops over the lanes, blocks of points for exp.
inline void scatter_point_generic(const LatticeView& lattice, std::int64_t i, const float* x,
                                  float scale, int S, float* out) {
  const int corners = lattice.dim + 1;
  for (int m = 0; m < corners; ++m) {
    const std::int32_t v = lattice.point_vertices[i * corners + m];
    const float w = lattice.barycentric[i * corners + m];
    float* row = out + static_cast<std::int64_t>(v) * S;
    if (v >= lattice.first_new[i]) {
      for (int c = 0; c < S; ++c) row[c] = w * (x[c] * scale);
    } else {
      for (int c = 0; c < S; ++c) row[c] += w * (x[c] * scale);
    }
  }
}

inline void mean_field_generic(const MessageKernel* kernels, int num_kernels,
                               const float* neg_unary, int labels, int S, bool scatter, float* q,
                               int begin, int end, float* block, float* msg) {
  for (int i0 = begin; i0 < end; i0 += kPointBlock) {
    const int n = std::min(kPointBlock, end - i0);
    for (int j = 0; j < n; ++j) {
      const std::int64_t i = i0 + j;
      float* a = block + j * S;
      for (int c = 0; c < S; ++c) a[c] = neg_unary[i * S + c];
      for (int k = 0; k < num_kernels; ++k) {
        const MessageKernel& kernel = kernels[k];
        if (kernel.blurred == nullptr) continue;
        slice_point_generic(kernel.lattice, kernel.blurred, S, i, msg);
        const float nk = kernel.norm[i];
        const float wk = kernel.weight;
        for (int c = 0; c < S; ++c) a[c] += wk * (msg[c] * nk);
      }
      float mx = a[0];
      for (int c = 1; c < labels; ++c) mx = a[c] > mx ? a[c] : mx;
      for (int c = 0; c < S; ++c) a[c] -= mx;
    }
    exp_in_place(block, n * S);
    for (int j = 0; j < n; ++j) {
      float* e = block + j * S;
      float sum = 0.0f;
      for (int c = 0; c < labels; ++c) sum += e[c];
      const float inverse = 1.0f / sum;
      for (int c = 0; c < S; ++c) e[c] = c < labels ? e[c] * inverse : 0.0f;
      const std::int64_t i = i0 + j;
      if (scatter) {
        for (int k = 0; k < num_kernels; ++k) {
          scatter_point_generic(kernels[k].lattice, i, e, kernels[k].norm[i], S,
                                kernels[k].splat_target);
        }
      } else {
        std::copy_n(e, S, q + i * S);
      }
    }
  }
}

template <int kS>
CLIPES_CRF_INLINE void mean_field_impl(const MessageKernel* kernels, int num_kernels,
                                       const float* CLIPES_CRF_RESTRICT neg_unary, int labels,
                                       int stride, bool scatter, float* CLIPES_CRF_RESTRICT q,
                                       int begin, int end, float* scratch) {
  if constexpr (kS > 0) {
    switch (num_kernels) {
      case 0: mean_field_fixed<kS, 0>(kernels, neg_unary, labels, scatter, q, begin, end); break;
      case 1: mean_field_fixed<kS, 1>(kernels, neg_unary, labels, scatter, q, begin, end); break;
      default: mean_field_fixed<kS, 2>(kernels, neg_unary, labels, scatter, q, begin, end); break;
    }
  } else {
    mean_field_generic(kernels, num_kernels, neg_unary, labels, stride, scatter, q, begin, end,
                       scratch, scratch + kPointBlock * stride);
  }
}

// ---- Dispatch on the stride: one switch per variant. ------------------------------------------
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

#define CLIPES_CRF_SCATTER(S)                                                       \
  if (scale != nullptr) {                                                           \
    scatter_splat_impl<S, true>(lattice, values, scale, stride, out, begin, end);   \
  } else {                                                                          \
    scatter_splat_impl<S, false>(lattice, values, scale, stride, out, begin, end);  \
  }
#define CLIPES_CRF_GATHER(S)                                                        \
  if (scale != nullptr) {                                                           \
    gather_splat_impl<S, true>(lattice, values, scale, stride, out, begin, end);    \
  } else {                                                                          \
    gather_splat_impl<S, false>(lattice, values, scale, stride, out, begin, end);   \
  }
#define CLIPES_CRF_BLUR(S) blur_impl<S>(lattice, axis, in, out, stride, begin, end)
#define CLIPES_CRF_SLICE(S) slice_impl<S>(lattice, vv, stride, out, begin, end)
#define CLIPES_CRF_MEAN_FIELD(S)                                                                \
  mean_field_impl<S>(kernels, num_kernels, neg_unary, labels, stride, scatter, q, begin, end, \
                     scratch)

// The bodies are identical for both variants; the macro keeps them so.
#define CLIPES_CRF_DEFINE_VARIANT(ATTR, SUFFIX)                                                  \
  ATTR void scatter_##SUFFIX(const LatticeView& lattice, const float* values, const float* scale, \
                             int stride, float* out, int begin, int end) {                      \
    CLIPES_CRF_STRIDE_SWITCH(stride, CLIPES_CRF_SCATTER)                                        \
  }                                                                                             \
  ATTR void gather_##SUFFIX(const LatticeView& lattice, const float* values, const float* scale, \
                            int stride, float* out, int begin, int end) {                       \
    CLIPES_CRF_STRIDE_SWITCH(stride, CLIPES_CRF_GATHER)                                         \
  }                                                                                             \
  ATTR void blur_##SUFFIX(const LatticeView& lattice, int axis, const float* in, float* out,     \
                          int stride, int begin, int end) {                                     \
    CLIPES_CRF_STRIDE_SWITCH(stride, CLIPES_CRF_BLUR)                                           \
  }                                                                                             \
  ATTR void slice_##SUFFIX(const LatticeView& lattice, const float* vv, int stride, float* out, \
                           int begin, int end) {                                                \
    CLIPES_CRF_STRIDE_SWITCH(stride, CLIPES_CRF_SLICE)                                          \
  }                                                                                             \
  ATTR void mean_field_##SUFFIX(const MessageKernel* kernels, int num_kernels,                  \
                                const float* neg_unary, int labels, int stride, bool scatter,   \
                                float* q, int begin, int end, float* scratch) {                 \
    CLIPES_CRF_STRIDE_SWITCH(stride, CLIPES_CRF_MEAN_FIELD)                                     \
  }

CLIPES_CRF_DEFINE_VARIANT(, baseline)
#if CLIPES_CRF_DISPATCH
CLIPES_CRF_DEFINE_VARIANT(CLIPES_CRF_AVX2, avx2)
#define CLIPES_CRF_CALL(simd, name, ...) \
  ((simd) == SimdLevel::kAvx2 ? name##_avx2(__VA_ARGS__) : name##_baseline(__VA_ARGS__))
#else
#define CLIPES_CRF_CALL(simd, name, ...) name##_baseline(__VA_ARGS__)
#endif

}  // namespace

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

void slice_range(SimdLevel simd, const LatticeView& lattice, const float* vertex_values,
                 int stride, float* out, int begin, int end) {
  CLIPES_CRF_CALL(simd, slice, lattice, vertex_values, stride, out, begin, end);
}

void mean_field_range(SimdLevel simd, const MessageKernel* kernels, int num_kernels,
                      const float* neg_unary, int labels, int stride, bool scatter, float* q,
                      int begin, int end) {
  assert(num_kernels >= 0 && num_kernels <= 2);
  // Scratch of the block form: kPointBlock rows of a-values and one message row.
  std::vector<float> scratch(static_cast<std::size_t>(kPointBlock + 1) * stride);
  CLIPES_CRF_CALL(simd, mean_field, kernels, num_kernels, neg_unary, labels, stride, scatter, q,
                  begin, end, scratch.data());
}

}  // namespace clipes::crf::detail

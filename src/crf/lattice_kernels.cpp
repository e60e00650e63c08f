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

namespace {

using namespace rows;  // NOLINT(google-build-using-namespace): the row toolkit of this file

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
                                 const float* CLIPES_CRF_RESTRICT in,
                                 float* CLIPES_CRF_RESTRICT out, int stride, int begin, int end) {
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

// ---- Step 4 on lines: each line of an axis blurred in place, the old values of the previous,
// current and next vertex carried in registers.
template <int kS>
CLIPES_CRF_INLINE void blur_lines_impl(const LatticeView& lattice,
                                       float* CLIPES_CRF_RESTRICT values, int stride,
                                       std::int64_t begin, std::int64_t end, float* scratch) {
  const std::int32_t* vert = lattice.line_vertices;
  const std::int64_t* starts = lattice.line_begin;
  const std::int64_t last = starts[end];
  if constexpr (kS > 0) {
    using Shape = RowShape<kS>;
    using Vec = typename Shape::Vec;
    const auto row = [&](std::int64_t p) {
      return values + static_cast<std::int64_t>(vert[p]) * kS;
    };
    for (std::int64_t c = begin; c < end; ++c) {
      const std::int64_t from = starts[c];
      const std::int64_t to = starts[c + 1];
      Vec prev[Shape::kCount];
      Vec cur[Shape::kCount];
      for (int t = 0; t < Shape::kCount; ++t) {
        prev[t] = splat_value<Vec>(0.0f);
        cur[t] = vload<Vec>(row(from) + t * Shape::kWidth);
      }
      for (std::int64_t p = from; p < to; ++p) {
        if (kS >= kPrefetchMinStride && p + kPrefetchVertices < last) {
          prefetch_row<kS>(row(p + kPrefetchVertices), 1);
        }
        Vec next[Shape::kCount];
        for (int t = 0; t < Shape::kCount; ++t) {
          next[t] =
              p + 1 < to ? vload<Vec>(row(p + 1) + t * Shape::kWidth) : splat_value<Vec>(0.0f);
        }
        float* d = row(p);
        for (int t = 0; t < Shape::kCount; ++t) {
          vstore(d + t * Shape::kWidth, cur[t] + 0.5f * (prev[t] + next[t]));
          prev[t] = cur[t];
          cur[t] = next[t];
        }
      }
    }
  } else {
    const int S = stride;
    float* prev = scratch;
    float* cur = scratch + S;
    float* next = scratch + 2 * S;
    for (std::int64_t c = begin; c < end; ++c) {
      const std::int64_t from = starts[c];
      const std::int64_t to = starts[c + 1];
      std::fill_n(prev, S, 0.0f);
      std::copy_n(values + static_cast<std::int64_t>(vert[from]) * S, S, cur);
      for (std::int64_t p = from; p < to; ++p) {
        if (p + 1 < to) {
          std::copy_n(values + static_cast<std::int64_t>(vert[p + 1]) * S, S, next);
        } else {
          std::fill_n(next, S, 0.0f);
        }
        float* d = values + static_cast<std::int64_t>(vert[p]) * S;
        for (int k = 0; k < S; ++k) d[k] = cur[k] + 0.5f * (prev[k] + next[k]);
        std::swap(prev, cur);  // prev = old cur
        std::swap(cur, next);  // cur = old next; next is free
      }
    }
  }
  (void)last;
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

// clang-format off
#define CLIPES_CRF_SCATTER(S)                                                        \
  if (scale != nullptr) {                                                            \
    scatter_splat_impl<S, true>(lattice, values, scale, stride, out, begin, end);    \
  } else {                                                                           \
    scatter_splat_impl<S, false>(lattice, values, scale, stride, out, begin, end);   \
  }
#define CLIPES_CRF_GATHER(S)                                                         \
  if (scale != nullptr) {                                                            \
    gather_splat_impl<S, true>(lattice, values, scale, stride, out, begin, end);     \
  } else {                                                                           \
    gather_splat_impl<S, false>(lattice, values, scale, stride, out, begin, end);    \
  }
#define CLIPES_CRF_BLUR(S) blur_impl<S>(lattice, axis, in, out, stride, begin, end)
#define CLIPES_CRF_BLUR_LINES(S) blur_lines_impl<S>(lattice, values, stride, begin, end, scratch)
#define CLIPES_CRF_SLICE(S) slice_impl<S>(lattice, vv, stride, out, begin, end)

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
  ATTR void blur_lines_##SUFFIX(const LatticeView& lattice, float* values, int stride,           \
                                 std::int64_t begin, std::int64_t end, float* scratch) {        \
    CLIPES_CRF_STRIDE_SWITCH(stride, CLIPES_CRF_BLUR_LINES)                                    \
  }                                                                                             \
  ATTR void slice_##SUFFIX(const LatticeView& lattice, const float* vv, int stride, float* out, \
                           int begin, int end) {                                                \
    CLIPES_CRF_STRIDE_SWITCH(stride, CLIPES_CRF_SLICE)                                          \
  }

CLIPES_CRF_DEFINE_VARIANT(, baseline)
#if CLIPES_CRF_DISPATCH
CLIPES_CRF_DEFINE_VARIANT(CLIPES_CRF_AVX2, avx2)
#endif
// clang-format on

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

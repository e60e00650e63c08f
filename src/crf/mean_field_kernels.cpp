// The mean-field update of the dense CRF (dense-crf.md, "The mean-field update"), fused with
// the slice of the previous step's messages and the splat of the new marginals.

#include <algorithm>
#include <cassert>
#include <vector>

#include "lattice_kernels.h"
#include "simd_rows.h"

namespace clipes::crf::detail {

namespace {

using namespace rows;  // NOLINT(google-build-using-namespace): the row toolkit of this file

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
      case 2:
        slice_point<kS, false, 3>(kernel.lattice, kernel.blurred, i, msg);
        break;
      case 5:
        slice_point<kS, false, 6>(kernel.lattice, kernel.blurred, i, msg);
        break;
      default:
        slice_point<kS, false>(kernel.lattice, kernel.blurred, i, msg);
        break;
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
        case 2:
          scatter_point<kS, 3>(kernels[k].lattice, i, x, kernels[k].splat_target);
          break;
        case 5:
          scatter_point<kS, 6>(kernels[k].lattice, i, x, kernels[k].splat_target);
          break;
        default:
          scatter_point<kS>(kernels[k].lattice, i, x, kernels[k].splat_target);
          break;
      }
    }
  } else {
    for (int t = 0; t < Shape::kCount; ++t) vstore(q + i * kS + t * Shape::kWidth, qv[t]);
  }
}

constexpr int kPointBlock = 16;

// Fixed strides. Softmax over the lanes < labels with masked vector reductions, exp over a block
// of points at a time: a tight loop of independent vectors rather than one long dependency chain
// per point (the softmax of 24-float rows runs 1.6x faster so).
template <int kS, int kK>
CLIPES_CRF_INLINE void mean_field_fixed(const MessageKernel* kernels_in,
                                        const float* CLIPES_CRF_RESTRICT neg_unary, int labels,
                                        bool scatter, float* CLIPES_CRF_RESTRICT q, int begin,
                                        int end) {
  using Shape = RowShape<kS>;
  using Vec = typename Shape::Vec;
  using Mask = typename Shape::Mask;
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
  alignas(64) float block[kPointBlock * kS];
  for (int i0 = begin; i0 < end; i0 += kPointBlock) {
    const int n = std::min(kPointBlock, end - i0);
    Vec a[Shape::kCount];
    for (int j = 0; j < n; ++j) {
      const int i = i0 + j;
      if (kS >= kPrefetchMinStride && i + kPrefetchPoints < end) {
        prefetch_point<kS, kK>(kernels, scatter, i + kPrefetchPoints);
      }
      messages_point<kS, kK>(kernels, neg_unary, i, a);
      Vec mx = lowest;
      for (int t = 0; t < Shape::kCount; ++t) {
        const Vec v =
            bit_cast<Vec>((bit_cast<Mask>(a[t]) & valid[t]) | (bit_cast<Mask>(lowest) & ~valid[t]));
        mx = v > mx ? v : mx;
      }
      const float m = hmax(mx);
      for (int t = 0; t < Shape::kCount; ++t) vstore(block + j * kS + t * Shape::kWidth, a[t] - m);
    }
    exp_in_place(block, n * kS);
    for (int j = 0; j < n; ++j) {
      const int i = i0 + j;
      Vec sum = splat_value<Vec>(0.0f);
      for (int t = 0; t < Shape::kCount; ++t) {
        const Vec e = vload<Vec>(block + j * kS + t * Shape::kWidth);
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
      case 0:
        mean_field_fixed<kS, 0>(kernels, neg_unary, labels, scatter, q, begin, end);
        break;
      case 1:
        mean_field_fixed<kS, 1>(kernels, neg_unary, labels, scatter, q, begin, end);
        break;
      default:
        mean_field_fixed<kS, 2>(kernels, neg_unary, labels, scatter, q, begin, end);
        break;
    }
  } else {
    mean_field_generic(kernels, num_kernels, neg_unary, labels, stride, scatter, q, begin, end,
                       scratch, scratch + kPointBlock * stride);
  }
}

// clang-format off
#define CLIPES_CRF_MEAN_FIELD(S)                                                              \
  mean_field_impl<S>(kernels, num_kernels, neg_unary, labels, stride, scatter, q, begin, end, \
                     scratch)

#define CLIPES_CRF_DEFINE_VARIANT(ATTR, SUFFIX)                                                \
  ATTR void mean_field_##SUFFIX(const MessageKernel* kernels, int num_kernels,                \
                                const float* neg_unary, int labels, int stride, bool scatter, \
                                float* q, int begin, int end, float* scratch) {               \
    CLIPES_CRF_STRIDE_SWITCH(stride, CLIPES_CRF_MEAN_FIELD)                                   \
  }

CLIPES_CRF_DEFINE_VARIANT(, baseline)
#if CLIPES_CRF_DISPATCH
CLIPES_CRF_DEFINE_VARIANT(CLIPES_CRF_AVX2, avx2)
#endif
// clang-format on

}  // namespace

void mean_field_range(SimdLevel simd, const MessageKernel* kernels, int num_kernels,
                      const float* neg_unary, int labels, int stride, bool scatter, float* q,
                      int begin, int end) {
  assert(num_kernels >= 0 && num_kernels <= 2);
  // Scratch of the generic form: kPointBlock rows of a-values and one message row.
  std::vector<float> scratch(static_cast<std::size_t>(kPointBlock + 1) * stride);
  CLIPES_CRF_CALL(simd, mean_field, kernels, num_kernels, neg_unary, labels, stride, scatter, q,
                  begin, end, scratch.data());
}

}  // namespace clipes::crf::detail

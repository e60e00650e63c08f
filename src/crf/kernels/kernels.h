#pragma once
/// Internal: the hot loops of the permutohedral lattice (Phase A of its build, the filter) and of
/// the mean-field update, compiled twice (baseline and AVX2+FMA: kernels_baseline.cpp,
/// kernels_avx2.cpp; see README.md) into one KernelTable each, chosen at run time. Each function
/// works on a range so that callers can split it over threads. Rows are `stride` floats; strides
/// 1, 2, 4, 8, 16, 24 and 32 run specialised vector loops (see row_stride()), any other stride
/// generic ones.

#include <cstdint>
#include <limits>

// The AVX2+FMA variant exists on x86 with GCC or Clang (kernels_avx2.cpp); elsewhere only the
// baseline does.
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define CLIPES_CRF_HAS_AVX2 1
#else
#define CLIPES_CRF_HAS_AVX2 0
#endif

namespace clipes::crf {
class PermutohedralLattice;
}  // namespace clipes::crf

namespace clipes::crf::detail {

/// Which compiled variant of the loops runs: the baseline (SSE2 on x86-64) or AVX2+FMA. The
/// AVX2+FMA loops round each a·b + c of the splat, slice and mean-field update once (fused), the
/// baseline twice: the two agree to a few units in the last place; within a variant, every path
/// (threads, scatter or gather splat, lines or whole passes) gives the same bits.
enum class SimdLevel { kBaseline, kAvx2 };

/// One (point, weight) pair of the splat table, grouped by vertex.
struct SplatEntry {
  std::int32_t point;
  float weight;
};
/// The two neighbours of a vertex along one lattice axis (num_vertices = the dummy row).
struct BlurNeighbours {
  std::int32_t n1;
  std::int32_t n2;
};

/// The row stride for `channels` values: 1 or 2 as is, 3-4 -> 4, otherwise a multiple of 8.
inline int row_stride(int channels) {
  return channels <= 2 ? channels : channels <= 4 ? 4 : (channels + 7) / 8 * 8;
}

/// In the blur lines' vertex list, the bit that marks a line's last vertex (ids are >= 0).
constexpr std::int32_t kLineEnd = std::numeric_limits<std::int32_t>::min();

/// Views of one lattice's tables.
struct LatticeView {
  int num_points = 0;
  int dim = 0;
  int num_vertices = 0;
  float alpha = 1.0f;                            // slice scale 1 / (1 + 2^−d)
  const std::int32_t* point_vertices = nullptr;  // [N, d+1]
  const float* barycentric = nullptr;            // [N, d+1]
  const std::int32_t* first_new = nullptr;       // [N]: vertices created before point i
  const std::int32_t* splat_begin = nullptr;     // [M + 1] (null: no gather table)
  const SplatEntry* splat_entries = nullptr;     // [N·(d+1)]
  const BlurNeighbours* neighbours = nullptr;    // [d+1, M]
  // The blur lines, concatenated, kLineEnd marking each line's last vertex
  // (KernelTable::blur_lines).
  const std::int32_t* line_vertices = nullptr;
  const std::int64_t* line_begin = nullptr;  // [lines + 1]: where each line starts
  bool scattered = false;  // vertex order far from point order: prefetch rows in point loops
};

/// The point-side tables of `lattice` (sizes, α, corners, weights, first_new): what the slice and
/// the scatter splat read. The gather table, the blur neighbours and `scattered` stay unset.
LatticeView point_view(const PermutohedralLattice& lattice);

/// Lifted coordinates beyond this (or not finite) are refused: lattice keys are int16 (as
/// densecrf's), with a margin for the neighbour keys (±(d+1)).
constexpr float kMaxCoordinate = 30000.0f;

/// Where Phase A of the build writes, per point i: the remainder-0 point's first d coordinates
/// (bases[i·d + k]), the ranks of the first d residuals (ranks[i·d + k]; the last one follows),
/// the d+1 barycentric weights (barycentric[i·(d+1) + m]); and the smallest and largest base
/// coordinate seen (min[k], max[k], updated).
struct EmbedTables {
  std::int16_t* bases = nullptr;
  std::int8_t* ranks = nullptr;
  float* barycentric = nullptr;
  int* base_min = nullptr;
  int* base_max = nullptr;
};

/// One pairwise kernel of the mean-field update.
struct MessageKernel {
  LatticeView lattice;
  const float* blurred = nullptr;  // [(M + 1) · stride]: K·(n·Q) before slicing (null: none yet)
  float* splat_target = nullptr;   // [(M + 1) · stride]: where to scatter n·Q (scatter mode)
  const float* norm = nullptr;     // [N]: 1/√(K·1)
  float weight = 0;
};

/// The loops of one compiled variant, as function pointers: `kernels_for(level).blur(...)`. The
/// two tables are defined at the end of kernels_baseline.cpp and kernels_avx2.cpp, each pointing at
/// the functions of its namespace (the same loop files compiled twice; README.md).
struct KernelTable {
  SimdLevel level;
  const char* name;  ///< "baseline" or "avx2"

  /// Phase A of the lattice build (dense-crf.md Steps 0-1.4) for points [begin, end) of
  /// d-dimensional `features` (1 <= d <= 8), with densecrf's float arithmetic; scale[k] is Step
  /// 0's factor of feature k. Points are independent; each variant computes the same bits (no
  /// fused operations), blocks of 8 points at a time. Returns the first point whose remainder-0
  /// point lies outside ±kMaxCoordinate or is not finite (tables of points after it unset), or
  /// `end`.
  std::int64_t (*embed)(int dim, const float* features, const float* scale, std::int64_t begin,
                        std::int64_t end, const EmbedTables& out);

  /// Scatter splat of points [begin, end) in point order: for each corner m of point i,
  /// out[v] = (v first met at i ? 0 : out[v]) + b_m(i) · (values[i] · scale[i]). Over all points
  /// this writes every vertex row (the first contribution replaces what the row held).
  void (*scatter_splat)(const LatticeView& lattice, const float* values, const float* point_scale,
                        int stride, float* vertex_values, int begin, int end);

  /// Gather splat (needs the splat table): out[v] = Σ b · values[p] · scale[p] over the entries
  /// of each vertex v in [begin, end), in point order.
  void (*gather_splat)(const LatticeView& lattice, const float* values, const float* point_scale,
                       int stride, float* vertex_values, int begin, int end);

  /// out[v] = in[v] + ½ (in[n1(v)] + in[n2(v)]) along `axis` for v in [begin, end).
  void (*blur)(const LatticeView& lattice, int axis, const float* in, float* out, int stride,
               int begin, int end);

  /// The blur along one axis in place, for the lines [begin, end) of that axis: a line
  /// v_0, …, v_L is a maximal run of vertices with v_(k+1) = n2(v_k); each v_k becomes
  /// v_k + ½ (v_(k−1) + v_(k+1)) from the old values (a missing end neighbour is 0), exactly what
  /// `blur` computes. Vertices on no line of the axis have no neighbours along it and keep their
  /// value (v + ½ (0 + 0) = v).
  void (*blur_lines)(const LatticeView& lattice, float* values, int stride, std::int64_t begin,
                     std::int64_t end);

  /// out[i] = Σ_m (α·b_m(i)) · vertex_values[vertex(i, m)] for points i in [begin, end).
  void (*slice)(const LatticeView& lattice, const float* vertex_values, int stride, float* out,
                int begin, int end);

  /// The mean-field update for points [begin, end) (dense-crf.md, "The mean-field update"):
  ///   a_i = −U_i + Σ_k w_k · (slice_k(i) · n_k(i))   (no kernel term while `blurred` is null)
  ///   q_i = softmax of a_i over the first `labels` lanes.
  /// Then, if `scatter`, q_i · n_k(i) is scatter-splatted into each kernel's splat_target (the
  /// range must then be all points, in one thread); otherwise q_i is stored into q: as row i of
  /// [N, stride] (lanes from `labels` to `stride` as 0) when plane_size is 0, else as planes,
  /// q[l·plane_size + i] for l < labels. neg_unary: [N, stride]; its lanes from `labels` on hold
  /// the lowest float (negated_rows), so that they never win the softmax's max. At most two
  /// kernels.
  void (*mean_field)(const MessageKernel* kernels, int num_kernels, const float* neg_unary,
                     int labels, int stride, bool scatter, float* q, std::int64_t plane_size,
                     int begin, int end);

  /// −U as rows: rows[i·stride + l] = −planes[l·n + i] for l < labels, the lowest float for the
  /// other lanes (what mean_field expects). Returns false if any plane value is not finite (rows
  /// are then incomplete).
  bool (*negated_rows)(const float* planes, int labels, std::int64_t n, int stride, float* rows);
};

namespace baseline {
extern const KernelTable kKernels;  ///< kernels_baseline.cpp
}  // namespace baseline
#if CLIPES_CRF_HAS_AVX2
namespace avx2 {
extern const KernelTable kKernels;  ///< kernels_avx2.cpp
}  // namespace avx2
#endif

/// The fastest variant this CPU runs: AVX2+FMA where it has both, else the baseline.
SimdLevel best_simd_level();

/// The loops of `level` (the baseline when this build has no AVX2 variant).
const KernelTable& kernels_for(SimdLevel level);

}  // namespace clipes::crf::detail

#pragma once
/// Internal: the permutohedral lattice (Adams, Baek & Davis, Eurographics 2010) for d-dimensional
/// Gaussian filtering, with the arithmetic of densecrf 2.2 (dense-crf.md Steps 0-5):
///   out_i ≈ Σ_j exp(−½‖p_i − p_j‖²) · v_j     (the sum includes j = i).
/// The lattice depends only on the features: build it once, then filter any number of value
/// arrays through it (the dense CRF filters Q ten times per image through the same lattice).
///
/// Layout: values are point-major with channels innermost, [num_points, stride] float32, of which
/// the first `channels` floats of each row are used. Vertex buffers are [num_vertices + 1, stride]
/// (the last row is a zero "dummy" that stands for missing blur neighbours). Memory of a lattice:
/// 8·(d+1) + 4 bytes per point (16·(d+1) + 4 with the parallel splat table) plus 8·(d+1) bytes
/// per vertex, and for a sparse lattice up to 4·(d+1) more per vertex for the blur's lines;
/// filtering adds two vertex buffers, 2·(vertices + 1)·stride floats.
///
/// No LibTorch; plain float arrays. Thread-safe for concurrent const use with separate
/// workspaces.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "aligned_buffer.h"
#include "clipes/crf/dense_crf.h"  // LatticeStats
#include "kernels/kernels.h"

namespace clipes::crf {

/// Scratch vertex buffers for PermutohedralLattice::filter; grown on demand and reused, so
/// filtering allocates nothing after the first call.
struct LatticeWorkspace {
  detail::AlignedFloats vertex_values;
  detail::AlignedFloats vertex_scratch;
  detail::AlignedFloats padded_in;
  detail::AlignedFloats padded_out;
};

class PermutohedralLattice {
 public:
  static constexpr int kMaxDim = 8;

  PermutohedralLattice() = default;

  /// Builds the lattice (Steps 0-2 and the splat table).
  /// features: [num_points, dim] float32, point-major, already divided by the kernel widths
  ///   (unit-σ Gaussian). 1 <= dim <= kMaxDim; lifted coordinates must stay within ±30000
  ///   (|feature| up to ~3000 for d = 5), else clipes::Error.
  /// threads: workers for the parallel parts of the build (1: single-threaded, 0: all cores).
  /// simd: the compiled variant of the loops that builds and filters (see simd_level()).
  PermutohedralLattice(const float* features, int num_points, int dim, int threads = 1,
                       detail::SimdLevel simd = detail::best_simd_level());

  int num_points() const { return num_points_; }
  int dim() const { return dim_; }
  int num_vertices() const { return num_vertices_; }
  LatticeStats stats() const;
  /// Bytes held by the lattice's tables.
  std::size_t memory_bytes() const;

  /// Gaussian filtering: out[i, c] ≈ Σ_j k(p_i, p_j) · values[j, c] for c < channels.
  /// values, out: [num_points, channels] float32 (contiguous; must not overlap).
  void filter(const float* values, float* out, int channels, LatticeWorkspace& workspace,
              int threads = 1) const;
  /// Convenience form: values [num_points, channels] -> out [num_points, channels].
  std::vector<float> filter(const std::vector<float>& values, int channels, int threads = 1) const;

  // ---- The stages, for callers that fuse the slice into their own per-point loop (DenseCrf).
  // `stride` is the row length of values and vertex buffers (any stride >= 1 works; 1, 2, 4, 8,
  // 16, 24 and 32 run specialised, vectorised loops).

  /// Step 3: vertex_values[v] = Σ_(i,w) w · (values[i] · point_scale[i]) in point order
  /// (point_scale may be null: 1), for all vertices; the dummy row is set to 0. Whatever the
  /// buffer held is overwritten (it need not be zeroed). vertex_values: [(num_vertices + 1) ·
  /// stride].
  void splat(const float* values, const float* point_scale, int stride, float* vertex_values,
             int threads) const;
  /// Step 4: blurs along axes 0..d; returns whichever of `a` (holding the splatted values) and
  /// `b` holds the result. Both: [(num_vertices + 1) · stride]. How, with the same arithmetic
  /// either way: a sparse lattice (most vertices without a neighbour along an axis, as in the
  /// bilateral kernel) blurs each axis's lines in place in `a`, visiting only the vertices that
  /// have neighbours; a dense one ping-pongs whole passes between `a` and `b`, in one thread as a
  /// wavefront over cache-sized windows when the vertex order keeps neighbours close (the
  /// position-only kernel).
  float* blur(float* a, float* b, int stride, int threads) const;
  /// Step 5: out[i] = Σ_m (α·b_m(i)) · vertex_values[vertex(i, m)]. out: [num_points · stride].
  void slice(const float* vertex_values, int stride, float* out, int threads) const;

  /// [num_points, d+1]: the vertex of each simplex corner of each point.
  const std::int32_t* point_vertices() const { return point_vertices_.data(); }
  /// [num_points, d+1]: the barycentric weight b_m of each corner (slices use α·b_m).
  const float* barycentric() const { return barycentric_.data(); }
  /// The slice scale α = 1 / (1 + 2^−d).
  float alpha() const { return alpha_; }
  /// [num_points]: the number of vertices created before point i (vertex ids are dense, in order
  /// of first appearance); a corner of point i with an id >= this value appears first at i.
  const std::int32_t* first_new_vertex() const { return first_new_.data(); }
  /// [d+1, M]: each vertex's two neighbours along each axis (M, the dummy row, where missing).
  const detail::BlurNeighbours* blur_neighbours() const { return blur_neighbours_.data(); }
  /// Largest |vertex id − neighbour id| over the blur links (small: the vertex order keeps
  /// lattice neighbours close, as for position-only features in raster order).
  std::int64_t max_neighbour_distance() const { return max_neighbour_distance_; }
  /// Whether the vertex-major splat table exists (lattices built with threads != 1): it lets
  /// splat() run in parallel over vertices; otherwise splat() runs over points in one thread.
  bool has_splat_table() const { return !splat_begin_.empty(); }
  /// The compiled loop variant in use (the constructor's `simd`; see detail::SimdLevel).
  detail::SimdLevel simd_level() const { return kernels_->level; }

 private:
  template <int D>
  void build(const float* features, int threads);
  // The blur's lines (sparse lattices only; see blur()).
  void build_lines();
  // All tables, for the filter loops.
  detail::LatticeView tables() const;

  int num_points_ = 0;
  int dim_ = 0;
  int num_vertices_ = 0;
  float alpha_ = 1.0f;
  std::int64_t max_neighbour_distance_ = 0;
  const detail::KernelTable* kernels_ = &detail::baseline::kKernels;  // the loops in use
  detail::BuildTable<std::int32_t> point_vertices_;                   // [N, d+1]
  detail::BuildTable<float> barycentric_;                             // [N, d+1]
  detail::BuildTable<std::int32_t> first_new_;                        // [N]
  std::vector<std::int32_t> splat_begin_;                             // [M + 1] (threads != 1 only)
  std::vector<detail::SplatEntry> splat_entries_;               // [N·(d+1)], by vertex then point
  detail::BuildTable<detail::BlurNeighbours> blur_neighbours_;  // [d+1, M]
  // The blur's lines, axis after axis (see detail::KernelTable::blur_lines): line c holds
  // line_vertices_[line_begin_[c] .. line_begin_[c + 1]); axis a owns lines
  // axis_lines_[a] .. axis_lines_[a + 1].
  std::vector<std::int32_t> line_vertices_;
  std::vector<std::int64_t> line_begin_;
  std::vector<std::int64_t> axis_lines_;
};

}  // namespace clipes::crf

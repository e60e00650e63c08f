#include "permutohedral.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>

#include "clipes/core/error.h"
#include "kernels/kernels.h"
#include "lattice_index.h"
#include "parallel.h"

namespace clipes::crf {

namespace {

using detail::GridIndex;
using detail::HashIndex;
using detail::index_vertices;
using detail::kMinPointChunk;
using detail::kMinVertexChunk;

// The wavefront blur keeps its window of vertex rows (both buffers) within this many bytes.
constexpr std::int64_t kWavefrontBytes = std::int64_t{1} << 20;
constexpr std::int64_t kWavefrontStep = 256;
// Lines per chunk when the blur runs over several threads.
constexpr std::int64_t kMinLineChunk = 512;
// The blur runs on lines when at most this share of the vertex-axis pairs lie on one.
constexpr double kMaxLineShare = 0.85;

// Step 0's factor of each feature, with densecrf's mix of double and float.
template <int D>
void step0_scale(float* scale) {
  const auto inv_std_dev = static_cast<float>(std::sqrt(2.0 / 3.0) * (D + 1));
  for (int k = 0; k < D; ++k) {
    scale[k] =
        static_cast<float>(1.0 / std::sqrt(static_cast<double>((k + 2) * (k + 1))) * inv_std_dev);
  }
}

// The blur's neighbours axis-major, [d+1, m], from the vertex-major `links` [m, d+1], missing ones
// (−1) pointing at the dummy row m: −1 + (m + 1), selected by the sign bit, not by a branch (about
// half the links of a bilateral lattice are missing, in no pattern a branch predictor can follow:
// 3.4 -> 1 ms). Returns the largest |vertex − neighbour| over the links.
template <int D>
std::int32_t axis_major_neighbours(const std::vector<detail::BlurNeighbours>& links, std::int32_t m,
                                   detail::BuildTable<detail::BlurNeighbours>& neighbours) {
  constexpr int kCorners = D + 1;
  neighbours.resize(static_cast<std::size_t>(kCorners) * m);
  const std::int32_t to_dummy = m + 1;
  std::int32_t max_distance = 0;
  for (std::int32_t v = 0; v < m; ++v) {
    const detail::BlurNeighbours* link = &links[static_cast<std::size_t>(v) * kCorners];
    for (int a = 0; a <= D; ++a) {
      const std::int32_t missing1 = -static_cast<std::int32_t>(link[a].n1 < 0);  // all ones
      const std::int32_t missing2 = -static_cast<std::int32_t>(link[a].n2 < 0);
      neighbours[static_cast<std::size_t>(a) * m + v] = detail::BlurNeighbours{
          link[a].n1 + (missing1 & to_dummy), link[a].n2 + (missing2 & to_dummy)};
      // n2 links mirror n1 links, so the n1 side alone gives the largest distance.
      const std::int32_t distance = (link[a].n1 - v) & ~missing1;
      max_distance = std::max(max_distance, distance < 0 ? -distance : distance);
    }
  }
  return max_distance;
}

// Phase D: the splat table, each vertex's (point, weight) entries in point order (begin: [m + 1]).
template <int D>
void vertex_major_splat_table(const detail::BuildTable<std::int32_t>& point_vertices,
                              const detail::BuildTable<float>& barycentric, std::int32_t m,
                              std::vector<std::int32_t>& begin,
                              std::vector<detail::SplatEntry>& entries) {
  constexpr int kCorners = D + 1;
  const auto n = static_cast<std::int64_t>(point_vertices.size() / kCorners);
  begin.assign(static_cast<std::size_t>(m) + 1, 0);
  for (std::int32_t v : point_vertices) ++begin[static_cast<std::size_t>(v) + 1];
  for (std::int32_t v = 0; v < m; ++v) begin[v + 1] += begin[v];
  entries.resize(point_vertices.size());
  std::vector<std::int32_t> cursor(begin.begin(), begin.end() - 1);
  for (std::int64_t i = 0; i < n; ++i) {
    for (int r = 0; r <= D; ++r) {
      const std::size_t at = static_cast<std::size_t>(i * kCorners + r);
      entries[static_cast<std::size_t>(cursor[point_vertices[at]]++)] =
          detail::SplatEntry{static_cast<std::int32_t>(i), barycentric[at]};
    }
  }
}

}  // namespace

PermutohedralLattice::PermutohedralLattice(const float* features, int num_points, int dim,
                                           int threads, detail::SimdLevel simd)
    : num_points_(num_points), dim_(dim), kernels_(&detail::kernels_for(simd)) {
  if (dim < 1 || dim > kMaxDim) {
    throw Error(fmt::format("permutohedral lattice: feature dimension must be in [1, {}], got {}",
                            kMaxDim, dim));
  }
  if (num_points < 1) {
    throw Error(fmt::format("permutohedral lattice: needs at least one point, got {}", num_points));
  }
  if (features == nullptr) throw Error("permutohedral lattice: features are null");
  switch (dim) {
    case 1:
      build<1>(features, threads);
      break;
    case 2:
      build<2>(features, threads);
      break;
    case 3:
      build<3>(features, threads);
      break;
    case 4:
      build<4>(features, threads);
      break;
    case 5:
      build<5>(features, threads);
      break;
    case 6:
      build<6>(features, threads);
      break;
    case 7:
      build<7>(features, threads);
      break;
    default:
      build<8>(features, threads);
      break;
  }
}

template <int D>
void PermutohedralLattice::build(const float* features, int threads) {
  constexpr int kCorners = D + 1;
  const std::int64_t n = num_points_;

  float scale[D];
  step0_scale<D>(scale);
  alpha_ = 1.0f / (1.0f + std::pow(2.0f, -static_cast<float>(D)));
  int canonical[kCorners * kCorners];  // C[r][t]: corner r's offset for rank t
  for (int r = 0; r <= D; ++r) {
    for (int t = 0; t <= D; ++t) canonical[r * kCorners + t] = t <= D - r ? r : r - (D + 1);
  }

  // Phase A (parallel over points): the enclosing simplex (remainder-0 point and ranks) and the
  // barycentric weights of every point, Steps 0-1.4.
  barycentric_.resize(static_cast<std::size_t>(n * kCorners));
  std::vector<std::int16_t> bases(static_cast<std::size_t>(n * D));
  std::vector<std::int8_t> ranks(static_cast<std::size_t>(n * D));
  std::int64_t first_bad = n;
  std::mutex bad_mutex;
  int base_min[D];
  int base_max[D];
  std::fill_n(base_min, D, std::numeric_limits<int>::max());
  std::fill_n(base_max, D, std::numeric_limits<int>::min());
  detail::parallel_for(threads, n, kMinPointChunk, [&](std::int64_t begin, std::int64_t end) {
    int local_min[D];
    int local_max[D];
    std::fill_n(local_min, D, std::numeric_limits<int>::max());
    std::fill_n(local_max, D, std::numeric_limits<int>::min());
    const detail::EmbedTables tables{bases.data(), ranks.data(), barycentric_.data(), local_min,
                                     local_max};
    const std::int64_t bad = kernels_->embed(D, features, scale, begin, end, tables);
    const std::lock_guard<std::mutex> lock(bad_mutex);
    first_bad = std::min(first_bad, bad < end ? bad : n);
    for (int k = 0; k < D; ++k) {
      base_min[k] = std::min(base_min[k], local_min[k]);
      base_max[k] = std::max(base_max[k], local_max[k]);
    }
  });
  if (first_bad < n) {
    throw Error(fmt::format(
        "permutohedral lattice: point {} lies outside the lattice's ±{} coordinate range "
        "(features too large or not finite; its first feature is {})",
        first_bad, detail::kMaxCoordinate, features[first_bad * D]));
  }

  // Phases B and C: vertex ids and neighbours, through a dense grid when the keys fill a small
  // box (position-only features), else through the hash table. Same ids either way.
  int lo[D];
  int hi[D];
  for (int k = 0; k < D; ++k) {
    lo[k] = base_min[k] - 2 * (D + 1);  // corners reach ±d, their neighbours ±(d+1) further
    hi[k] = base_max[k] + 2 * (D + 1);
  }
  std::vector<detail::BlurNeighbours> links;
  if (GridIndex<D>::volume(lo, hi) <= 4 * n + 4096) {
    GridIndex<D> index(lo, hi, static_cast<std::size_t>(n));
    links =
        index_vertices<D>(index, n, bases, ranks, canonical, threads, point_vertices_, first_new_);
  } else {
    HashIndex<D> index(static_cast<std::size_t>(n));
    links =
        index_vertices<D>(index, n, bases, ranks, canonical, threads, point_vertices_, first_new_);
  }
  std::vector<std::int16_t>().swap(bases);
  std::vector<std::int8_t>().swap(ranks);
  const auto m = static_cast<std::int32_t>(links.size() / kCorners);
  num_vertices_ = m;

  max_neighbour_distance_ = axis_major_neighbours<D>(links, m, blur_neighbours_);

  build_lines();

  // Phase D: the vertex-major splat table, for the parallel splat only.
  if (detail::resolve_threads(threads) > 1) {
    vertex_major_splat_table<D>(point_vertices_, barycentric_, m, splat_begin_, splat_entries_);
  }
}

void PermutohedralLattice::build_lines() {
  const int corners = dim_ + 1;
  const std::int32_t m = num_vertices_;
  axis_lines_.clear();
  line_begin_.clear();
  line_vertices_.clear();
  // Vertices with a neighbour along an axis, over all axes: the lines' total length.
  std::int64_t on_lines = 0;
  std::int64_t lines = 0;
  for (const detail::BlurNeighbours& nb : blur_neighbours_) {
    on_lines += (nb.n1 != m) | (nb.n2 != m);
    lines += (nb.n1 == m) & (nb.n2 != m);
  }
  if (static_cast<double>(on_lines) >
      kMaxLineShare * static_cast<double>(blur_neighbours_.size())) {
    return;  // a dense lattice: whole passes cost about the same and need no tables
  }
  line_vertices_.resize(static_cast<std::size_t>(on_lines));
  line_begin_.resize(static_cast<std::size_t>(lines) + 1);
  axis_lines_.resize(static_cast<std::size_t>(corners) + 1);
  std::int32_t* out = line_vertices_.data();
  std::int64_t* begin = line_begin_.data();
  std::int64_t line = 0;
  for (int a = 0; a < corners; ++a) {
    axis_lines_[static_cast<std::size_t>(a)] = line;
    const detail::BlurNeighbours* nb = &blur_neighbours_[static_cast<std::size_t>(a) * m];
    // The heads (an n2, no n1) first, branch-free, into `begin`; then each line walked from its
    // head, the heads a few lines ahead requested early.
    const std::int64_t first = line;
    for (std::int32_t v = 0; v < m; ++v) {
      begin[line] = v;
      line += static_cast<std::int64_t>((nb[v].n1 == m) & (nb[v].n2 != m));
    }
    constexpr std::int64_t kAhead = 8;
    for (std::int64_t c = first; c < line; ++c) {
      if (c + kAhead < line) CLIPES_CRF_PREFETCH(&nb[begin[c + kAhead]]);
      const auto head = static_cast<std::int32_t>(begin[c]);
      begin[c] = out - line_vertices_.data();
      for (std::int32_t u = head; u != m; u = nb[u].n2) {
        *out++ = nb[u].n2 == m ? (u | detail::kLineEnd) : u;
      }
    }
  }
  axis_lines_[static_cast<std::size_t>(corners)] = line;
  begin[line] = out - line_vertices_.data();
}

LatticeStats PermutohedralLattice::stats() const {
  LatticeStats s;
  s.num_points = num_points_;
  s.dim = dim_;
  s.num_vertices = num_vertices_;
  s.simd = kernels_->name;
  for (const detail::BlurNeighbours& nb : blur_neighbours_) {
    s.num_neighbour_links += (nb.n1 != num_vertices_) + (nb.n2 != num_vertices_);
  }
  s.max_neighbour_distance = max_neighbour_distance_;
  s.line_vertices = static_cast<std::int64_t>(line_vertices_.size());
  return s;
}

std::size_t PermutohedralLattice::memory_bytes() const {
  return point_vertices_.capacity() * sizeof(std::int32_t) +
         barycentric_.capacity() * sizeof(float) + first_new_.capacity() * sizeof(std::int32_t) +
         splat_begin_.capacity() * sizeof(std::int32_t) +
         splat_entries_.capacity() * sizeof(detail::SplatEntry) +
         blur_neighbours_.capacity() * sizeof(detail::BlurNeighbours) +
         line_vertices_.capacity() * sizeof(std::int32_t) +
         (line_begin_.capacity() + axis_lines_.capacity()) * sizeof(std::int64_t);
}

namespace detail {

LatticeView point_view(const PermutohedralLattice& lattice) {
  LatticeView view;
  view.num_points = lattice.num_points();
  view.dim = lattice.dim();
  view.num_vertices = lattice.num_vertices();
  view.alpha = lattice.alpha();
  view.point_vertices = lattice.point_vertices();
  view.barycentric = lattice.barycentric();
  view.first_new = lattice.first_new_vertex();
  return view;
}

}  // namespace detail

detail::LatticeView PermutohedralLattice::tables() const {
  detail::LatticeView view = detail::point_view(*this);
  view.splat_begin = splat_begin_.empty() ? nullptr : splat_begin_.data();
  view.splat_entries = splat_entries_.empty() ? nullptr : splat_entries_.data();
  view.neighbours = blur_neighbours_.data();
  view.line_vertices = line_vertices_.data();
  view.line_begin = line_begin_.data();
  return view;
}

void PermutohedralLattice::splat(const float* values, const float* point_scale, int stride,
                                 float* vertex_values, int threads) const {
  const detail::LatticeView view = tables();
  if (detail::resolve_threads(threads) > 1 && has_splat_table()) {
    detail::parallel_for(threads, num_vertices_, kMinVertexChunk,
                         [&](std::int64_t begin, std::int64_t end) {
                           kernels_->gather_splat(view, values, point_scale, stride, vertex_values,
                                                  static_cast<int>(begin), static_cast<int>(end));
                         });
  } else {
    kernels_->scatter_splat(view, values, point_scale, stride, vertex_values, 0, num_points_);
  }
  std::fill_n(vertex_values + static_cast<std::int64_t>(num_vertices_) * stride, stride, 0.0f);
}

float* PermutohedralLattice::blur(float* a, float* b, int stride, int threads) const {
  const detail::LatticeView view = tables();
  const std::int64_t m = num_vertices_;
  std::fill_n(a + m * stride, stride, 0.0f);
  std::fill_n(b + m * stride, stride, 0.0f);
  const int passes = dim_ + 1;
  float* buffers[2] = {a, b};
  const std::int64_t reach = max_neighbour_distance_ + 1;
  const std::int64_t window_rows = passes * reach + 2 * reach + kWavefrontStep;
  // The form was chosen at build time: a lattice with lines (sparse) always blurs on them.
  const bool wavefront =
      axis_lines_.empty() && detail::resolve_threads(threads) == 1 && m > window_rows &&
      window_rows * stride * 2 * static_cast<std::int64_t>(sizeof(float)) <= kWavefrontBytes;
  if (wavefront) {
    // Pass p reads buffers[p % 2] and writes buffers[(p + 1) % 2]. Pass p may process vertex v
    // once pass p − 1 has passed v + reach (all of v's neighbours are done), and writing v then
    // no longer clobbers a row that pass p − 1 still reads (it reads rows >= its position −
    // reach + 1). Same arithmetic as whole passes; the window stays in cache.
    std::vector<std::int64_t> done(static_cast<std::size_t>(passes), 0);
    while (done[static_cast<std::size_t>(passes - 1)] < m) {
      for (int p = 0; p < passes; ++p) {
        const std::int64_t from = done[static_cast<std::size_t>(p)];
        std::int64_t to = 0;
        if (p == 0) {
          to = std::min(m, from + kWavefrontStep);
        } else {
          const std::int64_t ahead = done[static_cast<std::size_t>(p - 1)];
          to = ahead == m ? m : std::max(from, ahead - reach);
        }
        if (to > from) {
          kernels_->blur(view, p, buffers[p % 2], buffers[(p + 1) % 2], stride,
                         static_cast<int>(from), static_cast<int>(to));
          done[static_cast<std::size_t>(p)] = to;
        }
      }
    }
    return buffers[passes % 2];
  }
  if (axis_lines_.empty()) {
    for (int p = 0; p < passes; ++p) {
      detail::parallel_for(threads, m, kMinVertexChunk, [&](std::int64_t begin, std::int64_t end) {
        kernels_->blur(view, p, buffers[p % 2], buffers[(p + 1) % 2], stride,
                       static_cast<int>(begin), static_cast<int>(end));
      });
    }
    return buffers[passes % 2];
  }
  // Each axis's lines blurred in place: only vertices with a neighbour along the axis are read
  // and written (a quarter to a half of the vertex-axis pairs in the CRF's lattices).
  for (int p = 0; p < passes; ++p) {
    const std::int64_t first = axis_lines_[static_cast<std::size_t>(p)];
    const std::int64_t count = axis_lines_[static_cast<std::size_t>(p) + 1] - first;
    detail::parallel_for(threads, count, kMinLineChunk, [&](std::int64_t begin, std::int64_t end) {
      kernels_->blur_lines(view, a, stride, first + begin, first + end);
    });
  }
  return a;
}

void PermutohedralLattice::slice(const float* vertex_values, int stride, float* out,
                                 int threads) const {
  const detail::LatticeView view = tables();
  detail::parallel_for(threads, num_points_, kMinPointChunk,
                       [&](std::int64_t begin, std::int64_t end) {
                         kernels_->slice(view, vertex_values, stride, out, static_cast<int>(begin),
                                         static_cast<int>(end));
                       });
}

void PermutohedralLattice::filter(const float* values, float* out, int channels,
                                  LatticeWorkspace& workspace, int threads) const {
  if (channels < 1) {
    throw Error(fmt::format("permutohedral filter: channels must be >= 1, got {}", channels));
  }
  // Rows of 1, 2, 4 or a multiple of 8 floats run the specialised loops; pad other widths.
  const int stride = detail::row_stride(channels);
  const std::size_t rows = static_cast<std::size_t>(num_vertices_) + 1;
  workspace.vertex_values.assign(rows * stride, 0.0f);  // the splat reads (and masks) rows
  workspace.vertex_scratch.resize(rows * stride);       // written by the blur before it is read
  const float* in = values;
  float* dst = out;
  if (stride != channels) {
    workspace.padded_in.assign(static_cast<std::size_t>(num_points_) * stride, 0.0f);
    workspace.padded_out.resize(static_cast<std::size_t>(num_points_) * stride);
    for (std::int64_t i = 0; i < num_points_; ++i) {
      std::copy_n(values + i * channels, channels, workspace.padded_in.data() + i * stride);
    }
    in = workspace.padded_in.data();
    dst = workspace.padded_out.data();
  }
  splat(in, nullptr, stride, workspace.vertex_values.data(), threads);
  const float* blurred =
      blur(workspace.vertex_values.data(), workspace.vertex_scratch.data(), stride, threads);
  slice(blurred, stride, dst, threads);
  if (stride != channels) {
    for (std::int64_t i = 0; i < num_points_; ++i) {
      std::copy_n(workspace.padded_out.data() + i * stride, channels, out + i * channels);
    }
  }
}

std::vector<float> PermutohedralLattice::filter(const std::vector<float>& values, int channels,
                                                int threads) const {
  if (channels < 1 || values.size() != static_cast<std::size_t>(num_points_) * channels) {
    throw Error(fmt::format(
        "permutohedral filter: expected {} points × {} channels = {} values, got {}", num_points_,
        channels, static_cast<std::int64_t>(num_points_) * channels, values.size()));
  }
  std::vector<float> out(values.size());
  LatticeWorkspace workspace;
  filter(values.data(), out.data(), channels, workspace, threads);
  return out;
}

}  // namespace clipes::crf

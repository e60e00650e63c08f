#include "clipes/crf/dense_crf.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>

#include "aligned_buffer.h"
#include "clipes/core/error.h"
#include "kernels/kernels.h"
#include "parallel.h"
#include "permutohedral.h"

namespace clipes::crf {

namespace {

constexpr std::int64_t kMinPointChunk = 4096;

detail::SimdLevel simd_level(CrfLoops loops) {
  return loops == CrfLoops::kBaseline ? detail::SimdLevel::kBaseline : detail::best_simd_level();
}

// n = 1/√(K·1 + 1e−20), as densecrf's NORMALIZE_SYMMETRIC (computed in double, stored float).
std::vector<float> symmetric_norm(const PermutohedralLattice& lattice, int threads) {
  const std::int64_t n = lattice.num_points();
  const std::size_t rows = static_cast<std::size_t>(lattice.num_vertices()) + 1;
  std::vector<float> ones(static_cast<std::size_t>(n), 1.0f);
  std::vector<float> a(rows);
  std::vector<float> b(rows);
  lattice.splat(ones.data(), nullptr, 1, a.data(), threads);
  const float* blurred = lattice.blur(a.data(), b.data(), 1, threads);
  std::vector<float> norm(static_cast<std::size_t>(n));
  lattice.slice(blurred, 1, norm.data(), threads);
  for (float& v : norm) v = static_cast<float>(1.0 / std::sqrt(v + 1e-20));
  return norm;
}

}  // namespace

namespace detail {

struct CrfKernel {
  PermutohedralLattice lattice;
  std::vector<float> norm;  // [H·W]: 1/√(K·1 + 1e−20)
  // A position-only kernel is fully determined by these and whether its lattice has the splat
  // table (the workspace's cache key).
  int height = 0;
  int width = 0;
  float pos_std = 0;

  CrfKernel(const std::vector<float>& features, int dim, int threads, SimdLevel simd)
      : lattice(features.data(), static_cast<int>(features.size() / static_cast<std::size_t>(dim)),
                dim, threads, simd),
        norm(symmetric_norm(lattice, threads)) {}

  std::size_t bytes() const { return lattice.memory_bytes() + norm.capacity() * sizeof(float); }
};

}  // namespace detail

namespace {

// The Gaussian kernel's features as densecrf's DenseCRF2D computes them: float(column) / σ,
// float(row) / σ.
std::shared_ptr<const detail::CrfKernel> position_kernel(int height, int width, float pos_std,
                                                         int threads, detail::SimdLevel simd) {
  std::vector<float> features(static_cast<std::size_t>(height) * width * 2);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      float* f = features.data() + (static_cast<std::int64_t>(y) * width + x) * 2;
      f[0] = static_cast<float>(x) / pos_std;
      f[1] = static_cast<float>(y) / pos_std;
    }
  }
  auto kernel = std::make_shared<detail::CrfKernel>(features, 2, threads, simd);
  kernel->height = height;
  kernel->width = width;
  kernel->pos_std = pos_std;
  return kernel;
}

}  // namespace

struct CrfWorkspace::State {
  detail::AlignedFloats neg_unary;
  detail::AlignedFloats q;  // Q as rows, when several threads splat it (not in one thread)
  std::vector<detail::AlignedFloats> vertex_buffers;
  std::vector<std::shared_ptr<const detail::CrfKernel>> position_kernels;  // most recent first

  // The position-only kernel of this size, from the cache or built (and cached).
  std::shared_ptr<const detail::CrfKernel> position_kernel(int height, int width, float pos_std,
                                                           int threads, detail::SimdLevel simd) {
    // A lattice built for several threads carries the splat table the parallel splat needs.
    const bool splat_table = detail::resolve_threads(threads) > 1;
    auto& cache = position_kernels;
    auto hit = std::find_if(cache.begin(), cache.end(), [&](const auto& k) {
      return k->height == height && k->width == width && k->pos_std == pos_std &&
             k->lattice.has_splat_table() == splat_table && k->lattice.simd_level() == simd;
    });
    if (hit == cache.end()) {
      if (cache.size() == kCachedPositionKernels) cache.pop_back();
      cache.insert(cache.begin(), crf::position_kernel(height, width, pos_std, threads, simd));
    } else {
      std::rotate(cache.begin(), hit, hit + 1);  // most recently used first
    }
    return cache.front();
  }
};

CrfWorkspace::CrfWorkspace() : state_(std::make_unique<State>()) {}
CrfWorkspace::~CrfWorkspace() = default;
CrfWorkspace::CrfWorkspace(CrfWorkspace&&) noexcept = default;
CrfWorkspace& CrfWorkspace::operator=(CrfWorkspace&&) noexcept = default;

CrfWorkspace::State& CrfWorkspace::state() {
  if (state_ == nullptr) state_ = std::make_unique<State>();  // moved from
  return *state_;
}

std::size_t CrfWorkspace::position_kernels() const {
  return state_ != nullptr ? state_->position_kernels.size() : 0;
}

DenseCrf::DenseCrf(const cv::Mat& image, const CrfConfig& config, CrfWorkspace* workspace,
                   CrfLoops loops)
    : config_(config), loops_(loops) {
  validate(config, config::Validator("dense CRF").nested("crf"));
  if (image.empty() || image.type() != CV_8UC3) {
    throw Error(fmt::format(
        "dense CRF: the image must be 8-bit with 3 channels (CV_8UC3), got {}x{} of type {}",
        image.cols, image.rows, image.type()));
  }
  height_ = image.rows;
  width_ = image.cols;
  const std::int64_t n = static_cast<std::int64_t>(height_) * width_;
  const int threads = config.threads;
  const detail::SimdLevel simd = simd_level(loops);

  if (config.pos_weight > 0) {
    std::shared_ptr<const detail::CrfKernel> kernel =
        workspace != nullptr
            ? workspace->state().position_kernel(height_, width_, config.pos_std, threads, simd)
            : position_kernel(height_, width_, config.pos_std, threads, simd);
    kernels_.push_back(std::move(kernel));
    weights_.push_back(config.pos_weight);
    has_gaussian_ = true;
  }
  if (config.bilateral_weight > 0) {
    // Position, then the three channel values / σ_rgb in stored order.
    std::vector<float> features(static_cast<std::size_t>(n) * 5);
    for (int y = 0; y < height_; ++y) {
      const std::uint8_t* row = image.ptr<std::uint8_t>(y);
      for (int x = 0; x < width_; ++x) {
        float* f = features.data() + (static_cast<std::int64_t>(y) * width_ + x) * 5;
        f[0] = static_cast<float>(x) / config.bilateral_std;
        f[1] = static_cast<float>(y) / config.bilateral_std;
        for (int c = 0; c < 3; ++c) {
          f[2 + c] = static_cast<float>(row[3 * x + c]) / config.bilateral_rgb_std;
        }
      }
    }
    kernels_.push_back(std::make_shared<const detail::CrfKernel>(features, 5, threads, simd));
    weights_.push_back(config.bilateral_weight);
    has_bilateral_ = true;
  }
}

DenseCrfStats DenseCrf::stats() const {
  DenseCrfStats s;
  std::size_t k = 0;
  if (has_gaussian_) s.gaussian = kernels_[k++]->lattice.stats();
  if (has_bilateral_) s.bilateral = kernels_[k++]->lattice.stats();
  return s;
}

std::size_t CrfWorkspace::bytes() const {
  if (state_ == nullptr) return 0;
  std::size_t total = (state_->neg_unary.capacity() + state_->q.capacity()) * sizeof(float);
  for (const detail::AlignedFloats& b : state_->vertex_buffers) {
    total += b.capacity() * sizeof(float);
  }
  for (const auto& kernel : state_->position_kernels) total += kernel->bytes();
  return total;
}

namespace {

// Sizes `buffer` to `size` floats; newly grown memory is zeroed (rows the splat reads before
// its first write must hold finite values), existing contents are kept.
void ensure_size(detail::AlignedFloats& buffer, std::size_t size) {
  if (buffer.size() < size) {
    buffer.resize(size);
    std::fill(buffer.begin(), buffer.end(), 0.0f);
  }
}

// −U as rows [H·W, stride], label-innermost and padded (KernelTable::negated_rows), into `rows`
// (grown as needed). Throws clipes::Error naming the first value that is not finite.
void negated_unary_rows(const detail::KernelTable& loops, const PlanarView& unary, int stride,
                        detail::AlignedFloats& rows) {
  const int labels = unary.channels;
  const std::int64_t n = static_cast<std::int64_t>(unary.height) * unary.width;
  if (rows.size() < static_cast<std::size_t>(n) * stride) {
    rows.resize(static_cast<std::size_t>(n) * stride);  // every lane is set below
  }
  if (!loops.negated_rows(unary.data, labels, n, stride, rows.data())) {
    const std::int64_t t = std::find_if(unary.data, unary.data + labels * n,
                                        [](float v) { return !std::isfinite(v); }) -
                           unary.data;
    const std::int64_t i = t % n;
    throw Error(fmt::format("dense CRF: unary of label {} at pixel (row {}, column {}) is {}",
                            t / n, i / unary.width, i % unary.width, unary.data[t]));
  }
}

// The mean-field update's view of each kernel, for rows of `stride` floats, with two vertex
// buffers per kernel in `buffers` (grown as needed): the blurred messages of the previous step
// and the target of the next splat (they swap roles after every blur).
std::vector<detail::MessageKernel> message_kernels(
    const std::vector<std::shared_ptr<const detail::CrfKernel>>& kernels,
    const std::vector<float>& weights, int stride, std::vector<detail::AlignedFloats>& buffers) {
  std::vector<detail::MessageKernel> messages(kernels.size());
  if (buffers.size() < 2 * kernels.size()) buffers.resize(2 * kernels.size());
  for (std::size_t k = 0; k < kernels.size(); ++k) {
    const PermutohedralLattice& lattice = kernels[k]->lattice;
    const std::size_t rows = static_cast<std::size_t>(lattice.num_vertices()) + 1;
    // The splat reads (then masks away) what a row held before its first write to it: rows
    // must hold finite values, which ensure_size and every later write guarantee.
    ensure_size(buffers[2 * k], rows * stride);
    ensure_size(buffers[2 * k + 1], rows * stride);
    detail::LatticeView& view = messages[k].lattice;
    view = detail::point_view(lattice);
    // Neighbouring vertices far apart in the vertex order (the bilateral kernel): the rows a
    // pixel touches are scattered over the buffers, worth prefetching.
    view.scattered =
        (lattice.max_neighbour_distance() + 1) * stride * static_cast<std::int64_t>(sizeof(float)) >
        (std::int64_t{1} << 18);
    messages[k].splat_target = buffers[2 * k].data();
    messages[k].norm = kernels[k]->norm.data();
    messages[k].weight = weights[k];
  }
  return messages;
}

}  // namespace

std::vector<float> DenseCrf::infer(const PlanarView& unary, CrfWorkspace* workspace) const {
  if (unary.data == nullptr || unary.channels < 2 || unary.height != height_ ||
      unary.width != width_) {
    throw Error(fmt::format(
        "dense CRF: the unary must be [labels >= 2, {}, {}] to match the image, got [{}, {}, {}]{}",
        height_, width_, unary.channels, unary.height, unary.width,
        unary.data == nullptr ? " with no data" : ""));
  }
  const int labels = unary.channels;
  const int stride = detail::row_stride(labels);
  const std::int64_t n = static_cast<std::int64_t>(height_) * width_;
  const int threads = config_.threads;
  const detail::KernelTable& loops = detail::kernels_for(simd_level(loops_));

  CrfWorkspace local;
  CrfWorkspace::State& ws = (workspace != nullptr ? *workspace : local).state();

  // −U, label-innermost and padded.
  detail::AlignedFloats& neg_unary = ws.neg_unary;
  negated_unary_rows(loops, unary, stride, neg_unary);

  // Per kernel two vertex buffers (message_kernels).
  const std::size_t num_kernels = kernels_.size();
  std::vector<detail::AlignedFloats>& buffers = ws.vertex_buffers;
  std::vector<detail::MessageKernel> messages =
      message_kernels(kernels_, weights_, stride, buffers);
  // One thread, or a lattice without the splat table: the pixel pass scatters (see below).
  const bool fused = detail::resolve_threads(threads) == 1 ||
                     std::any_of(kernels_.begin(), kernels_.end(),
                                 [](const auto& k) { return !k->lattice.has_splat_table(); });

  // Step 0 computes Q = softmax(−U) (no messages yet); step t computes Q from the messages of
  // step t − 1. One thread: each step's pixel pass scatters n·Q straight into the splat targets
  // (point order, as densecrf's splat); several threads: the pass writes Q as rows, then each
  // kernel splats it in parallel over vertices. The last step writes Q as planes, straight into
  // the result.
  detail::AlignedFloats& q = ws.q;
  if (!fused && q.size() < static_cast<std::size_t>(n) * stride) {
    q.resize(static_cast<std::size_t>(n) * stride);  // every pixel pass writes all of it
  }
  std::vector<float> out(static_cast<std::size_t>(labels) * n);
  const int num_k = static_cast<int>(num_kernels);
  for (int step = 0; step <= config_.iterations; ++step) {
    const bool last = step == config_.iterations;
    float* dst = last ? out.data() : q.data();
    const std::int64_t plane_size = last ? n : 0;
    if (fused) {
      loops.mean_field(messages.data(), num_k, neg_unary.data(), labels, stride, !last, dst,
                       plane_size, 0, static_cast<int>(n));
    } else {
      detail::parallel_for(threads, n, kMinPointChunk, [&](std::int64_t begin, std::int64_t end) {
        loops.mean_field(messages.data(), num_k, neg_unary.data(), labels, stride, false, dst,
                         plane_size, static_cast<int>(begin), static_cast<int>(end));
      });
    }
    if (last) break;
    for (std::size_t k = 0; k < num_kernels; ++k) {
      const PermutohedralLattice& lattice = kernels_[k]->lattice;
      float* target = messages[k].splat_target;
      float* other =
          target == buffers[2 * k].data() ? buffers[2 * k + 1].data() : buffers[2 * k].data();
      if (!fused) {
        lattice.splat(q.data(), kernels_[k]->norm.data(), stride, target, threads);
      }
      float* result = lattice.blur(target, other, stride, threads);
      messages[k].blurred = result;
      messages[k].splat_target = result == target ? other : target;
    }
  }

  return out;
}

std::vector<float> dense_crf(const PlanarView& unary, const cv::Mat& image, const CrfConfig& config,
                             CrfLoops loops) {
  return DenseCrf(image, config, nullptr, loops).infer(unary);
}

}  // namespace clipes::crf

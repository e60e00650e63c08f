#pragma once
/// Fully connected CRF with Gaussian edge potentials (Krähenbühl & Koltun, NeurIPS 2011), mean-
/// field inference exactly as densecrf 2.2 / pydensecrf computes it (dense-crf.md, spec §7):
///   Q = softmax(−U); T times: A = −U + Σ_k w_k · diag(n_k) K_k diag(n_k) Q, Q = softmax(A)
/// with a Gaussian kernel on position (σ_xy = pos_std, weight pos_weight) and a bilateral kernel on
/// position and colour (σ_xy = bilateral_std, σ_rgb = bilateral_rgb_std, weight bilateral_weight),
/// Potts compatibility, symmetric normalisation n = 1/√(K·1), the filter including the pixel
/// itself. Kernels are permutohedral lattices built once per image.
///
/// Free of LibTorch: planar float32 arrays in, planar float32 out. One thread by default
/// (config.threads for more); to process many images, run one DenseCrf per worker thread, each
/// with its own CrfWorkspace. The results do not depend on the thread count; see CrfLoops for the
/// CPU.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <opencv2/core/mat.hpp>
#include <vector>

#include "clipes/crf/crf_config.h"

namespace clipes::crf {

namespace detail {
struct CrfKernel;  // one pairwise kernel's lattice and normalisation (dense_crf.cpp)
}  // namespace detail

/// Which compiled form of the CRF's loops runs (src/crf/kernels/README.md). Every form performs the
/// same float operations in the same order, except that AVX2+FMA fuses each a·b + c of the splat,
/// slice and mean-field update: the two agree to about 1e-6 in the marginals.
enum class CrfLoops {
  kBest,      ///< AVX2+FMA where the CPU has both, else the baseline
  kBaseline,  ///< the baseline on every CPU (SSE2 on x86-64)
};

/// A read-only view of planar float32 data [channels, height, width] in C order.
struct PlanarView {
  const float* data = nullptr;
  int channels = 0;
  int height = 0;
  int width = 0;
};

/// Statistics of one kernel's permutohedral lattice, for benchmarks and logs.
struct LatticeStats {
  int num_points = 0;
  int dim = 0;
  int num_vertices = 0;
  /// Number of blur-neighbour slots (of 2·(d+1)·num_vertices) that point at an existing vertex.
  std::int64_t num_neighbour_links = 0;
  /// Largest |vertex id − neighbour id| over the links (the blur's reach in the vertex order).
  std::int64_t max_neighbour_distance = 0;
  /// Vertex-axis pairs on a blur line (a vertex with a neighbour along the axis): what the blur
  /// reads and writes when it runs on lines; 0 when the lattice is dense and the blur runs whole
  /// passes over all vertices.
  std::int64_t line_vertices = 0;
  /// The compiled loop variant in use: "avx2" (AVX2+FMA) or "baseline".
  const char* simd = "baseline";
};

/// Timing-free statistics of one CRF, for benchmarks and logs.
struct DenseCrfStats {
  LatticeStats gaussian;   ///< num_vertices 0 when the kernel's weight is 0 (not built)
  LatticeStats bilateral;  ///< idem
};

/// What a worker reuses from image to image: the work buffers of DenseCrf::infer (about (pixels
/// + 2 × lattice vertices) × labels floats) and the position-only kernels of the last few image
/// sizes (that kernel depends on nothing but the size and σ_xy). Keep one per worker thread and
/// pass it to every DenseCrf and inference: after the first image nothing is allocated, zeroed or
/// page-faulted again, and an image of a size seen recently skips a quarter of the CRF set-up.
/// Not for concurrent use.
class CrfWorkspace {
 public:
  CrfWorkspace();
  ~CrfWorkspace();
  CrfWorkspace(CrfWorkspace&&) noexcept;
  CrfWorkspace& operator=(CrfWorkspace&&) noexcept;

  /// Bytes currently held (buffers and cached kernels).
  std::size_t bytes() const;

  /// Position-only kernels kept (the most recently used).
  static constexpr std::size_t kCachedPositionKernels = 4;
  /// Position-only kernels held now.
  std::size_t position_kernels() const;

 private:
  friend class DenseCrf;
  struct State;  // the buffers and the kernel cache (dense_crf.cpp)
  State& state();
  std::unique_ptr<State> state_;
};

/// The two lattices of one image, built once, then used for any number of inferences (e.g. the
/// same image with different unaries). Build it in the thread that uses it: run one DenseCrf per
/// worker thread to process images in parallel.
class DenseCrf {
 public:
  /// image: CV_8UC3, H×W, the three channels exactly as the bilateral kernel should see them
  ///   (see crf_input_image() in pseudo_mask.h for config.image); config.image is not used here.
  /// Throws clipes::Error for an empty or non-8-bit-3-channel image or an invalid config.
  /// workspace: where to find (and keep) the position-only kernel of this image size (null:
  ///   build it).
  /// loops: which compiled form of the loops runs (CrfLoops).
  DenseCrf(const cv::Mat& image, const CrfConfig& config, CrfWorkspace* workspace = nullptr,
           CrfLoops loops = CrfLoops::kBest);

  int height() const { return height_; }
  int width() const { return width_; }
  DenseCrfStats stats() const;

  /// unary: [L, H, W] float32, −log P per label (L >= 2, H and W those of the image).
  /// Returns the marginals Q after config.iterations mean-field steps: [L, H, W] float32.
  /// workspace: reusable buffers (null: allocated for this call).
  std::vector<float> infer(const PlanarView& unary, CrfWorkspace* workspace = nullptr) const;

 private:
  CrfConfig config_;
  CrfLoops loops_ = CrfLoops::kBest;
  int height_ = 0;
  int width_ = 0;
  // Gaussian first, then bilateral (densecrf's order); shared with workspaces' caches.
  std::vector<std::shared_ptr<const detail::CrfKernel>> kernels_;
  std::vector<float> weights_;  // per kernel
  bool has_gaussian_ = false;
  bool has_bilateral_ = false;
};

/// One-shot form: builds the lattices for `image` and runs inference. Shapes as in DenseCrf.
std::vector<float> dense_crf(const PlanarView& unary, const cv::Mat& image, const CrfConfig& config,
                             CrfLoops loops = CrfLoops::kBest);

}  // namespace clipes::crf

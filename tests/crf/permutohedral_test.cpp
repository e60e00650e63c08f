#include "crf/permutohedral.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "clipes/core/error.h"
#include "crf/crf_oracle.h"
#include "support/test_support.h"

namespace clipes::crf {
namespace {

// "baseline": the baseline loops; anything else ("dispatched"): the best this CPU runs.
detail::SimdLevel level_of(const char* simd) {
  return std::string(simd) == "baseline" ? detail::SimdLevel::kBaseline : detail::best_simd_level();
}

using clipes::testing::error_of;
using testing::bilateral_features;
using testing::exact_gaussian_filter;
using testing::position_features;
using testing::synthetic_image;

std::uint32_t bits_of(float v) {
  std::uint32_t b = 0;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

std::vector<float> random_values(std::size_t count, unsigned seed, float lo = 0.0f,
                                 float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(count);
  for (float& x : v) x = u(rng);
  return v;
}

// ---- Known answers ----------------------------------------------------------------------------

TEST(Permutohedral, SinglePointInOneDimensionHasKnownSelfWeight) {
  // d = 1, p = 0: the point sits on vertex 0 (weight 1) with neighbour vertex 1 (weight 0).
  // Blur axis 0: v0 = 1, v1 = ½; axis 1: v0 = 1 + ¼ = 1.25, v1 = ½ + ½ = 1. Slice: α · 1.25 with
  // α = 1 / (1 + 2^−1).
  const float feature = 0.0f;
  const PermutohedralLattice lattice(&feature, 1, 1);
  EXPECT_EQ(lattice.num_vertices(), 2);
  const std::vector<float> out = lattice.filter({2.0f}, 1);
  EXPECT_FLOAT_EQ(out[0], 2.0f * 1.25f * (1.0f / 1.5f));
}

TEST(Permutohedral, FarApartPointsDoNotInteract) {
  // Two clusters 1000 standard deviations apart: each one's output ignores the other's values.
  std::vector<float> features;
  for (int i = 0; i < 20; ++i) {
    const float base = i < 10 ? 0.0f : 1000.0f;
    features.push_back(base + 0.3f * static_cast<float>(i % 10));
    features.push_back(base - 0.2f * static_cast<float>(i % 10));
  }
  const PermutohedralLattice lattice(features.data(), 20, 2);
  std::vector<float> values = random_values(20, 3);
  const std::vector<float> before = lattice.filter(values, 1);
  for (int i = 10; i < 20; ++i) values[i] *= 7.0f;
  const std::vector<float> after = lattice.filter(values, 1);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(before[i], after[i]) << i;
  for (int i = 10; i < 20; ++i) EXPECT_FLOAT_EQ(after[i], 7.0f * before[i]) << i;
}

// ---- Against the exact O(N²) Gaussian sums ----------------------------------------------------

struct Accuracy {
  double normalised_max_diff = 0.0;  // max |(Kv)_i/(K1)_i − exact ratio| over v in [0, 1]
  double mass_ratio_min = 1e9;       // min and max of (K·1)_i / exact (K·1)_i
  double mass_ratio_max = 0.0;
};

Accuracy measure(const std::vector<float>& features, int dim) {
  const int n = static_cast<int>(features.size()) / dim;
  std::vector<float> values = random_values(static_cast<std::size_t>(n) * 3, 11);
  for (int i = 0; i < n; ++i) values[i * 3 + 2] = 1.0f;
  const PermutohedralLattice lattice(features.data(), n, dim);
  const std::vector<float> out = lattice.filter(values, 3);
  const std::vector<double> exact = exact_gaussian_filter(features, dim, values, 3);
  Accuracy a;
  for (int i = 0; i < n; ++i) {
    const double ratio = out[i * 3 + 2] / exact[i * 3 + 2];
    a.mass_ratio_min = std::min(a.mass_ratio_min, ratio);
    a.mass_ratio_max = std::max(a.mass_ratio_max, ratio);
    for (int c = 0; c < 2; ++c) {
      const double lattice_mean = out[i * 3 + c] / out[i * 3 + 2];
      const double exact_mean = exact[i * 3 + c] / exact[i * 3 + 2];
      a.normalised_max_diff = std::max(a.normalised_max_diff, std::fabs(lattice_mean - exact_mean));
    }
  }
  return a;
}

// The lattice approximates the Gaussian with a blurred tent of about the same width but not
// the same mass: on pixel grids its K·1 is 0.76-0.93 of the exact sum for d = 2 and 0.37-0.66
// for d = 5 (it varies with the point's position in its simplex). Normalised outputs (Kv / K1,
// the weighted means the CRF's normalisation effectively uses) match the exact ones closely
// where points are dense relative to the kernel: within 0.054 for the σ = 1 pixel grid (the
// lattice is as coarse as the grid there), 0.018 at σ = 2, 0.010 at σ = 4, and within 0.025 for
// the bilateral features. The bounds tested are these observations with a small margin; a wrong
// weight, scale or neighbour breaks them by far.
TEST(Permutohedral, PositionKernelMatchesExactGaussianWithinLatticeBound) {
  const struct {
    float sxy;
    double bound;
  } cases[] = {{1.0f, 0.06}, {2.0f, 0.025}, {4.0f, 0.015}};
  for (const auto& c : cases) {
    const Accuracy a = measure(position_features(24, 32, c.sxy), 2);
    std::printf("[ bound  ] position sxy=%.0f: normalised max diff %.4f, mass ratio [%.3f, %.3f]\n",
                c.sxy, a.normalised_max_diff, a.mass_ratio_min, a.mass_ratio_max);
    EXPECT_LE(a.normalised_max_diff, c.bound) << c.sxy;
    EXPECT_GE(a.mass_ratio_min, 0.72) << c.sxy;
    EXPECT_LE(a.mass_ratio_max, 0.97) << c.sxy;
  }
}

TEST(Permutohedral, BilateralKernelMatchesExactGaussianWithinLatticeBound) {
  const cv::Mat image = synthetic_image(24, 32, 5);
  for (const float sxy : {8.0f, 67.0f}) {
    for (const float srgb : {13.0f, 30.0f}) {
      const Accuracy a = measure(bilateral_features(image, sxy, srgb), 5);
      std::printf(
          "[ bound  ] bilateral sxy=%.0f srgb=%.0f: normalised max diff %.4f, mass ratio [%.3f, "
          "%.3f]\n",
          sxy, srgb, a.normalised_max_diff, a.mass_ratio_min, a.mass_ratio_max);
      EXPECT_LE(a.normalised_max_diff, 0.03) << sxy << " " << srgb;
      EXPECT_GE(a.mass_ratio_min, 0.35) << sxy << " " << srgb;
      EXPECT_LE(a.mass_ratio_max, 0.70) << sxy << " " << srgb;
    }
  }
}

// ---- Invariants -------------------------------------------------------------------------------

TEST(Permutohedral, FilterIsNearlySymmetric) {
  // Splat and slice use the same weights and each axis' blur is symmetric, but the d+1 blurs
  // commute only away from the lattice's boundary (densecrf blurs in reverse axis order for the
  // exact transpose): u·(Kv) and v·(Ku) agree to a fraction of a per cent (observed <= 0.17 %).
  for (const int dim : {1, 2, 3, 5, 8}) {
    const int n = 300;
    const std::vector<float> features =
        random_values(static_cast<std::size_t>(n) * dim, dim, -3, 3);
    const PermutohedralLattice lattice(features.data(), n, dim);
    const std::vector<float> u = random_values(n, 100 + dim);
    const std::vector<float> v = random_values(n, 200 + dim);
    const std::vector<float> ku = lattice.filter(u, 1);
    const std::vector<float> kv = lattice.filter(v, 1);
    double u_kv = 0.0;
    double v_ku = 0.0;
    for (int i = 0; i < n; ++i) {
      u_kv += static_cast<double>(u[i]) * kv[i];
      v_ku += static_cast<double>(v[i]) * ku[i];
    }
    EXPECT_NEAR(u_kv, v_ku, 3e-3 * std::fabs(u_kv)) << "d=" << dim;
    if (dim == 1) {
      EXPECT_NEAR(u_kv, v_ku, 1e-5 * std::fabs(u_kv));  // one axis pair: commutes
    }
  }
}

TEST(Permutohedral, ChannelsAreFilteredIndependently) {
  // Every row-stride code path (1, 2, 4, 8, 16, 24, 32 and the generic one) gives, lane by lane,
  // the same bits as filtering each channel alone.
  const cv::Mat image = synthetic_image(20, 30, 7);
  const std::vector<float> features = bilateral_features(image, 5.0f, 10.0f);
  const int n = 600;
  const PermutohedralLattice lattice(features.data(), n, 5);
  for (const int channels : {2, 3, 4, 5, 8, 13, 16, 24, 32, 40}) {
    const std::vector<float> values =
        random_values(static_cast<std::size_t>(n) * channels, channels);
    const std::vector<float> together = lattice.filter(values, channels);
    for (int c = 0; c < channels; ++c) {
      std::vector<float> one(n);
      for (int i = 0; i < n; ++i) one[i] = values[static_cast<std::size_t>(i) * channels + c];
      const std::vector<float> alone = lattice.filter(one, 1);
      for (int i = 0; i < n; ++i) {
        ASSERT_EQ(together[static_cast<std::size_t>(i) * channels + c], alone[i])
            << channels << " channels, channel " << c << ", point " << i;
      }
    }
  }
}

TEST(Permutohedral, FilterIsLinear) {
  const std::vector<float> features = position_features(16, 16, 1.5f);
  const PermutohedralLattice lattice(features.data(), 256, 2);
  const std::vector<float> u = random_values(256, 1);
  const std::vector<float> v = random_values(256, 2);
  std::vector<float> w(256);
  for (int i = 0; i < 256; ++i) w[i] = 2.0f * u[i] - 3.0f * v[i];
  const std::vector<float> ku = lattice.filter(u, 1);
  const std::vector<float> kv = lattice.filter(v, 1);
  const std::vector<float> kw = lattice.filter(w, 1);
  for (int i = 0; i < 256; ++i) EXPECT_NEAR(kw[i], 2.0f * ku[i] - 3.0f * kv[i], 2e-5f) << i;
}

TEST(Permutohedral, ThreadsGiveIdenticalResultsAndInstructionSetsAgree) {
  // 200×150 position grid: in one thread the blur runs as a cache-window wavefront, in several
  // threads as whole passes and the splat gathers per vertex. The arithmetic is the same: the
  // same bits. The baseline loops round a·b + c twice where the AVX2+FMA loops round it once:
  // results agree to a few units in the last place.
  const std::vector<float> features = position_features(150, 200, 1.0f);
  const int n = 30000;
  const std::vector<float> values = random_values(static_cast<std::size_t>(n) * 8, 5);
  const PermutohedralLattice one(features.data(), n, 2, 1);
  const PermutohedralLattice three(features.data(), n, 2, 3);
  EXPECT_FALSE(one.has_splat_table());
  EXPECT_TRUE(three.has_splat_table());
  EXPECT_EQ(one.num_vertices(), three.num_vertices());
  LatticeWorkspace workspace;
  std::vector<float> a(values.size());
  std::vector<float> b(values.size());
  one.filter(values.data(), a.data(), 8, workspace, 1);
  three.filter(values.data(), b.data(), 8, workspace, 3);
  EXPECT_EQ(a, b);
  const PermutohedralLattice baseline(features.data(), n, 2, 1, detail::SimdLevel::kBaseline);
  EXPECT_EQ(baseline.simd_level(), detail::SimdLevel::kBaseline);
  std::vector<float> c(values.size());
  baseline.filter(values.data(), c.data(), 8, workspace, 1);
  for (std::size_t i = 0; i < a.size(); ++i) {
    ASSERT_NEAR(c[i], a[i], 1e-5f * std::max(1.0f, std::abs(a[i]))) << i;
  }
  std::printf("[ simd   ] dispatched loops: %s\n", one.stats().simd);
}

// Whole Jacobi passes as dense-crf.md Step 4 states them, from the lattice's neighbour table:
// out[v] = in[v] + ½ (in[n1] + in[n2]) along axes 0..d, a missing neighbour reading the zero row.
std::vector<float> blur_by_passes(const PermutohedralLattice& lattice, std::vector<float> values,
                                  int stride) {
  const int m = lattice.num_vertices();
  std::vector<float> out(values.size());
  for (int axis = 0; axis <= lattice.dim(); ++axis) {
    std::fill_n(values.begin() + static_cast<std::ptrdiff_t>(m) * stride, stride, 0.0f);
    for (int v = 0; v < m; ++v) {
      const detail::BlurNeighbours nb =
          lattice.blur_neighbours()[static_cast<std::size_t>(axis) * m + v];
      for (int c = 0; c < stride; ++c) {
        out[static_cast<std::size_t>(v) * stride + c] =
            values[static_cast<std::size_t>(v) * stride + c] +
            0.5f * (values[static_cast<std::size_t>(nb.n1) * stride + c] +
                    values[static_cast<std::size_t>(nb.n2) * stride + c]);
      }
    }
    std::copy_n(out.begin(), static_cast<std::ptrdiff_t>(m) * stride, values.begin());
  }
  values.resize(static_cast<std::size_t>(m) * stride);
  return values;
}

TEST(Permutohedral, BlurOnLinesEqualsWholePassesBitForBit) {
  // A bilateral lattice of a textured image is sparse along its axes: the blur visits only the
  // vertices on lines, in place, and must round exactly as whole passes do, for the vectorised
  // strides (1, 8, 24), a generic one (40), in one thread and in three, in both loop variants.
  const cv::Mat image = synthetic_image(48, 64, 11);
  const std::vector<float> features = bilateral_features(image, 20.0f, 6.0f);
  const int n = image.rows * image.cols;
  for (const char* simd : {"dispatched", "baseline"}) {
    const PermutohedralLattice lattice(features.data(), n, 5, 1, level_of(simd));
    const LatticeStats stats = lattice.stats();
    const std::int64_t pairs = static_cast<std::int64_t>(6) * stats.num_vertices;
    std::printf("[ lines  ] %s: %lld of %lld vertex-axis pairs on lines\n", simd,
                static_cast<long long>(stats.line_vertices), static_cast<long long>(pairs));
    ASSERT_GT(stats.line_vertices, 0);
    ASSERT_LT(stats.line_vertices, pairs);
    for (const int stride : {1, 8, 24, 40}) {
      const std::size_t size = static_cast<std::size_t>(stats.num_vertices + 1) * stride;
      const std::vector<float> values = random_values(size, static_cast<unsigned>(stride), -1, 1);
      const std::vector<float> expected = blur_by_passes(lattice, values, stride);
      for (const int threads : {1, 3}) {
        std::vector<float> a = values;
        std::vector<float> b(size, std::numeric_limits<float>::quiet_NaN());
        const float* result = lattice.blur(a.data(), b.data(), stride, threads);
        const std::vector<float> got(result, result + expected.size());
        EXPECT_EQ(got, expected) << simd << " stride " << stride << " threads " << threads;
      }
    }
  }
}

TEST(Permutohedral, EmbeddingOfAPointDoesNotDependOnItsPlaceInABlock) {
  // Phase A runs 8 points at a time in vector lanes and the remaining ones one by one: a point's
  // simplex (its corners' keys) and barycentric weights must be the same bits either way, in
  // both loop variants, whichever lane it takes. Features of small integers and halves make ties
  // between residuals (ranked by coordinate order: a tie changes a corner of weight 0) and points
  // on simplex faces.
  const int n = 203;  // 25 blocks and 3 points
  for (int dim = 1; dim <= PermutohedralLattice::kMaxDim; ++dim) {
    std::mt19937 rng(static_cast<unsigned>(dim));
    std::uniform_int_distribution<int> u(-12, 12);
    std::vector<float> features(static_cast<std::size_t>(n) * dim);
    for (float& f : features) f = 0.5f * static_cast<float>(u(rng));
    for (const char* simd : {"dispatched", "baseline"}) {
      const PermutohedralLattice all(features.data(), n, dim, 1, level_of(simd));
      for (int i = 0; i < n; ++i) {
        // Point i nine times: a block of 8, then once alone. The lone copy must find the block's
        // corners (same keys: no new vertex) with the same weights.
        std::vector<float> copies;
        for (int c = 0; c < 9; ++c) {
          copies.insert(copies.end(), features.begin() + static_cast<std::ptrdiff_t>(i) * dim,
                        features.begin() + static_cast<std::ptrdiff_t>(i + 1) * dim);
        }
        const PermutohedralLattice nine(copies.data(), 9, dim, 1, level_of(simd));
        ASSERT_EQ(nine.num_vertices(), dim + 1) << simd << " d=" << dim << " point " << i;
        const float* lone = nine.barycentric() + static_cast<std::ptrdiff_t>(8) * (dim + 1);
        const float* in_all = all.barycentric() + static_cast<std::ptrdiff_t>(i) * (dim + 1);
        for (int m = 0; m <= dim; ++m) {
          ASSERT_EQ(nine.point_vertices()[8 * (dim + 1) + m], nine.point_vertices()[m]);
          ASSERT_EQ(bits_of(nine.barycentric()[m]), bits_of(lone[m]))
              << simd << " d=" << dim << " point " << i << " corner " << m;
          ASSERT_EQ(bits_of(in_all[m]), bits_of(lone[m]))
              << simd << " d=" << dim << " point " << i << " corner " << m;
        }
      }
    }
  }
  // The first point out of range is named, wherever it lies.
  std::vector<float> features(40, 0.25f);
  features[2 * 12 + 1] = std::numeric_limits<float>::infinity();
  features[2 * 17] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(error_of([&] { PermutohedralLattice(features.data(), 20, 2); }).find("point 12 lies"),
            std::string::npos);
  features[2 * 12 + 1] = 0.25f;
  EXPECT_NE(error_of([&] { PermutohedralLattice(features.data(), 20, 2); }).find("point 17 lies"),
            std::string::npos);
}

TEST(Permutohedral, PositionLatticeBlursWholePasses) {
  // Every vertex of a position grid's lattice has neighbours along every axis: no lines.
  const std::vector<float> features = position_features(30, 40, 1.0f);
  const PermutohedralLattice lattice(features.data(), 1200, 2);
  EXPECT_EQ(lattice.stats().line_vertices, 0);
}

TEST(Permutohedral, StatsDescribeTheLattice) {
  const std::vector<float> features = position_features(10, 12, 1.0f);
  const PermutohedralLattice lattice(features.data(), 120, 2);
  const LatticeStats stats = lattice.stats();
  EXPECT_EQ(stats.num_points, 120);
  EXPECT_EQ(stats.dim, 2);
  EXPECT_GT(stats.num_vertices, 0);
  EXPECT_LE(stats.num_vertices, 120 * 3);
  EXPECT_EQ(stats.num_neighbour_links % 2, 0);  // every n1 link has its n2 twin
  EXPECT_GT(stats.num_neighbour_links, 0);
  EXPECT_GT(stats.max_neighbour_distance, 0);
  // Vertex ids are dense and in order of first appearance.
  const std::int32_t* first_new = lattice.first_new_vertex();
  EXPECT_EQ(first_new[0], 0);
  for (int i = 1; i < 120; ++i) EXPECT_LE(first_new[i - 1], first_new[i]);
}

// ---- Errors -----------------------------------------------------------------------------------

TEST(Permutohedral, RejectsBadInputs) {
  const std::vector<float> features(18, 0.5f);
  EXPECT_EQ(error_of([&] { PermutohedralLattice(features.data(), 2, 9); }),
            "permutohedral lattice: feature dimension must be in [1, 8], got 9");
  EXPECT_EQ(error_of([&] { PermutohedralLattice(features.data(), 2, 0); }),
            "permutohedral lattice: feature dimension must be in [1, 8], got 0");
  EXPECT_EQ(error_of([&] { PermutohedralLattice(features.data(), 0, 2); }),
            "permutohedral lattice: needs at least one point, got 0");
  std::vector<float> bad = features;
  bad[7] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(error_of([&] {
              PermutohedralLattice(bad.data(), 9, 2);
            }).find("point 3 lies outside the lattice's ±30000 coordinate range"),
            std::string::npos);
  bad = features;
  bad[4] = 1e6f;
  EXPECT_NE(error_of([&] { PermutohedralLattice(bad.data(), 9, 2); }).find("point 2"),
            std::string::npos);
  const PermutohedralLattice lattice(features.data(), 9, 2);
  EXPECT_EQ(error_of([&] { lattice.filter(std::vector<float>(10, 1.0f), 1); }),
            "permutohedral filter: expected 9 points × 1 channels = 9 values, got 10");
}

}  // namespace
}  // namespace clipes::crf

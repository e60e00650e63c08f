#include "clipes/crf/dense_crf.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "clipes/core/error.h"
#include "clipes/crf/pseudo_mask.h"
#include "clipes/io/npy.h"
#include "crf/crf_oracle.h"
#include "crf/permutohedral.h"  // the plain reference runs on the lattice alone
#include "support/test_support.h"

namespace clipes::crf {
namespace {

using testing::exact_dense_crf;
using testing::synthetic_image;
using testing::synthetic_unary;

PlanarView view_of(const std::vector<float>& data, int labels, int height, int width) {
  return PlanarView{data.data(), labels, height, width};
}

int argmax_at(const std::vector<float>& q, int labels, std::size_t n, std::size_t i) {
  int best = 0;
  for (int l = 1; l < labels; ++l) {
    if (q[l * n + i] > q[best * n + i]) best = l;
  }
  return best;
}

// ---- Parity with the reference's own CRF (densecrf 2.2 through pydensecrf) ------------------

void check_reference_parity(const std::string& id) {
  const auto dir = clipes::testing::shared_path("reference/small12-voc-mini/" + id);
  const io::NpyArray image_npy = io::read_npy(dir / "crf_image.npy");
  const io::NpyArray prob_npy = io::read_npy(dir / "crf_prob.npy");
  const io::NpyArray q_npy = io::read_npy(dir / "crf_Q.npy");
  ASSERT_EQ(image_npy.shape.size(), 3u);
  const int height = static_cast<int>(image_npy.shape[0]);
  const int width = static_cast<int>(image_npy.shape[1]);
  const int labels = static_cast<int>(prob_npy.shape[0]);
  cv::Mat image(height, width, CV_8UC3);
  std::memcpy(image.data, image_npy.data<std::uint8_t>(), image_npy.bytes.size());
  const std::vector<float> prob = prob_npy.to_float32();
  const std::vector<float> expected = q_npy.to_float32();

  // The reference computed the unary in float16 from these (float16-valued) probabilities.
  const std::vector<float> unary =
      crf_unary(view_of(prob, labels, height, width), CrfImageMode::kReference);
  const std::vector<float> q = dense_crf(view_of(unary, labels, height, width), image, CrfConfig{});
  ASSERT_EQ(q.size(), expected.size());

  const std::size_t n = static_cast<std::size_t>(height) * width;
  double max_diff = 0.0;
  std::size_t same = 0;
  for (std::size_t t = 0; t < q.size(); ++t) {
    max_diff = std::max(max_diff, static_cast<double>(std::fabs(q[t] - expected[t])));
  }
  for (std::size_t i = 0; i < n; ++i) {
    same += argmax_at(q, labels, n, i) == argmax_at(expected, labels, n, i);
  }
  const double agreement = static_cast<double>(same) / static_cast<double>(n);
  std::printf("[ parity ] %s: %d labels, max |Q - Q_ref| = %.3g, argmax agreement %.5f%%\n",
              id.c_str(), labels, max_diff, 100.0 * agreement);
  EXPECT_LE(max_diff, 1e-3) << id;
  EXPECT_GE(agreement, 0.999) << id;
}

TEST(DenseCrf, MatchesReferenceMarginalsOn2007_000032) {
  CLIPES_REQUIRE_FILE(
      clipes::testing::shared_path("reference/small12-voc-mini/2007_000032/crf_Q.npy"));
  check_reference_parity("2007_000032");
}

TEST(DenseCrf, MatchesReferenceMarginalsOn2009_000177) {
  CLIPES_REQUIRE_FILE(
      clipes::testing::shared_path("reference/small12-voc-mini/2009_000177/crf_Q.npy"));
  check_reference_parity("2009_000177");
}

// ---- Against the exact O(N²) dense CRF --------------------------------------------------------

// The lattice only approximates the Gaussian kernels (see the Permutohedral bounds), so the
// marginals differ from the exact CRF's; the labels must agree on >= 99 % of pixels. At 48×64
// the pixels next to label boundaries, where a one-pixel shift of the boundary is within the
// approximation, are a few per cent of the image (agreement observed: 99.2-99.7 %); at 24×32 they
// are twice as many and agreement drops to ~98.5 %, so this test uses 48×64.
class DenseCrfVersusExact : public ::testing::TestWithParam<int> {};

TEST_P(DenseCrfVersusExact, LabelsAgreeWithExactMeanField) {
  const int labels = GetParam();
  const int height = 48;
  const int width = 64;
  const std::size_t n = static_cast<std::size_t>(height) * width;
  const cv::Mat image = synthetic_image(height, width, 5 + labels);
  const std::vector<float> unary = synthetic_unary(labels, height, width, 17 + labels, 5.0f, 0.0f);
  CrfConfig config;
  config.bilateral_std = 12.0f;  // the image is small: keep the bilateral kernel's reach similar
  config.bilateral_rgb_std = 13.0f;
  const std::vector<float> q = dense_crf(view_of(unary, labels, height, width), image, config);
  const std::vector<double> exact =
      exact_dense_crf(unary, labels, image, config.iterations, config.pos_std, config.pos_weight,
                      config.bilateral_std, config.bilateral_rgb_std, config.bilateral_weight);
  std::size_t same = 0;
  for (std::size_t i = 0; i < n; ++i) {
    int best = 0;
    for (int l = 1; l < labels; ++l) {
      if (exact[l * n + i] > exact[best * n + i]) best = l;
    }
    same += argmax_at(q, labels, n, i) == best;
  }
  const double agreement = static_cast<double>(same) / static_cast<double>(n);
  std::printf("[ exact  ] %d labels: argmax agreement with the exact CRF %.2f%%\n", labels,
              100.0 * agreement);
  EXPECT_GE(agreement, 0.99);
}

INSTANTIATE_TEST_SUITE_P(LabelCounts, DenseCrfVersusExact, ::testing::Values(3, 5));

// The mean field written plainly on top of PermutohedralLattice::filter, one label at a time,
// with double-precision softmax: the fused, vectorised loops of DenseCrf must give the same
// marginals for every label count (row strides 2, 4, 8, 16, 24, 32 and the generic one).
std::vector<double> plain_mean_field(const std::vector<float>& unary, int labels,
                                     const cv::Mat& image, const CrfConfig& config) {
  const int n = image.rows * image.cols;
  struct Kernel {
    PermutohedralLattice lattice;
    std::vector<float> norm;
    float weight;
  };
  std::vector<Kernel> kernels;
  const auto add = [&](const std::vector<float>& features, int dim, float weight) {
    Kernel k{PermutohedralLattice(features.data(), n, dim), {}, weight};
    const std::vector<float> k1 = k.lattice.filter(std::vector<float>(n, 1.0f), 1);
    for (float v : k1) k.norm.push_back(static_cast<float>(1.0 / std::sqrt(v + 1e-20)));
    kernels.push_back(std::move(k));
  };
  add(testing::position_features(image.rows, image.cols, config.pos_std), 2, config.pos_weight);
  add(testing::bilateral_features(image, config.bilateral_std, config.bilateral_rgb_std), 5,
      config.bilateral_weight);
  std::vector<double> q(static_cast<std::size_t>(labels) * n);
  std::vector<double> a(q.size());
  const auto softmax = [&] {
    for (int i = 0; i < n; ++i) {
      double mx = a[i];
      for (int l = 1; l < labels; ++l) mx = std::max(mx, a[l * n + i]);
      double sum = 0.0;
      for (int l = 0; l < labels; ++l) sum += std::exp(a[l * n + i] - mx);
      for (int l = 0; l < labels; ++l) q[l * n + i] = std::exp(a[l * n + i] - mx) / sum;
    }
  };
  for (std::size_t t = 0; t < a.size(); ++t) a[t] = -unary[t];
  softmax();
  for (int it = 0; it < config.iterations; ++it) {
    for (std::size_t t = 0; t < a.size(); ++t) a[t] = -unary[t];
    for (const Kernel& k : kernels) {
      for (int l = 0; l < labels; ++l) {
        std::vector<float> scaled(n);
        for (int i = 0; i < n; ++i) scaled[i] = static_cast<float>(q[l * n + i]) * k.norm[i];
        const std::vector<float> filtered = k.lattice.filter(scaled, 1);
        for (int i = 0; i < n; ++i) a[l * n + i] += k.weight * (filtered[i] * k.norm[i]);
      }
    }
    softmax();
  }
  return q;
}

TEST(DenseCrf, FusedLoopsMatchPlainMeanFieldForEveryLabelCount) {
  // 29×41 points: the last block of 8 (the marginals are stored as planes a block at a time) is
  // a partial one.
  const int height = 29;
  const int width = 41;
  const std::size_t n = static_cast<std::size_t>(height) * width;
  const cv::Mat image = synthetic_image(height, width, 31);
  for (const int labels : {2, 3, 4, 5, 8, 9, 16, 17, 21, 24, 25, 32, 33, 41}) {
    const std::vector<float> unary = synthetic_unary(labels, height, width, 60 + labels);
    const std::vector<float> q =
        dense_crf(view_of(unary, labels, height, width), image, CrfConfig{});
    const std::vector<double> plain = plain_mean_field(unary, labels, image, CrfConfig{});
    double max_diff = 0.0;
    for (std::size_t t = 0; t < q.size(); ++t)
      max_diff = std::max(max_diff, std::fabs(q[t] - plain[t]));
    EXPECT_LE(max_diff, 2e-5) << labels << " labels";
    std::size_t same = 0;
    for (std::size_t i = 0; i < n; ++i) {
      int best = 0;
      for (int l = 1; l < labels; ++l) {
        if (plain[l * n + i] > plain[best * n + i]) best = l;
      }
      same += argmax_at(q, labels, n, i) == best;
    }
    EXPECT_GE(same, n - 2) << labels << " labels";  // ties aside, the same labels
  }
}

// ---- Invariants -------------------------------------------------------------------------------

TEST(DenseCrf, UniformUnaryIsFixedPoint) {
  const cv::Mat image = synthetic_image(30, 40, 3);
  for (const int labels : {2, 3, 7}) {
    const std::vector<float> unary(static_cast<std::size_t>(labels) * 30 * 40, 1.7f);
    const std::vector<float> q = dense_crf(view_of(unary, labels, 30, 40), image, CrfConfig{});
    for (float v : q) ASSERT_NEAR(v, 1.0f / labels, 1e-6f) << labels << " labels";
  }
}

TEST(DenseCrf, StrongUnaryIsLeftUnchanged) {
  const int labels = 4;
  const int height = 30;
  const int width = 40;
  const std::size_t n = static_cast<std::size_t>(height) * width;
  const cv::Mat image = synthetic_image(height, width, 9);
  // Each pixel is certain of a label (P = 1 for it, clipped 1e-5 for the others), in stripes.
  std::vector<float> unary(labels * n, -std::log(1e-5f));
  std::vector<int> chosen(n);
  for (std::size_t i = 0; i < n; ++i) {
    chosen[i] = static_cast<int>((i % width) / 10);
    unary[chosen[i] * n + i] = 0.0f;
  }
  const std::vector<float> q = dense_crf(view_of(unary, labels, height, width), image, CrfConfig{});
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(argmax_at(q, labels, n, i), chosen[i]) << "pixel " << i;
    ASSERT_GT(q[chosen[i] * n + i], 0.9f) << "pixel " << i;
  }
}

TEST(DenseCrf, ZeroWeightsGiveSoftmaxOfMinusUnary) {
  // Label counts whose rows are 4, 8, 16 and 24 floats, pixel counts that are not multiples of
  // the 8-pixel blocks in which the unary and the marginals change layout. A unary of +300 on
  // every label (−U far below 0, where a padded lane would win the max unless it holds the
  // lowest float) changes nothing.
  const struct {
    int labels, height, width;
  } cases[] = {{3, 6, 11}, {5, 20, 25}, {11, 7, 9}, {21, 5, 13}};
  for (const auto& c : cases) {
    for (const float offset : {0.0f, 300.0f}) {
      const std::size_t n = static_cast<std::size_t>(c.height) * c.width;
      std::vector<float> unary = synthetic_unary(c.labels, c.height, c.width, 4);
      for (float& u : unary) u += offset;
      CrfConfig config;
      config.pos_weight = 0.0f;
      config.bilateral_weight = 0.0f;
      const std::vector<float> q = dense_crf(view_of(unary, c.labels, c.height, c.width),
                                             synthetic_image(c.height, c.width, 1), config);
      ASSERT_EQ(q.size(), n * c.labels);
      for (std::size_t i = 0; i < n; ++i) {
        double least = unary[i];
        for (int l = 1; l < c.labels; ++l) least = std::min<double>(least, unary[l * n + i]);
        const auto e = [&](int l) { return std::exp(least - unary[l * n + i]); };
        double sum = 0.0;
        for (int l = 0; l < c.labels; ++l) sum += e(l);
        for (int l = 0; l < c.labels; ++l) {
          ASSERT_NEAR(q[l * n + i], e(l) / sum, 2e-7)
              << c.labels << " labels, offset " << offset << ", pixel " << i << " label " << l;
        }
      }
    }
  }
}

TEST(DenseCrf, ZeroIterationsGiveSoftmaxOfMinusUnary) {
  const std::vector<float> unary = synthetic_unary(3, 10, 12, 8);
  CrfConfig config;
  config.iterations = 0;
  config.pos_weight = 0.0f;
  const std::vector<float> q0 =
      dense_crf(view_of(unary, 3, 10, 12), synthetic_image(10, 12, 2), config);
  config.bilateral_weight = 0.0f;
  config.iterations = 10;
  EXPECT_EQ(q0, dense_crf(view_of(unary, 3, 10, 12), synthetic_image(10, 12, 2), config));
}

TEST(DenseCrf, PermutingLabelsPermutesMarginals) {
  const int height = 40;
  const int width = 50;
  const std::size_t n = static_cast<std::size_t>(height) * width;
  const cv::Mat image = synthetic_image(height, width, 12);
  for (const int labels : {2, 3, 6, 21}) {
    const std::vector<float> unary = synthetic_unary(labels, height, width, 30 + labels);
    std::vector<float> reversed(unary.size());
    for (int l = 0; l < labels; ++l) {
      std::copy_n(unary.begin() + static_cast<std::ptrdiff_t>(l * n), n,
                  reversed.begin() + static_cast<std::ptrdiff_t>((labels - 1 - l) * n));
    }
    const std::vector<float> q =
        dense_crf(view_of(unary, labels, height, width), image, CrfConfig{});
    const std::vector<float> qr =
        dense_crf(view_of(reversed, labels, height, width), image, CrfConfig{});
    for (int l = 0; l < labels; ++l) {
      for (std::size_t i = 0; i < n; ++i) {
        ASSERT_NEAR(q[l * n + i], qr[(labels - 1 - l) * n + i], 2e-6) << labels << " labels";
      }
    }
  }
}

TEST(DenseCrf, ThreadsGiveIdenticalMarginals) {
  // One thread scatters Q into the lattice inside the pixel pass; several threads splat it in
  // parallel over vertices. Both add every vertex's points in point order: identical bits.
  // 119×161 points: the threads' ranges do not start on blocks of 8 points.
  const int height = 119;
  const int width = 161;
  const cv::Mat image = synthetic_image(height, width, 21);
  for (const int labels : {2, 3, 9}) {
    const std::vector<float> unary = synthetic_unary(labels, height, width, 40 + labels);
    CrfConfig config;
    config.threads = 1;
    const std::vector<float> q1 = dense_crf(view_of(unary, labels, height, width), image, config);
    config.threads = 3;
    const std::vector<float> q3 = dense_crf(view_of(unary, labels, height, width), image, config);
    EXPECT_EQ(q1, q3) << labels << " labels";
  }
}

TEST(DenseCrf, BaselineLoopsAgreeWithDispatchedLoops) {
  // The AVX2+FMA loops round a·b + c once, the baseline loops twice: the marginals differ in
  // their last bits only (identical where the CPU has no AVX2+FMA and both runs are baseline).
  const int height = 60;
  const int width = 80;
  const cv::Mat image = synthetic_image(height, width, 22);
  const std::vector<float> unary = synthetic_unary(21, height, width, 50);
  const std::vector<float> dispatched =
      dense_crf(view_of(unary, 21, height, width), image, CrfConfig{});
  const std::vector<float> baseline =
      dense_crf(view_of(unary, 21, height, width), image, CrfConfig{}, CrfLoops::kBaseline);
  ASSERT_EQ(dispatched.size(), baseline.size());
  double max_diff = 0;
  for (std::size_t i = 0; i < dispatched.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(static_cast<double>(dispatched[i]) - baseline[i]));
  }
  std::printf("[ simd   ] dispatched vs baseline loops: max |dQ| = %.2e\n", max_diff);
  EXPECT_LE(max_diff, 1e-5);
  const std::size_t n = static_cast<std::size_t>(height) * width;
  std::size_t same = 0;
  for (std::size_t i = 0; i < n; ++i) {
    int a = 0;
    int b = 0;
    for (int l = 1; l < 21; ++l) {
      if (dispatched[l * n + i] > dispatched[a * n + i]) a = l;
      if (baseline[l * n + i] > baseline[b * n + i]) b = l;
    }
    same += a == b;
  }
  EXPECT_EQ(same, n);
}

TEST(DenseCrf, LatticeIsReusedAcrossInferences) {
  const cv::Mat image = synthetic_image(30, 40, 6);
  const DenseCrf crf(image, CrfConfig{});
  const std::vector<float> u2 = synthetic_unary(2, 30, 40, 1);
  const std::vector<float> u5 = synthetic_unary(5, 30, 40, 2);
  EXPECT_EQ(crf.infer(view_of(u2, 2, 30, 40)),
            dense_crf(view_of(u2, 2, 30, 40), image, CrfConfig{}));
  EXPECT_EQ(crf.infer(view_of(u5, 5, 30, 40)),
            dense_crf(view_of(u5, 5, 30, 40), image, CrfConfig{}));
  const DenseCrfStats stats = crf.stats();
  EXPECT_EQ(stats.gaussian.num_points, 1200);
  EXPECT_EQ(stats.gaussian.dim, 2);
  EXPECT_EQ(stats.bilateral.dim, 5);
  EXPECT_GT(stats.gaussian.num_vertices, 0);
  EXPECT_GT(stats.bilateral.num_vertices, 0);
}

TEST(DenseCrf, ReusedWorkspaceGivesIdenticalMarginals) {
  // A workspace carries buffers (and stale rows) from image to image; results must not change.
  CrfWorkspace workspace;
  const cv::Mat big = synthetic_image(50, 70, 13);
  const cv::Mat small = synthetic_image(30, 40, 14);
  const std::vector<float> u_big = synthetic_unary(21, 50, 70, 3);
  const std::vector<float> u_small = synthetic_unary(3, 30, 40, 4);
  const std::vector<float> u_small2 = synthetic_unary(2, 30, 40, 5);
  const DenseCrf crf_big(big, CrfConfig{});
  const DenseCrf crf_small(small, CrfConfig{});
  EXPECT_EQ(crf_big.infer(view_of(u_big, 21, 50, 70), &workspace),
            crf_big.infer(view_of(u_big, 21, 50, 70)));
  const std::size_t bytes = workspace.bytes();
  EXPECT_GT(bytes, 0u);
  EXPECT_EQ(crf_small.infer(view_of(u_small, 3, 30, 40), &workspace),
            crf_small.infer(view_of(u_small, 3, 30, 40)));
  EXPECT_EQ(crf_small.infer(view_of(u_small2, 2, 30, 40), &workspace),
            crf_small.infer(view_of(u_small2, 2, 30, 40)));
  EXPECT_EQ(workspace.bytes(), bytes);  // nothing grew: the big image's buffers were reused
}

TEST(DenseCrf, WorkspaceKeepsPositionKernelsPerImageSize) {
  // The position-only kernel depends on the image size, σ_xy and the splat table alone: a
  // workspace hands it to the next image of the same size, with identical marginals.
  CrfWorkspace workspace;
  const std::vector<float> u1 = synthetic_unary(3, 30, 40, 7);
  const std::vector<float> u2 = synthetic_unary(3, 30, 40, 8);
  const cv::Mat first = synthetic_image(30, 40, 15);
  const cv::Mat second = synthetic_image(30, 40, 16);  // same size, other colours
  const auto run = [&](const cv::Mat& image, const std::vector<float>& unary,
                       const CrfConfig& config) {
    return DenseCrf(image, config, &workspace).infer(view_of(unary, 3, 30, 40), &workspace);
  };
  EXPECT_EQ(run(first, u1, CrfConfig{}), dense_crf(view_of(u1, 3, 30, 40), first, CrfConfig{}));
  const std::size_t bytes = workspace.bytes();
  EXPECT_EQ(run(second, u2, CrfConfig{}), dense_crf(view_of(u2, 3, 30, 40), second, CrfConfig{}));
  EXPECT_EQ(workspace.bytes(), bytes);  // the kernel was reused, nothing was built or grown

  CrfConfig wider;  // another σ_xy: another kernel
  wider.pos_std = 2.0f;
  EXPECT_EQ(run(second, u2, wider), dense_crf(view_of(u2, 3, 30, 40), second, wider));
  EXPECT_GT(workspace.bytes(), bytes);
  CrfConfig threaded;  // a kernel for several threads carries the parallel splat table
  threaded.threads = 2;
  EXPECT_EQ(run(first, u1, threaded), dense_crf(view_of(u1, 3, 30, 40), first, CrfConfig{}));

  EXPECT_EQ(workspace.position_kernels(), 3u);

  // Only the last few sizes are kept.
  for (int size = 0; size < static_cast<int>(CrfWorkspace::kCachedPositionKernels) + 2; ++size) {
    const int height = 12 + size;
    const cv::Mat image = synthetic_image(height, 16, 40 + size);
    const std::vector<float> u = synthetic_unary(2, height, 16, 50 + size);
    EXPECT_EQ(DenseCrf(image, CrfConfig{}, &workspace).infer(view_of(u, 2, height, 16)),
              dense_crf(view_of(u, 2, height, 16), image, CrfConfig{}));
  }
  EXPECT_EQ(workspace.position_kernels(), CrfWorkspace::kCachedPositionKernels);
}

// ---- Errors -----------------------------------------------------------------------------------

using clipes::testing::error_of;

TEST(DenseCrf, RejectsBadInputs) {
  const cv::Mat image = synthetic_image(10, 12, 1);
  const std::vector<float> unary = synthetic_unary(3, 10, 12, 1);
  EXPECT_NE(error_of([&] { DenseCrf(cv::Mat(10, 12, CV_8UC1), CrfConfig{}); }).find("CV_8UC3"),
            std::string::npos);
  EXPECT_NE(error_of([&] { DenseCrf(cv::Mat(), CrfConfig{}); }).find("3 channels"),
            std::string::npos);
  const DenseCrf crf(image, CrfConfig{});
  EXPECT_NE(error_of([&] { crf.infer(view_of(unary, 3, 12, 10)); }).find("[3, 12, 10]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { crf.infer(view_of(unary, 1, 10, 12)); }).find("labels >= 2"),
            std::string::npos);
  std::vector<float> bad = unary;
  bad[2 * 120 + 13] = std::numeric_limits<float>::infinity();
  EXPECT_NE(error_of([&] {
              crf.infer(view_of(bad, 3, 10, 12));
            }).find("unary of label 2 at pixel (row 1, column 1) is inf"),
            std::string::npos);
  // 11 labels (rows of 16) on 9×13 pixels: a bad value inside an 8-pixel block and one among the
  // last 5 pixels.
  const std::vector<float> wide = synthetic_unary(11, 9, 13, 3);
  const DenseCrf crf11(synthetic_image(9, 13, 1), CrfConfig{});
  for (int j = 0; j < 8; ++j) {  // every lane of the block of pixels 64..71
    bad = wide;
    bad[9 * 117 + 64 + j] = std::numeric_limits<float>::quiet_NaN();
    const std::string where = fmt::format("(row {}, column {})", (64 + j) / 13, (64 + j) % 13);
    EXPECT_NE(error_of([&] {
                crf11.infer(view_of(bad, 11, 9, 13));
              }).find("unary of label 9 at pixel " + where + " is nan"),
              std::string::npos)
        << where;
  }
  bad = wide;
  bad[4 * 117 + 116] = -std::numeric_limits<float>::infinity();
  EXPECT_NE(error_of([&] {
              crf11.infer(view_of(bad, 11, 9, 13));
            }).find("unary of label 4 at pixel (row 8, column 12) is -inf"),
            std::string::npos);
  EXPECT_NO_THROW(crf11.infer(view_of(wide, 11, 9, 13)));
  CrfConfig config;
  config.pos_std = -3.0f;
  EXPECT_EQ(error_of([&] { DenseCrf(image, config); }),
            "dense CRF: crf.pos_std must be > 0, got -3");
  config = CrfConfig{};
  config.iterations = -1;
  EXPECT_EQ(error_of([&] { DenseCrf(image, config); }),
            "dense CRF: crf.iterations must be >= 0, got -1");
}

}  // namespace
}  // namespace clipes::crf

#include "clipes/cam/gradcam.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <gtest/gtest.h>

#include "clipes/cam/caa.h"
#include "clipes/cam/numpy_reduce.h"

namespace clipes::cam {
namespace {

constexpr std::int64_t kH = 3, kW = 4, kN = kH * kW, kD = 6, kE = 5;

// A small attention-like head: mixes tokens with softmax(A Aᵀ), then a nonlinearity, the mean of
// the patch tokens (class token dropped, as in CLIP-ES) and a projection.
struct ToyHead {
  at::Tensor w1 = at::randn({kD, kD}, at::kDouble) * 0.5;
  at::Tensor w2 = at::randn({kD, kE}, at::kDouble);
  at::Tensor operator()(const at::Tensor& a) const {
    const auto x = a[0];
    const auto mixed = at::mm(at::softmax(at::mm(x, x.t()), -1), x);
    const auto h = at::tanh(at::mm(mixed + x, w1));
    return at::mm(h.slice(0, 1).mean(0, true), w2);
  }
};

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// GradCAM computed the slow, obvious way: a fresh graph and one backward per class.
at::Tensor brute_force_cams(const at::Tensor& a, const ToyHead& head, const at::Tensor& text,
                            std::int64_t k_classes, double scale) {
  std::vector<at::Tensor> cams;
  for (std::int64_t k = 0; k < k_classes; ++k) {
    at::AutoGradMode grad_mode(true);
    const auto leaf = a.detach().unsqueeze(0).clone().requires_grad_(true);
    auto f = head(leaf);
    f = f / f.norm(2, {1}, true);
    const auto t = text / text.norm(2, {1}, true);
    const auto s = (at::mm(f, t.t()) * scale).softmax(-1);
    const auto g = torch::autograd::grad({s[0][k]}, {leaf})[0][0];
    const auto w = g.slice(0, 1).sum(0) / kN;
    cams.push_back((a.slice(0, 1) * w).sum(1).clamp_min(0).reshape({kH, kW}));
  }
  return minmax_normalize(minmax_normalize(at::stack(cams)));
}

TEST(SoftmaxGradCam, BatchedBackwardsEqualOneGraphPerClass) {
  at::manual_seed(11);
  const ToyHead head;
  const auto a = at::randn({kN + 1, kD}, at::kDouble);
  const auto text = at::randn({7, kE}, at::kDouble);
  const auto result =
      softmax_gradcam(a, [&](const at::Tensor& x) { return head(x); }, text, 3, kH, kW, 10.0);
  ASSERT_EQ(result.cams.sizes(), (at::IntArrayRef{3, kH, kW}));
  EXPECT_LT(max_abs_diff(result.cams, brute_force_cams(a, head, text, 3, 10.0)), 1e-12);
  EXPECT_NEAR(result.probs.sum().item<double>(), 1.0, 1e-12);
  EXPECT_EQ(result.probs.size(0), 7);
  for (std::int64_t k = 0; k < 3; ++k) {
    EXPECT_DOUBLE_EQ(result.cams[k].max().item<double>() > 0 ? 1.0 : 0.0, 1.0);
    EXPECT_GE(result.cams[k].min().item<double>(), 0.0);
  }
}

TEST(SoftmaxGradCam, GradientAgreesWithFiniteDifferences) {
  at::manual_seed(12);
  const ToyHead head;
  const auto a = at::randn({kN + 1, kD}, at::kDouble);
  const auto text = at::randn({4, kE}, at::kDouble);
  auto prob0 = [&](const at::Tensor& x) {
    return class_probabilities(head(x.unsqueeze(0)), text, 10.0)[0].item<double>();
  };
  at::AutoGradMode grad_mode(true);
  const auto leaf = a.clone().requires_grad_(true);
  const auto p = class_probabilities(head(leaf.unsqueeze(0)), text, 10.0);
  const auto g = torch::autograd::grad({p[0]}, {leaf})[0];
  for (auto [row, col] : {std::pair<int, int>{2, 1}, {5, 4}, {0, 0}}) {
    auto plus = a.clone();
    auto minus = a.clone();
    plus[row][col] += 1e-6;
    minus[row][col] -= 1e-6;
    EXPECT_NEAR((prob0(plus) - prob0(minus)) / 2e-6, g[row][col].item<double>(), 1e-6);
  }
}

TEST(SoftmaxGradCam, ShapeErrorsAreReported) {
  const ToyHead head;
  const auto a = at::randn({kN + 1, kD}, at::kDouble);
  const auto text = at::randn({4, kE}, at::kDouble);
  const auto fn = [&](const at::Tensor& x) { return head(x); };
  EXPECT_THROW(softmax_gradcam(a, fn, text, 2, 5, 5, 10.0), c10::Error);
  EXPECT_THROW(softmax_gradcam(a, fn, text, 5, kH, kW, 10.0), c10::Error);
}

TEST(ClassProbabilities, IsSoftmaxOfScaledCosines) {
  const auto f = at::tensor({3.0, 4.0}, at::kDouble);
  const auto t = at::tensor({1.0, 0.0, 0.0, 2.0}, at::kDouble).reshape({2, 2});
  const auto p = class_probabilities(f, t, 100.0);
  const double l0 = 100 * 0.6, l1 = 100 * 0.8;
  EXPECT_NEAR(p[0].item<double>(), 1.0 / (1.0 + std::exp(l1 - l0)), 1e-15);
}

}  // namespace
}  // namespace clipes::cam

namespace clipes::cam {
namespace {

// Known answers from NumPy 1.24: np.add.reduce(x) for x_i = float32(sin(1.7 i)·10^(i mod 7)).
TEST(NumpyPairwiseSum, MatchesNumpyBitForBit) {
  const std::vector<std::pair<int, double>> cases = {
      {5, 0x1.f3f5ccp+11}, {8, -0x1.2ccb5ep+19}, {100, 0x1.670e2p+20},
      {129, 0x1.8e2a4ep+19}, {768, 0x1.ea60e4p+20}, {1000, -0x1.3426dp+18}};
  for (const auto& [n, expected] : cases) {
    std::vector<float> x(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      x[i] = static_cast<float>(std::sin(i * 1.7) * std::pow(10.0, i % 7));
    }
    EXPECT_EQ(numpy_pairwise_sum(x.data(), n), static_cast<float>(expected)) << "n = " << n;
  }
  // A plain left-to-right sum differs for n = 100 (NumPy: 0x1.670e2p+20, sequential 0x1.670e26p+20).
  std::vector<float> strided(200, 0.0f);
  for (int i = 0; i < 100; ++i) {
    strided[2 * i] = static_cast<float>(std::sin(i * 1.7) * std::pow(10.0, i % 7));
  }
  EXPECT_EQ(numpy_pairwise_sum(strided.data(), 100, 2), static_cast<float>(0x1.670e2p+20));
}

// The float32 CPU path (NumPy's summation order) agrees with the double computation.
TEST(SoftmaxGradCam, Float32PathAgreesWithDouble) {
  at::manual_seed(13);
  const ToyHead head;
  const auto a = at::randn({kN + 1, kD}, at::kDouble);
  const auto text = at::randn({6, kE}, at::kDouble);
  const auto reference =
      softmax_gradcam(a, [&](const at::Tensor& x) { return head(x); }, text, 2, kH, kW, 10.0);
  const auto single = softmax_gradcam(
      a.to(at::kFloat),
      [&](const at::Tensor& x) { return head(x.to(at::kDouble)).to(at::kFloat); },
      text.to(at::kFloat), 2, kH, kW, 10.0);
  EXPECT_EQ(single.cams.scalar_type(), at::kFloat);
  EXPECT_LT(max_abs_diff(single.cams, reference.cams), 1e-5);
}

}  // namespace
}  // namespace clipes::cam

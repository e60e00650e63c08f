#include "clipes/seg/optimizer.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/optim/sgd.h>

#include <cmath>

#include "clipes/seg/deeplab.h"

namespace clipes::seg {
namespace {

DeepLabConfig small() {
  DeepLabConfig c;
  c.depth = 50;
  c.width = 4;
  c.num_classes = 3;
  c.msc = false;
  return c;
}

const torch::optim::SGDOptions& options(const torch::optim::SGD& opt, std::size_t group) {
  return static_cast<const torch::optim::SGDOptions&>(opt.param_groups().at(group).options());
}

TEST(Optimizer, PolyDecayFollowsTheFormula) {
  EXPECT_DOUBLE_EQ(poly_learning_rate(2.5e-4, 0, 20000, 0.9), 2.5e-4);
  EXPECT_DOUBLE_EQ(poly_learning_rate(2.5e-4, 10000, 20000, 0.9), 2.5e-4 * std::pow(0.5, 0.9));
  EXPECT_NEAR(poly_learning_rate(1.0, 19999, 20000, 0.9) / std::pow(1.0 / 20000, 0.9), 1.0, 1e-12);
  EXPECT_DOUBLE_EQ(poly_learning_rate(1.0, 20000, 20000, 0.9), 0.0);
  EXPECT_DOUBLE_EQ(poly_learning_rate(1.0, 5, 10, 1.0), 0.5);
}

TEST(Optimizer, GroupsHaveDeeplabsMultipliersAndDecay) {
  DeepLab model(small());
  OptimConfig oc;
  oc.lr = 2.5e-5;
  auto opt = make_optimizer(*model, oc);
  ASSERT_EQ(opt->param_groups().size(), 3u);
  EXPECT_EQ(opt->param_groups()[0].params().size(), 53u);  // ResNet-50 convs
  EXPECT_EQ(opt->param_groups()[1].params().size(), 4u);   // ASPP weights
  EXPECT_EQ(opt->param_groups()[2].params().size(), 4u);   // ASPP biases
  for (const auto& p : opt->param_groups()[2].params()) EXPECT_EQ(p.dim(), 1);
  for (const auto& p : opt->param_groups()[1].params()) EXPECT_EQ(p.dim(), 4);
  EXPECT_DOUBLE_EQ(options(*opt, 0).lr(), 2.5e-5);
  EXPECT_DOUBLE_EQ(options(*opt, 1).lr(), 2.5e-4);
  EXPECT_DOUBLE_EQ(options(*opt, 2).lr(), 5e-4);
  EXPECT_DOUBLE_EQ(options(*opt, 0).weight_decay(), 5e-4);
  EXPECT_DOUBLE_EQ(options(*opt, 1).weight_decay(), 5e-4);
  EXPECT_DOUBLE_EQ(options(*opt, 2).weight_decay(), 0.0);
  for (std::size_t g = 0; g < 3; ++g) {
    EXPECT_DOUBLE_EQ(options(*opt, g).momentum(), 0.9);
    EXPECT_FALSE(options(*opt, g).nesterov());
    EXPECT_DOUBLE_EQ(options(*opt, g).dampening(), 0.0);
  }
  // No frozen batch-norm tensor in any group.
  std::int64_t in_groups = 0;
  for (const auto& g : opt->param_groups())
    in_groups += static_cast<std::int64_t>(g.params().size());
  std::int64_t trainable = 0;
  for (const auto& p : model->parameters()) trainable += p.requires_grad() ? 1 : 0;
  EXPECT_EQ(in_groups, trainable);

  set_learning_rate(*opt, oc, 1e-3);
  const auto lrs = group_learning_rates(*opt);
  ASSERT_EQ(lrs.size(), 3u);
  EXPECT_DOUBLE_EQ(lrs[0], 1e-3);
  EXPECT_DOUBLE_EQ(lrs[1], 1e-2);
  EXPECT_DOUBLE_EQ(lrs[2], 2e-2);
}

TEST(Optimizer, StepsMatchSgdWithMomentumByHand) {
  DeepLab model(small());
  OptimConfig oc;
  oc.lr = 0.1;
  oc.weight_decay = 0.01;
  oc.momentum = 0.9;
  auto opt = make_optimizer(*model, oc);
  at::Tensor w = opt->param_groups()[0].params()[0];   // backbone: lr 0.1, decay 0.01
  at::Tensor cw = opt->param_groups()[1].params()[0];  // classifier weight: lr 1.0, decay 0.01
  at::Tensor b = opt->param_groups()[2].params()[0];   // classifier bias: lr 2.0, no decay
  const at::Tensor w0 = w.detach().clone();
  const at::Tensor cw0 = cw.detach().clone();
  const at::Tensor b0 = b.detach().clone();
  const at::Tensor g1 = at::full_like(b0, 0.5);
  const at::Tensor g2 = at::full_like(b0, -0.25);
  auto set_grads = [&](double gw, const at::Tensor& gb) {
    opt->zero_grad();
    for (auto& group : opt->param_groups()) {
      for (auto& p : group.params()) p.mutable_grad() = at::full_like(p, gw);
    }
    b.mutable_grad() = gb.clone();
  };
  set_grads(0.5, g1);
  opt->step();
  set_grads(-0.25, g2);
  opt->step();
  // Bias: buf1 = g1, p1 = p0 - 2 g1; buf2 = 0.9 buf1 + g2, p2 = p1 - 2 buf2.
  const at::Tensor b_expected = b0 - 2.0 * g1 - 2.0 * (0.9 * g1 + g2);
  EXPECT_TRUE(at::allclose(b, b_expected, 1e-6, 1e-7));
  // Weights: d = g + wd p; buf1 = d1; buf2 = 0.9 buf1 + d2.
  auto expected = [&](const at::Tensor& p0, double lr) {
    const at::Tensor d1 = 0.5 + 0.01 * p0;
    const at::Tensor p1 = p0 - lr * d1;
    const at::Tensor d2 = -0.25 + 0.01 * p1;
    return p1 - lr * (0.9 * d1 + d2);
  };
  EXPECT_TRUE(at::allclose(w, expected(w0, 0.1), 1e-6, 1e-7));
  EXPECT_TRUE(at::allclose(cw, expected(cw0, 1.0), 1e-6, 1e-7));
}

}  // namespace
}  // namespace clipes::seg

#include "clipes/seg/deeplab.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/optim/sgd.h>

#include <map>

#include "clipes/core/error.h"
#include "clipes/seg/optimizer.h"

namespace clipes::seg {
namespace {

DeepLabConfig r101() {
  DeepLabConfig c;  // the defaults: ResNet-101, width 64, 21 classes, MSC
  return c;
}

DeepLabConfig small(int depth = 50) {
  DeepLabConfig c;
  c.depth = depth;
  c.width = 4;
  c.num_classes = 3;
  return c;
}

std::map<std::string, at::Tensor> state_of(torch::nn::Module& m) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().detach().clone();
  for (const auto& b : m.named_buffers()) out[b.key()] = b.value().detach().clone();
  return out;
}

TEST(DeepLab, R101MscOutputShapesAt65) {
  at::manual_seed(1);
  DeepLab model(r101());
  at::NoGradGuard no_grad;
  const at::Tensor x = at::randn({1, 3, 65, 65});
  const auto outs = model->forward_all(x);
  ASSERT_EQ(outs.size(), 4u);  // scale 1, 0.5, 0.75, max
  EXPECT_EQ(outs[0].sizes(), (std::vector<std::int64_t>{1, 21, 9, 9}));
  EXPECT_EQ(outs[1].sizes(), (std::vector<std::int64_t>{1, 21, 5, 5}));  // 32 px input
  EXPECT_EQ(outs[2].sizes(), (std::vector<std::int64_t>{1, 21, 7, 7}));  // 48 px input
  EXPECT_EQ(outs[3].sizes(), (std::vector<std::int64_t>{1, 21, 9, 9}));
  EXPECT_EQ(model->output_size(65), 9);
  EXPECT_EQ(model->output_size(321), 41);  // DeepLab's 321 -> 41
  EXPECT_TRUE(at::equal(model->forward(x), outs[3]));
}

TEST(DeepLab, R101HasTheResNet101ParameterCount) {
  at::manual_seed(1);
  DeepLab model(r101());
  std::int64_t backbone = 0;
  std::int64_t aspp = 0;
  for (const auto& p : model->named_parameters()) {
    (p.key().rfind("base.aspp.", 0) == 0 ? aspp : backbone) += p.value().numel();
  }
  // torchvision's resnet101 has 44,549,160 parameters, 2,049,000 of them in the fc layer.
  EXPECT_EQ(backbone, 44549160 - 2049000);
  EXPECT_EQ(aspp, 4 * (2048 * 21 * 9 + 21));
  const auto groups = model->parameter_groups();
  EXPECT_EQ(groups.backbone_weights.size(), 1u + 33 * 3 + 4);  // stem, 33 blocks, 4 shortcuts
  EXPECT_EQ(groups.classifier_weights.size(), 4u);
  EXPECT_EQ(groups.classifier_biases.size(), 4u);
}

TEST(DeepLab, ParameterNamesFollowDeeplabPytorch) {
  at::manual_seed(1);
  DeepLab model(r101());
  std::map<std::string, std::vector<std::int64_t>> shapes;
  for (const auto& p : model->named_parameters()) shapes[p.key()] = p.value().sizes().vec();
  for (const auto& b : model->named_buffers()) shapes[b.key()] = b.value().sizes().vec();
  const std::map<std::string, std::vector<std::int64_t>> expected{
      {"base.layer1.conv1.conv.weight", {64, 3, 7, 7}},
      {"base.layer1.conv1.bn.running_var", {64}},
      {"base.layer2.block1.reduce.conv.weight", {64, 64, 1, 1}},
      {"base.layer2.block1.shortcut.conv.weight", {256, 64, 1, 1}},
      {"base.layer3.block1.reduce.conv.weight", {128, 256, 1, 1}},
      {"base.layer4.block23.increase.bn.running_mean", {1024}},
      {"base.layer5.block3.conv3x3.conv.weight", {512, 512, 3, 3}},
      {"base.layer5.block3.increase.bn.weight", {2048}},
      {"base.aspp.c0.weight", {21, 2048, 3, 3}},
      {"base.aspp.c3.bias", {21}},
  };
  for (const auto& [name, shape] : expected) {
    ASSERT_TRUE(shapes.count(name)) << name;
    EXPECT_EQ(shapes[name], shape) << name;
  }
  EXPECT_EQ(shapes.count("base.layer2.block2.shortcut.conv.weight"), 0u);
  EXPECT_EQ(shapes.count("base.layer4.block24.reduce.conv.weight"), 0u);
  EXPECT_EQ(shapes.count("base.aspp.c0.bias"), 1u);
  EXPECT_EQ(shapes.count("base.layer1.conv1.conv.bias"), 0u);  // convs before BN have no bias
}

TEST(DeepLab, LayoutsRoundTheStemAsTheirFrameworks) {
  at::manual_seed(1);
  // Caffe layout: max-pool with ceil mode, stride in the 1x1 conv; PyTorch layout: floor mode.
  DeepLabConfig caffe = small();
  caffe.msc = false;
  DeepLabConfig pytorch = caffe;
  pytorch.layout = ResNetLayout::kPytorch;
  DeepLab a(caffe);
  DeepLab b(pytorch);
  at::NoGradGuard no_grad;
  for (int side : {64, 65, 33, 97}) {
    const at::Tensor x = at::randn({1, 3, side, side});
    EXPECT_EQ(a->forward(x).size(2), a->output_size(side)) << side;
    EXPECT_EQ(b->forward(x).size(2), b->output_size(side)) << side;
  }
  EXPECT_EQ(a->output_size(64), 9);
  EXPECT_EQ(b->output_size(64), 8);
  // Same parameter names and shapes in both layouts (the stride moves, the tensors do not).
  auto sa = state_of(*a);
  auto sb = state_of(*b);
  ASSERT_EQ(sa.size(), sb.size());
  for (const auto& [name, t] : sa) EXPECT_EQ(t.sizes(), sb.at(name).sizes()) << name;
}

TEST(DeepLab, MscMaxIsThePixelwiseMaxOfTheResizedScales) {
  at::manual_seed(1);
  DeepLab model(small());
  at::NoGradGuard no_grad;
  const at::Tensor x = at::randn({2, 3, 41, 47});
  const auto outs = model->forward_all(x);
  ASSERT_EQ(outs.size(), 4u);
  const std::int64_t h = outs[0].size(2);
  const std::int64_t w = outs[0].size(3);
  at::Tensor expected = outs[0];
  for (int i = 1; i <= 2; ++i) {
    expected = at::max(expected, at::upsample_bilinear2d(outs[i], {h, w}, false));
  }
  EXPECT_TRUE(at::allclose(outs[3], expected));
  // Each scale sees the image resized as F.interpolate(scale_factor=s) does.
  const at::Tensor half = at::upsample_bilinear2d(x, {20, 23}, false, 0.5, 0.5);
  EXPECT_TRUE(at::allclose(outs[1], model->forward_single(half)));
}

TEST(DeepLab, WithoutMscThereIsOneOutput) {
  at::manual_seed(1);
  DeepLabConfig c = small();
  c.msc = false;
  DeepLab model(c);
  at::NoGradGuard no_grad;
  const auto outs = model->forward_all(at::randn({1, 3, 33, 33}));
  ASSERT_EQ(outs.size(), 1u);
  EXPECT_EQ(outs[0].sizes(), (std::vector<std::int64_t>{1, 3, 5, 5}));
}

TEST(DeepLab, FrozenBatchNormStaysFrozenAfterOptimizerSteps) {
  at::manual_seed(1);
  DeepLab model(small());
  {
    at::NoGradGuard no_grad;  // non-trivial statistics, as in real init weights
    for (auto& b : model->named_buffers()) {
      if (b.key().find("running_mean") != std::string::npos) b.value().normal_(0, 0.1);
      if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 2.0);
    }
    for (auto& p : model->named_parameters()) {
      if (p.key().find(".bn.") != std::string::npos) p.value().uniform_(0.5, 1.5);
    }
  }
  for (const auto& p : model->named_parameters()) {
    EXPECT_EQ(p.value().requires_grad(), p.key().find(".bn.") == std::string::npos) << p.key();
  }
  const auto before = state_of(*model);
  model->train();
  const at::Tensor x = at::randn({2, 3, 33, 33});
  // Train mode computes what eval mode computes (no batch statistics): per-sample results equal
  // the batch result.
  {
    at::NoGradGuard no_grad;
    const at::Tensor batch = model->forward(x);
    model->eval();
    EXPECT_TRUE(at::allclose(batch[1], model->forward(x.slice(0, 1, 2))[0], 1e-4, 1e-5));
    model->train();
  }
  OptimConfig oc;
  oc.lr = 0.05;
  auto optimizer = make_optimizer(*model, oc);
  const at::Tensor labels = at::randint(0, 3, {2, 5, 5}, at::kLong);
  for (int step = 0; step < 3; ++step) {
    optimizer->zero_grad();
    at::cross_entropy_loss(model->forward_all(x)[0], labels).backward();
    optimizer->step();
  }
  const auto after = state_of(*model);
  int frozen = 0;
  int changed = 0;
  for (const auto& [name, t] : before) {
    if (name.find(".bn.") != std::string::npos) {
      EXPECT_TRUE(at::equal(t, after.at(name))) << name << " changed";
      ++frozen;
    } else if (!at::equal(t, after.at(name))) {
      ++changed;
    }
  }
  EXPECT_EQ(frozen, 53 * 4);   // 53 batch norms in a ResNet-50, 4 tensors each
  EXPECT_EQ(changed, 53 + 8);  // every conv weight, ASPP weights and biases
}

TEST(DeepLab, ScratchWeightsDependOnlyOnTheSeed) {
  at::manual_seed(1);
  DeepLab a(small(), 5);
  DeepLab b(small(), 5);
  DeepLab c(small(), 6);
  const auto sa = state_of(*a);
  const auto sb = state_of(*b);
  const auto sc = state_of(*c);
  EXPECT_TRUE(at::equal(sa.at("base.layer3.block2.conv3x3.conv.weight"),
                        sb.at("base.layer3.block2.conv3x3.conv.weight")));
  EXPECT_FALSE(at::equal(sa.at("base.layer3.block2.conv3x3.conv.weight"),
                         sc.at("base.layer3.block2.conv3x3.conv.weight")));
  // ASPP init of deeplab-pytorch: N(0, 0.01), zero bias.
  const at::Tensor w = sa.at("base.aspp.c1.weight");
  EXPECT_NEAR(w.std().item<double>(), 0.01, 0.001);
  EXPECT_EQ(sa.at("base.aspp.c1.bias").abs().sum().item<double>(), 0.0);
}

TEST(DeepLab, RejectsAnUnknownDepth) {
  at::manual_seed(1);
  DeepLabConfig c = small();
  c.depth = 34;
  try {
    DeepLab model(c);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("14, 50 or 101, got 34"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace clipes::seg

#include "clipes/seg/init_weights.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "clipes/core/error.h"
#include "clipes/io/files.h"
#include "clipes/seg/deeplab.h"
#include "support/test_support.h"

namespace clipes::seg {
namespace {

namespace fs = std::filesystem;

/// The value tests/seg/make_synthetic_init.py stores at flat index i of the tensor that clipes
/// names `name` (without the `base.` prefix).
at::Tensor pattern(const std::string& name, at::IntArrayRef shape) {
  std::int64_t h = 0;
  for (unsigned char c : name) h = (h * 131 + c) % 1000003;
  const double base = static_cast<double>(h % 997) / 997.0;
  const at::Tensor i = at::arange(at::prod(at::tensor(shape)).item<std::int64_t>(), at::kLong);
  return (base + (i % 101).to(at::kDouble) / 1000.0).to(at::kFloat).reshape(shape);
}

DeepLabConfig small(int classes = 5, ResNetLayout layout = ResNetLayout::kCaffe) {
  DeepLabConfig c;
  c.depth = 50;
  c.width = 4;
  c.num_classes = classes;
  c.layout = layout;
  return c;
}

using clipes::testing::error_of;

class InitWeights : public ::testing::Test {
 protected:
  void SetUp() override {
    // Made at build time (tests/seg/CMakeLists.txt) when the system Python has torch.
    dir_ = clipes::testing::fixture_dir() / "seg";
    CLIPES_REQUIRE_FILE(dir_ / "coco.clipes.pth");
  }
  static void expect_backbone_is_pattern(DeepLabImpl& model) {
    int checked = 0;
    for (const auto& p : model.base().named_parameters()) {
      if (p.key().rfind("aspp.", 0) == 0) continue;
      EXPECT_TRUE(at::equal(p.value(), pattern(p.key(), p.value().sizes()))) << p.key();
      ++checked;
    }
    for (const auto& b : model.base().named_buffers()) {
      EXPECT_TRUE(at::equal(b.value(), pattern(b.key(), b.value().sizes()))) << b.key();
      ++checked;
    }
    EXPECT_EQ(checked, 53 + 53 * 4);
  }
  fs::path dir_;
};

TEST_F(InitWeights, ConvertedCocoInitLoadsTheBackboneAndSkipsOtherClasses) {
  DeepLab model(small(5));
  const at::Tensor aspp_before = model->named_parameters()["base.aspp.c0.weight"].clone();
  const InitWeightsReport r = load_init_weights(*model, dir_ / "coco.clipes.pth");
  expect_backbone_is_pattern(*model);
  EXPECT_EQ(r.backbone_tensors, 53 + 53 * 4);
  EXPECT_FALSE(r.classifier_loaded);
  EXPECT_NE(
      r.classifier_note.find("aspp.c0.weight (expected [5, 128, 3, 3], found [91, 128, 3, 3])"),
      std::string::npos)
      << r.classifier_note;
  EXPECT_TRUE(at::equal(model->named_parameters()["base.aspp.c0.weight"], aspp_before));
  EXPECT_EQ(r.layout, "caffe");
}

TEST_F(InitWeights, LegacyMscFileWithMatchingClassesLoadsTheClassifierToo) {
  DeepLab model(small(5));
  const InitWeightsReport r = load_init_weights(*model, dir_ / "msc.clipes.pth");
  expect_backbone_is_pattern(*model);
  EXPECT_TRUE(r.classifier_loaded);
  EXPECT_TRUE(
      at::equal(model->named_parameters()["base.aspp.c2.bias"], pattern("aspp.c2.bias", {5})));
  EXPECT_TRUE(r.unused.empty());
}

TEST_F(InitWeights, TorchvisionNamesNeedThePytorchLayout) {
  DeepLab pytorch(small(5, ResNetLayout::kPytorch));
  const InitWeightsReport r = load_init_weights(*pytorch, dir_ / "tv.clipes.pth");
  expect_backbone_is_pattern(*pytorch);
  EXPECT_EQ(r.layout, "pytorch");
  DeepLab caffe(small(5));
  EXPECT_NE(error_of([&] {
              load_init_weights(*caffe, dir_ / "tv.clipes.pth");
            }).find("holds a pytorch-layout ResNet but the model is caffe"),
            std::string::npos);
}

TEST_F(InitWeights, PlainZipStateDictIsReadWithoutConversion) {
  DeepLab model(small(5));
  const InitWeightsReport r = load_init_weights(*model, dir_ / "plain.pth");
  expect_backbone_is_pattern(*model);
  EXPECT_TRUE(r.classifier_loaded);
  EXPECT_EQ(r.layout, "");
}

TEST_F(InitWeights, EveryMissingAndMisshapedTensorIsNamed) {
  DeepLab model(small(5));
  const std::string holes = error_of([&] { load_init_weights(*model, dir_ / "holes.clipes.pth"); });
  EXPECT_NE(holes.find("2 missing and 0 mis-shaped"), std::string::npos) << holes;
  EXPECT_NE(holes.find("layer3.block2.conv3x3.bn.running_var (missing)"), std::string::npos)
      << holes;
  EXPECT_NE(holes.find("layer1.conv1.conv.weight (missing)"), std::string::npos) << holes;
  DeepLabConfig wide = small(5);
  wide.width = 8;
  DeepLab wider(wide);
  const std::string shapes = error_of([&] { load_init_weights(*wider, dir_ / "msc.clipes.pth"); });
  EXPECT_NE(shapes.find("0 missing and 265 mis-shaped tensors for a ResNet-50 of width 8"),
            std::string::npos)
      << shapes.substr(0, 300);
  EXPECT_NE(shapes.find("layer1.conv1.conv.weight (expected [8, 3, 7, 7], found [4, 3, 7, 7])"),
            std::string::npos);
  EXPECT_NE(shapes.find("layer5.block3.increase.bn.running_var (expected [256], found [128])"),
            std::string::npos);
  DeepLabConfig deeper = small(5);
  deeper.depth = 101;
  DeepLab r101(deeper);
  const std::string blocks = error_of([&] { load_init_weights(*r101, dir_ / "msc.clipes.pth"); });
  EXPECT_NE(blocks.find("layer4.block23.reduce.conv.weight (missing)"), std::string::npos);
}

TEST_F(InitWeights, UnreadableFilesPointToTheConverter) {
  DeepLab model(small(5));
  // The legacy (non-zip) serialisation of deeplab-pytorch's era: LibTorch cannot unpickle it.
  EXPECT_NE(error_of([&] {
              load_init_weights(*model, dir_ / "msc.pth");
            }).find("LibTorch cannot read this file"),
            std::string::npos);
  // An OrderedDict state dict in the zip format: LibTorch 1.13 cannot unpickle it either.
  const std::string e = error_of([&] { load_init_weights(*model, dir_ / "coco.pth"); });
  EXPECT_NE(e.find("scripts/convert_init_weights.py"), std::string::npos) << e;
  const fs::path tmp = clipes::testing::make_temp_dir("seg_init_junk");
  io::write_file_atomic(tmp / "junk.pth", "not a pickle");
  EXPECT_NE(error_of([&] {
              load_init_weights(*model, tmp / "junk.pth");
            }).find("convert_init_weights.py"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_init_weights(*model, dir_ / "absent.pth"); }).find("absent.pth"),
            std::string::npos);
}

TEST_F(InitWeights, ConverterRejectsUnknownKeySchemes) {
  const fs::path script = clipes::testing::source_dir() / "scripts/convert_init_weights.py";
  const fs::path tmp = clipes::testing::make_temp_dir("seg_convert_odd");
  const fs::path in = tmp / "odd.pth";
  const std::string python = CLIPES_PYTHON;
  std::string output;
  ASSERT_EQ(clipes::testing::run_command(
                python + " -c \"import torch; torch.save({'encoder.w': torch.zeros(2)}, '" +
                    in.string() + "')\" && " + python + " " + script.string() + " " + in.string() +
                    " " + (tmp / "odd.out.pth").string(),
                &output),
            1);
  EXPECT_NE(output.find("unknown key scheme"), std::string::npos) << output;
  EXPECT_NE(output.find("encoder.w"), std::string::npos) << output;
  EXPECT_FALSE(fs::exists(tmp / "odd.out.pth"));
}

}  // namespace
}  // namespace clipes::seg

#include "clipes/seg/seg_config.h"

#include <gtest/gtest.h>

#include "clipes/core/error.h"
#include "support/test_support.h"

namespace clipes::seg {
namespace {

std::string error_of(std::string_view json) {
  try {
    parse_train_config(json, "t.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(SegConfig, VocRecipeFile) {
  const TrainConfig c =
      load_train_config(clipes::testing::source_dir() / "configs" / "train-voc.json");
  EXPECT_EQ(c.model.num_classes, 21);
  EXPECT_EQ(c.model.depth, 101);
  EXPECT_TRUE(c.model.msc);
  EXPECT_EQ(c.model.aspp_rates, (std::vector<int>{6, 12, 18, 24}));
  EXPECT_EQ(c.data.scales, (std::vector<double>{0.5, 0.75, 1.0, 1.25, 1.5}));
  EXPECT_EQ(c.data.crop_size, 321);
  EXPECT_FLOAT_EQ(c.data.confidence_threshold, 0.95f);
  EXPECT_EQ(c.loss, LossKind::kCrossEntropy);
  EXPECT_DOUBLE_EQ(c.optim.lr, 2.5e-5);
  EXPECT_EQ(c.optim.batch_size * c.optim.iter_size, 10);
  EXPECT_EQ(c.optim.iterations, 20000);
  EXPECT_DOUBLE_EQ(c.optim.weight_decay, 5e-4);
  EXPECT_DOUBLE_EQ(c.optim.momentum, 0.9);
  EXPECT_DOUBLE_EQ(c.optim.lr_poly_power, 0.9);
}

TEST(SegConfig, CocoRecipeFile) {
  const TrainConfig c =
      load_train_config(clipes::testing::source_dir() / "configs" / "train-coco.json");
  EXPECT_EQ(c.model.num_classes, 81);
  EXPECT_EQ(c.data.scales, (std::vector<double>{0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0}));
  EXPECT_EQ(c.data.crop_size, 481);
  EXPECT_EQ(c.loss, LossKind::kClassBalanced);
  EXPECT_EQ(c.optim.batch_size * c.optim.iter_size, 5);
  EXPECT_EQ(c.optim.iterations, 100000);
}

TEST(SegConfig, OverridesApplyBeforeValidation) {
  const auto file = clipes::testing::source_dir() / "configs" / "train-voc.json";
  const TrainConfig c = load_train_config(file, {"optim.lr=2e-4", "model.layout=pytorch"});
  EXPECT_DOUBLE_EQ(c.optim.lr, 2e-4);
  EXPECT_EQ(c.model.layout, ResNetLayout::kPytorch);
  try {
    load_train_config(file, {"data.crop_size=0"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.crop_size must be >= 16, got 0"), std::string::npos)
        << e.what();
  }
}

TEST(SegConfig, RejectsUnknownKeysWrongTypesAndRanges) {
  EXPECT_NE(error_of(R"({"optim": {"lr_mult": 3}})").find("t.json: unknown key optim.lr_mult"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"model": {"depth": "101"}})").find("model.depth must be an integer"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"model": {"depth": 152}})").find("model.depth must be 14, 50 or 101, got 152"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"model": {"layout": "keras"}})")
                .find("model.layout must be \"caffe\" or \"pytorch\", got \"keras\""),
            std::string::npos);
  EXPECT_NE(error_of(R"({"loss": "focal"})").find("loss must be \"cross_entropy\""),
            std::string::npos);
  EXPECT_NE(error_of(R"({"data": {"confidence_threshold": 1.5}})")
                .find("data.confidence_threshold must be in [0, 1], got 1.5"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"input": {"std": [1, 0, 1]}})").find("input.std must hold values > 0"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"model": {"num_classes": 300}})").find("model.num_classes must be <= 255"),
            std::string::npos);
  EXPECT_NE(error_of("{oops").find("t.json: invalid JSON"), std::string::npos);
}

TEST(SegConfig, DumpRoundTripsAndDifferencesAreNamed) {
  TrainConfig c;
  c.model.width = 8;
  c.model.layout = ResNetLayout::kPytorch;
  c.loss = LossKind::kClassBalanced;
  c.input.mean = {0.5f, 0.25f, 0.125f};
  c.data.confidence_threshold = 0.9f;
  const TrainConfig back = parse_train_config(dump_train_config(c), "dump");
  EXPECT_EQ(first_config_difference(c, back), "");
  EXPECT_EQ(back.model.layout, ResNetLayout::kPytorch);
  EXPECT_EQ(back.loss, LossKind::kClassBalanced);
  EXPECT_FLOAT_EQ(back.data.confidence_threshold, 0.9f);
  TrainConfig d = c;
  d.data.workers = 17;  // runtime only: not a difference
  d.log_every = 3;
  EXPECT_EQ(first_config_difference(c, d), "");
  d.optim.iterations = 5;
  EXPECT_EQ(first_config_difference(c, d), "optim.iterations");
}

}  // namespace
}  // namespace clipes::seg

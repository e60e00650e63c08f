#pragma once
/// Settings of the final segmentation stage (spec §8): the DeepLabV2 model, the input
/// normalisation the initial weights expect, the augmentation recipe, the loss and the optimiser.
/// configs/train-voc.json and configs/train-coco.json hold the two published recipes.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "clipes/core/config_fields.h"

namespace clipes::seg {

/// Where the stride of a downsampling bottleneck sits (and how the stem pools).
enum class ResNetLayout {
  kCaffe,    ///< MSRA/Caffe ResNet: stride in the first 1x1 conv, max-pool 3/2/1 with ceil mode
  kPytorch,  ///< torchvision ResNet: stride in the 3x3 conv, max-pool 3/2/1 without ceil mode
};
constexpr auto enum_names(ResNetLayout) {
  return config::EnumNames<ResNetLayout, 2>{
      {{"caffe", ResNetLayout::kCaffe}, {"pytorch", ResNetLayout::kPytorch}}};
}

/// DeepLab-v2 (ResNet, dilated, ASPP) with the multi-scale (MSC) wrapper.
struct DeepLabConfig {
  int num_classes = 21;  ///< output classes, background included (ids 0..n-1)
  int depth = 101;  ///< 14 (blocks 1,1,1,1: tests), 50 (3,4,6,3) or 101 (3,4,23,3)
  int width = 64;        ///< stem channels; stage outputs are 4/8/16/32 x width
  ResNetLayout layout = ResNetLayout::kCaffe;  ///< "caffe" or "pytorch" (JSON)
  std::vector<int> aspp_rates{6, 12, 18, 24};  ///< dilations of the summed 3x3 ASPP branches
  bool msc = true;  ///< multi-scale wrapper: extra scales + pixel-wise max
  std::vector<double> msc_scales{0.5, 0.75};  ///< the extra input scales of the MSC wrapper
};

template <class C, class V>
config::FieldsOf<C, DeepLabConfig> visit_fields(C& c, V& v) {
  v("num_classes", c.num_classes, "output classes, background included (ids 0..n-1)");
  v("depth", c.depth, "ResNet depth: 14 (blocks 1,1,1,1: tests), 50 or 101");
  v("width", c.width, "stem channels; stage outputs are 4/8/16/32 x width");
  v("layout", c.layout, "where a downsampling bottleneck's stride sits (the weights' origin)");
  v("aspp_rates", c.aspp_rates, "dilations of the summed 3x3 ASPP branches");
  v("msc", c.msc, "multi-scale wrapper: extra scales + pixel-wise max");
  v("msc_scales", c.msc_scales, "the extra input scales of the MSC wrapper");
}

/// How an 8-bit image becomes the network input: x = (pixel - mean) / std per channel.
struct InputConfig {
  bool bgr = true;  ///< channel order fed to the network (Caffe-converted weights: BGR)
  std::vector<float> mean{104.008f, 116.669f, 122.675f};  ///< per channel in the fed order, 0..255
  std::vector<float> std{1.0f, 1.0f, 1.0f};               ///< per channel in the fed order, 0..255
  /// JPEG EXIF orientation (data::ExifOrientation): "stored" (the pixel array), "apply", or ""
  /// (the default): that of the generate run whose masks are trained on, "stored" without one.
  std::string exif_orientation;
};

template <class C, class V>
config::FieldsOf<C, InputConfig> visit_fields(C& c, V& v) {
  v("bgr", c.bgr, "channel order fed to the network (Caffe-converted weights: BGR)");
  v("mean", c.mean, "per channel in the fed order, 0..255");
  v("std", c.std, "per channel in the fed order, 0..255");
  v("exif_orientation", c.exif_orientation,
    "\"stored\", \"apply\" or \"\": that of the generate run whose masks are trained on");
}

/// Training samples: random scale, crop (image padded with the mean, label with 255), flip.
struct AugmentConfig {
  std::vector<double> scales{0.5, 0.75, 1.0, 1.25, 1.5};  ///< one is drawn per sample
  int crop_size = 321;                                    ///< square crop side, pixels
  bool flip = true;                                       ///< random horizontal flip (p = 0.5)
  float confidence_threshold = 0.95f;  ///< μ of CGL: pixels with confidence < μ are ignored
  int workers = 4;                     ///< data-loading threads (0: load in the training thread)
  int prefetch = 2;                    ///< batches prepared ahead of the training step
};

template <class C, class V>
config::FieldsOf<C, AugmentConfig> visit_fields(C& c, V& v) {
  v("scales", c.scales, "random scales, one drawn per sample");
  v("crop_size", c.crop_size, "square crop side, pixels");
  v("flip", c.flip, "random horizontal flip (p = 0.5)");
  v("confidence_threshold", c.confidence_threshold,
    "μ of the confidence-guided loss: pixels with confidence < μ are ignored");
  v("workers", c.workers, "data-loading threads (0: load in the training thread)");
  v("prefetch", c.prefetch, "batches prepared ahead of the training step");
}

enum class LossKind {
  kCrossEntropy,   ///< "cross_entropy": mean over the labelled pixels (255 ignored)
  kClassBalanced,  ///< "class_balanced": mean of the background mean and the foreground mean
};
constexpr auto enum_names(LossKind) {
  return config::EnumNames<LossKind, 2>{{{"cross_entropy", LossKind::kCrossEntropy},
                                         {"class_balanced", LossKind::kClassBalanced}}};
}

/// SGD with poly decay and the DeepLab parameter groups.
struct OptimConfig {
  double lr = 2.5e-5;          ///< base LR (2.5e-5 from the COCO init, 2e-4 from ImageNet)
  double lr_poly_power = 0.9;  ///< lr_i = lr * (1 - i / iterations)^power, i from 0
  double lr_classifier_weight_mult = 10;  ///< LR multiplier of the ASPP (classifier) weights
  double lr_classifier_bias_mult = 20;    ///< LR multiplier of the ASPP biases (no weight decay)
  double momentum = 0.9;
  double weight_decay = 5e-4;       ///< on the conv weights (not on the classifier biases)
  int batch_size = 5;               ///< samples per forward pass
  int iter_size = 2;                ///< forward passes accumulated per step
  std::int64_t iterations = 20000;  ///< optimiser steps
};

template <class C, class V>
config::FieldsOf<C, OptimConfig> visit_fields(C& c, V& v) {
  v("lr", c.lr, "base LR (2.5e-5 from the COCO init, 2e-4 from ImageNet)");
  v("lr_poly_power", c.lr_poly_power, "lr_i = lr * (1 - i / iterations)^power, i from 0");
  v("lr_classifier_weight_mult", c.lr_classifier_weight_mult,
    "LR multiplier of the ASPP (classifier) weights");
  v("lr_classifier_bias_mult", c.lr_classifier_bias_mult,
    "LR multiplier of the ASPP biases (no weight decay)");
  v("momentum", c.momentum, "SGD momentum");
  v("weight_decay", c.weight_decay, "on the conv weights (not on the classifier biases)");
  v("batch_size", c.batch_size, "samples per forward pass (all ranks together)");
  v("iter_size", c.iter_size, "forward passes accumulated per step");
  v("iterations", c.iterations, "optimiser steps");
}

struct TrainConfig {
  DeepLabConfig model;
  InputConfig input;
  AugmentConfig data;
  LossKind loss = LossKind::kCrossEntropy;  ///< "cross_entropy" or "class_balanced" (JSON)
  OptimConfig optim;
  std::uint64_t seed = 0;                ///< weights from scratch, sample order, augmentation
  std::int64_t checkpoint_every = 1000;  ///< iterations between checkpoints (and at the end)
  std::int64_t log_every = 20;           ///< iterations between progress lines
};

template <class C, class V>
config::FieldsOf<C, TrainConfig> visit_fields(C& c, V& v) {
  v("model", c.model, "");
  v("input", c.input, "");
  v("data", c.data, "");
  v("loss", c.loss, "loss over the labelled pixels");
  v("optim", c.optim, "");
  v("seed", c.seed, "weights from scratch, sample order, augmentation");
  v("checkpoint_every", c.checkpoint_every, "iterations between checkpoints (and at the end)");
  v("log_every", c.log_every, "iterations between progress lines");
}

/// Reads a config document (JSON text). `source` names it in messages. Unknown keys, wrong types
/// and out-of-range values throw clipes::Error naming the JSON path.
TrainConfig parse_train_config(std::string_view json_text, const std::string& source);

/// Reads a config file and applies `--set KEY=VALUE` overrides before validation.
TrainConfig load_train_config(const std::filesystem::path& file,
                              const std::vector<std::string>& overrides = {});

/// Every range rule of the config, one per line; throws clipes::Error on the first failure.
void validate(const TrainConfig& config, const std::string& source);

/// The config as JSON text (every field), readable by parse_train_config.
std::string dump_train_config(const TrainConfig& config);

/// The first JSON path whose value differs between two configs ("" when equal), ignoring the
/// fields that do not change results (data.workers, data.prefetch, log_every).
std::string first_config_difference(const TrainConfig& a, const TrainConfig& b);

inline std::string_view to_string(ResNetLayout layout) { return config::enum_name(layout); }
inline std::string_view to_string(LossKind kind) { return config::enum_name(kind); }

/// Blocks per stage for a ResNet depth: 50 -> {3,4,6,3}, 101 -> {3,4,23,3}.
std::vector<int> resnet_blocks(int depth);

}  // namespace clipes::seg

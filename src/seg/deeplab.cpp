#include "clipes/seg/deeplab.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <cmath>
#include <string>

#include "clipes/core/error.h"

namespace clipes::seg {

namespace detail {

namespace {

/// A 2-D convolution with its weight (and optional bias) as parameters `weight`, `bias`.
class ConvImpl : public torch::nn::Module {
 public:
  ConvImpl(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride,
           std::int64_t padding, std::int64_t dilation, bool with_bias)
      : stride_(stride), padding_(padding), dilation_(dilation) {
    weight = register_parameter("weight", at::empty({out, in, kernel, kernel}));
    if (with_bias) bias = register_parameter("bias", at::zeros({out}));
  }
  at::Tensor forward(const at::Tensor& x) const {
    return at::conv2d(x, weight, bias, {stride_, stride_}, {padding_, padding_},
                      {dilation_, dilation_});
  }
  at::Tensor weight;
  at::Tensor bias;

 private:
  std::int64_t stride_;
  std::int64_t padding_;
  std::int64_t dilation_;
};

/// Batch norm in evaluation mode whatever the module's mode: running statistics and affine are
/// fixed (the affine parameters have requires_grad = false and join no optimiser group).
class FrozenBatchNormImpl : public torch::nn::Module {
 public:
  explicit FrozenBatchNormImpl(std::int64_t channels) {
    weight = register_parameter("weight", at::ones({channels}), /*requires_grad=*/false);
    bias = register_parameter("bias", at::zeros({channels}), /*requires_grad=*/false);
    running_mean = register_buffer("running_mean", at::zeros({channels}));
    running_var = register_buffer("running_var", at::ones({channels}));
  }
  at::Tensor forward(const at::Tensor& x) {
    if (calibrating) {  // DeepLabImpl::calibrate_normalisation
      at::NoGradGuard no_grad;
      running_mean.copy_(x.mean({0, 2, 3}));
      running_var.copy_(x.var({0, 2, 3}, /*unbiased=*/false));
    }
    return at::batch_norm(x, weight, bias, running_mean, running_var, /*training=*/false,
                          /*momentum=*/0.0, kEps, /*cudnn_enabled=*/true);
  }
  static constexpr double kEps = 1e-5;  // deeplab-pytorch's (and Caffe's converted) epsilon
  at::Tensor weight;
  at::Tensor bias;
  at::Tensor running_mean;
  at::Tensor running_var;
  bool calibrating = false;
};

/// conv -> frozen bn -> optional relu, named `conv` and `bn` (deeplab-pytorch's _ConvBnReLU).
class ConvBnImpl : public torch::nn::Module {
 public:
  ConvBnImpl(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride,
             std::int64_t padding, std::int64_t dilation, bool relu)
      : relu_(relu) {
    conv = register_module(
        "conv", std::make_shared<ConvImpl>(in, out, kernel, stride, padding, dilation, false));
    bn = register_module("bn", std::make_shared<FrozenBatchNormImpl>(out));
  }
  at::Tensor forward(const at::Tensor& x) const {
    at::Tensor y = bn->forward(conv->forward(x));
    return relu_ ? at::relu_(y) : y;
  }
  std::shared_ptr<ConvImpl> conv;
  std::shared_ptr<FrozenBatchNormImpl> bn;

 private:
  bool relu_;
};

class BottleneckImpl : public torch::nn::Module {
 public:
  BottleneckImpl(std::int64_t in, std::int64_t out, std::int64_t stride, std::int64_t dilation,
                 bool downsample, ResNetLayout layout) {
    const std::int64_t mid = out / 4;
    const bool caffe = layout == ResNetLayout::kCaffe;
    reduce = register_module(
        "reduce", std::make_shared<ConvBnImpl>(in, mid, 1, caffe ? stride : 1, 0, 1, true));
    conv3x3 = register_module(
        "conv3x3",
        std::make_shared<ConvBnImpl>(mid, mid, 3, caffe ? 1 : stride, dilation, dilation, true));
    increase =
        register_module("increase", std::make_shared<ConvBnImpl>(mid, out, 1, 1, 0, 1, false));
    if (downsample) {
      shortcut = register_module("shortcut",
                                 std::make_shared<ConvBnImpl>(in, out, 1, stride, 0, 1, false));
    }
  }
  at::Tensor forward(const at::Tensor& x) const {
    at::Tensor h = increase->forward(conv3x3->forward(reduce->forward(x)));
    h.add_(shortcut ? shortcut->forward(x) : x);
    return at::relu_(h);
  }
  std::shared_ptr<ConvBnImpl> reduce;
  std::shared_ptr<ConvBnImpl> conv3x3;
  std::shared_ptr<ConvBnImpl> increase;
  std::shared_ptr<ConvBnImpl> shortcut;
};

class ResLayerImpl : public torch::nn::Module {
 public:
  ResLayerImpl(int blocks, std::int64_t in, std::int64_t out, std::int64_t stride,
               std::int64_t dilation, ResNetLayout layout) {
    for (int i = 0; i < blocks; ++i) {
      blocks_.push_back(register_module(
          fmt::format("block{}", i + 1),
          std::make_shared<BottleneckImpl>(i == 0 ? in : out, out, i == 0 ? stride : 1, dilation,
                                           i == 0, layout)));
    }
  }
  at::Tensor forward(at::Tensor x) const {
    for (const auto& block : blocks_) x = block->forward(x);
    return x;
  }
  const std::vector<std::shared_ptr<BottleneckImpl>>& blocks() const { return blocks_; }

 private:
  std::vector<std::shared_ptr<BottleneckImpl>> blocks_;
};

class StemImpl : public torch::nn::Module {
 public:
  StemImpl(std::int64_t out, ResNetLayout layout) : ceil_mode_(layout == ResNetLayout::kCaffe) {
    conv1 = register_module("conv1", std::make_shared<ConvBnImpl>(3, out, 7, 2, 3, 1, true));
  }
  at::Tensor forward(const at::Tensor& x) const {
    return at::max_pool2d(conv1->forward(x), {3, 3}, {2, 2}, {1, 1}, {1, 1}, ceil_mode_);
  }
  std::shared_ptr<ConvBnImpl> conv1;

 private:
  bool ceil_mode_;
};

class AsppImpl : public torch::nn::Module {
 public:
  AsppImpl(std::int64_t in, std::int64_t classes, const std::vector<int>& rates) {
    for (std::size_t i = 0; i < rates.size(); ++i) {
      stages_.push_back(
          register_module(fmt::format("c{}", i),
                          std::make_shared<ConvImpl>(in, classes, 3, 1, rates[i], rates[i], true)));
    }
  }
  at::Tensor forward(const at::Tensor& x) const {
    at::Tensor sum = stages_.front()->forward(x);
    for (std::size_t i = 1; i < stages_.size(); ++i) sum = sum + stages_[i]->forward(x);
    return sum;
  }
  const std::vector<std::shared_ptr<ConvImpl>>& stages() const { return stages_; }

 private:
  std::vector<std::shared_ptr<ConvImpl>> stages_;
};

}  // namespace

/// The plain DeepLab-v2 network (deeplab-pytorch's DeepLabV2): layer1 (stem), layer2..layer5,
/// aspp.
class DeepLabV2Impl : public torch::nn::Module {
 public:
  explicit DeepLabV2Impl(const DeepLabConfig& c) {
    const std::vector<int> blocks = resnet_blocks(c.depth);
    const std::int64_t w = c.width;
    layer1 = register_module("layer1", std::make_shared<StemImpl>(w, c.layout));
    // Output stride 8: layer3 halves, layer4 and layer5 dilate by 2 and 4 instead.
    stages.push_back(register_module(
        "layer2", std::make_shared<ResLayerImpl>(blocks[0], w, 4 * w, 1, 1, c.layout)));
    stages.push_back(register_module(
        "layer3", std::make_shared<ResLayerImpl>(blocks[1], 4 * w, 8 * w, 2, 1, c.layout)));
    stages.push_back(register_module(
        "layer4", std::make_shared<ResLayerImpl>(blocks[2], 8 * w, 16 * w, 1, 2, c.layout)));
    stages.push_back(register_module(
        "layer5", std::make_shared<ResLayerImpl>(blocks[3], 16 * w, 32 * w, 1, 4, c.layout)));
    aspp = register_module("aspp", std::make_shared<AsppImpl>(32 * w, c.num_classes, c.aspp_rates));
  }
  at::Tensor forward(const at::Tensor& x) const {
    at::Tensor h = layer1->forward(x);
    for (const auto& stage : stages) h = stage->forward(h);
    return aspp->forward(h);
  }

  std::shared_ptr<StemImpl> layer1;
  std::vector<std::shared_ptr<ResLayerImpl>> stages;
  std::shared_ptr<AsppImpl> aspp;
};

}  // namespace detail

namespace {

void init_from_scratch(detail::DeepLabV2Impl& net, int total_blocks, std::uint64_t seed) {
  at::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto he_normal = [&](at::Tensor& w) {  // fan_out, ReLU gain (torchvision's ResNet init)
    const double fan_out = static_cast<double>(w.size(0) * w.size(2) * w.size(3));
    w.normal_(0.0, std::sqrt(2.0 / fan_out), gen);
  };
  he_normal(net.layer1->conv1->conv->weight);
  const double branch_scale = 1.0 / std::sqrt(static_cast<double>(total_blocks));
  for (const auto& stage : net.stages) {
    for (const auto& block : stage->blocks()) {
      he_normal(block->reduce->conv->weight);
      he_normal(block->conv3x3->conv->weight);
      he_normal(block->increase->conv->weight);
      block->increase->bn->weight.fill_(branch_scale);
      if (block->shortcut) he_normal(block->shortcut->conv->weight);
    }
  }
  for (const auto& conv : net.aspp->stages()) {  // deeplab-pytorch's ASPP init
    conv->weight.normal_(0.0, 0.01, gen);
    conv->bias.zero_();
  }
}

std::int64_t conv_out(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t pad) {
  return (in + 2 * pad - kernel) / stride + 1;
}

}  // namespace

DeepLabImpl::DeepLabImpl(const DeepLabConfig& config, std::uint64_t seed) : config_(config) {
  const std::vector<int> blocks = resnet_blocks(config.depth);  // throws on a bad depth
  if (config.num_classes < 1 || config.width < 1 || config.aspp_rates.empty()) {
    throw Error(fmt::format("DeepLab: bad model config (classes {}, width {}, {} ASPP rates)",
                            config.num_classes, config.width, config.aspp_rates.size()));
  }
  base_ = register_module("base", std::make_shared<detail::DeepLabV2Impl>(config));
  init_from_scratch(*base_, blocks[0] + blocks[1] + blocks[2] + blocks[3], seed);
}

torch::nn::Module& DeepLabImpl::base() { return *base_; }

void DeepLabImpl::calibrate_normalisation(const at::Tensor& images) {
  std::vector<std::shared_ptr<detail::FrozenBatchNormImpl>> norms;
  for (const auto& m : base_->modules(/*include_self=*/false)) {
    if (auto bn = std::dynamic_pointer_cast<detail::FrozenBatchNormImpl>(m)) norms.push_back(bn);
  }
  for (auto& bn : norms) bn->calibrating = true;
  try {
    at::NoGradGuard no_grad;
    forward_single(images);
  } catch (...) {
    for (auto& bn : norms) bn->calibrating = false;
    throw;
  }
  for (auto& bn : norms) bn->calibrating = false;
}

std::int64_t DeepLabImpl::output_size(std::int64_t input_size) const {
  const std::int64_t stem = conv_out(input_size, 7, 2, 3);
  std::int64_t pooled = 0;
  if (config_.layout == ResNetLayout::kCaffe) {  // PyTorch's ceil-mode rule
    pooled = (stem + 2 - 3 + 1) / 2 + 1;
    if ((pooled - 1) * 2 >= stem + 1) --pooled;
  } else {
    pooled = conv_out(stem, 3, 2, 1);
  }
  return conv_out(pooled, 1, 2, 0);  // layer3's stride
}

at::Tensor DeepLabImpl::forward_single(const at::Tensor& image) {
  TORCH_CHECK(image.dim() == 4 && image.size(1) == 3, "DeepLab expects [N,3,H,W], got ",
              image.sizes());
  return base_->forward(image);
}

std::vector<at::Tensor> DeepLabImpl::forward_all(const at::Tensor& image) {
  at::Tensor logits = forward_single(image);
  if (!config_.msc) return {logits};
  const std::int64_t h = logits.size(2);
  const std::int64_t w = logits.size(3);
  std::vector<at::Tensor> outputs{logits};
  at::Tensor max = logits;
  for (double s : config_.msc_scales) {
    // As F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False).
    const auto sh = static_cast<std::int64_t>(std::floor(static_cast<double>(image.size(2)) * s));
    const auto sw = static_cast<std::int64_t>(std::floor(static_cast<double>(image.size(3)) * s));
    at::Tensor scaled = at::upsample_bilinear2d(image, {sh, sw}, false, s, s);
    at::Tensor l = base_->forward(scaled);
    outputs.push_back(l);
    max = at::max(max, at::upsample_bilinear2d(l, {h, w}, false));
  }
  outputs.push_back(max);
  return outputs;
}

at::Tensor DeepLabImpl::forward(const at::Tensor& image) {
  if (!config_.msc) return forward_single(image);
  return forward_all(image).back();
}

ParameterGroups DeepLabImpl::parameter_groups() const {
  ParameterGroups groups;
  for (const auto& item : base_->named_parameters(/*recurse=*/true)) {
    if (!item.value().requires_grad()) continue;  // frozen batch norm
    const std::string& name = item.key();
    if (name.rfind("aspp.", 0) == 0) {
      const bool is_bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
      (is_bias ? groups.classifier_biases : groups.classifier_weights).push_back(item.value());
    } else {
      groups.backbone_weights.push_back(item.value());
    }
  }
  return groups;
}

}  // namespace clipes::seg

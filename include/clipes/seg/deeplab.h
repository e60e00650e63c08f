#pragma once
/// DeepLab-v2 (spec §8): a dilated ResNet-50/101 (output stride 8, frozen batch norm) with the
/// ASPP classifier (3x3 convs at dilation 6/12/18/24, summed), wrapped by the multi-scale (MSC)
/// module. Included only by seg sources, seg tests, the train tool and the benchmark (it pulls in
/// torch/nn/module.h); the submodules live in deeplab.cpp.
///
/// Parameter names (the state dict) follow the widely used PyTorch port of DeepLab v2
/// (kazuto1011/deeplab-pytorch, whose MSC wrapper holds the network as `base`), so its files map
/// one to one after scripts/convert_init_weights.py:
///   base.layer1.conv1.conv.weight, base.layer1.conv1.bn.{weight,bias,running_mean,running_var}
///   base.layer{2..5}.block{j}.{reduce,conv3x3,increase,shortcut}.conv.weight   (j from 1;
///   base.layer{2..5}.block{j}.{reduce,conv3x3,increase,shortcut}.bn.*          shortcut: block1)
///   base.aspp.c{i}.{weight,bias}                                               (i from 0)
/// layer1 is the stem (7x7/2 conv + 3x3/2 max-pool), layer2..layer5 are the four bottleneck stages
/// (torchvision's layer1..layer4), reduce/conv3x3/increase are conv1/conv2/conv3 of a bottleneck
/// and shortcut is torchvision's downsample.

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "clipes/seg/seg_config.h"

namespace clipes::seg {

namespace detail {
class DeepLabV2Impl;
}  // namespace detail

/// The trainable parameters in DeepLab's optimiser groups (frozen batch norm is in none).
struct ParameterGroups {
  std::vector<at::Tensor> backbone_weights;    ///< ResNet conv weights: base LR, weight decay
  std::vector<at::Tensor> classifier_weights;  ///< ASPP conv weights: 10x LR, weight decay
  std::vector<at::Tensor> classifier_biases;   ///< ASPP biases: 20x LR, no weight decay
};

class DeepLabImpl : public torch::nn::Module {
 public:
  /// Builds the network with weights from scratch, drawn from a generator seeded with `seed`
  /// (He-normal convs, ASPP N(0, 0.01) with zero bias, identity batch norm except the last one
  /// of each residual branch, which scales by 1/sqrt(blocks) so that activations stay bounded).
  explicit DeepLabImpl(const DeepLabConfig& config, std::uint64_t seed = 0);

  /// Inference logits. image: [N,3,H,W] float32, normalised (InputConfig). Returns [N,C,h,w]
  /// with h = output_size(H): the scale-1 logits, or with MSC their pixel-wise max with the
  /// logits of each msc scale resized (bilinear) to h x w.
  at::Tensor forward(const at::Tensor& image);

  /// Training outputs: [scale 1, each msc scale at its own size, pixel-wise max] with MSC,
  /// [scale 1] without. The loss is summed over all of them (labels resized by nearest).
  std::vector<at::Tensor> forward_all(const at::Tensor& image);

  /// Logits of the plain network (no MSC) for one input: [N,C,output_size(H),output_size(W)].
  at::Tensor forward_single(const at::Tensor& image);

  /// Side of the logits for an input side (output stride 8, rounded as the layers round).
  std::int64_t output_size(std::int64_t input_size) const;

  /// The frozen normalisation of a network trained from scratch: one forward pass over
  /// `images` ([N,3,H,W], normalised input) in which each frozen batch norm, in order, takes the
  /// per-channel mean and variance of what reaches it as its running statistics. Every layer then
  /// starts at zero mean and unit variance (the last norm of each residual branch scaled by
  /// 1/sqrt(blocks)) whatever the input's scale: without it, Caffe's inputs (pixel - mean, std 1)
  /// pass identity norms unnormalised and the first losses explode.
  void calibrate_normalisation(const at::Tensor& images);

  ParameterGroups parameter_groups() const;
  const DeepLabConfig& config() const { return config_; }
  /// The plain network (the `base` submodule): the names the initial weights use.
  torch::nn::Module& base();

 private:
  DeepLabConfig config_;
  std::shared_ptr<detail::DeepLabV2Impl> base_;
};
TORCH_MODULE(DeepLab);

}  // namespace clipes::seg

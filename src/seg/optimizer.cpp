#include "clipes/seg/optimizer.h"

#include <torch/optim/sgd.h>

#include <cmath>

#include "clipes/seg/deeplab.h"

namespace clipes::seg {

double poly_learning_rate(double lr, std::int64_t step, std::int64_t total, double power) {
  const double progress = std::min(1.0, static_cast<double>(step) / static_cast<double>(total));
  return lr * std::pow(1.0 - progress, power);
}

std::unique_ptr<torch::optim::SGD> make_optimizer(DeepLabImpl& model, const OptimConfig& config) {
  ParameterGroups groups = model.parameter_groups();
  auto options = [&](double mult, double decay) {
    return std::make_unique<torch::optim::SGDOptions>(
        torch::optim::SGDOptions(config.lr * mult).momentum(config.momentum).weight_decay(decay));
  };
  std::vector<torch::optim::OptimizerParamGroup> param_groups;
  param_groups.emplace_back(groups.backbone_weights, options(1.0, config.weight_decay));
  param_groups.emplace_back(groups.classifier_weights,
                            options(config.lr_classifier_weight_mult, config.weight_decay));
  param_groups.emplace_back(groups.classifier_biases, options(config.lr_classifier_bias_mult, 0.0));
  return std::make_unique<torch::optim::SGD>(
      param_groups, torch::optim::SGDOptions(config.lr).momentum(config.momentum));
}

void set_learning_rate(torch::optim::SGD& optimizer, const OptimConfig& config, double lr) {
  const double mults[3] = {1.0, config.lr_classifier_weight_mult, config.lr_classifier_bias_mult};
  auto& groups = optimizer.param_groups();
  TORCH_INTERNAL_ASSERT(groups.size() == 3, "expected DeepLab's three parameter groups");
  for (std::size_t i = 0; i < groups.size(); ++i) {
    static_cast<torch::optim::SGDOptions&>(groups[i].options()).lr(lr * mults[i]);
  }
}

std::vector<double> group_learning_rates(const torch::optim::SGD& optimizer) {
  std::vector<double> out;
  for (const auto& group : optimizer.param_groups()) {
    out.push_back(static_cast<const torch::optim::SGDOptions&>(group.options()).lr());
  }
  return out;
}

}  // namespace clipes::seg

#pragma once
/// DeepLab's optimiser (spec §8): SGD with momentum over three parameter groups (backbone
/// weights at the base LR with weight decay, classifier weights at 10x with weight decay,
/// classifier biases at 20x without) and the poly learning-rate decay.

#include <cstdint>
#include <memory>
#include <vector>

#include "clipes/seg/seg_config.h"

namespace torch::optim {
class SGD;
}  // namespace torch::optim

namespace clipes::seg {

class DeepLabImpl;

/// lr * (1 - step / total)^power for the 0-based step (the LR of the first step is lr).
double poly_learning_rate(double lr, std::int64_t step, std::int64_t total, double power);

/// SGD over model.parameter_groups(), in that order: group 0 backbone weights (lr, weight_decay),
/// group 1 classifier weights (lr * lr_classifier_weight_mult, weight_decay), group 2 classifier
/// biases (lr * lr_classifier_bias_mult, no weight decay); momentum from the config, no dampening,
/// no Nesterov. Frozen batch-norm tensors are in no group.
std::unique_ptr<torch::optim::SGD> make_optimizer(DeepLabImpl& model, const OptimConfig& config);

/// Sets the groups' LRs for a base LR (the multipliers of `config` applied).
void set_learning_rate(torch::optim::SGD& optimizer, const OptimConfig& config, double lr);

/// The LR of each group, in group order.
std::vector<double> group_learning_rates(const torch::optim::SGD& optimizer);

}  // namespace clipes::seg

#include "clipes/seg/init_weights.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <map>

#include "clipes/core/error.h"
#include "clipes/io/files.h"
#include "clipes/seg/deeplab.h"

namespace clipes::seg {

namespace {

constexpr const char* kConvertHint =
    "convert it with scripts/convert_init_weights.py (python3 with torch)";

std::string strip_prefixes(std::string name) {
  for (bool changed = true; changed;) {
    changed = false;
    for (const char* prefix : {"module.", "base."}) {
      const std::string p(prefix);
      if (name.rfind(p, 0) == 0) {
        name = name.substr(p.size());
        changed = true;
      }
    }
  }
  return name;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string shape_text(const at::Tensor& t) {
  return fmt::format("[{}]", fmt::join(t.sizes(), ", "));
}

/// The file's tensors by (prefix-stripped) name, plus its declared layout.
std::map<std::string, at::Tensor> read_state_dict(const std::filesystem::path& file,
                                                  std::string* layout) {
  const std::string bytes = io::read_file(file);
  c10::IValue root;
  try {
    root = torch::jit::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
  } catch (const std::exception& e) {
    std::string why = e.what();
    why = why.substr(0, why.find('\n'));
    throw Error(fmt::format("init weights {}: LibTorch cannot read this file ({}); {}",
                            file.string(), why, kConvertHint));
  }
  if (!root.isGenericDict()) {
    throw Error(fmt::format("init weights {}: expected a dict of tensors, found {}; {}",
                            file.string(), root.tagKind(), kConvertHint));
  }
  c10::Dict<c10::IValue, c10::IValue> dict = root.toGenericDict();
  for (const auto& key : {"state_dict", "model"}) {
    auto it = dict.find(c10::IValue(std::string(key)));
    if (it != dict.end() && it->value().isGenericDict()) {
      auto layout_it = dict.find(c10::IValue(std::string("layout")));
      if (layout_it != dict.end() && layout_it->value().isString()) {
        *layout = layout_it->value().toStringRef();
      }
      dict = it->value().toGenericDict();
      break;
    }
  }
  std::map<std::string, at::Tensor> tensors;
  for (const auto& item : dict) {
    if (!item.key().isString()) continue;
    const std::string name = strip_prefixes(item.key().toStringRef());
    if (ends_with(name, "num_batches_tracked")) continue;
    if (!item.value().isTensor()) {
      throw Error(fmt::format("init weights {}: entry {} is a {}, expected a tensor; {}",
                              file.string(), item.key().toStringRef(), item.value().tagKind(),
                              kConvertHint));
    }
    tensors[name] = item.value().toTensor();
  }
  return tensors;
}

}  // namespace

InitWeightsReport load_init_weights(DeepLabImpl& model, const std::filesystem::path& file) {
  InitWeightsReport report;
  std::map<std::string, at::Tensor> tensors = read_state_dict(file, &report.layout);
  const std::string model_layout(to_string(model.config().layout));
  if (!report.layout.empty() && report.layout != model_layout) {
    throw Error(
        fmt::format("init weights {}: the file holds a {}-layout ResNet but the model is {} "
                    "(set model.layout to \"{}\")",
                    file.string(), report.layout, model_layout, report.layout));
  }

  // Everything the model's base has, parameters and buffers.
  std::vector<std::pair<std::string, at::Tensor>> targets;
  for (const auto& item : model.base().named_parameters(true))
    targets.emplace_back(item.key(), item.value());
  for (const auto& item : model.base().named_buffers(true))
    targets.emplace_back(item.key(), item.value());

  std::vector<std::string> missing;
  std::vector<std::string> misshaped;
  std::vector<std::pair<at::Tensor, at::Tensor>> backbone_copies;
  std::vector<std::pair<at::Tensor, at::Tensor>> classifier_copies;
  std::vector<std::string> classifier_problems;
  for (const auto& [name, target] : targets) {
    const bool classifier = name.rfind("aspp.", 0) == 0;
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      (classifier ? classifier_problems : missing).push_back(name + " (missing)");
      continue;
    }
    if (!it->second.sizes().equals(target.sizes())) {
      const std::string what = fmt::format("{} (expected {}, found {})", name, shape_text(target),
                                           shape_text(it->second));
      (classifier ? classifier_problems : misshaped).push_back(what);
    } else {
      (classifier ? classifier_copies : backbone_copies).emplace_back(target, it->second);
    }
    tensors.erase(it);
  }
  if (!missing.empty() || !misshaped.empty()) {
    std::string message = fmt::format(
        "init weights {}: {} missing and {} mis-shaped tensors for "
        "a ResNet-{} of width {}",
        file.string(), missing.size(), misshaped.size(), model.config().depth,
        model.config().width);
    if (!missing.empty()) message += fmt::format("; missing: {}", fmt::join(missing, ", "));
    if (!misshaped.empty()) message += fmt::format("; mis-shaped: {}", fmt::join(misshaped, ", "));
    throw Error(message);
  }
  at::NoGradGuard no_grad;
  for (auto& [target, source] : backbone_copies) target.copy_(source);
  report.backbone_tensors = static_cast<std::int64_t>(backbone_copies.size());
  if (classifier_problems.empty()) {
    for (auto& [target, source] : classifier_copies) target.copy_(source);
    report.classifier_loaded = true;
  } else {
    report.classifier_note =
        fmt::format("ASPP kept from scratch: {}", fmt::join(classifier_problems, ", "));
  }
  for (const auto& item : tensors) report.unused.push_back(item.first);
  return report;
}

}  // namespace clipes::seg

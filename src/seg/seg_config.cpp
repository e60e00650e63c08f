#include "clipes/seg/seg_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>

#include "clipes/core/error.h"
#include "clipes/core/json_reader.h"
#include "clipes/crf/crf_config.h"
#include "clipes/data/image.h"

namespace clipes::seg {

namespace {

TrainConfig read_config(const nlohmann::json& root, const std::string& source) {
  TrainConfig c;
  config::JsonObjectReader reader(root, source);
  config::read_fields(reader, c);
  reader.finish();
  return c;
}

nlohmann::json to_json(const TrainConfig& c) { return config::to_json_value(c); }

std::string first_difference(const nlohmann::json& a, const nlohmann::json& b,
                             const std::string& path) {
  if (a.is_object() && b.is_object()) {
    for (const auto& item : a.items()) {
      const std::string sub = path.empty() ? item.key() : path + "." + item.key();
      if (!b.contains(item.key())) return sub;
      auto d = first_difference(item.value(), b.at(item.key()), sub);
      if (!d.empty()) return d;
    }
    for (const auto& item : b.items()) {
      if (!a.contains(item.key())) return path.empty() ? item.key() : path + "." + item.key();
    }
    return "";
  }
  return a == b ? "" : (path.empty() ? "(document)" : path);
}

}  // namespace

std::vector<int> resnet_blocks(int depth) {
  if (depth == 14) return {1, 1, 1, 1};  // configs/train-tiny.json: tests and smoke runs
  if (depth == 50) return {3, 4, 6, 3};
  if (depth == 101) return {3, 4, 23, 3};
  throw Error(fmt::format("ResNet depth must be 14, 50 or 101, got {}", depth));
}

void validate(const TrainConfig& c, const std::string& source) {
  config::Validator v(source);
  v.check(c.model.num_classes >= 2, "model.num_classes", "must be >= 2", c.model.num_classes);
  v.check(c.model.num_classes <= 255, "model.num_classes", "must be <= 255 (255 = ignore)",
          c.model.num_classes);
  v.check(c.model.depth == 14 || c.model.depth == 50 || c.model.depth == 101, "model.depth",
          "must be 14, 50 or 101",
          c.model.depth);
  v.check(c.model.width >= 1 && c.model.width <= 512, "model.width", "must be in 1..512",
          c.model.width);
  v.check(!c.model.aspp_rates.empty(), "model.aspp_rates", "must hold at least one rate");
  for (int rate : c.model.aspp_rates) {
    v.check(rate >= 1, "model.aspp_rates", "must hold rates >= 1", rate);
  }
  for (double s : c.model.msc_scales) {
    v.check(s > 0 && s <= 1, "model.msc_scales", "must hold scales in (0, 1]", s);
  }
  v.check(!c.model.msc || !c.model.msc_scales.empty(), "model.msc_scales",
          "must not be empty when model.msc is true");
  v.check(c.input.mean.size() == 3, "input.mean", "must hold 3 values", c.input.mean.size());
  v.check(c.input.std.size() == 3, "input.std", "must hold 3 values", c.input.std.size());
  for (float s : c.input.std) v.check(s > 0, "input.std", "must hold values > 0", s);
  v.check(c.input.exif_orientation.empty() ||
              data::parse_exif_orientation(c.input.exif_orientation).has_value(),
          "input.exif_orientation",
          fmt::format("must be {} (that of the masks' run)",
                      config::enum_choices<data::ExifOrientation>("\"\"")),
          c.input.exif_orientation);
  v.check(!c.data.scales.empty(), "data.scales", "must hold at least one scale");
  for (double s : c.data.scales) {
    v.check(s > 0 && s <= 8, "data.scales", "must hold scales in (0, 8]", s);
  }
  v.check(c.data.crop_size >= 16, "data.crop_size", "must be >= 16", c.data.crop_size);
  crf::validate_confidence_threshold(c.data.confidence_threshold, v, "data.confidence_threshold");
  v.check(c.data.workers >= 0 && c.data.workers <= 64, "data.workers", "must be in 0..64",
          c.data.workers);
  v.check(c.data.prefetch >= 1 && c.data.prefetch <= 16, "data.prefetch", "must be in 1..16",
          c.data.prefetch);
  v.check(c.optim.lr > 0, "optim.lr", "must be > 0", c.optim.lr);
  v.check(c.optim.lr_poly_power >= 0, "optim.lr_poly_power", "must be >= 0", c.optim.lr_poly_power);
  v.check(c.optim.lr_classifier_weight_mult > 0, "optim.lr_classifier_weight_mult", "must be > 0",
          c.optim.lr_classifier_weight_mult);
  v.check(c.optim.lr_classifier_bias_mult > 0, "optim.lr_classifier_bias_mult", "must be > 0",
          c.optim.lr_classifier_bias_mult);
  v.check(c.optim.momentum >= 0 && c.optim.momentum < 1, "optim.momentum", "must be in [0, 1)",
          c.optim.momentum);
  v.check(c.optim.weight_decay >= 0, "optim.weight_decay", "must be >= 0", c.optim.weight_decay);
  v.check(c.optim.batch_size >= 1, "optim.batch_size", "must be >= 1", c.optim.batch_size);
  v.check(c.optim.iter_size >= 1, "optim.iter_size", "must be >= 1", c.optim.iter_size);
  v.check(c.optim.iterations >= 1, "optim.iterations", "must be >= 1", c.optim.iterations);
  v.check(c.checkpoint_every >= 1, "checkpoint_every", "must be >= 1", c.checkpoint_every);
  v.check(c.log_every >= 1, "log_every", "must be >= 1", c.log_every);
}

TrainConfig parse_train_config(std::string_view json_text, const std::string& source) {
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(fmt::format("{}: invalid JSON ({})", source, e.what()));
  }
  TrainConfig c = read_config(root, source);
  validate(c, source);
  return c;
}

TrainConfig load_train_config(const std::filesystem::path& file,
                              const std::vector<std::string>& overrides) {
  nlohmann::json root = config::load_json_file(file);
  for (const auto& o : overrides) config::apply_override(root, o);
  const std::string source = overrides.empty() ? file.string()
                                               : fmt::format("{} (with --set {})", file.string(),
                                                             fmt::join(overrides, ", "));
  TrainConfig c = read_config(root, source);
  validate(c, source);
  return c;
}

std::string dump_train_config(const TrainConfig& config) { return to_json(config).dump(2); }

std::string first_config_difference(const TrainConfig& a, const TrainConfig& b) {
  nlohmann::json ja = to_json(a);
  nlohmann::json jb = to_json(b);
  for (auto* j : {&ja, &jb}) {
    (*j)["data"].erase("workers");
    (*j)["data"].erase("prefetch");
    j->erase("log_every");
  }
  return first_difference(ja, jb, "");
}

}  // namespace clipes::seg

#include "clipes/pipeline/generate_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

#include "clipes/core/error.h"
#include "clipes/clip/activation.h"
#include "clipes/core/json_reader.h"
#include "clipes/data/class_names.h"

namespace clipes::pipeline {

namespace {


std::string json_quoted(std::string_view s) { return nlohmann::json(std::string(s)).dump(); }

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool has_outer_space(std::string_view s) {
  return !s.empty() && (std::isspace(static_cast<unsigned char>(s.front())) != 0 ||
                        std::isspace(static_cast<unsigned char>(s.back())) != 0);
}

// "", ".jpg", ".jpg|.png": each '|'-separated part empty or starting with '.' and without '/'.
bool valid_image_ext(std::string_view ext) {
  std::size_t start = 0;
  while (true) {
    const auto bar = ext.find('|', start);
    const auto part = ext.substr(start, bar == std::string_view::npos ? bar : bar - start);
    if (!part.empty() && part.front() != '.') return false;
    if (part.find('/') != std::string_view::npos) return false;
    if (bar == std::string_view::npos) return true;
    start = bar + 1;
  }
}

// Number of "{}" in the template, or -1 when it holds any other brace.
int placeholder_count(std::string_view t) {
  int count = 0;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '{' && i + 1 < t.size() && t[i + 1] == '}') {
      ++count;
      ++i;
    } else if (t[i] == '{' || t[i] == '}') {
      return -1;
    }
  }
  return count;
}

}  // namespace

std::vector<std::string> GenerateConfig::class_names() const {
  std::vector<std::string> names;
  names.reserve(classes.size());
  for (const auto& c : classes) names.push_back(c.name);
  return names;
}

GenerateConfig read_generate_config(const nlohmann::json& document, const std::string& source) {
  GenerateConfig c;
  config::JsonObjectReader reader(document, source);
  config::read_fields(reader, c);
  reader.finish();
  for (auto& cls : c.classes) {
    if (cls.prompt.empty()) cls.prompt = cls.name;
  }
  return c;
}

namespace {

void validate_classes(const std::vector<ClassConfig>& classes, const config::Validator& v) {
  v.check(!classes.empty(), "classes", "must list at least one class");
  v.check(classes.size() <= 254, "classes",
          "must list at most 254 classes (mask values 1..254; 255 marks ignored pixels)",
          classes.size());
  std::map<std::string, std::size_t> seen;
  for (std::size_t i = 0; i < classes.size(); ++i) {
    const std::string path = fmt::format("classes[{}].name", i);
    const std::string& name = classes[i].name;
    v.check(!name.empty(), path, "must not be empty");
    v.check(!has_outer_space(name), path, "must not start or end with white space",
            json_quoted(name));
    v.check(!all_digits(name), path,
            "must not be only digits (labels files read such tokens as class indices)",
            json_quoted(name));
    std::string key = name;
    std::replace(key.begin(), key.end(), ' ', '_');
    const auto [it, inserted] = seen.emplace(key, i);
    v.check(inserted, path,
            fmt::format("must differ from classes[{}].name (also with spaces written as '_')",
                        inserted ? i : it->second),
            json_quoted(name));
  }
}

void validate_background(const std::vector<std::string>& background, const config::Validator& v) {
  v.check(!background.empty(), "background",
          "must list at least one word (with none, the softmax of an image with one label is "
          "constant and its CAM is zero)");
  for (std::size_t i = 0; i < background.size(); ++i) {
    const std::string path = fmt::format("background[{}]", i);
    v.check(!background[i].empty(), path, "must not be empty");
    for (std::size_t j = 0; j < i; ++j) {
      v.check(background[j] != background[i], path,
              fmt::format("must differ from background[{}]", j), json_quoted(background[i]));
    }
  }
}

void validate_dataset(const data::DatasetConfig& dataset, const config::Validator& v) {
  v.check(!dataset.images.empty(), "images", "must not be empty");
  v.check(valid_image_ext(dataset.image_ext), "image_ext",
          "must be an extension starting with '.', or several separated by '|' (\".jpg|.png\")",
          json_quoted(dataset.image_ext));
  switch (dataset.layout) {
    case data::DatasetLayout::kVoc:
      v.check(!dataset.labels.empty() || !dataset.split.empty(), "split",
              "must be set for the voc layout when dataset.labels is empty (the XML "
              "annotations are read for the split's ids)");
      v.check(!dataset.labels.empty() || !dataset.annotations.empty(), "annotations",
              "must be set for the voc layout when dataset.labels is empty");
      break;
    case data::DatasetLayout::kCoco:
      v.check(!dataset.labels.empty() || !dataset.instances.empty(), "instances",
              "must be set for the coco layout when dataset.labels is empty");
      break;
    case data::DatasetLayout::kCustom:
      v.check(!dataset.labels.empty(), "labels",
              "must be set for the custom layout (a labels file `<id> <class> ...`)");
      break;
  }
}

void validate_model(const GenerateConfig& c, const config::Validator& v) {
  v.check(!c.model.empty(), "model", "must not be empty");
  v.check(c.model_act.empty() || config::parse_enum<clip::Activation>(c.model_act), "model_act",
          fmt::format("must be {} (from the checkpoint)",
                      config::enum_choices<clip::Activation>("empty")),
          c.model_act);
  v.check(c.model_heads.empty() || (c.model_heads.size() == 2 && c.model_heads[0] > 0 &&
                                    c.model_heads[1] > 0),
          "model_heads", "must be [vision heads, text heads] (two positive numbers) or empty",
          fmt::format("[{}]", fmt::join(c.model_heads, ",")));
  v.check(!c.vocab.empty(), "vocab", "must not be empty");
}

void validate_input(const InputConfig& input, const config::Validator& v) {
  v.check(input.max_side == 0 || input.max_side >= 16, "max_side", "must be 0 (off) or >= 16",
          input.max_side);
  v.check(input.max_tokens >= 1, "max_tokens", "must be >= 1", input.max_tokens);
}

void validate_outputs(const OutputsConfig& outputs, const config::Validator& v) {
  v.check(outputs.masks || outputs.cams, "outputs",
          "must ask for something: outputs.masks and outputs.cams are both false");
  v.check(!outputs.overlays || outputs.masks, "outputs.overlays",
          "needs outputs.masks (an overlay shows the pseudo mask)");
}

}  // namespace

void validate_classes(const std::vector<ClassConfig>& classes, const std::string& source) {
  validate_classes(classes, config::Validator(source));
}

std::vector<std::string> read_config_class_names(const std::filesystem::path& file) {
  const GenerateConfig c = read_generate_config(config::load_json_file(file), file.string());
  validate_classes(c.classes, file.string());
  return data::with_background(c.class_names());
}

void GenerateConfig::validate(const std::string& source) const {
  const config::Validator v(source);
  v.check(placeholder_count(prompt_template) == 1, "template",
          "must hold exactly one {} and no other brace", json_quoted(prompt_template));
  validate_classes(classes, v);
  validate_background(background, v);
  validate_dataset(dataset, v.nested("dataset"));
  validate_model(*this, v);
  validate_input(input, v.nested("input"));
  cam::validate(cam, v.nested("cam"));
  cam::validate(caa, v.nested("caa"));
  crf::validate(crf, v.nested("crf"));
  crf::validate_confidence_threshold(mask.confidence_threshold, v, "mask.confidence_threshold");
  validate_outputs(outputs, v);
}

GenerateConfig load_generate_config(const std::filesystem::path& file,
                                    const std::vector<std::string>& overrides) {
  nlohmann::json document = config::load_json_file(file);
  for (const auto& assignment : overrides) config::apply_override(document, assignment);
  std::string source = file.string();
  if (!overrides.empty()) {
    source += fmt::format(" (with --set {})", fmt::join(overrides, " --set "));
  }
  GenerateConfig config = read_generate_config(document, source);
  config.validate(source);
  return config;
}

nlohmann::json to_json(const GenerateConfig& c) { return config::to_json_value(c); }

std::string format_prompt(std::string_view prompt_template, std::string_view text) {
  if (placeholder_count(prompt_template) != 1) {
    throw Error(fmt::format("prompt template {} must hold exactly one {{}} and no other brace",
                            json_quoted(prompt_template)));
  }
  const auto at = prompt_template.find("{}");
  std::string sentence(prompt_template.substr(0, at));
  sentence += text;
  sentence += prompt_template.substr(at + 2);
  return sentence;
}

PromptTexts build_prompt_texts(const GenerateConfig& config) {
  PromptTexts texts;
  for (const auto& cls : config.classes) {
    texts.foreground.push_back(
        format_prompt(config.prompt_template, cls.prompt.empty() ? cls.name : cls.prompt));
  }
  for (const auto& word : config.background) {
    texts.background.push_back(format_prompt(config.prompt_template, word));
  }
  return texts;
}

InputSize plan_input_size(int width, int height, const InputConfig& config, int patch) {
  if (width < 1 || height < 1) {
    throw Error(fmt::format("image size {}x{}: expected at least 1x1 pixels", width, height));
  }
  InputSize size{width, height, false, 0};
  const int longer = std::max(width, height);
  if (config.max_side > 0 && longer > config.max_side) {
    const double scale = static_cast<double>(config.max_side) / longer;
    size.width = std::max(1, static_cast<int>(std::lround(width * scale)));
    size.height = std::max(1, static_cast<int>(std::lround(height * scale)));
    size.downscaled = true;
  }
  const std::int64_t cols = (size.width + patch - 1) / patch;
  const std::int64_t rows = (size.height + patch - 1) / patch;
  size.tokens = rows * cols;
  if (size.tokens > config.max_tokens) {
    const double gib = 4.0 * static_cast<double>(size.tokens) * static_cast<double>(size.tokens) /
                       (1024.0 * 1024.0 * 1024.0);
    throw Error(fmt::format(
        "image {}x{}{} gives {} patch tokens ({}x{} patches of {} px), above input.max_tokens = "
        "{} (each attention map takes 4·N² bytes: {:.1f} GiB here); set input.max_side (e.g. "
        "--set input.max_side=1024) to downscale large images first, or raise "
        "input.max_tokens",
        width, height,
        size.downscaled ? fmt::format(" (downscaled to {}x{})", size.width, size.height) : "",
        size.tokens, cols, rows, patch, config.max_tokens, gib));
  }
  return size;
}

}  // namespace clipes::pipeline

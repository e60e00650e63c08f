#include "clipes/pipeline/generate_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <map>

#include "clipes/core/error.h"
#include "clipes/core/json_reader.h"

namespace clipes::pipeline {

namespace {


std::string json_quoted(std::string_view s) { return nlohmann::json(std::string(s)).dump(); }

// A float as the shortest decimal that reads back to it (0.4f -> 0.4, not 0.4000000059604645).
double shortest(float value) { return std::stod(fmt::format("{}", value)); }

// Reads a string field that must be one of `names`; returns its index in `names`.
template <class Enum, std::size_t N>
void enum_field(config::JsonObjectReader& reader, std::string_view key, Enum& out,
                const std::array<std::pair<std::string_view, Enum>, N>& names) {
  std::string text;
  for (const auto& [name, value] : names) {
    if (value == out) text = std::string(name);
  }
  reader.field(key, text);
  for (const auto& [name, value] : names) {
    if (text == name) {
      out = value;
      return;
    }
  }
  std::vector<std::string_view> allowed;
  for (const auto& item : names) allowed.push_back(item.first);
  reader.fail(
      key, fmt::format("must be one of {}, got {}", fmt::join(allowed, ", "), json_quoted(text)));
}

constexpr std::array<std::pair<std::string_view, data::DatasetLayout>, 3> kLayouts{{
    {"voc", data::DatasetLayout::kVoc},
    {"coco", data::DatasetLayout::kCoco},
    {"custom", data::DatasetLayout::kCustom},
}};
constexpr std::array<std::pair<std::string_view, crf::CrfImageMode>, 2> kCrfImages{{
    {"rgb", crf::CrfImageMode::kRgb},
    {"reference", crf::CrfImageMode::kReference},
}};
constexpr std::array<std::pair<std::string_view, CamDtype>, 2> kCamDtypes{{
    {"float16", CamDtype::kFloat16},
    {"float32", CamDtype::kFloat32},
}};

constexpr std::array<std::pair<std::string_view, data::ExifOrientation>, 2> kExifPolicies{{
    {"stored", data::ExifOrientation::kStored},
    {"apply", data::ExifOrientation::kApply},
}};

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

std::string_view to_string(CamDtype dtype) {
  return dtype == CamDtype::kFloat32 ? "float32" : "float16";
}

std::optional<CamDtype> parse_cam_dtype(std::string_view text) {
  for (const auto& [name, value] : kCamDtypes) {
    if (text == name) return value;
  }
  return std::nullopt;
}

std::vector<std::string> GenerateConfig::class_names() const {
  std::vector<std::string> names;
  names.reserve(classes.size());
  for (const auto& c : classes) names.push_back(c.name);
  return names;
}

GenerateConfig read_generate_config(const nlohmann::json& document, const std::string& source) {
  GenerateConfig c;
  config::JsonObjectReader r(document, source);
  r.field("name", c.name);
  r.field("template", c.prompt_template);
  const nlohmann::json& classes = r.raw("classes");
  if (!classes.is_null()) {
    if (!classes.is_array()) {
      r.fail("classes", fmt::format("must be an array of {{\"name\": ..., \"prompt\": ...}} "
                                    "objects, got {} {}",
                                    config::json_type_name(classes), classes.dump()));
    }
    for (std::size_t i = 0; i < classes.size(); ++i) {
      config::JsonObjectReader cr(classes[i], source, fmt::format("classes[{}]", i));
      ClassConfig cls;
      cr.required("name", cls.name);
      cr.field("prompt", cls.prompt);
      cr.finish();
      if (cls.prompt.empty()) cls.prompt = cls.name;
      c.classes.push_back(std::move(cls));
    }
  }
  r.field("background", c.background);

  auto d = r.object("dataset");
  enum_field(d, "layout", c.dataset.layout, kLayouts);
  d.field("root", c.dataset.root);
  d.field("images", c.dataset.images);
  d.field("image_ext", c.dataset.image_ext);
  d.field("split", c.dataset.split);
  d.field("labels", c.dataset.labels);
  d.field("annotations", c.dataset.annotations);
  d.field("instances", c.dataset.instances);
  d.finish();

  r.field("model", c.model);
  r.field("model_config", c.model_config);
  r.field("model_act", c.model_act);
  r.field("model_heads", c.model_heads);
  r.field("vocab", c.vocab);

  auto input = r.object("input");
  input.field("max_side", c.input.max_side);
  input.field("max_tokens", c.input.max_tokens);
  enum_field(input, "exif_orientation", c.input.exif_orientation, kExifPolicies);
  input.finish();

  auto cam = r.object("cam");
  cam.field("attention_blocks", c.cam.attention_blocks);
  cam.finish();

  auto caa = r.object("caa");
  caa.field("box_threshold", c.caa.box_threshold);
  caa.field("sinkhorn_rounds", c.caa.sinkhorn_rounds);
  caa.field("power", c.caa.power);
  caa.field("explicit_power", c.caa.explicit_power);
  caa.finish();

  auto crf = r.object("crf");
  crf.field("iterations", c.mask.crf.iterations);
  crf.field("pos_std", c.mask.crf.pos_std);
  crf.field("pos_weight", c.mask.crf.pos_weight);
  crf.field("bilateral_std", c.mask.crf.bilateral_std);
  crf.field("bilateral_rgb_std", c.mask.crf.bilateral_rgb_std);
  crf.field("bilateral_weight", c.mask.crf.bilateral_weight);
  enum_field(crf, "image", c.mask.crf.image, kCrfImages);
  crf.finish();

  auto mask = r.object("mask");
  mask.field("confidence_threshold", c.mask.confidence_threshold);
  mask.finish();

  auto outputs = r.object("outputs");
  outputs.field("masks", c.outputs.masks);
  outputs.field("cams", c.outputs.cams);
  enum_field(outputs, "cam_dtype", c.outputs.cam_dtype, kCamDtypes);
  outputs.field("overlays", c.outputs.overlays);
  outputs.field("labels", c.outputs.labels);
  outputs.finish();

  r.finish();
  return c;
}

void GenerateConfig::validate(const std::string& source) const {
  const config::Validator v(source);
  v.check(placeholder_count(prompt_template) == 1, "template",
          "must hold exactly one {} and no other brace", json_quoted(prompt_template));
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
  v.check(!dataset.images.empty(), "dataset.images", "must not be empty");
  v.check(valid_image_ext(dataset.image_ext), "dataset.image_ext",
          "must be an extension starting with '.', or several separated by '|' (\".jpg|.png\")",
          json_quoted(dataset.image_ext));
  switch (dataset.layout) {
    case data::DatasetLayout::kVoc:
      v.check(!dataset.labels.empty() || !dataset.split.empty(), "dataset.split",
              "must be set for the voc layout when dataset.labels is empty (the XML "
              "annotations are read for the split's ids)");
      v.check(!dataset.labels.empty() || !dataset.annotations.empty(), "dataset.annotations",
              "must be set for the voc layout when dataset.labels is empty");
      break;
    case data::DatasetLayout::kCoco:
      v.check(!dataset.labels.empty() || !dataset.instances.empty(), "dataset.instances",
              "must be set for the coco layout when dataset.labels is empty");
      break;
    case data::DatasetLayout::kCustom:
      v.check(!dataset.labels.empty(), "dataset.labels",
              "must be set for the custom layout (a labels file `<id> <class> ...`)");
      break;
  }
  v.check(!model.empty(), "model", "must not be empty");
  v.check(model_act.empty() || model_act == "quick_gelu" || model_act == "gelu", "model_act",
          "must be \"quick_gelu\", \"gelu\" or empty (from the checkpoint)", model_act);
  v.check(model_heads.empty() || (model_heads.size() == 2 && model_heads[0] > 0 &&
                                  model_heads[1] > 0),
          "model_heads", "must be [vision heads, text heads] (two positive numbers) or empty",
          nlohmann::json(model_heads).dump());
  v.check(!vocab.empty(), "vocab", "must not be empty");
  v.check(input.max_side == 0 || input.max_side >= 16, "input.max_side", "must be 0 (off) or >= 16",
          input.max_side);
  v.check(input.max_tokens >= 1, "input.max_tokens", "must be >= 1", input.max_tokens);
  v.check(cam.attention_blocks >= 1, "cam.attention_blocks", "must be >= 1", cam.attention_blocks);
  v.check(caa.box_threshold >= 0.0f && caa.box_threshold <= 1.0f, "caa.box_threshold",
          "must be in [0, 1]", caa.box_threshold);
  v.check(caa.sinkhorn_rounds >= 1, "caa.sinkhorn_rounds", "must be >= 1", caa.sinkhorn_rounds);
  v.check(caa.power >= 1, "caa.power", "must be >= 1", caa.power);
  crf::validate(mask.crf, source, "crf");
  v.check(mask.confidence_threshold >= 0.0f && mask.confidence_threshold <= 1.0f,
          "mask.confidence_threshold", "must be in [0, 1]", mask.confidence_threshold);
  v.check(outputs.masks || outputs.cams, "outputs",
          "must ask for something: outputs.masks and outputs.cams are both false");
  v.check(!outputs.overlays || outputs.masks, "outputs.overlays",
          "needs outputs.masks (an overlay shows the pseudo mask)");
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

nlohmann::json to_json(const GenerateConfig& c) {
  nlohmann::json j;
  j["name"] = c.name;
  j["template"] = c.prompt_template;
  j["classes"] = nlohmann::json::array();
  for (const auto& cls : c.classes)
    j["classes"].push_back({{"name", cls.name}, {"prompt", cls.prompt}});
  j["background"] = c.background;
  j["dataset"] = {{"layout", std::string(data::to_string(c.dataset.layout))},
                  {"root", c.dataset.root},
                  {"images", c.dataset.images},
                  {"image_ext", c.dataset.image_ext},
                  {"split", c.dataset.split},
                  {"labels", c.dataset.labels},
                  {"annotations", c.dataset.annotations},
                  {"instances", c.dataset.instances}};
  j["model"] = c.model;
  j["model_config"] = c.model_config;
  j["model_act"] = c.model_act;
  j["model_heads"] = c.model_heads;
  j["vocab"] = c.vocab;
  j["input"] = {{"max_side", c.input.max_side},
                {"max_tokens", c.input.max_tokens},
                {"exif_orientation", std::string(data::to_string(c.input.exif_orientation))}};
  j["cam"] = {{"attention_blocks", c.cam.attention_blocks}};
  j["caa"] = {{"box_threshold", shortest(c.caa.box_threshold)},
              {"sinkhorn_rounds", c.caa.sinkhorn_rounds},
              {"power", c.caa.power},
              {"explicit_power", c.caa.explicit_power}};
  const crf::CrfConfig& crf = c.mask.crf;
  j["crf"] = {{"iterations", crf.iterations},
              {"pos_std", shortest(crf.pos_std)},
              {"pos_weight", shortest(crf.pos_weight)},
              {"bilateral_std", shortest(crf.bilateral_std)},
              {"bilateral_rgb_std", shortest(crf.bilateral_rgb_std)},
              {"bilateral_weight", shortest(crf.bilateral_weight)},
              {"image", std::string(crf::to_string(crf.image))}};
  j["mask"] = {{"confidence_threshold", shortest(c.mask.confidence_threshold)}};
  j["outputs"] = {{"masks", c.outputs.masks},
                  {"cams", c.outputs.cams},
                  {"cam_dtype", std::string(to_string(c.outputs.cam_dtype))},
                  {"overlays", c.outputs.overlays},
                  {"labels", c.outputs.labels}};
  return j;
}

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

#include "clipes/data/mask_files.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "clipes/core/error.h"
#include "clipes/io/files.h"

namespace clipes::data {

namespace fs = std::filesystem;

io::Palette mask_palette() { return io::voc_palette(); }

std::uint16_t encode_confidence(float confidence) {
  const float v = std::isnan(confidence) ? 0.0f : std::clamp(confidence, 0.0f, 1.0f);
  return static_cast<std::uint16_t>(std::lround(static_cast<double>(v) * kConfidenceScale));
}

float decode_confidence(std::uint16_t stored) {
  return static_cast<float>(stored / kConfidenceScale);
}

cv::Mat encode_confidence_map(const cv::Mat& confidence) {
  if (confidence.type() != CV_32FC1) throw Error("encode_confidence_map: expected CV_32FC1");
  cv::Mat stored(confidence.size(), CV_16UC1);
  for (int y = 0; y < confidence.rows; ++y) {
    const float* in = confidence.ptr<float>(y);
    auto* out = stored.ptr<std::uint16_t>(y);
    for (int x = 0; x < confidence.cols; ++x) out[x] = encode_confidence(in[x]);
  }
  return stored;
}

void ignore_below_threshold(cv::Mat& labels, const cv::Mat& stored_confidence, float mu) {
  if (labels.type() != CV_8UC1 || stored_confidence.type() != CV_16UC1 ||
      labels.size() != stored_confidence.size()) {
    throw Error(fmt::format(
        "ignore_below_threshold: expected labels CV_8UC1 and confidence CV_16UC1 of one size, "
        "got {}x{} and {}x{}",
        labels.cols, labels.rows, stored_confidence.cols, stored_confidence.rows));
  }
  const std::uint16_t threshold = encode_confidence(mu);
  for (int y = 0; y < labels.rows; ++y) {
    std::uint8_t* l = labels.ptr<std::uint8_t>(y);
    const auto* c = stored_confidence.ptr<std::uint16_t>(y);
    for (int x = 0; x < labels.cols; ++x) {
      if (c[x] < threshold) l[x] = static_cast<std::uint8_t>(kIgnoreLabel);
    }
  }
}

namespace {

// run.json in `parent`, else its first run-IofN.json; empty when there is neither.
fs::path run_record_in(const fs::path& parent) {
  if (fs::is_regular_file(parent / "run.json")) return parent / "run.json";
  std::vector<fs::path> shards;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("run-", 0) == 0 && entry.path().extension() == ".json" &&
        name.find("of") != std::string::npos) {
      shards.push_back(entry.path());
    }
  }
  std::sort(shards.begin(), shards.end());
  return shards.empty() ? fs::path() : shards.front();
}

}  // namespace

std::optional<MaskRun> find_mask_run(const fs::path& masks_dir) {
  // masks_dir may end with a '/': normalise "out/masks/" to "out/masks" before taking parents.
  fs::path dir = fs::absolute(masks_dir).lexically_normal();
  if (dir.filename().empty()) dir = dir.parent_path();
  MaskRun run;
  run.file = run_record_in(dir.parent_path());
  if (run.file.empty()) return std::nullopt;
  const std::string where = run.file.string();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(io::read_file(run.file));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not a JSON run record ({})", where, e.what()));
  }
  if (j.value("tool", "") != "clipes-generate" || !j.contains("config")) {
    throw Error(fmt::format("{}: not the run record of clipes-generate (no \"tool\": "
                            "\"clipes-generate\" with a \"config\")",
                            where));
  }
  try {
    const auto& c = j.at("config");
    for (const auto& cls : c.at("classes")) run.class_names.push_back(cls.at("name"));
    run.confidence_threshold = c.at("mask").at("confidence_threshold").get<float>();
    const std::string policy = c.value("input", nlohmann::json::object())
                                   .value("exif_orientation", std::string("stored"));
    const auto exif = parse_exif_orientation(policy);
    if (!exif) {
      throw Error(fmt::format("{}: config.input.exif_orientation must be \"stored\" or "
                              "\"apply\", got \"{}\"",
                              where, policy));
    }
    run.exif = *exif;
    run.labels = j.value("outputs", nlohmann::json::object()).contains("labels");
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: expected config.classes[].name and "
                            "config.mask.confidence_threshold ({})",
                            where, e.what()));
  }
  return run;
}

}  // namespace clipes::data

#include "clipes/pipeline/outputs.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "clipes/core/error.h"
#include "clipes/data/dataset.h"
#include "clipes/data/mask_files.h"
#include "clipes/io/files.h"
#include "clipes/io/npy.h"
#include "clipes/io/png.h"

namespace clipes::pipeline {

namespace {

constexpr std::array<OutputKind, 5> kAllKinds{OutputKind::kMask, OutputKind::kConfidence,
                                              OutputKind::kCams, OutputKind::kOverlay,
                                              OutputKind::kLabels};

std::string_view extension(OutputKind kind) {
  switch (kind) {
    case OutputKind::kMask:
    case OutputKind::kConfidence:
    case OutputKind::kLabels:
      return ".png";
    case OutputKind::kCams:
      return ".npz";
    case OutputKind::kOverlay:
      return ".jpg";
  }
  return "";
}

void check_id(std::string_view id) {
  const std::string problem = data::id_problem(id);
  if (!problem.empty()) throw Error(fmt::format("cannot write outputs: {}", problem));
}

void require_mat(const cv::Mat& m, int type, std::string_view what, std::string_view id,
                 std::string_view expected) {
  if (m.empty() || m.type() != type || m.dims != 2) {
    throw Error(fmt::format("{} of {}: expected {}, got a {}x{} matrix of type {}", what, id,
                            expected, m.rows, m.cols, m.type()));
  }
}

void require_same_size(const cv::Mat& a, const cv::Mat& b, std::string_view what,
                       std::string_view id) {
  if (a.size() != b.size()) {
    throw Error(fmt::format("{} of {}: sizes differ: {}x{} against the mask's {}x{}", what, id,
                            b.cols, b.rows, a.cols, a.rows));
  }
}

// A float tensor [K, ., .] copied to a contiguous CPU float32 tensor.
at::Tensor cpu_float_cams(const at::Tensor& t, std::size_t k, std::string_view what,
                          std::string_view id) {
  if (!t.defined() || t.dim() != 3 || t.size(0) != static_cast<std::int64_t>(k) ||
      !at::isFloatingType(t.scalar_type())) {
    throw Error(fmt::format(
        "{} of {}: expected a float tensor [K = {}, height, width], got {}", what, id, k,
        t.defined() ? fmt::format("[{}] {}", fmt::join(t.sizes().begin(), t.sizes().end(), ", "),
                                  at::toString(t.scalar_type()))
                    : "none"));
  }
  return t.detach().to(at::kCPU, at::kFloat).contiguous();
}

std::vector<std::int64_t> shape_of(const at::Tensor& t) {
  return std::vector<std::int64_t>(t.sizes().begin(), t.sizes().end());
}

// Folders that may hold temporaries of this output folder.
std::vector<std::filesystem::path> scanned_folders(const std::filesystem::path& out_dir) {
  std::vector<std::filesystem::path> folders{out_dir};
  for (const auto kind : kAllKinds) folders.push_back(out_dir / std::string(output_folder(kind)));
  return folders;
}

cv::Vec3b bgr_of(const io::Palette& palette, int label) {
  return {palette[3 * label + 2], palette[3 * label + 1], palette[3 * label]};
}

const cv::Vec3b kHatchDark(40, 40, 40);
const cv::Vec3b kHatchLight(192, 224, 224);  // BGR of the VOC colour of 255 (224, 224, 192)

bool hatch_is_dark(int x, int y) { return ((x + y) / 4) % 2 == 0; }

}  // namespace

std::string_view output_folder(OutputKind kind) {
  switch (kind) {
    case OutputKind::kMask:
      return "masks";
    case OutputKind::kConfidence:
      return "confidence";
    case OutputKind::kCams:
      return "cams";
    case OutputKind::kOverlay:
      return "overlays";
    case OutputKind::kLabels:
      return "labels";
  }
  return "";
}

std::filesystem::path output_path(const std::filesystem::path& out_dir, OutputKind kind,
                                  std::string_view id) {
  check_id(id);
  return out_dir / std::string(output_folder(kind)) /
         (std::string(id) + std::string(extension(kind)));
}

std::vector<OutputKind> expected_outputs(const OutputsConfig& config) {
  std::vector<OutputKind> kinds;
  if (config.masks) {
    kinds.push_back(OutputKind::kMask);
    kinds.push_back(OutputKind::kConfidence);
  }
  if (config.cams) kinds.push_back(OutputKind::kCams);
  if (config.overlays) kinds.push_back(OutputKind::kOverlay);
  if (config.masks && config.labels) kinds.push_back(OutputKind::kLabels);
  return kinds;
}

void write_mask(const std::filesystem::path& out_dir, std::string_view id, const cv::Mat& mask) {
  const auto file = output_path(out_dir, OutputKind::kMask, id);
  require_mat(mask, CV_8UC1, "mask", id, "CV_8UC1");
  io::write_png_indexed(file, mask, data::mask_palette());
}

void write_confidence(const std::filesystem::path& out_dir, std::string_view id,
                      const cv::Mat& confidence) {
  const auto file = output_path(out_dir, OutputKind::kConfidence, id);
  require_mat(confidence, CV_32FC1, "confidence", id, "CV_32FC1 values in [0, 1]");
  io::write_png_u16(file, data::encode_confidence_map(confidence));
}

void write_cams(const std::filesystem::path& out_dir, std::string_view id,
                const std::vector<std::int64_t>& keys, const at::Tensor& cams,
                const at::Tensor& initial, CamDtype dtype) {
  const auto file = output_path(out_dir, OutputKind::kCams, id);
  const at::Tensor c = cpu_float_cams(cams, keys.size(), "cams", id);
  const at::Tensor i = cpu_float_cams(initial, keys.size(), "initial", id);
  io::NpzEntries entries;
  entries.emplace_back("keys", io::NpyArray::from<std::int64_t>(
                                   {static_cast<std::int64_t>(keys.size())}, keys.data()));
  entries.emplace_back("cams", dtype == CamDtype::kFloat16
                                   ? io::NpyArray::float16_from(shape_of(c), c.data_ptr<float>())
                                   : io::NpyArray::from<float>(shape_of(c), c.data_ptr<float>()));
  entries.emplace_back("initial", io::NpyArray::from<float>(shape_of(i), i.data_ptr<float>()));
  io::write_npz(file, entries);
}

cv::Mat render_overlay(const cv::Mat& image_rgb, const cv::Mat& mask,
                       const std::vector<std::string>& class_names) {
  require_mat(image_rgb, CV_8UC3, "overlay image", "overlay", "CV_8UC3 (RGB)");
  require_mat(mask, CV_8UC1, "mask", "overlay", "CV_8UC1");
  require_same_size(mask, image_rgb, "overlay image", "overlay");
  const io::Palette palette = data::mask_palette();
  cv::Mat out;
  cv::cvtColor(image_rgb, out, cv::COLOR_RGB2BGR);
  std::array<bool, 256> present{};
  for (int y = 0; y < mask.rows; ++y) {
    const auto* labels = mask.ptr<std::uint8_t>(y);
    auto* pixels = out.ptr<cv::Vec3b>(y);
    for (int x = 0; x < mask.cols; ++x) {
      const int label = labels[x];
      present[label] = true;
      if (label == 0) continue;
      cv::Vec3b colour;
      float alpha = 0.5f;
      if (label == data::kIgnoreLabel) {
        colour = hatch_is_dark(x, y) ? kHatchDark : kHatchLight;
        alpha = 0.7f;
      } else {
        colour = bgr_of(palette, label);
      }
      for (int ch = 0; ch < 3; ++ch) {
        pixels[x][ch] =
            cv::saturate_cast<std::uint8_t>((1.0f - alpha) * pixels[x][ch] + alpha * colour[ch]);
      }
    }
  }

  // Legend: one row per class present, then "ignored".
  std::vector<std::pair<int, std::string>> entries;
  for (int label = 1; label < 255; ++label) {
    if (!present[label]) continue;
    const auto c = static_cast<std::size_t>(label - 1);
    entries.emplace_back(
        label, c < class_names.size() ? class_names[c] : fmt::format("class {}", label - 1));
  }
  if (present[data::kIgnoreLabel]) entries.emplace_back(data::kIgnoreLabel, "ignored");
  if (entries.empty()) return out;
  const int font = cv::FONT_HERSHEY_SIMPLEX;
  const double scale = std::clamp(std::min(out.cols, out.rows) / 700.0, 0.35, 1.5);
  const int thickness = std::max(1, static_cast<int>(std::lround(scale * 2.0)));
  int baseline = 0;
  const cv::Size probe = cv::getTextSize("Hg", font, scale, thickness, &baseline);
  const int row = probe.height + baseline + 6;
  const int swatch = probe.height + baseline;
  int text_width = 0;
  for (const auto& entry : entries) {
    text_width = std::max(text_width,
                          cv::getTextSize(entry.second, font, scale, thickness, &baseline).width);
  }
  const cv::Rect panel =
      cv::Rect(0, 0, 4 + swatch + 6 + text_width + 6, 4 + row * static_cast<int>(entries.size())) &
      cv::Rect(0, 0, out.cols, out.rows);
  cv::Mat region = out(panel);
  region.convertTo(region, -1, 0.35, 0.0);  // darken behind the legend
  for (std::size_t e = 0; e < entries.size(); ++e) {
    const int top = 4 + row * static_cast<int>(e);
    const cv::Rect box = cv::Rect(4, top, swatch, swatch) & cv::Rect(0, 0, out.cols, out.rows);
    for (int y = box.y; y < box.y + box.height; ++y) {
      for (int x = box.x; x < box.x + box.width; ++x) {
        out.at<cv::Vec3b>(y, x) = entries[e].first == 255
                                      ? (hatch_is_dark(x, y) ? kHatchDark : kHatchLight)
                                      : bgr_of(palette, entries[e].first);
      }
    }
    cv::putText(out, entries[e].second, cv::Point(4 + swatch + 6, top + probe.height), font, scale,
                cv::Scalar(255, 255, 255), thickness, cv::LINE_AA);
  }
  return out;
}

void write_overlay(const std::filesystem::path& out_dir, std::string_view id,
                   const cv::Mat& image_rgb, const cv::Mat& mask,
                   const std::vector<std::string>& class_names) {
  const auto file = output_path(out_dir, OutputKind::kOverlay, id);
  const cv::Mat picture = render_overlay(image_rgb, mask, class_names);
  std::vector<std::uint8_t> bytes;
  if (!cv::imencode(".jpg", picture, bytes, {cv::IMWRITE_JPEG_QUALITY, 90})) {
    throw Error(fmt::format("overlay of {}: JPEG encoding failed", id));
  }
  io::write_file_atomic(
      file, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

void write_image_outputs(const std::filesystem::path& out_dir, std::string_view id,
                         const ImageOutputs& outputs, const OutputsConfig& config,
                         const std::vector<std::string>& class_names) {
  check_id(id);
  if (config.masks) {
    require_mat(outputs.mask, CV_8UC1, "mask", id, "CV_8UC1");
    require_mat(outputs.confidence, CV_32FC1, "confidence", id, "CV_32FC1 values in [0, 1]");
    require_same_size(outputs.mask, outputs.confidence, "confidence", id);
    if (config.labels) {
      require_mat(outputs.labels, CV_8UC1, "labels", id, "CV_8UC1");
      require_same_size(outputs.mask, outputs.labels, "labels", id);
    }
  }
  if (config.cams) {
    write_cams(out_dir, id, outputs.keys, outputs.cams, outputs.initial, config.cam_dtype);
  }
  if (config.overlays) {
    require_same_size(outputs.mask, outputs.image_rgb, "overlay image", id);
    write_overlay(out_dir, id, outputs.image_rgb, outputs.mask, class_names);
  }
  if (config.masks && config.labels) {
    io::write_png_indexed(output_path(out_dir, OutputKind::kLabels, id), outputs.labels,
                          data::mask_palette());
  }
  if (config.masks) {
    write_confidence(out_dir, id, outputs.confidence);
    write_mask(out_dir, id, outputs.mask);
  }
}

bool outputs_complete(const std::filesystem::path& out_dir, std::string_view id,
                      const OutputsConfig& config) {
  if (!data::id_problem(id).empty()) return false;
  for (const auto kind : expected_outputs(config)) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(output_path(out_dir, kind, id), ec)) return false;
  }
  return true;
}

std::unordered_set<std::string> find_complete_ids(const std::filesystem::path& out_dir,
                                                  const std::vector<std::string>& ids,
                                                  const OutputsConfig& config) {
  const auto kinds = expected_outputs(config);
  std::vector<std::unordered_set<std::string>> present(kinds.size());
  for (std::size_t k = 0; k < kinds.size(); ++k) {
    const auto folder = out_dir / std::string(output_folder(kinds[k]));
    std::error_code ec;
    if (!std::filesystem::is_directory(folder, ec)) return {};
    for (std::filesystem::directory_iterator it(folder, ec), end; !ec && it != end;
         it.increment(ec)) {
      if (it->is_regular_file(ec)) present[k].insert(it->path().filename().string());
    }
  }
  std::unordered_set<std::string> complete;
  for (const auto& id : ids) {
    if (!data::id_problem(id).empty()) continue;
    bool all = true;
    for (std::size_t k = 0; k < kinds.size() && all; ++k) {
      all = present[k].count(id + std::string(extension(kinds[k]))) > 0;
    }
    if (all) complete.insert(id);
  }
  return complete;
}

std::vector<std::filesystem::path> find_stale_temporaries(const std::filesystem::path& out_dir,
                                                          std::chrono::seconds min_age) {
  std::vector<std::filesystem::path> stale;
  const auto now = std::filesystem::file_time_type::clock::now();
  for (const auto& folder : scanned_folders(out_dir)) {
    std::error_code ec;
    if (!std::filesystem::is_directory(folder, ec)) continue;
    for (std::filesystem::directory_iterator it(folder, ec), end; !ec && it != end;
         it.increment(ec)) {
      std::error_code file_ec;
      if (!it->is_regular_file(file_ec) || !io::is_atomic_temporary(it->path())) continue;
      const auto changed = it->last_write_time(file_ec);
      if (file_ec) continue;
      if (now - changed >= min_age) stale.push_back(it->path());
    }
  }
  std::sort(stale.begin(), stale.end());
  return stale;
}

std::size_t remove_stale_temporaries(const std::filesystem::path& out_dir,
                                     std::chrono::seconds min_age) {
  std::size_t removed = 0;
  for (const auto& file : find_stale_temporaries(out_dir, min_age)) {
    std::error_code ec;
    if (std::filesystem::remove(file, ec)) ++removed;
  }
  return removed;
}

}  // namespace clipes::pipeline

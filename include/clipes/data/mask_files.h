#pragma once
/// The files clipes-generate hands to clipes-train-seg and clipes-eval, owned here so that every
/// tool reads and writes them by the same rules (spec §7, §8):
///   masks/<id>.png       8-bit palette PNG (mask_palette): 0 background, c+1 class c,
///                        kIgnoreLabel where the confidence is below μ
///   labels/<id>.png      optional, the same before μ: the CRF's argmax everywhere
///   confidence/<id>.png  16-bit grey PNG: encode_confidence(max Q), on the 0..65535 scale
///   run.json             the run record: class list, μ, image policy (read_mask_run)

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>

#include "clipes/data/image.h"
#include "clipes/io/png.h"

namespace clipes::data {

/// The label of pixels that carry no class: below μ in pseudo masks, "void" in ground truth,
/// "no prediction" in predictions, padding in training crops.
inline constexpr int kIgnoreLabel = 255;
/// The stored confidence scale: a confidence c in [0, 1] is kept as round(c · 65535).
inline constexpr double kConfidenceScale = 65535.0;

/// The colours of mask PNGs: the PASCAL VOC colour map.
io::Palette mask_palette();

/// round(clamp(c, 0, 1) · 65535); NaN is stored as 0.
std::uint16_t encode_confidence(float confidence);
/// stored / 65535.
float decode_confidence(std::uint16_t stored);
/// encode_confidence of every pixel: CV_32FC1 -> CV_16UC1.
cv::Mat encode_confidence_map(const cv::Mat& confidence);

/// The μ test of clipes-generate, on the CRF's float confidence: a pixel is ignored when
/// confidence < μ (so a confidence of exactly μ is kept).
inline bool below_confidence_threshold(float confidence, float mu) { return confidence < mu; }
/// The μ test on stored confidences: stored < encode_confidence(μ). Every pixel generate kept at
/// μ passes it at the same μ (stored values are monotonic in the confidence), so applying a
/// μ' >= μ to a run's maps can only tighten its masks.
inline bool below_stored_threshold(std::uint16_t stored, float mu) {
  return stored < encode_confidence(mu);
}
/// Sets `labels` (CV_8UC1) to kIgnoreLabel where the stored confidence (CV_16UC1, same size)
/// fails the μ test. Throws clipes::Error for mismatched sizes or types.
void ignore_below_threshold(cv::Mat& labels, const cv::Mat& stored_confidence, float mu);

/// The run record of the clipes-generate run that wrote a mask folder.
struct MaskRun {
  std::filesystem::path file;            ///< its run.json (or run-IofN.json of a sharded run)
  std::vector<std::string> class_names;  ///< foreground classes, index order (mask value c+1)
  float confidence_threshold = 0.95f;    ///< μ below which the masks hold kIgnoreLabel
  ExifOrientation exif = ExifOrientation::kStored;  ///< how its images were decoded
  bool labels = false;  ///< it wrote labels/<id>.png (the argmax before μ)

  /// Classes with the background: the values a mask may hold besides kIgnoreLabel.
  int num_classes() const { return static_cast<int>(class_names.size()) + 1; }
};

/// The run record beside `masks_dir` (<masks_dir>/../run.json, else the first run-IofN.json
/// there), or std::nullopt when there is none (masks from elsewhere, e.g. the authors' code).
/// A record that exists but is not clipes-generate's or lacks a field throws clipes::Error
/// naming the file and the JSON path.
std::optional<MaskRun> find_mask_run(const std::filesystem::path& masks_dir);

}  // namespace clipes::data

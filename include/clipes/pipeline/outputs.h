#pragma once
/// The per-image files of clipes-generate under the output folder, all written atomically
/// (io::write_file_atomic: a temporary name, then rename), the resume check and the cleanup of
/// temporaries left by a killed run.
///
///   masks/<id>.png       8-bit palette PNG, VOC colour map: 0 background, c+1 class c, 255 ignored
///   labels/<id>.png      with outputs.labels: the mask before μ (the CRF's argmax everywhere)
///   confidence/<id>.png  16-bit grey PNG: round(confidence · 65535)
/// (the formats are data/mask_files.h's)
///   cams/<id>.npz        keys int64 [K], cams float16|float32 [K,H,W], initial float32 [K,h,w]
///   overlays/<id>.jpg    image blended with the mask colours, hatched ignored pixels, a legend
///
/// Every function that takes an id rejects ids unusable as file names (data::id_problem) with
/// clipes::Error.

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <opencv2/core/mat.hpp>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "clipes/pipeline/generate_config.h"

namespace clipes::pipeline {

enum class OutputKind { kMask, kConfidence, kCams, kOverlay, kLabels };

/// "masks", "confidence", "cams", "overlays", "labels": the subfolder of each kind.
std::string_view output_folder(OutputKind kind);

/// <out_dir>/<folder>/<id><.png|.png|.npz|.jpg>; throws clipes::Error for an unusable id.
std::filesystem::path output_path(const std::filesystem::path& out_dir, OutputKind kind,
                                  std::string_view id);

/// The kinds written per image under `config`: mask and confidence when config.masks, then cams,
/// overlays and labels when enabled.
std::vector<OutputKind> expected_outputs(const OutputsConfig& config);

/// mask: CV_8UC1 H×W (0 background, c+1 class c, 255 ignored). Written with data::mask_palette().
void write_mask(const std::filesystem::path& out_dir, std::string_view id, const cv::Mat& mask);

/// confidence: CV_32FC1 H×W, values in [0, 1] (spec §7: max Q). Stored as round(v·65535),
/// values outside [0, 1] clamped (data::encode_confidence); read back with data::decode_confidence.
void write_confidence(const std::filesystem::path& out_dir, std::string_view id,
                      const cv::Mat& confidence);

/// The CAM archive. keys: the K class indices (0-based, label order). cams: [K, H, W] float32
/// (the refined CAMs at image size, spec §4 "attn_highres"), stored as `dtype`. initial: [K, h, w]
/// float32 (softmax-GradCAM before CAA, spec §3), stored as float32. Any device; copied to CPU.
void write_cams(const std::filesystem::path& out_dir, std::string_view id,
                const std::vector<std::int64_t>& keys, const at::Tensor& cams,
                const at::Tensor& initial, CamDtype dtype);

/// The overlay JPEG: image_rgb CV_8UC3 H×W in RGB order; mask as for write_mask; class_names
/// index by class (mask value - 1). Class pixels are blended half with their VOC colour;
/// ignored (255) pixels are hatched with dark and light diagonal stripes; the legend (top left)
/// lists each class present in the mask with its colour, and "ignored" when present.
void write_overlay(const std::filesystem::path& out_dir, std::string_view id,
                   const cv::Mat& image_rgb, const cv::Mat& mask,
                   const std::vector<std::string>& class_names);

/// The overlay picture itself (CV_8UC3, BGR as OpenCV holds images), for write_overlay and tests.
cv::Mat render_overlay(const cv::Mat& image_rgb, const cv::Mat& mask,
                       const std::vector<std::string>& class_names);

/// Everything produced for one image.
struct ImageOutputs {
  std::vector<std::int64_t> keys;  ///< [K] class indices in label order
  cv::Mat mask;                    ///< CV_8UC1 H×W
  cv::Mat confidence;              ///< CV_32FC1 H×W
  cv::Mat labels;                  ///< CV_8UC1 H×W, the mask before μ (needed when config.labels)
  at::Tensor cams;                 ///< [K, H, W] float32 (needed when config.cams)
  at::Tensor initial;              ///< [K, h, w] float32 (needed when config.cams)
  cv::Mat image_rgb;               ///< CV_8UC3 H×W (needed when config.overlays)
};

/// Writes every file expected_outputs(config) lists for `id`: cams and overlay first, then
/// confidence, then the mask (mask, confidence and image_rgb are only needed when written). Each file is atomic; the id counts as complete only when all exist.
void write_image_outputs(const std::filesystem::path& out_dir, std::string_view id,
                         const ImageOutputs& outputs, const OutputsConfig& config,
                         const std::vector<std::string>& class_names);

/// True when every expected output of `id` exists (atomic writes: an existing file is whole).
/// Existence only: a file written under other settings (cam dtype) counts as present.
bool outputs_complete(const std::filesystem::path& out_dir, std::string_view id,
                      const OutputsConfig& config);

/// The ids among `ids` whose outputs are complete (safe to skip on resume), with one directory
/// listing per output folder instead of a stat per file. Ids unusable as file names are never
/// complete.
std::unordered_set<std::string> find_complete_ids(const std::filesystem::path& out_dir,
                                                  const std::vector<std::string>& ids,
                                                  const OutputsConfig& config);

/// Temporaries of the atomic writer (io::is_atomic_temporary) in `out_dir` and its output
/// folders whose last change is at least `min_age` old. Processes sharing the folder (--shard
/// on several machines) have their own temporaries in flight: pass a min_age far above one
/// write's duration (e.g. 10 minutes) unless no other process can be writing.
std::vector<std::filesystem::path> find_stale_temporaries(const std::filesystem::path& out_dir,
                                                          std::chrono::seconds min_age);

/// Removes find_stale_temporaries(out_dir, min_age); returns how many were removed (a file
/// that vanished meanwhile is not counted and not an error).
std::size_t remove_stale_temporaries(const std::filesystem::path& out_dir,
                                     std::chrono::seconds min_age);

}  // namespace clipes::pipeline

#pragma once
/// Prediction with a trained segmentation model (spec §8 "Test"): multi-scale (+ flip) logits
/// averaged at full resolution, softmax to class probabilities [C,H,W], argmax to a label map,
/// written as palette PNGs (VOC colour map) that clipes-eval reads.
///
/// The dense CRF of DeepLab's test recipe plugs in between probabilities() and
/// labels_from_probabilities(): unary = -log(probabilities), the RGB image, crf::CrfConfig (its
/// defaults are DeepLab's: 10 iterations, position 3/1, bilateral 4/67/3).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <opencv2/core/mat.hpp>
#include <string>
#include <vector>

#include "clipes/core/reporter.h"
#include "clipes/seg/seg_config.h"

namespace clipes::seg {

class DeepLabImpl;

struct PredictConfig {
  std::vector<double> scales{1.0};  ///< input scales (bilinear, as F.interpolate(scale_factor))
  bool flip = false;                ///< also the mirrored image, its logits mirrored back
};

/// A trained model loaded from a checkpoint or final model file, ready to predict.
class Segmenter {
 public:
  /// device: "cpu", "cuda", "cuda:N" or "" (CUDA when available).
  Segmenter(const std::filesystem::path& checkpoint, const std::string& device);
  ~Segmenter();

  /// Class probabilities [C,H,W] float32 on the CPU for an 8-bit BGR image (CV_8UC3): the
  /// model's inference logits (MSC: the max over its scales) for every scale and flip, each
  /// resized bilinearly (align_corners = false) to H x W, averaged, then softmax over C.
  at::Tensor probabilities(const cv::Mat& bgr, const PredictConfig& config) const;

  const TrainConfig& config() const { return config_; }
  const std::string& device() const { return device_; }

 private:
  std::shared_ptr<DeepLabImpl> model_;
  TrainConfig config_;
  std::string device_;
};

/// argmax over the classes as a CV_8UC1 label map. probabilities: [C,H,W], C <= 255.
cv::Mat labels_from_probabilities(const at::Tensor& probabilities);

struct PredictInputs {
  std::filesystem::path checkpoint;
  std::filesystem::path images;
  std::filesystem::path split;  ///< optional: ids to predict (first token per line)
  std::filesystem::path out;    ///< <out>/<id>.png, palette PNG of class ids
  std::string device;           ///< as Segmenter
};

struct PredictSummary {
  std::int64_t written = 0;
  std::int64_t failed = 0;  ///< images that could not be read or predicted (each reported)
};

/// Predicts every listed image; one bad image is reported (id, reason) and skipped.
PredictSummary predict_folder(const PredictInputs& inputs, const PredictConfig& config,
                              Reporter& reporter);

}  // namespace clipes::seg

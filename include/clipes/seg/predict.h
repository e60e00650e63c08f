#pragma once
/// Prediction with a trained segmentation model (spec §8 "Test"): multi-scale (+ flip) logits
/// averaged at full resolution, softmax to class probabilities [C,H,W], argmax to a label map,
/// written as palette PNGs (VOC colour map) that clipes-eval reads.
///
/// Optionally, the dense CRF of DeepLab's test recipe refines the probabilities before the argmax
/// (refine_with_crf): unary = −log(clip(P, 1e−5, 1)) as pydensecrf's unary_from_softmax, the
/// image in RGB order, crf::CrfConfig with DeepLab's parameters (10 iterations, position kernel
/// weight 3 / σ_xy 1, bilateral kernel weight 4 / σ_xy 67 / σ_rgb 3), label = argmax Q.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <opencv2/core/mat.hpp>
#include <string>
#include <vector>

#include "clipes/core/reporter.h"
#include "clipes/crf/crf_config.h"
#include "clipes/crf/dense_crf.h"
#include "clipes/data/dataset.h"
#include "clipes/seg/seg_config.h"

namespace clipes::seg {

class DeepLabImpl;

struct PredictConfig {
  std::vector<double> scales{1.0};  ///< input scales (bilinear, as F.interpolate(scale_factor))
  bool flip = false;                ///< also the mirrored image, its logits mirrored back
  bool crf = false;                 ///< refine the probabilities with the dense CRF
  /// The CRF's parameters when `crf`; the CrfConfig defaults are DeepLab's: iterations 10,
  /// pos_weight 3, pos_std 1, bilateral_weight 4, bilateral_std 67, bilateral_rgb_std 3, image
  /// kRgb (kReference: the BGR image minus the mean, wrapped to uint8, see crf_input_image).
  /// threads: threads of one CRF (predict_folder runs one image at a time).
  crf::CrfConfig crf_config;
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

/// Dense CRF over the probabilities (DeepLab's test-time post-processing).
/// probabilities: [C,H,W] float32 on the CPU (2 <= C), e.g. Segmenter::probabilities();
/// bgr: CV_8UC3 H x W, the image they were computed from (BGR, as read_image_bgr returns it);
/// the bilateral kernel sees crf::crf_input_image(RGB, config.image). The unary is
/// −log(clip(P, 1e−5, 1)) in float32 (crf::crf_unary, kRgb arithmetic whatever config.image).
/// workspace: reused buffers (one per worker thread; null: allocated for this call).
/// Returns the marginals Q: [C,H,W] float32 on the CPU. Throws clipes::Error for mismatched
/// shapes or an invalid config.
at::Tensor refine_with_crf(const at::Tensor& probabilities, const cv::Mat& bgr,
                           const crf::CrfConfig& config, crf::CrfWorkspace* workspace = nullptr);

struct PredictInputs {
  std::filesystem::path checkpoint;
  std::filesystem::path images;
  std::filesystem::path split;  ///< optional: ids to predict (first token per line)
  std::filesystem::path out;    ///< <out>/<id>.png, palette PNG of class ids
  std::string device;           ///< as Segmenter
  /// This process's share of the images (data::shard_of each id): the ranks of a job (RANK of
  /// WORLD_SIZE) predict every image once between them.
  data::Shard shard;
};

struct PredictSummary {
  std::int64_t written = 0;
  /// (id, reason) of each image that could not be read or predicted (each also reported)
  std::vector<std::pair<std::string, std::string>> failures;
};

/// Predicts every listed image of inputs.shard (probabilities, then refine_with_crf when config.crf, then argmax),
/// decoding them with the checkpoint's input.exif_orientation. Before the first image, every image
/// is decoded in parallel (check_images): problems are listed together in one clipes::Error and
/// nothing is written; so is an invalid config.crf_config. One image failing later is reported
/// (id, reason) and skipped.
PredictSummary predict_folder(const PredictInputs& inputs, const PredictConfig& config,
                              Reporter& reporter);

}  // namespace clipes::seg

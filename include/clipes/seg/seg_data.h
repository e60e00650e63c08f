#pragma once
/// Training data of the segmentation model (spec §8): images with pseudo masks (and optionally
/// confidence maps) as clipes-generate writes them, the augmentation recipe (random scale, crop
/// padded with the mean / 255, horizontal flip, mean subtraction), a deterministic sampler whose
/// state goes into checkpoints, and a loader that prepares batches in worker threads.
///
/// Determinism: the training thread draws, in order, each sample's dataset index and a 64-bit
/// seed from the sampler; a worker turns (index, seed) into the augmented sample. Batches are
/// therefore the same whatever the number of workers, and a resumed run that restores the
/// sampler state gets the same batches as an uninterrupted one.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <opencv2/core/mat.hpp>
#include <random>
#include <string>
#include <vector>

#include "clipes/data/image.h"
#include "clipes/data/mask_files.h"
#include "clipes/seg/seg_config.h"

namespace clipes::seg {

struct SegDataPaths {
  std::filesystem::path images;      ///< <id>.jpg (or .jpeg/.png)
  std::filesystem::path masks;       ///< <id>.png: 8-bit palette/grey, class ids, 255 = ignore
  std::filesystem::path confidence;  ///< optional: <id>.png, 16-bit, round(confidence * 65535)
  std::filesystem::path split;       ///< optional: ids to use (data::read_split_ids);
                                     ///< without it every <id>.png of `masks`
};

/// The decoding policy of `input.exif_orientation` ("" = stored).
data::ExifOrientation exif_policy(const InputConfig& input);

/// Makes `config` follow the generate run that wrote `masks` (data::find_mask_run): its class
/// count, μ and image policy. `config_source` names the config in messages. Throws clipes::Error
/// when the config contradicts the run (model.num_classes against the run's classes + 1,
/// input.exif_orientation set to the other policy: both values and files named) or when
/// data.confidence_threshold is below the run's μ (its masks already ignore those pixels, so a
/// lower μ cannot take effect). input.exif_orientation "" takes the run's. Returns the line to
/// log: what was taken from which run.json, or, without one, that the config is used alone.
std::string follow_mask_run(TrainConfig& config, const std::string& config_source,
                            const std::filesystem::path& masks);

/// This rank's share of the work of a data-parallel job (see BatchLoader, check_training_data).
struct LoaderShard {
  int index = 0;
  int count = 1;
};

/// The list of training images. Opening it lists every id (from the split or the mask folder)
/// and notes each missing file in problems(); check_training_data checks the rest.
class SegDataset {
 public:
  /// Throws clipes::Error for a missing folder or an empty list.
  SegDataset(SegDataPaths paths, int num_classes, float confidence_threshold,
             data::ExifOrientation exif = data::ExifOrientation::kStored);

  std::int64_t size() const { return static_cast<std::int64_t>(ids_.size()); }
  const std::vector<std::string>& ids() const { return ids_; }
  const std::filesystem::path& image_file(std::int64_t index) const { return images_.at(index); }
  std::filesystem::path mask_file(std::int64_t index) const;
  /// Empty when there are no confidence maps.
  std::filesystem::path confidence_file(std::int64_t index) const;
  int num_classes() const { return num_classes_; }
  float confidence_threshold() const { return confidence_threshold_; }
  data::ExifOrientation exif() const { return exif_; }
  /// "file: what is wrong" for each missing image, mask or confidence map (in id order).
  const std::vector<std::string>& problems() const { return problems_; }
  /// False when the files of `index` are not all present.
  bool complete(std::int64_t index) const { return complete_.at(index) != 0; }

 private:
  SegDataPaths paths_;
  int num_classes_;
  float confidence_threshold_;
  data::ExifOrientation exif_;
  std::vector<std::string> ids_;
  std::vector<std::filesystem::path> images_;
  std::vector<char> complete_;
  std::vector<std::string> problems_;
};

/// The check before training: every image/mask/confidence triple read in `threads` threads (0:
/// one per core) as read_labelled_image reads it (present, decodable, same size, values within
/// the classes or 255). Returns every problem ("file: what is wrong"), in id order; empty when
/// all is well.
/// With a shard, only the images i with i % shard.count == shard.index are decoded (ranks of a
/// job check a share each); missing files are listed whatever the shard.
std::vector<std::string> check_training_data(const SegDataset& dataset, int threads = 0,
                                             LoaderShard shard = {});

/// The check before predicting: each image decoded in `threads` threads (0: one per core).
/// Returns every problem ("file: what is wrong"), in list order.
std::vector<std::string> check_images(
    const std::vector<std::pair<std::string, std::filesystem::path>>& images,
    data::ExifOrientation exif, int threads = 0);

/// Throws one clipes::Error listing `problems` (at most `shown`, then how many more) after
/// `what`, when there are any.
void throw_if_problems(const std::vector<std::string>& problems, const std::string& what,
                       std::size_t shown = 50);

/// Image files of a folder for prediction: ids from `split` (data::read_split_ids) or every
/// .jpg/.jpeg/.png of the folder, sorted. Returns (id, file) pairs; listed ids without an image
/// throw one clipes::Error naming them all.
std::vector<std::pair<std::string, std::filesystem::path>> list_images(
    const std::filesystem::path& images, const std::filesystem::path& split);

/// Reads an 8-bit colour image as BGR (CV_8UC3) with the pipeline's decoder (data::load_image:
/// the pixels clipes-generate saw under the same policy); throws clipes::Error naming the file.
cv::Mat read_image_bgr(const std::filesystem::path& file,
                       data::ExifOrientation exif = data::ExifOrientation::kStored);

/// One image with its label map, before augmentation.
struct LabelledImage {
  cv::Mat image;  ///< CV_8UC3, BGR
  cv::Mat label;  ///< CV_8UC1, class ids, 255 = ignore (CGL already applied)
};

/// Reads image, mask (and confidence) of `index`, applies CGL (label 255 where confidence < μ)
/// and checks them: throws clipes::Error when the mask's size differs from the image's, when a
/// mask value is neither a class id (0..num_classes-1) nor 255, or a file cannot be read.
LabelledImage read_labelled_image(const SegDataset& dataset, std::int64_t index);

/// The network input of an 8-bit BGR image: [3,H,W] float32, (pixel - mean) / std in the channel
/// order of `input`.
at::Tensor image_to_input(const cv::Mat& bgr, const InputConfig& input);

struct TrainingSample {
  at::Tensor image;  ///< [3,S,S] float32, normalised (padding = 0, i.e. the mean)
  at::Tensor label;  ///< [S,S] int64, 255 = ignore (and padding)
};

/// The augmentation recipe (deeplab-pytorch's): scale drawn from augment.scales (image bilinear,
/// label nearest), pad bottom/right to the crop size (image with the mean, label with 255),
/// random crop_size crop, flip with p = 0.5. All draws come from a generator seeded with `seed`.
TrainingSample augment_sample(const LabelledImage& sample, const AugmentConfig& augment,
                              const InputConfig& input, std::uint64_t seed);

/// A sample to prepare: which image and the seed of its augmentation.
struct SampleTicket {
  std::int64_t index = 0;
  std::uint64_t seed = 0;
};

/// Epochs of shuffled indices (reshuffled at each epoch start) and one augmentation seed per
/// sample, from a mt19937_64 seeded once. Its state serialises to text.
class BatchSampler {
 public:
  BatchSampler(std::int64_t dataset_size, std::uint64_t seed);
  std::vector<SampleTicket> next(int batch_size);
  std::string state() const;
  /// Restores a state() of a sampler over the same dataset size; throws clipes::Error otherwise.
  void restore(const std::string& state);

 private:
  void start_epoch();
  std::int64_t size_;
  std::mt19937_64 rng_;
  std::vector<std::int64_t> order_;
  std::int64_t position_ = 0;
  std::int64_t epoch_ = 0;
};

struct Batch {
  at::Tensor images;  ///< [B,3,S,S] float32
  at::Tensor labels;  ///< [B,S,S] int64
  std::vector<std::int64_t> indices;
};

/// Prepares batches ahead (`augment.prefetch` of them) with `augment.workers` threads (0: in the
/// calling thread, on demand). A worker's error (bad mask, unreadable image) is rethrown by next().
/// Data-parallel ranks share each global batch: every rank's sampler draws the same
/// `batch_size` tickets and rank `shard.index` of `shard.count` keeps the consecutive slice
/// [index * b, (index + 1) * b), b = batch_size / count; each sample keeps its own augmentation
/// seed, so the union over the ranks is exactly the batch one process would draw.
class BatchLoader {
 public:
  BatchLoader(SegDataset dataset, AugmentConfig augment, InputConfig input, BatchSampler sampler,
              int batch_size, LoaderShard shard = {});
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  Batch next();
  /// The sampler state before the batch that next() returns next: restoring it reproduces the
  /// stream from there (what a checkpoint stores).
  std::string sampler_state() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace clipes::seg

#pragma once
/// Synthetic segmentation data for the seg tests: coloured, textured shapes (disc, square,
/// triangle = classes 1..3) on a striped background (class 0), with their exact label maps.

#include <cstdint>
#include <filesystem>
#include <opencv2/core/mat.hpp>
#include <string>
#include <vector>

#include "clipes/seg/seg_config.h"

namespace clipes::seg::testing {

struct SyntheticImage {
  cv::Mat bgr;    ///< CV_8UC3
  cv::Mat label;  ///< CV_8UC1, 0..3
};

/// One image with one or two shapes; deterministic in `seed`.
SyntheticImage make_synthetic_image(int height, int width, std::uint64_t seed);

/// Writes `count` synthetic images as <dir>/images/<id>.png, <dir>/masks/<id>.png (VOC palette)
/// and, when `confidence`, <dir>/confidence/<id>.png (16-bit, a ramp so that some pixels are
/// below 0.95). Returns the ids ("img0", "img1", ...).
std::vector<std::string> write_synthetic_dataset(const std::filesystem::path& dir, int count,
                                                 int height, int width, std::uint64_t seed,
                                                 bool confidence = false);

/// A tiny, fast config for tests: ResNet-50 of width 4, 4 classes, no MSC, crop 33.
TrainConfig tiny_train_config();

}  // namespace clipes::seg::testing

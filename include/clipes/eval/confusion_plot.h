#pragma once
/// A heat map of the row-normalised confusion matrix (each ground-truth row divided by its pixel
/// count), with class names on both axes, a colour bar and, up to 30 classes, the percentages in
/// the cells. Sized so that 21 (VOC) and 81 (COCO) classes stay readable.

#include <filesystem>
#include <opencv2/core/mat.hpp>
#include <string>
#include <vector>

#include "clipes/eval/confusion.h"

namespace clipes::eval {

/// The image, CV_8UC3 (BGR). names: [matrix.n]. Rows without GT pixels are drawn grey.
cv::Mat render_confusion(const ConfusionMatrix& matrix, const std::vector<std::string>& names,
                         const std::string& title);

/// render_confusion written as a PNG, atomically.
void write_confusion_png(const std::filesystem::path& file, const ConfusionMatrix& matrix,
                         const std::vector<std::string>& names, const std::string& title);

}  // namespace clipes::eval

#pragma once
/// The training-loss plot written at the end of a run (loss.png): the loss of every iteration,
/// its moving average, labelled axes with ticks.

#include <filesystem>
#include <opencv2/core/mat.hpp>
#include <vector>

#include "clipes/seg/checkpoint.h"

namespace clipes::seg {

/// A width x height BGR image (CV_8UC3): x = iteration, y = loss (from 0), grey = per-iteration
/// loss, blue = moving average over ~1/50 of the run. An empty history gives axes only.
cv::Mat draw_loss_plot(const std::vector<HistoryRow>& history, int width = 900, int height = 520);

/// draw_loss_plot written as PNG, atomically.
void write_loss_plot(const std::filesystem::path& file, const std::vector<HistoryRow>& history);

}  // namespace clipes::seg

#pragma once
/// Reports of an evaluation: an aligned text table (class names, per-class IoU, precision, recall,
/// pixel counts; mIoU, pixel accuracy, mean accuracy, fwIoU, coverage), Markdown, and JSON holding
/// every number (per background setting in CAM mode). Percentages in text, fractions in JSON.

#include <string>

#include "clipes/eval/evaluate.h"

namespace clipes::eval {

/// The table for a terminal. CAM mode: the settings (best marked), then the best one per class.
std::string format_table(const EvalResult& result);

/// The same content as Markdown tables.
std::string format_markdown(const EvalResult& result);

/// Every number as JSON (NaN as null): n and where it came from, class names, images, missing
/// ids, and per setting: scores, coverage, per-class scores, which classes the mIoU counts,
/// the confusion matrix (rows = ground truth). Pretty-printed.
std::string format_json(const EvalResult& result);

}  // namespace clipes::eval

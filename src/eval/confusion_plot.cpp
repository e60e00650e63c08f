#include "clipes/eval/confusion_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "clipes/core/error.h"
#include "clipes/io/files.h"
#include "clipes/io/png.h"

namespace clipes::eval {

namespace {

constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
const cv::Scalar kBlack(0, 0, 0);
const cv::Scalar kGrid(200, 200, 200);
const cv::Scalar kNoData(215, 215, 215);

// Viridis-like colour for v in [0, 1], BGR: a 256-entry OpenCV colour map.
cv::Vec3b colour(const cv::Mat& lut, double v) {
  const int i = std::clamp(static_cast<int>(std::lround(v * 255.0)), 0, 255);
  return lut.at<cv::Vec3b>(0, i);
}

cv::Mat colour_lut() {
  cv::Mat ramp(1, 256, CV_8UC1);
  for (int i = 0; i < 256; ++i) ramp.at<std::uint8_t>(0, i) = static_cast<std::uint8_t>(i);
  cv::Mat lut;
  cv::applyColorMap(ramp, lut, cv::COLORMAP_VIRIDIS);
  return lut;
}

int text_width(const std::string& text, double scale, int thickness) {
  int baseline = 0;
  return cv::getTextSize(text, kFont, scale, thickness, &baseline).width;
}

// Draws `text` rotated by 90 degrees (reading upwards) with its start at the bottom of `box`.
void put_vertical(cv::Mat& canvas, const std::string& text, const cv::Rect& box, double scale,
                  int thickness) {
  cv::Mat strip(box.width, box.height, CV_8UC3, cv::Scalar(255, 255, 255));
  int baseline = 0;
  const cv::Size size = cv::getTextSize(text, kFont, scale, thickness, &baseline);
  const int y = (strip.rows + size.height) / 2;
  cv::putText(strip, text, cv::Point(4, y), kFont, scale, kBlack, thickness, cv::LINE_AA);
  cv::Mat rotated;
  cv::rotate(strip, rotated, cv::ROTATE_90_COUNTERCLOCKWISE);
  rotated.copyTo(canvas(box));
}

/// Where everything goes: cell size, text scales, the matrix's corner and side, the canvas size.
struct Layout {
  bool small = true;
  int cell = 30;
  double label_scale = 0.45;
  double cell_scale = 0.36;
  int label_len = 0;
  int title_h = 34, axis_h = 24, bar_w = 18, bar_gap = 16, tick_w = 50, margin = 12;
  int left = 0, top = 0, side = 0, width = 0, height = 0;
};

Layout layout_for(int n, const std::vector<std::string>& names, const std::string& title) {
  Layout l;
  l.small = n <= 30;
  l.cell = l.small ? 30 : 15;
  l.label_scale = l.small ? 0.45 : 0.36;
  for (const std::string& name : names) {
    l.label_len = std::max(l.label_len, text_width(name, l.label_scale, 1));
  }
  l.label_len += 12;
  l.left = l.margin + l.axis_h + l.label_len;
  l.top = l.title_h + l.axis_h + l.label_len;
  l.side = n * l.cell;
  l.width = std::max(l.left + l.side + l.bar_gap + l.bar_w + l.tick_w + l.margin,
                     text_width(title, 0.55, 1) + 2 * l.margin);
  l.height = l.top + l.side + l.margin;
  return l;
}

// The title, and the names of the two axes (the ground-truth one reading upwards).
void draw_titles(cv::Mat& canvas, const Layout& l, const std::string& title) {
  cv::putText(canvas, title, cv::Point(l.margin, 24), kFont, 0.55, kBlack, 1, cv::LINE_AA);
  const std::string pred_axis = "predicted class";
  cv::putText(canvas, pred_axis,
              cv::Point(l.left + (l.side - text_width(pred_axis, 0.5, 1)) / 2, l.title_h + 16),
              kFont, 0.5, kBlack, 1, cv::LINE_AA);
  const std::string gt_axis = "ground-truth class (rows sum to 100%)";
  const int gt_len = std::min(text_width(gt_axis, 0.5, 1) + 8, l.height - l.margin);
  const int gt_y = std::clamp(l.top + (l.side - gt_len) / 2, 0, l.height - gt_len);
  put_vertical(canvas, gt_axis, cv::Rect(l.margin, gt_y, l.axis_h, gt_len), 0.5, 1);
}

// One coloured cell per (ground truth, prediction), row-normalised; percentages when small.
void draw_cells(cv::Mat& canvas, const Layout& l, const ConfusionMatrix& matrix,
                const cv::Mat& lut) {
  const int n = matrix.n;
  const int cell = l.cell;
  for (int g = 0; g < n; ++g) {
    std::int64_t row = 0;
    for (int p = 0; p < n; ++p) row += matrix.at(g, p);
    for (int p = 0; p < n; ++p) {
      const cv::Rect r(l.left + p * cell, l.top + g * cell, cell, cell);
      if (row == 0) {
        canvas(r).setTo(kNoData);
        continue;
      }
      const double v = static_cast<double>(matrix.at(g, p)) / static_cast<double>(row);
      const cv::Vec3b c = colour(lut, v);
      canvas(r).setTo(cv::Scalar(c[0], c[1], c[2]));
      if (l.small && matrix.at(g, p) > 0) {
        const std::string text = 100.0 * v < 0.5 ? "<1" : fmt::format("{:.0f}", 100.0 * v);
        const cv::Scalar ink = v > 0.6 ? kBlack : cv::Scalar(255, 255, 255);
        const int tw = text_width(text, l.cell_scale, 1);
        cv::putText(canvas, text, cv::Point(r.x + (cell - tw) / 2, r.y + cell / 2 + 5), kFont,
                    l.cell_scale, ink, 1, cv::LINE_AA);
      }
    }
  }
}

// The grid lines, and the class names left of the rows and above the columns.
void draw_grid_and_labels(cv::Mat& canvas, const Layout& l, const std::vector<std::string>& names) {
  const int n = static_cast<int>(names.size());
  const int left = l.left, top = l.top, side = l.side, cell = l.cell;
  for (int i = 0; i <= n; ++i) {
    cv::line(canvas, {left, top + i * cell}, {left + side, top + i * cell}, kGrid, 1);
    cv::line(canvas, {left + i * cell, top}, {left + i * cell, top + side}, kGrid, 1);
  }
  for (int k = 0; k < n; ++k) {
    const std::string& name = names[static_cast<std::size_t>(k)];
    const int tw = text_width(name, l.label_scale, 1);
    const int baseline_y = top + k * cell + cell / 2 + (l.small ? 5 : 4);
    cv::putText(canvas, name, cv::Point(left - 6 - tw, baseline_y), kFont, l.label_scale, kBlack, 1,
                cv::LINE_AA);
    put_vertical(canvas, name, cv::Rect(left + k * cell, top - l.label_len, cell, l.label_len),
                 l.label_scale, 1);
  }
}

// Colour bar with ticks at 0, 25, 50, 75, 100 %.
void draw_colour_bar(cv::Mat& canvas, const Layout& l, const cv::Mat& lut) {
  const int top = l.top, side = l.side, bar_w = l.bar_w;
  const int bar_x = l.left + side + l.bar_gap;
  for (int y = 0; y < side; ++y) {
    const cv::Vec3b c = colour(lut, 1.0 - static_cast<double>(y) / std::max(1, side - 1));
    cv::line(canvas, {bar_x, top + y}, {bar_x + bar_w - 1, top + y}, cv::Scalar(c[0], c[1], c[2]));
  }
  cv::rectangle(canvas, cv::Rect(bar_x, top, bar_w, side), kGrid, 1);
  for (int t = 0; t <= 4; ++t) {
    const int y = top + (side - 1) * (4 - t) / 4;
    cv::line(canvas, {bar_x + bar_w, y}, {bar_x + bar_w + 4, y}, kBlack, 1);
    cv::putText(canvas, fmt::format("{}%", 25 * t), cv::Point(bar_x + bar_w + 7, y + 5), kFont, 0.4,
                kBlack, 1, cv::LINE_AA);
  }
}

}  // namespace

cv::Mat render_confusion(const ConfusionMatrix& matrix, const std::vector<std::string>& names,
                         const std::string& title) {
  const int n = matrix.n;
  if (n < 1 || static_cast<int>(names.size()) != n) {
    throw Error(
        fmt::format("confusion plot: {} class names for a {}x{} matrix", names.size(), n, n));
  }
  const Layout layout = layout_for(n, names, title);
  cv::Mat canvas(layout.height, layout.width, CV_8UC3, cv::Scalar(255, 255, 255));
  const cv::Mat lut = colour_lut();
  draw_titles(canvas, layout, title);
  draw_cells(canvas, layout, matrix, lut);
  draw_grid_and_labels(canvas, layout, names);
  draw_colour_bar(canvas, layout, lut);
  return canvas;
}

void write_confusion_png(const std::filesystem::path& file, const ConfusionMatrix& matrix,
                         const std::vector<std::string>& names, const std::string& title) {
  io::write_file_atomic(file, io::encode_png_u8(render_confusion(matrix, names, title)));
}

}  // namespace clipes::eval

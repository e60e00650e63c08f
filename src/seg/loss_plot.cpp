#include "clipes/seg/loss_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>
#include <string>

#include "clipes/io/files.h"
#include "clipes/io/png.h"

namespace clipes::seg {

namespace {

/// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `ticks` intervals.
double tick_step(double range, int ticks) {
  const double raw = range / ticks;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * power >= raw) return m * power;
  }
  return 10 * power;
}

std::string tick_label(double v, double step) {
  if (step >= 1) return fmt::format("{:.0f}", v);
  const int decimals = static_cast<int>(std::ceil(-std::log10(step)));
  return fmt::format("{:.{}f}", v, decimals);
}

void put_text(cv::Mat& img, const std::string& text, cv::Point at, double scale, int align) {
  int baseline = 0;
  const cv::Size size = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, scale, 1, &baseline);
  // align: 0 left, 1 centre, 2 right (horizontally); the point is the vertical centre.
  const int x = align == 0 ? at.x : align == 1 ? at.x - size.width / 2 : at.x - size.width;
  cv::putText(img, text, {x, at.y + size.height / 2}, cv::FONT_HERSHEY_SIMPLEX, scale,
              cv::Scalar(20, 20, 20), 1, cv::LINE_AA);
}

}  // namespace

cv::Mat draw_loss_plot(const std::vector<HistoryRow>& history, int width, int height) {
  cv::Mat img(height, width, CV_8UC3, cv::Scalar(255, 255, 255));
  const int left = 80;
  const int right = width - 30;
  const int top = 50;
  const int bottom = height - 60;

  double x_min = 0;
  double x_max = 1;
  double y_max = 1;
  if (!history.empty()) {
    x_min = static_cast<double>(history.front().iteration);
    x_max = static_cast<double>(history.back().iteration);
    if (x_max <= x_min) x_max = x_min + 1;
    y_max = 0;
    for (const auto& r : history) {
      if (std::isfinite(r.loss)) y_max = std::max(y_max, r.loss);
    }
    if (y_max <= 0) y_max = 1;
  }
  const double y_step = tick_step(y_max, 5);
  y_max = std::ceil(y_max / y_step) * y_step;
  auto px = [&](double x) {
    return left + static_cast<int>(std::lround((x - x_min) / (x_max - x_min) * (right - left)));
  };
  auto py = [&](double y) {
    return bottom - static_cast<int>(std::lround(y / y_max * (bottom - top)));
  };

  // Grid and ticks.
  const cv::Scalar grid(225, 225, 225);
  const cv::Scalar axis(40, 40, 40);
  for (double y = 0; y <= y_max + 1e-9; y += y_step) {
    cv::line(img, {left, py(y)}, {right, py(y)}, grid, 1);
    cv::line(img, {left - 5, py(y)}, {left, py(y)}, axis, 1);
    put_text(img, tick_label(y, y_step), {left - 8, py(y)}, 0.45, 2);
  }
  const double x_step = tick_step(x_max - x_min, 6);
  for (double x = std::ceil(x_min / x_step) * x_step; x <= x_max + 1e-9; x += x_step) {
    cv::line(img, {px(x), top}, {px(x), bottom}, grid, 1);
    cv::line(img, {px(x), bottom}, {px(x), bottom + 5}, axis, 1);
    put_text(img, tick_label(x, x_step), {px(x), bottom + 16}, 0.45, 1);
  }
  cv::line(img, {left, bottom}, {right, bottom}, axis, 1);
  cv::line(img, {left, top}, {left, bottom}, axis, 1);
  put_text(img, "iteration", {(left + right) / 2, height - 18}, 0.55, 1);
  put_text(img, "training loss", {(left + right) / 2, top / 2}, 0.65, 1);
  {
    // The y label, rotated: drawn on a strip and turned by 90 degrees.
    cv::Mat strip(30, 120, CV_8UC3, cv::Scalar(255, 255, 255));
    put_text(strip, "loss", {60, 15}, 0.55, 1);
    cv::Mat rotated;
    cv::rotate(strip, rotated, cv::ROTATE_90_COUNTERCLOCKWISE);
    const int y0 = std::max(0, (top + bottom) / 2 - rotated.rows / 2);
    if (y0 + rotated.rows <= height)
      rotated.copyTo(img(cv::Rect(5, y0, rotated.cols, rotated.rows)));
  }

  if (!history.empty()) {
    std::vector<cv::Point> raw;
    std::vector<cv::Point> smooth;
    const std::size_t window = std::max<std::size_t>(1, history.size() / 50);
    double sum = 0;
    for (std::size_t i = 0; i < history.size(); ++i) {
      sum += history[i].loss;
      if (i >= window) sum -= history[i - window].loss;
      const double x = static_cast<double>(history[i].iteration);
      raw.emplace_back(px(x), py(history[i].loss));
      smooth.emplace_back(px(x), py(sum / static_cast<double>(std::min(i + 1, window))));
    }
    cv::polylines(img, raw, false, cv::Scalar(185, 185, 185), 1, cv::LINE_8);
    cv::polylines(img, smooth, false, cv::Scalar(180, 90, 20), 2, cv::LINE_AA);
    cv::line(img, {right - 190, top + 12}, {right - 160, top + 12}, cv::Scalar(185, 185, 185), 1);
    put_text(img, "per iteration", {right - 152, top + 12}, 0.45, 0);
    cv::line(img, {right - 190, top + 32}, {right - 160, top + 32}, cv::Scalar(180, 90, 20), 2);
    put_text(img, fmt::format("mean of {}", window), {right - 152, top + 32}, 0.45, 0);
  }
  return img;
}

void write_loss_plot(const std::filesystem::path& file, const std::vector<HistoryRow>& history) {
  io::write_file_atomic(file, io::encode_png_u8(draw_loss_plot(history)));
}

}  // namespace clipes::seg

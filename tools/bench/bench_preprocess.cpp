// Benchmark of image loading and CLIP preprocessing (spec §2) on one photo: decoding, the
// Pillow-exact bicubic resize to multiples of 16, the whole preprocessing (resize, RGB,
// normalisation), OpenCV's INTER_CUBIC for scale, and the bilinear upsampling of CAM maps.
// Usage: clipes-bench-preprocess IMAGE [ROUNDS]
// e.g.   clipes-bench-preprocess ../shared/data/voc-mini/JPEGImages/2009_000177.jpg   (500x375)

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "clipes/clip/preprocess.h"
#include "clipes/data/image.h"
#include "clipes/data/resize.h"

namespace {

using Clock = std::chrono::steady_clock;

/// Median milliseconds of `rounds` calls of `f` (after one warm-up call).
double median_ms(int rounds, const std::function<void()>& f) {
  f();
  std::vector<double> ms;
  for (int r = 0; r < rounds; ++r) {
    const auto start = Clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::nth_element(ms.begin(), ms.begin() + static_cast<std::ptrdiff_t>(ms.size() / 2), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s IMAGE [ROUNDS]\n", argv[0]);
    return 2;
  }
  try {
    namespace data = clipes::data;
    const std::string file = argv[1];
    const int rounds = argc > 2 ? std::max(1, std::stoi(argv[2])) : 50;
    at::set_num_threads(1);
    cv::setNumThreads(1);
    data::LoadedImage image = data::load_image(file);
    const cv::Size size = clipes::clip::clip_input_size(image.rgb.size(), 16);
    std::printf("%s: %dx%d, mode %s -> %dx%d, %d rounds, 1 thread\n", file.c_str(), image.rgb.cols,
                image.rgb.rows, data::image_mode_name(image.decoded.mode), size.width, size.height,
                rounds);

    const double load = median_ms(rounds, [&] { image = data::load_image(file); });
    const double pillow = median_ms(rounds, [&] {
      (void)data::pillow_resize(image.rgb, size, data::PillowFilter::kBicubic);
    });
    const double opencv = median_ms(rounds, [&] {
      cv::Mat out;
      cv::resize(image.rgb, out, size, 0, 0, cv::INTER_CUBIC);
    });
    const double preprocess = median_ms(rounds, [&] {
      (void)clipes::clip::preprocess_for_clip(image.decoded, 16);
    });
    const at::Tensor cams = at::rand({3, size.height / 16, size.width / 16});
    const double maps = median_ms(rounds, [&] {
      (void)data::resize_maps_bilinear(cams, image.rgb.rows, image.rgb.cols);
    });
    std::printf("load_image (decode + RGB)          %8.3f ms\n", load);
    std::printf("pillow_resize bicubic (RGB)        %8.3f ms   (%.2fx OpenCV INTER_CUBIC, %.3f ms)\n",
                pillow, pillow / opencv, opencv);
    std::printf("preprocess_for_clip (resize+norm)  %8.3f ms\n", preprocess);
    std::printf("resize_maps_bilinear 3 CAMs        %8.3f ms   (%dx%d -> %dx%d)\n", maps,
                size.width / 16, size.height / 16, image.rgb.cols, image.rgb.rows);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

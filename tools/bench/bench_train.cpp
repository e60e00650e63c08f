// clipes-bench-train: seconds per training iteration of DeepLab-v2 (ResNet-101, MSC) at crop 321,
// for batch 1 and an effective batch 10 (5 x 2 accumulated, the VOC recipe), on CPU and, where
// LibTorch sees a GPU, on CUDA with its peak memory. Synthetic inputs: the data loader is not
// timed (it runs ahead in worker threads). Peak RSS: run under /usr/bin/time -v.

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <torch/cuda.h>
#include <torch/optim/sgd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <sstream>
#include <string>
#include <vector>

#if defined(CLIPES_BENCH_CUDA_STATS)
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "process_setup.h"
#include "bench_util.h"
#include "clipes/seg/deeplab.h"
#include "clipes/seg/optimizer.h"
#include "clipes/seg/trainer.h"
#include "console_reporter.h"

namespace {

struct Shape {
  int batch = 1;
  int iter_size = 1;
};

std::vector<Shape> parse_shapes(const std::string& text) {
  std::vector<Shape> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    Shape s;
    if (std::sscanf(item.c_str(), "%dx%d", &s.batch, &s.iter_size) != 2 || s.batch < 1 ||
        s.iter_size < 1) {
      throw std::runtime_error("--shapes: expected BATCHxITER_SIZE items, got " + item);
    }
    out.push_back(s);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  clipes::cli::reexec_with_runtime_settings(argv, clipes::cli::BlasKernels::kFastest);
  CLI::App app{"clipes-bench-train: seconds per DeepLab-v2 training iteration"};
  std::string shapes_text = "1x1,5x2";
  int crop = 321;
  int iterations = 2;
  int warmup = 1;
  int depth = 101;
  bool no_msc = false;
  int threads = 0;
  std::string devices = "auto";
  app.add_option("--shapes", shapes_text, "BATCHxITER_SIZE list (5x2 = effective batch 10)")
      ->capture_default_str();
  app.add_option("--crop", crop, "crop side")->capture_default_str();
  app.add_option("--iterations", iterations, "timed iterations per shape")->capture_default_str();
  app.add_option("--warmup", warmup, "untimed iterations first")->capture_default_str();
  app.add_option("--depth", depth, "ResNet depth (50 or 101)")->capture_default_str();
  app.add_flag("--no-msc", no_msc, "without the multi-scale wrapper");
  app.add_option("--threads", threads, "CPU threads (0 = all cores)")->capture_default_str();
  app.add_option("--devices", devices, "cpu, cuda, or auto (cpu, and cuda when present)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    const int used_threads = clipes::cli::set_threads(threads);
    std::vector<std::string> device_list;
    if (devices == "auto") {
      device_list.push_back("cpu");
      if (torch::cuda::is_available()) device_list.push_back("cuda");
    } else {
      device_list.push_back(clipes::seg::resolve_device(devices));
    }
    clipes::seg::DeepLabConfig mc;
    mc.depth = depth;
    mc.msc = !no_msc;
    clipes::seg::OptimConfig oc;
    fmt::print("DeepLab-v2 ResNet-{}{} crop {}x{}, {} CPU threads, fp32\n", depth,
               mc.msc ? " MSC" : "", crop, crop, used_threads);
    fmt::print("{:<6} {:>6} {:>9} {:>10} {:>10} {:>12} {:>14}\n", "device", "batch", "iter_size",
               "s/iter", "s/image", "images/s", "peak memory");
    for (const auto& device : device_list) {
      for (const Shape& shape : parse_shapes(shapes_text)) {
        clipes::seg::DeepLab model(mc, 0);
        model->to(c10::Device(device));
        model->train();
        auto optimizer = clipes::seg::make_optimizer(*model, oc);
        std::vector<clipes::seg::Batch> batches(static_cast<std::size_t>(shape.iter_size));
        for (auto& b : batches) {
          b.images = at::randn({shape.batch, 3, crop, crop}) * 50;
          b.labels = at::randint(0, mc.num_classes, {shape.batch, crop, crop}, at::kLong);
        }
#if defined(CLIPES_BENCH_CUDA_STATS)
        if (device != "cpu") c10::cuda::CUDACachingAllocator::resetPeakStats(0);
#endif
        double seconds = 0;
        for (int it = 0; it < warmup + iterations; ++it) {
          const auto t0 = std::chrono::steady_clock::now();
          clipes::seg::train_step(*model, *optimizer, batches, clipes::seg::LossKind::kCrossEntropy,
                                  device);
          if (device != "cpu") torch::cuda::synchronize();
          const double s =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          if (it >= warmup) seconds += s;
        }
        const double per_iter = seconds / iterations;
        const int images = shape.batch * shape.iter_size;
        std::string memory = fmt::format("{:.2f} GiB RSS", clipes::bench::peak_rss_mib() / 1024.0);
#if defined(CLIPES_BENCH_CUDA_STATS)
        if (device != "cpu") {
          const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
          memory = fmt::format("{:.2f} GiB GPU",
                               static_cast<double>(stats.allocated_bytes[0].peak) / (1 << 30));
        }
#endif
        fmt::print("{:<6} {:>6} {:>9} {:>10.2f} {:>10.2f} {:>12.3f} {:>14}\n", device, shape.batch,
                   shape.iter_size, per_iter, per_iter / images, images / per_iter, memory);
        std::fflush(stdout);
      }
    }
    fmt::print(
        "(CPU peak memory is the process's RSS so far; measure one shape per run with "
        "/usr/bin/time -v for a per-shape figure)\n");
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "clipes-bench-train: {}\n", e.what());
    return 1;
  }
}

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

/// The command line.
struct BenchOptions {
  std::string shapes_text = "1x1,5x2";
  int crop = 321;
  int iterations = 2;
  int warmup = 1;
  int depth = 101;
  bool no_msc = false;
  int threads = 0;
  std::string devices = "auto";

  void add(CLI::App& app) {
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
  }
};

// --devices: auto is the CPU, and CUDA when LibTorch sees a GPU.
std::vector<std::string> devices_to_time(const std::string& devices) {
  std::vector<std::string> device_list;
  if (devices == "auto") {
    device_list.push_back("cpu");
    if (torch::cuda::is_available()) device_list.push_back("cuda");
  } else {
    device_list.push_back(clipes::seg::resolve_device(devices));
  }
  return device_list;
}

// iter_size random batches of `batch` crops with random labels.
std::vector<clipes::seg::Batch> synthetic_batches(const Shape& shape, int crop, int num_classes) {
  std::vector<clipes::seg::Batch> batches(static_cast<std::size_t>(shape.iter_size));
  for (auto& b : batches) {
    b.images = at::randn({shape.batch, 3, crop, crop}) * 50;
    b.labels = at::randint(0, num_classes, {shape.batch, crop, crop}, at::kLong);
  }
  return batches;
}

// The process's peak RSS so far, or on CUDA the allocator's peak.
std::string peak_memory(const std::string& device) {
  std::string memory = fmt::format("{:.2f} GiB RSS", clipes::bench::peak_rss_mib() / 1024.0);
#if defined(CLIPES_BENCH_CUDA_STATS)
  if (device != "cpu") {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
    memory = fmt::format("{:.2f} GiB GPU",
                         static_cast<double>(stats.allocated_bytes[0].peak) / (1 << 30));
  }
#else
  (void)device;
#endif
  return memory;
}

// One table row: a fresh model trained on one shape on one device.
void time_shape(const std::string& device, const Shape& shape, const BenchOptions& o,
                const clipes::seg::DeepLabConfig& mc, const clipes::seg::OptimConfig& oc) {
  clipes::seg::DeepLab model(mc, 0);
  model->to(c10::Device(device));
  model->train();
  auto optimizer = clipes::seg::make_optimizer(*model, oc);
  std::vector<clipes::seg::Batch> batches = synthetic_batches(shape, o.crop, mc.num_classes);
#if defined(CLIPES_BENCH_CUDA_STATS)
  if (device != "cpu") c10::cuda::CUDACachingAllocator::resetPeakStats(0);
#endif
  double seconds = 0;
  for (int it = 0; it < o.warmup + o.iterations; ++it) {
    const auto t0 = std::chrono::steady_clock::now();
    clipes::seg::train_step(*model, *optimizer, batches, clipes::seg::LossKind::kCrossEntropy,
                            device);
    if (device != "cpu") torch::cuda::synchronize();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (it >= o.warmup) seconds += s;
  }
  const double per_iter = seconds / o.iterations;
  const int images = shape.batch * shape.iter_size;
  fmt::print("{:<6} {:>6} {:>9} {:>10.2f} {:>10.2f} {:>12.3f} {:>14}\n", device, shape.batch,
             shape.iter_size, per_iter, per_iter / images, images / per_iter, peak_memory(device));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  clipes::cli::reexec_with_runtime_settings(argv, clipes::cli::BlasKernels::kFastest);
  CLI::App app{"clipes-bench-train: seconds per DeepLab-v2 training iteration"};
  BenchOptions o;
  o.add(app);
  CLI11_PARSE(app, argc, argv);
  try {
    const int used_threads = clipes::cli::set_threads(o.threads);
    const std::vector<std::string> device_list = devices_to_time(o.devices);
    clipes::seg::DeepLabConfig mc;
    mc.depth = o.depth;
    mc.msc = !o.no_msc;
    clipes::seg::OptimConfig oc;
    fmt::print("DeepLab-v2 ResNet-{}{} crop {}x{}, {} CPU threads, fp32\n", o.depth,
               mc.msc ? " MSC" : "", o.crop, o.crop, used_threads);
    fmt::print("{:<6} {:>6} {:>9} {:>10} {:>10} {:>12} {:>14}\n", "device", "batch", "iter_size",
               "s/iter", "s/image", "images/s", "peak memory");
    for (const auto& device : device_list) {
      for (const Shape& shape : parse_shapes(o.shapes_text)) time_shape(device, shape, o, mc, oc);
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

// clipes-bench-crf: seconds per image of the dense CRF (lattice build + 10 mean-field iterations)
// on a 500×375 photo with 3 and 21 labels, single-threaded and with all threads, next to the
// pydensecrf figures measured on the development machine; with --scales, how the time grows with
// the image size. Not a test: it prints, never fails on timings.

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <filesystem>
#include <opencv2/imgproc.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "process_setup.h"
#include "clipes/crf/dense_crf.h"
#include "clipes/data/image.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// pydensecrf (densecrf 2.2 under Cython, -O2) on the development machine, 500×375, 10 iterations.
struct PyDenseCrf {
  int labels;
  double low;
  double high;
};
constexpr PyDenseCrf kPyDenseCrf[] = {{3, 0.50, 0.61}, {21, 0.93, 1.10}};

// A CAM-like unary: a few smooth random blobs per label, −log of their softmax.
std::vector<float> synthetic_unary(int labels, int height, int width, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  const std::int64_t n = static_cast<std::int64_t>(height) * width;
  std::vector<float> logits(static_cast<std::size_t>(labels) * n, 0.0f);
  for (int l = 0; l < labels; ++l) {
    for (int blob = 0; blob < 3; ++blob) {
      const float cx = uniform(rng) * width;
      const float cy = uniform(rng) * height;
      const float r = (0.1f + 0.3f * uniform(rng)) * static_cast<float>(std::min(height, width));
      const float amp = 2.0f + 4.0f * uniform(rng);
      for (int y = 0; y < height; ++y) {
        for (int x = 0; x < width; ++x) {
          const float d2 = ((x - cx) * (x - cx) + (y - cy) * (y - cy)) / (r * r);
          logits[l * n + static_cast<std::int64_t>(y) * width + x] += amp * std::exp(-d2);
        }
      }
    }
  }
  std::vector<float> unary(logits.size());
  for (std::int64_t i = 0; i < n; ++i) {
    float mx = logits[i];
    for (int l = 1; l < labels; ++l) mx = std::max(mx, logits[l * n + i]);
    float sum = 0.0f;
    for (int l = 0; l < labels; ++l) sum += std::exp(logits[l * n + i] - mx);
    for (int l = 0; l < labels; ++l) {
      const float p = std::exp(logits[l * n + i] - mx) / sum;
      unary[l * n + i] = -std::log(std::clamp(p, 1e-5f, 1.0f));
    }
  }
  return unary;
}

// The photo to time, decoded as the pipeline decodes images (a missing or bad file named in the
// error). Only the default photo may be absent (no ../shared beside the checkout): then a
// synthetic stand-in of width x height.
cv::Mat load_image(const std::string& path, bool given, int width, int height) {
  if (given || std::filesystem::exists(path)) {
    cv::Mat rgb = clipes::data::load_image(path).rgb;
    fmt::print("image: {} ({}x{})\n", path, rgb.cols, rgb.rows);
    return rgb;
  }
  // Synthetic stand-in: smooth colour gradients with noise and a few flat regions.
  fmt::print("image: {} not found, using a synthetic {}x{} image\n", path, width, height);
  cv::Mat rgb(height, width, CV_8UC3);
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0.0f, 6.0f);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const bool object = (x - 250) * (x - 250) + (y - 190) * (y - 190) < 90 * 90;
      const float base[3] = {object ? 200.0f : 60.0f + 0.3f * x, object ? 40.0f : 90.0f + 0.2f * y,
                             object ? 50.0f : 120.0f};
      for (int c = 0; c < 3; ++c) {
        rgb.at<cv::Vec3b>(y, x)[c] =
            static_cast<std::uint8_t>(std::clamp(base[c] + noise(rng), 0.0f, 255.0f));
      }
    }
  }
  return rgb;
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Minimum over the runs of each stage: wall-clock seconds and, for one thread, the CPU seconds
// of that thread (robust to other processes competing for the cores).
struct Timing {
  double build_wall = 1e30;
  double infer_wall = 1e30;
  double total_wall = 1e30;
  double build_cpu = 1e30;
  double infer_cpu = 1e30;
  double total_cpu = 1e30;
  std::size_t workspace_bytes = 0;
};

// What a run reuses from the previous ones.
enum class Reuse {
  kNothing,   // fresh buffers, every lattice built (a worker's first image)
  kBuffers,   // work buffers reused, every lattice built (a worker meeting a new image size)
  kPosition,  // buffers and the position lattice of this size reused (an image size seen lately)
};

Timing time_crf(const cv::Mat& image, const std::vector<float>& unary, int labels,
                const clipes::crf::CrfConfig& config, int repeats, Reuse reuse) {
  clipes::crf::CrfWorkspace workspace;
  clipes::crf::CrfWorkspace* buffers = reuse == Reuse::kNothing ? nullptr : &workspace;
  clipes::crf::CrfWorkspace* kernels = reuse == Reuse::kPosition ? &workspace : nullptr;
  Timing best;
  const clipes::crf::PlanarView view{unary.data(), labels, image.rows, image.cols};
  if (buffers != nullptr) clipes::crf::DenseCrf(image, config, kernels).infer(view, buffers);
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    const double c0 = thread_cpu_seconds();
    const clipes::crf::DenseCrf crf(image, config, kernels);
    const double build_wall = seconds_since(t0);
    const double build_cpu = thread_cpu_seconds() - c0;
    const auto t1 = Clock::now();
    const double c1 = thread_cpu_seconds();
    const std::vector<float> q = crf.infer(view, buffers);
    const double infer_wall = seconds_since(t1);
    const double infer_cpu = thread_cpu_seconds() - c1;
    best.build_wall = std::min(best.build_wall, build_wall);
    best.infer_wall = std::min(best.infer_wall, infer_wall);
    best.total_wall = std::min(best.total_wall, build_wall + infer_wall);
    best.build_cpu = std::min(best.build_cpu, build_cpu);
    best.infer_cpu = std::min(best.infer_cpu, infer_cpu);
    best.total_cpu = std::min(best.total_cpu, build_cpu + infer_cpu);
    if (q.empty()) std::abort();
  }
  best.workspace_bytes = workspace.bytes();
  return best;
}

/// The command line.
struct BenchOptions {
  std::string image_path = "../shared/data/voc-mini/JPEGImages/2007_000250.jpg";
  int repeats = 5;
  int iterations = 10;
  int all_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<int> only_labels;
  std::string kernels = "both";
  std::vector<double> scales;

  void add(CLI::App& app) {
    app.add_option("--image", image_path,
                   "a 500x375 photo (default: VOC 2007_000250 from ../shared, or a synthetic "
                   "image when ../shared is absent)");
    app.add_option("--repeats", repeats, "runs per setting; the minimum is reported")
        ->check(CLI::PositiveNumber);
    app.add_option("--iterations", iterations, "mean-field iterations")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--threads", all_threads, "threads of the multi-threaded runs")
        ->check(CLI::PositiveNumber);
    app.add_option("--labels", only_labels,
                   "which of the label counts 3 and 21 to run (default: both)")
        ->check(CLI::IsMember({3, 21}));
    app.add_option("--kernels", kernels,
                   "pairwise kernels: both, gaussian or bilateral (a stage's cost)")
        ->check(CLI::IsMember({"both", "gaussian", "bilateral"}));
    app.add_option("--scales", scales,
                   "also time 1 thread on the image resized by these factors (growth with size)")
        ->check(CLI::Range(0.05, 8.0));
  }

  /// Whether --labels asks for this label count (all when not given).
  bool wanted(int labels) const {
    return only_labels.empty() ||
           std::find(only_labels.begin(), only_labels.end(), labels) != only_labels.end();
  }
};

// The lattices of the image: vertices, blur links and the blur's form.
void print_lattice_stats(const cv::Mat& image, clipes::crf::CrfConfig config) {
  config.threads = 1;
  const clipes::crf::DenseCrf crf(image, config);
  const clipes::crf::DenseCrfStats stats = crf.stats();
  fmt::print("pixels: {}; lattice vertices: Gaussian (d=2) {}, bilateral (d=5) {}\n",
             static_cast<long long>(image.rows) * image.cols, stats.gaussian.num_vertices,
             stats.bilateral.num_vertices);
  const auto blur_form = [](const clipes::crf::LatticeStats& s) {
    const std::int64_t pairs = static_cast<std::int64_t>(s.dim + 1) * s.num_vertices;
    return s.line_vertices > 0
               ? fmt::format("lines ({} of {} vertex-axis pairs)", s.line_vertices, pairs)
               : std::string("whole passes");
  };
  fmt::print("blur links: Gaussian {}, bilateral {}; loop variant: {}\n",
             stats.gaussian.num_neighbour_links / 2, stats.bilateral.num_neighbour_links / 2,
             stats.gaussian.simd);
  fmt::print("blur: Gaussian {}, bilateral {}\n", blur_form(stats.gaussian),
             blur_form(stats.bilateral));
}

// The setting of the timings: iterations, runs, the machine's load.
void print_timing_setup(const BenchOptions& o) {
  double load[3] = {0, 0, 0};
  if (getloadavg(load, 3) < 0) load[0] = -1;
  fmt::print("{} iterations, min of {} runs per setting; load average {:.2f} on {} cores\n",
             o.iterations, o.repeats, load[0], std::thread::hardware_concurrency());
  fmt::print(
      "seconds per image = lattice build (features, lattices, normalisation) + "
      "mean-field iterations; first line: a worker's new image size (work buffers reused, "
      "every lattice built)\n");
}

// One label count on the photo with `threads` threads, next to pydensecrf's figures.
void time_threads(const cv::Mat& image, const std::vector<float>& unary, const PyDenseCrf& ref,
                  const BenchOptions& o, clipes::crf::CrfConfig config, int threads) {
  config.threads = threads;
  const Timing t = time_crf(image, unary, ref.labels, config, o.repeats, Reuse::kBuffers);
  const Timing same = time_crf(image, unary, ref.labels, config, o.repeats, Reuse::kPosition);
  const Timing fresh = time_crf(image, unary, ref.labels, config, o.repeats, Reuse::kNothing);
  fmt::print("labels {:2d}, {} thread{}: wall {:.4f} s = build {:.4f} + iterations {:.4f}",
             ref.labels, threads, threads == 1 ? " " : "s", t.total_wall, t.build_wall,
             t.infer_wall);
  if (threads != 1) {
    fmt::print(" (position lattice reused: {:.4f} s; nothing reused: {:.4f} s)\n", same.total_wall,
               fresh.total_wall);
    return;
  }
  fmt::print("; thread CPU {:.4f} s = {:.4f} + {:.4f}\n", t.total_cpu, t.build_cpu, t.infer_cpu);
  fmt::print(
      "    ratio to pydensecrf ({:.2f}-{:.2f} s): wall {:.2f}-{:.2f}, CPU "
      "{:.2f}-{:.2f} (target <= 0.30)\n",
      ref.low, ref.high, t.total_wall / ref.high, t.total_wall / ref.low, t.total_cpu / ref.high,
      t.total_cpu / ref.low);
  fmt::print(
      "    image size seen lately (position lattice from the workspace): wall {:.4f} s "
      "= build {:.4f} + iterations {:.4f} (ratio {:.2f}-{:.2f}); workspace {:.1f} MB\n",
      same.total_wall, same.build_wall, same.infer_wall, same.total_wall / ref.high,
      same.total_wall / ref.low, static_cast<double>(same.workspace_bytes) / 1e6);
  fmt::print(
      "    nothing reused (fresh buffers): wall {:.4f} s, CPU {:.4f} s (ratio "
      "{:.2f}-{:.2f})\n",
      fresh.total_wall, fresh.total_cpu, fresh.total_cpu / ref.high, fresh.total_cpu / ref.low);
}

// The photo with each wanted label count, one thread and then all threads.
void time_photo(const cv::Mat& image, const BenchOptions& o, const clipes::crf::CrfConfig& config) {
  for (const PyDenseCrf& ref : kPyDenseCrf) {
    if (!o.wanted(ref.labels)) continue;
    if (o.kernels != "both") {
      fmt::print("only the {} kernel (the other's weight is 0)\n", o.kernels);
    }
    const std::vector<float> unary = synthetic_unary(ref.labels, image.rows, image.cols, 11);
    for (const int threads : {1, o.all_threads}) {
      time_threads(image, unary, ref, o, config, threads);
      if (o.all_threads == 1) break;
    }
  }
}

// Resized photos differ in texture (upscaled ones are smoother): the bilateral lattice's
// vertices per pixel say how much (0 with --kernels gaussian).
struct Resized {
  cv::Mat image;
  double pixels;
  double bilateral_vertices;
};

std::vector<Resized> resized_images(const cv::Mat& image, const std::vector<double>& scales,
                                    const clipes::crf::CrfConfig& config) {
  std::vector<Resized> sizes;
  for (const double scale : scales) {
    Resized r;
    cv::resize(image, r.image, cv::Size(), scale, scale,
               scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
    r.pixels = static_cast<double>(r.image.rows) * r.image.cols;
    r.bilateral_vertices = clipes::crf::DenseCrf(r.image, config).stats().bilateral.num_vertices;
    sizes.push_back(std::move(r));
  }
  return sizes;
}

// --scales: how the time of one thread grows with the image size.
void time_growth(const cv::Mat& image, const BenchOptions& o, clipes::crf::CrfConfig config) {
  fmt::print(
      "growth with image size: 1 thread, the image resized (area / linear), a new size each "
      "(every lattice built)\n");
  config.threads = 1;
  const std::vector<Resized> sizes = resized_images(image, o.scales, config);
  for (const PyDenseCrf& ref : kPyDenseCrf) {
    if (!o.wanted(ref.labels)) continue;
    double first_per_pixel = 0;
    for (const Resized& r : sizes) {
      const std::vector<float> unary = synthetic_unary(ref.labels, r.image.rows, r.image.cols, 11);
      const Timing t = time_crf(r.image, unary, ref.labels, config, o.repeats, Reuse::kBuffers);
      const double per_pixel = t.total_wall / r.pixels;
      if (first_per_pixel == 0) first_per_pixel = per_pixel;
      fmt::print(
          "labels {:2d}, {:4d}x{:<4d} ({:7.0f} pixels): {:.4f} s = build {:.4f} + iterations "
          "{:.4f}; {:.2f} us per pixel ({:.2f}x the first size's); bilateral vertices per "
          "pixel {:.2f}; work buffers {:.1f} MB\n",
          ref.labels, r.image.cols, r.image.rows, r.pixels, t.total_wall, t.build_wall,
          t.infer_wall, per_pixel * 1e6, per_pixel / first_per_pixel,
          r.bilateral_vertices / r.pixels, static_cast<double>(t.workspace_bytes) / 1e6);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  clipes::cli::reexec_with_runtime_settings(argv, clipes::cli::BlasKernels::kFastest);
  CLI::App app{"clipes-bench-crf: dense CRF seconds per image (not a test)"};
  BenchOptions o;
  o.add(app);
  CLI11_PARSE(app, argc, argv);

  try {
    const cv::Mat image = load_image(o.image_path, app.count("--image") > 0, 500, 375);
    clipes::crf::CrfConfig config;
    config.iterations = o.iterations;
    if (o.kernels == "gaussian") config.bilateral_weight = 0.0f;
    if (o.kernels == "bilateral") config.pos_weight = 0.0f;
    print_lattice_stats(image, config);
    print_timing_setup(o);
    time_photo(image, o, config);
    if (!o.scales.empty()) time_growth(image, o, config);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "clipes-bench-crf: %s\n", e.what());
    return 1;
  }
  return 0;
}

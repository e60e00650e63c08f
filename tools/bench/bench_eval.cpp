// clipes-bench-eval: time of clipes-eval's batch (decode + confusion matrix + scores) on synthetic
// VOC-like masks, with 1 and 2 threads. Writes the masks to a temporary folder first (not timed).

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <thread>

#include "clipes/core/reporter.h"
#include "bench_util.h"
#include "clipes/eval/evaluate.h"
#include "clipes/io/png.h"

namespace fs = std::filesystem;

namespace {

// One image: a few class ellipses with a 255 boundary band (GT), and a prediction that shifts
// and grows them, leaves some pixels 255 and mislabels one object now and then.
void write_pair(const fs::path& dir, int index, int width, int height) {
  std::mt19937 rng(static_cast<unsigned>(index) * 7919u + 17u);
  std::uniform_int_distribution<int> cls(1, 20), cx(0, width - 1), cy(0, height - 1), axis(20, 150),
      shift(-12, 12), count(1, 4);
  cv::Mat gt(height, width, CV_8UC1, cv::Scalar(0));
  cv::Mat pred(height, width, CV_8UC1, cv::Scalar(0));
  const int objects = count(rng);
  for (int o = 0; o < objects; ++o) {
    const cv::Point c(cx(rng), cy(rng));
    const cv::Size a(axis(rng), axis(rng));
    const int k = cls(rng);
    cv::ellipse(gt, c, a, 0, 0, 360, cv::Scalar(k), cv::FILLED);
    cv::ellipse(gt, c, a, 0, 0, 360, cv::Scalar(255), 5);
    const int kp = (rng() % 5 == 0) ? cls(rng) : k;
    cv::ellipse(pred, c + cv::Point(shift(rng), shift(rng)), a + cv::Size(shift(rng), shift(rng)),
                0, 0, 360, cv::Scalar(kp), cv::FILLED);
    cv::ellipse(pred, c, a, 0, 0, 360, cv::Scalar(255), 9);
  }
  const std::string name = fmt::format("{:06d}.png", index);
  clipes::io::write_png_indexed(dir / "gt" / name, gt, clipes::io::voc_palette());
  clipes::io::write_png_indexed(dir / "pred" / name, pred, clipes::io::voc_palette());
}

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"clipes-bench-eval: clipes-eval batch time on synthetic 500x375 masks"};
  int images = 1464, width = 500, height = 375, repeats = 2;
  std::string dir_arg;
  bool keep = false;
  app.add_option("--images", images)->capture_default_str();
  app.add_option("--width", width)->capture_default_str();
  app.add_option("--height", height)->capture_default_str();
  app.add_option("--repeats", repeats, "runs per thread count (best is reported)")
      ->capture_default_str();
  app.add_option("--dir", dir_arg, "where to write the masks (default: a temporary folder)");
  app.add_flag("--keep", keep, "keep the masks");
  CLI11_PARSE(app, argc, argv);

  const fs::path dir =
      dir_arg.empty() ? fs::temp_directory_path() / fmt::format("clipes-bench-eval-{}", getpid())
                      : fs::path(dir_arg);
  fs::create_directories(dir / "gt");
  fs::create_directories(dir / "pred");
  auto t0 = std::chrono::steady_clock::now();
  {
    std::vector<std::thread> pool;
    const int workers = 2;
    for (int w = 0; w < workers; ++w) {
      pool.emplace_back([&, w] {
        for (int i = w; i < images; i += workers) write_pair(dir, i, width, height);
      });
    }
    for (auto& t : pool) t.join();
  }
  const double gen_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %d GT + %d prediction masks of %dx%d in %.2f s (%s)\n", images, images, width,
              height, gen_s, dir.string().c_str());

  clipes::NullReporter reporter;
  clipes::eval::EvalOptions options;
  options.gt_dir = dir / "gt";
  options.pred_dir = dir / "pred";
  options.num_classes = 21;
  double best[3] = {1e30, 1e30, 1e30}, cpu[3] = {0, 0, 0};
  std::vector<std::int64_t> reference;
  double miou = 0;
  for (int r = 0; r < repeats; ++r) {
    for (int threads : {1, 2}) {
      options.threads = threads;
      const auto start = std::chrono::steady_clock::now();
      const double cpu_start = cpu_seconds();
      const clipes::eval::EvalResult result = clipes::eval::evaluate(options, reporter);
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (s < best[threads]) cpu[threads] = cpu_seconds() - cpu_start;
      if (!result.ok()) {
        std::fprintf(stderr, "evaluation failed: %s\n", result.failures.front().reason.c_str());
        return 1;
      }
      best[threads] = std::min(best[threads], s);
      const auto& counts = result.settings.front().confusion.counts;
      if (reference.empty()) reference = counts;
      if (counts != reference) {
        std::fprintf(stderr, "confusion matrices differ between runs\n");
        return 1;
      }
      miou = result.settings.front().scores.mean_iou;
    }
  }
  std::printf("mIoU %.4f (identical confusion matrix on every run)\n", miou);
  for (int threads : {1, 2}) {
    std::printf(
        "threads %d: %.3f s wall (%.3f s CPU) for %d image pairs, %.1f images/s, "
        "%.2f ms per image\n",
        threads, best[threads], cpu[threads], images, images / best[threads],
        1000.0 * best[threads] / images);
  }
  std::printf("speed-up 2 vs 1 thread: %.2fx\n", best[1] / best[2]);
  std::printf("peak RSS %.1f MiB\n", clipes::bench::peak_rss_mib());
  if (!keep && dir_arg.empty()) fs::remove_all(dir);
  return 0;
}

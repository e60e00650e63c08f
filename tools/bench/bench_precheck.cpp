// clipes-bench-precheck: seconds of clipes-train-seg's data check before iteration 1
// (seg::check_training_data: every image/mask/confidence triple decoded and checked in parallel)
// on synthetic VOC-sized triples: a 500x375 JPEG, an 8-bit palette mask (classes and 255) and a
// 16-bit confidence PNG each. 16 distinct triples are encoded and copied under --count names
// (not timed); the files are in the page cache when timed, as on a second run.

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "clipes/io/files.h"
#include "clipes/io/png.h"
#include "clipes/seg/seg_data.h"

namespace fs = std::filesystem;

namespace {

// Triple `variant` under `dir`/{images,masks,confidence}/v<variant>.*: a smooth textured photo
// with a few class ellipses, their mask with a 255 band, a confidence ramp.
void write_variant(const fs::path& dir, int variant, int width, int height) {
  std::mt19937 rng(static_cast<unsigned>(variant) * 7919u + 3u);
  std::uniform_int_distribution<int> cls(1, 20), cx(0, width - 1), cy(0, height - 1),
      axis(20, 150), colour(0, 255);
  cv::Mat image(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      image.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<std::uint8_t>((x + variant * 9) % 256),
                                            static_cast<std::uint8_t>((y * 2) % 256),
                                            static_cast<std::uint8_t>((x + y) % 256));
    }
  }
  cv::Mat mask(height, width, CV_8UC1, cv::Scalar(0));
  for (int o = 0; o < 3; ++o) {
    const cv::Point c(cx(rng), cy(rng));
    const cv::Size a(axis(rng), axis(rng));
    const int k = cls(rng);
    cv::ellipse(image, c, a, 0, 0, 360, cv::Scalar(colour(rng), colour(rng), colour(rng)),
                cv::FILLED);
    cv::ellipse(mask, c, a, 0, 0, 360, cv::Scalar(k), cv::FILLED);
    cv::ellipse(mask, c, a, 0, 0, 360, cv::Scalar(255), 5);
  }
  cv::Mat confidence(height, width, CV_16UC1);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      confidence.at<std::uint16_t>(y, x) = static_cast<std::uint16_t>(40000 + (x * 97 + y) % 25000);
    }
  }
  cv::imwrite((dir / "images" / fmt::format("v{}.jpg", variant)).string(), image,
              {cv::IMWRITE_JPEG_QUALITY, 90});
  clipes::io::write_png_indexed(dir / "masks" / fmt::format("v{}.png", variant), mask,
                                clipes::io::voc_palette());
  clipes::io::write_png_u16(dir / "confidence" / fmt::format("v{}.png", variant), confidence);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"clipes-bench-precheck: seconds of train-seg's data check on synthetic triples"};
  int count = 10582;
  int threads = 0;
  int repeats = 3;
  std::string dir_text = (fs::temp_directory_path() / "clipes-bench-precheck").string();
  app.add_option("--count", count, "triples (VOC train_aug: 10582)")->capture_default_str();
  app.add_option("--threads", threads, "check threads (0: one per core)")->capture_default_str();
  app.add_option("--repeats", repeats, "timed runs after one warm-up")->capture_default_str();
  app.add_option("--dir", dir_text, "scratch folder (removed at the end)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const fs::path dir = dir_text;
  fs::remove_all(dir);
  for (const char* sub : {"images", "masks", "confidence", "variants/images", "variants/masks",
                          "variants/confidence"}) {
    fs::create_directories(dir / sub);
  }
  constexpr int kVariants = 16;
  for (int v = 0; v < kVariants; ++v) write_variant(dir / "variants", v, 500, 375);
  for (int i = 0; i < count; ++i) {
    const int v = i % kVariants;
    const std::string id = fmt::format("{:06d}", i);
    fs::copy_file(dir / "variants/images" / fmt::format("v{}.jpg", v), dir / "images" / (id + ".jpg"));
    fs::copy_file(dir / "variants/masks" / fmt::format("v{}.png", v), dir / "masks" / (id + ".png"));
    fs::copy_file(dir / "variants/confidence" / fmt::format("v{}.png", v),
                  dir / "confidence" / (id + ".png"));
  }
  clipes::seg::SegDataPaths paths;
  paths.images = dir / "images";
  paths.masks = dir / "masks";
  paths.confidence = dir / "confidence";
  std::size_t problems = 0;
  const auto timing = clipes::bench::time_runs(repeats, [&] {
    const clipes::seg::SegDataset dataset(paths, 21, 0.95f);
    problems = clipes::seg::check_training_data(dataset, threads).size();
  });
  const int used = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  std::printf(
      "data check of %d triples (500x375 JPEG + palette mask + 16-bit confidence), %d threads: "
      "median %.2f s, min %.2f s (%.3f ms per triple); %zu problems; peak RSS %.0f MiB\n",
      count, used, timing.median, timing.min, 1e3 * timing.min / count, problems,
      clipes::bench::peak_rss_mib());
  std::printf("scaled to 10582 triples (VOC train_aug): %.1f s\n", timing.min * 10582.0 / count);
  fs::remove_all(dir);
  return problems == 0 ? 0 : 1;
}

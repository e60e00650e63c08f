// clipes-bench-clip: how long the CLIP ViT takes to load and to run the CLIP-ES vision pass
// (embed + blocks 1..L-1 + last block with the GradCAM backward for K classes) at one image size,
// and the process's peak memory. With no model file at --model, writes one with random weights
// of the real ViT-B/16 sizes first (scripts/make_tiny_clip.py --arch ViT-B/16).
//
//   clipes-bench-clip --model /tmp/vit_b16_random.pt [--width 512 --height 384] [--threads 2]
//   /usr/bin/time -v clipes-bench-clip ...   (for the kernel's view of the peak RSS)

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "bench_util.h"
#include "process_setup.h"
#include "clipes/clip/model.h"
#include "clipes/core/error.h"
#include "console_reporter.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// The command line.
struct BenchOptions {
  std::string model_path;
  std::string script = std::string(CLIPES_SOURCE_DIR) + "/scripts/make_tiny_clip.py";
  std::string python = "/usr/bin/python3";
  std::string arch = "ViT-B/16";
  int width = 512;
  int height = 384;
  int threads = 0;
  int repeats = 3;

  void add(CLI::App& app) {
    app.add_option("--model", model_path, "CLIP model file; made with random weights if absent")
        ->required();
    app.add_option("--arch", arch, "sizes of the model made when --model is absent")
        ->check(CLI::IsMember({"ViT-B/16", "ViT-B/32", "ViT-L/14"}));
    app.add_option("--width", width, "image width in pixels (a multiple of the patch size)");
    app.add_option("--height", height, "image height in pixels (a multiple of the patch size)");
    app.add_option("--threads", threads, "LibTorch threads (0 = all cores)");
    app.add_option("--repeats", repeats, "timed runs per stage (after one warm-up)")
        ->check(CLI::PositiveNumber);
    app.add_option("--script", script, "scripts/make_tiny_clip.py");
    app.add_option("--python", python, "Python with torch that runs the script");
  }
};

// With no file at --model, makes one with random weights of --arch's sizes.
void make_model_if_absent(const BenchOptions& o) {
  if (std::filesystem::exists(o.model_path)) return;
  const std::string command =
      fmt::format("\"{}\" \"{}\" --arch {} --out \"{}\"", o.python, o.script, o.arch, o.model_path);
  fmt::print("model {} is absent; making one with random weights: {}\n", o.model_path, command);
  const auto start = Clock::now();
  if (std::system(command.c_str()) != 0) {
    throw clipes::Error(fmt::format("could not make {} with {}", o.model_path, command));
  }
  fmt::print("  made in {:.1f} s\n", seconds_since(start));
}

// Loads the model, timed, and prints its sizes and the table's head.
clipes::clip::ClipModel load_model(const BenchOptions& o, int used_threads) {
  auto start = Clock::now();
  auto model = clipes::clip::ClipModel::load(o.model_path);
  const double load_s = seconds_since(start);
  const auto& a = model.architecture();
  fmt::print(
      "model: {} ({} vision blocks of width {}), {} threads, image {}x{} ({}x{} "
      "patches)\n",
      o.model_path, a.vision_layers, a.vision_width, used_threads, o.width, o.height,
      o.width / a.vision_patch_size, o.height / a.vision_patch_size);
  fmt::print("{:<44} {:>9} {:>9}\n", "stage", "median s", "min s");
  fmt::print("{:<44} {:>9.3f} {:>9}\n", "load (read file, fp16 -> fp32)", load_s, "");
  return model;
}

struct StageTimes {
  clipes::bench::Timing trunk, k1, k3, text, text_fast;
};

// Times the vision trunk, the GradCAM pass for K = 1 and 3, and the text encoder both ways.
StageTimes time_stages(const clipes::clip::ClipModel& model, const BenchOptions& o) {
  const auto& a = model.architecture();
  const int repeats = o.repeats;
  at::manual_seed(0);
  const at::Tensor pixels = at::randn({1, 3, o.height, o.width});
  const at::Tensor text = clipes::clip::l2_normalize(at::randn({3 + 25, a.embed_dim}));
  at::Tensor tokens = at::randint(1, 49405, {45, a.context_length}, at::kLong);
  tokens.select(1, 0).fill_(49406);
  tokens.select(1, 12).fill_(49407);
  tokens.slice(1, 13).zero_();

  StageTimes t;
  clipes::clip::VisionTrunkOutput trunk;
  t.trunk = clipes::bench::time_runs(
      repeats, [&] { trunk = model.run_trunk(model.embed_image(pixels), 8); });
  // The GradCAM pass: last block on K copies of A, scores softmax(100 f·Tᵀ), one backward of
  // Σ_k s_k(copy k).
  const auto last_block = [&](std::int64_t k) {
    const at::Tensor normed = model.last_block_norm(trunk.tokens, k);
    const auto out = model.last_block_forward(trunk.tokens, normed);
    const at::Tensor s = at::softmax(
        model.logit_scale() * at::matmul(clipes::clip::l2_normalize(out.image_features), text.t()),
        -1);
    at::Tensor loss = s[0][0];
    for (std::int64_t i = 1; i < k; ++i) loss = loss + s[i][i];
    loss.backward();
  };
  t.k1 = clipes::bench::time_runs(repeats, [&] { last_block(1); });
  t.k3 = clipes::bench::time_runs(repeats, [&] { last_block(3); });
  t.text = clipes::bench::time_runs(repeats, [&] { model.encode_text(tokens); });
  t.text_fast = clipes::bench::time_runs(
      repeats, [&] { model.encode_text(tokens, clipes::clip::TextEncoding::kFast); });
  return t;
}

void print_stages(const StageTimes& t) {
  const auto row = [](const std::string& name, clipes::bench::Timing timing) {
    fmt::print("{:<44} {:>9.3f} {:>9.3f}\n", name, timing.median, timing.min);
  };
  row("embed + blocks 1..L-1 (no grad, attention kept)", t.trunk);
  row("last block + backward, K=1", t.k1);
  row("last block + backward, K=3 (one pass)", t.k3);
  row("full forward + backward, K=1",
      clipes::bench::Timing{t.trunk.median + t.k1.median, t.trunk.min + t.k1.min});
  row("full forward + backward, K=3",
      clipes::bench::Timing{t.trunk.median + t.k3.median, t.trunk.min + t.k3.min});
  row("text encoder, 45 prompts (reference: one by one)", t.text);
  row("text encoder, 45 prompts (fast: batched, cut)", t.text_fast);
  fmt::print("ratio K=3 / K=1 (last block + backward): {:.2f}\n", t.k3.median / t.k1.median);
  fmt::print("peak RSS: {:.0f} MiB\n", clipes::bench::peak_rss_mib());
}

}  // namespace

int main(int argc, char** argv) {
  clipes::cli::reexec_with_runtime_settings(argv, clipes::cli::BlasKernels::kFastest);
  CLI::App app{"Times CLIP loading and the CLIP-ES vision pass (forward + GradCAM backward)"};
  BenchOptions o;
  o.add(app);
  CLI11_PARSE(app, argc, argv);

  try {
    const int used_threads = clipes::cli::set_threads(o.threads);
    make_model_if_absent(o);
    const auto model = load_model(o, used_threads);
    print_stages(time_stages(model, o));
  } catch (const std::exception& e) {
    fmt::print(stderr, "clipes-bench-clip: {}\n", e.what());
    return 1;
  }
  return 0;
}

// clipes-bench-prompt-ranking: where the time of `clipes-generate --rank-prompts` goes on the
// text side. Per template, the ranking encodes every class sentence and background word of the
// config, then one softmax per image: by default in one batch cut after the last end token, with
// --exact-text one sentence per call over the full 77-token context as the reference does. This
// times one template's text bank both ways (with the config's real sentences, and with as many
// sentences filling the whole context) against the image side: one vision-tower pass without
// gradients at one image size.
//
//   clipes-bench-prompt-ranking --model /tmp/vitb16.pt --vocab bpe_simple_vocab_16e6.txt.gz
//       [--config configs/voc.json] [--width 500 --height 375] [--threads 1] [--repeats 3]

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "clipes/clip/model.h"
#include "clipes/clip/text_bank.h"
#include "clipes/clip/tokenizer.h"
#include "process_setup.h"
#include "bench_util.h"
#include "clipes/pipeline/generate_config.h"
#include "console_reporter.h"


int main(int argc, char** argv) {
  using namespace clipes;
  cli::reexec_with_runtime_settings(argv, cli::BlasKernels::kFastest);
  CLI::App app{"Times the text side of prompt ranking (one template) against one image pass"};
  std::string model_file, vocab_file, config_file = std::string(CLIPES_SOURCE_DIR) + "/configs/voc.json";
  int width = 500, height = 375, threads = 1, repeats = 3;
  app.add_option("--model", model_file, "CLIP release file")->required()->check(CLI::ExistingFile);
  app.add_option("--vocab", vocab_file, "bpe_simple_vocab_16e6.txt.gz")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--config", config_file, "config whose classes and background words are used");
  app.add_option("--width", width, "image width for the vision pass");
  app.add_option("--height", height, "image height for the vision pass");
  app.add_option("--threads", threads, "LibTorch threads");
  app.add_option("--repeats", repeats, "timed runs (after one warm-up)");
  CLI11_PARSE(app, argc, argv);
  try {
    cli::set_threads(threads);
    const auto config = pipeline::load_generate_config(config_file);
    const auto model = clip::ClipModel::load(model_file);
    const auto tokenizer = clip::Tokenizer::from_file(vocab_file);
    const auto& arch = model.architecture();
    const auto texts = pipeline::build_prompt_texts(config);
    const std::size_t sentences = texts.foreground.size() + texts.background.size();
    std::size_t longest = 0;
    for (const auto* group : {&texts.foreground, &texts.background}) {
      for (const auto& s : *group) longest = std::max(longest, tokenizer.token_count(s));
    }
    // A sentence of context_length - 2 BPE tokens ("a a a ..."): its end token sits at the last
    // position, so the transformer runs over the full context, as the reference does for all.
    std::string long_sentence;
    for (std::int64_t i = 0; i + 2 < arch.context_length; ++i) {
      long_sentence += i == 0 ? "a" : " a";
    }
    const std::vector<std::string> full_sentences(sentences, long_sentence);

    const auto bank = bench::time_runs(repeats, [&] {
      clip::build_text_bank(model, tokenizer, texts.foreground, texts.background);
    });
    const auto fast = bench::time_runs(repeats, [&] {
      clip::build_text_bank(model, tokenizer, texts.foreground, texts.background,
                            clip::TextEncoding::kFast);
    });
    const auto full = bench::time_runs(repeats, [&] {
      clip::encode_sentences(model, tokenizer, full_sentences);
    });
    const auto pixels = at::randn({1, 3, (height + 15) / 16 * 16, (width + 15) / 16 * 16});
    const auto image = bench::time_runs(repeats, [&] {
      at::NoGradGuard no_grad;
      const auto trunk = model.run_trunk(model.embed_image(pixels), 1);
      model.last_block_forward(trunk.tokens, model.last_block_norm(trunk.tokens));
    });
    std::cout << fmt::format(
        "model {}: text {} layers x {} wide, vision {} layers x {} wide; {} LibTorch threads\n"
        "one template's text bank ({} sentences, longest {} tokens): min {:.3f} s, median {:.3f} s "
        "({:.1f} ms per sentence)\n"
        "the same bank in one batch (--rank-prompts default):       min {:.3f} s, median {:.3f} s "
        "({:.1f}x faster)\n"
        "the same count of full-context sentences ({} tokens):      min {:.3f} s, median {:.3f} s "
        "({:.1f}x)\n"
        "one image's vision tower at {}x{} (no gradients):          min {:.3f} s, median {:.3f} s\n"
        "one template costs {:.2f} images ({:.2f} with --exact-text)\n",
        model_file, arch.text_layers, arch.text_width, arch.vision_layers, arch.vision_width,
        threads, sentences, longest, bank.min, bank.median, 1000.0 * bank.min / sentences,
        fast.min, fast.median, bank.min / fast.min,
        arch.context_length, full.min, full.median, full.min / bank.min, width, height, image.min,
        image.median, fast.min / image.min, bank.min / image.min);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "clipes-bench-prompt-ranking: " << e.what() << "\n";
    return 2;
  }
}

// Benchmark of the CLIP tokenizer: vocabulary load time and encoding speed on a prompt list.
// Usage: clipes-bench-tokenizer VOCAB.txt.gz PROMPTS.json [ROUNDS]
// PROMPTS.json: {"fg": [...], "bg": [...]} (e.g. ../shared/reference/small12-voc-mini/prompts.json)
// or a plain JSON array of strings.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "clipes/text/text_clean.h"
#include "clipes/clip/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<std::string> read_prompts(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot read " + file);
  const nlohmann::json json = nlohmann::json::parse(in);
  std::vector<std::string> prompts;
  if (json.is_array()) return json.get<std::vector<std::string>>();
  for (const char* key : {"fg", "bg"}) {
    for (const auto& p : json.at(key)) prompts.push_back(p.get<std::string>());
  }
  return prompts;
}

/// Tokens per second of `rounds` passes of tokenize over `prompts` (BPE tokens, no padding).
double tokens_per_second(const clipes::clip::Tokenizer& tok, const std::vector<std::string>& prompts, int rounds,
                         std::size_t* tokens_per_pass) {
  std::size_t tokens = 0;
  const auto start = Clock::now();
  for (int r = 0; r < rounds; ++r) {
    tokens = 0;
    for (const auto& p : prompts) tokens += tok.encode(p).size();
  }
  const double elapsed = seconds_since(start);
  *tokens_per_pass = tokens;
  return static_cast<double>(tokens) * rounds / elapsed;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s VOCAB.txt.gz PROMPTS.json [ROUNDS]\n", argv[0]);
    return 2;
  }
  try {
    const int rounds = argc > 3 ? std::stoi(argv[3]) : 200;
    const std::vector<std::string> prompts = read_prompts(argv[2]);

    std::vector<double> loads;
    for (int i = 0; i < 5; ++i) {
      const auto start = Clock::now();
      const auto tok = clipes::clip::Tokenizer::from_file(argv[1]);
      loads.push_back(seconds_since(start));
    }
    std::sort(loads.begin(), loads.end());
    std::printf("vocabulary load: %.1f ms (median of 5; min %.1f, max %.1f)\n", loads[2] * 1e3, loads[0] * 1e3,
                loads[4] * 1e3);

    const auto cached = clipes::clip::Tokenizer::from_file(argv[1]);
    clipes::clip::TokenizerOptions no_cache;
    no_cache.cache_capacity = 0;
    const auto uncached = clipes::clip::Tokenizer::from_file(argv[1], no_cache);

    std::size_t tokens = 0;
    const auto first = Clock::now();
    for (const auto& p : prompts) tokens += cached.encode(p).size();
    const double first_pass = seconds_since(first);
    std::printf("%zu prompts, %zu BPE tokens per pass (without start/end/padding)\n", prompts.size(), tokens);
    std::printf("first pass (cold cache): %.3f ms, %.0f tokens/s\n", first_pass * 1e3, tokens / first_pass);

    const double warm = tokens_per_second(cached, prompts, rounds, &tokens);
    const double cold = tokens_per_second(uncached, prompts, rounds, &tokens);
    std::printf("encode, BPE cache on:  %.0f tokens/s (%.1f us per prompt)\n", warm,
                1e6 * tokens / warm / static_cast<double>(prompts.size()));
    std::printf("encode, BPE cache off: %.0f tokens/s (%.1f us per prompt), cache speed-up %.2fx\n", cold,
                1e6 * tokens / cold / static_cast<double>(prompts.size()), warm / cold);

    const auto clean_start = Clock::now();
    for (int r = 0; r < rounds; ++r) {
      for (const auto& p : prompts) (void)clipes::text::clean_text(p);
    }
    const double clean = seconds_since(clean_start) / rounds / static_cast<double>(prompts.size());
    std::printf("clean_text alone: %.1f us per prompt\n", clean * 1e6);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "clipes-bench-tokenizer: %s\n", e.what());
    return 1;
  }
  return 0;
}

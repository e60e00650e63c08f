#include "rank_prompts_cli.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <iostream>

#include "run_control.h"

namespace clipes::cli {

int rank_prompts(const pipeline::GenerateConfig& config, const std::string& templates_file,
                 const pipeline::RankingOptions& options, Reporter& reporter,
                 const std::atomic<bool>* stop) {
  const auto templates = pipeline::read_prompt_templates(templates_file);
  const auto ranker = pipeline::PromptRanker::load(config, options.device, options.keep_fp16);
  const auto summary = ranker.run(templates, options, reporter, stop);
  std::cout << pipeline::format_ranking_table(summary) << std::flush;
  spdlog::info("{} templates over {} images ({} skipped) in {:.1f} s: image features {:.1f} s "
               "(decode {:.1f}, preprocess {:.1f}, vision tower {:.1f}), templates {:.1f} s "
               "({:.2f} s each)",
               summary.ranking.size(), summary.images_used.size(), summary.failures.size(),
               summary.wall_seconds,
               summary.decode_seconds + summary.preprocess_seconds + summary.tower_seconds,
               summary.decode_seconds, summary.preprocess_seconds, summary.tower_seconds,
               summary.text_seconds,
               summary.text_seconds / std::max<double>(1.0, summary.ranking.size()));
  for (const auto& failure : summary.failures) {
    spdlog::error("skipped: {}: {}", failure.id, failure.reason);
  }
  spdlog::info("ranking record: {}", summary.ranking_file.string());
  if (summary.interrupted) {
    spdlog::warn("interrupted: {} of {} templates scored", summary.ranking.size(),
                 summary.templates);
    return kExitInterrupted;
  }
  return summary.failures.empty() ? kExitOk : kExitSomeFailed;
}

}  // namespace clipes::cli

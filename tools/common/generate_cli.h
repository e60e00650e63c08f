#pragma once
/// The parts of clipes-generate's main that are more than flag parsing: the run summary and the
/// prompt ranking mode (--rank-prompts).

#include <atomic>
#include <string>

#include "clipes/core/reporter.h"
#include "clipes/pipeline/generate.h"
#include "clipes/pipeline/generate_config.h"
#include "clipes/pipeline/prompt_ranking.h"

namespace clipes::cli {

/// `--set key=<JSON string>` for a path given on the command line (made absolute unless told).
std::string set_path(const std::string& key, const std::string& path, bool absolute = true);

/// Logs a finished generate run (counts, per-stage seconds, failures, run record) and returns the
/// exit code: 0 every image done, 1 some failed, 130 interrupted.
int report_generate_summary(const pipeline::GenerateSummary& summary);

/// --rank-prompts: reads `templates_file`, loads the model, ranks the templates
/// (pipeline::PromptRanker), prints the table to stdout and says where prompt_ranking.json went.
/// Returns 0 when every selected image was used, 1 when some were skipped (the ranking is still
/// written), 130 when interrupted. Errors of the run as a whole throw.
int rank_prompts(const pipeline::GenerateConfig& config, const std::string& templates_file,
                 const pipeline::RankingOptions& options, Reporter& reporter,
                 const std::atomic<bool>* stop);

}  // namespace clipes::cli

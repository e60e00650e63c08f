#pragma once
/// clipes-generate's prompt ranking mode (--rank-prompts): read the templates, rank them, print the
/// table.

#include <atomic>
#include <string>

#include "clipes/core/reporter.h"
#include "clipes/pipeline/generate_config.h"
#include "clipes/pipeline/prompt_ranking.h"

namespace clipes::cli {

/// --rank-prompts: reads `templates_file`, loads the model, ranks the templates
/// (pipeline::PromptRanker), prints the table to stdout and says where prompt_ranking.json went.
/// Returns 0 when every selected image was used, 1 when some were skipped (the ranking is still
/// written), 130 when interrupted. Errors of the run as a whole throw.
int rank_prompts(const pipeline::GenerateConfig& config, const std::string& templates_file,
                 const pipeline::RankingOptions& options, Reporter& reporter,
                 const std::atomic<bool>* stop);

}  // namespace clipes::cli

#pragma once
/// The parts of clipes-generate's main that are more than flag parsing: paths given as flags, the
/// run summary. The prompt ranking mode (--rank-prompts) is in rank_prompts_cli.h.

#include <string>

#include "clipes/pipeline/generate.h"
#include "clipes/pipeline/generate_config.h"

namespace clipes::cli {

/// `--set key=<JSON string>` for a path given on the command line (made absolute unless told).
std::string set_path(const std::string& key, const std::string& path, bool absolute = true);

/// Logs a finished generate run (counts, per-stage seconds, failures, run record) and returns the
/// exit code: 0 every image done, 1 some failed, 130 interrupted.
int report_generate_summary(const pipeline::GenerateSummary& summary);

}  // namespace clipes::cli

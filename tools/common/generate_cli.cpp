#include "generate_cli.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "console_reporter.h"
#include "run_control.h"

namespace clipes::cli {

std::string set_path(const std::string& key, const std::string& path, bool absolute) {
  const auto value = absolute ? std::filesystem::absolute(path).lexically_normal().string() : path;
  return key + "=" + nlohmann::json(value).dump();
}

int report_generate_summary(const pipeline::GenerateSummary& summary) {
  const auto& s = summary.seconds;
  const double n = std::max<double>(1.0, static_cast<double>(summary.written));
  spdlog::info("{} written, {} already done, {} failed in {:.1f} s ({:.2f} images/s); per image: "
               "decode {:.3f} s, preprocess {:.3f} s, blocks 1..L-1 {:.3f} s, block L + "
               "gradients {:.3f} s, CAA {:.3f} s, CRF {:.3f} s, write {:.3f} s",
               summary.written, summary.skipped, summary.failures.size(), summary.wall_seconds,
               summary.written / std::max(summary.wall_seconds, 1e-9), s.decode / n,
               s.preprocess / n, s.trunk / n, s.last_block / n, s.caa / n, s.crf / n, s.write / n);
  for (const auto& failure : summary.failures) {
    spdlog::error("failed: {}: {}", failure.id, failure.reason);
  }
  spdlog::info("run record: {}", summary.run_file.string());
  if (summary.interrupted) {
    spdlog::warn("interrupted: run the same command again to resume");
    return kExitInterrupted;
  }
  return summary.failures.empty() ? kExitOk : kExitSomeFailed;
}

}  // namespace clipes::cli

#include "clipes/core/run_record.h"

#include <ctime>

#include <fmt/format.h>

namespace clipes {

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

nlohmann::json run_record_json(const RunRecord& record) {
  const ModelRecord& m = record.model;
  const RunCounts& c = record.counts;
  nlohmann::json out;
  out["tool"] = record.tool;
  out["started"] = record.started;
  out["finished"] = record.finished;
  out["config_file"] = record.config_file;
  out["overrides"] = record.overrides;
  out["config"] = record.config;
  out["model"] = {{"file", m.file},         {"format", m.format},
                  {"weights", m.weights},   {"config", m.config},
                  {"sha256", m.sha256},     {"architecture", m.architecture},
                  {"load_seconds", m.load_seconds}};
  out["device"] = record.device;
  out["threads"] = record.threads;
  out["shard"] = fmt::format("{}/{}", record.shard_index, record.shard_count);
  out["limit"] = record.limit;
  out["counts"] = {{"dataset", c.dataset}, {"selected", c.selected},
                   {"skipped_existing", c.skipped}, {"done", c.done}, {"failed", c.failed}};
  out["failures"] = nlohmann::json::array();
  for (const auto& failure : record.failures) {
    out["failures"].push_back({{"id", failure.id}, {"reason", failure.reason}});
  }
  out["interrupted"] = record.interrupted;
  out["wall_seconds"] = record.wall_seconds;
  return out;
}

}  // namespace clipes

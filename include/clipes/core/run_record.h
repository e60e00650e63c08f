#pragma once
/// The header every tool's run record shares (run.json, prompt_ranking.json): which tool ran
/// when, with which config, model, device, threads and shard, how many items it did, skipped and
/// failed (and why), and how long it took. A tool fills a RunRecord, turns it into JSON with
/// run_record_json and adds its own keys beside the header's.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace clipes {

/// The current time as ISO 8601 UTC, e.g. 2026-11-24T18:00:00Z.
std::string utc_now();

/// Seconds of the steady clock since `start`.
double seconds_since(std::chrono::steady_clock::time_point start);

/// A file the run read its model from. Empty fields are written as "".
struct ModelRecord {
  std::string file;          ///< as given (config.model)
  std::string format;        ///< the checkpoint format the loader recognised
  std::string weights;       ///< the weights file actually read
  std::string config;        ///< the model config file beside it ("" when none)
  std::string sha256;        ///< of `weights`
  std::string architecture;  ///< what the loader read off the weights
  double load_seconds = 0;   ///< reading, converting and hashing
};

/// Counts of a batch run over a dataset.
struct RunCounts {
  std::int64_t dataset = 0;   ///< items the dataset lists
  std::int64_t selected = 0;  ///< after the shard and the limit
  std::int64_t skipped = 0;   ///< complete already (resume), not redone
  std::int64_t done = 0;      ///< processed by this run
  std::int64_t failed = 0;    ///< reported and skipped (see failures)
};

struct RunFailure {
  std::string id;
  std::string reason;
};

/// The shared header of a run record.
struct RunRecord {
  std::string tool;      ///< e.g. "clipes-generate"
  std::string started;   ///< utc_now() at the start
  std::string finished;  ///< utc_now() at the end
  std::string config_file;              ///< the config file as given
  std::vector<std::string> overrides;   ///< the --set overrides
  nlohmann::json config;                ///< the config in effect, as its writer dumps it
  ModelRecord model;
  std::string device;
  int threads = 0;          ///< LibTorch's intra-op threads
  int shard_index = 0;      ///< I of --shard I/N
  int shard_count = 1;      ///< N
  std::int64_t limit = -1;  ///< --limit (< 0: none)
  RunCounts counts;
  std::vector<RunFailure> failures;
  bool interrupted = false;  ///< stopped on request before the end
  double wall_seconds = 0;
};

/// The record as JSON: tool, started, finished, config_file, overrides, config, model {file,
/// format, weights, config, sha256, architecture, load_seconds}, device, threads, shard ("I/N"),
/// limit, counts {dataset, selected, skipped_existing, done, failed}, failures [{id, reason}],
/// interrupted, wall_seconds. Tools add their own keys to the object returned.
nlohmann::json run_record_json(const RunRecord& record);

}  // namespace clipes

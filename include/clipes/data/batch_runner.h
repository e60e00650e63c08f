#pragma once
/// The skeleton of every batch run over a dataset (clipes-generate, prompt ranking, prediction):
/// the listed items → this shard and the limit → resume (items complete already are skipped) →
/// each item in isolation (a problem or an exception fails that item only, with its reason) →
/// progress after each item → a stop flag polled between items.
///
/// An item is finished either inside `process` (it returns ItemOutcome::kDone) or later on
/// another thread, which then calls item_done() or item_failed() (kHandedOff). The counts,
/// failures and progress are thread-safe.

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "clipes/core/reporter.h"
#include "clipes/core/run_record.h"
#include "clipes/data/dataset.h"

namespace clipes::data {

/// One item of a batch: its id and, when it cannot be processed, why (Sample::problem).
struct BatchItem {
  std::string id;
  std::string problem;
};

/// The items of `samples` (id, problem), in their order.
std::vector<BatchItem> batch_items(const std::vector<Sample>& samples);

struct BatchOptions {
  std::string stage;       ///< the progress stage, e.g. "generate"
  Shard shard;             ///< this process's share (shard_of each id), e.g. a rank / world size
  std::int64_t limit = -1;  ///< at most this many items of the shard (< 0: all)
  const std::atomic<bool>* stop = nullptr;  ///< raised: start no new item
};

/// The outcome of `process` for one item.
enum class ItemOutcome {
  kDone,       ///< finished: counted as done
  kHandedOff,  ///< another thread finishes it and calls item_done() or item_failed()
};

/// The message of any exception, without LibTorch's C++ backtrace.
std::string failure_reason(const std::exception& e);

class BatchRunner {
 public:
  /// Selects the items of options.shard, then at most options.limit of them (select_samples'
  /// rule). Throws clipes::Error for an invalid shard.
  BatchRunner(const std::vector<BatchItem>& items, BatchOptions options, Reporter& reporter);

  /// Indices into the items given, of the selected ones, in their order.
  const std::vector<std::size_t>& selected() const { return selected_; }
  /// The ids of the selected items, in their order.
  std::vector<std::string> selected_ids() const;

  /// Marks the selected items whose ids are in `complete` as done by an earlier run: run()
  /// skips them and counts them as skipped. Call before run().
  void resume(const std::unordered_set<std::string>& complete);

  /// Runs `process(index)` for each selected item (index into the items given) that is not
  /// complete and has no problem, in order, until the stop flag is raised. An item with a
  /// problem, or whose `process` throws, is failed with the reason (reporter.warn
  /// "<id>: skipped: <reason>"). Progress after each finished item.
  void run(const std::function<ItemOutcome(std::size_t index)>& process);

  void item_done();
  void item_failed(const std::string& id, const std::string& reason);

  /// dataset, selected, skipped, done, failed (so far).
  RunCounts counts() const;
  std::vector<RunFailure> failures() const;
  /// run() stopped on the stop flag before the last item.
  bool interrupted() const { return interrupted_; }

 private:
  void finish_one();

  BatchOptions options_;
  Reporter& reporter_;
  std::vector<BatchItem> items_;
  std::vector<std::size_t> selected_;
  std::unordered_set<std::string> complete_;
  mutable std::mutex mutex_;
  RunCounts counts_;
  std::vector<RunFailure> failures_;
  bool interrupted_ = false;
};

}  // namespace clipes::data

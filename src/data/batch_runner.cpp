#include "clipes/data/batch_runner.h"

#include <c10/util/Exception.h>
#include <fmt/format.h>

#include "clipes/core/error.h"

namespace clipes::data {

std::vector<BatchItem> batch_items(const std::vector<Sample>& samples) {
  std::vector<BatchItem> items;
  items.reserve(samples.size());
  for (const auto& sample : samples) items.push_back({sample.id, sample.problem});
  return items;
}

std::string failure_reason(const std::exception& e) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&e)) {
    return torch_error->what_without_backtrace();
  }
  return e.what();
}

BatchRunner::BatchRunner(const std::vector<BatchItem>& items, BatchOptions options,
                         Reporter& reporter)
    : options_(std::move(options)), reporter_(reporter), items_(items) {
  const Shard& shard = options_.shard;
  if (shard.count < 1 || shard.index < 0 || shard.index >= shard.count) {
    throw Error(fmt::format("invalid shard {}/{}: expected 0 <= I < N", shard.index, shard.count));
  }
  for (std::size_t i = 0; i < items_.size(); ++i) {
    if (options_.limit >= 0 && static_cast<std::int64_t>(selected_.size()) >= options_.limit) break;
    if (shard.count == 1 || shard_of(items_[i].id, shard.count) == shard.index) {
      selected_.push_back(i);
    }
  }
  counts_.dataset = static_cast<std::int64_t>(items_.size());
  counts_.selected = static_cast<std::int64_t>(selected_.size());
}

std::vector<std::string> BatchRunner::selected_ids() const {
  std::vector<std::string> ids;
  ids.reserve(selected_.size());
  for (const std::size_t i : selected_) ids.push_back(items_[i].id);
  return ids;
}

void BatchRunner::resume(const std::unordered_set<std::string>& complete) {
  complete_.clear();
  for (const std::size_t i : selected_) {
    if (complete.count(items_[i].id) > 0) complete_.insert(items_[i].id);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  counts_.skipped = static_cast<std::int64_t>(complete_.size());
}

void BatchRunner::run(const std::function<ItemOutcome(std::size_t index)>& process) {
  reporter_.progress(options_.stage, counts().skipped, counts_.selected);
  for (const std::size_t i : selected_) {
    const BatchItem& item = items_[i];
    if (options_.stop != nullptr && options_.stop->load()) {
      interrupted_ = true;
      break;
    }
    if (complete_.count(item.id) > 0) continue;
    if (!item.problem.empty()) {
      item_failed(item.id, item.problem);
      continue;
    }
    try {
      if (process(i) == ItemOutcome::kDone) item_done();
    } catch (const std::exception& e) {
      item_failed(item.id, failure_reason(e));
    }
  }
}

void BatchRunner::item_done() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++counts_.done;
  }
  finish_one();
}

void BatchRunner::item_failed(const std::string& id, const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    failures_.push_back({id, reason});
    ++counts_.failed;
  }
  reporter_.warn(fmt::format("{}: skipped: {}", id, reason));
  finish_one();
}

void BatchRunner::finish_one() {
  std::int64_t finished = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    finished = counts_.skipped + counts_.done + counts_.failed;
  }
  reporter_.progress(options_.stage, finished, counts_.selected);
}

RunCounts BatchRunner::counts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return counts_;
}

std::vector<RunFailure> BatchRunner::failures() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return failures_;
}

}  // namespace clipes::data

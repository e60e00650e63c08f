// The batch runner: shard and limit as select_samples, resume, per-item isolation, failures,
// progress and the stop flag.

#include "clipes/data/batch_runner.h"

#include <gtest/gtest.h>

#include <c10/util/Exception.h>

#include <mutex>
#include <thread>

#include "clipes/core/error.h"
#include "support/test_support.h"

namespace clipes::data {
namespace {

// Records every progress call and warning.
class RecordingReporter final : public Reporter {
 public:
  void log(LogLevel level, std::string_view message) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (level == LogLevel::kWarn) warnings.emplace_back(message);
  }
  void progress(std::string_view, std::int64_t done, std::int64_t total) override {
    std::lock_guard<std::mutex> lock(mutex_);
    progress_calls.emplace_back(done, total);
  }
  std::vector<std::string> warnings;
  std::vector<std::pair<std::int64_t, std::int64_t>> progress_calls;

 private:
  std::mutex mutex_;
};

std::vector<Sample> samples(int n) {
  std::vector<Sample> out;
  for (int i = 0; i < n; ++i) out.push_back({"id" + std::to_string(i), "", {0}, ""});
  return out;
}

TEST(BatchRunner, SelectsTheSameItemsAsSelectSamples) {
  const auto all = samples(40);
  NullReporter reporter;
  for (const Shard shard : {Shard{0, 1}, Shard{0, 3}, Shard{2, 3}}) {
    for (const std::int64_t limit : {-1, 0, 5}) {
      BatchRunner runner(batch_items(all), {"s", shard, limit, nullptr}, reporter);
      std::vector<std::string> expected;
      for (const auto& sample : select_samples(all, shard, limit)) expected.push_back(sample.id);
      EXPECT_EQ(runner.selected_ids(), expected) << shard.index << "/" << shard.count << " " << limit;
      EXPECT_EQ(runner.counts().dataset, 40);
      EXPECT_EQ(runner.counts().selected, static_cast<std::int64_t>(expected.size()));
    }
  }
  // The three shards of 3 split the 40 items between them.
  std::size_t total = 0;
  for (int i = 0; i < 3; ++i) {
    total += BatchRunner(batch_items(all), {"s", {i, 3}, -1, nullptr}, reporter).selected().size();
  }
  EXPECT_EQ(total, 40u);
}

TEST(BatchRunner, InvalidShardSaysWhatIsExpected) {
  NullReporter reporter;
  const std::string e = testing::error_of(
      [&] { BatchRunner(batch_items(samples(3)), {"s", {3, 3}, -1, nullptr}, reporter); });
  EXPECT_EQ(e, "invalid shard 3/3: expected 0 <= I < N");
}

TEST(BatchRunner, IsolatesFailuresSkipsCompleteItemsAndReportsProgress) {
  auto all = samples(6);
  all[1].problem = "no labels";
  RecordingReporter reporter;
  BatchRunner runner(batch_items(all), {"stage", {}, -1, nullptr}, reporter);
  runner.resume({"id0", "id5", "not-selected"});
  std::vector<std::size_t> processed;
  runner.run([&](std::size_t index) {
    processed.push_back(index);
    if (index == 2) throw Error("cannot decode");
    if (index == 3) TORCH_CHECK(false, "torch says no");
    return ItemOutcome::kDone;
  });
  EXPECT_EQ(processed, (std::vector<std::size_t>{2, 3, 4}));
  const RunCounts c = runner.counts();
  EXPECT_EQ(c.dataset, 6);
  EXPECT_EQ(c.selected, 6);
  EXPECT_EQ(c.skipped, 2);
  EXPECT_EQ(c.done, 1);
  EXPECT_EQ(c.failed, 3);
  const auto failures = runner.failures();
  ASSERT_EQ(failures.size(), 3u);
  EXPECT_EQ(failures[0].id, "id1");
  EXPECT_EQ(failures[0].reason, "no labels");
  EXPECT_EQ(failures[1].reason, "cannot decode");
  EXPECT_EQ(failures[2].id, "id3");
  EXPECT_EQ(failures[2].reason, "torch says no");  // no C++ backtrace
  EXPECT_EQ(reporter.warnings.front(), "id1: skipped: no labels");
  // Progress: the complete items first, then one call per finished item.
  const std::vector<std::pair<std::int64_t, std::int64_t>> progress{
      {2, 6}, {3, 6}, {4, 6}, {5, 6}, {6, 6}};
  EXPECT_EQ(reporter.progress_calls, progress);
  EXPECT_FALSE(runner.interrupted());
}

TEST(BatchRunner, HandedOffItemsAreCountedWhenTheirThreadReports) {
  NullReporter reporter;
  BatchRunner runner(batch_items(samples(5)), {"s", {}, -1, nullptr}, reporter);
  std::vector<std::thread> threads;
  runner.run([&](std::size_t index) {
    threads.emplace_back([&runner, index] {
      if (index % 2 == 0) {
        runner.item_done();
      } else {
        runner.item_failed("id" + std::to_string(index), "late failure");
      }
    });
    return ItemOutcome::kHandedOff;
  });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(runner.counts().done, 3);
  EXPECT_EQ(runner.counts().failed, 2);
}

TEST(BatchRunner, StopsBeforeTheNextItemOnceTheFlagIsRaised) {
  NullReporter reporter;
  std::atomic<bool> stop{false};
  BatchRunner runner(batch_items(samples(5)), {"s", {}, -1, &stop}, reporter);
  int calls = 0;
  runner.run([&](std::size_t) {
    if (++calls == 2) stop = true;
    return ItemOutcome::kDone;
  });
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(runner.counts().done, 2);
  EXPECT_TRUE(runner.interrupted());
}

}  // namespace
}  // namespace clipes::data

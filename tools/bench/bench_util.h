#pragma once
// What the benchmarks share: timing a piece of work over repeats, and the peak memory.

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace clipes::bench {

struct Timing {
  double median = 0;  ///< seconds
  double min = 0;     ///< seconds
};

/// Runs `run` once to warm up, then `repeats` (>= 1) timed times.
inline Timing time_runs(int repeats, const std::function<void()>& run) {
  using Clock = std::chrono::steady_clock;
  run();
  std::vector<double> times;
  for (int i = 0; i < std::max(1, repeats); ++i) {
    const auto start = Clock::now();
    run();
    times.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return {times[times.size() / 2], times.front()};
}

/// Peak resident set of this process so far, in MiB (getrusage's ru_maxrss, KiB on Linux).
inline double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

}  // namespace clipes::bench

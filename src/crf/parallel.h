#pragma once
/// Internal: splitting a range over a few threads inside one image (the CRF's `threads` knob).

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace clipes::crf::detail {

/// threads <= 0 means every hardware thread.
inline int resolve_threads(int threads) {
  if (threads > 0) return threads;
  return std::max(1u, std::thread::hardware_concurrency());
}

/// Calls fn(begin, end) on contiguous chunks of [0, n) using up to `threads` threads (the
/// caller's included), with at least `min_chunk` items per chunk. fn must not throw.
template <class Fn>
void parallel_for(int threads, std::int64_t n, std::int64_t min_chunk, const Fn& fn) {
  if (n <= 0) return;
  const std::int64_t max_parts =
      std::max<std::int64_t>(1, n / std::max<std::int64_t>(1, min_chunk));
  const int parts = static_cast<int>(std::min<std::int64_t>(resolve_threads(threads), max_parts));
  if (parts <= 1) {
    fn(std::int64_t{0}, n);
    return;
  }
  const std::int64_t chunk = (n + parts - 1) / parts;
  std::vector<std::thread> workers;
  workers.reserve(static_cast<std::size_t>(parts - 1));
  for (int p = 1; p < parts; ++p) {
    const std::int64_t begin = p * chunk;
    const std::int64_t end = std::min(n, begin + chunk);
    if (begin >= end) break;
    workers.emplace_back([&fn, begin, end] { fn(begin, end); });
  }
  fn(std::int64_t{0}, std::min(n, chunk));
  for (std::thread& worker : workers) worker.join();
}

}  // namespace clipes::crf::detail

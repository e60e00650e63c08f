#pragma once
/// What the tools print: spdlog lines for messages and, for progress, a bar with rate and ETA on a
/// terminal or a plain line every few seconds when stderr is a file or pipe.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "clipes/core/reporter.h"

namespace clipes::cli {

class ConsoleReporter final : public Reporter {
 public:
  /// `verbose` shows debug messages; `plain_interval` is the seconds between plain progress lines.
  explicit ConsoleReporter(bool verbose = false, double plain_interval = 10.0);
  ~ConsoleReporter() override;

  void log(LogLevel level, std::string_view message) override;
  void progress(std::string_view stage, std::int64_t done, std::int64_t total) override;

 private:
  void clear_bar_locked();

  std::mutex mutex_;
  bool tty_;
  bool verbose_;
  double plain_interval_;
  bool bar_visible_ = false;
  std::string stage_;
  std::chrono::steady_clock::time_point stage_start_;
  std::chrono::steady_clock::time_point last_print_;
  std::int64_t stage_first_done_ = 0;
};

/// "1h02m", "3m05s", "12s".
std::string format_duration(double seconds);

/// Sets up spdlog's default logger (stderr, "[time] [level] message").
void setup_logging(bool verbose);

}  // namespace clipes::cli

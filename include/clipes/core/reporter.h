#pragma once
/// The sink through which the library reports messages and progress. The library never prints;
/// tools pass a reporter that turns these calls into log lines and a progress bar. Calls may come
/// from several threads at once: implementations must be thread-safe.

#include <cstdint>
#include <string_view>

namespace clipes {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

class Reporter {
 public:
  virtual ~Reporter() = default;
  /// One message for the user's log.
  virtual void log(LogLevel level, std::string_view message) = 0;
  /// `done` of `total` units of work of `stage` are finished (total <= 0: unknown).
  virtual void progress(std::string_view stage, std::int64_t done, std::int64_t total) = 0;

  void debug(std::string_view m) { log(LogLevel::kDebug, m); }
  void info(std::string_view m) { log(LogLevel::kInfo, m); }
  void warn(std::string_view m) { log(LogLevel::kWarn, m); }
  void error(std::string_view m) { log(LogLevel::kError, m); }
};

/// A reporter that drops everything (tests, library calls without a user watching).
class NullReporter final : public Reporter {
 public:
  void log(LogLevel, std::string_view) override {}
  void progress(std::string_view, std::int64_t, std::int64_t) override {}
};

}  // namespace clipes

#include "console_reporter.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace clipes::cli {

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e8) return "?";
  const auto s = static_cast<long long>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02d}m", s / 3600, static_cast<int>((s % 3600) / 60));
  if (s >= 60) return fmt::format("{}m{:02d}s", s / 60, static_cast<int>(s % 60));
  return fmt::format("{}s", s);
}

void setup_logging(bool verbose) {
  auto logger = spdlog::stderr_color_mt("clipes");
  logger->set_pattern("[%H:%M:%S] [%^%l%$] %v");
  logger->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  spdlog::set_default_logger(logger);
}

ConsoleReporter::ConsoleReporter(bool verbose, double plain_interval)
    : tty_(::isatty(STDERR_FILENO) != 0), verbose_(verbose), plain_interval_(plain_interval) {}

ConsoleReporter::~ConsoleReporter() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (bar_visible_) std::fputc('\n', stderr);
}

void ConsoleReporter::clear_bar_locked() {
  if (bar_visible_) {
    std::fputs("\r\033[2K", stderr);
    bar_visible_ = false;
  }
}

void ConsoleReporter::log(LogLevel level, std::string_view message) {
  if (level == LogLevel::kDebug && !verbose_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  clear_bar_locked();
  switch (level) {
    case LogLevel::kDebug: spdlog::debug("{}", message); break;
    case LogLevel::kInfo: spdlog::info("{}", message); break;
    case LogLevel::kWarn: spdlog::warn("{}", message); break;
    case LogLevel::kError: spdlog::error("{}", message); break;
  }
}

void ConsoleReporter::progress(std::string_view stage, std::int64_t done, std::int64_t total) {
  if (!spdlog::should_log(spdlog::level::info)) return;  // e.g. a rank other than 0
  std::lock_guard<std::mutex> lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (stage != stage_) {
    if (bar_visible_) std::fputc('\n', stderr);
    bar_visible_ = false;
    stage_ = std::string(stage);
    stage_start_ = now;
    last_print_ = now - std::chrono::hours(1);
    stage_first_done_ = done;
  }
  const double elapsed = std::chrono::duration<double>(now - stage_start_).count();
  const double since_print = std::chrono::duration<double>(now - last_print_).count();
  const bool finished = total > 0 && done >= total;
  if (!finished && since_print < (tty_ ? 0.2 : plain_interval_)) return;
  last_print_ = now;
  const std::int64_t counted = done - stage_first_done_;
  const double rate = elapsed > 0 && counted > 0 ? counted / elapsed : 0.0;
  const std::string eta = total > 0 && rate > 0 ? format_duration((total - done) / rate) : "?";
  const std::string rate_text = rate >= 1 ? fmt::format("{:.2f}/s", rate)
                                : rate > 0 ? fmt::format("{:.2f}s each", 1.0 / rate)
                                           : "-";
  if (tty_) {
    constexpr int kWidth = 30;
    const double fraction = total > 0 ? static_cast<double>(done) / total : 0.0;
    const int filled = static_cast<int>(fraction * kWidth);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.append(static_cast<std::size_t>(kWidth - filled), '.');
    std::fprintf(stderr, "\r\033[2K%s [%s] %lld/%lld %5.1f%% %s elapsed %s ETA %s", stage_.c_str(),
                 bar.c_str(), static_cast<long long>(done), static_cast<long long>(total),
                 100.0 * fraction, rate_text.c_str(), format_duration(elapsed).c_str(), eta.c_str());
    bar_visible_ = true;
    if (finished) {
      std::fputc('\n', stderr);
      bar_visible_ = false;
    }
    std::fflush(stderr);
  } else {
    spdlog::info("{}: {}/{} ({:.1f}%), {}, elapsed {}, ETA {}", stage_, done, total,
                 total > 0 ? 100.0 * done / total : 0.0, rate_text, format_duration(elapsed), eta);
  }
}

}  // namespace clipes::cli

#include "run_control.h"

#include <csignal>

namespace clipes::cli {

namespace {

std::atomic<bool> g_stop{false};  // the process's stop request (tools only, never the library)

extern "C" void on_stop_signal(int) {
  g_stop.store(true);
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the process at once
}

}  // namespace

int parse_error_exit(const CLI::App& app, const CLI::ParseError& error) {
  return app.exit(error) == 0 ? kExitOk : kExitUsage;
}

const std::atomic<bool>* install_stop_signals() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  return &g_stop;
}

}  // namespace clipes::cli

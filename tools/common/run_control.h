#pragma once
/// What every clipes tool shares about ending a run: the exit codes and the stop signals.

#include <CLI/CLI.hpp>
#include <atomic>

namespace clipes::cli {

/// The exit codes of every clipes tool (README, "Exit codes").
inline constexpr int kExitOk = 0;  ///< everything done
/// Some items failed (each listed, and in the run record), or work under way stopped on an error
/// (what was written before it stays valid).
inline constexpr int kExitSomeFailed = 1;
inline constexpr int kExitUsage = 2;           ///< usage, config or input error before any work
inline constexpr int kExitInterrupted = 130;  ///< SIGINT/SIGTERM: the work so far is kept

/// The exit code of a CLI11 parse error under the contract: --help 0 (help printed), any other
/// (missing or unknown flag, bad value, CLI11's own codes such as 106) 2, its message printed.
int parse_error_exit(const CLI::App& app, const CLI::ParseError& error);

/// Installs SIGINT and SIGTERM handlers that raise the returned flag (the library finishes its
/// current item, keeps what is done and returns); a second SIGINT ends the process at once.
const std::atomic<bool>* install_stop_signals();

}  // namespace clipes::cli

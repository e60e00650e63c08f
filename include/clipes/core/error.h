#pragma once
/// clipes::Error: the one exception type for user and data errors (bad file, bad config, bad
/// input). Its message says what was expected, what was found and where (file, JSON path,
/// image id). Internal invariants use TORCH_INTERNAL_ASSERT / assert instead.
///
/// Tools map errors to their exit codes (README, "Exit codes"): an Error before any work is a
/// usage, config or input error (2); a WorkError is one that stopped work already under way
/// (1: what was written before it, e.g. the last checkpoint, stays valid).

#include <stdexcept>
#include <string>

namespace clipes {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/// An error that stopped work already under way (see above).
class WorkError : public Error {
 public:
  explicit WorkError(const std::string& message) : Error(message) {}
};

}  // namespace clipes

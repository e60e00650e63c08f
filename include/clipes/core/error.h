#pragma once
/// clipes::Error: the one exception type for user and data errors (bad file, bad config, bad
/// input). Its message says what was expected, what was found and where (file, JSON path,
/// image id). Internal invariants use TORCH_INTERNAL_ASSERT / assert instead.

#include <stdexcept>
#include <string>

namespace clipes {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace clipes

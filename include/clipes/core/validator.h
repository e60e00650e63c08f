#pragma once
/// Range rules of config structs, free of JSON: `Validator v(source); v.check(x > 0, "crf.w",
/// "must be > 0", x);` throws `clipes::Error("voc.json: crf.w must be > 0, got -3")` on the first
/// failure. Each struct's `validate` lists its rules beside the struct's field table.

#include <fmt/format.h>

#include <string>
#include <string_view>

#include "clipes/core/error.h"

namespace clipes::config {

class Validator {
 public:
  explicit Validator(std::string source, std::string prefix = "")
      : source_(std::move(source)), prefix_(std::move(prefix)) {}

  template <class T>
  void check(bool ok, std::string_view path, std::string_view rule, const T& got) const {
    if (!ok) throw Error(fmt::format("{}: {}{} {}, got {}", source_, prefix_, path, rule, got));
  }
  void check(bool ok, std::string_view path, std::string_view rule) const {
    if (!ok) throw Error(fmt::format("{}: {}{} {}", source_, prefix_, path, rule));
  }
  /// A validator whose paths sit under `path` ("crf" -> "crf.iterations").
  Validator nested(std::string_view path) const {
    return Validator(source_, fmt::format("{}{}.", prefix_, path));
  }
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::string prefix_;
};

}  // namespace clipes::config

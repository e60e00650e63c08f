#pragma once
/// Command-line faces of the config field tables (clipes/core/config_fields.h): `--help-config`
/// (every key of a tool's config with its default and meaning, from the struct's table, so the
/// list cannot drift from what the reader accepts) and the check of an enum-valued flag (from the
/// enum's name table, so the flag and the JSON accept the same names).

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "clipes/core/json_reader.h"

namespace clipes::cli {

template <class Config>
void add_config_help(CLI::App& app, const Config& defaults) {
  app.add_flag_callback(
      "--help-config",
      [defaults] {
        std::cout << "Config keys (JSON path = default, meaning); --set PATH=VALUE overrides one:\n"
                  << config::format_field_help(config::describe_fields(defaults));
        throw CLI::Success();
      },
      "list every config key with its default and meaning, then exit");
}

/// A CLI11 check that the value names an enum value of `E` ("--crf-image: must be \"rgb\" or
/// \"reference\", got \"bgr\"").
template <class E>
CLI::Validator enum_check() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        if (config::parse_enum<E>(text)) return "";
        return fmt::format("must be {}, got \"{}\"", config::enum_choices<E>(), text);
      },
      config::enum_choices<E>());
}

}  // namespace clipes::cli

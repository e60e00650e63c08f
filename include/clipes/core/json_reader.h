#pragma once
/// Reading JSON configs into plain structs: every error names the file and the JSON path, keys
/// that no field claims are rejected (a typo must not pass silently), absent keys keep the
/// struct's default. Only config readers include this header (it pulls in nlohmann/json).

#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "clipes/core/config_fields.h"
#include "clipes/core/error.h"
#include "clipes/core/validator.h"

namespace clipes::config {

/// Parses a JSON file; a syntax error names the file, line and column.
nlohmann::json load_json_file(const std::filesystem::path& file);

/// Applies one `--set KEY=VALUE` override to a config document. KEY is a dotted JSON path
/// (`crf.image`, `classes.3.prompt`); VALUE is parsed as JSON and taken as a plain string when
/// it is not JSON (`--set crf.image=reference`). Missing objects on the path are created, so an
/// unknown key is reported by the struct reader like a typo in the file.
void apply_override(nlohmann::json& root, std::string_view assignment);

/// Human name of a JSON value's type ("number", "string", ...), for error messages.
std::string json_type_name(const nlohmann::json& value);

/// Reads the fields of one JSON object. Use: `JsonObjectReader r(j, "voc.json");
/// r.field("mu", cfg.mu); auto crf = r.object("crf"); ...; crf.finish(); r.finish();`.
class JsonObjectReader {
 public:
  /// `source` names the file (or "--set") in messages; `path` is this object's JSON path.
  JsonObjectReader(const nlohmann::json& object, std::string source, std::string path = "");

  /// Reads `key` into `out` when present (absent: `out` keeps its default).
  template <class T>
  void field(std::string_view key, T& out) {
    claimed_.insert(std::string(key));
    auto it = object_.find(std::string(key));
    if (it == object_.end()) return;
    convert(*it, path_of(key), out);
  }

  /// Reads `key` into `out`; absence is an error.
  template <class T>
  void required(std::string_view key, T& out) {
    if (!has(key)) fail(key, "is required but missing");
    field(key, out);
  }

  /// The nested object under `key` (absent: an empty object, so every default stays).
  JsonObjectReader object(std::string_view key);

  bool has(std::string_view key) const { return object_.contains(std::string(key)); }
  /// The raw JSON under `key` (marks it as known); null when absent.
  const nlohmann::json& raw(std::string_view key);

  /// Throws if the object holds keys that no field(), object() or raw() call asked for.
  void finish() const;

  /// "voc.json: crf.iterations" style prefix for messages about `key`.
  std::string where(std::string_view key) const;
  std::string path_of(std::string_view key) const;
  const std::string& source() const { return source_; }
  [[noreturn]] void fail(std::string_view key, const std::string& what) const;

 private:
  template <class T>
  void convert(const nlohmann::json& value, const std::string& path, T& out) const;

  nlohmann::json object_;
  std::string source_;
  std::string path_;
  std::set<std::string> claimed_;
};

/// Reads every field of `config`'s table (config_fields.h) from the reader's object; does not
/// call finish(), so a caller may claim further keys.
template <class C>
void read_fields(JsonObjectReader& reader, C& config);

/// The struct as JSON through its field table: every field, nested structs as objects, enums by
/// name, floats as the shortest decimal that reads back to the same float.
template <class T>
nlohmann::json to_json_value(const T& value);

/// One line of `--help-config`: the field's dotted path, its default (JSON) and its documentation.
struct FieldHelp {
  std::string path;
  std::string value;
  std::string doc;
};
/// The flattened field table of `defaults` (nested structs expanded, their paths dotted).
template <class C>
std::vector<FieldHelp> describe_fields(const C& defaults, const std::string& prefix = "");
/// The lines of `--help-config`: "path = default  doc", aligned.
std::string format_field_help(const std::vector<FieldHelp>& fields);

// ---- implementation of the conversions --------------------------------------------------------

namespace detail {
template <class T>
struct IsVector : std::false_type {};
template <class T, class A>
struct IsVector<std::vector<T, A>> : std::true_type {};
}  // namespace detail

template <class T>
void JsonObjectReader::convert(const nlohmann::json& value, const std::string& path,
                               T& out) const {
  auto type_error = [&](std::string_view expected) {
    throw Error(fmt::format("{}: {} must be {}, got {} {}", source_, path, expected,
                            json_type_name(value), value.dump()));
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (!value.is_boolean()) type_error("true or false");
    out = value.get<bool>();
  } else if constexpr (IsNamedEnum<T>::value) {
    const auto parsed =
        value.is_string() ? parse_enum<T>(value.get<std::string>()) : std::optional<T>();
    if (!parsed) {
      throw Error(
          fmt::format("{}: {} must be {}, got {}", source_, path, enum_choices<T>(), value.dump()));
    }
    out = *parsed;
  } else if constexpr (HasFields<T>::value) {
    if (!value.is_object()) type_error("an object");
    JsonObjectReader reader(value, source_, path);
    read_fields(reader, out);
    reader.finish();
  } else if constexpr (std::is_integral_v<T>) {
    if (!value.is_number_integer()) type_error("an integer");
    if constexpr (std::is_unsigned_v<T>) {
      if (value.is_number_integer() && !value.is_number_unsigned()) type_error("an integer >= 0");
    }
    out = value.get<T>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!value.is_number()) type_error("a number");
    out = value.get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!value.is_string()) type_error("a string");
    out = value.get<std::string>();
  } else if constexpr (detail::IsVector<T>::value) {
    if (!value.is_array()) type_error("an array");
    T result;
    result.resize(value.size());
    for (std::size_t i = 0; i < value.size(); ++i) {
      convert(value[i], fmt::format("{}[{}]", path, i), result[i]);
    }
    out = std::move(result);
  } else {
    static_assert(sizeof(T) == 0, "JsonObjectReader: unsupported field type");
  }
}

namespace detail {
struct ReadVisitor {
  JsonObjectReader& reader;
  template <class F>
  void operator()(std::string_view key, F& out, std::string_view /*doc*/,
                  Presence presence = Presence::kOptional) {
    if (presence == Presence::kRequired) {
      reader.required(key, out);
    } else {
      reader.field(key, out);
    }
  }
};

struct WriteVisitor {
  nlohmann::json& object;
  template <class F>
  void operator()(std::string_view key, const F& value, std::string_view /*doc*/,
                  Presence /*presence*/ = Presence::kOptional) {
    object[std::string(key)] = to_json_value(value);
  }
};

struct HelpVisitor {
  std::vector<FieldHelp>& out;
  const std::string& prefix;
  template <class F>
  void operator()(std::string_view key, const F& value, std::string_view doc,
                  Presence presence = Presence::kOptional) {
    const std::string path = prefix + std::string(key);
    if constexpr (HasFields<F>::value) {
      for (auto& field : describe_fields(value, path + ".")) out.push_back(std::move(field));
    } else {
      std::string text(doc);
      if constexpr (IsNamedEnum<F>::value) text += fmt::format(" ({})", enum_choices<F>());
      if (presence == Presence::kRequired) text += " [required]";
      out.push_back({path, to_json_value(value).dump(), std::move(text)});
    }
  }
};

/// The shortest decimal that reads back to `value` (0.4f -> 0.4, not 0.4000000059604645).
double shortest_decimal(float value);
}  // namespace detail

template <class C>
void read_fields(JsonObjectReader& reader, C& config) {
  detail::ReadVisitor visitor{reader};
  visit_fields(config, visitor);
}

template <class T>
nlohmann::json to_json_value(const T& value) {
  if constexpr (HasFields<T>::value) {
    nlohmann::json object = nlohmann::json::object();
    detail::WriteVisitor visitor{object};
    visit_fields(value, visitor);
    return object;
  } else if constexpr (IsNamedEnum<T>::value) {
    return std::string(enum_name(value));
  } else if constexpr (std::is_same_v<T, float>) {
    return detail::shortest_decimal(value);
  } else if constexpr (detail::IsVector<T>::value && !std::is_same_v<T, std::vector<bool>>) {
    nlohmann::json array = nlohmann::json::array();
    for (const auto& item : value) array.push_back(to_json_value(item));
    return array;
  } else {
    return nlohmann::json(value);
  }
}

template <class C>
std::vector<FieldHelp> describe_fields(const C& defaults, const std::string& prefix) {
  std::vector<FieldHelp> out;
  detail::HelpVisitor visitor{out, prefix};
  visit_fields(defaults, visitor);
  return out;
}

}  // namespace clipes::config

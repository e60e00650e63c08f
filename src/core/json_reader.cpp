#include "clipes/core/json_reader.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/ranges.h>

namespace clipes::config {

namespace {

// Line and column (1-based) of a byte offset in a text.
std::pair<std::size_t, std::size_t> line_column(const std::string& text, std::size_t offset) {
  std::size_t line = 1;
  std::size_t column = 1;
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

bool is_index(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

nlohmann::json load_json_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot open JSON file {}", file.string()));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    const std::size_t offset = e.byte > 0 ? e.byte - 1 : 0;
    const auto [line, column] = line_column(text, offset);
    std::string what = e.what();
    const auto colon = what.find("parse error");
    throw Error(fmt::format("{}:{}:{}: invalid JSON ({})", file.string(), line, column,
                            colon == std::string::npos ? what : what.substr(colon)));
  }
}

void apply_override(nlohmann::json& root, std::string_view assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    throw Error(fmt::format("--set {}: expected KEY=VALUE, e.g. --set crf.image=reference",
                            assignment));
  }
  const std::string key(assignment.substr(0, eq));
  const std::string text(assignment.substr(eq + 1));
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error&) {
    value = text;  // a bare word: take it as a string
  }
  if (!root.is_object()) throw Error("--set: the config is not a JSON object");
  nlohmann::json* node = &root;
  std::string walked;
  std::size_t start = 0;
  while (true) {
    const auto dot = key.find('.', start);
    const std::string part = key.substr(start, dot == std::string::npos ? dot : dot - start);
    if (part.empty()) throw Error(fmt::format("--set {}: empty component in key", assignment));
    walked += walked.empty() ? part : "." + part;
    nlohmann::json* next = nullptr;
    if (node->is_array()) {
      if (!is_index(part)) {
        throw Error(fmt::format("--set {}: {} is an array, expected an index", assignment,
                                walked.substr(0, walked.size() - part.size() - 1)));
      }
      const std::size_t index = std::stoul(part);
      if (index >= node->size()) {
        throw Error(fmt::format("--set {}: index {} is beyond the array's {} elements",
                                assignment, index, node->size()));
      }
      next = &(*node)[index];
    } else if (node->is_object()) {
      next = &(*node)[part];
    } else {
      throw Error(fmt::format("--set {}: {} is a {}, not an object", assignment,
                              walked.substr(0, walked.size() - part.size() - 1),
                              json_type_name(*node)));
    }
    if (dot == std::string::npos) {
      *next = value;
      return;
    }
    if (next->is_null()) *next = nlohmann::json::object();
    node = next;
    start = dot + 1;
  }
}

std::string json_type_name(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::object: return "an object";
    case nlohmann::json::value_t::array: return "an array";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return "an integer";
    case nlohmann::json::value_t::number_float: return "a number";
    default: return "a value";
  }
}

JsonObjectReader::JsonObjectReader(const nlohmann::json& object, std::string source,
                                   std::string path)
    : object_(object.is_null() ? nlohmann::json::object() : object),
      source_(std::move(source)),
      path_(std::move(path)) {
  if (!object_.is_object()) {
    throw Error(fmt::format("{}: {} must be an object, got {} {}", source_,
                            path_.empty() ? "the document" : path_, json_type_name(object_),
                            object_.dump()));
  }
}

JsonObjectReader JsonObjectReader::object(std::string_view key) {
  claimed_.insert(std::string(key));
  auto it = object_.find(std::string(key));
  return JsonObjectReader(it == object_.end() ? nlohmann::json::object() : *it, source_,
                          path_of(key));
}

const nlohmann::json& JsonObjectReader::raw(std::string_view key) {
  static const nlohmann::json kNull;  // immutable
  claimed_.insert(std::string(key));
  auto it = object_.find(std::string(key));
  return it == object_.end() ? kNull : *it;
}

void JsonObjectReader::finish() const {
  std::vector<std::string> unknown;
  for (const auto& item : object_.items()) {
    if (claimed_.count(item.key()) == 0) unknown.push_back(item.key());
  }
  if (unknown.empty()) return;
  throw Error(fmt::format("{}: unknown key {} (known keys here: {})", source_,
                          path_of(unknown.front()), fmt::join(claimed_, ", ")));
}

std::string JsonObjectReader::path_of(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

std::string JsonObjectReader::where(std::string_view key) const {
  return fmt::format("{}: {}", source_, path_of(key));
}

void JsonObjectReader::fail(std::string_view key, const std::string& what) const {
  throw Error(fmt::format("{} {}", where(key), what));
}

}  // namespace clipes::config

namespace clipes::config {

double detail::shortest_decimal(float value) { return std::stod(fmt::format("{}", value)); }

std::string format_field_help(const std::vector<FieldHelp>& fields) {
  std::size_t width = 0;
  for (const auto& f : fields) width = std::max(width, f.path.size() + 3 + f.value.size());
  std::string out;
  for (const auto& f : fields) {
    const std::string assignment = fmt::format("{} = {}", f.path, f.value);
    out += fmt::format("  {:<{}}  {}\n", assignment, width, f.doc);
  }
  return out;
}

}  // namespace clipes::config

// Label sources: class-token lookup, id lists, labels files, VOC XML annotations, COCO
// instances json. Per-image problems are returned; whole-file problems throw clipes::Error.

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <pugixml.hpp>
#include <set>
#include <unordered_map>

#include "clipes/core/error.h"
#include "clipes/data/dataset.h"
#include "clipes/io/files.h"

namespace clipes::data {

namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string underscored(std::string name) {
  std::replace(name.begin(), name.end(), ' ', '_');
  return name;
}

std::string_view trim(std::string_view s) {
  const auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split_whitespace(std::string_view line) {
  std::vector<std::string_view> tokens;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    const std::size_t start = i;
    while (i < line.size() && !std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (i > start) tokens.push_back(line.substr(start, i - start));
  }
  return tokens;
}

// Calls fn(line_number, tokens) for every non-blank, non-comment line of a text file.
template <class Fn>
void for_each_line(const std::filesystem::path& file, Fn&& fn) {
  const std::string text = io::read_file(file);
  std::size_t start = 0;
  int line_number = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    ++line_number;
    const auto tokens = split_whitespace(std::string_view(text).substr(start, end - start));
    if (!tokens.empty() && tokens.front().front() != '#') fn(line_number, tokens);
    start = end + 1;
  }
}

// 1-based line of a byte offset.
int line_of(std::string_view text, std::ptrdiff_t offset) {
  const auto end = static_cast<std::size_t>(std::max<std::ptrdiff_t>(0, offset));
  return 1 + static_cast<int>(
                 std::count(text.begin(), text.begin() + std::min(end, text.size()), '\n'));
}

// Registers `id` at `line`; throws for a repeat.
void check_unique(std::unordered_map<std::string, int>& seen, const std::string& id, int line,
                  const std::filesystem::path& file) {
  const auto [it, inserted] = seen.emplace(id, line);
  if (!inserted) {
    throw Error(fmt::format("{}:{}: duplicate id {} (first at line {})", file.string(), line, id,
                            it->second));
  }
}

}  // namespace

ClassIndex::ClassIndex(std::vector<std::string> names) : names_(std::move(names)) {
  for (int i = 0; i < static_cast<int>(names_.size()); ++i) {
    by_name_.emplace(names_[i], i);
    by_name_.emplace(underscored(names_[i]), i);
  }
}

std::optional<int> ClassIndex::find(std::string_view token) const {
  if (all_digits(token)) {
    if (token.size() > 9) return std::nullopt;
    const int index = std::stoi(std::string(token));
    if (index < size()) return index;
    return std::nullopt;
  }
  const auto it = by_name_.find(std::string(token));
  if (it == by_name_.end()) return std::nullopt;
  return it->second;
}

std::string ClassIndex::expected() const {
  return fmt::format("an index 0..{} or a class name", size() - 1);
}

std::string id_problem(std::string_view id) {
  if (id.empty()) return "the id is empty";
  if (id.front() == '.') {
    return fmt::format("id '{}' starts with '.' (unusable as an output file name)", id);
  }
  for (const char c : id) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '/' || c == '\\' || std::isspace(u) || u < 0x20 || u == 0x7f) {
      return fmt::format(
          "id '{}' contains a '/', '\\', space or control character (unusable "
          "as an output file name)",
          id);
    }
  }
  if (id.find("..") != std::string_view::npos) {
    return fmt::format("id '{}' contains '..' (unusable as an output file name)", id);
  }
  return "";
}

std::string id_of_token(std::string_view token) {
  for (std::string_view ext : {".png", ".jpg", ".jpeg", ".npz"}) {
    if (token.size() > ext.size() && token.substr(token.size() - ext.size()) == ext) {
      token.remove_suffix(ext.size());
      const auto slash = token.find_last_of('/');
      if (slash != std::string_view::npos) token.remove_prefix(slash + 1);
      break;
    }
  }
  return std::string(token);
}

std::vector<LabelLine> read_id_list(const std::filesystem::path& file) {
  std::vector<LabelLine> ids;
  std::unordered_map<std::string, int> seen;
  for_each_line(file, [&](int line, const std::vector<std::string_view>& tokens) {
    LabelLine entry;
    entry.id = id_of_token(tokens.front());
    entry.line = line;
    check_unique(seen, entry.id, line, file);
    ids.push_back(std::move(entry));
  });
  return ids;
}

std::vector<std::string> read_split_ids(const std::filesystem::path& file) {
  std::vector<std::string> ids;
  for (auto& entry : read_id_list(file)) ids.push_back(std::move(entry.id));
  if (ids.empty()) throw Error(fmt::format("{}: the split file lists no ids", file.string()));
  return ids;
}

std::vector<LabelLine> read_labels_file(const std::filesystem::path& file,
                                        const ClassIndex& classes) {
  std::vector<LabelLine> lines;
  std::unordered_map<std::string, int> seen;
  for_each_line(file, [&](int line, const std::vector<std::string_view>& tokens) {
    LabelLine entry;
    entry.id = std::string(tokens.front());
    entry.line = line;
    check_unique(seen, entry.id, line, file);
    for (std::size_t t = 1; t < tokens.size(); ++t) {
      const auto index = classes.find(tokens[t]);
      if (!index) {
        if (entry.problem.empty()) {
          entry.problem = fmt::format("{}:{}: unknown class '{}' for {} (expected {})",
                                      file.string(), line, tokens[t], entry.id, classes.expected());
        }
        continue;
      }
      if (std::find(entry.labels.begin(), entry.labels.end(), *index) == entry.labels.end()) {
        entry.labels.push_back(*index);
      }
    }
    if (tokens.size() == 1) {
      entry.problem = fmt::format("{}:{}: no labels for {}", file.string(), line, entry.id);
    }
    lines.push_back(std::move(entry));
  });
  return lines;
}

LabelLine read_voc_xml_labels(const std::filesystem::path& file, const ClassIndex& classes) {
  LabelLine result;
  result.id = file.stem().string();
  std::string text;
  try {
    text = io::read_file(file);
  } catch (const Error& e) {
    result.problem = fmt::format("no labels: {}", e.what());
    return result;
  }
  pugi::xml_document doc;
  const pugi::xml_parse_result parsed = doc.load_buffer(text.data(), text.size());
  if (!parsed) {
    result.problem = fmt::format("{}:{}: malformed XML ({})", file.string(),
                                 line_of(text, parsed.offset), parsed.description());
    return result;
  }
  const pugi::xml_node annotation = doc.child("annotation");
  if (!annotation) {
    result.problem = fmt::format("{}: expected an <annotation> root element, found <{}>",
                                 file.string(), doc.first_child().name());
    return result;
  }
  for (const pugi::xml_node object : annotation.children("object")) {
    const pugi::xml_node name_node = object.child("name");
    const std::string name(trim(name_node.child_value()));
    const int line = line_of(text, (name_node ? name_node : object).offset_debug());
    if (name.empty()) {
      result.problem = fmt::format("{}:{}: <object> without a <name>", file.string(), line);
      return result;
    }
    const auto index = classes.find(name);
    if (!index || all_digits(name)) {
      result.problem = fmt::format("{}:{}: unknown class '{}' (expected one of the {} class names)",
                                   file.string(), line, name, classes.size());
      return result;
    }
    if (std::find(result.labels.begin(), result.labels.end(), *index) == result.labels.end()) {
      result.labels.push_back(*index);
    }
  }
  if (result.labels.empty()) {
    result.problem = fmt::format("{}: no labels (no <object> element)", file.string());
  }
  return result;
}

namespace {

// Keeps only what the label lists need of an instances json (the full COCO train json is
// 330 MB; its polygons would take gigabytes as a DOM).
bool keep_coco_member(int depth, nlohmann::json::parse_event_t event,
                      const nlohmann::json& parsed) {
  if (event != nlohmann::json::parse_event_t::key) return true;
  const auto& key = parsed.get_ref<const std::string&>();
  if (depth == 1) return key == "categories" || key == "images" || key == "annotations";
  if (depth == 3) {
    return key == "id" || key == "file_name" || key == "image_id" || key == "category_id";
  }
  return true;
}

const nlohmann::json& member(const nlohmann::json& object, const std::string& key,
                             const std::string& path, const std::filesystem::path& file) {
  const auto it = object.find(key);
  if (it == object.end()) {
    throw Error(fmt::format("{}: {}.{} is missing", file.string(), path, key));
  }
  return *it;
}

std::int64_t integer_member(const nlohmann::json& object, const std::string& key,
                            const std::string& path, const std::filesystem::path& file) {
  const auto& value = member(object, key, path, file);
  if (!value.is_number_integer()) {
    throw Error(fmt::format("{}: {}.{} must be an integer, got {}", file.string(), path, key,
                            value.dump()));
  }
  return value.get<std::int64_t>();
}

const nlohmann::json& array_member(const nlohmann::json& root, const std::string& key,
                                   const std::filesystem::path& file) {
  const auto it = root.find(key);
  if (it == root.end() || !it->is_array()) {
    throw Error(fmt::format("{}: expected a COCO instances file with a '{}' array, found {}",
                            file.string(), key,
                            it == root.end() ? "none" : it->dump(0).substr(0, 40)));
  }
  return *it;
}

}  // namespace

std::vector<CocoImage> read_coco_instances(const std::filesystem::path& file, int num_classes) {
  const std::string text = io::read_file(file);
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(text, keep_coco_member);
  } catch (const nlohmann::json::parse_error& e) {
    const std::size_t offset = e.byte > 0 ? e.byte - 1 : 0;
    throw Error(fmt::format("{}:{}: invalid JSON ({})", file.string(),
                            line_of(text, static_cast<std::ptrdiff_t>(offset)), e.what()));
  }
  if (!root.is_object()) {
    throw Error(fmt::format("{}: expected a COCO instances object, found {}", file.string(),
                            root.type_name()));
  }
  const auto& categories = array_member(root, "categories", file);
  std::vector<std::int64_t> category_ids;
  for (std::size_t i = 0; i < categories.size(); ++i) {
    category_ids.push_back(
        integer_member(categories[i], "id", fmt::format("categories[{}]", i), file));
  }
  std::sort(category_ids.begin(), category_ids.end());
  if (std::adjacent_find(category_ids.begin(), category_ids.end()) != category_ids.end()) {
    throw Error(fmt::format("{}: categories repeat an id", file.string()));
  }
  if (static_cast<int>(category_ids.size()) != num_classes) {
    throw Error(
        fmt::format("{}: lists {} categories, the config lists {} classes (class i is "
                    "the category with the i-th smallest id)",
                    file.string(), category_ids.size(), num_classes));
  }
  std::unordered_map<std::int64_t, int> class_of;
  for (int i = 0; i < num_classes; ++i) class_of.emplace(category_ids[i], i);

  const auto& images = array_member(root, "images", file);
  std::vector<CocoImage> result(images.size());
  std::unordered_map<std::int64_t, std::size_t> slot;
  for (std::size_t i = 0; i < images.size(); ++i) {
    const std::string path = fmt::format("images[{}]", i);
    result[i].image_id = integer_member(images[i], "id", path, file);
    const auto& name = member(images[i], "file_name", path, file);
    if (!name.is_string()) {
      throw Error(fmt::format("{}: {}.file_name must be a string, got {}", file.string(), path,
                              name.dump()));
    }
    result[i].file_name = name.get<std::string>();
    if (!slot.emplace(result[i].image_id, i).second) {
      throw Error(fmt::format("{}: {}.id {} repeats an earlier image id", file.string(), path,
                              result[i].image_id));
    }
  }
  std::vector<std::set<int>> labels(images.size());
  const auto& annotations = array_member(root, "annotations", file);
  for (std::size_t i = 0; i < annotations.size(); ++i) {
    const std::string path = fmt::format("annotations[{}]", i);
    const auto image_id = integer_member(annotations[i], "image_id", path, file);
    const auto category_id = integer_member(annotations[i], "category_id", path, file);
    const auto image = slot.find(image_id);
    if (image == slot.end()) continue;  // an annotation of an image this file does not list
    const auto cls = class_of.find(category_id);
    if (cls == class_of.end()) {
      auto& problem = result[image->second].problem;
      if (problem.empty()) {
        problem = fmt::format("{}: {}.category_id {} is not among the categories", file.string(),
                              path, category_id);
      }
      continue;
    }
    labels[image->second].insert(cls->second);
  }
  for (std::size_t i = 0; i < result.size(); ++i) {
    result[i].labels.assign(labels[i].begin(), labels[i].end());
    if (result[i].labels.empty() && result[i].problem.empty()) {
      result[i].problem = fmt::format("{}: no labels (no annotation of image id {})", file.string(),
                                      result[i].image_id);
    }
  }
  return result;
}

}  // namespace clipes::data

// Dataset layouts -> ordered samples; the shard split.

#include "clipes/data/dataset.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <unordered_map>

#include "clipes/core/error.h"

namespace clipes::data {

std::filesystem::path DatasetConfig::resolve(const std::string& relative) const {
  const std::filesystem::path path(relative);
  if (path.is_absolute() || root.empty()) return path;
  return std::filesystem::path(root) / path;
}

namespace {

// The extensions of DatasetConfig::image_ext ('|'-separated alternatives).
std::vector<std::string> image_extensions(const std::string& image_ext) {
  std::vector<std::string> extensions;
  std::size_t start = 0;
  while (true) {
    const auto bar = image_ext.find('|', start);
    extensions.push_back(image_ext.substr(start, bar == std::string::npos ? bar : bar - start));
    if (bar == std::string::npos) return extensions;
    start = bar + 1;
  }
}

std::vector<std::filesystem::path> image_candidates(const std::filesystem::path& images,
                                                    const std::string& id,
                                                    const std::string& image_ext) {
  std::vector<std::filesystem::path> candidates;
  for (const auto& ext : image_extensions(image_ext)) candidates.push_back(images / (id + ext));
  return candidates;
}

// The sample for `id` with its labels (or the problem that stops it) and its image file: the
// first candidate that exists.
Sample make_sample(std::string id, const std::vector<std::filesystem::path>& candidates,
                   const LabelLine* labels, const std::string& missing_labels) {
  Sample sample;
  sample.id = std::move(id);
  sample.image = candidates.front();
  sample.problem = id_problem(sample.id);
  if (labels == nullptr) {
    if (sample.problem.empty()) sample.problem = missing_labels;
  } else {
    sample.labels = labels->labels;
    if (sample.problem.empty()) sample.problem = labels->problem;
  }
  if (!sample.problem.empty()) return sample;
  for (const auto& candidate : candidates) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(candidate, ec)) {
      sample.image = candidate;
      return sample;
    }
  }
  if (candidates.size() == 1) {
    sample.problem = fmt::format("image not found: {}", candidates.front().string());
  } else {
    std::vector<std::string> tried;
    for (const auto& c : candidates) tried.push_back(c.string());
    sample.problem = fmt::format("image not found: tried {}", fmt::join(tried, ", "));
  }
  return sample;
}

std::unordered_map<std::string, const LabelLine*> index_by_id(const std::vector<LabelLine>& lines) {
  std::unordered_map<std::string, const LabelLine*> by_id;
  for (const auto& line : lines) by_id.emplace(line.id, &line);
  return by_id;
}

// "000000000009" for "COCO_train2014_000000000009" / "COCO_val2014_..." ("" for other ids).
std::string coco_2017_stem(const std::string& id) {
  for (const std::string prefix : {"COCO_train2014_", "COCO_val2014_"}) {
    if (id.size() == prefix.size() + 12 && id.compare(0, prefix.size(), prefix) == 0) {
      const std::string digits = id.substr(prefix.size());
      if (std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return digits;
      }
    }
  }
  return "";
}

// Samples from a labels file, restricted to and ordered by the split when one is given.
std::vector<Sample> samples_from_labels_file(const DatasetConfig& config,
                                             const ClassIndex& classes) {
  const auto labels_file = config.resolve(config.labels);
  const auto lines = read_labels_file(labels_file, classes);
  const auto images = config.resolve(config.images);
  // COCO: a 2014 stem (the reference's label lists) is also looked for under its 2017 name.
  const auto candidates = [&](const std::string& id) {
    auto paths = image_candidates(images, id, config.image_ext);
    const std::string digits = config.layout == DatasetLayout::kCoco ? coco_2017_stem(id) : "";
    if (!digits.empty()) {
      for (const auto& ext : image_extensions(config.image_ext))
        paths.push_back(images / (digits + ext));
    }
    return paths;
  };
  std::vector<Sample> samples;
  if (config.split.empty()) {
    for (const auto& line : lines) {
      samples.push_back(make_sample(line.id, candidates(line.id), &line, ""));
    }
    return samples;
  }
  const auto by_id = index_by_id(lines);
  for (const auto& entry : read_id_list(config.resolve(config.split))) {
    const auto it = by_id.find(entry.id);
    samples.push_back(make_sample(
        entry.id, candidates(entry.id), it == by_id.end() ? nullptr : it->second,
        fmt::format("no labels: {} has no line in {}", entry.id, labels_file.string())));
  }
  return samples;
}

std::vector<Sample> voc_samples_from_xml(const DatasetConfig& config, const ClassIndex& classes) {
  if (config.split.empty()) {
    throw Error(
        "dataset: the voc layout reads labels from XML annotations only for the ids of "
        "a split file: set dataset.split (or dataset.labels)");
  }
  const auto images = config.resolve(config.images);
  const auto annotations = config.resolve(config.annotations);
  std::vector<Sample> samples;
  for (const auto& entry : read_id_list(config.resolve(config.split))) {
    std::string problem = id_problem(entry.id);
    LabelLine labels;
    if (problem.empty()) labels = read_voc_xml_labels(annotations / (entry.id + ".xml"), classes);
    samples.push_back(
        make_sample(entry.id, image_candidates(images, entry.id, config.image_ext), &labels, ""));
  }
  return samples;
}

// The image file names an instances image may have in the image folder: its file_name, then
// the COCO 2014 names of the same image (COCO 2017 re-splits the 2014 images under new names).
std::vector<std::string> coco_candidate_names(const CocoImage& image,
                                              const std::string& default_ext) {
  const std::filesystem::path name(image.file_name);
  const std::string ext =
      name.has_extension() ? name.extension().string() : image_extensions(default_ext).front();
  std::vector<std::string> names{image.file_name};
  for (const auto& name_2014 : {fmt::format("COCO_train2014_{:012d}{}", image.image_id, ext),
                                fmt::format("COCO_val2014_{:012d}{}", image.image_id, ext)}) {
    if (name_2014 != image.file_name) names.push_back(name_2014);
  }
  return names;
}

std::vector<Sample> coco_samples_from_instances(const DatasetConfig& config,
                                                const ClassIndex& classes) {
  if (config.instances.empty()) {
    throw Error(
        "dataset: the coco layout needs dataset.labels (a label list) or "
        "dataset.instances (an instances_*.json)");
  }
  const auto instances_file = config.resolve(config.instances);
  const auto instances = read_coco_instances(instances_file, classes.size());
  const auto images = config.resolve(config.images);

  auto build = [&](const CocoImage& image, std::string id) {
    std::vector<std::filesystem::path> candidates;
    for (const auto& name : coco_candidate_names(image, config.image_ext)) {
      candidates.push_back(images / name);
    }
    if (id.empty()) {  // the stem of the file present, else of file_name
      id = candidates.front().stem().string();
      for (const auto& candidate : candidates) {
        std::error_code ec;
        if (std::filesystem::is_regular_file(candidate, ec)) {
          id = candidate.stem().string();
          break;
        }
      }
    }
    LabelLine labels;
    labels.labels = image.labels;
    labels.problem = image.problem;
    return make_sample(std::move(id), candidates, &labels, "");
  };

  std::vector<Sample> samples;
  if (config.split.empty()) {
    for (const auto& image : instances) samples.push_back(build(image, ""));
    return samples;
  }
  std::unordered_map<std::string, const CocoImage*> by_stem;
  for (const auto& image : instances) {
    for (const auto& name : coco_candidate_names(image, config.image_ext)) {
      by_stem.emplace(std::filesystem::path(name).stem().string(), &image);
    }
  }
  for (const auto& entry : read_id_list(config.resolve(config.split))) {
    const auto it = by_stem.find(entry.id);
    if (it == by_stem.end()) {
      samples.push_back(make_sample(
          entry.id, image_candidates(images, entry.id, config.image_ext), nullptr,
          fmt::format("no labels: {} is not an image of {}", entry.id, instances_file.string())));
      continue;
    }
    samples.push_back(build(*it->second, entry.id));
  }
  return samples;
}

}  // namespace

std::vector<Sample> read_dataset(const DatasetConfig& config,
                                 const std::vector<std::string>& class_names) {
  const ClassIndex classes(class_names);
  if (!config.labels.empty()) {
    return samples_from_labels_file(config, classes);
  }
  switch (config.layout) {
    case DatasetLayout::kVoc:
      return voc_samples_from_xml(config, classes);
    case DatasetLayout::kCoco:
      return coco_samples_from_instances(config, classes);
    case DatasetLayout::kCustom:
      throw Error("dataset: the custom layout needs a labels file: set dataset.labels");
  }
  return {};
}

Shard parse_shard(std::string_view text) {
  const auto fail = [&]() -> Shard {
    throw Error(
        fmt::format("invalid shard '{}': expected I/N with 0 <= I < N (I is 0-based: "
                    "the 4 shards of N = 4 are 0/4, 1/4, 2/4, 3/4)",
                    text));
  };
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return fail();
  const auto number = [&](std::string_view s) -> long long {
    if (s.empty() || s.size() > 9) fail();
    long long value = 0;
    for (const char c : s) {
      if (c < '0' || c > '9') fail();
      value = value * 10 + (c - '0');
    }
    return value;
  };
  const long long index = number(text.substr(0, slash));
  const long long count = number(text.substr(slash + 1));
  if (count < 1 || index >= count) return fail();
  return Shard{static_cast<int>(index), static_cast<int>(count)};
}

Shard shard_from_environment(const std::map<std::string, std::string>& env, std::string* origin) {
  const auto get = [&](const char* name) {
    const auto it = env.find(name);
    return it == env.end() ? std::string() : it->second;
  };
  struct Source {
    const char* index;
    const char* count;
    const char* what;
  };
  const Source sources[] = {
      {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM job array"},
      {"JOB_COMPLETION_INDEX", "JOB_COMPLETIONS", "Kubernetes indexed job"},
      {"RANK", "WORLD_SIZE", "torchrun job"},
      {"SLURM_PROCID", "SLURM_NTASKS", "SLURM job"}};
  for (const Source& s : sources) {
    if (get(s.index).empty()) continue;
    if (get(s.count).empty()) {
      throw Error(fmt::format("--shard auto: {} is set but {} is not{}", s.index, s.count,
                              std::string(s.count) == "JOB_COMPLETIONS"
                                  ? " (Kubernetes exports the index only: set JOB_COMPLETIONS "
                                    "in the pod template to the job's completions)"
                                  : ""));
    }
    long long index = 0;
    long long count = 0;
    try {
      index = std::stoll(get(s.index));
      count = std::stoll(get(s.count));
      if (std::string(s.index) == "SLURM_ARRAY_TASK_ID" && !get("SLURM_ARRAY_TASK_MIN").empty()) {
        index -= std::stoll(get("SLURM_ARRAY_TASK_MIN"));  // arrays may start anywhere (--array=1-8)
      }
    } catch (const std::exception&) {
      throw Error(fmt::format("--shard auto: {}={} and {}={} must be integers", s.index,
                              get(s.index), s.count, get(s.count)));
    }
    if (count < 1 || index < 0 || index >= count || count > 1 << 30) {
      throw Error(fmt::format("--shard auto: shard {} of {} ({} {}={}, {}={}) is not within 0..N-1",
                              index, count, s.what, s.index, get(s.index), s.count,
                              get(s.count)));
    }
    if (origin != nullptr) *origin = s.what;
    return Shard{static_cast<int>(index), static_cast<int>(count)};
  }
  throw Error(
      "--shard auto: the environment names no shard (SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, "
      "JOB_COMPLETION_INDEX/JOB_COMPLETIONS, RANK/WORLD_SIZE or SLURM_PROCID/SLURM_NTASKS); "
      "pass --shard I/N");
}

int shard_of(std::string_view id, int count) {
  std::uint64_t hash = 14695981039346656037ull;  // FNV-1a 64
  for (const char c : id) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  hash ^= hash >> 30;  // splitmix64 finaliser: every bit of the hash reaches the low bits
  hash *= 0xbf58476d1ce4e5b9ull;
  hash ^= hash >> 27;
  hash *= 0x94d049bb133111ebull;
  hash ^= hash >> 31;
  return static_cast<int>(hash % static_cast<std::uint64_t>(count));
}

std::vector<Sample> select_samples(const std::vector<Sample>& samples, const Shard& shard,
                                   std::int64_t limit) {
  if (shard.count < 1 || shard.index < 0 || shard.index >= shard.count) {
    throw Error(fmt::format("invalid shard {}/{}: expected 0 <= I < N", shard.index, shard.count));
  }
  std::vector<Sample> selected;
  for (const auto& sample : samples) {
    if (limit >= 0 && static_cast<std::int64_t>(selected.size()) >= limit) break;
    if (shard.count == 1 || shard_of(sample.id, shard.count) == shard.index) {
      selected.push_back(sample);
    }
  }
  return selected;
}

}  // namespace clipes::data

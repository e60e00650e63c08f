#include "clipes/io/safetensors.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "clipes/core/error.h"

namespace clipes::io {
namespace {

struct DtypeInfo {
  SafetensorsDtype dtype;
  const char* name;
  std::size_t size;
};

constexpr DtypeInfo kDtypes[] = {
    {SafetensorsDtype::kBool, "BOOL", 1}, {SafetensorsDtype::kU8, "U8", 1},
    {SafetensorsDtype::kI8, "I8", 1},     {SafetensorsDtype::kI16, "I16", 2},
    {SafetensorsDtype::kI32, "I32", 4},   {SafetensorsDtype::kI64, "I64", 8},
    {SafetensorsDtype::kF16, "F16", 2},   {SafetensorsDtype::kBF16, "BF16", 2},
    {SafetensorsDtype::kF32, "F32", 4},   {SafetensorsDtype::kF64, "F64", 8},
};

const DtypeInfo& info(SafetensorsDtype dtype) {
  for (const auto& entry : kDtypes) {
    if (entry.dtype == dtype) return entry;
  }
  throw Error("unknown safetensors dtype");
}

// A header larger than this is not a model's (ViT-H/14 open_clip: ~60 kB).
constexpr std::uint64_t kMaxHeaderBytes = 100u << 20;

std::uint64_t read_le64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

std::string_view to_string(SafetensorsDtype dtype) { return info(dtype).name; }

std::optional<SafetensorsDtype> parse_safetensors_dtype(std::string_view name) {
  for (const auto& entry : kDtypes) {
    if (name == entry.name) return entry.dtype;
  }
  return std::nullopt;
}

std::size_t element_size(SafetensorsDtype dtype) { return info(dtype).size; }

struct SafetensorsFile::Mapping {
  void* address = nullptr;
  std::size_t size = 0;
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (address != nullptr) munmap(address, size);
  }
  const unsigned char* bytes() const { return static_cast<const unsigned char*>(address); }
};

namespace {

/// Makes the errors of one file: "safetensors file <name>: <what>".
struct FileErrors {
  std::string name;
  Error operator()(const std::string& what) const {
    return Error(fmt::format("safetensors file {}: {}", name, what));
  }
};

/// The JSON header after the 8-byte size that starts the file's `size` bytes; its size in
/// *header_size.
nlohmann::json read_header(const unsigned char* bytes, std::size_t size, const FileErrors& fail,
                           std::uint64_t* header_size) {
  if (size < 8) {
    throw fail(fmt::format("{} bytes, too short for the 8-byte header size", size));
  }
  *header_size = read_le64(bytes);
  if (*header_size > size - 8 || *header_size > kMaxHeaderBytes) {
    throw fail(fmt::format("the header size says {} bytes but the file has {} after it",
                           *header_size, size - 8));
  }
  const auto* header_begin = reinterpret_cast<const char*>(bytes + 8);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_begin, header_begin + *header_size);
  } catch (const nlohmann::json::parse_error& e) {
    throw fail(fmt::format("the header is not valid JSON: {}", e.what()));
  }
  if (!header.is_object()) {
    throw fail(fmt::format("the header is a JSON {}, expected an object", header.type_name()));
  }
  return header;
}

/// The header's "__metadata__" object, whose values are strings.
std::map<std::string, std::string> read_metadata(const nlohmann::json& value,
                                                 const FileErrors& fail) {
  if (!value.is_object()) throw fail("__metadata__ is not a JSON object");
  std::map<std::string, std::string> metadata;
  for (const auto& [mkey, mvalue] : value.items()) {
    if (!mvalue.is_string()) throw fail(fmt::format("__metadata__.{} is not a string", mkey));
    metadata[mkey] = mvalue.get<std::string>();
  }
  return metadata;
}

/// The tensor `key` of the header: a known dtype, a shape of sizes, and data_offsets inside
/// the data section of `data_size` bytes that span the shape's bytes.
SafetensorsEntry read_entry(const std::string& key, const nlohmann::json& value,
                            std::size_t data_size, const FileErrors& fail) {
  const auto bad = [&](const std::string& what) {
    return fail(fmt::format("tensor {}: {}", key, what));
  };
  if (!value.is_object()) throw bad("not a JSON object");
  SafetensorsEntry entry;
  entry.name = key;
  const auto dtype_it = value.find("dtype");
  if (dtype_it == value.end() || !dtype_it->is_string()) throw bad("no \"dtype\" string");
  const auto dtype = parse_safetensors_dtype(dtype_it->get<std::string>());
  if (!dtype) {
    throw bad(
        fmt::format("dtype \"{}\" is not one clipes reads (BOOL, U8, I8, I16, I32, I64, "
                    "F16, BF16, F32, F64)",
                    dtype_it->get<std::string>()));
  }
  entry.dtype = *dtype;
  const auto shape_it = value.find("shape");
  if (shape_it == value.end() || !shape_it->is_array()) throw bad("no \"shape\" array");
  std::uint64_t numel = 1;
  for (const auto& d : *shape_it) {
    if (!d.is_number_unsigned())
      throw bad(fmt::format("shape {} is not a list of sizes", shape_it->dump()));
    const auto n = d.get<std::uint64_t>();
    if (n > 0 && numel > std::numeric_limits<std::uint64_t>::max() / n) {
      throw bad(fmt::format("shape {} overflows", shape_it->dump()));
    }
    numel *= n;
    entry.shape.push_back(static_cast<std::int64_t>(n));
  }
  const auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned()) {
    throw bad("no \"data_offsets\" [begin, end]");
  }
  const auto begin = (*offsets)[0].get<std::uint64_t>();
  const auto end = (*offsets)[1].get<std::uint64_t>();
  if (begin > end || end > data_size) {
    throw bad(fmt::format("data_offsets [{}, {}] are outside the data section of {} bytes", begin,
                          end, data_size));
  }
  const std::uint64_t expected = numel * element_size(entry.dtype);
  if (end - begin != expected) {
    throw bad(fmt::format("data_offsets [{}, {}] span {} bytes, but shape {} of {} needs {}", begin,
                          end, end - begin, shape_it->dump(), to_string(entry.dtype), expected));
  }
  entry.begin = static_cast<std::size_t>(begin);
  entry.end = static_cast<std::size_t>(end);
  return entry;
}

/// The tensors tile the data section: sorted by offset, each starts where the previous ends.
void check_layout(const std::map<std::string, SafetensorsEntry>& entries, std::size_t data_size,
                  const FileErrors& fail) {
  std::vector<const SafetensorsEntry*> order;
  for (const auto& [key, entry] : entries) order.push_back(&entry);
  std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::size_t covered = 0;
  const SafetensorsEntry* previous = nullptr;
  for (const auto* entry : order) {
    if (entry->begin < covered) {
      throw fail(fmt::format("tensor {} (bytes {}..{}) overlaps tensor {} (bytes {}..{})",
                             entry->name, entry->begin, entry->end, previous->name, previous->begin,
                             previous->end));
    }
    if (entry->begin > covered) {
      throw fail(
          fmt::format("tensor {} begins at byte {} of the data section, but the tensors "
                      "before it end at {} (a gap)",
                      entry->name, entry->begin, covered));
    }
    covered = entry->end;
    previous = entry;
  }
  if (covered != data_size) {
    throw fail(
        fmt::format("the tensors cover {} bytes of the data section, but it has {} "
                    "(truncated, or trailing bytes)",
                    covered, data_size));
  }
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& file) {
  const std::string name = file.string();
  const FileErrors fail{name};
  const int fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw fail(fmt::format("cannot open it: {}", std::strerror(errno)));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw fail("not a regular file");
  }
  auto mapping = std::make_shared<Mapping>();
  mapping->size = static_cast<std::size_t>(st.st_size);
  if (mapping->size > 0) {
    void* address = mmap(nullptr, mapping->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (address == MAP_FAILED) {
      const int error = errno;
      ::close(fd);
      throw fail(fmt::format("cannot map it: {}", std::strerror(error)));
    }
    mapping->address = address;
  }
  ::close(fd);

  std::uint64_t header_size = 0;
  const nlohmann::json header = read_header(mapping->bytes(), mapping->size, fail, &header_size);
  SafetensorsFile out;
  out.path_ = file;
  out.data_start_ = 8 + static_cast<std::size_t>(header_size);
  const std::size_t data_size = mapping->size - out.data_start_;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      out.metadata_ = read_metadata(value, fail);
    } else {
      out.entries_.emplace(key, read_entry(key, value, data_size, fail));
    }
  }
  check_layout(out.entries_, data_size, fail);
  out.mapping_ = std::move(mapping);
  return out;
}

const unsigned char* SafetensorsFile::data(const SafetensorsEntry& entry) const {
  return mapping_->bytes() + data_start_ + entry.begin;
}

bool looks_like_safetensors(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  unsigned char head[9] = {};
  if (!in.read(reinterpret_cast<char*>(head), sizeof head)) return false;
  const std::uint64_t header_size = read_le64(head);
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  return !ec && header_size >= 2 && header_size <= size - 8 && head[8] == '{';
}

}  // namespace clipes::io

#pragma once
/// Reading safetensors files (Hugging Face's tensor format: an 8-byte little-endian header size,
/// a JSON header {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
/// {string: string}}, then the raw little-endian tensors), memory-mapped, without LibTorch.
/// Every inconsistency of the header is an error naming the file and the tensor.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace clipes::io {

enum class SafetensorsDtype { kBool, kU8, kI8, kI16, kI32, kI64, kF16, kBF16, kF32, kF64 };

/// The format's name of `dtype` ("F32", "BF16", ...).
std::string_view to_string(SafetensorsDtype dtype);
/// "F32" → kF32, ...; nullopt for names the format has but clipes does not read (F8_E4M3, ...)
/// and for unknown names.
std::optional<SafetensorsDtype> parse_safetensors_dtype(std::string_view name);
std::size_t element_size(SafetensorsDtype dtype);

struct SafetensorsEntry {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  std::vector<std::int64_t> shape;
  std::size_t begin = 0;  ///< byte offset in the data section (after the header)
  std::size_t end = 0;    ///< one past the last byte
};

class SafetensorsFile {
 public:
  /// Maps `file` read-only and checks its header: the file holds the 8-byte size and that many
  /// header bytes; the header is a JSON object; every tensor has a known dtype, a shape of
  /// non-negative sizes and data_offsets [begin, end] with end − begin = numel · element size;
  /// the tensors tile the data section (no gap, no overlap) up to the end of the file. Throws
  /// clipes::Error naming the file, and the tensor when one is at fault.
  static SafetensorsFile open(const std::filesystem::path& file);

  const std::filesystem::path& path() const { return path_; }
  /// Every tensor, by name.
  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  /// The header's "__metadata__" (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  /// The entry's bytes (end − begin of them), valid while this object or a copy lives. Not
  /// aligned to the element size in general.
  const unsigned char* data(const SafetensorsEntry& entry) const;

 private:
  struct Mapping;
  std::filesystem::path path_;
  std::shared_ptr<const Mapping> mapping_;
  std::size_t data_start_ = 0;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

/// True when the first bytes of `file` look like a safetensors header (a plausible size, then
/// '{'); false for anything else, unreadable files included.
bool looks_like_safetensors(const std::filesystem::path& file);

}  // namespace clipes::io

#pragma once
/// Whole-file reading and atomic writing: nothing half-written is ever left under a final name.

#include <filesystem>
#include <string>
#include <string_view>

namespace clipes::io {

/// The whole file as bytes; throws clipes::Error naming the file if it cannot be read.
std::string read_file(const std::filesystem::path& file);

/// Writes `bytes` to `file` atomically: a temporary file in the same folder (".<name>.<pid>.<tid>.tmp"),
/// flushed, then renamed over `file`. Creates missing parent folders. On failure nothing is left.
void write_file_atomic(const std::filesystem::path& file, std::string_view bytes);

/// True for the temporary names write_file_atomic uses (so a resumed run can remove leftovers).
bool is_atomic_temporary(const std::filesystem::path& file);

}  // namespace clipes::io

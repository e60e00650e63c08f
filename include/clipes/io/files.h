#pragma once
/// Whole-file reading and atomic writing: nothing half-written is ever left under a final name.

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace clipes::io {

/// The whole file as bytes; throws clipes::Error naming the file if it cannot be read.
std::string read_file(const std::filesystem::path& file);

/// Writes `bytes` to `file` atomically: a temporary file in the same folder (".<name>.<pid>.<tid>.tmp"),
/// flushed, then renamed over `file`. Creates missing parent folders. On failure nothing is left.
void write_file_atomic(const std::filesystem::path& file, std::string_view bytes);

/// Appends bytes to the file being written.
using ByteSink = std::function<void(const void* data, std::size_t size)>;

/// The same for content too large to hold in memory at once: `produce` streams it into the sink
/// it is given. An exception from `produce` removes the temporary and propagates.
void write_file_atomic(const std::filesystem::path& file,
                       const std::function<void(const ByteSink&)>& produce);

/// True for the temporary names write_file_atomic uses (so a resumed run can remove leftovers).
bool is_atomic_temporary(const std::filesystem::path& file);

}  // namespace clipes::io

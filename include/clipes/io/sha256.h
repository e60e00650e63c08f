#pragma once
/// SHA-256 of files (OpenSSL libcrypto), for run.json's record of which model made the outputs.

#include <filesystem>
#include <string>
#include <string_view>

namespace clipes::io {

/// Lower-case hex SHA-256 of `bytes`.
std::string sha256_hex(std::string_view bytes);
/// Lower-case hex SHA-256 of a file, read in chunks; throws clipes::Error naming the file.
std::string sha256_file(const std::filesystem::path& file);

}  // namespace clipes::io

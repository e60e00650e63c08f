#include "clipes/io/files.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "clipes/core/error.h"

namespace clipes::io {

std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw Error(fmt::format("cannot read {}: {}", file.string(),
                            std::filesystem::exists(file) ? std::strerror(errno) : "no such file"));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw Error(fmt::format("error while reading {}", file.string()));
  return buffer.str();
}

void write_file_atomic(const std::filesystem::path& file,
                       const std::function<void(const ByteSink&)>& produce) {
  const auto parent = file.parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  const auto tid = std::hash<std::thread::id>{}(std::this_thread::get_id()) % 1000000007u;
  const auto temporary =
      parent / fmt::format(".{}.{}.{}.tmp", file.filename().string(), ::getpid(), tid);
  std::FILE* out = std::fopen(temporary.c_str(), "wb");
  if (out == nullptr) {
    throw Error(fmt::format("cannot write {}: {}", temporary.string(), std::strerror(errno)));
  }
  bool written = true;
  try {
    produce([&](const void* data, std::size_t size) {
      written = written && std::fwrite(data, 1, size, out) == size;
    });
  } catch (...) {
    std::fclose(out);
    std::filesystem::remove(temporary, ec);
    throw;
  }
  const bool flushed = std::fflush(out) == 0;
  const int saved_errno = errno;
  const bool closed = std::fclose(out) == 0;
  if (!written || !flushed || !closed) {
    std::filesystem::remove(temporary, ec);
    throw Error(fmt::format("cannot write {}: {}", file.string(), std::strerror(saved_errno)));
  }
  std::filesystem::rename(temporary, file, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    throw Error(fmt::format("cannot rename {} to {}: {}", temporary.string(), file.string(),
                            ec.message()));
  }
}

void write_file_atomic(const std::filesystem::path& file, std::string_view bytes) {
  write_file_atomic(file, [bytes](const ByteSink& sink) { sink(bytes.data(), bytes.size()); });
}

bool is_atomic_temporary(const std::filesystem::path& file) {
  const std::string name = file.filename().string();
  return name.size() > 5 && name.front() == '.' && name.compare(name.size() - 4, 4, ".tmp") == 0;
}

}  // namespace clipes::io

#include "clipes/text/utf8.h"

#include <cstdint>

#include <fmt/format.h>

#include "clipes/core/error.h"

namespace clipes::text {
namespace {

bool is_continuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

/// The length of the well-formed sequence starting at `pos` (1..4), or 0 when the bytes there
/// are not well formed; `valid_prefix` gets the length of the longest prefix that could still
/// start a well-formed sequence (the "maximal subpart", at least 1).
int well_formed_length(std::string_view bytes, std::size_t pos, int* valid_prefix) {
  const auto lead = static_cast<unsigned char>(bytes[pos]);
  *valid_prefix = 1;
  if (lead < 0x80) return 1;
  int length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  for (int k = 1; k < length; ++k) {
    if (pos + static_cast<std::size_t>(k) >= bytes.size()) return 0;
    const auto byte = static_cast<unsigned char>(bytes[pos + static_cast<std::size_t>(k)]);
    const bool ok = k == 1 ? (byte >= low && byte <= high) : is_continuation(byte);
    if (!ok) return 0;
    *valid_prefix = k + 1;
  }
  return length;
}

char32_t decode_at(std::string_view bytes, std::size_t pos, int length) {
  const auto lead = static_cast<unsigned char>(bytes[pos]);
  if (length == 1) return lead;
  char32_t code = lead & (0x7F >> length);
  for (int k = 1; k < length; ++k) {
    code = (code << 6) | (static_cast<unsigned char>(bytes[pos + static_cast<std::size_t>(k)]) & 0x3F);
  }
  return code;
}

}  // namespace

std::u32string utf8_to_u32(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    int prefix = 0;
    const int length = well_formed_length(text, pos, &prefix);
    if (length == 0) {
      throw Error(fmt::format("text is not valid UTF-8: the bytes at offset {} (0x{:02X}...) are not a "
                              "well-formed sequence",
                              pos, static_cast<unsigned char>(text[pos])));
    }
    out.push_back(decode_at(text, pos, length));
    pos += static_cast<std::size_t>(length);
  }
  return out;
}

void append_utf8(std::string& out, char32_t code) {
  if (code < 0x80) {
    out.push_back(static_cast<char>(code));
  } else if (code < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code >> 6)));
    out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
  } else if (code < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (code >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (code >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
  }
}

std::string u32_to_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char32_t code : text) append_utf8(out, code);
  return out;
}

bool utf8_decode_strict(std::string_view bytes, bool variants, std::u32string* out) {
  out->clear();
  out->reserve(bytes.size());
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    if (variants && byte(pos) == 0xC0 && pos + 1 < bytes.size() && byte(pos + 1) == 0x80) {
      out->push_back(0);
      pos += 2;
      continue;
    }
    if (variants && byte(pos) == 0xED && pos + 5 < bytes.size() && byte(pos + 1) >= 0xA0 &&
        byte(pos + 1) <= 0xAF && is_continuation(byte(pos + 2)) && byte(pos + 3) == 0xED &&
        byte(pos + 4) >= 0xB0 && byte(pos + 4) <= 0xBF && is_continuation(byte(pos + 5))) {
      const char32_t high = 0xD000 | ((byte(pos + 1) & 0x3Fu) << 6) | (byte(pos + 2) & 0x3Fu);
      const char32_t low = 0xD000 | ((byte(pos + 4) & 0x3Fu) << 6) | (byte(pos + 5) & 0x3Fu);
      out->push_back(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00));
      pos += 6;
      continue;
    }
    int prefix = 0;
    const int length = well_formed_length(bytes, pos, &prefix);
    if (length == 0) return false;
    out->push_back(decode_at(bytes, pos, length));
    pos += static_cast<std::size_t>(length);
  }
  return true;
}

std::u32string utf8_decode_replace(std::string_view bytes) {
  std::u32string out;
  out.reserve(bytes.size());
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    int prefix = 0;
    const int length = well_formed_length(bytes, pos, &prefix);
    if (length == 0) {
      out.push_back(U'\uFFFD');
      pos += static_cast<std::size_t>(prefix);
    } else {
      out.push_back(decode_at(bytes, pos, length));
      pos += static_cast<std::size_t>(length);
    }
  }
  return out;
}

bool is_regex_space(char32_t code) {
  return (code >= 0x09 && code <= 0x0D) || code == 0x20 || code == 0x85 || code == 0xA0 ||
         code == 0x1680 || (code >= 0x2000 && code <= 0x200A) || code == 0x2028 ||
         code == 0x2029 || code == 0x202F || code == 0x205F || code == 0x3000;
}

bool is_python_space(char32_t code) {
  return is_regex_space(code) || (code >= 0x1C && code <= 0x1F);
}

}  // namespace clipes::text

// CLIP's text cleaning: ftfy.fix_text (the fixes listed in text_clean.h), Python's html.unescape,
// whitespace collapsing and str.lower(). Everything works on code points (std::u32string); ICU
// provides NFC and the Unicode lower-case mapping.

#include "clipes/text/text_clean.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include "clipes/core/error.h"
#include "clipes/text/utf8.h"
#include "mojibake.h"

namespace clipes::text {
namespace {

struct NamedEntity {
  const char* name;
  const char32_t* value;
};
struct CodeMapping {
  char32_t code;
  char32_t value;
};
struct WidthMapping {
  char32_t code;
  const char32_t* value;
};

#include "html_tables.inc"

// ---------------------------------------------------------------- table lookups

template <std::size_t N>
const char32_t* find_entity(const NamedEntity (&table)[N], std::string_view name) {
  const auto* end = table + N;
  const auto* it = std::lower_bound(table, end, name, [](const NamedEntity& e, std::string_view key) {
    return std::string_view(e.name) < key;
  });
  return (it != end && std::string_view(it->name) == name) ? it->value : nullptr;
}

/// The entity `name` (code points) when it is pure ASCII and known, else nullptr.
template <std::size_t N>
const char32_t* find_entity(const NamedEntity (&table)[N], std::u32string_view name) {
  std::string ascii;
  ascii.reserve(name.size());
  for (const char32_t c : name) {
    if (c >= 0x80) return nullptr;
    ascii.push_back(static_cast<char>(c));
  }
  return find_entity(table, std::string_view(ascii));
}

bool is_ascii_digit(char32_t c) { return c >= U'0' && c <= U'9'; }
bool is_ascii_hex(char32_t c) {
  return is_ascii_digit(c) || (c >= U'a' && c <= U'f') || (c >= U'A' && c <= U'F');
}
bool is_ascii_alnum(char32_t c) {
  return is_ascii_digit(c) || (c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z');
}
int hex_value(char32_t c) {
  if (is_ascii_digit(c)) return static_cast<int>(c - U'0');
  if (c >= U'a' && c <= U'f') return static_cast<int>(c - U'a') + 10;
  return static_cast<int>(c - U'A') + 10;
}

// ---------------------------------------------------------------- html.unescape

/// Python's html._replace_charref for a numeric reference.
void append_numeric_charref(std::u32string& out, std::uint32_t num) {
  const auto* end = std::end(kInvalidCharrefs);
  const auto* it = std::lower_bound(std::begin(kInvalidCharrefs), end, num,
                                    [](const CodeMapping& m, std::uint32_t key) { return m.code < key; });
  if (it != end && it->code == num) {
    out.push_back(it->value);
  } else if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
    out.push_back(U'\uFFFD');
  } else if (!std::binary_search(std::begin(kInvalidCodepoints), std::end(kInvalidCodepoints),
                                 static_cast<char32_t>(num))) {
    out.push_back(static_cast<char32_t>(num));
  }
}

/// Python's html.unescape, which matches &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?).
/// (Python's int() refuses decimal strings over 4300 digits and html.unescape then raises; here
/// such a reference simply counts as too large and becomes U+FFFD.)
std::u32string html_unescape_u32(std::u32string_view s) {
  if (s.find(U'&') == std::u32string_view::npos) return std::u32string(s);
  std::u32string out;
  out.reserve(s.size());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    if (s[i] != U'&') {
      out.push_back(s[i++]);
      continue;
    }
    const std::size_t j = i + 1;
    if (j < n && s[j] == U'#') {
      std::size_t k = j + 1;
      int base = 10;
      if (k < n && (s[k] == U'x' || s[k] == U'X') && k + 1 < n && is_ascii_hex(s[k + 1])) {
        base = 16;
        ++k;
      } else if (!(k < n && is_ascii_digit(s[k]))) {
        out.push_back(s[i++]);  // "&#" without digits: no reference
        continue;
      }
      std::uint32_t num = 0;
      while (k < n && (base == 16 ? is_ascii_hex(s[k]) : is_ascii_digit(s[k]))) {
        const auto digit = static_cast<std::uint32_t>(hex_value(s[k]));
        num = num > 0x10FFFF ? num : num * static_cast<std::uint32_t>(base) + digit;
        ++k;
      }
      if (k < n && s[k] == U';') ++k;
      append_numeric_charref(out, num);
      i = k;
      continue;
    }
    std::size_t k = j;
    while (k < n && k - j < 32 && std::u32string_view(U"\t\n\f <&#;").find(s[k]) == std::u32string_view::npos) {
      ++k;
    }
    if (k == j) {
      out.push_back(s[i++]);
      continue;
    }
    if (k < n && s[k] == U';') ++k;
    const std::u32string_view name = s.substr(j, k - j);
    i = k;
    if (const char32_t* value = find_entity(kHtml5Entities, name)) {
      out += value;
      continue;
    }
    bool found = false;
    for (std::size_t x = name.size() - 1; x > 1; --x) {  // the longest known prefix
      if (const char32_t* value = find_entity(kHtml5Entities, name.substr(0, x))) {
        out += value;
        out += name.substr(x);
        found = true;
        break;
      }
    }
    if (!found) {
      out.push_back(U'&');
      out += name;
    }
  }
  return out;
}

// ---------------------------------------------------------------- ftfy: simple fixes

/// ftfy.fixes.unescape_html: &#?[0-9A-Za-z]{1,24}; replaced by the HTML5 entity (or its
/// upper-cased form), numeric ones through html.unescape unless that leaves a ';'.
std::u32string ftfy_unescape_html(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    if (s[i] != U'&') {
      out.push_back(s[i++]);
      continue;
    }
    std::size_t j = i + 1;
    if (j < n && s[j] == U'#') ++j;
    std::size_t k = j;
    while (k < n && is_ascii_alnum(s[k])) ++k;
    if (k == j || k - j > 24 || k >= n || s[k] != U';') {
      out.push_back(s[i++]);
      continue;
    }
    const std::u32string_view match = s.substr(i, k + 1 - i);
    const std::u32string_view name = match.substr(1);  // with the ';'
    i = k + 1;
    if (const char32_t* value = find_entity(kHtml5Entities, name)) {
      out += value;
    } else if (const char32_t* upper = find_entity(kFtfyUpperEntities, name)) {
      out += upper;
    } else if (name[0] == U'#') {
      const std::u32string unescaped = html_unescape_u32(match);
      out += unescaped.find(U';') == std::u32string::npos ? std::u32string_view(unescaped) : match;
    } else {
      out += match;
    }
  }
  return out;
}


std::u32string fix_latin_ligatures(std::u32string_view text) {
  static constexpr struct {
    char32_t code;
    const char32_t* value;
  } kLigatures[] = {
      {0x0132, U"IJ"}, {0x0133, U"ij"}, {0x0149, U"\u02BCn"}, {0x01C4, U"D\u017D"},
      {0x01C5, U"D\u017E"}, {0x01C6, U"d\u017E"}, {0x01C7, U"LJ"}, {0x01C8, U"Lj"},
      {0x01C9, U"lj"}, {0x01CA, U"NJ"}, {0x01CB, U"Nj"}, {0x01CC, U"nj"},
      {0x01F1, U"DZ"}, {0x01F2, U"Dz"}, {0x01F3, U"dz"}, {0xFB00, U"ff"},
      {0xFB01, U"fi"}, {0xFB02, U"fl"}, {0xFB03, U"ffi"}, {0xFB04, U"ffl"},
      {0xFB05, U"\u017Ft"}, {0xFB06, U"st"},
  };
  std::u32string out;
  out.reserve(text.size());
  for (const char32_t c : text) {
    if (c >= 0x0132) {
      const auto* it = std::find_if(std::begin(kLigatures), std::end(kLigatures),
                                    [c](const auto& l) { return l.code == c; });
      if (it != std::end(kLigatures)) {
        out += it->value;
        continue;
      }
    }
    out.push_back(c);
  }
  return out;
}

std::u32string fix_character_width(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (const char32_t c : text) {
    if (c == 0x3000 || (c >= 0xFF01 && c <= 0xFFEF)) {
      const auto* end = std::end(kWidthMap);
      const auto* it = std::lower_bound(std::begin(kWidthMap), end, c,
                                        [](const WidthMapping& m, char32_t key) { return m.code < key; });
      if (it != end && it->code == c) {
        out += it->value;
        continue;
      }
    }
    out.push_back(c);
  }
  return out;
}

std::u32string uncurl_quotes(std::u32string text) {
  for (char32_t& c : text) {
    if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) c = U'\'';
    if (c >= 0x201C && c <= 0x201F) c = U'"';
  }
  return text;
}

std::u32string fix_line_breaks(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char32_t c = text[i];
    if (c == U'\r') {
      out.push_back(U'\n');
      if (i + 1 < text.size() && text[i + 1] == U'\n') ++i;
    } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
      out.push_back(U'\n');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

/// ftfy.fixes.remove_terminal_escapes: \x1b\[((?:\d|;)*)([a-zA-Z]) removed (\d: any Unicode digit).
std::u32string remove_terminal_escapes(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] == 0x1B && i + 1 < text.size() && text[i + 1] == U'[') {
      std::size_t k = i + 2;
      while (k < text.size() && (text[k] == U';' || u_charType(static_cast<UChar32>(text[k])) == U_DECIMAL_DIGIT_NUMBER)) ++k;
      if (k < text.size() && ((text[k] >= U'a' && text[k] <= U'z') || (text[k] >= U'A' && text[k] <= U'Z'))) {
        i = k + 1;
        continue;
      }
    }
    out.push_back(text[i++]);
  }
  return out;
}

/// ftfy.fixes.remove_control_chars: C0 controls but \t \n \f \r, DEL, U+206A..U+206F, U+FEFF and
/// U+FFF9..U+FFFC.
std::u32string remove_control_chars(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (const char32_t c : text) {
    const bool control = (c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
                         (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
    if (!control) out.push_back(c);
  }
  return out;
}

icu::UnicodeString to_icu(std::u32string_view text) {
  return icu::UnicodeString::fromUTF32(reinterpret_cast<const UChar32*>(text.data()),
                                       static_cast<int32_t>(text.size()));
}

std::u32string from_icu(const icu::UnicodeString& text) {
  std::u32string out(static_cast<std::size_t>(text.countChar32()), U'\0');
  UErrorCode status = U_ZERO_ERROR;
  const int32_t length = text.toUTF32(reinterpret_cast<UChar32*>(out.data()),
                                      static_cast<int32_t>(out.size()), status);
  if (U_FAILURE(status)) throw Error(fmt::format("ICU: cannot convert text to UTF-32: {}", u_errorName(status)));
  out.resize(static_cast<std::size_t>(length));
  return out;
}

bool is_ascii(std::u32string_view text) {
  return std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x80; });
}

std::u32string normalize_nfc(std::u32string_view text) {
  if (is_ascii(text)) return std::u32string(text);
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  if (U_FAILURE(status)) throw Error(fmt::format("ICU: no NFC normaliser: {}", u_errorName(status)));
  const icu::UnicodeString source = to_icu(text);
  if (nfc->isNormalized(source, status) && U_SUCCESS(status)) return std::u32string(text);
  status = U_ZERO_ERROR;
  const icu::UnicodeString normalized = nfc->normalize(source, status);
  if (U_FAILURE(status)) throw Error(fmt::format("ICU: NFC normalisation failed: {}", u_errorName(status)));
  return from_icu(normalized);
}

/// ftfy.fix_and_explain on one segment: every fix in order, repeated until nothing changes.
std::u32string fix_segment(std::u32string text, bool unescape) {
  while (true) {
    const std::u32string original = text;
    if (unescape) text = ftfy_unescape_html(text);
    text = detail::fix_encoding(std::move(text));
    text = detail::fix_c1_controls(std::move(text));
    text = fix_latin_ligatures(text);
    text = fix_character_width(text);
    text = uncurl_quotes(std::move(text));
    text = fix_line_breaks(text);
    text = remove_terminal_escapes(text);
    text = remove_control_chars(text);
    text = normalize_nfc(text);
    if (text == original) return text;
  }
}

/// ftfy.fix_text: lines (at most 10^6 characters each) fixed one by one; HTML unescaping stops
/// for good at the first line holding '<'.
std::u32string fix_text_u32(std::u32string_view text) {
  constexpr std::size_t kMaxDecodeLength = 1000000;
  std::u32string out;
  out.reserve(text.size());
  bool unescape = true;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t newline = text.find(U'\n', pos);
    std::size_t end = newline == std::u32string_view::npos ? text.size() : newline + 1;
    end = std::min(end, pos + kMaxDecodeLength);
    const std::u32string_view segment = text.substr(pos, end - pos);
    if (unescape && segment.find(U'<') != std::u32string_view::npos) unescape = false;
    out += fix_segment(std::u32string(segment), unescape);
    pos = end;
  }
  return out;
}

std::u32string python_strip_u32(std::u32string_view text) {
  std::size_t begin = 0;
  std::size_t end = text.size();
  while (begin < end && is_python_space(text[begin])) ++begin;
  while (end > begin && is_python_space(text[end - 1])) --end;
  return std::u32string(text.substr(begin, end - begin));
}

std::u32string whitespace_clean_u32(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  bool in_space = false;
  for (const char32_t c : text) {
    if (is_regex_space(c)) {
      if (!in_space) out.push_back(U' ');
      in_space = true;
    } else {
      out.push_back(c);
      in_space = false;
    }
  }
  return python_strip_u32(out);
}

std::u32string unicode_lower_u32(std::u32string_view text) {
  if (is_ascii(text)) {
    std::u32string out(text);
    for (char32_t& c : out) {
      if (c >= U'A' && c <= U'Z') c += U'a' - U'A';
    }
    return out;
  }
  icu::UnicodeString s = to_icu(text);
  s.toLower(icu::Locale::getRoot());
  return from_icu(s);
}

}  // namespace

std::string html_unescape(std::string_view text) {
  return u32_to_utf8(html_unescape_u32(utf8_to_u32(text)));
}

std::string fix_text(std::string_view text) {
  return u32_to_utf8(fix_text_u32(utf8_to_u32(text)));
}

std::string unicode_lower(std::string_view text) {
  return u32_to_utf8(unicode_lower_u32(utf8_to_u32(text)));
}

std::string whitespace_clean(std::string_view text) {
  return u32_to_utf8(whitespace_clean_u32(utf8_to_u32(text)));
}

std::string python_strip(std::string_view text) {
  return u32_to_utf8(python_strip_u32(utf8_to_u32(text)));
}

std::string clean_text(std::string_view text) {
  std::u32string s = fix_text_u32(utf8_to_u32(text));
  s = html_unescape_u32(html_unescape_u32(s));
  s = python_strip_u32(s);
  s = whitespace_clean_u32(s);
  return u32_to_utf8(unicode_lower_u32(s));
}

}  // namespace clipes::text

// CLIP's text cleaning: ftfy.fix_text (the fixes listed in text_clean.h), Python's html.unescape,
// whitespace collapsing and str.lower(). Everything works on code points (std::u32string); ICU
// provides NFC and the Unicode lower-case mapping.

#include "clipes/clip/text_clean.h"

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
#include "utf8.h"

namespace clipes::clip {
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

#include "text_tables.inc"

using detail::is_python_space;
using detail::is_regex_space;

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

bool is_c1(char32_t c) { return c >= 0x80 && c <= 0x9F; }

std::u32string fix_c1_controls(std::u32string text) {
  for (char32_t& c : text) {
    if (is_c1(c)) c = kSloppy1252High[c - 0x80];
  }
  return text;
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

// ---------------------------------------------------------------- ftfy: mojibake

// ftfy's badness categories (ftfy/badness.py), restricted to what matters for Latin-1 and
// Windows-1252 text (plus the Greek/Cyrillic letters of its "common" classes and box drawing).
enum : unsigned {
  kC1 = 1u << 0,
  kBad = 1u << 1,
  kCurrency = 1u << 2,
  kStart = 1u << 3,
  kEnd = 1u << 4,
  kNumeric = 1u << 5,
  kKaomoji = 1u << 6,
  kUpperAccented = 1u << 7,
  kLowerAccented = 1u << 8,
  kUpperCommon = 1u << 9,
  kLowerCommon = 1u << 10,
  kBox = 1u << 11,
  kCommon = 1u << 12,
};

bool in_list(char32_t c, std::u32string_view list) { return list.find(c) != std::u32string_view::npos; }

unsigned char_class(char32_t c) {
  unsigned m = 0;
  if (c < 0x80) return 0;
  if (in_list(c, U"\u00A0\u00AD\u00B7\u00B4\u2013\u2014\u2015\u2026\u2019")) m |= kCommon;
  if (is_c1(c)) m |= kC1;
  if (in_list(c, U"\u00A6\u00A4\u00A8\u00AC\u00AF\u00B6\u00A7\u00B8\u0192\u02C6\u02C7\u02D8\u02DB"
                 U"\u02DC\u2020\u2021\u2030\u2310\u25CA\uFFFD\u00AA\u00BA")) {
    m |= kBad;
  }
  if (in_list(c, U"\u00A2\u00A3\u00A5\u20A7\u20AC")) m |= kCurrency;
  if (in_list(c, U"\u00A1\u00AB\u00BF\u00A9\u0384\u0385\u2018\u201A\u201C\u201E\u2022\u2039\uF8FF")) {
    m |= kStart;
  }
  if (in_list(c, U"\u00AE\u00BB\u02DD\u201D\u203A\u2122")) m |= kEnd;
  if (in_list(c, U"\u00B2\u00B3\u00B9\u00B1\u00BC\u00BD\u00BE\u00D7\u00B5\u00F7\u2044\u2202\u2206"
                 U"\u220F\u2211\u221A\u221E\u2229\u222B\u2248\u2260\u2261\u2264\u2265\u2116")) {
    m |= kNumeric;
  }
  if ((c >= 0xD2 && c <= 0xD6) || (c >= 0xD9 && c <= 0xDC) || (c >= 0xF2 && c <= 0xF6) ||
      (c >= 0xF8 && c <= 0xFC) || c == 0x150 || c == 0xB0) {
    m |= kKaomoji;
  }
  if ((c >= 0xC0 && c <= 0xD1) || (c >= 0xD8 && c <= 0xDC) || c == 0x160 || c == 0x178 || c == 0x17D) {
    m |= kUpperAccented;
  }
  if (c == 0xDF || (c >= 0xE0 && c <= 0xF1) || (c >= 0xF8 && c <= 0xFC) || c == 0x161 || c == 0x17E) {
    m |= kLowerAccented;
  }
  if (c == 0xDE || (c >= 0x391 && c <= 0x3A9) || (c >= 0x401 && c <= 0x42F)) m |= kUpperCommon;
  if ((c >= 0x3B1 && c <= 0x3C9) || (c >= 0x430 && c <= 0x45F)) m |= kLowerCommon;
  if (in_list(c, U"\u2502\u250C\u2510\u2518\u251C\u2524\u252C\u253C\u2580\u2584\u2588\u258C") ||
      (c >= 0x2550 && c <= 0x256C) || (c >= 0x2590 && c <= 0x2593)) {
    m |= kBox;
  }
  return m;
}

bool is_ascii_lower(char32_t c) { return c >= U'a' && c <= U'z'; }
bool is_ascii_letter(char32_t c) { return is_ascii_lower(c) || (c >= U'A' && c <= U'Z'); }
bool is_word_char(char32_t c) { return c == U'_' || u_isalnum(static_cast<UChar32>(c)); }

/// ftfy.badness.is_bad: does the text hold a sequence that is almost surely mojibake? The rules
/// of ftfy's BADNESS_RE that concern Latin-1/Windows-1252 characters, in its order.
bool is_bad(std::u32string_view t) {
  const std::size_t n = t.size();
  std::vector<unsigned> cls(n + 3, 0);
  for (std::size_t i = 0; i < n; ++i) cls[i] = char_class(t[i]);
  auto at = [&](std::size_t i) -> char32_t { return i < n ? t[i] : 0; };
  constexpr unsigned kAccented = kLowerAccented | kUpperAccented;
  for (std::size_t i = 0; i < n; ++i) {
    const char32_t c0 = t[i];
    const char32_t c1 = at(i + 1);
    const char32_t c2 = at(i + 2);
    const unsigned m0 = cls[i];
    const unsigned m1 = cls[i + 1];
    const unsigned m2 = cls[i + 2];
    const bool has1 = i + 1 < n;
    if (m0 & kC1) return true;
    if ((m0 & (kBad | kAccented | kBox | kStart | kEnd | kCurrency | kNumeric)) && (m1 & kBad)) return true;
    if (is_ascii_letter(c0) && (m1 & (kLowerCommon | kUpperCommon)) && (m2 & kBad)) return true;
    if ((m0 & kBad) && (m1 & (kAccented | kBox | kStart | kEnd | kCurrency | kNumeric))) return true;
    if ((m0 & (kLowerAccented | kLowerCommon | kBox | kEnd | kCurrency | kNumeric)) && (m1 & kUpperAccented)) return true;
    if ((m0 & (kBox | kEnd | kCurrency | kNumeric)) && (m1 & kLowerAccented)) return true;
    if ((m0 & (kLowerAccented | kBox | kEnd)) && (m1 & kCurrency)) return true;
    if (has1 && is_python_space(c0) && (m1 & kUpperAccented) && (m2 & kCurrency)) return true;
    if ((m0 & (kUpperAccented | kBox)) && (m1 & kNumeric)) return true;
    if ((m0 & (kAccented | kBox | kCurrency | kEnd)) && (m1 & kStart) && (m2 & kNumeric)) return true;
    if ((m0 & (kAccented | kCurrency | kNumeric | kBox)) && (m1 & kEnd) && (m2 & kStart)) return true;
    if ((m0 & (kCurrency | kNumeric | kBox)) && (m1 & kStart)) return true;
    if (is_ascii_lower(c0) && (m1 & kUpperAccented) && (m2 & (kStart | kCurrency))) return true;
    if ((m0 & kBox) && (m1 & kKaomoji)) return true;
    if ((m0 & (kAccented | kCurrency | kNumeric | kStart | kEnd)) && (m1 & kBox)) return true;
    if ((m0 & kBox) && (m1 & kEnd)) return true;
    if ((m0 & kAccented) && (m1 & kEnd) && i + 2 < n && is_word_char(c2)) return true;
    if ((c0 == 0x152 || c0 == 0x153) && has1 && !is_ascii_letter(c1)) return true;
    if (in_list(c0, U"\u00C2\u00C3\u00CE\u00D0") && has1 &&
        (in_list(c1, U"\u20AC\u0160\u0161\u00A2\u00A3\u0178\u017E\u00A0\u00AD\u00AE\u00A9\u00B0\u00B7\u00BB"
                     U"\u2013\u2014\u00B4") ||
         (m1 & (kStart | kEnd)))) {
      return true;
    }
    if (c0 == 0xD7 && (c1 == 0xB2 || c1 == 0xB3)) return true;
    if ((c0 == 0xD8 || c0 == 0xD9) && i + 3 < n && (t[i + 2] == 0xD8 || t[i + 2] == 0xD9)) {
      const unsigned arabic = kCommon | kCurrency | kBad | kNumeric | kStart;
      auto arabic_second = [&](std::size_t k) {
        return (cls[k] & arabic) || in_list(t[k], U"\u0178\u0160\u00AE\u00B0\u00B5\u00BB");
      };
      if (arabic_second(i + 1) && arabic_second(i + 3)) return true;
    }
    if (c0 == 0xE0 && in_list(c1, U"\u00B2\u00B5\u00B9\u00BC\u00BD\u00BE") && has1) return true;
    if (c0 == 0xC3 && (c1 == 0xA0 || c1 == 0xA1) && has1) return true;
    if (is_ascii_lower(c0) && has1) {
      if ((c1 == 0xC3 || c1 == 0xC2) && c2 == U' ' && i + 2 < n) return true;
      if (is_python_space(c1) && (c2 == 0xC3 || c2 == 0xC2) && i + 3 < n && t[i + 3] == U' ') return true;
    }
    if (i == 0 && (c0 == 0xC3 || c0 == 0xC2) && c1 == U' ' && has1) return true;
    if ((in_list(c0, U"abcdefghijklmnopqrstuvwxyz.,?!") || (m0 & kEnd)) && c1 == 0xC2 && i + 2 < n &&
        (c2 == U' ' || (m2 & kCommon))) {
      return true;
    }
  }
  return false;
}

enum class Charmap { kLatin1, kSloppyWindows1252 };

/// The text as single bytes in `map`, or false when a character has no byte there.
bool encode_charmap(std::u32string_view text, Charmap map, std::string* bytes) {
  bytes->clear();
  bytes->reserve(text.size());
  for (const char32_t c : text) {
    if (c < 0x80 || (c >= 0xA0 && c <= 0xFF) || (map == Charmap::kLatin1 && c <= 0xFF)) {
      bytes->push_back(static_cast<char>(c));
      continue;
    }
    if (map == Charmap::kLatin1) return false;
    const auto* it = std::find(std::begin(kSloppy1252High), std::end(kSloppy1252High), c);
    if (it == std::end(kSloppy1252High)) return false;
    bytes->push_back(static_cast<char>(0x80 + (it - std::begin(kSloppy1252High))));
  }
  return true;
}

bool is_utf8_lead2(char32_t c) { return c >= 0xC2 && c <= 0xDF; }
bool is_utf8_lead3(char32_t c) { return c >= 0xE0 && c <= 0xEF; }
bool is_utf8_lead4(char32_t c) { return c >= 0xF0 && c <= 0xF4; }
bool is_utf8_continuation_strict(char32_t c) {
  return (c >= 0x80 && c <= 0xBF) ||
         std::find(std::begin(kSloppy1252High), std::end(kSloppy1252High), c) != std::end(kSloppy1252High);
}
bool is_utf8_continuation(char32_t c) { return c == U' ' || is_utf8_continuation_strict(c); }

/// ftfy's UTF8_DETECTOR_RE: (?<![strict continuation])(lead2 cont | lead3 cont{2} | lead4 cont{3})+.
/// Returns the end of the match starting at `i`, or `i` when none starts there.
std::size_t match_utf8_run(std::u32string_view t, std::size_t i) {
  if (i > 0 && is_utf8_continuation_strict(t[i - 1])) return i;
  std::size_t pos = i;
  while (pos < t.size()) {
    const char32_t lead = t[pos];
    const std::size_t follow = is_utf8_lead2(lead) ? 1 : is_utf8_lead3(lead) ? 2 : is_utf8_lead4(lead) ? 3 : 0;
    if (follow == 0 || pos + follow >= t.size()) break;
    bool ok = true;
    for (std::size_t k = 1; k <= follow; ++k) ok = ok && is_utf8_continuation(t[pos + k]);
    if (!ok) break;
    pos += follow + 1;
  }
  return pos;
}

std::u32string fix_encoding(std::u32string text);

/// ftfy.fixes.decode_inconsistent_utf8: each UTF-8-looking run that is bad on its own (and
/// shorter than the text) is fixed alone.
std::u32string decode_inconsistent_utf8(std::u32string_view text) {
  std::u32string out;
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t end = match_utf8_run(text, i);
    if (end == i) {
      out.push_back(text[i++]);
      continue;
    }
    const std::u32string_view run = text.substr(i, end - i);
    if (run.size() < text.size() && is_bad(run)) {
      out += fix_encoding(std::u32string(run));
    } else {
      out += run;
    }
    i = end;
  }
  return out;
}

bool has_utf8_run(std::u32string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (match_utf8_run(text, i) != i) return true;
  }
  return false;
}

/// ftfy's _fix_encoding_one_step_and_explain, for the Latin-1 and sloppy Windows-1252 charmaps.
std::u32string fix_encoding_one_step(const std::u32string& text) {
  if (text.empty() || is_ascii(text) || !is_bad(text)) return text;
  std::string bytes;
  std::u32string fixed;
  bool latin1_possible = false;
  for (const Charmap map : {Charmap::kLatin1, Charmap::kSloppyWindows1252}) {
    if (!encode_charmap(text, map, &bytes)) continue;
    if (map == Charmap::kLatin1) latin1_possible = true;
    const bool variants = bytes.find('\xED') != std::string::npos || bytes.find('\xC0') != std::string::npos;
    if (detail::utf8_decode_strict(bytes, variants, &fixed)) return fixed;
  }
  if (has_utf8_run(text)) {
    fixed = decode_inconsistent_utf8(text);
    if (fixed != text) return fixed;
  }
  if (latin1_possible) {
    // Latin-1 read as strict Windows-1252: only the C1 controls change; undefined bytes fail.
    bool ok = true;
    fixed = text;
    for (char32_t& c : fixed) {
      if (!is_c1(c)) continue;
      const char32_t mapped = kSloppy1252High[c - 0x80];
      if (mapped == c) ok = false;
      c = mapped;
    }
    if (ok && fixed != text) return fixed;
  }
  if (std::any_of(text.begin(), text.end(), is_c1)) return fix_c1_controls(text);
  return text;
}

std::u32string fix_encoding(std::u32string text) {
  while (true) {
    std::u32string next = fix_encoding_one_step(text);
    if (next == text) return text;
    text = std::move(next);
  }
}

/// ftfy.fix_and_explain on one segment: every fix in order, repeated until nothing changes.
std::u32string fix_segment(std::u32string text, bool unescape) {
  while (true) {
    const std::u32string original = text;
    if (unescape) text = ftfy_unescape_html(text);
    text = fix_encoding(std::move(text));
    text = fix_c1_controls(std::move(text));
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
  return detail::u32_to_utf8(html_unescape_u32(detail::utf8_to_u32(text)));
}

std::string fix_text(std::string_view text) {
  return detail::u32_to_utf8(fix_text_u32(detail::utf8_to_u32(text)));
}

std::string unicode_lower(std::string_view text) {
  return detail::u32_to_utf8(unicode_lower_u32(detail::utf8_to_u32(text)));
}

std::string whitespace_clean(std::string_view text) {
  return detail::u32_to_utf8(whitespace_clean_u32(detail::utf8_to_u32(text)));
}

std::string python_strip(std::string_view text) {
  return detail::u32_to_utf8(python_strip_u32(detail::utf8_to_u32(text)));
}

std::string clean_text(std::string_view text) {
  std::u32string s = fix_text_u32(detail::utf8_to_u32(text));
  s = html_unescape_u32(html_unescape_u32(s));
  s = python_strip_u32(s);
  s = whitespace_clean_u32(s);
  return detail::u32_to_utf8(unicode_lower_u32(s));
}

}  // namespace clipes::clip

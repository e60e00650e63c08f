// ftfy's repair of mojibake (ftfy.fixes.fix_encoding and its helpers), for UTF-8 that was
// decoded as Latin-1 or Windows-1252, and its C1-control fix. See text_clean.h for what is and
// is not reproduced.

#include "mojibake.h"

#include <algorithm>
#include <iterator>
#include <string_view>
#include <vector>

#include <unicode/uchar.h>

#include "clipes/text/utf8.h"

namespace clipes::text::detail {
namespace {

#include "windows_1252.inc"

bool is_ascii(std::u32string_view text) {
  return std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x80; });
}

bool is_c1(char32_t c) { return c >= 0x80 && c <= 0x9F; }

std::u32string fix_c1_controls_impl(std::u32string text) {
  for (char32_t& c : text) {
    if (is_c1(c)) c = kSloppy1252High[c - 0x80];
  }
  return text;
}

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

std::u32string fix_encoding_loop(std::u32string text);

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
      out += fix_encoding_loop(std::u32string(run));
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
    if (utf8_decode_strict(bytes, variants, &fixed)) return fixed;
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
  if (std::any_of(text.begin(), text.end(), is_c1)) return fix_c1_controls_impl(text);
  return text;
}

std::u32string fix_encoding_loop(std::u32string text) {
  while (true) {
    std::u32string next = fix_encoding_one_step(text);
    if (next == text) return text;
    text = std::move(next);
  }
}

}  // namespace

std::u32string fix_encoding(std::u32string text) { return fix_encoding_loop(std::move(text)); }

std::u32string fix_c1_controls(std::u32string text) { return fix_c1_controls_impl(std::move(text)); }

}  // namespace clipes::text::detail

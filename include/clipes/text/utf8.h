#pragma once
/// UTF-8 <-> code points and Python's whitespace classes, shared by the text cleaning
/// (text_clean.h) and CLIP's tokenizer.

#include <string>
#include <string_view>

namespace clipes::text {

/// Strict UTF-8 decoding (no overlongs, surrogates or code points past U+10FFFF); throws
/// clipes::Error naming the offending byte and its offset.
std::u32string utf8_to_u32(std::string_view text);

/// Appends the UTF-8 encoding of `code` (a valid scalar value).
void append_utf8(std::string& out, char32_t code);

/// Encodes code points (valid scalar values) as UTF-8.
std::string u32_to_utf8(std::u32string_view text);

/// bytes.decode("utf-8") (strict) into `out`; false on any invalid sequence. With `variants`,
/// ftfy's "utf-8-variants": CESU-8 surrogate pairs and Java's C0 80 (U+0000) are accepted too.
bool utf8_decode_strict(std::string_view bytes, bool variants, std::u32string* out);

/// Python's bytes.decode("utf-8", errors="replace"): one U+FFFD per maximal invalid subpart.
std::u32string utf8_decode_replace(std::string_view bytes);

/// Python's str.isspace() for one character (bidi class WS/B/S or category Zs).
bool is_python_space(char32_t code);

/// The `regex` module's \s (the Unicode White_Space property): is_python_space without
/// U+001C..U+001F.
bool is_regex_space(char32_t code);

}  // namespace clipes::text

#pragma once
/// The text cleaning of OpenAI CLIP's tokenizer (simple_tokenizer.py), step by step. Spec §1.
///
/// CLIP tokenizes `whitespace_clean(basic_clean(text)).lower()` where
/// basic_clean(text) = html.unescape(html.unescape(ftfy.fix_text(text))).strip(). Each step is
/// exposed so that it can be tested alone; clean_text() is the whole chain.
///
/// Every function takes and returns UTF-8 and throws clipes::Error when the input is not valid
/// UTF-8 (the message gives the byte offset). All functions are pure and thread-safe.

#include <string>
#include <string_view>

namespace clipes::text {

/// Python's html.unescape (3.11): named HTML5 references, with or without ';' where HTML5 allows
/// it (longest known prefix, as the standard says), and numeric references with Python's rules
/// for invalid code points (&#0; and surrogates -> U+FFFD, &#128;..&#159; -> Windows-1252,
/// noncharacters and most C0/C1 controls dropped).
std::string html_unescape(std::string_view text);

/// ftfy.fix_text(text) with its default settings, reproduced for these fixes: HTML entities
/// (not from the first line holding a '<' on, as ftfy's "auto" does), mojibake of UTF-8 read as Latin-1 or
/// Windows-1252 (whole text, or runs of it inside otherwise good text), C1 controls read as
/// Windows-1252, Latin ligatures (ﬁ -> fi), fullwidth/halfwidth forms (Ａ -> A, U+3000 -> space),
/// curly quotes (’ -> ', “ -> "), line breaks (\r\n, \r, U+2028/9, U+0085 -> \n), ANSI terminal
/// escapes and control characters removed, then NFC; repeated until nothing changes.
/// Not reproduced: ftfy's repair of mojibake through other single-byte encodings (Windows-1250/
/// 1251/1253/1254/1257, ISO-8859-2, MacRoman, cp437) and its restore_byte_a0 /
/// replace_lossy_sequences transcoding steps; such text is left as it is. The "is this mojibake"
/// test is ftfy's badness heuristic restricted to Latin-1/Windows-1252 characters.
std::string fix_text(std::string_view text);

/// Python's str.lower(): full Unicode lower-case mapping (e.g. 'İ' -> "i̇", final sigma -> 'ς').
std::string unicode_lower(std::string_view text);

/// CLIP's whitespace_clean: every run of Unicode whitespace (the `regex` module's \s) becomes
/// one space, then Python's str.strip().
std::string whitespace_clean(std::string_view text);

/// Python's str.strip() (no argument): removes leading and trailing characters for which
/// str.isspace() is true.
std::string python_strip(std::string_view text);

/// The whole chain: unicode_lower(whitespace_clean(python_strip(
///     html_unescape(html_unescape(fix_text(text)))))): the text CLIP's BPE sees.
std::string clean_text(std::string_view text);

}  // namespace clipes::text

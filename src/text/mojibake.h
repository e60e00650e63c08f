#pragma once
/// ftfy's mojibake repair, restricted to UTF-8 read as Latin-1 or Windows-1252 (private to
/// src/text; text_clean.h documents the behaviour).

#include <string>
#include <string_view>

namespace clipes::text::detail {

/// ftfy.fix_encoding: repeats ftfy's one-step repair until the text stops changing.
std::u32string fix_encoding(std::u32string text);

/// ftfy.fixes.fix_c1_controls: U+0080..U+009F read as sloppy Windows-1252.
std::u32string fix_c1_controls(std::u32string text);

}  // namespace clipes::text::detail

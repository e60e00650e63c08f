#include "clipes/text/text_clean.h"

#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "clipes/core/error.h"

namespace clipes::text {
namespace {

using Cases = std::vector<std::pair<std::string, std::string>>;

// Expected values below were computed with Python 3.11 (html.unescape, str.lower, regex.sub,
// str.strip) or are ftfy's own documented examples.

TEST(HtmlUnescape, MatchesPython) {
  const Cases cases = {
      {"tom &amp; jerry", "tom & jerry"},
      {"&amp;amp;", "&amp;"},
      {"&lt;b&gt;", "<b>"},
      {"&ampxyz", "&xyz"},        // legacy name without ';', longest prefix
      {"&amp", "&"},
      {"&notit;", "\u00ACit;"},   // "not" is the longest known prefix
      {"&notin;", "\u2209"},
      {"&noti", "\u00ACi"},
      {"&#65;&#x42;&#X43", "ABC"},
      {"&#0;", "\uFFFD"},
      {"&#128;&#x9d;", "\u20AC\u009D"},  // Windows-1252 for 0x80..0x9F, undefined bytes kept
      {"&#xD800;", "\uFFFD"},
      {"&#x110000;", "\uFFFD"},
      {"&#9999999999999999999;", "\uFFFD"},
      {"&#1;x", "x"},             // invalid code points are dropped
      {"&#65a", "Aa"},
      {"&#;", "&#;"},
      {"&#x;", "&#x;"},
      {"&unknown;", "&unknown;"},
      {"&AMP;", "&"},
      {"&Eacute", "\u00C9"},
      {"&eacute;&EACUTE;", "\u00E9&EACUTE;"},
      {"&&amp;", "&&"},
      {"& amp;", "& amp;"},
      {"&lt;&lt", "<<"},
      {"&NotNestedGreaterGreater;", "\u2AA2\u0338"},
      {"&fjlig;", "fj"},
      {"&CounterClockwiseContourIntegral;", "\u2233"},
      {"&ab\u00E9;", "&ab\u00E9;"},
      {"&#x263A;", "\u263A"},
      {"no entities", "no entities"},
  };
  for (const auto& [in, out] : cases) EXPECT_EQ(html_unescape(in), out) << in;
}

TEST(UnicodeLower, IsPythonsFullMapping) {
  EXPECT_EQ(unicode_lower("A CLEAN ORIGAMI CAT."), "a clean origami cat.");
  EXPECT_EQ(unicode_lower("\u0130stanbul"), "i\u0307stanbul");          // 'İ' -> "i̇"
  EXPECT_EQ(unicode_lower("\u039F\u0394\u039F\u03A3 \u03A3"), "\u03BF\u03B4\u03BF\u03C2 \u03C3");  // final sigma
  EXPECT_EQ(unicode_lower("STRASSE \u1E9E"), "strasse \u00DF");
  EXPECT_EQ(unicode_lower("\u01C5"), "\u01C6");  // 'ǅ' -> 'ǆ'
  EXPECT_EQ(unicode_lower("\u212A"), "k");       // Kelvin sign
  EXPECT_EQ(unicode_lower("\u00C9T\u00C9"), "\u00E9t\u00E9");
}

TEST(WhitespaceClean, CollapsesUnicodeWhitespaceAndStrips) {
  EXPECT_EQ(whitespace_clean("a  clean\t\torigami \n cat ."), "a clean origami cat .");
  EXPECT_EQ(whitespace_clean("  leading and trailing  "), "leading and trailing");
  EXPECT_EQ(whitespace_clean("tab\tsep\u00A0nbsp\u2009thin\u200Bzwsp"), "tab sep nbsp thin\u200Bzwsp");
  EXPECT_EQ(whitespace_clean("a\u3000b\u2028c\u0085d\u180Ee"), "a b c d\u180Ee");
  // U+001C..U+001F are no \s for the regex module but str.strip() removes them.
  EXPECT_EQ(whitespace_clean("\u001Ca\u001Fb\u001F"), "a\u001Fb");
  EXPECT_EQ(whitespace_clean("   "), "");
  EXPECT_EQ(python_strip("\u001F x \u3000"), "x");
}

TEST(FixText, ReproducesFtfyExamples) {
  const Cases cases = {
      // ftfy's README
      {"\u00E2\u0153\u201D No problems", "\u2714 No problems"},
      {"The Mona Lisa doesn\u00C3\u0192\u00C2\u00A2\u00C3\u00A2\u00E2\u20AC\u0161\u00C2\u00AC\u00C3\u00A2\u00E2"
       "\u20AC\u017E\u00C2\u00A2t have eyebrows.",
       "The Mona Lisa doesn't have eyebrows."},
      {"&lt;3", "<3"},
      {"&macr;\\_(\u00E3\u0083\u0084)_/&macr;", "\u00AF\\_(\u30C4)_/\u00AF"},
      {"Broken text&hellip; it&#x2019;s \uFB02ubberi\uFB01c!", "Broken text\u2026 it's flubberific!"},
      {"\uFF2C\uFF2F\uFF35\uFF24\u3000\uFF2E\uFF2F\uFF29\uFF33\uFF25\uFF33", "LOUD NOISES"},
      {"\u2018highlight\u2019", "'highlight'"},
      {"l'humanit\u00C3\u00A9", "l'humanit\u00E9"},
      {"\x1b[36;44mI am blue\x1b[0m", "I am blue"},
      // the reference cases' tricky text
      {"caf\u00C3\u00A9", "caf\u00E9"},
      {"don\u2019t stop", "don't stop"},
      {"\uFB01ne \uFB02ower", "fine flower"},
      {"\uFF21\uFF22\uFF23\u3000\uFF11\uFF12\uFF13", "ABC 123"},
      {"cafe\u0301", "caf\u00E9"},  // NFC
      {"5 &#8364; and &#x263A;", "5 \u20AC and \u263A"},
  };
  for (const auto& [in, out] : cases) EXPECT_EQ(fix_text(in), out) << in;
}

TEST(FixText, RepairsOnlyLikelyMojibake) {
  const Cases cases = {
      {"caf\u00E9 caf\u00C3\u00A9", "caf\u00E9 caf\u00E9"},      // good and bad UTF-8 in one text
      {"s\u00C3\u00A3o paulo", "s\u00E3o paulo"},
      {"\u00C3\u00A0 la carte", "\u00E0 la carte"},
      {"\u00C3\u0090\u00C5\u00B8\u00C3\u0091\u00E2\u201A\u00AC\u00C3\u0090\u00C2\u00B8", "\u041F\u0440\u0438"},
      {"\u00C2\u00A35", "\u00A35"},
      {"\u00E2\u20AC\u0153quoted\u00E2\u20AC\u009D", "\"quoted\""},
      // legitimate text is left alone
      {"na\u00EFve Zo\u00EB fa\u00E7ade", "na\u00EFve Zo\u00EB fa\u00E7ade"},
      {"gro\u00DF\u2026", "gro\u00DF\u2026"},
      {"stra\u00DFe STRASSE", "stra\u00DFe STRASSE"},
      {"\u0395\u03BB\u03BB\u03B7\u03BD\u03B9\u03BA\u03AC", "\u0395\u03BB\u03BB\u03B7\u03BD\u03B9\u03BA\u03AC"},
      {"\u65E5\u672C\u8A9E", "\u65E5\u672C\u8A9E"},
  };
  for (const auto& [in, out] : cases) EXPECT_EQ(fix_text(in), out) << in;
}

TEST(FixText, ControlsQuotesLineBreaksAndEntities) {
  const Cases cases = {
      {"\u0093quoted\u0094", "\"quoted\""},  // C1 controls read as Windows-1252, then uncurled
      {"a\r\nb\rc\u2028d", "a\nb\nc\nd"},
      {"\uFEFFbom\u206A\u0001\u007F", "bom"},
      {"keep\ttab\fform", "keep\ttab\fform"},
      {"\u0132ssel \u01C6", "IJssel d\u017E"},
      {"\uFF76\uFF9E", "\u30AC"},  // halfwidth katakana + voiced mark -> NFKC, then NFC composes
      {"&EACUTE;&AMP;", "\u00C9&"},  // ftfy's upper-cased entities
      {"&#12a;", "&#12a;"},          // html.unescape would leave a ';': kept as it is
      // HTML unescaping stops at the first line that holds '<' (ftfy's "auto").
      {"&amp;\n<b>&amp;</b>\n&amp;", "&\n<b>&amp;</b>\n&amp;"},
  };
  for (const auto& [in, out] : cases) EXPECT_EQ(fix_text(in), out) << in;
}

TEST(CleanText, IsTheWholeChain) {
  const Cases cases = {
      {"  A CLEAN  ORIGAMI\tCAT. ", "a clean origami cat."},
      {"&amp;amp; double escaped", "& double escaped"},  // ftfy once, html.unescape twice
      {"&amp;amp;amp;amp;", "&"},
      {"&lt;b&gt;bold&lt;/b&gt;", "<b>bold</b>"},
      {"<i>&amp;amp;</i>", "<i>&</i>"},  // no ftfy unescape (a '<'), html.unescape twice
      {"\u0130stanbul", "i\u0307stanbul"},
      {"caf\u00C3\u00A9 CR\u00C8ME", "caf\u00E9 cr\u00E8me"},
      {"\uFF21\uFF22\uFF23\u3000\uFF11\uFF12\uFF13", "abc 123"},
      {"tab\tsep\u00A0nbsp\u2009thin\u200Bzwsp", "tab sep nbsp thin\u200Bzwsp"},
      {"", ""},
  };
  for (const auto& [in, out] : cases) EXPECT_EQ(clean_text(in), out) << in;
}

TEST(TextClean, InvalidUtf8IsAnErrorWithItsOffset) {
  for (const std::string& bad : {std::string("ok\xC3"), std::string("ok\xED\xA0\x80"), std::string("ok\xC0\xAF"),
                                std::string("ok\xF4\x90\x80\x80")}) {
    try {
      (void)clean_text(bad);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("not valid UTF-8"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("offset 2"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW((void)html_unescape("\xFF"), Error);
  EXPECT_THROW((void)unicode_lower("\x80"), Error);
}

}  // namespace
}  // namespace clipes::text

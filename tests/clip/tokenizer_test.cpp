#include "clipes/clip/tokenizer.h"

#include <algorithm>
#include <climits>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include "clipes/core/error.h"
#include "support/test_support.h"

namespace clipes::clip {
namespace {

using Merges = std::vector<std::pair<std::string, std::string>>;

std::string utf8(char32_t code) {
  std::string out;
  if (code < 0x80) {
    out.push_back(static_cast<char>(code));
  } else if (code < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code >> 6)));
    out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xE0 | (code >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
  }
  return out;
}

/// Writes `text` gzip-compressed to `file` (zlib's gz writer).
void write_gzip(const std::filesystem::path& file, const std::string& text) {
  gzFile out = gzopen(file.c_str(), "wb");
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(gzwrite(out, text.data(), static_cast<unsigned>(text.size())), static_cast<int>(text.size()));
  ASSERT_EQ(gzclose(out), Z_OK);
}

std::string read_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::filesystem::path& file, const std::string& bytes) {
  std::ofstream(file, std::ios::binary) << bytes;
}

std::string vocab_text(const Merges& merges) {
  std::string text = "\"bpe_simple_vocab_16e6.txt#version: 0.2\n";
  for (const auto& [a, b] : merges) text += a + " " + b + "\n";
  return text;
}

/// Expects `fn` to throw clipes::Error whose message contains every one of `parts`.
template <typename Fn>
void expect_error(Fn&& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected clipes::Error";
  } catch (const Error& e) {
    for (const auto& part : parts) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << "message: " << e.what() << "\nmissing: " << part;
    }
  }
}

// A small vocabulary: "hello", "world", "he", "lo" and friends.
const Merges kTinyMerges = {
    {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"o", "</w>"}, {"hell", "o</w>"}, {"w", "o"},
    {"r", "l"}, {"wo", "rl"}, {"worl", "d</w>"}, {"l", "o</w>"}, {"c", "a"}, {"ca", "t</w>"},
};

TEST(ClipByteTable, IsABijectionOntoPrintableCharacters) {
  const std::vector<char32_t> table = clip_byte_to_unicode();
  ASSERT_EQ(table.size(), 256u);
  const std::set<char32_t> distinct(table.begin(), table.end());
  EXPECT_EQ(distinct.size(), 256u);
  int remapped = 0;
  for (int b = 0; b < 256; ++b) {
    const char32_t c = table[static_cast<std::size_t>(b)];
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    if (printable) {
      EXPECT_EQ(c, static_cast<char32_t>(b));
    } else {
      EXPECT_EQ(c, static_cast<char32_t>(0x100 + remapped)) << "byte " << b;
      ++remapped;
    }
  }
  EXPECT_EQ(remapped, 68);
  EXPECT_EQ(table[' '], U'\u0120');  // 'Ġ'
  EXPECT_EQ(table[0x00], U'\u0100');
  EXPECT_EQ(table[0xAD], U'\u0143');
}

TEST(Tokenizer, VocabularyLayoutFollowsClip) {
  const Tokenizer tok = Tokenizer::from_merges(kTinyMerges);
  EXPECT_EQ(tok.num_merges(), 12);
  EXPECT_EQ(tok.vocab_size(), 512 + 12 + 2);
  EXPECT_EQ(tok.sot(), 524);
  EXPECT_EQ(tok.eot(), 525);
  EXPECT_EQ(tok.token_string(0), "!");
  EXPECT_EQ(tok.token_id("a"), 'a' - '!');
  EXPECT_EQ(tok.token_id("a</w>"), 256 + ('a' - '!'));
  EXPECT_EQ(tok.token_id(utf8(0x120)), 188 + ' ');  // 188 printable bytes, then the 68 others in byte order
  EXPECT_EQ(tok.token_string(512), "he");
  EXPECT_EQ(tok.token_string(523), "cat</w>");
  EXPECT_EQ(tok.token_string(524), "<|startoftext|>");
  EXPECT_EQ(tok.token_id("nope"), -1);
  expect_error([&] { (void)tok.token_string(526); }, {"token id 526", "[0, 526)"});
  expect_error([&] { (void)tok.token_string(-1); }, {"token id -1"});
}

TEST(Tokenizer, MergesByRankIntoWords) {
  const Tokenizer tok = Tokenizer::from_merges(kTinyMerges);
  const std::int64_t hello = tok.token_id("hello</w>");
  const std::int64_t world = tok.token_id("world</w>");
  ASSERT_EQ(hello, 516);
  ASSERT_EQ(world, 520);
  EXPECT_EQ(tok.encode("Hello  WORLD"), (std::vector<std::int64_t>{hello, world}));
  // "hellllo": h+e, then l+l twice (left to right), he+ll; "lo</w>" needs l+o</w> (rank 9) but
  // o+</w> (rank 3) comes first, so the last symbols are "l", "lo</w>"... checked by hand:
  // [h e l l l l o</w>] -> [he l l l l o</w>] -> [he ll ll o</w>] -> [hell ll o</w>]
  // -> no (hell, ll) merge; (ll, o</w>) none; done.
  EXPECT_EQ(tok.encode("hellllo"),
            (std::vector<std::int64_t>{tok.token_id("hell"), tok.token_id("ll"), tok.token_id("o</w>")}));
  EXPECT_EQ(tok.encode("cat's"), (std::vector<std::int64_t>{tok.token_id("cat</w>"), tok.token_id("'"),
                                                            tok.token_id("s</w>")}));
  EXPECT_EQ(tok.encode("x"), (std::vector<std::int64_t>{tok.token_id("x</w>")}));
  EXPECT_EQ(tok.encode(""), (std::vector<std::int64_t>{}));
  // A non-ASCII letter is one piece of several bytes, each its own symbol.
  EXPECT_EQ(tok.encode("é"), (std::vector<std::int64_t>{tok.token_id(utf8(0xC3)), tok.token_id(utf8(0xA9) + "</w>")}));
  EXPECT_EQ(tok.encode("<|startoftext|>hello<|endoftext|>"), (std::vector<std::int64_t>{tok.sot(), hello, tok.eot()}));
}

/// CLIP's SimpleTokenizer.bpe, on strings, exactly as the Python code does it.
std::vector<std::string> python_bpe(const std::vector<std::string>& chars, const std::map<std::pair<std::string, std::string>, int>& ranks) {
  std::vector<std::string> word = chars;
  word.back() += "</w>";
  while (word.size() > 1) {
    std::pair<std::string, std::string> best;
    int best_rank = INT_MAX;
    for (std::size_t i = 0; i + 1 < word.size(); ++i) {
      const auto it = ranks.find({word[i], word[i + 1]});
      if (it != ranks.end() && it->second < best_rank) {
        best_rank = it->second;
        best = it->first;
      }
    }
    if (best_rank == INT_MAX) break;
    std::vector<std::string> next;
    std::size_t i = 0;
    while (i < word.size()) {
      const auto j = std::find(word.begin() + static_cast<std::ptrdiff_t>(i), word.end(), best.first);
      if (j == word.end()) {
        next.insert(next.end(), word.begin() + static_cast<std::ptrdiff_t>(i), word.end());
        break;
      }
      next.insert(next.end(), word.begin() + static_cast<std::ptrdiff_t>(i), j);
      i = static_cast<std::size_t>(j - word.begin());
      if (word[i] == best.first && i + 1 < word.size() && word[i + 1] == best.second) {
        next.push_back(best.first + best.second);
        i += 2;
      } else {
        next.push_back(word[i]);
        i += 1;
      }
    }
    word = next;
  }
  return word;
}

TEST(Tokenizer, BpeMatchesStringReferenceOnRandomMerges) {
  std::mt19937 rng(7);
  const std::string alphabet = "abcd";
  for (int trial = 0; trial < 20; ++trial) {
    // Random merges over a 4-letter alphabet, built like a real BPE learner: each merge joins two
    // existing symbols (word-final symbols only on the right).
    std::vector<std::string> symbols;
    std::vector<std::string> final_symbols;
    for (const char c : alphabet) {
      symbols.emplace_back(1, c);
      final_symbols.push_back(std::string(1, c) + "</w>");
    }
    Merges merges;
    std::set<std::pair<std::string, std::string>> seen;
    while (merges.size() < 40) {
      const std::string a = symbols[rng() % symbols.size()];
      const bool final = rng() % 2 == 0;
      const std::string b = final ? final_symbols[rng() % final_symbols.size()] : symbols[rng() % symbols.size()];
      if (!seen.insert({a, b}).second) continue;
      merges.emplace_back(a, b);
      (final ? final_symbols : symbols).push_back(a + b);
    }
    std::map<std::pair<std::string, std::string>, int> ranks;
    for (std::size_t r = 0; r < merges.size(); ++r) ranks[merges[r]] = static_cast<int>(r);
    const Tokenizer tok = Tokenizer::from_merges(merges);
    for (int w = 0; w < 50; ++w) {
      std::vector<std::string> chars(1 + rng() % 12);
      std::string word;
      for (auto& c : chars) {
        c = std::string(1, alphabet[rng() % alphabet.size()]);
        word += c;
      }
      std::vector<std::int64_t> expected;
      for (const auto& s : python_bpe(chars, ranks)) expected.push_back(tok.token_id(s));
      EXPECT_EQ(tok.encode(word), expected) << "word " << word << " trial " << trial;
      EXPECT_EQ(tok.encode_clean(word), expected);
    }
  }
}

TEST(Tokenizer, LaterDuplicateMergeWins) {
  // Python builds dict(zip(merges, range(len(merges)))): a repeated pair keeps its last rank.
  const Merges merges = {{"a", "b"}, {"b", "c</w>"}, {"a", "b"}};
  const Tokenizer tok = Tokenizer::from_merges(merges);
  // (a, b) has rank 2 > rank 1 of (b, c</w>): "abc" -> a, bc</w>.
  EXPECT_EQ(tok.encode("abc"), (std::vector<std::int64_t>{tok.token_id("a"), tok.token_id("bc</w>")}));
  EXPECT_EQ(tok.token_id("ab"), 514);  // the last "ab" string in the vocabulary
}

TEST(Tokenizer, TokenizePadsTruncatesAndRefuses) {
  const Tokenizer tok = Tokenizer::from_merges(kTinyMerges);
  const std::int64_t hello = tok.token_id("hello</w>");
  EXPECT_EQ(tok.tokenize("hello", 5), (std::vector<std::int64_t>{tok.sot(), hello, tok.eot(), 0, 0}));
  EXPECT_EQ(tok.tokenize("", 3), (std::vector<std::int64_t>{tok.sot(), tok.eot(), 0}));
  EXPECT_EQ(tok.tokenize("hello hello hello", 5), (std::vector<std::int64_t>{tok.sot(), hello, hello, hello, tok.eot()}));
  EXPECT_EQ(tok.tokenize("hello hello hello hello", 5, true),
            (std::vector<std::int64_t>{tok.sot(), hello, hello, hello, tok.eot()}));
  EXPECT_EQ(tok.tokenize("hello", 1, true), (std::vector<std::int64_t>{tok.eot()}));
  EXPECT_EQ(tok.tokenize("hello").size(), 77u);
  expect_error([&] { (void)tok.tokenize("hello hello hello hello", 5); },
               {"\"hello hello hello hello\"", "6 tokens", "context length 5"});
  expect_error([&] { (void)tok.tokenize("hello", 0); }, {"context length must be >= 1, got 0"});
  EXPECT_EQ(tok.token_count("hello world"), 4u);
  const std::vector<std::int64_t> batch = tok.tokenize(std::vector<std::string>{"hello", "world"}, 4);
  EXPECT_EQ(batch, (std::vector<std::int64_t>{tok.sot(), hello, tok.eot(), 0, tok.sot(), tok.token_id("world</w>"), tok.eot(), 0}));
}

TEST(Tokenizer, DecodeJoinsWordsAndReplacesBadBytes) {
  const Tokenizer tok = Tokenizer::from_merges(kTinyMerges);
  EXPECT_EQ(tok.decode(tok.encode("Hello, world!")), "hello , world ! ");
  EXPECT_EQ(tok.decode(tok.encode("café")), "café ");
  // A lone UTF-8 lead byte decodes to U+FFFD, as bytes.decode("utf-8", errors="replace").
  EXPECT_EQ(tok.decode({tok.token_id(utf8(0xC3)), tok.token_id("a</w>")}), "\xEF\xBF\xBD" "a ");
  EXPECT_EQ(tok.decode({tok.sot(), tok.eot()}), "<|startoftext|><|endoftext|>");
  expect_error([&] { (void)tok.decode({526}); }, {"token id 526"});
}

TEST(Tokenizer, InvalidUtf8TextIsRefused) {
  const Tokenizer tok = Tokenizer::from_merges(kTinyMerges);
  expect_error([&] { (void)tok.tokenize("ab\xC3("); }, {"not valid UTF-8", "offset 2"});
  expect_error([&] { (void)tok.encode_clean("\xFF"); }, {"not valid UTF-8", "offset 0"});
}

TEST(Tokenizer, ConcurrentUseGivesTheSameTokens) {
  const Tokenizer tok = Tokenizer::from_merges(kTinyMerges, TokenizerOptions{12, 8});
  std::vector<std::string> texts;
  for (int i = 0; i < 64; ++i) texts.push_back("hello world cat " + std::string(static_cast<std::size_t>(i % 7) + 1, 'a' + static_cast<char>(i % 26)));
  std::vector<std::vector<std::int64_t>> expected;
  for (const auto& t : texts) expected.push_back(tok.tokenize(t));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        for (std::size_t i = 0; i < texts.size(); ++i) {
          if (tok.tokenize(texts[(i + static_cast<std::size_t>(t)) % texts.size()]) != expected[(i + static_cast<std::size_t>(t)) % texts.size()]) {
            ++mismatches[static_cast<std::size_t>(t)];
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

TEST(Tokenizer, CacheOffGivesTheSameTokens) {
  const Tokenizer cached = Tokenizer::from_merges(kTinyMerges);
  const Tokenizer uncached = Tokenizer::from_merges(kTinyMerges, TokenizerOptions{12, 0});
  for (const char* text : {"hello hello world", "cat cat", "hellllo wow"}) {
    EXPECT_EQ(cached.tokenize(text), uncached.tokenize(text));
    EXPECT_EQ(cached.tokenize(text), cached.tokenize(text));  // second time from the cache
  }
}

TEST(TokenizerFile, ReadsATinyGzipVocabulary) {
  const auto dir = testing::make_temp_dir("tok_tiny");
  write_gzip(dir / "v.txt.gz", vocab_text(kTinyMerges) + "extra line\n");
  const Tokenizer tok = Tokenizer::from_file(dir / "v.txt.gz", TokenizerOptions{10, 16});
  EXPECT_EQ(tok.num_merges(), 10);  // only the first 10 merges, as CLIP slices its file
  EXPECT_EQ(tok.sot(), 522);
  EXPECT_EQ(tok.source(), (dir / "v.txt.gz").string());
  EXPECT_EQ(tok.encode("hello"), (std::vector<std::int64_t>{516}));
  // merge 10 ("c a") is not read: "cat" stays three symbols.
  EXPECT_EQ(tok.encode("cat").size(), 3u);
}

TEST(TokenizerFile, ErrorsNameTheFileAndTheProblem) {
  const auto dir = testing::make_temp_dir("tok_errors");
  const TokenizerOptions twelve{12, 16};
  expect_error([&] { (void)Tokenizer::from_file(dir / "absent.txt.gz"); }, {"absent.txt.gz", "no such file"});
  expect_error([&] { (void)Tokenizer::from_file(dir); }, {"is a folder"});

  write_bytes(dir / "plain.txt", vocab_text(kTinyMerges));
  expect_error([&] { (void)Tokenizer::from_file(dir / "plain.txt", twelve); }, {"plain.txt", "not a gzip file"});

  write_gzip(dir / "good.gz", vocab_text(kTinyMerges));
  const std::string good = read_bytes(dir / "good.gz");
  write_bytes(dir / "truncated.gz", good.substr(0, good.size() / 2));
  expect_error([&] { (void)Tokenizer::from_file(dir / "truncated.gz", twelve); }, {"truncated.gz", "ends early"});

  std::string bad_crc = good;
  bad_crc[bad_crc.size() - 6] = static_cast<char>(bad_crc[bad_crc.size() - 6] ^ 0x55);  // CRC32 trailer
  write_bytes(dir / "crc.gz", bad_crc);
  expect_error([&] { (void)Tokenizer::from_file(dir / "crc.gz", twelve); }, {"crc.gz", "corrupt gzip data", "incorrect data check"});

  write_bytes(dir / "trailing.gz", good + "junk");
  expect_error([&] { (void)Tokenizer::from_file(dir / "trailing.gz", twelve); }, {"trailing.gz", "4 unexpected bytes"});
  write_bytes(dir / "padded.gz", good + std::string(8, '\0'));
  EXPECT_EQ(Tokenizer::from_file(dir / "padded.gz", twelve).num_merges(), 12);

  expect_error([&] { (void)Tokenizer::from_file(dir / "good.gz"); },
               {"good.gz", "at least 48894 merge lines", "found 12 merge lines"});

  write_gzip(dir / "three.gz", vocab_text({{"h", "e"}}) + "a b c\n");
  expect_error([&] { (void)Tokenizer::from_file(dir / "three.gz", TokenizerOptions{2, 0}); },
               {"three.gz", "line 3", "two symbols", "found 3", "\"a b c\""});

  write_gzip(dir / "latin1.gz", vocab_text({{"h", "e"}}) + "caf\xE9 x\n");
  expect_error([&] { (void)Tokenizer::from_file(dir / "latin1.gz", TokenizerOptions{2, 0}); },
               {"latin1.gz", "not UTF-8", "offset"});
}

// ---------------------------------------------------------------- the real vocabulary

const std::filesystem::path kVocab = "vocab/bpe_simple_vocab_16e6.txt.gz";

const Tokenizer& clip_tokenizer() {
  static const Tokenizer tok = Tokenizer::from_file(testing::shared_path(kVocab.string()));
  return tok;
}

TEST(ClipVocabulary, HasClipsSizesAndSpecialTokens) {
  CLIPES_REQUIRE_FILE(testing::shared_path(kVocab.string()));
  const Tokenizer& tok = clip_tokenizer();
  EXPECT_EQ(tok.vocab_size(), 49408);
  EXPECT_EQ(tok.num_merges(), 48894);
  EXPECT_EQ(tok.sot(), 49406);
  EXPECT_EQ(tok.eot(), 49407);
  EXPECT_EQ(tok.token_string(512), "in");  // the first merge, "i n"
  EXPECT_EQ(tok.token_string(49405), "jekyll</w>");  // the last merge used (line 48894), "jeky ll</w>"
  EXPECT_EQ(tok.token_id("cat</w>"), 2368);
}

TEST(ClipVocabulary, AllReferenceCasesMatch) {
  const auto cases_file = testing::shared_path("reference/tokenizer_cases.json");
  CLIPES_REQUIRE_FILE(testing::shared_path(kVocab.string()));
  CLIPES_REQUIRE_FILE(cases_file);
  const Tokenizer& tok = clip_tokenizer();
  const nlohmann::json cases = nlohmann::json::parse(read_bytes(cases_file));
  ASSERT_EQ(cases.size(), 184u);
  std::map<std::string, int> per_group;
  for (const auto& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    const bool truncate = c.value("truncate", false);
    const std::vector<std::int64_t> expected = c.at("tokens").get<std::vector<std::int64_t>>();
    ASSERT_EQ(expected.size(), 77u);
    EXPECT_EQ(tok.tokenize(text, 77, truncate), expected) << c.at("group").get<std::string>() << ": " << text
                                                          << "\ncleaned: " << tok.clean(text);
    ++per_group[c.at("group").get<std::string>()];
    if (!truncate) {
      // encode() is the same without the start token, the last end token and the padding.
      const auto last_eot = std::find(expected.rbegin(), expected.rend(), tok.eot()).base() - 1;
      const std::vector<std::int64_t> ids(expected.begin() + 1, last_eot);
      EXPECT_EQ(tok.encode(text), ids) << text;
      EXPECT_EQ(tok.token_count(text), ids.size() + 2) << text;
    }
  }
  EXPECT_EQ(per_group["tricky"], 37);
  EXPECT_EQ(per_group["length"], 2);
}

TEST(ClipVocabulary, TooLongTextWithoutTruncationIsAnError) {
  CLIPES_REQUIRE_FILE(testing::shared_path(kVocab.string()));
  const Tokenizer& tok = clip_tokenizer();
  std::string text;
  for (int i = 0; i < 76; ++i) text += "cat ";
  expect_error([&] { (void)tok.tokenize(text); }, {"78 tokens", "context length 77"});
  std::vector<std::int64_t> truncated = tok.tokenize(text, 77, true);
  EXPECT_EQ(truncated.front(), 49406);
  EXPECT_EQ(truncated.back(), 49407);
  EXPECT_EQ(std::count(truncated.begin(), truncated.end(), 2368), 75);
}

TEST(ClipVocabulary, DecodeRoundTripsPrompts) {
  CLIPES_REQUIRE_FILE(testing::shared_path(kVocab.string()));
  const Tokenizer& tok = clip_tokenizer();
  EXPECT_EQ(tok.decode(tok.encode("a clean origami person with clothes,people,human.")),
            "a clean origami person with clothes , people , human . ");
  EXPECT_EQ(tok.decode(tok.encode("日本語のテキスト")), "日本語のテキスト ");
}

}  // namespace
}  // namespace clipes::clip

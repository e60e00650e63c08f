#pragma once
/// CLIP's byte-level BPE tokenizer: OpenAI CLIP's simple_tokenizer.SimpleTokenizer together with
/// clip.tokenize, token for token. Spec §1.
///
///   text -> clean_text (ftfy fixes, html.unescape twice, whitespace collapse, lower case; see
///   clipes/text/text_clean.h) -> split with CLIP's pattern (PCRE2, Unicode properties) -> each
///   piece's UTF-8 bytes mapped through CLIP's byte-to-unicode table -> BPE merges by rank ->
///   token ids.
///
/// Token ids: 0..255 the single bytes (in CLIP's byte-table order), 256..511 the same with the
/// end-of-word mark "</w>", 512.. the merges in file order, then <|startoftext|> and
/// <|endoftext|> (49406 and 49407 with CLIP's 48894 merges; vocab_size() = 49408).
///
/// Thread safety: all const member functions may be called concurrently from several threads on
/// one Tokenizer (the BPE cache is guarded by a shared mutex).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clipes::clip {

/// How a vocabulary is read.
struct TokenizerOptions {
  /// Merges used: CLIP reads lines 1..49152-256-2 of the file (after the header line).
  int num_merges = 49152 - 256 - 2;
  /// At most this many distinct words keep their BPE result in the cache (0: no cache).
  std::size_t cache_capacity = 1u << 16;
};

class Tokenizer {
 public:
  static constexpr int kDefaultContextLength = 77;

  /// Reads CLIP's bpe_simple_vocab_16e6.txt.gz (gzip; UTF-8 lines; line 0 a header; lines
  /// 1..num_merges "a b" merges). Throws clipes::Error naming the file and the problem (missing,
  /// not gzip, truncated or corrupt, not UTF-8, fewer merge lines than needed, a line that is not
  /// two symbols).
  static Tokenizer from_file(const std::filesystem::path& vocab_gz, const TokenizerOptions& options = {});

  /// The same from merges given directly (pairs of symbols in CLIP's byte-unicode alphabet,
  /// UTF-8, rank = index), e.g. for tiny hand-made vocabularies. `source` names them in errors.
  static Tokenizer from_merges(const std::vector<std::pair<std::string, std::string>>& merges,
                               const TokenizerOptions& options = {}, std::string source = "merges");

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  /// CLIP's SimpleTokenizer.encode: the BPE ids of clean_text(text), without start/end tokens.
  /// `text` is UTF-8 (clipes::Error otherwise).
  std::vector<std::int64_t> encode(std::string_view text) const;

  /// The split and BPE only, for text that is already clean (clean_text's output).
  std::vector<std::int64_t> encode_clean(std::string_view cleaned) const;

  /// clip.tokenize for one text: [context_length] ids = sot, encode(text), eot, zero padding.
  /// When that is longer than context_length: truncate=false throws clipes::Error (saying how many
  /// tokens against the limit), truncate=true keeps the first context_length ids and puts eot
  /// last (Python does the same). context_length must be >= 1.
  std::vector<std::int64_t> tokenize(std::string_view text, int context_length = kDefaultContextLength,
                                     bool truncate = false) const;

  /// tokenize for several texts: [texts.size(), context_length] ids, row-major.
  std::vector<std::int64_t> tokenize(const std::vector<std::string>& texts,
                                     int context_length = kDefaultContextLength, bool truncate = false) const;

  /// The number of ids encode(text) gives plus the start and end tokens (what tokenize needs).
  std::size_t token_count(std::string_view text) const;

  /// The cleaned, lower-cased text that encode() splits (= clean_text(text)).
  std::string clean(std::string_view text) const;

  /// CLIP's SimpleTokenizer.decode: the ids' byte strings joined, decoded as UTF-8 (invalid
  /// bytes -> U+FFFD), "</w>" -> " ". Padding zeros are ids too ('!'): strip them first.
  /// Throws clipes::Error for an id outside [0, vocab_size()).
  std::string decode(const std::vector<std::int64_t>& ids) const;

  /// The vocabulary string of `id` (in CLIP's byte-unicode alphabet, UTF-8), e.g. "cat</w>".
  const std::string& token_string(std::int64_t id) const;
  /// The id of a vocabulary string, or -1 when there is none.
  std::int64_t token_id(std::string_view token) const;

  std::int64_t sot() const;
  std::int64_t eot() const;
  std::int64_t vocab_size() const;
  int num_merges() const;
  /// Where the vocabulary came from (the file path, or from_merges' `source`).
  const std::string& source() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// CLIP's bytes_to_unicode(): the printable character each byte 0..255 stands for in the
/// vocabulary (bytes 33..126, 161..172, 174..255 themselves, the other 68 bytes U+0100..U+0143
/// in byte order).
std::vector<char32_t> clip_byte_to_unicode();

}  // namespace clipes::clip

// CLIP's BPE tokenizer (simple_tokenizer.py + clip.tokenize). Symbols are handled as vocabulary
// ids: every symbol BPE can form is a vocabulary string, and a merge (a, b) -> a+b becomes
// (id(a), id(b)) -> (rank, id(a+b)), so the merge loop compares integers instead of strings.

#include "clipes/clip/tokenizer.h"

#include <algorithm>
#include <array>
#include <climits>
#include <fstream>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <fmt/format.h>
#include <pcre2.h>
#include <zlib.h>

#include "clipes/core/error.h"
#include "clipes/text/text_clean.h"
#include "clipes/text/utf8.h"

namespace clipes::clip {
namespace {

constexpr std::string_view kStartOfText = "<|startoftext|>";
constexpr std::string_view kEndOfText = "<|endoftext|>";
constexpr std::string_view kEndOfWord = "</w>";

// CLIP's split pattern, compiled case-insensitively with Unicode properties. `\s` is spelled out
// as the `regex` module's \s (White_Space) because PCRE2's \s also matches U+180E.
constexpr std::string_view kSplitPattern =
    R"(<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}])"
    R"(|[^\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\p{L}\p{N}]+)";

struct Pcre2CodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct Pcre2MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};

std::string pcre2_message(int code) {
  std::array<PCRE2_UCHAR, 256> buffer{};
  pcre2_get_error_message(code, buffer.data(), buffer.size());
  return std::string(reinterpret_cast<const char*>(buffer.data()));
}

std::uint64_t pair_key(std::int32_t first, std::int32_t second) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(first)) << 32) |
         static_cast<std::uint32_t>(second);
}

struct MergeRule {
  std::int32_t rank;
  std::int32_t merged;
};

/// The whole (possibly multi-member) gzip file, inflated; errors name `file`.
std::string read_gzip(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) {
    throw Error(fmt::format("CLIP vocabulary {}: no such file", file.string()));
  }
  if (std::filesystem::is_directory(file, ec)) {
    throw Error(fmt::format("CLIP vocabulary {}: is a folder, expected a .txt.gz file", file.string()));
  }
  std::ifstream in(file, std::ios::binary);
  std::string compressed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    throw Error(fmt::format("CLIP vocabulary {}: cannot be read", file.string()));
  }
  if (compressed.size() < 2 || static_cast<unsigned char>(compressed[0]) != 0x1F ||
      static_cast<unsigned char>(compressed[1]) != 0x8B) {
    throw Error(fmt::format("CLIP vocabulary {}: not a gzip file (expected the bytes 1f 8b at the start; "
                            "the file holds {} bytes)",
                            file.string(), compressed.size()));
  }
  std::string out;
  std::size_t pos = 0;
  std::array<char, 1 << 16> chunk{};
  while (pos < compressed.size()) {
    z_stream stream{};
    if (inflateInit2(&stream, 15 + 16) != Z_OK) {
      throw Error(fmt::format("CLIP vocabulary {}: zlib cannot start inflating", file.string()));
    }
    stream.next_in = reinterpret_cast<Bytef*>(compressed.data() + pos);
    stream.avail_in = static_cast<uInt>(compressed.size() - pos);
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
      stream.next_out = reinterpret_cast<Bytef*>(chunk.data());
      stream.avail_out = static_cast<uInt>(chunk.size());
      rc = inflate(&stream, Z_NO_FLUSH);
      out.append(chunk.data(), chunk.size() - stream.avail_out);
      if (rc == Z_STREAM_END) break;
      if (rc == Z_BUF_ERROR || (rc == Z_OK && stream.avail_in == 0 && stream.avail_out != 0)) {
        inflateEnd(&stream);
        throw Error(fmt::format("CLIP vocabulary {}: the gzip data ends early after {} bytes of text "
                                "(truncated file?)",
                                file.string(), out.size()));
      }
      if (rc != Z_OK) {
        const std::string message = stream.msg != nullptr ? stream.msg : "error " + std::to_string(rc);
        inflateEnd(&stream);
        throw Error(fmt::format("CLIP vocabulary {}: corrupt gzip data ({})", file.string(), message));
      }
    }
    pos = compressed.size() - stream.avail_in;
    inflateEnd(&stream);
    // Like Python's gzip: further members are read, trailing zero padding is ignored.
    const bool more = pos + 1 < compressed.size() && static_cast<unsigned char>(compressed[pos]) == 0x1F &&
                      static_cast<unsigned char>(compressed[pos + 1]) == 0x8B;
    if (!more) {
      if (std::any_of(compressed.begin() + static_cast<std::ptrdiff_t>(pos), compressed.end(),
                      [](char c) { return c != 0; })) {
        throw Error(fmt::format("CLIP vocabulary {}: {} unexpected bytes after the gzip data",
                                file.string(), compressed.size() - pos));
      }
      break;
    }
  }
  return out;
}

/// Python's str.split() (no argument) of one line.
std::vector<std::string> split_python_whitespace(std::u32string_view line) {
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && text::is_python_space(line[i])) ++i;
    const std::size_t start = i;
    while (i < line.size() && !text::is_python_space(line[i])) ++i;
    if (i > start) parts.push_back(text::u32_to_utf8(line.substr(start, i - start)));
  }
  return parts;
}

std::string shorten(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut)) + "...";
}

}  // namespace

std::vector<char32_t> clip_byte_to_unicode() {
  std::vector<char32_t> table(256, 0);
  auto printable = [](int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255); };
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    table[static_cast<std::size_t>(b)] = printable(b) ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
  }
  return table;
}

struct Tokenizer::Impl {
  std::string source;
  int num_merges = 0;
  std::vector<std::string> vocab;                         // id -> string
  std::unordered_map<std::string, std::int64_t> encoder;  // string -> id (the last one, as Python)
  std::array<std::int32_t, 256> byte_id{};                // id of byte b's character
  std::array<std::int32_t, 256> byte_end_id{};            // id of byte b's character + "</w>"
  std::unordered_map<char32_t, unsigned char> byte_decoder;
  std::unordered_map<std::uint64_t, MergeRule> merges;
  std::int64_t sot = 0;
  std::int64_t eot = 0;
  std::unique_ptr<pcre2_code, Pcre2CodeDeleter> pattern;
  std::size_t cache_capacity = 0;
  mutable std::shared_mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<std::int32_t>> cache;

  void bpe(std::string_view piece, std::vector<std::int64_t>* out) const;
  void split_and_encode(std::string_view cleaned, std::vector<std::int64_t>* out) const;
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_file(const std::filesystem::path& vocab_gz, const TokenizerOptions& options) {
  const std::string text = read_gzip(vocab_gz);
  std::u32string decoded;
  try {
    decoded = text::utf8_to_u32(text);
  } catch (const Error& e) {
    throw Error(fmt::format("CLIP vocabulary {}: the inflated text is not UTF-8 ({})", vocab_gz.string(), e.what()));
  }
  if (options.num_merges < 0) {
    throw Error(fmt::format("CLIP vocabulary {}: num_merges must be >= 0, got {}", vocab_gz.string(), options.num_merges));
  }
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(static_cast<std::size_t>(options.num_merges));
  std::size_t pos = 0;
  long line_number = 0;
  while (static_cast<int>(merges.size()) < options.num_merges) {
    if (pos >= decoded.size()) break;  // no line after the final '\n'
    const std::size_t newline = decoded.find(U'\n', pos);
    const std::size_t end = newline == std::u32string::npos ? decoded.size() : newline;
    const std::u32string_view line = std::u32string_view(decoded).substr(pos, end - pos);
    pos = end + 1;
    if (line_number++ == 0) continue;  // the header ("#version: 0.2")
    std::vector<std::string> parts = split_python_whitespace(line);
    if (parts.size() != 2) {
      throw Error(fmt::format("CLIP vocabulary {}: line {} should hold two symbols separated by a space, "
                              "found {} (\"{}\")",
                              vocab_gz.string(), line_number, parts.size(),
                              shorten(text::u32_to_utf8(line), 60)));
    }
    merges.emplace_back(std::move(parts[0]), std::move(parts[1]));
  }
  if (static_cast<int>(merges.size()) < options.num_merges) {
    throw Error(fmt::format("CLIP vocabulary {}: expected a header line and at least {} merge lines, "
                            "found {} merge lines",
                            vocab_gz.string(), options.num_merges, merges.size()));
  }
  return from_merges(merges, options, vocab_gz.string());
}

Tokenizer Tokenizer::from_merges(const std::vector<std::pair<std::string, std::string>>& merges,
                                 const TokenizerOptions& options, std::string source) {
  auto impl = std::make_unique<Impl>();
  impl->source = std::move(source);
  impl->num_merges = static_cast<int>(merges.size());
  impl->cache_capacity = options.cache_capacity;

  // Vocabulary in CLIP's order: the 256 byte characters in the order of bytes_to_unicode()'s
  // dict (printable bytes first), the same with "</w>", the merges, the two special tokens.
  const std::vector<char32_t> byte_char = clip_byte_to_unicode();
  std::vector<int> byte_order;
  for (int b = 0; b < 256; ++b) {
    if (byte_char[static_cast<std::size_t>(b)] == static_cast<char32_t>(b)) byte_order.push_back(b);
  }
  for (int b = 0; b < 256; ++b) {
    if (byte_char[static_cast<std::size_t>(b)] != static_cast<char32_t>(b)) byte_order.push_back(b);
  }
  auto& vocab = impl->vocab;
  vocab.reserve(512 + merges.size() + 2);
  for (const int b : byte_order) {
    std::string s;
    text::append_utf8(s, byte_char[static_cast<std::size_t>(b)]);
    vocab.push_back(s);
  }
  for (std::size_t i = 0; i < 256; ++i) vocab.push_back(vocab[i] + std::string(kEndOfWord));
  for (const auto& [first, second] : merges) vocab.push_back(first + second);
  vocab.emplace_back(kStartOfText);
  vocab.emplace_back(kEndOfText);
  impl->encoder.reserve(vocab.size());
  for (std::size_t id = 0; id < vocab.size(); ++id) {
    impl->encoder.insert_or_assign(vocab[id], static_cast<std::int64_t>(id));
  }
  for (int b = 0; b < 256; ++b) {
    std::string s;
    text::append_utf8(s, byte_char[static_cast<std::size_t>(b)]);
    impl->byte_id[static_cast<std::size_t>(b)] = static_cast<std::int32_t>(impl->encoder.at(s));
    impl->byte_end_id[static_cast<std::size_t>(b)] =
        static_cast<std::int32_t>(impl->encoder.at(s + std::string(kEndOfWord)));
    impl->byte_decoder[byte_char[static_cast<std::size_t>(b)]] = static_cast<unsigned char>(b);
  }
  impl->sot = impl->encoder.at(std::string(kStartOfText));
  impl->eot = impl->encoder.at(std::string(kEndOfText));

  // A merge whose parts are not vocabulary strings can never apply (every BPE symbol is one).
  impl->merges.reserve(merges.size());
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [first, second] = merges[rank];
    const auto a = impl->encoder.find(first);
    const auto b = impl->encoder.find(second);
    if (a == impl->encoder.end() || b == impl->encoder.end()) continue;
    const std::int64_t merged = impl->encoder.at(first + second);
    impl->merges.insert_or_assign(pair_key(static_cast<std::int32_t>(a->second), static_cast<std::int32_t>(b->second)),
                                  MergeRule{static_cast<std::int32_t>(rank), static_cast<std::int32_t>(merged)});
  }

  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  impl->pattern.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kSplitPattern.data()), kSplitPattern.size(),
                                    PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS, &error_code, &error_offset, nullptr));
  if (!impl->pattern) {
    throw Error(fmt::format("PCRE2 cannot compile CLIP's split pattern at offset {}: {}", error_offset,
                            pcre2_message(error_code)));
  }
  pcre2_jit_compile(impl->pattern.get(), PCRE2_JIT_COMPLETE);  // optional: falls back to the interpreter
  return Tokenizer(std::move(impl));
}

void Tokenizer::Impl::bpe(std::string_view piece, std::vector<std::int64_t>* out) const {
  if (piece == kStartOfText || piece == kEndOfText) {  // CLIP's cache holds them as themselves
    out->push_back(piece == kStartOfText ? sot : eot);
    return;
  }
  const std::string key(piece);
  if (cache_capacity > 0) {
    std::shared_lock lock(cache_mutex);
    const auto it = cache.find(key);
    if (it != cache.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<std::int32_t> word(piece.size());
  for (std::size_t i = 0; i < piece.size(); ++i) {
    const auto byte = static_cast<unsigned char>(piece[i]);
    word[i] = i + 1 == piece.size() ? byte_end_id[byte] : byte_id[byte];
  }
  std::vector<std::int32_t> next;
  while (word.size() > 1) {
    std::int32_t best_rank = INT32_MAX;
    std::int32_t first = -1;
    std::int32_t second = -1;
    std::int32_t merged = -1;
    for (std::size_t i = 0; i + 1 < word.size(); ++i) {
      const auto it = merges.find(pair_key(word[i], word[i + 1]));
      if (it != merges.end() && it->second.rank < best_rank) {
        best_rank = it->second.rank;
        first = word[i];
        second = word[i + 1];
        merged = it->second.merged;
      }
    }
    if (merged < 0) break;
    next.clear();
    for (std::size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        next.push_back(merged);
        i += 2;
      } else {
        next.push_back(word[i]);
        i += 1;
      }
    }
    word.swap(next);
  }
  out->insert(out->end(), word.begin(), word.end());
  if (cache_capacity > 0) {
    std::unique_lock lock(cache_mutex);
    if (cache.size() < cache_capacity) cache.emplace(key, std::move(word));
  }
}

void Tokenizer::Impl::split_and_encode(std::string_view cleaned, std::vector<std::int64_t>* out) const {
  std::unique_ptr<pcre2_match_data, Pcre2MatchDataDeleter> match(
      pcre2_match_data_create_from_pattern(pattern.get(), nullptr));
  if (!match) throw std::bad_alloc();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(cleaned.data());
  PCRE2_SIZE offset = 0;
  while (offset < cleaned.size()) {
    const int rc = pcre2_match(pattern.get(), subject, cleaned.size(), offset, PCRE2_NO_UTF_CHECK, match.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) throw Error(fmt::format("PCRE2 failed to split \"{}\": {}", shorten(cleaned, 80), pcre2_message(rc)));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.get());
    const PCRE2_SIZE start = ovector[0];
    const PCRE2_SIZE end = ovector[1];
    if (end <= start) {  // cannot happen (no alternative matches empty); never loop forever
      offset = start + 1;
      while (offset < cleaned.size() && (static_cast<unsigned char>(cleaned[offset]) & 0xC0) == 0x80) ++offset;
      continue;
    }
    bpe(cleaned.substr(start, end - start), out);
    offset = end;
  }
}

std::vector<std::int64_t> Tokenizer::encode(std::string_view text) const {
  const std::string cleaned = text::clean_text(text);
  std::vector<std::int64_t> ids;
  impl_->split_and_encode(cleaned, &ids);
  return ids;
}

std::vector<std::int64_t> Tokenizer::encode_clean(std::string_view cleaned) const {
  text::utf8_to_u32(cleaned);  // validates (the split runs without PCRE2's own UTF check)
  std::vector<std::int64_t> ids;
  impl_->split_and_encode(cleaned, &ids);
  return ids;
}

std::vector<std::int64_t> Tokenizer::tokenize(std::string_view text, int context_length, bool truncate) const {
  if (context_length < 1) {
    throw Error(fmt::format("tokenize: the context length must be >= 1, got {}", context_length));
  }
  std::vector<std::int64_t> tokens{impl_->sot};
  impl_->split_and_encode(text::clean_text(text), &tokens);
  tokens.push_back(impl_->eot);
  const auto limit = static_cast<std::size_t>(context_length);
  if (tokens.size() > limit) {
    if (!truncate) {
      throw Error(fmt::format("text \"{}\" is {} tokens long with the start and end tokens, more than the "
                              "context length {} (shorten it, or ask for truncation)",
                              shorten(text, 80), tokens.size(), context_length));
    }
    tokens.resize(limit);
    tokens.back() = impl_->eot;
  }
  tokens.resize(limit, 0);
  return tokens;
}

std::vector<std::int64_t> Tokenizer::tokenize(const std::vector<std::string>& texts, int context_length,
                                              bool truncate) const {
  std::vector<std::int64_t> all;
  all.reserve(texts.size() * static_cast<std::size_t>(std::max(context_length, 0)));
  for (const auto& text : texts) {
    const std::vector<std::int64_t> row = tokenize(text, context_length, truncate);
    all.insert(all.end(), row.begin(), row.end());
  }
  return all;
}

std::size_t Tokenizer::token_count(std::string_view text) const { return encode(text).size() + 2; }

std::string Tokenizer::clean(std::string_view text) const { return text::clean_text(text); }

std::string Tokenizer::decode(const std::vector<std::int64_t>& ids) const {
  std::string bytes;
  for (const std::int64_t id : ids) {
    for (const char32_t c : text::utf8_to_u32(token_string(id))) {
      const auto it = impl_->byte_decoder.find(c);
      if (it == impl_->byte_decoder.end()) {
        throw Error(fmt::format("decode: token {} (\"{}\") holds U+{:04X}, which is not in CLIP's byte alphabet "
                                "(vocabulary {})",
                                id, token_string(id), static_cast<std::uint32_t>(c), impl_->source));
      }
      bytes.push_back(static_cast<char>(it->second));
    }
  }
  const std::u32string text = text::utf8_decode_replace(bytes);
  std::string out;
  out.reserve(text.size());
  const std::u32string_view view(text);
  for (std::size_t i = 0; i < view.size();) {
    if (view.substr(i, 4) == U"</w>") {
      out.push_back(' ');
      i += 4;
    } else {
      text::append_utf8(out, view[i++]);
    }
  }
  return out;
}

const std::string& Tokenizer::token_string(std::int64_t id) const {
  if (id < 0 || id >= vocab_size()) {
    throw Error(fmt::format("token id {} is outside the vocabulary [0, {}) of {}", id, vocab_size(), impl_->source));
  }
  return impl_->vocab[static_cast<std::size_t>(id)];
}

std::int64_t Tokenizer::token_id(std::string_view token) const {
  const auto it = impl_->encoder.find(std::string(token));
  return it == impl_->encoder.end() ? -1 : it->second;
}

std::int64_t Tokenizer::sot() const { return impl_->sot; }
std::int64_t Tokenizer::eot() const { return impl_->eot; }
std::int64_t Tokenizer::vocab_size() const { return static_cast<std::int64_t>(impl_->vocab.size()); }
int Tokenizer::num_merges() const { return impl_->num_merges; }
const std::string& Tokenizer::source() const { return impl_->source; }

}  // namespace clipes::clip

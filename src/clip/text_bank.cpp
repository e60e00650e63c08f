#include "clipes/clip/text_bank.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <fmt/format.h>

#include "clipes/clip/model.h"
#include "clipes/clip/tokenizer.h"
#include "clipes/core/error.h"

namespace clipes::clip {

at::Tensor TextBank::text_matrix(const std::vector<int>& labels) const {
  std::vector<std::int64_t> rows;
  rows.reserve(labels.size());
  for (int label : labels) {
    if (label < 0 || label >= foreground.size(0)) {
      throw Error(fmt::format("class index {} is outside the text bank's {} classes", label,
                              foreground.size(0)));
    }
    rows.push_back(label);
  }
  const auto index = at::tensor(rows, at::TensorOptions().dtype(at::kLong)).to(foreground.device());
  return at::cat({foreground.index_select(0, index), background}, 0);
}

at::Tensor encode_sentences(const ClipModel& model, const Tokenizer& tokenizer,
                            const std::vector<std::string>& sentences, TextEncoding encoding) {
  const auto context = model.architecture().context_length;
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> rows;
  rows.reserve(sentences.size());
  for (const auto& sentence : sentences) {
    std::vector<std::int64_t> ids;
    try {
      ids = tokenizer.tokenize(sentence, static_cast<int>(context));
    } catch (const Error& e) {
      throw Error(fmt::format("prompt \"{}\": {}", sentence, e.what()));
    }
    rows.push_back(at::from_blob(ids.data(), {1, context}, at::kLong).clone());
  }
  if (rows.empty()) return at::empty({0, model.architecture().embed_dim});
  if (encoding == TextEncoding::kFast) {
    return l2_normalize(l2_normalize(model.encode_text(at::cat(rows, 0), encoding).to(at::kFloat)));
  }
  // One sentence per call, as the reference's zeroshot_classifier encodes each class's
  // sentences: the same matrix shapes give the same float rounding.
  for (auto& row : rows) row = l2_normalize(l2_normalize(model.encode_text(row).to(at::kFloat)));
  return at::cat(rows, 0);
}

TextBank build_text_bank(const ClipModel& model, const Tokenizer& tokenizer,
                         const std::vector<std::string>& foreground_sentences,
                         const std::vector<std::string>& background_sentences,
                         TextEncoding encoding) {
  return {encode_sentences(model, tokenizer, foreground_sentences, encoding),
          encode_sentences(model, tokenizer, background_sentences, encoding)};
}

}  // namespace clipes::clip

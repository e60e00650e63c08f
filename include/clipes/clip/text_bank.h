#pragma once
/// The text side of CLIP-ES (spec §1): every class sentence and background sentence encoded once
/// and L2-normalised, then per image the matrix [present classes; background words] (spec §3).

#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "clipes/clip/model.h"

namespace clipes::clip {

class Tokenizer;

struct TextBank {
  at::Tensor foreground;  ///< [C, E] float32 on the model's device, row c = class c's sentence
  at::Tensor background;  ///< [M, E] float32, one row per background sentence

  /// [K + M, E]: the rows of `labels` (0-based class indices, in the given order) followed by
  /// every background row (spec §3). Throws clipes::Error for an index outside 0..C-1.
  at::Tensor text_matrix(const std::vector<int>& labels) const;
};

/// Tokenizes `sentences` (an error names the sentence that is too long) and encodes them with
/// the model's text tower: with kReference one sentence at a time over the full context, as the
/// reference's zeroshot_classifier does (its numbers bit for bit); with kFast all in one batch cut
/// after the last end token (about 10x faster, equal up to float rounding). Returns [T, E]
/// float32, L2-normalised twice as the reference does (once per template embedding, once after
/// the mean over its single template).
at::Tensor encode_sentences(const ClipModel& model, const Tokenizer& tokenizer,
                            const std::vector<std::string>& sentences,
                            TextEncoding encoding = TextEncoding::kReference);

/// encode_sentences for the class sentences and the background sentences.
TextBank build_text_bank(const ClipModel& model, const Tokenizer& tokenizer,
                         const std::vector<std::string>& foreground_sentences,
                         const std::vector<std::string>& background_sentences,
                         TextEncoding encoding = TextEncoding::kReference);

}  // namespace clipes::clip

#pragma once
/// Prompt ranking by sharpness (spec §5, paper §3.2.1 Eq. 5): choose the prompt template for a
/// dataset from its image-level labels only. Every image's feature is computed once (the vision
/// tower up to the unnormalised image feature of spec §3, no GradCAM, no CAA, no CRF); then, per
/// candidate template, the text bank is rebuilt with that template and each image's softmax over
/// [its present classes; the background words] gives its present-class scores s_i1..s_ik.
///
///   sharpness = Σ_i var(s_i·) / Σ_i mean(s_i·)     (population variance; lower is better)
///
/// Templates files (configs/prompts-imagenet.txt): one template per line, "{}" marks the class
/// text (Python's str.format with one argument, as the config's "template"); blank lines and lines
/// starting with '#' are skipped; leading and trailing whitespace is dropped.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "clipes/core/reporter.h"
#include "clipes/data/dataset.h"
#include "clipes/pipeline/generate.h"
#include "clipes/pipeline/generate_config.h"

namespace clipes::clip {
class ClipModel;
class Tokenizer;
}  // namespace clipes::clip

namespace clipes::pipeline {

/// Eq. 5 over one template's scores.
struct Sharpness {
  double sharpness = 0;          ///< variance_sum / mean_sum: lower is better
  double variance_sum = 0;       ///< Σ_i var(s_i·), population variance (0 for one label)
  double mean_sum = 0;           ///< Σ_i mean(s_i·)
  double mean_target_score = 0;  ///< mean_sum / images: the average image's mean present score
  std::int64_t images = 0;       ///< n
};

/// scores[i]: image i's present-class softmax scores (k_i >= 1 values in [0, 1], any order).
/// Computed in double. Throws clipes::Error for no image, an image with no score, a score that
/// is not finite or is negative, or when every score is 0 (the ratio is undefined).
Sharpness sharpness(const std::vector<std::vector<double>>& scores);

/// One line of a templates file.
struct PromptTemplate {
  std::string text;  ///< e.g. "a clean origami {}."
  int line = 0;      ///< 1-based line in its file
};

/// Reads a templates file (format above). Throws clipes::Error "<file>:<line>: ..." for a
/// template without exactly one "{}" or with any other brace, and for a template repeated
/// (naming its first line); "<file>: ..." when the file is unreadable or holds no template.
std::vector<PromptTemplate> read_prompt_templates(const std::filesystem::path& file);

/// An image whose feature was computed.
struct RankingImage {
  std::string id;
  std::vector<int> labels;  ///< 0-based class indices, label order
};

/// The image side of the ranking, computed once.
struct ImageFeatures {
  std::vector<RankingImage> images;    ///< the images used, in sample order
  /// [n, E] in the model's compute dtype and device: the unnormalised image feature of spec §3
  /// (ln_post, mean of the patch tokens, @ proj), the one GradCAM's softmax uses. Undefined
  /// when n is 0.
  at::Tensor features;
  std::vector<ImageFailure> failures;  ///< images reported and skipped (id, reason)
  bool interrupted = false;            ///< the stop flag was raised before the last image
  double decode_seconds = 0;           ///< reading and decoding the files
  double preprocess_seconds = 0;       ///< Pillow bicubic resize and normalisation
  double tower_seconds = 0;            ///< the vision tower (all L blocks, no gradients)
};

/// For each sample: data::load_image, the input.max_side / max_tokens rule (plan_input_size),
/// clip::preprocess_for_clip, then embed_image → run_trunk → last block without gradients.
/// A sample with a problem, an unreadable image or one refused by the size rule is reported
/// (reporter.warn) and listed in failures; the others are used. Progress: stage "image
/// features". `stop` is polled between images.
ImageFeatures compute_image_features(const clip::ClipModel& model,
                                     const std::vector<data::Sample>& samples,
                                     const InputConfig& input, Reporter& reporter,
                                     const std::atomic<bool>* stop = nullptr);

/// The scores under `prompt_template` (replacing config.prompt_template): the text bank of the
/// classes present in `features` and of every background word, encoded by clip::build_text_bank
/// (exact_text: one sentence per call, the reference's bits; otherwise one batch, ~10x faster and
/// equal up to float rounding, ~1e-5 relative on the scores), then per image cam::class_probabilities(f_i, [present classes in
/// label order; background], exp(logit_scale)) and its first K entries. Returns [n][K_i].
/// Throws clipes::Error for a template without exactly one "{}" or a sentence too long.
std::vector<std::vector<double>> template_scores(const clip::ClipModel& model,
                                                 const clip::Tokenizer& tokenizer,
                                                 const GenerateConfig& config,
                                                 const std::string& prompt_template,
                                                 const ImageFeatures& features,
                                                 bool exact_text = true);

/// One template's result.
struct TemplateRanking {
  PromptTemplate prompt;
  Sharpness score;
  double text_seconds = 0;  ///< encoding its sentences and scoring the images
};

/// Sorts by sharpness, lowest first; equal values keep their file order.
void sort_by_sharpness(std::vector<TemplateRanking>& ranking);

/// Run-time options of a ranking.
struct RankingOptions {
  std::filesystem::path out_dir;   ///< prompt_ranking.json goes here (empty: current folder)
  std::string device = "cpu";      ///< "cpu", "cuda" or "cuda:N"
  bool keep_fp16 = false;          ///< CUDA only: the release's float16 weights
  data::Shard shard;               ///< this process's share of the images
  std::int64_t limit = -1;         ///< at most this many images of the shard (< 0: all)
  std::string config_source;       ///< the config file, for the record
  std::vector<std::string> overrides;  ///< the --set overrides, for the record
  std::string templates_source;    ///< the templates file, for the record
  /// Encode each template's sentences one by one as the reference does (its bits) rather than
  /// in one batch (10x faster text side; scores equal up to float rounding).
  bool exact_text = false;
};

struct RankingSummary {
  std::vector<TemplateRanking> ranking;  ///< sorted by sharpness (templates scored so far)
  std::vector<std::string> images_used;  ///< ids, sample order
  std::vector<ImageFailure> failures;    ///< images skipped with their reason
  std::int64_t dataset_images = 0;       ///< samples the dataset lists
  std::int64_t selected = 0;             ///< after --shard and --limit
  std::int64_t templates = 0;            ///< templates in the file
  bool interrupted = false;              ///< stopped before every template was scored
  double decode_seconds = 0, preprocess_seconds = 0, tower_seconds = 0;  ///< image side
  double text_seconds = 0;               ///< all templates: text encoding and scoring
  double wall_seconds = 0;               ///< the run, model loading excluded
  std::filesystem::path ranking_file;    ///< prompt_ranking.json
};

/// The model and tokenizer of a ranking, loaded once.
class PromptRanker {
 public:
  /// Loads config.model and config.vocab. Throws clipes::Error naming the file that is wrong.
  static PromptRanker load(const GenerateConfig& config, const std::string& device = "cpu",
                           bool keep_fp16 = false);
  PromptRanker(PromptRanker&&) noexcept;
  PromptRanker& operator=(PromptRanker&&) noexcept;
  ~PromptRanker();

  /// Checks every template's sentences against the model's context first (clipes::Error naming
  /// the templates file, line and sentence), computes the image features once, scores each
  /// template (progress stage "templates"), ranks them and writes prompt_ranking.json
  /// atomically into options.out_dir: every template's numbers, the images used and skipped, the
  /// model's sha256 and the resolved config. Bad images are reported and skipped; no usable image
  /// throws clipes::Error. Once `stop` is raised the templates scored so far are ranked and
  /// written with "interrupted": true.
  RankingSummary run(const std::vector<PromptTemplate>& templates, const RankingOptions& options,
                     Reporter& reporter, const std::atomic<bool>* stop = nullptr) const;

  const GenerateConfig& config() const;

 private:
  struct Impl;
  explicit PromptRanker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// The table the tool prints: rank, sharpness, mean target score, images, template; one row per
/// template in summary order, columns aligned.
std::string format_ranking_table(const RankingSummary& summary);

}  // namespace clipes::pipeline

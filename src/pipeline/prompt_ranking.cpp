#include "clipes/pipeline/prompt_ranking.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "clipes/cam/gradcam.h"
#include "clipes/clip/model.h"
#include "clipes/clip/preprocess.h"
#include "clipes/clip/text_bank.h"
#include "clipes/clip/tokenizer.h"
#include "clipes/core/error.h"
#include "clipes/data/batch_runner.h"
#include "clipes/data/image.h"
#include "clipes/io/files.h"
#include "clip_session.h"

namespace clipes::pipeline {

namespace {

using detail::Clock;
using data::failure_reason;

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n\f\v");
  if (first == std::string::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n\f\v");
  return text.substr(first, last - first + 1);
}

// Every sentence of `config` under `prompt_template` must fit the model's context.
void check_template_fits(const clip::Tokenizer& tokenizer, const GenerateConfig& config,
                         const PromptTemplate& prompt, std::int64_t context,
                         const std::string& source) {
  GenerateConfig with_template = config;
  with_template.prompt_template = prompt.text;
  const PromptTexts texts = build_prompt_texts(with_template);
  for (const auto* group : {&texts.foreground, &texts.background}) {
    for (const auto& sentence : *group) {
      const auto tokens = tokenizer.token_count(sentence);
      if (static_cast<std::int64_t>(tokens) > context) {
        throw Error(fmt::format("{}:{}: template \"{}\" makes the sentence \"{}\" {} tokens long, "
                                "more than the model's context of {} tokens",
                                source, prompt.line, prompt.text, sentence, tokens, context));
      }
    }
  }
}

// prompt_ranking.json: the ranking, the images it was computed on, from which model, how.
void write_ranking_record(const std::filesystem::path& file, const RankingOptions& options,
                          const RankingSummary& summary, const std::string& started,
                          const GenerateConfig& config, const detail::LoadedClip& clip) {
  RunRecord header = detail::clip_run_record("clipes-generate --rank-prompts", config, clip);
  header.started = started;
  header.finished = utc_now();
  header.config_file = options.config_source;
  header.overrides = options.overrides;
  header.device = options.device;
  header.threads = at::get_num_threads();
  header.shard_index = options.shard.index;
  header.shard_count = options.shard.count;
  header.limit = options.limit;
  const auto used = static_cast<std::int64_t>(summary.images_used.size());
  const auto skipped = static_cast<std::int64_t>(summary.failures.size());
  header.counts = {summary.dataset_images, summary.selected, 0, used, skipped};
  for (const auto& failure : summary.failures) header.failures.push_back({failure.id, failure.reason});
  header.interrupted = summary.interrupted;
  header.wall_seconds = summary.wall_seconds;
  nlohmann::json record = detail::clip_run_record_json(header, config, clip);
  record["metric"] = "sharpness = sum_i var(s_i) / sum_i mean(s_i) over the images, s_i the "
                     "softmax scores of image i's present classes over [present classes; "
                     "background words], population variance; lower is better (spec 5, Eq. 5). "
                     "mean_target_score = sum_i mean(s_i) / images";
  record["templates_file"] = options.templates_source;
  record["text_encoding"] = options.exact_text ? "reference (one sentence per call, exact)"
                                               : "fast (one batch per template)";
  record["ranking"] = nlohmann::json::array();
  for (std::size_t i = 0; i < summary.ranking.size(); ++i) {
    const auto& r = summary.ranking[i];
    record["ranking"].push_back({{"rank", i + 1},
                                 {"template", r.prompt.text},
                                 {"line", r.prompt.line},
                                 {"sharpness", r.score.sharpness},
                                 {"mean_target_score", r.score.mean_target_score},
                                 {"images", r.score.images},
                                 {"variance_sum", r.score.variance_sum},
                                 {"mean_sum", r.score.mean_sum},
                                 {"seconds", r.text_seconds}});
  }
  record["images"] = {{"used", summary.images_used}, {"skipped", record["failures"]}};
  auto& counts = record["counts"];
  counts["used"] = used;
  counts["skipped"] = skipped;
  counts["templates"] = summary.templates;
  counts["templates_scored"] = static_cast<std::int64_t>(summary.ranking.size());
  record["seconds"] = {{"decode", summary.decode_seconds},
                       {"preprocess", summary.preprocess_seconds},
                       {"vision_tower", summary.tower_seconds},
                       {"templates", summary.text_seconds}};
  io::write_file_atomic(file, record.dump(2) + "\n");
}

}  // namespace

Sharpness sharpness(const std::vector<std::vector<double>>& scores) {
  if (scores.empty()) {
    throw Error("sharpness: no image to score (expected at least one image with labels)");
  }
  Sharpness out;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    const auto& s = scores[i];
    if (s.empty()) {
      throw Error(fmt::format("sharpness: image {} has no present-class score (expected >= 1)", i));
    }
    double sum = 0;
    for (const double value : s) {
      if (!std::isfinite(value) || value < 0) {
        throw Error(fmt::format("sharpness: image {} has the score {}, expected a softmax "
                                "probability (finite, >= 0)",
                                i, value));
      }
      sum += value;
    }
    const double mean = sum / static_cast<double>(s.size());
    double squares = 0;
    for (const double value : s) squares += (value - mean) * (value - mean);
    out.variance_sum += squares / static_cast<double>(s.size());  // population variance
    out.mean_sum += mean;
  }
  if (out.mean_sum <= 0) {
    throw Error(fmt::format("sharpness: every present-class score of the {} images is 0, the "
                            "ratio is undefined",
                            scores.size()));
  }
  out.images = static_cast<std::int64_t>(scores.size());
  out.sharpness = out.variance_sum / out.mean_sum;
  out.mean_target_score = out.mean_sum / static_cast<double>(out.images);
  return out;
}

std::vector<PromptTemplate> read_prompt_templates(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw Error(fmt::format("{}: cannot read the templates file", file.string()));
  std::vector<PromptTemplate> templates;
  std::map<std::string, int> first_line;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string text = trim(line);
    if (text.empty() || text[0] == '#') continue;
    try {
      format_prompt(text, "x");
    } catch (const Error& e) {
      throw Error(fmt::format("{}:{}: {}", file.string(), number, e.what()));
    }
    const auto [at, inserted] = first_line.emplace(text, number);
    if (!inserted) {
      throw Error(fmt::format("{}:{}: template \"{}\" repeats line {}", file.string(), number,
                              text, at->second));
    }
    templates.push_back({text, number});
  }
  if (in.bad()) throw Error(fmt::format("{}: read error", file.string()));
  if (templates.empty()) {
    throw Error(fmt::format("{}: no template found (expected one template per line, such as "
                            "\"a clean origami {{}}.\"; blank lines and # comments are skipped)",
                            file.string()));
  }
  return templates;
}

namespace {

// compute_image_features over the items `runner` selects of `samples`.
ImageFeatures image_features(const clip::ClipModel& model, const std::vector<data::Sample>& samples,
                             const InputConfig& input, data::BatchRunner& runner) {
  ImageFeatures out;
  const auto patch = static_cast<int>(model.architecture().vision_patch_size);
  std::vector<at::Tensor> rows;
  runner.run([&](std::size_t index) {
    const data::Sample& sample = samples[index];
    auto start = Clock::now();
    const data::DecodedImage image = data::decode_image(sample.image, input.exif_orientation);
    out.decode_seconds += seconds_since(start);
    start = Clock::now();
    const at::Tensor pixels = detail::clip_input(image, input, patch);
    out.preprocess_seconds += seconds_since(start);
    start = Clock::now();
    at::NoGradGuard no_grad;
    // The path of compute_image_cams without the attention maps and the gradients: the same
    // operations give the same feature (spec §3).
    const auto trunk = model.run_trunk(model.embed_image(pixels), 1);
    const auto normed = model.last_block_norm(trunk.tokens);
    rows.push_back(model.last_block_forward(trunk.tokens, normed).image_features);
    out.tower_seconds += seconds_since(start);
    out.images.push_back({sample.id, sample.labels});
    return data::ItemOutcome::kDone;
  });
  out.failures = runner.failures();
  out.interrupted = runner.interrupted();
  if (!rows.empty()) out.features = at::cat(rows, 0);
  return out;
}

}  // namespace

ImageFeatures compute_image_features(const clip::ClipModel& model,
                                     const std::vector<data::Sample>& samples,
                                     const InputConfig& input, Reporter& reporter,
                                     const std::atomic<bool>* stop) {
  data::BatchRunner runner(data::batch_items(samples), {"image features", {}, -1, stop}, reporter);
  return image_features(model, samples, input, runner);
}

std::vector<std::vector<double>> template_scores(const clip::ClipModel& model,
                                                 const clip::Tokenizer& tokenizer,
                                                 const GenerateConfig& config,
                                                 const std::string& prompt_template,
                                                 const ImageFeatures& features, bool exact_text) {
  GenerateConfig with_template = config;
  with_template.prompt_template = prompt_template;
  const PromptTexts texts = build_prompt_texts(with_template);
  // Only the classes some image holds are encoded; row[c] is class c's row in the bank.
  std::set<int> present;
  for (const auto& image : features.images) present.insert(image.labels.begin(), image.labels.end());
  std::vector<std::string> foreground;
  std::map<int, int> row;
  for (const int c : present) {
    if (c < 0 || c >= static_cast<int>(texts.foreground.size())) {
      throw Error(fmt::format("class index {} is outside the config's {} classes", c,
                              texts.foreground.size()));
    }
    row[c] = static_cast<int>(foreground.size());
    foreground.push_back(texts.foreground[static_cast<std::size_t>(c)]);
  }
  const clip::TextBank bank = clip::build_text_bank(
      model, tokenizer, foreground, texts.background,
      exact_text ? clip::TextEncoding::kReference : clip::TextEncoding::kFast);
  const double scale = model.logit_scale().item<double>();
  at::NoGradGuard no_grad;
  std::vector<std::vector<double>> scores;
  scores.reserve(features.images.size());
  for (std::size_t i = 0; i < features.images.size(); ++i) {
    const auto& labels = features.images[i].labels;
    std::vector<int> rows;
    for (const int c : labels) rows.push_back(row.at(c));
    const auto probs =
        cam::class_probabilities(features.features[static_cast<std::int64_t>(i)],
                                 bank.text_matrix(rows), scale)
            .to(at::kCPU, at::kDouble)
            .contiguous();
    const double* p = probs.data_ptr<double>();
    scores.emplace_back(p, p + labels.size());
  }
  return scores;
}

void sort_by_sharpness(std::vector<TemplateRanking>& ranking) {
  std::stable_sort(ranking.begin(), ranking.end(),
                   [](const TemplateRanking& a, const TemplateRanking& b) {
                     return a.score.sharpness < b.score.sharpness;
                   });
}

struct PromptRanker::Impl {
  GenerateConfig config;
  detail::LoadedClip clip;

  // Scores each template in order into summary.ranking; false when `stop` ended it early.
  bool score_templates(const std::vector<PromptTemplate>& templates, const ImageFeatures& features,
                       bool exact_text, const std::atomic<bool>* stop, Reporter& reporter,
                       RankingSummary& summary) const;
};

PromptRanker::PromptRanker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PromptRanker::PromptRanker(PromptRanker&&) noexcept = default;
PromptRanker& PromptRanker::operator=(PromptRanker&&) noexcept = default;
PromptRanker::~PromptRanker() = default;

const GenerateConfig& PromptRanker::config() const { return impl_->config; }

PromptRanker PromptRanker::load(const GenerateConfig& config, const std::string& device,
                                bool keep_fp16) {
  return PromptRanker(
      std::unique_ptr<Impl>(new Impl{config, detail::load_clip(config, device, keep_fp16)}));
}

bool PromptRanker::Impl::score_templates(const std::vector<PromptTemplate>& templates,
                                        const ImageFeatures& features, bool exact_text,
                                        const std::atomic<bool>* stop, Reporter& reporter,
                                        RankingSummary& summary) const {
  reporter.progress("templates", 0, summary.templates);
  for (const auto& prompt : templates) {
    if (stop != nullptr && stop->load()) return false;
    const auto start = Clock::now();
    TemplateRanking result{prompt, {}, 0};
    result.score = sharpness(
        template_scores(clip.model, clip.tokenizer, config, prompt.text, features, exact_text));
    result.text_seconds = seconds_since(start);
    summary.text_seconds += result.text_seconds;
    summary.ranking.push_back(result);
    reporter.progress("templates", static_cast<std::int64_t>(summary.ranking.size()),
                      summary.templates);
  }
  return true;
}

RankingSummary PromptRanker::run(const std::vector<PromptTemplate>& templates,
                                 const RankingOptions& options, Reporter& reporter,
                                 const std::atomic<bool>* stop) const {
  const auto& config = impl_->config;
  const std::string source =
      options.templates_source.empty() ? std::string("templates") : options.templates_source;
  if (templates.empty()) throw Error(fmt::format("{}: no template to rank", source));
  const auto context = impl_->clip.model.architecture().context_length;
  for (const auto& prompt : templates) {
    check_template_fits(impl_->clip.tokenizer, config, prompt, context, source);
  }
  const auto run_start = Clock::now();
  const std::string started = utc_now();

  RankingSummary summary;
  summary.templates = static_cast<std::int64_t>(templates.size());
  const auto samples = data::read_dataset(config.dataset, config.class_names());
  data::BatchRunner runner(data::batch_items(samples),
                           {"image features", options.shard, options.limit, stop}, reporter);
  summary.dataset_images = static_cast<std::int64_t>(samples.size());
  summary.selected = static_cast<std::int64_t>(runner.selected().size());
  reporter.info(fmt::format("ranking {} templates over {} images{} ({} in the dataset)",
                            templates.size(), summary.selected,
                            options.shard.count > 1 ? fmt::format(" (shard {}/{})",
                                                                  options.shard.index,
                                                                  options.shard.count)
                                                    : "",
                            samples.size()));

  const ImageFeatures features = image_features(impl_->clip.model, samples, config.input, runner);
  summary.failures = features.failures;
  for (const auto& image : features.images) summary.images_used.push_back(image.id);
  summary.decode_seconds = features.decode_seconds;
  summary.preprocess_seconds = features.preprocess_seconds;
  summary.tower_seconds = features.tower_seconds;
  summary.interrupted = features.interrupted;
  if (!features.interrupted) {
    if (features.images.empty()) {
      throw Error(fmt::format("no usable image among the {} selected ({} skipped): nothing to "
                              "rank the templates on",
                              summary.selected, features.failures.size()));
    }
    reporter.info(fmt::format("{} image features computed ({} skipped); scoring the templates",
                              features.images.size(), features.failures.size()));
    summary.interrupted = !impl_->score_templates(templates, features, options.exact_text, stop,
                                                  reporter, summary);
  }
  sort_by_sharpness(summary.ranking);
  summary.wall_seconds = seconds_since(run_start);

  summary.ranking_file = options.out_dir / "prompt_ranking.json";
  write_ranking_record(summary.ranking_file, options, summary, started, config, impl_->clip);
  return summary;
}

std::string format_ranking_table(const RankingSummary& summary) {
  std::string out = fmt::format("{:>4}  {:>12}  {:>10}  {:>6}  {}\n", "rank", "sharpness",
                                "mean score", "images", "template");
  for (std::size_t i = 0; i < summary.ranking.size(); ++i) {
    const auto& r = summary.ranking[i];
    out += fmt::format("{:>4}  {:>12.6g}  {:>10.6f}  {:>6}  {}\n", i + 1, r.score.sharpness,
                       r.score.mean_target_score, r.score.images, r.prompt.text);
  }
  return out;
}

}  // namespace clipes::pipeline

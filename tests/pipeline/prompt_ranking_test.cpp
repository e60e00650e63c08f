// Prompt ranking (spec §5): the sharpness metric against hand-computed numbers, the templates
// file, and the features-once scoring against the GradCAM path and the authors' probs.npy.

#include "clipes/pipeline/prompt_ranking.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "clipes/clip/model.h"
#include "clipes/clip/preprocess.h"
#include "clipes/clip/text_bank.h"
#include "clipes/clip/tokenizer.h"
#include "clipes/core/error.h"
#include "clipes/data/image.h"
#include "clipes/io/files.h"
#include "clipes/io/npy.h"
#include "clipes/io/npy_tensor.h"
#include "clipes/pipeline/image_cams.h"
#include "support/test_support.h"

namespace clipes::pipeline {
namespace {

namespace fs = std::filesystem;
using testing::shared_path;

// The message of the clipes::Error `statement` throws ("" when it throws nothing).
using clipes::testing::error_of;

// Two templates over three images (labels 2, 1 and 3):
//
// Template A: s_1 = (0.6, 0.2), s_2 = (0.5), s_3 = (0.1, 0.4, 0.7)
//   mean:  0.4, 0.5, 0.4                      Σ mean = 1.3
//   var:   (0.2² + 0.2²)/2 = 0.04, 0, (0.3² + 0 + 0.3²)/3 = 0.06   Σ var = 0.10
//   sharpness = 0.10 / 1.3 = 0.0769230769...; mean target score = 1.3 / 3 = 0.4333...
// Template B: s_1 = (0.3, 0.3), s_2 = (0.5), s_3 = (0.2, 0.3, 0.1)
//   mean:  0.3, 0.5, 0.2                      Σ mean = 1.0
//   var:   0, 0, (0 + 0.1² + 0.1²)/3 = 0.02/3 Σ var = 0.00666...
//   sharpness = 0.02 / 3 = 0.00666...;  mean target score = 1.0 / 3 = 0.333...
// B has the lower sharpness, so it ranks first although A's scores are higher on average.
TEST(Sharpness, ThreeImagesTwoTemplatesByHand) {
  const Sharpness a = sharpness({{0.6, 0.2}, {0.5}, {0.1, 0.4, 0.7}});
  EXPECT_NEAR(a.variance_sum, 0.10, 1e-15);
  EXPECT_NEAR(a.mean_sum, 1.3, 1e-15);
  EXPECT_NEAR(a.sharpness, 0.10 / 1.3, 1e-15);
  EXPECT_NEAR(a.sharpness, 0.0769230769230769, 1e-15);
  EXPECT_NEAR(a.mean_target_score, 1.3 / 3, 1e-15);
  EXPECT_EQ(a.images, 3);

  const Sharpness b = sharpness({{0.3, 0.3}, {0.5}, {0.2, 0.3, 0.1}});
  EXPECT_NEAR(b.variance_sum, 0.02 / 3, 1e-15);
  EXPECT_NEAR(b.mean_sum, 1.0, 1e-15);
  EXPECT_NEAR(b.sharpness, 0.00666666666666667, 1e-15);
  EXPECT_NEAR(b.mean_target_score, 1.0 / 3, 1e-15);

  std::vector<TemplateRanking> ranking{{{"a photo of a {}.", 1}, a, 0},
                                       {{"a clean origami {}.", 2}, b, 0}};
  sort_by_sharpness(ranking);
  EXPECT_EQ(ranking[0].prompt.text, "a clean origami {}.");
  EXPECT_EQ(ranking[1].prompt.text, "a photo of a {}.");
}

TEST(Sharpness, PopulationVarianceNotSample) {
  // (0, 1): population variance 0.25 (the sample variance would be 0.5); mean 0.5.
  EXPECT_DOUBLE_EQ(sharpness({{0.0, 1.0}}).sharpness, 0.5);
  // The order of an image's scores does not matter; the order of images does not either.
  EXPECT_DOUBLE_EQ(sharpness({{0.7, 0.1}, {0.2}}).sharpness,
                   sharpness({{0.2}, {0.1, 0.7}}).sharpness);
}

TEST(Sharpness, SingleLabelImagesContributeNoVariance) {
  const Sharpness s = sharpness({{0.9}, {0.1}, {0.5}});
  EXPECT_EQ(s.sharpness, 0.0);
  EXPECT_EQ(s.variance_sum, 0.0);
  EXPECT_NEAR(s.mean_target_score, 0.5, 1e-15);
  // A single-label image still weighs in the denominator: adding one lowers the ratio.
  const double two = sharpness({{0.2, 0.6}}).sharpness;  // 0.04 / 0.4 = 0.1
  EXPECT_NEAR(two, 0.1, 1e-15);
  EXPECT_NEAR(sharpness({{0.2, 0.6}, {0.6}}).sharpness, 0.04 / 1.0, 1e-15);
}

TEST(Sharpness, BadInputIsAClearError) {
  EXPECT_NE(error_of([] { sharpness({}); }).find("no image to score"), std::string::npos);
  EXPECT_NE(error_of([] {
              sharpness({{0.5}, {}});
            }).find("image 1 has no present-class score"),
            std::string::npos);
  EXPECT_NE(error_of([] { sharpness({{0.5, -0.1}}); }).find("score -0.1"), std::string::npos);
  EXPECT_NE(error_of([] {
              sharpness({{std::numeric_limits<double>::quiet_NaN()}});
            }).find("expected a softmax probability"),
            std::string::npos);
  EXPECT_NE(error_of([] { sharpness({{0.0, 0.0}, {0.0}}); }).find("undefined"), std::string::npos);
}

TEST(SortBySharpness, EqualValuesKeepFileOrder) {
  Sharpness low, high;
  low.sharpness = 0.1;
  high.sharpness = 0.2;
  std::vector<TemplateRanking> ranking{{{"t1 {}", 1}, high, 0},
                                       {{"t2 {}", 2}, low, 0},
                                       {{"t3 {}", 3}, high, 0},
                                       {{"t4 {}", 4}, low, 0}};
  sort_by_sharpness(ranking);
  std::vector<int> lines;
  for (const auto& r : ranking) lines.push_back(r.prompt.line);
  EXPECT_EQ(lines, (std::vector<int>{2, 4, 1, 3}));
}

fs::path write_templates(const std::string& name, const std::string& text) {
  const auto file = testing::make_temp_dir("prompt_ranking") / name;
  io::write_file_atomic(file, text);
  return file;
}

TEST(ReadPromptTemplates, SkipsBlankLinesAndCommentsAndTrims) {
  const auto file =
      write_templates("ok.txt",
                      "# candidates\n\na photo of a {}.\n   a clean origami {}.  \r\n  # indented\n"
                      "{}\n");
  const auto templates = read_prompt_templates(file);
  ASSERT_EQ(templates.size(), 3u);
  EXPECT_EQ(templates[0].text, "a photo of a {}.");
  EXPECT_EQ(templates[0].line, 3);
  EXPECT_EQ(templates[1].text, "a clean origami {}.");
  EXPECT_EQ(templates[1].line, 4);
  EXPECT_EQ(templates[2].text, "{}");
  EXPECT_EQ(templates[2].line, 6);
}

TEST(ReadPromptTemplates, BadTemplatesNameFileAndLine) {
  const auto none = write_templates("none.txt", "a photo of a {}.\n\na photo of a dog.\n");
  const auto message = error_of([&] { read_prompt_templates(none); });
  EXPECT_NE(message.find(none.string() + ":3:"), std::string::npos) << message;
  EXPECT_NE(message.find("exactly one {}"), std::string::npos) << message;
  const auto two = write_templates("two.txt", "a {} of a {}.\n");
  EXPECT_NE(error_of([&] { read_prompt_templates(two); }).find(two.string() + ":1:"),
            std::string::npos);
  const auto named = write_templates("named.txt", "# x\na photo of a {0}.\n");
  EXPECT_NE(error_of([&] { read_prompt_templates(named); }).find(named.string() + ":2:"),
            std::string::npos);
  const auto stray = write_templates("stray.txt", "a {} photo}\n");
  EXPECT_NE(error_of([&] { read_prompt_templates(stray); }).find("no other brace"),
            std::string::npos);
  const auto repeated = write_templates("repeated.txt", "a {}.\nb {}.\n a {}.\n");
  EXPECT_NE(error_of([&] {
              read_prompt_templates(repeated);
            }).find(repeated.string() + ":3: template \"a {}.\" repeats line 1"),
            std::string::npos);
  const auto empty = write_templates("empty.txt", "# only a comment\n\n");
  EXPECT_NE(error_of([&] { read_prompt_templates(empty); }).find("no template found"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              read_prompt_templates("/nonexistent/templates.txt");
            }).find("/nonexistent/templates.txt: cannot read"),
            std::string::npos);
}

TEST(ReadPromptTemplates, TheShippedImageNetListIsValid) {
  const auto templates =
      read_prompt_templates(testing::source_dir() / "configs/prompts-imagenet.txt");
  EXPECT_GE(templates.size(), 18u);
  EXPECT_LE(templates.size(), 24u);
  bool origami = false, weird = false;
  for (const auto& t : templates) {
    origami = origami || t.text == "a clean origami {}.";
    weird = weird || t.text == "a rendering of a weird {}.";
  }
  EXPECT_TRUE(origami);
  EXPECT_TRUE(weird);
}

TEST(FormatRankingTable, OneAlignedRowPerTemplate) {
  RankingSummary summary;
  Sharpness s;
  s.sharpness = 0.00123;
  s.mean_target_score = 0.25;
  s.images = 20;
  summary.ranking.push_back({{"a clean origami {}.", 4}, s, 0});
  s.sharpness = 0.5;
  summary.ranking.push_back({{"a {}.", 1}, s, 0});
  const std::string table = format_ranking_table(summary);
  EXPECT_EQ(table,
            "rank     sharpness  mean score  images  template\n"
            "   1       0.00123    0.250000      20  a clean origami {}.\n"
            "   2           0.5    0.250000      20  a {}.\n");
}

// ---- with the random release-format CLIP of ../shared/reference ---------------------------

struct SharedModel {
  clip::ClipModel model;
  clip::Tokenizer tokenizer;
  GenerateConfig config;
};

SharedModel load_shared_model() {
  at::set_num_threads(2);
  auto config = load_generate_config(testing::source_dir() / "configs/voc.json");
  return {clip::ClipModel::load(shared_path("reference/small12_random_fp16.pt")),
          clip::Tokenizer::from_file(shared_path("vocab/bpe_simple_vocab_16e6.txt.gz")), config};
}

data::Sample voc_sample(const std::string& id, std::vector<int> labels) {
  return {id, shared_path("data/voc-mini/JPEGImages/" + id + ".jpg"), std::move(labels), ""};
}

#define REQUIRE_SHARED_MODEL()                                            \
  CLIPES_REQUIRE_FILE(shared_path("reference/small12_random_fp16.pt"));   \
  CLIPES_REQUIRE_FILE(shared_path("vocab/bpe_simple_vocab_16e6.txt.gz")); \
  CLIPES_REQUIRE_FILE(shared_path("data/voc-mini/JPEGImages/2008_003333.jpg"))

// Features once + a softmax per template must give what the whole GradCAM stage gives (its
// probs) and what the authors' code gave (probs.npy row 0), for images with 1, 2 and 3 labels.
TEST(TemplateScores, EqualTheGradCamSoftmaxAndTheReference) {
  REQUIRE_SHARED_MODEL();
  const auto shared = load_shared_model();
  const std::vector<data::Sample> samples{voc_sample("2007_000032", {0, 14}),
                                          voc_sample("2009_000177", {18}),
                                          voc_sample("2008_003333", {6, 13, 14})};
  NullReporter reporter;
  const auto features = compute_image_features(shared.model, samples, {}, reporter);
  ASSERT_EQ(features.images.size(), 3u);
  ASSERT_TRUE(features.failures.empty());
  EXPECT_EQ(features.features.size(0), 3);
  EXPECT_EQ(features.features.size(1), shared.model.architecture().embed_dim);

  const auto scores = template_scores(shared.model, shared.tokenizer, shared.config,
                                      "a clean origami {}.", features);
  const PromptTexts texts = build_prompt_texts(shared.config);
  const auto bank =
      clip::build_text_bank(shared.model, shared.tokenizer, texts.foreground, texts.background);
  ASSERT_EQ(scores.size(), 3u);
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const auto& sample = samples[i];
    ASSERT_EQ(scores[i].size(), sample.labels.size());
    const auto image = data::load_image(sample.image);
    const auto cams = compute_image_cams(
        shared.model, clip::preprocess_for_clip(image.decoded), bank.text_matrix(sample.labels),
        static_cast<std::int64_t>(sample.labels.size()), image.rgb.cols, image.rgb.rows, {}, {});
    const auto reference =
        io::read_npy_tensor(shared_path("reference/small12-voc-mini/" + sample.id + "/probs.npy"));
    for (std::size_t k = 0; k < sample.labels.size(); ++k) {
      const auto kk = static_cast<std::int64_t>(k);
      EXPECT_EQ(static_cast<float>(scores[i][k]), cams.probs[kk].item<float>()) << sample.id;
      EXPECT_NEAR(scores[i][k], reference[0][kk].item<double>(), 1e-6) << sample.id;
    }
  }
  // The fast text encoding (one batch per template) moves the scores by float rounding only.
  const auto fast = template_scores(shared.model, shared.tokenizer, shared.config,
                                    "a clean origami {}.", features, /*exact_text=*/false);
  for (std::size_t i = 0; i < samples.size(); ++i) {
    for (std::size_t k = 0; k < scores[i].size(); ++k) {
      EXPECT_NEAR(fast[i][k], scores[i][k], 1e-4 * scores[i][k] + 1e-9) << samples[i].id;
    }
  }
  // Another template changes the text side, hence the scores.
  const auto other = template_scores(shared.model, shared.tokenizer, shared.config,
                                     "a photo of the {}.", features);
  EXPECT_GT(std::abs(other[2][0] - scores[2][0]), 1e-7);
}

TEST(ImageFeatures, BadImagesAreReportedAndSkipped) {
  REQUIRE_SHARED_MODEL();
  const auto shared = load_shared_model();
  const auto dir = testing::make_temp_dir("prompt_ranking_bad");
  io::write_file_atomic(dir / "broken.jpg", "not a jpeg");
  data::Sample problem{"2099_000001", dir / "absent.jpg", {}, "no labels"};
  data::Sample broken{"broken", dir / "broken.jpg", {3}, ""};
  const std::vector<data::Sample> samples{voc_sample("2009_000177", {18}), problem, broken,
                                          voc_sample("2007_000032", {0, 14})};

  struct Recorder final : Reporter {
    std::vector<std::string> warnings;
    std::int64_t last_done = -1, last_total = -1;
    void log(LogLevel level, std::string_view m) override {
      if (level == LogLevel::kWarn) warnings.emplace_back(m);
    }
    void progress(std::string_view stage, std::int64_t done, std::int64_t total) override {
      EXPECT_EQ(stage, "image features");
      last_done = done;
      last_total = total;
    }
  } reporter;
  const auto features = compute_image_features(shared.model, samples, {}, reporter);
  ASSERT_EQ(features.images.size(), 2u);
  EXPECT_EQ(features.images[0].id, "2009_000177");
  EXPECT_EQ(features.images[1].id, "2007_000032");
  EXPECT_EQ(features.images[1].labels, (std::vector<int>{0, 14}));
  ASSERT_EQ(features.failures.size(), 2u);
  EXPECT_EQ(features.failures[0].id, "2099_000001");
  EXPECT_EQ(features.failures[0].reason, "no labels");
  EXPECT_EQ(features.failures[1].id, "broken");
  EXPECT_NE(features.failures[1].reason.find("broken.jpg"), std::string::npos);
  EXPECT_EQ(reporter.warnings.size(), 2u);
  EXPECT_EQ(reporter.last_done, 4);
  EXPECT_EQ(reporter.last_total, 4);

  // The size guard refuses what it would refuse in clipes-generate.
  InputConfig tiny;
  tiny.max_tokens = 100;  // a 500x375 image has 32x24 patches
  const auto refused = compute_image_features(shared.model, {samples[0]}, tiny, reporter);
  EXPECT_TRUE(refused.images.empty());
  EXPECT_FALSE(refused.features.defined());
  ASSERT_EQ(refused.failures.size(), 1u);
  EXPECT_NE(refused.failures[0].reason.find("max_tokens"), std::string::npos);
}

TEST(PromptRanker, RefusesATemplateTooLongForTheContextBeforeAnyImage) {
  REQUIRE_SHARED_MODEL();
  auto config = load_generate_config(testing::source_dir() / "configs/voc.json");
  config.model = shared_path("reference/small12_random_fp16.pt").string();
  config.vocab = shared_path("vocab/bpe_simple_vocab_16e6.txt.gz").string();
  config.dataset.root = "/nonexistent";  // never read: the templates are checked first
  const auto ranker = PromptRanker::load(config);
  std::string long_template = "a";
  for (int i = 0; i < 70; ++i) long_template += " very";
  long_template += " {}.";
  RankingOptions options;
  options.templates_source = "list.txt";
  NullReporter reporter;
  const auto message = error_of([&] {
    ranker.run({{"a {}.", 1}, {long_template, 7}}, options, reporter);
  });
  EXPECT_NE(message.find("list.txt:7: template"), std::string::npos) << message;
  EXPECT_NE(message.find("person with clothes,people,human"), std::string::npos) << message;
  EXPECT_NE(message.find("context of 77 tokens"), std::string::npos) << message;
}

TEST(PromptRanker, StopRaisedBeforeTheStartWritesAnInterruptedRecord) {
  REQUIRE_SHARED_MODEL();
  auto config = load_generate_config(testing::source_dir() / "configs/voc.json");
  config.model = shared_path("reference/small12_random_fp16.pt").string();
  config.vocab = shared_path("vocab/bpe_simple_vocab_16e6.txt.gz").string();
  config.dataset.root = shared_path("data/voc-mini").string();
  config.dataset.labels = "labels.txt";
  config.dataset.split = "labels.txt";
  const auto ranker = PromptRanker::load(config);
  RankingOptions options;
  options.out_dir = testing::make_temp_dir("prompt_ranking_stop");
  options.limit = 3;
  const std::atomic<bool> stop{true};
  NullReporter reporter;
  const auto summary = ranker.run({{"a {}.", 1}}, options, reporter, &stop);
  EXPECT_TRUE(summary.interrupted);
  EXPECT_TRUE(summary.ranking.empty());
  EXPECT_TRUE(summary.images_used.empty());
  EXPECT_EQ(summary.selected, 3);
  EXPECT_EQ(summary.dataset_images, 20);
  EXPECT_EQ(summary.ranking_file, options.out_dir / "prompt_ranking.json");
  const auto record = io::read_file(summary.ranking_file);
  EXPECT_NE(record.find("\"interrupted\": true"), std::string::npos) << record;
}

}  // namespace
}  // namespace clipes::pipeline

// clipes-generate --rank-prompts end to end: the real binary on ../shared/data/voc-mini with the
// random release-format CLIP of ../shared/reference; the sharpness of the paper's template
// against the one computed from the authors' per-image softmax rows (probs.npy).

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "clipes/io/files.h"
#include "clipes/io/npy.h"
#include "clipes/io/npy_tensor.h"
#include "support/test_support.h"

namespace clipes {
namespace {

namespace fs = std::filesystem;
using testing::shared_path;

fs::path voc_mini() { return shared_path("data/voc-mini"); }

bool shared_ready() {
  return fs::exists(shared_path("reference/small12_random_fp16.pt")) &&
         fs::exists(shared_path("vocab/bpe_simple_vocab_16e6.txt.gz")) &&
         fs::exists(voc_mini() / "labels.txt") &&
         fs::exists(shared_path("reference/small12-voc-mini"));
}

#define CLIPES_REQUIRE_SHARED()                                                           \
  do {                                                                                    \
    if (!shared_ready()) {                                                                \
      GTEST_SKIP() << "SKIPPED: ../shared (model, vocab, voc-mini, reference) is absent"; \
    }                                                                                     \
  } while (0)

// clipes-generate on voc-mini with the reference model; `labels` is the labels and split file.
std::string rank_command(const fs::path& templates, const std::string& extra,
                         const fs::path& labels = voc_mini() / "labels.txt") {
  return fmt::format(
      "{} --config {} --data-root {} --labels {} --split {} --model {} --vocab {} "
      "--rank-prompts {} {}",
      (testing::bin_dir() / "clipes-generate").string(),
      (testing::source_dir() / "configs/voc.json").string(), voc_mini().string(), labels.string(),
      labels.string(), shared_path("reference/small12_random_fp16.pt").string(),
      shared_path("vocab/bpe_simple_vocab_16e6.txt.gz").string(), templates.string(), extra);
}

nlohmann::json read_json(const fs::path& file) {
  return nlohmann::json::parse(io::read_file(file));
}

std::vector<std::string> voc_ids() {
  std::vector<std::string> ids;
  std::ifstream in(voc_mini() / "labels.txt");
  for (std::string line; std::getline(in, line);) ids.push_back(line.substr(0, line.find(' ')));
  return ids;
}

// Eq. 5 from the authors' dumps: s_i = the first K entries of probs.npy's row 0 (every row holds
// the same softmax over [K classes; 25 background words]); population variance.
struct ReferenceSharpness {
  double sharpness = 0;
  double mean_target_score = 0;
};
ReferenceSharpness reference_sharpness() {
  double variance_sum = 0, mean_sum = 0;
  const auto ids = voc_ids();
  for (const auto& id : ids) {
    const auto dir = shared_path("reference/small12-voc-mini/" + id);
    const auto k = static_cast<std::int64_t>(io::read_npy(dir / "keys.npy").to_int64().size());
    const auto probs = io::read_npy_tensor(dir / "probs.npy").to(at::kDouble);
    EXPECT_EQ(probs.size(1), k + 25) << id;
    const auto s = probs[0].slice(0, 0, k);
    const double mean = s.sum().item<double>() / static_cast<double>(k);
    variance_sum += ((s - mean) * (s - mean)).sum().item<double>() / static_cast<double>(k);
    mean_sum += mean;
  }
  return {variance_sum / mean_sum, mean_sum / static_cast<double>(ids.size())};
}

// One ranking of three templates over all of voc-mini, shared by the checks below.
class RankPromptsVocMini : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!shared_ready()) return;
    out_ = testing::make_temp_dir("rank-prompts");
    // Inputs and the log in a folder of this process's own: ctest runs the tests of this suite
    // in parallel processes, each with its own ranking.
    const fs::path io_dir = testing::make_temp_dir("rank-prompts-io");
    templates_ = io_dir / "templates.txt";
    io::write_file_atomic(templates_,
                          "# three candidates\n"
                          "a photo of a {}.\n"
                          "\n"
                          "a clean origami {}.\n"
                          "a rendering of a weird {}.\n");
    rc_ = testing::run_command(
        rank_command(templates_, fmt::format("--out {} --threads 2 2>{}", out_.string(),
                                             (io_dir / "rank-prompts.log").string())),
        &stdout_);
    log_ = io::read_file(io_dir / "rank-prompts.log");
  }
  static fs::path out_, templates_;
  static int rc_;
  static std::string stdout_, log_;
};
fs::path RankPromptsVocMini::out_, RankPromptsVocMini::templates_;
int RankPromptsVocMini::rc_ = -1;
std::string RankPromptsVocMini::stdout_, RankPromptsVocMini::log_;

TEST_F(RankPromptsVocMini, OrigamiSharpnessEqualsTheReferenceSoftmax) {
  CLIPES_REQUIRE_SHARED();
  ASSERT_EQ(rc_, 0) << stdout_ << log_;
  const auto ranking = read_json(out_ / "prompt_ranking.json");
  const auto expected = reference_sharpness();
  bool found = false;
  for (const auto& entry : ranking["ranking"]) {
    if (entry["template"] != "a clean origami {}.") continue;
    found = true;
    EXPECT_NEAR(entry["sharpness"].get<double>(), expected.sharpness, 1e-6);
    EXPECT_NEAR(entry["mean_target_score"].get<double>(), expected.mean_target_score, 1e-6);
    EXPECT_EQ(entry["images"], 20);
    EXPECT_EQ(entry["line"], 4);
    std::cout << fmt::format("a clean origami {{}}.: sharpness {:.9f}, reference {:.9f}\n",
                             entry["sharpness"].get<double>(), expected.sharpness);
  }
  EXPECT_TRUE(found);
}

// --exact-text encodes each sentence alone, as the reference: its scores bit for bit, so the
// sharpness agrees to double rounding.
TEST(RankPromptsTool, ExactTextReproducesTheReferenceSharpness) {
  CLIPES_REQUIRE_SHARED();
  const auto out = testing::make_temp_dir("rank-prompts-exact");
  const auto templates = out / "templates.txt";
  io::write_file_atomic(templates, "a clean origami {}.\n");
  std::string output;
  const int rc = testing::run_command(
      rank_command(templates, fmt::format("--exact-text --out {} --threads 2 2>&1", out.string())),
      &output);
  ASSERT_EQ(rc, 0) << output;
  const auto ranking = read_json(out / "prompt_ranking.json");
  EXPECT_EQ(ranking["text_encoding"].get<std::string>().rfind("reference", 0), 0u);
  ASSERT_EQ(ranking["ranking"].size(), 1u);
  const auto expected = reference_sharpness();
  const double bound = testing::parity_bound(1e-12, 1e-12, 1e-6);
  EXPECT_NEAR(ranking["ranking"][0]["sharpness"].get<double>(), expected.sharpness, bound);
  EXPECT_NEAR(ranking["ranking"][0]["mean_target_score"].get<double>(), expected.mean_target_score,
              bound);
}

TEST_F(RankPromptsVocMini, RecordsTheRankingImagesAndModel) {
  CLIPES_REQUIRE_SHARED();
  ASSERT_EQ(rc_, 0) << stdout_ << log_;
  const auto ranking = read_json(out_ / "prompt_ranking.json");
  ASSERT_EQ(ranking["ranking"].size(), 3u);
  std::set<std::string> templates;
  double previous = -1;
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& entry = ranking["ranking"][i];
    EXPECT_EQ(entry["rank"], i + 1);
    const double sharpness = entry["sharpness"].get<double>();
    EXPECT_GE(sharpness, previous);  // lowest first
    previous = sharpness;
    EXPECT_NEAR(sharpness, entry["variance_sum"].get<double>() / entry["mean_sum"].get<double>(),
                1e-12);
    EXPECT_GT(entry["mean_target_score"].get<double>(), 0.0);
    EXPECT_LT(entry["mean_target_score"].get<double>(), 1.0);
    templates.insert(entry["template"].get<std::string>());
  }
  EXPECT_EQ(templates, (std::set<std::string>{"a photo of a {}.", "a clean origami {}.",
                                              "a rendering of a weird {}."}));
  // The three templates give three different sharpness values (the text side changes).
  EXPECT_NE(ranking["ranking"][0]["sharpness"], ranking["ranking"][1]["sharpness"]);
  EXPECT_NE(ranking["ranking"][1]["sharpness"], ranking["ranking"][2]["sharpness"]);
  EXPECT_EQ(ranking["images"]["used"].get<std::vector<std::string>>(), voc_ids());
  EXPECT_TRUE(ranking["images"]["skipped"].empty());
  EXPECT_EQ(ranking["counts"]["dataset"], 20);
  EXPECT_EQ(ranking["counts"]["used"], 20);
  EXPECT_EQ(ranking["counts"]["skipped"], 0);
  EXPECT_EQ(ranking["counts"]["templates"], 3);
  EXPECT_EQ(ranking["model"]["sha256"],
            "126132e33a4c91d518bd0e43ec5dc00120289e12690eb35f03eac43d351edd6d");
  EXPECT_EQ(ranking["templates_file"], templates_.string());
  EXPECT_EQ(ranking["config"]["name"], "voc");
  EXPECT_EQ(ranking["config"]["classes"].size(), 20u);
  EXPECT_EQ(ranking["threads"], 2);
  EXPECT_FALSE(ranking["interrupted"].get<bool>());
  EXPECT_EQ(ranking["text_encoding"].get<std::string>().rfind("fast", 0), 0u);
  // The table on stdout lists the templates in the same order, with the same numbers.
  std::istringstream table(stdout_);
  std::string line;
  std::getline(table, line);
  EXPECT_EQ(line, "rank     sharpness  mean score  images  template");
  for (const auto& entry : ranking["ranking"]) {
    ASSERT_TRUE(std::getline(table, line));
    EXPECT_NE(line.find(entry["template"].get<std::string>()), std::string::npos) << line;
    EXPECT_NE(line.find(fmt::format("{:.6g}", entry["sharpness"].get<double>())), std::string::npos)
        << line;
  }
  // Progress and the timing summary went to stderr; nothing half-written is left.
  EXPECT_NE(log_.find("image features: 20/20"), std::string::npos) << log_;
  EXPECT_NE(log_.find("templates: 3/3"), std::string::npos) << log_;
  for (const auto& entry : fs::directory_iterator(out_)) {
    EXPECT_FALSE(io::is_atomic_temporary(entry.path())) << entry.path();
  }
}

TEST(RankPromptsTool, ShippedListRanksIntoTheCurrentFolderByDefault) {
  CLIPES_REQUIRE_SHARED();
  const auto dir = testing::make_temp_dir("rank-prompts-default");
  std::string output;
  const int rc = testing::run_command(
      fmt::format("cd {} && {}", dir.string(),
                  rank_command(testing::source_dir() / "configs/prompts-imagenet.txt",
                               "--limit 2 --threads 1")),
      &output);
  ASSERT_EQ(rc, 0) << output;
  const auto ranking = read_json(dir / "prompt_ranking.json");
  EXPECT_EQ(ranking["ranking"].size(), 20u);
  EXPECT_EQ(ranking["images"]["used"], (std::vector<std::string>{"2007_000032", "2007_000033"}));
  EXPECT_EQ(ranking["counts"]["selected"], 2);
  EXPECT_EQ(ranking["limit"], 2);
  for (const auto& entry : ranking["ranking"]) EXPECT_EQ(entry["images"], 2);
}

TEST(RankPromptsTool, BadImagesAreSkippedAndCounted) {
  CLIPES_REQUIRE_SHARED();
  const auto dir = testing::make_temp_dir("rank-prompts-bad");
  const auto labels = dir / "labels.txt";
  io::write_file_atomic(labels, "2007_000032 0 14\n2099_000001 3\n2009_000177 18\n");
  const auto templates = dir / "templates.txt";
  io::write_file_atomic(templates, "a clean origami {}.\n");
  std::string output;
  const int rc = testing::run_command(
      rank_command(templates, fmt::format("--out {} --threads 1", (dir / "out").string()), labels),
      &output);
  EXPECT_EQ(rc, 1) << output;
  EXPECT_NE(output.find("2099_000001"), std::string::npos) << output;
  const auto ranking = read_json(dir / "out" / "prompt_ranking.json");
  EXPECT_EQ(ranking["images"]["used"], (std::vector<std::string>{"2007_000032", "2009_000177"}));
  ASSERT_EQ(ranking["images"]["skipped"].size(), 1u);
  EXPECT_EQ(ranking["images"]["skipped"][0]["id"], "2099_000001");
  EXPECT_FALSE(ranking["images"]["skipped"][0]["reason"].get<std::string>().empty());
  EXPECT_EQ(ranking["counts"]["skipped"], 1);
  EXPECT_EQ(ranking["ranking"][0]["images"], 2);
}

TEST(RankPromptsTool, BadTemplatesAndUsageExitWithTwo) {
  CLIPES_REQUIRE_SHARED();
  const auto dir = testing::make_temp_dir("rank-prompts-errors");
  const auto templates = dir / "templates.txt";
  io::write_file_atomic(templates, "a clean origami {}.\n# fine\na photo of a dog.\n");
  std::string output;
  EXPECT_EQ(testing::run_command(rank_command(templates, "--threads 1"), &output), 2) << output;
  EXPECT_NE(output.find(templates.string() + ":3: prompt template \"a photo of a dog.\" must hold "
                                             "exactly one {}"),
            std::string::npos)
      << output;
  EXPECT_FALSE(fs::exists(dir / "prompt_ranking.json"));

  EXPECT_EQ(testing::run_command(rank_command(dir / "absent.txt", "--threads 1"), &output), 2)
      << output;
  EXPECT_NE(output.find("absent.txt"), std::string::npos) << output;

  const auto good = dir / "good.txt";
  io::write_file_atomic(good, "a clean origami {}.\n");
  EXPECT_EQ(testing::run_command(rank_command(good, "--no-crf"), &output), 2) << output;
  EXPECT_NE(output.find("--no-crf"), std::string::npos) << output;
  // --exact-text only means something for a ranking.
  const std::string generate = rank_command(good, "");
  EXPECT_EQ(testing::run_command(generate.substr(0, generate.find(" --rank-prompts")) +
                                     " --exact-text --out " + (dir / "gen").string() + " 2>&1",
                                 &output),
            2)
      << output;
  EXPECT_NE(output.find("--exact-text requires --rank-prompts"), std::string::npos) << output;

  // No usable image: an error of the run as a whole.
  const auto labels = dir / "labels.txt";
  io::write_file_atomic(labels, "2099_000001 3\n");
  EXPECT_EQ(
      testing::run_command(
          rank_command(good, fmt::format("--out {}", (dir / "out").string()), labels), &output),
      2)
      << output;
  EXPECT_NE(output.find("no usable image"), std::string::npos) << output;
  EXPECT_FALSE(fs::exists(dir / "out" / "prompt_ranking.json"));
}

}  // namespace
}  // namespace clipes

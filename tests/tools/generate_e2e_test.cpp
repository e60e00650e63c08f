// clipes-generate end to end: the real binary on ../shared/data/voc-mini with the random
// release-format CLIP of ../shared/reference, checked against the authors' outputs; resume,
// interruption, shards and bad input.

#include <ATen/ATen.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "clipes/io/files.h"
#include "clipes/io/npy.h"
#include "clipes/io/npy_tensor.h"
#include "clipes/io/png.h"
#include "support/test_support.h"

namespace clipes {
namespace {

namespace fs = std::filesystem;
using testing::shared_path;

fs::path voc_mini() { return shared_path("data/voc-mini"); }
fs::path reference() { return shared_path("reference/small12-voc-mini"); }

// The command line shared by the tests: voc config, voc-mini, the reference model.
std::string generate_command(const fs::path& out, const std::string& extra = "",
                             const fs::path& model = shared_path("reference/small12_random_fp16.pt")) {
  return fmt::format(
      "{} --config {} --data-root {} --labels {} --split {} --model {} --vocab {} --out {} "
      "--threads 2 {}",
      (testing::bin_dir() / "clipes-generate").string(),
      (testing::source_dir() / "configs/voc.json").string(), voc_mini().string(),
      (voc_mini() / "labels.txt").string(), (voc_mini() / "labels.txt").string(),
      model.string(), shared_path("vocab/bpe_simple_vocab_16e6.txt.gz").string(), out.string(),
      extra);
}

bool shared_ready() {
  return fs::exists(shared_path("reference/small12_random_fp16.pt")) &&
         fs::exists(shared_path("vocab/bpe_simple_vocab_16e6.txt.gz")) && fs::exists(voc_mini());
}

#define CLIPES_REQUIRE_SHARED()                                                            \
  do {                                                                                     \
    if (!shared_ready()) {                                                                 \
      GTEST_SKIP() << "SKIPPED: ../shared (model, vocab, voc-mini) is absent";                \
    }                                                                                      \
  } while (0)

std::vector<std::string> voc_ids() {
  std::vector<std::string> ids;
  std::ifstream in(voc_mini() / "labels.txt");
  for (std::string line; std::getline(in, line);) ids.push_back(line.substr(0, line.find(' ')));
  return ids;
}

// Every file under `dir` (relative path -> bytes), run.json excepted.
std::map<std::string, std::string> tree(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const auto name = fs::relative(entry.path(), dir).string();
    if (name.rfind("run", 0) == 0) continue;
    files[name] = io::read_file(entry.path());
  }
  return files;
}

int count_temporaries(const fs::path& dir) {
  int n = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (io::is_atomic_temporary(entry.path())) ++n;
  }
  return n;
}

nlohmann::json read_json(const fs::path& file) { return nlohmann::json::parse(io::read_file(file)); }

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// Shared by the tests below: one full run with float32 CAMs and the reference CRF image.
class GenerateVocMini : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!shared_ready()) return;
    out_ = testing::make_temp_dir("generate-full");
    rc_ = testing::run_command(
        generate_command(out_, "--cam-dtype float32 --set crf.image=reference "
                               "--set caa.explicit_power=true --overlays"),
        &log_);
  }
  static fs::path out_;
  static int rc_;
  static std::string log_;
};
fs::path GenerateVocMini::out_;
int GenerateVocMini::rc_ = -1;
std::string GenerateVocMini::log_;

TEST_F(GenerateVocMini, MatchesTheReferenceCamsAndPseudoMasks) {
  CLIPES_REQUIRE_SHARED();
  ASSERT_EQ(rc_, 0) << log_;
  std::int64_t agree = 0, total = 0;
  double worst_cams = 0, worst_initial = 0;
  for (const auto& id : voc_ids()) {
    const auto npz = io::read_npz(out_ / "cams" / (id + ".npz"));
    const auto keys = io::npz_member(npz, "keys", id).to_int64();
    EXPECT_EQ(keys, io::read_npy(reference() / id / "keys.npy").to_int64()) << id;
    const auto cams = io::to_tensor(io::npz_member(npz, "cams", id));
    const auto initial = io::to_tensor(io::npz_member(npz, "initial", id));
    EXPECT_EQ(cams.scalar_type(), at::kFloat);
    const auto ref_cams = io::read_npy_tensor(reference() / id / "attn_highres.npy");
    const auto ref_initial = io::read_npy_tensor(reference() / id / "grayscale_cam.npy");
    ASSERT_EQ(cams.sizes(), ref_cams.sizes()) << id;
    worst_cams = std::max(worst_cams, max_abs_diff(cams, ref_cams));
    worst_initial = std::max(worst_initial, max_abs_diff(initial, ref_initial));
    EXPECT_LE(max_abs_diff(cams, ref_cams), testing::parity_bound(1e-4, 1e-4, 1e-3)) << id;
    EXPECT_LE(max_abs_diff(initial, ref_initial), testing::parity_bound(1e-5, 1e-5, 5e-5)) << id;

    const cv::Mat mask = io::read_png_u8(out_ / "masks" / (id + ".png"));
    const cv::Mat expected = io::read_png_u8(reference() / id / "pseudo_mask.png");
    ASSERT_EQ(mask.size(), expected.size()) << id;
    const auto same = static_cast<std::int64_t>(mask.total()) - cv::countNonZero(mask != expected);
    EXPECT_GE(static_cast<double>(same) / mask.total(), 0.999) << id;
    agree += same;
    total += static_cast<std::int64_t>(mask.total());
    // Confidence: 16-bit, and the ignored pixels are exactly those below μ = 0.95.
    const cv::Mat confidence = io::read_png_u16(out_ / "confidence" / (id + ".png"));
    ASSERT_EQ(confidence.size(), mask.size());
    for (int y = 0; y < mask.rows; ++y) {
      for (int x = 0; x < mask.cols; ++x) {
        const bool ignored = mask.at<std::uint8_t>(y, x) == 255;
        const double c = confidence.at<std::uint16_t>(y, x) / 65535.0;
        if (std::abs(c - 0.95) > 1e-4) {
          ASSERT_EQ(ignored, c < 0.95) << id << " " << x << "," << y;
        }
      }
    }
    EXPECT_TRUE(fs::exists(out_ / "overlays" / (id + ".jpg"))) << id;
  }
  // run.json records what was written, from which model, how.
  const auto run = read_json(out_ / "run.json");
  EXPECT_EQ(run["counts"]["written"], 20);
  EXPECT_EQ(run["counts"]["failed"], 0);
  EXPECT_EQ(run["model"]["sha256"],
            "126132e33a4c91d518bd0e43ec5dc00120289e12690eb35f03eac43d351edd6d");
  EXPECT_EQ(run["config"]["crf"]["image"], "reference");
  EXPECT_EQ(run["config"]["outputs"]["cam_dtype"], "float32");
  EXPECT_TRUE(run["outputs"].contains("masks"));
  EXPECT_TRUE(run["outputs"].contains("cams"));
  EXPECT_GT(run["images_per_second"].get<double>(), 0.0);
  EXPECT_EQ(count_temporaries(out_), 0);
  std::cout << fmt::format("voc-mini: cams max |diff| {:.2e}, initial {:.2e}, masks agree on "
                           "{:.5f} of {} pixels\n",
                           worst_cams, worst_initial, static_cast<double>(agree) / total, total);
}

TEST(GenerateTool, ResumeAfterALimitedRunGivesIdenticalFiles) {
  CLIPES_REQUIRE_SHARED();
  const auto out = testing::make_temp_dir("generate-resume");
  const auto fresh = testing::make_temp_dir("generate-resume-fresh");
  const std::string flags = "--no-crf --cam-dtype float32";
  std::string log;
  ASSERT_EQ(testing::run_command(generate_command(out, flags + " --limit 7"), &log), 0) << log;
  EXPECT_EQ(read_json(out / "run.json")["counts"]["written"], 7);
  ASSERT_EQ(testing::run_command(generate_command(out, flags), &log), 0) << log;
  const auto run = read_json(out / "run.json");
  EXPECT_EQ(run["counts"]["skipped_existing"], 7);
  EXPECT_EQ(run["counts"]["written"], 13);
  ASSERT_EQ(testing::run_command(generate_command(fresh, flags), &log), 0) << log;
  EXPECT_EQ(tree(out), tree(fresh));
  // --overwrite redoes everything, to the same bytes.
  ASSERT_EQ(testing::run_command(generate_command(out, flags + " --overwrite"), &log), 0) << log;
  EXPECT_EQ(read_json(out / "run.json")["counts"]["written"], 20);
  EXPECT_EQ(tree(out), tree(fresh));
}

TEST(GenerateTool, InterruptedRunResumesToIdenticalFiles) {
  CLIPES_REQUIRE_SHARED();
  const auto out = testing::make_temp_dir("generate-sigint");
  const auto log_file = out.parent_path() / "generate-sigint.log";
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    setpgid(0, 0);
    execl("/bin/sh", "sh", "-c",
          ("exec " + generate_command(out, "--crf-workers 1") + " > " + log_file.string() + " 2>&1")
              .c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  // Interrupt once the first mask is on disk.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (std::chrono::steady_clock::now() < deadline &&
         (!fs::exists(out / "masks") || fs::is_empty(out / "masks"))) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(-child, SIGINT);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  const std::string log = io::read_file(log_file);
  ASSERT_EQ(WEXITSTATUS(status), 130) << log;
  EXPECT_NE(log.find("interrupted: run the same command again to resume"), std::string::npos);
  EXPECT_EQ(count_temporaries(out), 0);
  const auto first = read_json(out / "run.json");
  EXPECT_TRUE(first["interrupted"].get<bool>());
  EXPECT_LT(first["counts"]["written"].get<int>(), 20);

  std::string resumed_log;
  ASSERT_EQ(testing::run_command(generate_command(out), &resumed_log), 0) << resumed_log;
  const auto fresh = testing::make_temp_dir("generate-sigint-fresh");
  ASSERT_EQ(testing::run_command(generate_command(fresh), &resumed_log), 0) << resumed_log;
  EXPECT_EQ(tree(out), tree(fresh));
}

TEST(GenerateTool, ShardsSplitTheImagesWithoutOverlap) {
  CLIPES_REQUIRE_SHARED();
  const auto out = testing::make_temp_dir("generate-shards");
  std::string log;
  for (int shard = 0; shard < 3; ++shard) {
    ASSERT_EQ(testing::run_command(
                  generate_command(out, fmt::format("--no-crf --shard {}/3", shard)), &log),
              0)
        << log;
  }
  int total = 0;
  for (int shard = 0; shard < 3; ++shard) {
    const auto run = read_json(out / fmt::format("run-{}of3.json", shard));
    total += run["counts"]["written"].get<int>();
    EXPECT_EQ(run["counts"]["skipped_existing"], 0);
  }
  EXPECT_EQ(total, 20);
  EXPECT_FALSE(fs::exists(out / "masks"));  // --no-crf: the CAM stage only
  int cams = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(out / "cams")) ++cams;
  EXPECT_EQ(cams, 20);
}

TEST(GenerateTool, BadImagesAreReportedAndSkipped) {
  CLIPES_REQUIRE_SHARED();
  const auto root = testing::make_temp_dir("generate-bad");
  fs::create_directories(root / "images");
  const auto jpeg = voc_mini() / "JPEGImages";
  fs::copy_file(jpeg / "2007_000032.jpg", root / "images" / "good.jpg");
  fs::copy_file(jpeg / "2007_000033.jpg", root / "images" / "big.jpg");
  fs::copy_file(jpeg / "2007_000033.jpg", root / "images" / "nolabel.jpg");
  fs::copy_file(jpeg / "2007_000033.jpg", root / "images" / "unknown.jpg");
  const std::string bytes = io::read_file(jpeg / "2007_000250.jpg");
  io::write_file_atomic(root / "images" / "truncated.jpg", bytes.substr(0, bytes.size() / 3));
  io::write_file_atomic(root / "labels.txt",
                        "good aeroplane person\nmissing cat\ntruncated bottle\nnolabel\n"
                        "unknown unicorn\nbig 0\n");
  // max_tokens 700 admits 500x281 (32x18 = 576 patches) but not 500x366 (32x23 = 736).
  std::string log;
  const int rc = testing::run_command(
      fmt::format("{} --config {} --data-root {} --set dataset.layout=custom --set "
                  "dataset.images=images --set dataset.split= --set input.max_tokens=700 --labels {} --model {} "
                  "--vocab {} --out {} --threads 2",
                  (testing::bin_dir() / "clipes-generate").string(),
                  (testing::source_dir() / "configs/voc.json").string(), root.string(),
                  (root / "labels.txt").string(),
                  shared_path("reference/small12_random_fp16.pt").string(),
                  shared_path("vocab/bpe_simple_vocab_16e6.txt.gz").string(),
                  (root / "out").string()),
      &log);
  EXPECT_EQ(rc, 1) << log;
  const auto run = read_json(root / "out" / "run.json");
  EXPECT_EQ(run["counts"]["written"], 1);
  std::map<std::string, std::string> reasons;
  for (const auto& failure : run["failures"]) reasons[failure["id"]] = failure["reason"];
  ASSERT_EQ(reasons.size(), 5u) << run["failures"].dump(2);
  EXPECT_NE(reasons["missing"].find("missing.jpg"), std::string::npos) << reasons["missing"];
  EXPECT_NE(reasons["truncated"].find("truncated.jpg"), std::string::npos) << reasons["truncated"];
  EXPECT_NE(reasons["nolabel"].find("no"), std::string::npos) << reasons["nolabel"];
  EXPECT_NE(reasons["unknown"].find("unicorn"), std::string::npos) << reasons["unknown"];
  EXPECT_NE(reasons["big"].find("500x366"), std::string::npos) << reasons["big"];
  EXPECT_NE(reasons["big"].find("input.max_tokens = 700"), std::string::npos) << reasons["big"];
  EXPECT_NE(log.find("failed: truncated:"), std::string::npos) << log;
  EXPECT_TRUE(fs::exists(root / "out" / "masks" / "good.png"));
  EXPECT_FALSE(fs::exists(root / "out" / "masks" / "truncated.png"));
  EXPECT_EQ(count_temporaries(root / "out"), 0);
}

TEST(GenerateTool, ConfigAndUsageErrorsExitWithTwo) {
  CLIPES_REQUIRE_SHARED();
  const auto out = testing::make_temp_dir("generate-usage");
  std::string log;
  EXPECT_EQ(testing::run_command(generate_command(out, "--set crf.iteration=3"), &log), 2);
  EXPECT_NE(log.find("unknown key crf.iteration"), std::string::npos) << log;
  EXPECT_EQ(testing::run_command(generate_command(out, "--set crf.pos_std=-1"), &log), 2);
  EXPECT_NE(log.find("crf.pos_std must be > 0, got -1"), std::string::npos) << log;
  EXPECT_EQ(testing::run_command(generate_command(out, "", "/nonexistent/ViT-B-16.pt"), &log), 2);
  EXPECT_NE(log.find("/nonexistent/ViT-B-16.pt"), std::string::npos) << log;
  EXPECT_EQ(testing::run_command(generate_command(out, "--shard 3/3"), &log), 2);
  EXPECT_EQ(testing::run_command(generate_command(out, "--no-crf --no-cams"), &log), 2);
  EXPECT_NE(log.find("outputs must ask for something"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(out / "run.json"));
}

TEST(GenerateTool, DryRunPrintsTheSetup) {
  CLIPES_REQUIRE_SHARED();
  std::string log;
  ASSERT_EQ(testing::run_command(generate_command("/nonexistent-out", "--dry-run"), &log), 0) << log;
  EXPECT_NE(log.find("\"a clean origami person with clothes,people,human.\" (13 of 77 tokens)"),
            std::string::npos) << log;
  EXPECT_NE(log.find("dataset: 20 images, 0 with problems"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists("/nonexistent-out"));
}

// The tiny fixtures of scripts/make_tiny_clip.py in every checkpoint format.
#define CLIPES_REQUIRE_TINY_CLIP_FORMATS()                                                     \
  do {                                                                                         \
    if (!fs::exists(testing::fixture_dir() / "tiny_clip.stamp")) {                             \
      GTEST_SKIP() << "SKIPPED: the tiny CLIP fixtures are missing from "                      \
                   << testing::fixture_dir().string();                                         \
    }                                                                                          \
  } while (0)

TEST(GenerateTool, DryRunSaysTheCheckpointFormatAndWhereEachSizeCameFrom) {
  CLIPES_REQUIRE_SHARED();
  CLIPES_REQUIRE_TINY_CLIP_FORMATS();
  const fs::path f = testing::fixture_dir();
  const std::pair<std::string, std::string> cases[] = {
      {(f / "tiny_clip.pt").string(), "  format: TorchScript archive\n"},
      {(f / "tiny_clip_traced_cuda.pt").string(), "  format: TorchScript archive\n"},
      {(f / "tiny_clip_state_dict.pt").string() + " --model-act quick_gelu --model-heads 2,2",
       "  format: state dict\n"},
      {(f / "tiny_clip_open_clip").string(), "  format: open_clip safetensors\n"},
      {(f / "tiny_clip_hf").string(),
       "  format: transformers CLIPModel (config.json + model.safetensors)\n"},
  };
  for (const auto& [model, format] : cases) {
    std::string log;
    ASSERT_EQ(testing::run_command(generate_command("/nonexistent-out", "--dry-run", model), &log),
              0)
        << log;
    EXPECT_NE(log.find(format), std::string::npos) << log;
    EXPECT_NE(log.find("  vision_heads: 2 ("), std::string::npos) << log;
    EXPECT_NE(log.find("  activation: quick_gelu ("), std::string::npos) << log;
    std::cout << "--model " << model << " --dry-run:\n"
              << log.substr(log.find("model: "), log.find("vocabulary: ") - log.find("model: "));
  }
  std::string log;
  ASSERT_EQ(testing::run_command(
                generate_command("/nonexistent-out", "--dry-run",
                                 (f / "tiny_clip_hf").string() + " --model-heads 2,2"),
                &log),
            0)
      << log;
  EXPECT_NE(log.find("  vision_heads: 2 (config.json: vision_config.num_attention_heads)\n"),
            std::string::npos)
      << log;
}

TEST(GenerateTool, CheckpointErrorsExitWithTwoNamingTheKey) {
  CLIPES_REQUIRE_SHARED();
  CLIPES_REQUIRE_TINY_CLIP_FORMATS();
  const fs::path f = testing::fixture_dir();
  const fs::path contradicting = testing::make_temp_dir("generate-hf-heads");
  fs::copy_file(f / "tiny_clip_hf/model.safetensors", contradicting / "model.safetensors");
  {
    std::ifstream in(f / "tiny_clip_hf/config.json");
    auto config = nlohmann::json::parse(in);
    config["text_config"]["num_attention_heads"] = 5;
    std::ofstream(contradicting / "config.json") << config.dump();
  }
  const std::pair<std::string, std::string> cases[] = {
      {contradicting.string(),
       "config.json: text_config.num_attention_heads gives transformer.resblocks.0.attn 5 heads, "
       "which do not divide its width 128"},
      {(f / "tiny_clip_hf").string() + " --model-act gelu",
       "config.json: text_config.hidden_act says activation quick_gelu, but model_act "
       "(--model-act) says gelu"},
      {(f / "tiny_clip_bad/hf_missing_key").string(),
       "missing vision_model.post_layernorm.weight (visual.ln_post.weight)"},
      {(f / "tiny_clip_bad/unknown_key").string(),
       "unexpected parameter visual.transformer.resblocks.1.ls_1.gamma"},
      {(f / "tiny_clip_resnet.pt").string(), "does not exist"},
      {(f / "tiny_resnet_clip.pt").string(), "this is a ResNet CLIP (it has visual.attnpool.*"},
      {(f / "tiny_clip_state_dict.pt").string(), "the checkpoint does not say how many heads"},
      {(f / "tiny_clip_hf").string() + " --model-config ViT-X-1",
       "model config \"ViT-X-1\" is neither an open_clip model name clipes knows"},
  };
  for (const auto& [model, expected] : cases) {
    std::string log;
    EXPECT_EQ(testing::run_command(generate_command("/nonexistent-out", "--dry-run", model), &log),
              2)
        << log;
    EXPECT_NE(log.find(expected), std::string::npos) << log;
  }
}

}  // namespace
}  // namespace clipes

// The pipeline end to end on voc-mini: clipes-generate (the tiny random CLIP) -> clipes-train-seg
// (a small DeepLab, a few iterations) -> predict -> clipes-eval, with two photos copied under an
// EXIF orientation tag (90° and 180°, the pixel array unchanged) and the same photos turned for
// real (PNG). Under each image policy every tool must decode the same pixels: no size error, the
// masks of a tagged copy equal those of the photo it shows (stored: the original; apply: the
// turned PNG), the predictions are the size of the decoded pixels.

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "clipes/data/image.h"
#include "clipes/io/files.h"
#include "clipes/io/png.h"
#include "support/test_support.h"

namespace clipes {
namespace {

namespace fs = std::filesystem;
using testing::shared_path;

constexpr const char* kA = "2007_000032";  // copied with tag 6 (turn 90° clockwise to view)
constexpr const char* kB = "2007_000033";  // copied with tag 3 (turn 180°)

constexpr const char* kTrainConfig = R"({
  "model": {"num_classes": 21, "depth": 50, "width": 4, "msc": false},
  "input": {"std": [57.4, 57.1, 58.4]},
  "data": {"scales": [0.5], "crop_size": 65, "workers": 2},
  "optim": {"lr": 0.001, "batch_size": 2, "iter_size": 1, "iterations": 3},
  "checkpoint_every": 1000,
  "log_every": 1
})";

fs::path voc() { return shared_path("data/voc-mini"); }

cv::Mat turned(const cv::Mat& m, int orientation) { return data::apply_exif_orientation(m, orientation); }

// Writes the dataset under `dir` (JPEGImages, labels.txt) and the ground truth of each policy
// (gt_stored, gt_apply). Returns the ids.
std::vector<std::string> make_dataset(const fs::path& dir) {
  fs::create_directories(dir / "JPEGImages");
  fs::create_directories(dir / "gt_stored");
  fs::create_directories(dir / "gt_apply");
  std::string labels;
  std::vector<std::string> ids;
  std::ifstream in(voc() / "labels.txt");
  std::map<std::string, std::string> label_of;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const std::string id = line.substr(0, line.find(' '));
    label_of[id] = line.substr(line.find(' '));
    fs::copy_file(voc() / "JPEGImages" / (id + ".jpg"), dir / "JPEGImages" / (id + ".jpg"));
    for (const char* gt : {"gt_stored", "gt_apply"}) {
      fs::copy_file(voc() / "SegmentationClass" / (id + ".png"), dir / gt / (id + ".png"));
    }
    labels += line + "\n";
    ids.push_back(id);
  }
  const io::Palette palette = io::voc_palette();
  for (const auto& [id, orientation] : {std::pair{std::string(kA), 6}, std::pair{std::string(kB), 3}}) {
    const std::string tag = orientation == 6 ? "90" : "180";
    const std::string copy = "exif" + tag + "_" + id, real = "turned" + tag + "_" + id;
    io::write_file_atomic(dir / "JPEGImages" / (copy + ".jpg"),
                          testing::jpeg_with_exif_orientation(
                              io::read_file(voc() / "JPEGImages" / (id + ".jpg")), orientation));
    // The photo as shown, losslessly: the decoded pixels turned (PNG, BGR for the encoder).
    cv::Mat rgb = data::load_image(voc() / "JPEGImages" / (id + ".jpg")).rgb;
    cv::Mat bgr;
    cv::cvtColor(turned(rgb, orientation), bgr, cv::COLOR_RGB2BGR);
    io::write_file_atomic(dir / "JPEGImages" / (real + ".png"), io::encode_png_u8(bgr));
    const cv::Mat gt = io::read_png_u8(voc() / "SegmentationClass" / (id + ".png"));
    io::write_png_indexed(dir / "gt_stored" / (copy + ".png"), gt, palette);
    io::write_png_indexed(dir / "gt_apply" / (copy + ".png"), turned(gt, orientation), palette);
    for (const char* g : {"gt_stored", "gt_apply"}) {
      io::write_png_indexed(dir / g / (real + ".png"), turned(gt, orientation), palette);
    }
    labels += copy + label_of[id] + "\n" + real + label_of[id] + "\n";
    ids.push_back(copy);
    ids.push_back(real);
  }
  io::write_file_atomic(dir / "labels.txt", labels);
  return ids;
}

std::string bin(const char* tool) { return (testing::bin_dir() / tool).string(); }

TEST(PipelineE2e, ExifTaggedPhotosStayAlignedThroughEveryTool) {
  const fs::path model = testing::fixture_dir() / "tiny_clip.pt";
  CLIPES_REQUIRE_FILE(model);
  CLIPES_REQUIRE_FILE(voc() / "labels.txt");
  CLIPES_REQUIRE_FILE(shared_path("vocab/bpe_simple_vocab_16e6.txt.gz"));
  const fs::path dir = testing::make_temp_dir("pipeline_e2e");
  const auto ids = make_dataset(dir / "data");
  io::write_file_atomic(dir / "train.json", kTrainConfig);
  const std::string a90 = std::string("exif90_") + kA, b180 = std::string("exif180_") + kB;

  for (const std::string policy : {"stored", "apply"}) {
    SCOPED_TRACE("input.exif_orientation " + policy);
    const fs::path run = dir / policy;
    std::string out;
    const std::string generate =
        bin("clipes-generate") + " --config " + (testing::source_dir() / "configs/voc.json").string() +
        " --data-root " + (dir / "data").string() + " --labels " + (dir / "data/labels.txt").string() +
        " --split " + (dir / "data/labels.txt").string() + " --model " + model.string() +
        " --vocab " + shared_path("vocab/bpe_simple_vocab_16e6.txt.gz").string() + " --out " +
        (run / "gen").string() + " --threads 2 --no-cams --set 'dataset.image_ext=.jpg|.png' " +
        "--set outputs.labels=true --set input.exif_orientation=" + policy;
    ASSERT_EQ(testing::run_command(generate, &out), 0) << out;
    const auto mask = [&](const std::string& id) {
      return io::read_file(run / "gen" / "masks" / (id + ".png"));
    };
    // The masks of a tagged copy are those of the pixels the policy shows.
    const std::string shown90 = policy == "stored" ? kA : std::string("turned90_") + kA;
    const std::string shown180 = policy == "stored" ? kB : std::string("turned180_") + kB;
    EXPECT_EQ(mask(a90), mask(shown90));
    EXPECT_EQ(mask(b180), mask(shown180));
    EXPECT_EQ(io::read_file(run / "gen" / "labels" / (a90 + ".png")),
              io::read_file(run / "gen" / "labels" / (shown90 + ".png")));
    const cv::Size size90 = io::read_png_u8(run / "gen" / "masks" / (a90 + ".png")).size();
    EXPECT_EQ(size90, policy == "stored" ? cv::Size(500, 281) : cv::Size(281, 500));

    const std::string train =
        bin("clipes-train-seg") + " train --config " + (dir / "train.json").string() +
        " --images " + (dir / "data/JPEGImages").string() + " --masks " +
        (run / "gen/masks").string() + " --confidence " + (run / "gen/confidence").string() +
        " --out " + (run / "train").string() + " --device cpu --threads 2";
    ASSERT_EQ(testing::run_command(train, &out), 0) << out;
    EXPECT_NE(out.find("following the generate run " + (run / "gen" / "run.json").string()),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("images decoded as \"" + policy + "\""), std::string::npos) << out;

    const std::string predict =
        bin("clipes-train-seg") + " predict --checkpoint " +
        (run / "train/model_final.pt").string() + " --images " +
        (dir / "data/JPEGImages").string() + " --out " + (run / "pred").string() +
        " --device cpu --threads 2";
    ASSERT_EQ(testing::run_command(predict, &out), 0) << out;
    for (const auto& id : ids) {
      EXPECT_EQ(io::read_png_u8(run / "pred" / (id + ".png")).size(),
                io::read_png_u8(run / "gen" / "masks" / (id + ".png")).size())
          << id;
    }

    const fs::path gt = dir / "data" / ("gt_" + policy);
    ASSERT_EQ(testing::run_command(bin("clipes-eval") + " --gt " + gt.string() + " --pred " +
                                       (run / "pred").string() + " --config " +
                                       (testing::source_dir() / "configs/voc.json").string(),
                                   &out),
              0)
        << out;
    EXPECT_NE(out.find("mIoU gt "), std::string::npos) << out;
    ASSERT_EQ(testing::run_command(bin("clipes-eval") + " --gt " + gt.string() + " --run " +
                                       (run / "gen").string() + " --miou gt",
                                   &out),
              0)
        << out;
    EXPECT_NE(out.find("== before mu: labels/"), std::string::npos) << out;
    EXPECT_NE(out.find("== after mu = 0.95: masks/"), std::string::npos) << out;
    EXPECT_NE(out.find("headline (gt): mean over"), std::string::npos) << out;
    EXPECT_NE(out.find("mIoU gt-or-pred"), std::string::npos) << out;
    EXPECT_NE(out.find("24 images"), std::string::npos) << out;
  }
}

}  // namespace
}  // namespace clipes

#include "clipes/seg/seg_data.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <set>

#include "clipes/core/error.h"
#include "clipes/io/files.h"
#include "clipes/io/png.h"
#include "clipes/seg/loss.h"
#include "seg_test_data.h"
#include "support/test_support.h"

namespace clipes::seg {
namespace {

namespace fs = std::filesystem;

SegDataPaths paths_of(const fs::path& dir, bool confidence = false) {
  SegDataPaths p;
  p.images = dir / "images";
  p.masks = dir / "masks";
  if (confidence) p.confidence = dir / "confidence";
  return p;
}

using clipes::testing::error_of;

TEST(SegData, ListsMaskIdsAndFindsTheirImages) {
  const fs::path dir = clipes::testing::make_temp_dir("seg_data_list");
  testing::write_synthetic_dataset(dir, 3, 20, 24, 1);
  SegDataset ds(paths_of(dir), 4, 0.95f);
  EXPECT_EQ(ds.ids(), (std::vector<std::string>{"img0", "img1", "img2"}));
  EXPECT_EQ(ds.image_file(1), dir / "images" / "img1.png");
  EXPECT_EQ(ds.mask_file(2), dir / "masks" / "img2.png");

  io::write_file_atomic(dir / "split.txt", "img2 3 5\n\nimg0\n");
  SegDataPaths p = paths_of(dir);
  p.split = dir / "split.txt";
  EXPECT_EQ(SegDataset(p, 4, 0.95f).ids(), (std::vector<std::string>{"img2", "img0"}));

  fs::remove(dir / "images" / "img1.png");
  fs::remove(dir / "masks" / "img2.png");
  io::write_file_atomic(dir / "split.txt", "img0\nimg1\nimg2\n");
  const SegDataset missing(p, 4, 0.95f);
  EXPECT_EQ(missing.problems(),
            (std::vector<std::string>{
                (dir / "images" / "img1").string() + ": missing (no img1.jpg, .jpeg or .png for id img1)",
                (dir / "masks" / "img2.png").string() + ": missing (the mask of id img2)"}));
  EXPECT_TRUE(missing.complete(0));
  EXPECT_FALSE(missing.complete(1));
  EXPECT_NE(error_of([&] { SegDataset(paths_of(dir, true), 4, 0.95f); }).find("confidence folder"),
            std::string::npos);
}

TEST(SegData, MaskImageSizeMismatchIsAnError) {
  const fs::path dir = clipes::testing::make_temp_dir("seg_data_size");
  testing::write_synthetic_dataset(dir, 1, 20, 24, 1);
  io::write_png_indexed(dir / "masks" / "img0.png", cv::Mat::zeros(20, 23, CV_8UC1),
                        io::voc_palette());
  SegDataset ds(paths_of(dir), 4, 0.95f);
  const std::string e = error_of([&] { read_labelled_image(ds, 0); });
  EXPECT_NE(e.find("img0.png is 23x20 but image"), std::string::npos) << e;
  EXPECT_NE(e.find("is 24x20"), std::string::npos) << e;
}

TEST(SegData, MaskValueBeyondTheClassesIsAnError) {
  const fs::path dir = clipes::testing::make_temp_dir("seg_data_value");
  testing::write_synthetic_dataset(dir, 1, 20, 24, 1);
  cv::Mat mask = io::read_png_u8(dir / "masks" / "img0.png");
  mask.at<std::uint8_t>(7, 5) = 21;
  mask.at<std::uint8_t>(0, 0) = 255;  // ignore is fine
  io::write_png_indexed(dir / "masks" / "img0.png", mask, io::voc_palette());
  SegDataset ds(paths_of(dir), 4, 0.95f);
  const std::string e = error_of([&] { read_labelled_image(ds, 0); });
  EXPECT_NE(e.find("value 21 at (x=5, y=7) is beyond the 4 classes (expected 0..3 or 255)"),
            std::string::npos)
      << e;
  SegDataset wide(paths_of(dir), 22, 0.95f);
  EXPECT_EQ(read_labelled_image(wide, 0).label.at<std::uint8_t>(7, 5), 21);
}

TEST(SegData, ConfidenceBelowMuBecomesIgnore) {
  const fs::path dir = clipes::testing::make_temp_dir("seg_data_conf");
  testing::write_synthetic_dataset(dir, 1, 10, 21, 1, /*confidence=*/true);
  // The confidence ramps from 0.9 (x = 0) to 1.0 (x = 20): x >= 10 is >= 0.95 (x = 10 holds
  // round(0.95 * 65535) exactly).
  SegDataset ds(paths_of(dir, true), 4, 0.95f);
  const LabelledImage s = read_labelled_image(ds, 0);
  const cv::Mat original = io::read_png_u8(dir / "masks" / "img0.png");
  const cv::Mat conf = io::read_png_u16(dir / "confidence" / "img0.png");
  int ignored = 0;
  for (int y = 0; y < 10; ++y) {
    for (int x = 0; x < 21; ++x) {
      // Compared on the stored 16-bit scale: round(0.95 * 65535) = 62258 is confident.
      const bool confident = conf.at<std::uint16_t>(y, x) >= 62258;
      EXPECT_EQ(s.label.at<std::uint8_t>(y, x), confident ? original.at<std::uint8_t>(y, x) : 255)
          << x << "," << y;
      ignored += confident ? 0 : 1;
    }
  }
  EXPECT_EQ(ignored, 10 * 10);
  // Without confidence maps the mask is used as it is.
  SegDataset plain(paths_of(dir), 4, 0.95f);
  EXPECT_EQ(cv::countNonZero(read_labelled_image(plain, 0).label != original), 0);
}

TEST(SegData, ImageToInputSubtractsTheMeanInTheChosenOrder) {
  cv::Mat bgr(1, 2, CV_8UC3);
  bgr.at<cv::Vec3b>(0, 0) = cv::Vec3b(10, 20, 30);
  bgr.at<cv::Vec3b>(0, 1) = cv::Vec3b(200, 100, 0);
  InputConfig caffe;  // BGR minus (104.008, 116.669, 122.675)
  const at::Tensor x = image_to_input(bgr, caffe);
  EXPECT_EQ(x.sizes(), (std::vector<std::int64_t>{3, 1, 2}));
  EXPECT_FLOAT_EQ(x[0][0][0].item<float>(), 10 - 104.008f);
  EXPECT_FLOAT_EQ(x[2][0][1].item<float>(), 0 - 122.675f);
  InputConfig rgb;
  rgb.bgr = false;
  rgb.mean = {1, 2, 3};
  rgb.std = {2, 4, 8};
  const at::Tensor y = image_to_input(bgr, rgb);
  EXPECT_FLOAT_EQ(y[0][0][0].item<float>(), (30 - 1) / 2.0f);   // R
  EXPECT_FLOAT_EQ(y[2][0][1].item<float>(), (200 - 3) / 8.0f);  // B
}

TEST(SegData, SmallImagesArePaddedWithTheMeanAndIgnore) {
  LabelledImage s;
  s.image = cv::Mat(5, 7, CV_8UC3, cv::Scalar(104, 117, 123));
  s.label = cv::Mat(5, 7, CV_8UC1, cv::Scalar(2));
  AugmentConfig a;
  a.scales = {1.0};
  a.crop_size = 9;
  a.flip = true;
  InputConfig in;
  in.mean = {104, 117, 123};
  std::set<int> label_columns;
  for (std::uint64_t seed = 0; seed < 16; ++seed) {
    const TrainingSample t = augment_sample(s, a, in, seed);
    ASSERT_EQ(t.image.sizes(), (std::vector<std::int64_t>{3, 9, 9}));
    ASSERT_EQ(t.label.sizes(), (std::vector<std::int64_t>{9, 9}));
    EXPECT_EQ(t.image.abs().max().item<float>(), 0.0f);  // image and padding are the mean
    // Rows 5.. are padding (bottom); the label block is 7 wide at the left or, flipped, right.
    EXPECT_EQ((t.label.slice(0, 5) == 255).all().item<bool>(), true);
    EXPECT_EQ((t.label.slice(0, 0, 5) == 2).sum().item<std::int64_t>(), 35);
    label_columns.insert(t.label[0][0].item<int>() == 2 ? 0 : 2);
  }
  EXPECT_EQ(label_columns.size(), 2u);  // both flipped and not flipped happen
}

TEST(SegData, AugmentationDependsOnlyOnTheSeedAndKeepsImageAndLabelAligned) {
  const testing::SyntheticImage img = testing::make_synthetic_image(40, 50, 3);
  LabelledImage s{img.bgr, img.label};
  AugmentConfig a;
  a.scales = {0.5, 1.0, 1.5};
  a.crop_size = 24;
  InputConfig in;
  const TrainingSample t1 = augment_sample(s, a, in, 77);
  const TrainingSample t2 = augment_sample(s, a, in, 77);
  EXPECT_TRUE(at::equal(t1.image, t2.image));
  EXPECT_TRUE(at::equal(t1.label, t2.label));
  int differing = 0;
  for (std::uint64_t seed = 0; seed < 8; ++seed) {
    const TrainingSample t = augment_sample(s, a, in, seed);
    differing += at::equal(t.label, t1.label) ? 0 : 1;
    // Every sample: where the label says "disc" (1) the image is the disc's red.
    const at::Tensor red = t.image[2] + 122.675f;  // R channel back to 0..255
    const at::Tensor on_disc = (t.label == 1);
    if (on_disc.any().item<bool>()) {
      EXPECT_GT(red.masked_select(on_disc).mean().item<float>(), 150.0f);
    }
  }
  EXPECT_GE(differing, 6);
}

TEST(SegData, SamplerEpochsArePermutationsAndStateRestores) {
  BatchSampler s(7, 42);
  std::vector<std::int64_t> seen;
  for (int i = 0; i < 7; ++i) seen.push_back(s.next(1)[0].index);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6}));
  s.next(3);
  const std::string state = s.state();
  const auto a = s.next(5);  // crosses the epoch boundary
  BatchSampler r(7, 1);
  r.restore(state);
  const auto b = r.next(5);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(a[i].index, b[i].index);
    EXPECT_EQ(a[i].seed, b[i].seed);
  }
  BatchSampler other(8, 42);
  EXPECT_NE(error_of([&] { other.restore(state); }).find("saved for 7 images, the dataset has 8"),
            std::string::npos);
  EXPECT_NE(error_of([&] { other.restore("junk"); }).find("not a clipes sampler state"),
            std::string::npos);
}

TEST(SegData, LoaderBatchesDoNotDependOnWorkersAndResumeFromItsState) {
  const fs::path dir = clipes::testing::make_temp_dir("seg_data_loader");
  testing::write_synthetic_dataset(dir, 5, 30, 34, 2);
  SegDataset ds(paths_of(dir), 4, 0.95f);
  AugmentConfig a;
  a.crop_size = 25;
  InputConfig in;
  std::vector<Batch> serial;
  {
    a.workers = 0;
    BatchLoader loader(ds, a, in, BatchSampler(ds.size(), 9), 3);
    for (int i = 0; i < 5; ++i) serial.push_back(loader.next());
  }
  std::string state_after_two;
  {
    a.workers = 3;
    a.prefetch = 3;
    BatchLoader loader(ds, a, in, BatchSampler(ds.size(), 9), 3);
    for (int i = 0; i < 5; ++i) {
      if (i == 2) state_after_two = loader.sampler_state();
      const Batch b = loader.next();
      EXPECT_EQ(b.indices, serial[i].indices) << i;
      EXPECT_TRUE(at::equal(b.images, serial[i].images)) << i;
      EXPECT_TRUE(at::equal(b.labels, serial[i].labels)) << i;
    }
  }
  BatchSampler restored(ds.size(), 0);
  restored.restore(state_after_two);
  a.workers = 2;
  BatchLoader loader(ds, a, in, std::move(restored), 3);
  for (int i = 2; i < 5; ++i) {
    const Batch b = loader.next();
    EXPECT_TRUE(at::equal(b.images, serial[i].images)) << i;
    EXPECT_TRUE(at::equal(b.labels, serial[i].labels)) << i;
  }
}

TEST(SegData, AWorkersErrorReachesTheCaller) {
  const fs::path dir = clipes::testing::make_temp_dir("seg_data_worker_error");
  testing::write_synthetic_dataset(dir, 2, 20, 20, 3);
  cv::Mat mask = io::read_png_u8(dir / "masks" / "img1.png");
  mask.at<std::uint8_t>(3, 4) = 9;
  io::write_png_indexed(dir / "masks" / "img1.png", mask, io::voc_palette());
  SegDataset ds(paths_of(dir), 4, 0.95f);
  AugmentConfig a;
  a.crop_size = 16;
  a.workers = 2;
  BatchLoader loader(ds, a, InputConfig{}, BatchSampler(ds.size(), 1), 2);
  EXPECT_NE(error_of([&] { loader.next(); }).find("value 9 at (x=4, y=3) is beyond the 4 classes"),
            std::string::npos);
}

TEST(SegData, ListImagesForPrediction) {
  const fs::path dir = clipes::testing::make_temp_dir("seg_data_images");
  testing::write_synthetic_dataset(dir, 3, 8, 8, 1);
  io::write_file_atomic(dir / "images" / "notes.txt", "x");
  const auto all = list_images(dir / "images", {});
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].first, "img0");
  io::write_file_atomic(dir / "val.txt", "img2\nimg9\n");
  EXPECT_NE(
      error_of([&] { list_images(dir / "images", dir / "val.txt"); }).find("image img9 (listed in"),
      std::string::npos);
}

}  // namespace
}  // namespace clipes::seg

namespace clipes::seg {
namespace {

TEST(SegData, CheckListsEveryBadTripleAtOnce) {
  const fs::path dir = clipes::testing::make_temp_dir("seg_data_check");
  testing::write_synthetic_dataset(dir, 6, 20, 24, 5, /*confidence=*/true);
  SegDataPaths p = paths_of(dir);
  p.confidence = dir / "confidence";
  EXPECT_TRUE(check_training_data(SegDataset(p, 4, 0.95f), 2).empty());
  cv::Mat mask = io::read_png_u8(dir / "masks" / "img1.png");
  mask.at<std::uint8_t>(3, 4) = 9;
  io::write_png_indexed(dir / "masks" / "img1.png", mask, io::voc_palette());
  io::write_png_indexed(dir / "masks" / "img2.png", cv::Mat::zeros(19, 24, CV_8UC1),
                        io::voc_palette());
  io::write_file_atomic(dir / "images" / "img3.png", "broken");
  fs::remove(dir / "confidence" / "img4.png");
  io::write_png_u16(dir / "confidence" / "img5.png", cv::Mat::zeros(20, 23, CV_16UC1));
  const auto problems = check_training_data(SegDataset(p, 4, 0.95f), 3);
  ASSERT_EQ(problems.size(), 5u);
  EXPECT_NE(problems[0].find("img4.png: missing (the confidence map of id img4)"), std::string::npos)
      << problems[0];
  EXPECT_NE(problems[1].find("img1.png: value 9 at (x=4, y=3) is beyond the 4 classes"),
            std::string::npos)
      << problems[1];
  EXPECT_NE(problems[2].find("img2.png is 24x19 but image"), std::string::npos) << problems[2];
  EXPECT_NE(problems[3].find("img3.png: not a JPEG or PNG image"), std::string::npos) << problems[3];
  EXPECT_NE(problems[4].find("confidence map " + (dir / "confidence" / "img5.png").string() +
                             " is 23x20"),
            std::string::npos)
      << problems[4];
  const std::string e = error_of([&] { throw_if_problems(problems, "training data", 2); });
  EXPECT_NE(e.find("training data: 5 problems\n  "), std::string::npos) << e;
  EXPECT_NE(e.find("\n  ... and 3 more"), std::string::npos) << e;
}

TEST(SegData, TrainingFollowsTheGenerateRunOfItsMasks) {
  const fs::path dir = clipes::testing::make_temp_dir("seg_data_follow");
  fs::create_directories(dir / "masks");
  TrainConfig c = testing::tiny_train_config();  // 4 classes, μ 0.95
  EXPECT_NE(follow_mask_run(c, "tiny.json", dir / "masks").find("is used as it is"),
            std::string::npos);
  const auto record = [&](double mu, const char* policy) {
    io::write_file_atomic(
        dir / "run.json",
        fmt::format(R"({{"tool": "clipes-generate", "config": {{"classes": [{{"name": "a"}},
            {{"name": "b"}}, {{"name": "c"}}], "mask": {{"confidence_threshold": {}}},
            "input": {{"exif_orientation": "{}"}}}}}})",
                    mu, policy));
  };
  record(0.95, "apply");
  TrainConfig followed = c;
  EXPECT_NE(follow_mask_run(followed, "tiny.json", dir / "masks").find("following the generate run"),
            std::string::npos);
  EXPECT_EQ(followed.input.exif_orientation, "apply");
  EXPECT_EQ(exif_policy(followed.input), data::ExifOrientation::kApply);

  TrainConfig low = c;
  low.data.confidence_threshold = 0.9f;
  std::string e = error_of([&] { follow_mask_run(low, "tiny.json", dir / "masks"); });
  EXPECT_NE(e.find("data.confidence_threshold (μ) is 0.9 in tiny.json but the masks' run " +
                   (dir / "run.json").string() + " used μ = 0.95"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("μ can only tighten"), std::string::npos) << e;
  TrainConfig higher = c;
  higher.data.confidence_threshold = 0.97f;  // tightening is fine
  EXPECT_NO_THROW(follow_mask_run(higher, "tiny.json", dir / "masks"));

  TrainConfig classes = c;
  classes.model.num_classes = 21;
  e = error_of([&] { follow_mask_run(classes, "tiny.json", dir / "masks"); });
  EXPECT_NE(e.find("model.num_classes is 21 in tiny.json but the masks' run " +
                   (dir / "run.json").string() + " has 3 classes + background = 4"),
            std::string::npos)
      << e;
  TrainConfig stored = c;
  stored.input.exif_orientation = "stored";
  e = error_of([&] { follow_mask_run(stored, "tiny.json", dir / "masks"); });
  EXPECT_NE(e.find("input.exif_orientation is \"stored\" in tiny.json but the masks' run " +
                   (dir / "run.json").string() + " decoded its images with \"apply\""),
            std::string::npos)
      << e;
}

}  // namespace
}  // namespace clipes::seg

#include "clipes/cam/caa.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "clipes/io/npy_tensor.h"
#include "support/test_support.h"

namespace clipes::cam {
namespace {

const char* const kIdsWithAttention[] = {"2007_000032", "2008_003333", "2009_000177", "2010_005830",
                                         "2011_002770"};

std::filesystem::path reference_dir(const std::string& id) {
  return testing::shared_path("reference/small12-voc-mini") / id;
}

std::vector<std::string> all_reference_ids() {
  std::vector<std::string> ids;
  const auto root = testing::shared_path("reference/small12-voc-mini");
  if (!std::filesystem::exists(root)) return ids;
  for (const auto& entry : std::filesystem::directory_iterator(root)) {
    if (entry.is_directory()) ids.push_back(entry.path().filename().string());
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

TEST(CamBoxes, ThresholdContoursAndEdgeQuirk) {
  // u8 = floor(cam·255); with λ = 0.4 the threshold is floor(0.4·255) = 102, strict ">".
  auto cam = at::zeros({6, 8});
  cam.slice(0, 1, 3).slice(1, 1, 4).fill_(1.0f);  // rows 1-2, cols 1-3
  cam[4][7] = 0.41f;                               // u8 104 > 102, touches the right edge
  cam[5][0] = 0.40f;                               // u8 102: not above the threshold
  const auto boxes = cam_boxes(cam, 0.4f);
  ASSERT_EQ(boxes.size(), 2u);
  std::vector<Box> sorted = boxes;
  std::sort(sorted.begin(), sorted.end(), [](const Box& a, const Box& b) { return a.x0 < b.x0; });
  EXPECT_EQ(sorted[0], (Box{1, 1, 4, 3}));
  // The box of the edge pixel is x 7..8, clipped to w−1 = 7: it is empty (the quirk).
  EXPECT_EQ(sorted[1], (Box{7, 4, 7, 5}));
  const auto masks = box_masks(cam.unsqueeze(0), 0.4f);
  EXPECT_EQ(masks.sum().item<float>(), 6.0f);
  EXPECT_EQ(masks[0][4][7].item<float>(), 0.0f);
}

TEST(CamBoxes, EmptyCamHasNoBox) {
  EXPECT_TRUE(cam_boxes(at::zeros({4, 4}), 0.4f).empty());
  EXPECT_EQ(box_masks(at::zeros({2, 4, 4}), 0.4f).sum().item<float>(), 0.0f);
}

TEST(SinkhornAffinity, IsSymmetricAndNearlyDoublyStochastic) {
  at::manual_seed(3);
  const auto attention = at::rand({50, 50}).add_(0.01);
  const auto d = sinkhorn_affinity(attention, CaaConfig{});
  EXPECT_LT(max_abs_diff(d, d.t()), 1e-7);
  EXPECT_LT(max_abs_diff(d.sum(1), at::ones({50})), 2e-3);
  // One round by hand: columns then rows, then symmetrise.
  auto t = attention / attention.sum(0, true);
  t = t / t.sum(1, true);
  EXPECT_LT(max_abs_diff(sinkhorn_affinity(attention, CaaConfig{0.4f, 1, 2}), (t + t.t()) / 2), 1e-7);
}

TEST(RefineWithAffinity, EqualsExplicitMatrixPower) {
  at::manual_seed(5);
  const auto d = sinkhorn_affinity(at::rand({12, 12}), CaaConfig{});
  const auto cams = at::rand({3, 3, 4});
  const auto masks = (at::rand({3, 3, 4}) > 0.5).to(at::kFloat);
  for (int power : {1, 2, 3}) {
    CaaConfig cfg;
    cfg.power = power;
    auto dt = d.clone();
    for (int i = 1; i < power; ++i) dt = at::mm(dt, d);
    const auto refined = refine_with_affinity(cams, d, masks, cfg);
    for (int k = 0; k < 3; ++k) {
      const auto expected = at::mm(dt * masks[k].reshape({1, 12}), cams[k].reshape({12, 1}));
      EXPECT_LT(max_abs_diff(refined[k].reshape({12, 1}), expected), 1e-6) << "power " << power;
    }
  }
}

TEST(MinmaxNormalize, PerMapRangeAndReferenceDenominator) {
  const auto maps = at::tensor({2.0f, 4.0f, 6.0f, -1.0f, -1.0f, 1.0f}).reshape({2, 3});
  const auto out = minmax_normalize(maps);
  const float d0 = static_cast<float>(4.0 + 1e-7);
  EXPECT_EQ(out[0][1].item<float>(), 2.0f / d0);
  EXPECT_EQ(out[0][0].item<float>(), 0.0f);
  EXPECT_EQ(out[1][2].item<float>(), 2.0f / static_cast<float>(2.0 + 1e-7));
  EXPECT_EQ(minmax_normalize(at::zeros({1, 4})).abs().sum().item<float>(), 0.0f);
}

// Every voc-mini image: the box masks from the reference's GradCAM equal its aff_mask, and the
// boxes equal boxes.json (the reference writes [0,0,0,0] when there is no contour).
TEST(CaaParity, BoxMasksAndBoxesMatchReferenceOnAllImages) {
  const auto ids = all_reference_ids();
  if (ids.empty()) GTEST_SKIP() << "SKIPPED: ../shared/reference is absent";
  for (const auto& id : ids) {
    const auto cams = io::read_npy_tensor(reference_dir(id) / "grayscale_cam.npy");
    const auto expected = io::read_npy_tensor(reference_dir(id) / "aff_mask.npy");
    const auto masks = box_masks(cams, 0.4f);
    EXPECT_TRUE(at::equal(masks.reshape({cams.size(0), -1}), expected)) << id;
    std::ifstream in(reference_dir(id) / "boxes.json");
    const auto boxes_json = nlohmann::json::parse(in);
    for (int64_t k = 0; k < cams.size(0); ++k) {
      std::vector<Box> expected_boxes;
      for (const auto& b : boxes_json[k]["boxes"]) {
        const Box box{b[0].get<int>(), b[1].get<int>(), b[2].get<int>(), b[3].get<int>()};
        if (!(box == Box{})) expected_boxes.push_back(box);
      }
      EXPECT_EQ(cam_boxes(cams[k], 0.4f), expected_boxes) << id << " class " << k;
    }
  }
}

// Bilinear resize (OpenCV INTER_LINEAR, as the reference) of [K, h, w] maps to like's [K, H, W].
at::Tensor upsample(const at::Tensor& maps, const at::Tensor& like) {
  auto out = at::empty(like.sizes(), at::kFloat);
  const auto contiguous = maps.contiguous();
  for (int64_t k = 0; k < maps.size(0); ++k) {
    auto plane = contiguous[k];
    cv::Mat small(static_cast<int>(maps.size(1)), static_cast<int>(maps.size(2)), CV_32FC1,
                  plane.data_ptr<float>());
    cv::Mat big(static_cast<int>(like.size(1)), static_cast<int>(like.size(2)), CV_32FC1,
                out[k].data_ptr<float>());
    cv::resize(small, big, big.size(), 0, 0, cv::INTER_LINEAR);
  }
  return out;
}

// The five images with the attention dump: the full refinement equals cam_refined, and the
// normalised, resized maps equal attn_highres.
TEST(CaaParity, RefinedCamsMatchReference) {
  const auto first = reference_dir(kIdsWithAttention[0]) / "attn_avg.npy";
  CLIPES_REQUIRE_FILE(first);
  at::set_num_threads(2);
  for (const char* id : kIdsWithAttention) {
    const auto attention = io::read_npy_tensor(reference_dir(id) / "attn_avg.npy");
    const auto cams = io::read_npy_tensor(reference_dir(id) / "grayscale_cam.npy");
    const auto expected = io::read_npy_tensor(reference_dir(id) / "cam_refined.npy");
    const CaaConfig cfg;
    const auto refined =
        refine_with_affinity(cams, sinkhorn_affinity(attention, cfg), box_masks(cams, 0.4f), cfg);
    EXPECT_LT(max_abs_diff(refined, expected), 1e-6) << id;
    // The normalisation divides by the map's range (often ~0.1), so the float32 rounding of
    // D·(D·v) against the reference's (D·D)·v grows to a few 1e-5 here: the bound is 1e-4.
    const auto highres = io::read_npy_tensor(reference_dir(id) / "attn_highres.npy");
    EXPECT_LT(max_abs_diff(upsample(minmax_normalize(refined), highres), highres), 1e-4) << id;
    // From the reference's own refined maps, normalisation + bilinear resize agree to 1e-6.
    EXPECT_LT(max_abs_diff(upsample(minmax_normalize(expected), highres), highres), 1e-6) << id;
  }
}

}  // namespace
}  // namespace clipes::cam

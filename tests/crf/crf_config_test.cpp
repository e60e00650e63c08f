#include "clipes/crf/crf_config.h"

#include <gtest/gtest.h>

#include <string>

#include "clipes/core/error.h"
#include "support/test_support.h"

namespace clipes::crf {
namespace {

using clipes::testing::error_of;

TEST(CrfConfig, DefaultsAreValidAndThoseOfTheSpec) {
  const PseudoMaskConfig config;
  EXPECT_NO_THROW(validate(config, "defaults"));
  EXPECT_EQ(config.crf.iterations, 10);
  EXPECT_EQ(config.crf.pos_std, 1.0f);
  EXPECT_EQ(config.crf.pos_weight, 3.0f);
  EXPECT_EQ(config.crf.bilateral_std, 67.0f);
  EXPECT_EQ(config.crf.bilateral_rgb_std, 3.0f);
  EXPECT_EQ(config.crf.bilateral_weight, 4.0f);
  EXPECT_EQ(config.crf.image, CrfImageMode::kRgb);
  EXPECT_EQ(config.confidence_threshold, 0.95f);
}

TEST(CrfConfig, ValidateNamesTheFieldAndTheValue) {
  CrfConfig c;
  c.bilateral_rgb_std = -3.0f;
  EXPECT_EQ(error_of([&] { validate(c, "voc.json"); }),
            "voc.json: crf.bilateral_rgb_std must be > 0, got -3");
  c = CrfConfig{};
  c.pos_weight = -1.0f;
  EXPECT_EQ(error_of([&] { validate(c, "voc.json", "generate.crf"); }),
            "voc.json: generate.crf.pos_weight must be >= 0, got -1");
  c = CrfConfig{};
  c.threads = -2;
  EXPECT_EQ(error_of([&] { validate(c, "cli"); }),
            "cli: crf.threads must be >= 0 (0: all cores), got -2");
  PseudoMaskConfig p;
  p.crf.iterations = -1;
  EXPECT_EQ(error_of([&] { validate(p, "voc.json"); }),
            "voc.json: pseudo_mask.crf.iterations must be >= 0, got -1");
}

TEST(CrfConfig, ImageModeNamesRoundTrip) {
  EXPECT_STREQ(to_string(CrfImageMode::kRgb), "rgb");
  EXPECT_STREQ(to_string(CrfImageMode::kReference), "reference");
  EXPECT_EQ(parse_crf_image_mode("rgb", "crf.image"), CrfImageMode::kRgb);
  EXPECT_EQ(parse_crf_image_mode("reference", "crf.image"), CrfImageMode::kReference);
  EXPECT_EQ(error_of([] { parse_crf_image_mode("bgr", "voc.json: crf.image"); }),
            "voc.json: crf.image must be \"rgb\" or \"reference\", got \"bgr\"");
}

}  // namespace
}  // namespace clipes::crf

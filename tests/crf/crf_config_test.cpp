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
  EXPECT_NO_THROW(validate(config, config::Validator("defaults")));
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
  EXPECT_EQ(error_of([&] { validate(c, config::Validator("voc.json").nested("crf")); }),
            "voc.json: crf.bilateral_rgb_std must be > 0, got -3");
  c = CrfConfig{};
  c.pos_weight = -1.0f;
  EXPECT_EQ(error_of([&] { validate(c, config::Validator("voc.json").nested("generate.crf")); }),
            "voc.json: generate.crf.pos_weight must be >= 0, got -1");
  c = CrfConfig{};
  c.threads = -2;
  EXPECT_EQ(error_of([&] { validate(c, config::Validator("cli").nested("crf")); }),
            "cli: crf.threads must be >= 0 (0: all cores), got -2");
  PseudoMaskConfig p;
  p.crf.iterations = -1;
  EXPECT_EQ(error_of([&] { validate(p, config::Validator("voc.json").nested("pseudo_mask")); }),
            "voc.json: pseudo_mask.crf.iterations must be >= 0, got -1");
}

TEST(CrfConfig, ImageModeNamesRoundTrip) {
  EXPECT_EQ(to_string(CrfImageMode::kRgb), "rgb");
  EXPECT_EQ(to_string(CrfImageMode::kReference), "reference");
  EXPECT_EQ(config::parse_enum<CrfImageMode>("rgb"), CrfImageMode::kRgb);
  EXPECT_EQ(config::parse_enum<CrfImageMode>("reference"), CrfImageMode::kReference);
  EXPECT_FALSE(config::parse_enum<CrfImageMode>("bgr").has_value());
  EXPECT_EQ(config::enum_choices<CrfImageMode>(), "\"rgb\" or \"reference\"");
}

}  // namespace
}  // namespace clipes::crf

#include "clipes/pipeline/generate_config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "clipes/core/error.h"
#include "clipes/core/json_reader.h"
#include "support/test_support.h"

namespace clipes::pipeline {
namespace {

namespace fs = std::filesystem;

fs::path config_file(const std::string& name) { return testing::source_dir() / "configs" / name; }

using clipes::testing::error_of;

// A minimal valid document.
nlohmann::json minimal() {
  return nlohmann::json::parse(R"({"classes": [{"name": "cat"}, {"name": "traffic light",
    "prompt": "traffic light,signal"}], "background": ["sky", "road"]})");
}

std::string read_error(const nlohmann::json& j) {
  return error_of([&] { read_generate_config(j, "t.json"); });
}

std::string validate_error(const std::string& assignment) {
  auto j = minimal();
  config::apply_override(j, assignment);
  return error_of([&] { read_generate_config(j, "t.json").validate("t.json"); });
}

// ---- shipped configs ------------------------------------------------------------------------

TEST(ShippedConfigs, VocHoldsTheReferenceValues) {
  const auto c = load_generate_config(config_file("voc.json"));
  EXPECT_EQ(c.name, "voc");
  EXPECT_EQ(c.prompt_template, "a clean origami {}.");
  ASSERT_EQ(c.classes.size(), 20u);
  EXPECT_EQ(c.classes[2].name, "bird");
  EXPECT_EQ(c.classes[2].prompt, "bird avian");
  EXPECT_EQ(c.classes[14].prompt, "person with clothes,people,human");
  EXPECT_EQ(c.classes[19].prompt, "tvmonitor screen");
  EXPECT_EQ(c.background.size(), 25u);
  EXPECT_EQ(c.dataset.layout, data::DatasetLayout::kVoc);
  EXPECT_EQ(c.dataset.split, "ImageSets/Segmentation/train.txt");
  EXPECT_EQ(c.cam.attention_blocks, 8);
  EXPECT_FLOAT_EQ(c.caa.box_threshold, 0.4f);
  EXPECT_EQ(c.caa.sinkhorn_rounds, 3);
  EXPECT_EQ(c.caa.power, 2);
  EXPECT_TRUE(c.outputs.masks);
  EXPECT_EQ(c.crf.iterations, 10);
  EXPECT_FLOAT_EQ(c.crf.pos_std, 1.0f);
  EXPECT_FLOAT_EQ(c.crf.pos_weight, 3.0f);
  EXPECT_FLOAT_EQ(c.crf.bilateral_std, 67.0f);
  EXPECT_FLOAT_EQ(c.crf.bilateral_rgb_std, 3.0f);
  EXPECT_FLOAT_EQ(c.crf.bilateral_weight, 4.0f);
  EXPECT_EQ(c.crf.image, crf::CrfImageMode::kRgb);
  EXPECT_FLOAT_EQ(c.mask.confidence_threshold, 0.95f);
  EXPECT_TRUE(c.outputs.cams);
  EXPECT_EQ(c.outputs.cam_dtype, CamDtype::kFloat16);
}

TEST(ShippedConfigs, CocoHoldsTheReferenceValuesAndStandardNames) {
  const auto c = load_generate_config(config_file("coco.json"));
  EXPECT_EQ(c.classes.size(), 80u);
  EXPECT_EQ(c.background.size(), 23u);
  EXPECT_FLOAT_EQ(c.caa.box_threshold, 0.7f);
  EXPECT_FLOAT_EQ(c.mask.confidence_threshold, 0.95f);
  EXPECT_EQ(c.dataset.layout, data::DatasetLayout::kCoco);
  // VOC's background words minus keyboard and sign, same order.
  const auto voc = load_generate_config(config_file("voc.json"));
  std::vector<std::string> expected;
  for (const auto& w : voc.background) {
    if (w != "keyboard" && w != "sign") expected.push_back(w);
  }
  EXPECT_EQ(c.background, expected);
  const auto classes_txt = testing::shared_path("data/coco-mini/classes.txt");
  CLIPES_REQUIRE_FILE(classes_txt);
  std::ifstream in(classes_txt);
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) names.push_back(line);
  EXPECT_EQ(c.class_names(), names);
}

TEST(ShippedConfigs, CustomExampleLoads) {
  const auto c = load_generate_config(config_file("custom-example.json"));
  EXPECT_EQ(c.dataset.layout, data::DatasetLayout::kCustom);
  EXPECT_FALSE(c.dataset.labels.empty());
  EXPECT_GE(c.classes.size(), 3u);
}

// ---- prompts ----------------------------------------------------------------------------------

TEST(Prompts, VocPromptsEqualTheReference) {
  const auto file = testing::shared_path("reference/small12-voc-mini/prompts.json");
  CLIPES_REQUIRE_FILE(file);
  const auto reference = config::load_json_file(file);
  const auto texts = build_prompt_texts(load_generate_config(config_file("voc.json")));
  EXPECT_EQ(texts.foreground, reference["fg"].get<std::vector<std::string>>());
  EXPECT_EQ(texts.background, reference["bg"].get<std::vector<std::string>>());
  EXPECT_EQ(reference["template"].get<std::string>(), "a clean origami {}.");
}

TEST(Prompts, CocoPromptsEqualTheReferenceTokenizerCases) {
  const auto file = testing::shared_path("reference/tokenizer_cases.json");
  CLIPES_REQUIRE_FILE(file);
  std::vector<std::string> expected;
  for (const auto& item : config::load_json_file(file)) {
    if (item["group"] == "coco_fg_prompt") expected.push_back(item["text"].get<std::string>());
  }
  ASSERT_EQ(expected.size(), 80u);
  const auto texts = build_prompt_texts(load_generate_config(config_file("coco.json")));
  EXPECT_EQ(texts.foreground, expected);
  EXPECT_EQ(texts.background.front(), "a clean origami ground.");
}

TEST(Prompts, FormatIsPythonFormatWithOnePlaceholder) {
  EXPECT_EQ(format_prompt("a photo of a {}.", "cat,kitten"), "a photo of a cat,kitten.");
  EXPECT_EQ(format_prompt("{}", "x"), "x");
  EXPECT_EQ(error_of([] { format_prompt("a {} {}", "x"); }),
            "prompt template \"a {} {}\" must hold exactly one {} and no other brace");
  const auto c = read_generate_config(minimal(), "t.json");
  EXPECT_EQ(
      build_prompt_texts(c).foreground,
      (std::vector<std::string>{"a clean origami cat.", "a clean origami traffic light,signal."}));
  EXPECT_EQ(c.classes[0].prompt, "cat");  // an absent prompt is the name
}

// ---- reading ----------------------------------------------------------------------------------

TEST(GenerateConfigJson, EveryFieldRoundTrips) {
  const auto document = nlohmann::json::parse(R"({
    "name": "x", "template": "a photo of {}!",
    "classes": [{"name": "cat", "prompt": "cat,kitten"}, {"name": "dog", "prompt": "dog"}],
    "background": ["sky"],
    "dataset": {"layout": "custom", "root": "/data", "images": "img", "image_ext": ".png",
                "split": "s.txt", "labels": "l.txt", "annotations": "A", "instances": "i.json"},
    "model": "m.pt", "vocab": "v.gz",
    "model_config": "ViT-B-16", "model_act": "gelu", "model_heads": [12, 8],
    "input": {"max_side": 800, "max_tokens": 3000, "exif_orientation": "apply"},
    "cam": {"attention_blocks": 6},
    "caa": {"box_threshold": 0.7, "sinkhorn_rounds": 2, "power": 1, "explicit_power": true},
    "crf": {"iterations": 5, "pos_std": 2, "pos_weight": 1.5,
            "bilateral_std": 50, "bilateral_rgb_std": 5, "bilateral_weight": 3.25,
            "image": "reference"},
    "mask": {"confidence_threshold": 0.9},
    "outputs": {"masks": true, "cams": false, "cam_dtype": "float32", "overlays": true,
                "labels": true}})");
  const auto c = read_generate_config(document, "t.json");
  c.validate("t.json");
  EXPECT_EQ(c.dataset.layout, data::DatasetLayout::kCustom);
  EXPECT_EQ(c.crf.image, crf::CrfImageMode::kReference);
  EXPECT_FLOAT_EQ(c.crf.bilateral_weight, 3.25f);
  EXPECT_EQ(c.input.max_tokens, 3000);
  EXPECT_EQ(c.outputs.cam_dtype, CamDtype::kFloat32);
  EXPECT_TRUE(c.outputs.overlays);
  EXPECT_TRUE(c.outputs.labels);
  EXPECT_EQ(c.input.exif_orientation, data::ExifOrientation::kApply);
  // to_json gives back exactly the document (floats printed shortest: 0.7, not 0.699999988).
  EXPECT_EQ(to_json(c), document) << to_json(c).dump(2);
  EXPECT_EQ(to_json(read_generate_config(to_json(c), "again")), document);
}

TEST(GenerateConfigJson, DefaultsAreResolvedInToJson) {
  const auto j = to_json(read_generate_config(minimal(), "t.json"));
  EXPECT_EQ(j["template"], "a clean origami {}.");
  EXPECT_EQ(j["crf"]["bilateral_std"], 67.0);
  EXPECT_EQ(j["crf"]["image"], "rgb");
  EXPECT_EQ(j["mask"]["confidence_threshold"], 0.95);
  EXPECT_EQ(j["caa"]["box_threshold"], 0.4);
  EXPECT_EQ(j["dataset"]["layout"], "voc");
  EXPECT_EQ(j["outputs"]["cam_dtype"], "float16");
  EXPECT_EQ(j["input"]["max_tokens"], 4096);
  EXPECT_EQ(j["input"]["exif_orientation"], "stored");  // the reference's pixels
  EXPECT_EQ(j["outputs"]["labels"], false);
  EXPECT_EQ(j["classes"][1]["name"], "traffic light");
}

TEST(GenerateConfigJson, UnknownKeysAreRejectedWithTheirPath) {
  auto j = minimal();
  j["crf"]["iteration"] = 3;
  EXPECT_EQ(read_error(j),
            "t.json: unknown key crf.iteration (known keys here: bilateral_rgb_std, "
            "bilateral_std, bilateral_weight, image, iterations, pos_std, pos_weight)");
  j = minimal();
  j["classes"][1]["promt"] = "x";
  EXPECT_EQ(read_error(j), "t.json: unknown key classes[1].promt (known keys here: name, prompt)");
  j = minimal();
  j["outputs_dir"] = "x";
  EXPECT_NE(read_error(j).find("t.json: unknown key outputs_dir (known keys here: background, "),
            std::string::npos);
}

TEST(GenerateConfigJson, WrongTypesAndBadNamesSayWhatWasExpected) {
  auto j = minimal();
  j["crf"]["iterations"] = "10";
  EXPECT_EQ(read_error(j), "t.json: crf.iterations must be an integer, got a string \"10\"");
  j = minimal();
  j["classes"] = {"cat", "dog"};
  EXPECT_EQ(read_error(j), "t.json: classes[0] must be an object, got a string \"cat\"");
  j = minimal();
  j["classes"] = "cat";
  EXPECT_EQ(read_error(j),
            "t.json: classes must be an array, got a string \"cat\"");
  j = minimal();
  j["classes"][0].erase("name");
  EXPECT_EQ(read_error(j), "t.json: classes[0].name is required but missing");
  j = minimal();
  j["crf"]["image"] = "bgr";
  EXPECT_EQ(read_error(j), "t.json: crf.image must be \"rgb\" or \"reference\", got \"bgr\"");
  j = minimal();
  j["dataset"]["layout"] = "cityscapes";
  EXPECT_EQ(read_error(j),
            "t.json: dataset.layout must be \"voc\", \"coco\" or \"custom\", got \"cityscapes\"");
  j = minimal();
  j["outputs"]["cam_dtype"] = "float64";
  EXPECT_EQ(read_error(j),
            "t.json: outputs.cam_dtype must be \"float16\" or \"float32\", got \"float64\"");
  j = minimal();
  j["input"]["exif_orientation"] = "rotate";
  EXPECT_EQ(read_error(j),
            "t.json: input.exif_orientation must be \"stored\" or \"apply\", got \"rotate\"");
  j = minimal();
  j["background"] = {"sky", 3};
  EXPECT_EQ(read_error(j), "t.json: background[1] must be a string, got an integer 3");
}

TEST(GenerateConfigJson, OverridesApplyBeforeReadingAndAreNamedInErrors) {
  const auto c = load_generate_config(
      config_file("voc.json"),
      {"crf.image=reference", "caa.box_threshold=0.7", "classes.0.prompt=plane,airplane",
       "dataset.root=/data/VOC2012", "outputs.cams=false"});
  EXPECT_EQ(c.crf.image, crf::CrfImageMode::kReference);
  EXPECT_FLOAT_EQ(c.caa.box_threshold, 0.7f);
  EXPECT_EQ(c.classes[0].prompt, "plane,airplane");
  EXPECT_EQ(c.dataset.root, "/data/VOC2012");
  EXPECT_FALSE(c.outputs.cams);
  EXPECT_TRUE(c.outputs.masks);
  // Nothing to write, or an overlay without a mask, is a config error.
  EXPECT_NE(
      error_of([&] {
        load_generate_config(config_file("voc.json"),
                             {"outputs.cams=false", "outputs.masks=false"});
      }).find("outputs must ask for something: outputs.masks and outputs.cams are both false"),
      std::string::npos);
  EXPECT_NE(error_of([&] {
              load_generate_config(config_file("voc.json"),
                                   {"outputs.overlays=true", "outputs.masks=false"});
            }).find("outputs.overlays needs outputs.masks"),
            std::string::npos);
  const auto file = config_file("voc.json").string();
  EXPECT_EQ(error_of([&] { load_generate_config(file, {"crf.iterations=-1"}); }),
            file + " (with --set crf.iterations=-1): crf.iterations must be >= 0, got -1");
  EXPECT_EQ(error_of([&] {
              load_generate_config(file, {"crf.iteration=3"});
            }).rfind(file + " (with --set crf.iteration=3): unknown key crf.iteration", 0),
            0u);
  EXPECT_EQ(error_of([&] {
              load_generate_config(file, {"crf.image=rgbb", "mask.x=1"});
            }),
            file +
                " (with --set crf.image=rgbb --set mask.x=1): crf.image must be \"rgb\" or "
                "\"reference\", got \"rgbb\"");
}

TEST(GenerateConfigJson, SyntaxErrorsNameFileLineAndColumn) {
  const auto dir = testing::make_temp_dir("config-syntax");
  std::ofstream(dir / "bad.json") << "{\n  \"name\": \"x\",\n  \"classes\": [}\n";
  EXPECT_EQ(error_of([&] {
              load_generate_config(dir / "bad.json");
            }).rfind((dir / "bad.json").string() + ":3:", 0),
            0u);
}

// ---- validate() ---------------------------------------------------------------------------------

TEST(GenerateConfigValidate, MinimalConfigIsValid) {
  EXPECT_EQ(validate_error("name=\"ok\""), clipes::testing::kNoError);
}

TEST(GenerateConfigValidate, EveryRangeRuleNamesPathRuleAndValue) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"template=a {} {}",
       "t.json: template must hold exactly one {} and no other brace, got \"a {} {}\""},
      {"template=a photo",
       "t.json: template must hold exactly one {} and no other brace, got \"a photo\""},
      {"template=a {x}",
       "t.json: template must hold exactly one {} and no other brace, got \"a {x}\""},
      {"classes=[]", "t.json: classes must list at least one class"},
      {"classes.0.name=\"\"", "t.json: classes[0].name must not be empty"},
      {"classes.0.name=\" cat\"",
       "t.json: classes[0].name must not start or end with white space, got \" cat\""},
      {"classes.0.name=\"12\"",
       "t.json: classes[0].name must not be only digits (labels files read such tokens as class "
       "indices), got \"12\""},
      {"classes.0.name=traffic_light",
       "t.json: classes[1].name must differ from classes[0].name (also with spaces written as "
       "'_'), got \"traffic light\""},
      {"background=[]",
       "t.json: background must list at least one word (with none, the softmax of an image with "
       "one label is constant and its CAM is zero)"},
      {"background=[\"sky\", \"\"]", "t.json: background[1] must not be empty"},
      {"background=[\"sky\", \"road\", \"sky\"]",
       "t.json: background[2] must differ from background[0], got \"sky\""},
      {"dataset.images=\"\"", "t.json: dataset.images must not be empty"},
      {"dataset.image_ext=jpg",
       "t.json: dataset.image_ext must be an extension starting with '.', or several separated by "
       "'|' (\".jpg|.png\"), got \"jpg\""},
      {"dataset.image_ext=.jpg|png",
       "t.json: dataset.image_ext must be an extension starting with '.', or several separated by "
       "'|' (\".jpg|.png\"), got \".jpg|png\""},
      {"dataset.split=\"\"",
       "t.json: dataset.split must be set for the voc layout when dataset.labels is empty (the XML "
       "annotations are read for the split's ids)"},
      {"dataset.annotations=\"\"",
       "t.json: dataset.annotations must be set for the voc layout when dataset.labels is empty"},
      {"dataset.layout=coco",
       "t.json: dataset.instances must be set for the coco layout when dataset.labels is empty"},
      {"dataset.layout=custom",
       "t.json: dataset.labels must be set for the custom layout (a labels file `<id> <class> "
       "...`)"},
      {"model=\"\"", "t.json: model must not be empty"},
      {"vocab=\"\"", "t.json: vocab must not be empty"},
      {"model_act=relu",
       "t.json: model_act must be \"quick_gelu\", \"gelu\" or empty (from the checkpoint), got "
       "relu"},
      {"model_heads=[12]",
       "t.json: model_heads must be [vision heads, text heads] (two positive numbers) or empty, "
       "got [12]"},
      {"model_heads=[12,0]",
       "t.json: model_heads must be [vision heads, text heads] (two positive numbers) or empty, "
       "got [12,0]"},
      {"input.max_side=8", "t.json: input.max_side must be 0 (off) or >= 16, got 8"},
      {"input.max_side=-1", "t.json: input.max_side must be 0 (off) or >= 16, got -1"},
      {"input.max_tokens=0", "t.json: input.max_tokens must be >= 1, got 0"},
      {"cam.attention_blocks=0", "t.json: cam.attention_blocks must be >= 1, got 0"},
      {"caa.box_threshold=1.5", "t.json: caa.box_threshold must be in [0, 1], got 1.5"},
      {"caa.box_threshold=-0.1", "t.json: caa.box_threshold must be in [0, 1], got -0.1"},
      {"caa.sinkhorn_rounds=0", "t.json: caa.sinkhorn_rounds must be >= 1, got 0"},
      {"caa.power=0", "t.json: caa.power must be >= 1, got 0"},
      {"crf.iterations=-1", "t.json: crf.iterations must be >= 0, got -1"},
      {"crf.pos_std=0", "t.json: crf.pos_std must be > 0, got 0"},
      {"crf.pos_weight=-1", "t.json: crf.pos_weight must be >= 0, got -1"},
      {"crf.bilateral_std=-67", "t.json: crf.bilateral_std must be > 0, got -67"},
      {"crf.bilateral_rgb_std=-3", "t.json: crf.bilateral_rgb_std must be > 0, got -3"},
      {"crf.bilateral_weight=-4", "t.json: crf.bilateral_weight must be >= 0, got -4"},
      {"mask.confidence_threshold=1.01",
       "t.json: mask.confidence_threshold must be in [0, 1], got 1.01"},
      {"mask.confidence_threshold=-0.5",
       "t.json: mask.confidence_threshold must be in [0, 1], got -0.5"},
  };
  for (const auto& [assignment, expected] : cases) {
    EXPECT_EQ(validate_error(assignment), expected) << "--set " << assignment;
  }
}

TEST(GenerateConfigValidate, LayoutRulesAcceptTheirLabelSources) {
  EXPECT_EQ(validate_error("dataset={\"layout\": \"coco\", \"instances\": \"i.json\"}"),
            clipes::testing::kNoError);
  EXPECT_EQ(validate_error("dataset={\"layout\": \"coco\", \"labels\": \"train.txt\"}"),
            clipes::testing::kNoError);
  EXPECT_EQ(validate_error("dataset={\"layout\": \"custom\", \"labels\": \"l.txt\"}"),
            clipes::testing::kNoError);
  EXPECT_EQ(validate_error("dataset={\"layout\": \"voc\", \"split\": \"\", \"labels\": \"l.txt\"}"),
            clipes::testing::kNoError);
  EXPECT_EQ(validate_error("dataset.image_ext=.jpg|.png|.JPEG"), clipes::testing::kNoError);
  EXPECT_EQ(validate_error("dataset.image_ext=\"\""), clipes::testing::kNoError);
}

TEST(GenerateConfigValidate, AtMost254Classes) {
  auto j = minimal();
  j["classes"] = nlohmann::json::array();
  for (int i = 0; i < 255; ++i) j["classes"].push_back({{"name", "c" + std::to_string(i)}});
  EXPECT_EQ(error_of([&] { read_generate_config(j, "t.json").validate("t.json"); }),
            "t.json: classes must list at most 254 classes (mask values 1..254; 255 marks "
            "ignored pixels), got 255");
  j["classes"].erase(j["classes"].size() - 1);
  EXPECT_EQ(error_of([&] { read_generate_config(j, "t.json").validate("t.json"); }),
            clipes::testing::kNoError);
}

// ---- the image-size guard -----------------------------------------------------------------------

TEST(InputSize, TokensAreCeiledPatchCounts) {
  const InputConfig config;  // max_side 0, max_tokens 4096
  const auto s = plan_input_size(500, 375, config);
  EXPECT_EQ(s.width, 500);
  EXPECT_EQ(s.height, 375);
  EXPECT_FALSE(s.downscaled);
  EXPECT_EQ(s.tokens, 32 * 24);
  EXPECT_EQ(plan_input_size(1024, 1024, config).tokens, 4096);  // exactly at the limit
  EXPECT_EQ(plan_input_size(1, 1, config).tokens, 1);
}

TEST(InputSize, HugeImagesAreRefusedWithSizeAndLimit) {
  EXPECT_EQ(error_of([] { plan_input_size(6000, 6000, InputConfig{}); }),
            "image 6000x6000 gives 140625 patch tokens (375x375 patches of 16 px), above "
            "input.max_tokens = 4096 (each attention map takes 4·N² bytes: 73.7 GiB here); set "
            "input.max_side (e.g. --set input.max_side=1024) to downscale large images first, "
            "or raise input.max_tokens");
  EXPECT_EQ(error_of([] {
              plan_input_size(1025, 1024, InputConfig{});
            }).rfind("image 1025x1024 gives 4160 patch tokens (65x64 patches", 0),
            0u);
  EXPECT_EQ(error_of([] { plan_input_size(0, 10, InputConfig{}); }),
            "image size 0x10: expected at least 1x1 pixels");
}

TEST(InputSize, MaxSideDownscalesTheLongerSideFirst) {
  InputConfig config;
  config.max_side = 1024;
  const auto s = plan_input_size(6000, 4000, config);
  EXPECT_TRUE(s.downscaled);
  EXPECT_EQ(s.width, 1024);
  EXPECT_EQ(s.height, 683);  // round(4000 · 1024 / 6000) = round(682.67)
  EXPECT_EQ(s.tokens, 64 * 43);
  const auto tall = plan_input_size(300, 5000, config);
  EXPECT_EQ(tall.width, 61);  // round(61.44)
  EXPECT_EQ(tall.height, 1024);
  const auto small = plan_input_size(800, 600, config);
  EXPECT_FALSE(small.downscaled);
  EXPECT_EQ(small.width, 800);
  config.max_side = 4000;
  EXPECT_EQ(error_of([&] {
              plan_input_size(6000, 6000, config);
            }).rfind("image 6000x6000 (downscaled to 4000x4000) gives 62500 patch tokens", 0),
            0u);
}

TEST(ReadConfigClassNames, ReadsTheClassesThroughTheGenerateReaderBackgroundFirst) {
  const fs::path dir = testing::make_temp_dir("config_class_names");
  const auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return dir / name;
  };
  EXPECT_EQ(read_config_class_names(write("c.json", R"({"classes": [{"name": "aeroplane"},
      {"name": "bicycle", "prompt": "bike"}], "crf": {"iterations": -4}})")),
            (std::vector<std::string>{"background", "aeroplane", "bicycle"}));
  EXPECT_EQ(error_of([&] {
              read_config_class_names(write("bad.json", R"({"classes": [{"name": "a"}, {}]})"));
            }),
            (dir / "bad.json").string() + ": classes[1].name is required but missing");
  EXPECT_EQ(error_of([&] {
              read_config_class_names(
                  write("dup.json", R"({"classes": [{"name": "a b"}, {"name": "a_b"}]})"));
            }),
            (dir / "dup.json").string() +
                ": classes[1].name must differ from classes[0].name (also with spaces written "
                "as '_'), got \"a_b\"");
  EXPECT_NE(error_of([&] { read_config_class_names(write("typo.json", R"({"clases": []})")); })
                .find("typo.json: unknown key clases (known keys here: "),
            std::string::npos);
  EXPECT_EQ(error_of([&] { read_config_class_names(write("none.json", R"({"crf": {}})")); }),
            (dir / "none.json").string() + ": classes must list at least one class");
}

}  // namespace
}  // namespace clipes::pipeline

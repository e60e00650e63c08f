#include "clipes/core/json_reader.h"

#include <fstream>

#include <gtest/gtest.h>

#include "support/test_support.h"

namespace clipes::config {
namespace {

struct Crf {
  int iterations = 10;
  double weight = 3.0;
  std::string image = "rgb";
};

struct Doc {
  double mu = 0.95;
  std::vector<std::string> words;
  Crf crf;
};

Doc read_doc(const nlohmann::json& j) {
  Doc doc;
  JsonObjectReader r(j, "test.json");
  r.field("mu", doc.mu);
  r.field("words", doc.words);
  auto crf = r.object("crf");
  crf.field("iterations", doc.crf.iterations);
  crf.field("weight", doc.crf.weight);
  crf.field("image", doc.crf.image);
  crf.finish();
  r.finish();
  return doc;
}

std::string error_of(const nlohmann::json& j) {
  try {
    read_doc(j);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(JsonObjectReader, AbsentKeysKeepDefaults) {
  const Doc doc = read_doc(nlohmann::json::parse(R"({"crf": {"iterations": 5}})"));
  EXPECT_EQ(doc.crf.iterations, 5);
  EXPECT_DOUBLE_EQ(doc.crf.weight, 3.0);
  EXPECT_DOUBLE_EQ(doc.mu, 0.95);
  EXPECT_EQ(doc.crf.image, "rgb");
}

TEST(JsonObjectReader, UnknownKeyNamesItsPath) {
  EXPECT_EQ(error_of(nlohmann::json::parse(R"({"crf": {"iteration": 5}})")),
            "test.json: unknown key crf.iteration (known keys here: image, iterations, weight)");
}

TEST(JsonObjectReader, WrongTypeNamesPathAndValue) {
  EXPECT_EQ(error_of(nlohmann::json::parse(R"({"crf": {"iterations": 2.5}})")),
            "test.json: crf.iterations must be an integer, got a number 2.5");
  EXPECT_EQ(error_of(nlohmann::json::parse(R"({"words": ["a", 3]})")),
            "test.json: words[1] must be a string, got an integer 3");
  EXPECT_EQ(error_of(nlohmann::json::parse(R"({"crf": 3})")),
            "test.json: crf must be an object, got an integer 3");
}

TEST(JsonObjectReader, IntegersAreAcceptedForFloats) {
  EXPECT_DOUBLE_EQ(read_doc(nlohmann::json::parse(R"({"mu": 1})")).mu, 1.0);
}

TEST(ApplyOverride, SetsNestedValuesAndBareStrings) {
  auto j = nlohmann::json::parse(R"({"crf": {"iterations": 10}, "words": ["a", "b"]})");
  apply_override(j, "crf.image=reference");
  apply_override(j, "crf.iterations=3");
  apply_override(j, "words.1=\"c\"");
  apply_override(j, "mu=0.5");
  const Doc doc = read_doc(j);
  EXPECT_EQ(doc.crf.image, "reference");
  EXPECT_EQ(doc.crf.iterations, 3);
  EXPECT_EQ(doc.words, (std::vector<std::string>{"a", "c"}));
  EXPECT_DOUBLE_EQ(doc.mu, 0.5);
}

TEST(ApplyOverride, TypoIsCaughtByTheReader) {
  auto j = nlohmann::json::object();
  apply_override(j, "crf.itrations=3");
  EXPECT_NE(error_of(j).find("unknown key crf.itrations"), std::string::npos);
}

TEST(ApplyOverride, MalformedAssignmentsAreRejected) {
  auto j = nlohmann::json::parse(R"({"words": ["a"], "mu": 1})");
  EXPECT_THROW(apply_override(j, "novalue"), Error);
  EXPECT_THROW(apply_override(j, "=3"), Error);
  EXPECT_THROW(apply_override(j, "words.5=x"), Error);
  EXPECT_THROW(apply_override(j, "mu.x=1"), Error);
}

TEST(LoadJsonFile, SyntaxErrorNamesLineAndColumn) {
  const auto dir = testing::make_temp_dir("json_reader");
  const auto file = dir / "bad.json";
  std::ofstream(file) << "{\n  \"a\": 1,\n  \"b\": ]\n}\n";
  try {
    load_json_file(file);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.json:3:8"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_json_file(dir / "missing.json"), Error);
}

TEST(Validator, MessageHasSourcePathRuleAndValue) {
  Validator v("voc.json");
  try {
    v.check(-3 > 0, "crf.bilateral_rgb_std", "must be > 0", -3);
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "voc.json: crf.bilateral_rgb_std must be > 0, got -3");
  }
  EXPECT_NO_THROW(v.check(true, "x", "must hold", 1));
}

}  // namespace
}  // namespace clipes::config

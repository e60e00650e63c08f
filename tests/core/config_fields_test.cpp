// The field-table machinery (config_fields.h + json_reader.h) on a small config of every kind of
// field: nested structs, enums, required keys, vectors of structs, floats.
#include <gtest/gtest.h>

#include "clipes/core/config_fields.h"
#include "clipes/core/json_reader.h"
#include "support/test_support.h"

namespace clipes::config::fields_test {
namespace {

using clipes::testing::error_of;

enum class Mode { kFast, kExact };
constexpr auto enum_names(Mode) {
  return EnumNames<Mode, 2>{{{"fast", Mode::kFast}, {"exact", Mode::kExact}}};
}

struct Item {
  std::string name;
  int count = 1;
};
template <class C, class V>
FieldsOf<C, Item> visit_fields(C& c, V& v) {
  v("name", c.name, "item name", kRequired);
  v("count", c.count, "how many");
}

struct Inner {
  float weight = 0.4f;
  Mode mode = Mode::kFast;
};
template <class C, class V>
FieldsOf<C, Inner> visit_fields(C& c, V& v) {
  v("weight", c.weight, "a weight");
  v("mode", c.mode, "how");
}

struct Outer {
  std::string label = "x";
  std::vector<Item> items;
  Inner inner;
  std::vector<double> scales{0.5, 1.0};
};
template <class C, class V>
FieldsOf<C, Outer> visit_fields(C& c, V& v) {
  v("label", c.label, "a label");
  v("items", c.items, "the items");
  v("inner", c.inner, "");
  v("scales", c.scales, "scales");
}

Outer read(const nlohmann::json& j) {
  Outer out;
  JsonObjectReader reader(j, "t.json");
  read_fields(reader, out);
  reader.finish();
  return out;
}

TEST(ConfigFields, ReadsNestedEnumsAndVectorsOfStructs) {
  const Outer o = read(nlohmann::json::parse(
      R"({"items": [{"name": "a"}, {"name": "b", "count": 3}], "inner": {"mode": "exact"}})"));
  EXPECT_EQ(o.label, "x");
  ASSERT_EQ(o.items.size(), 2u);
  EXPECT_EQ(o.items[0].name, "a");
  EXPECT_EQ(o.items[0].count, 1);
  EXPECT_EQ(o.items[1].count, 3);
  EXPECT_EQ(o.inner.mode, Mode::kExact);
  EXPECT_EQ(o.inner.weight, 0.4f);
}

TEST(ConfigFields, ErrorsNameThePathAndWhatWasExpected) {
  EXPECT_EQ(error_of([] { read(nlohmann::json::parse(R"({"items": [{"count": 2}]})")); }),
            "t.json: items[0].name is required but missing");
  EXPECT_EQ(error_of([] { read(nlohmann::json::parse(R"({"inner": {"mode": "slow"}})")); }),
            "t.json: inner.mode must be \"fast\" or \"exact\", got \"slow\"");
  EXPECT_EQ(error_of([] { read(nlohmann::json::parse(R"({"inner": {"mode": 1}})")); }),
            "t.json: inner.mode must be \"fast\" or \"exact\", got 1");
  EXPECT_EQ(error_of([] { read(nlohmann::json::parse(R"({"inner": 3})")); }),
            "t.json: inner must be an object, got an integer 3");
  EXPECT_NE(error_of([] { read(nlohmann::json::parse(R"({"inner": {"wieght": 1}})")); })
                .find("t.json: unknown key inner.wieght"),
            std::string::npos);
}

TEST(ConfigFields, WritesTheStructShapeAndReadsItBack) {
  Outer o;
  o.items = {{"a", 2}};
  o.inner.mode = Mode::kExact;
  const nlohmann::json j = to_json_value(o);
  EXPECT_EQ(j.dump(),
            R"({"inner":{"mode":"exact","weight":0.4},"items":[{"count":2,"name":"a"}],)"
            R"("label":"x","scales":[0.5,1.0]})");
  const Outer back = read(j);
  EXPECT_EQ(back.inner.weight, o.inner.weight);
  EXPECT_EQ(to_json_value(back), j);
}

TEST(ConfigFields, HelpListsEveryLeafWithDefaultAndChoices) {
  const auto fields = describe_fields(Outer{});
  std::vector<std::string> paths;
  for (const auto& f : fields) paths.push_back(f.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"label", "items", "inner.weight", "inner.mode",
                                             "scales"}));
  EXPECT_EQ(fields[3].value, "\"fast\"");
  EXPECT_EQ(fields[3].doc, "how (\"fast\" or \"exact\")");
  EXPECT_EQ(format_field_help({{"a", "1", "x"}, {"bb.c", "true", "y"}}),
            "  a = 1        x\n  bb.c = true  y\n");
}

TEST(ConfigFields, EnumNamesRoundTrip) {
  EXPECT_EQ(enum_name(Mode::kExact), "exact");
  EXPECT_EQ(parse_enum<Mode>("fast"), Mode::kFast);
  EXPECT_FALSE(parse_enum<Mode>("Fast").has_value());
  EXPECT_EQ(enum_choices<Mode>(), "\"fast\" or \"exact\"");
  EXPECT_EQ(enum_choices<Mode>("empty"), "\"fast\", \"exact\" or empty");
}

}  // namespace
}  // namespace clipes::config::fields_test

#include "clipes/data/class_names.h"

#include <gtest/gtest.h>

#include <fstream>

#include "support/test_support.h"

namespace clipes::data {
namespace {

TEST(ClassNames, VocOrderMatchesTheMaskIds) {
  const auto& voc = voc_class_names();
  ASSERT_EQ(voc.size(), 20u);
  EXPECT_EQ(voc.front(), "aeroplane");
  EXPECT_EQ(voc[14], "person");  // mask id 15
  EXPECT_EQ(voc.back(), "tvmonitor");
  const auto ids = with_background(voc);
  ASSERT_EQ(ids.size(), 21u);
  EXPECT_EQ(ids[0], "background");
  EXPECT_EQ(ids[15], "person");
}

TEST(ClassNames, CocoMatchesTheSharedClassList) {
  const auto file = testing::shared_path("data/coco-mini/classes.txt");
  CLIPES_REQUIRE_FILE(file);
  std::ifstream in(file);
  std::vector<std::string> expected;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) expected.push_back(line);
  }
  EXPECT_EQ(coco_class_names(), expected);
}

TEST(ClassNames, CocoSizeAndEnds) {
  ASSERT_EQ(coco_class_names().size(), 80u);
  EXPECT_EQ(coco_class_names().front(), "person");
  EXPECT_EQ(coco_class_names()[39], "bottle");
  EXPECT_EQ(coco_class_names().back(), "toothbrush");
}

}  // namespace
}  // namespace clipes::data

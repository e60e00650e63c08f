#include "clipes/data/dataset.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "clipes/core/error.h"
#include "support/test_support.h"

namespace clipes::data {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kVocClasses{
    "aeroplane", "bicycle",     "bird",  "boat",        "bottle", "bus",      "car",
    "cat",       "chair",       "cow",   "diningtable", "dog",    "horse",    "motorbike",
    "person",    "pottedplant", "sheep", "sofa",        "train",  "tvmonitor"};

std::vector<std::string> read_lines(const fs::path& file) {
  std::ifstream in(file);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

void write_text(const fs::path& file, const std::string& text) {
  fs::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << text;
}

std::vector<std::string> coco_classes() {
  return read_lines(testing::shared_path("data/coco-mini/classes.txt"));
}

// The labels file's lines as id -> labels, parsed independently of the reader.
std::map<std::string, std::vector<int>> parse_labels_txt(const fs::path& file) {
  std::map<std::string, std::vector<int>> labels;
  for (const auto& line : read_lines(file)) {
    std::istringstream in(line);
    std::string id;
    in >> id;
    for (int c; in >> c;) labels[id].push_back(c);
  }
  return labels;
}

using clipes::testing::error_of;

// ---- class tokens and ids -------------------------------------------------------------------

TEST(ClassIndex, DigitsAreIndicesOtherTokensNames) {
  const ClassIndex classes({"cat", "traffic light", "dog"});
  EXPECT_EQ(classes.find("0"), 0);
  EXPECT_EQ(classes.find("002"), 2);
  EXPECT_EQ(classes.find("3"), std::nullopt);
  EXPECT_EQ(classes.find("dog"), 2);
  EXPECT_EQ(classes.find("traffic_light"), 1);
  EXPECT_EQ(classes.find("traffic light"), 1);
  EXPECT_EQ(classes.find("Dog"), std::nullopt);
  EXPECT_EQ(classes.find("-1"), std::nullopt);
  EXPECT_EQ(classes.find("99999999999999999999"), std::nullopt);
  EXPECT_EQ(classes.expected(), "an index 0..2 or a class name");
}

TEST(IdProblem, RejectsIdsUnusableAsFileNames) {
  EXPECT_EQ(id_problem("2007_000032"), "");
  EXPECT_EQ(id_problem("COCO_train2014_000000000009"), "");
  EXPECT_EQ(id_problem("a.b-c"), "");
  EXPECT_EQ(id_problem(""), "the id is empty");
  EXPECT_NE(id_problem("a/b").find("contains a '/'"), std::string::npos);
  EXPECT_NE(id_problem("a\\b").find("contains a '/', '\\'"), std::string::npos);
  EXPECT_NE(id_problem("..").find("starts with '.'"), std::string::npos);
  EXPECT_NE(id_problem(".hidden").find("starts with '.'"), std::string::npos);
  EXPECT_EQ(id_problem("x..y"), "id 'x..y' contains '..' (unusable as an output file name)");
  EXPECT_NE(id_problem(std::string("a\tb")).find("control"), std::string::npos);
}

// ---- VOC ------------------------------------------------------------------------------------

DatasetConfig voc_mini_config() {
  DatasetConfig config;
  config.layout = DatasetLayout::kVoc;
  config.root = testing::shared_path("data/voc-mini").string();
  config.labels = "labels.txt";
  return config;
}

TEST(VocDataset, LabelsFileAndSplitGiveSamplesInSplitOrder) {
  CLIPES_REQUIRE_FILE(testing::shared_path("data/voc-mini/labels.txt"));
  const auto samples = read_dataset(voc_mini_config(), kVocClasses);
  const auto split =
      read_lines(testing::shared_path("data/voc-mini/ImageSets/Segmentation/train.txt"));
  const auto expected = parse_labels_txt(testing::shared_path("data/voc-mini/labels.txt"));
  ASSERT_EQ(samples.size(), 20u);
  for (std::size_t i = 0; i < samples.size(); ++i) {
    EXPECT_EQ(samples[i].id, split[i]);
    EXPECT_TRUE(samples[i].ok()) << samples[i].problem;
    EXPECT_EQ(samples[i].labels, expected.at(split[i]));
    EXPECT_EQ(samples[i].image,
              testing::shared_path("data/voc-mini/JPEGImages") / (split[i] + ".jpg"));
  }
  EXPECT_EQ(samples[8].labels, (std::vector<int>{6, 13, 14}));  // 2008_003333: car motorbike person
}

TEST(VocDataset, LabelsFileWithoutSplitKeepsFileOrder) {
  CLIPES_REQUIRE_FILE(testing::shared_path("data/voc-mini/labels.txt"));
  auto config = voc_mini_config();
  config.split = "";
  const auto samples = read_dataset(config, kVocClasses);
  ASSERT_EQ(samples.size(), 20u);
  EXPECT_EQ(samples.front().id, "2007_000032");
  EXPECT_EQ(samples.back().id, "2011_002770");
}

// A VOC-style root with XML annotations written here (voc-mini ships no Annotations/).
class VocXml : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::make_temp_dir("voc-xml");
    for (const char* id : {"a", "b", "c", "d", "e", "f", "g", "h"}) {
      write_text(root_ / "JPEGImages" / (std::string(id) + ".jpg"), "not decoded here");
    }
    write_text(root_ / "ImageSets/Segmentation/train.txt", "a\nb\nc\nd\ne\n\nf\ng\nh\n");
    // a: person, aeroplane, a difficult person, a truncated difficult cat; parts are not objects.
    write_xml("a", R"(<annotation>
	<folder>VOC2012</folder>
	<filename>a.jpg</filename>
	<size><width>500</width><height>375</height><depth>3</depth></size>
	<object>
		<name>person</name>
		<pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>
		<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>
		<part><name>head</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></part>
	</object>
	<object>
		<name>
			aeroplane
		</name>
		<difficult>0</difficult>
	</object>
	<object><name>person</name><difficult>1</difficult></object>
	<object><name>cat</name><truncated>1</truncated><difficult>1</difficult></object>
</annotation>
)");
    write_xml("b", "<annotation>\n  <object><name>tvmonitor</name></object>\n</annotation>\n");
    write_xml("c",
              "<annotation>\n  <object><name>dog</name></object>\n  "
              "<object><name>personn</name></object>\n</annotation>\n");
    write_xml("d", "<annotation>\n  <filename>d.jpg</filename>\n</annotation>\n");
    write_xml("e", "<annotation>\n  <object><name>dog</name>\n  </objec>\n</annotation>\n");
    // f: no XML at all.
    write_xml("g", "<image><object><name>dog</name></object></image>\n");
    write_xml("h", "<annotation>\n<object><pose>Left</pose></object>\n</annotation>\n");
  }
  void write_xml(const std::string& id, const std::string& text) {
    write_text(root_ / "Annotations" / (id + ".xml"), text);
  }
  DatasetConfig config() const {
    DatasetConfig c;
    c.root = root_.string();
    return c;  // defaults: JPEGImages, .jpg, ImageSets/Segmentation/train.txt, Annotations
  }
  std::string xml(const std::string& id) const {
    return (root_ / "Annotations" / (id + ".xml")).string();
  }
  fs::path root_;
};

TEST_F(VocXml, ObjectNamesInOrderOfFirstAppearanceDifficultIncluded) {
  const auto samples = read_dataset(config(), kVocClasses);
  ASSERT_EQ(samples.size(), 8u);
  EXPECT_EQ(samples[0].id, "a");
  EXPECT_TRUE(samples[0].ok()) << samples[0].problem;
  EXPECT_EQ(samples[0].labels, (std::vector<int>{14, 0, 7}));  // person, aeroplane, cat
  EXPECT_EQ(samples[0].image, root_ / "JPEGImages/a.jpg");
  EXPECT_EQ(samples[1].labels, (std::vector<int>{19}));
  EXPECT_TRUE(samples[1].ok());
}

TEST_F(VocXml, BadAnnotationsBecomePerSampleProblemsWithFileAndLine) {
  const auto samples = read_dataset(config(), kVocClasses);
  ASSERT_EQ(samples.size(), 8u);
  EXPECT_EQ(samples[2].problem,
            xml("c") + ":3: unknown class 'personn' (expected one of the 20 class names)");
  EXPECT_EQ(samples[3].problem, xml("d") + ": no labels (no <object> element)");
  EXPECT_EQ(samples[4].problem.rfind(xml("e") + ":3: malformed XML (", 0), 0u)
      << samples[4].problem;
  EXPECT_EQ(samples[5].problem, "no labels: cannot read " + xml("f") + ": no such file");
  EXPECT_EQ(samples[6].problem,
            xml("g") + ": expected an <annotation> root element, found <image>");
  EXPECT_EQ(samples[7].problem, xml("h") + ":2: <object> without a <name>");
}

TEST_F(VocXml, SplitIsRequiredForXmlLabels) {
  auto c = config();
  c.split = "";
  EXPECT_EQ(error_of([&] { read_dataset(c, kVocClasses); }),
            "dataset: the voc layout reads labels from XML annotations only for the ids of a "
            "split file: set dataset.split (or dataset.labels)");
}

TEST_F(VocXml, MissingImageIsAPerSampleProblem) {
  fs::remove(root_ / "JPEGImages/b.jpg");
  const auto samples = read_dataset(config(), kVocClasses);
  EXPECT_EQ(samples[1].problem, "image not found: " + (root_ / "JPEGImages/b.jpg").string());
  EXPECT_EQ(samples[1].labels, (std::vector<int>{19}));  // labels are still known
  EXPECT_TRUE(samples[0].ok());
}

// ---- split and labels files: errors
// --------------------------------------------------------------

TEST(LabelFiles, DuplicateIdsThrowWithBothLines) {
  const auto dir = testing::make_temp_dir("dup-ids");
  write_text(dir / "split.txt", "x\ny\n\nx\n");
  EXPECT_EQ(error_of([&] { read_id_list(dir / "split.txt"); }),
            (dir / "split.txt").string() + ":4: duplicate id x (first at line 1)");
  write_text(dir / "labels.txt", "# comment\nx 1\ny 2\ny 3\n");
  EXPECT_EQ(error_of([&] { read_labels_file(dir / "labels.txt", ClassIndex(kVocClasses)); }),
            (dir / "labels.txt").string() + ":4: duplicate id y (first at line 3)");
}

TEST(LabelFiles, MissingFilesThrowNamingThem) {
  const auto dir = testing::make_temp_dir("missing-files");
  EXPECT_EQ(error_of([&] { read_id_list(dir / "nope.txt"); }),
            "cannot read " + (dir / "nope.txt").string() + ": no such file");
  DatasetConfig config;
  config.root = dir.string();
  config.labels = "labels.txt";
  EXPECT_EQ(error_of([&] { read_dataset(config, kVocClasses); }),
            "cannot read " + (dir / "labels.txt").string() + ": no such file");
}

TEST(LabelFiles, UnknownClassesAndEmptyLinesAreProblemsWithFileAndLine) {
  const auto dir = testing::make_temp_dir("label-problems");
  const auto file = dir / "labels.txt";
  write_text(file, "ok 3 person 3\r\nbig 20\nword persn\nnone\n\nneg -1 2\n");
  const auto lines = read_labels_file(file, ClassIndex(kVocClasses));
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0].id, "ok");
  EXPECT_EQ(lines[0].labels, (std::vector<int>{3, 14}));  // repeats count once
  EXPECT_EQ(lines[0].problem, "");
  EXPECT_EQ(lines[1].problem, file.string() +
                                  ":2: unknown class '20' for big (expected an index 0..19 or a "
                                  "class name)");
  EXPECT_EQ(lines[2].problem, file.string() +
                                  ":3: unknown class 'persn' for word (expected an index 0..19 "
                                  "or a class name)");
  EXPECT_EQ(lines[3].problem, file.string() + ":4: no labels for none");
  EXPECT_EQ(lines[4].line, 6);
  EXPECT_NE(lines[4].problem.find(":6: unknown class '-1'"), std::string::npos);
}

TEST(LabelFiles, SplitIdsWithoutLabelsAndBadIdsAreProblems) {
  const auto dir = testing::make_temp_dir("split-problems");
  write_text(dir / "labels.txt", "a 1\nb/c 2\n");
  write_text(dir / "split.txt", "a\nzz\nb/c\n");
  write_text(dir / "JPEGImages/a.jpg", "x");
  DatasetConfig config;
  config.root = dir.string();
  config.labels = "labels.txt";
  config.split = "split.txt";
  const auto samples = read_dataset(config, kVocClasses);
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_TRUE(samples[0].ok());
  EXPECT_EQ(samples[1].problem, "no labels: zz has no line in " + (dir / "labels.txt").string());
  EXPECT_EQ(samples[2].problem,
            "id 'b/c' contains a '/', '\\', space or control character (unusable as an output "
            "file name)");
}

// ---- COCO -----------------------------------------------------------------------------------

DatasetConfig coco_mini_config() {
  DatasetConfig config;
  config.layout = DatasetLayout::kCoco;
  config.root = testing::shared_path("data/coco-mini").string();
  config.split = "";
  return config;
}

TEST(CocoDataset, LabelListAndInstancesJsonGiveIdenticalSamples) {
  CLIPES_REQUIRE_FILE(testing::shared_path("data/coco-mini/instances_subset.json"));
  auto from_list = coco_mini_config();
  from_list.labels = "labels.txt";
  auto from_json = coco_mini_config();
  from_json.instances = "instances_subset.json";
  const auto a = read_dataset(from_list, coco_classes());
  const auto b = read_dataset(from_json, coco_classes());
  const auto expected = parse_labels_txt(testing::shared_path("data/coco-mini/labels.txt"));
  ASSERT_EQ(a.size(), 16u);
  ASSERT_EQ(b.size(), 16u);
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(a[i].ok()) << a[i].problem;
    EXPECT_TRUE(b[i].ok()) << b[i].problem;
    EXPECT_EQ(a[i].id, b[i].id);  // the json's 2017 file_name is found under its 2014 name
    EXPECT_EQ(a[i].image, b[i].image);
    EXPECT_EQ(a[i].labels, b[i].labels);
    EXPECT_EQ(a[i].labels, expected.at(a[i].id));
  }
  EXPECT_EQ(b[0].id, "COCO_train2014_000000000009");
  EXPECT_EQ(b[0].labels, (std::vector<int>{45, 49, 50}));
  EXPECT_EQ(b[5].id, "COCO_val2014_000000000143");
}

TEST(CocoDataset, SplitIdsMayBe2014Or2017Stems) {
  CLIPES_REQUIRE_FILE(testing::shared_path("data/coco-mini/instances_subset.json"));
  const auto dir = testing::make_temp_dir("coco-split");
  write_text(dir / "split.txt", "COCO_val2014_000000000357\n000000000009\n000000999999\n");
  auto config = coco_mini_config();
  config.instances = "instances_subset.json";
  config.split = (dir / "split.txt").string();
  const auto samples = read_dataset(config, coco_classes());
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[0].labels, (std::vector<int>{0, 34, 35}));
  EXPECT_TRUE(samples[0].ok());
  EXPECT_EQ(samples[1].id, "000000000009");
  EXPECT_EQ(samples[1].labels, (std::vector<int>{45, 49, 50}));
  EXPECT_EQ(samples[1].image,
            testing::shared_path("data/coco-mini/JPEGImages/COCO_train2014_000000000009.jpg"));
  EXPECT_EQ(samples[2].problem,
            "no labels: 000000999999 is not an image of " +
                testing::shared_path("data/coco-mini/instances_subset.json").string());
}

TEST(CocoDataset, LabelListIdsFindImagesUnderTheir2017Names) {
  const auto dir = testing::make_temp_dir("coco-2017-names");
  write_text(dir / "train2017/000000000009.jpg", "x");
  write_text(dir / "labels.txt",
             "COCO_train2014_000000000009 45 49\nCOCO_val2014_000000000143 14\n");
  DatasetConfig config;
  config.layout = DatasetLayout::kCoco;
  config.root = dir.string();
  config.images = "train2017";
  config.split = "";
  config.labels = "labels.txt";
  const auto samples = read_dataset(config, std::vector<std::string>(80, "c"));
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(samples[0].id, "COCO_train2014_000000000009");
  EXPECT_EQ(samples[0].image, dir / "train2017/000000000009.jpg");
  EXPECT_TRUE(samples[0].ok()) << samples[0].problem;
  EXPECT_EQ(samples[1].problem, "image not found: tried " +
                                    (dir / "train2017/COCO_val2014_000000000143.jpg").string() +
                                    ", " + (dir / "train2017/000000000143.jpg").string());
}

// A small instances json written here.
class CocoJson : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::make_temp_dir("coco-json");
    write_text(dir_ / "images/000000000001.jpg", "x");
    write_text(dir_ / "images/COCO_val2014_000000000002.jpg", "x");
  }
  fs::path write(const std::string& json) {
    write_text(dir_ / "instances.json", json);
    return dir_ / "instances.json";
  }
  DatasetConfig config() const {
    DatasetConfig c;
    c.layout = DatasetLayout::kCoco;
    c.root = dir_.string();
    c.images = "images";
    c.split = "";
    c.instances = "instances.json";
    return c;
  }
  fs::path dir_;
};

constexpr const char* kCategories =
    R"("categories": [{"id": 7, "name": "c"}, {"id": 2, "name": "a"}, {"id": 5, "name": "b"}])";

TEST_F(CocoJson, CategoriesSortedByIdGiveIndicesAndProblemsStayPerImage) {
  const auto file = write(std::string("{") + kCategories + R"(,
    "images": [{"id": 1, "file_name": "000000000001.jpg"},
               {"id": 2, "file_name": "000000000002.jpg"},
               {"id": 3, "file_name": "000000000003.jpg"},
               {"id": 4, "file_name": "000000000004.jpg"}],
    "annotations": [{"image_id": 1, "category_id": 7, "iscrowd": 0, "segmentation": [[1, 2, 3]]},
                    {"image_id": 1, "category_id": 2, "iscrowd": 1},
                    {"image_id": 1, "category_id": 7},
                    {"image_id": 2, "category_id": 5},
                    {"image_id": 4, "category_id": 9},
                    {"image_id": 99, "category_id": 2}]})");
  const auto images = read_coco_instances(file, 3);
  ASSERT_EQ(images.size(), 4u);
  EXPECT_EQ(images[0].labels, (std::vector<int>{0, 2}));  // ids 2 -> 0, 5 -> 1, 7 -> 2; sorted
  EXPECT_EQ(images[1].labels, (std::vector<int>{1}));
  EXPECT_EQ(images[2].problem, file.string() + ": no labels (no annotation of image id 3)");
  EXPECT_EQ(images[3].problem,
            file.string() + ": annotations[4].category_id 9 is not among the categories");

  const auto samples = read_dataset(config(), {"a", "b", "c"});
  ASSERT_EQ(samples.size(), 4u);
  EXPECT_EQ(samples[0].id, "000000000001");
  EXPECT_TRUE(samples[0].ok());
  EXPECT_EQ(samples[1].id, "COCO_val2014_000000000002");  // found under its 2014 name
  EXPECT_EQ(samples[1].image, dir_ / "images/COCO_val2014_000000000002.jpg");
  EXPECT_EQ(samples[2].problem, images[2].problem);
  EXPECT_EQ(samples[3].problem, images[3].problem);
}

TEST_F(CocoJson, MissingImageListsTheNamesTried) {
  write(std::string("{") + kCategories +
        R"(, "images": [{"id": 3, "file_name": "000000000003.jpg"}],
    "annotations": [{"image_id": 3, "category_id": 2}]})");
  const auto samples = read_dataset(config(), {"a", "b", "c"});
  ASSERT_EQ(samples.size(), 1u);
  const auto images = dir_ / "images";
  EXPECT_EQ(samples[0].problem, "image not found: tried " + (images / "000000000003.jpg").string() +
                                    ", " + (images / "COCO_train2014_000000000003.jpg").string() +
                                    ", " + (images / "COCO_val2014_000000000003.jpg").string());
}

TEST_F(CocoJson, MalformedFilesThrowWithFileAndPath) {
  auto file = write(std::string("{") + kCategories + R"(, "images": [], "annotations": []})");
  EXPECT_EQ(error_of([&] { read_coco_instances(file, 80); }),
            file.string() +
                ": lists 3 categories, the config lists 80 classes (class i is the "
                "category with the i-th smallest id)");
  file = write(std::string("{") + kCategories + R"(, "images": [{"id": 1}], "annotations": []})");
  EXPECT_EQ(error_of([&] { read_coco_instances(file, 3); }),
            file.string() + ": images[0].file_name is missing");
  file = write(std::string("{") + kCategories +
               R"(, "images": [{"id": "1", "file_name": "x.jpg"}], "annotations": []})");
  EXPECT_EQ(error_of([&] { read_coco_instances(file, 3); }),
            file.string() + ": images[0].id must be an integer, got \"1\"");
  file = write(std::string("{") + kCategories + R"(, "images": []})");
  EXPECT_EQ(
      error_of([&] { read_coco_instances(file, 3); }),
      file.string() + ": expected a COCO instances file with a 'annotations' array, found none");
  file = write("{\n  \"categories\": [\n  ,]\n}");
  EXPECT_EQ(
      error_of([&] { read_coco_instances(file, 3); }).rfind(file.string() + ":3: invalid JSON", 0),
      0u);
}

TEST(CocoDataset, NeedsALabelSource) {
  DatasetConfig config;
  config.layout = DatasetLayout::kCoco;
  EXPECT_EQ(error_of([&] { read_dataset(config, {"a"}); }),
            "dataset: the coco layout needs dataset.labels (a label list) or dataset.instances "
            "(an instances_*.json)");
}

// ---- custom ---------------------------------------------------------------------------------

TEST(CustomDataset, ClassesByIndexOrNameAndSeveralImageExtensions) {
  const auto dir = testing::make_temp_dir("custom");
  write_text(dir / "photos/cat1.jpg", "x");
  write_text(dir / "photos/street.png", "x");
  write_text(dir / "photos/both.jpg", "x");
  write_text(dir / "photos/both.png", "x");
  write_text(dir / "labels.txt",
             "# id classes (an index, or a name with spaces written as _)\n"
             "cat1 cat\n"
             "street traffic_light 2 car\n"
             "both 0\n"
             "gone car\n");
  DatasetConfig config;
  config.layout = DatasetLayout::kCustom;
  config.root = dir.string();
  config.images = "photos";
  config.image_ext = ".jpg|.png";
  config.split = "";
  config.labels = "labels.txt";
  const auto samples = read_dataset(config, {"cat", "traffic light", "car"});
  ASSERT_EQ(samples.size(), 4u);
  EXPECT_EQ(samples[0].labels, (std::vector<int>{0}));
  EXPECT_EQ(samples[1].labels, (std::vector<int>{1, 2}));
  EXPECT_EQ(samples[1].image, dir / "photos/street.png");
  EXPECT_EQ(samples[2].image, dir / "photos/both.jpg");  // the first extension that exists
  EXPECT_TRUE(samples[0].ok() && samples[1].ok() && samples[2].ok());
  EXPECT_EQ(samples[3].problem, "image not found: tried " + (dir / "photos/gone.jpg").string() +
                                    ", " + (dir / "photos/gone.png").string());
}

TEST(CustomDataset, NeedsALabelsFile) {
  DatasetConfig config;
  config.layout = DatasetLayout::kCustom;
  EXPECT_EQ(error_of([&] { read_dataset(config, {"a"}); }),
            "dataset: the custom layout needs a labels file: set dataset.labels");
}

TEST(DatasetConfig, RelativePathsResolveAgainstRoot) {
  DatasetConfig config;
  EXPECT_EQ(config.resolve("labels.txt"), fs::path("labels.txt"));
  config.root = "/data/voc";
  EXPECT_EQ(config.resolve("labels.txt"), fs::path("/data/voc/labels.txt"));
  EXPECT_EQ(config.resolve("/abs/labels.txt"), fs::path("/abs/labels.txt"));
  EXPECT_EQ(parse_dataset_layout("coco"), DatasetLayout::kCoco);
  EXPECT_EQ(parse_dataset_layout("COCO"), std::nullopt);
  EXPECT_EQ(to_string(DatasetLayout::kCustom), "custom");
}

// ---- shards and limits ----------------------------------------------------------------------

std::vector<Sample> synthetic_samples(int n) {
  std::vector<Sample> samples(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i)
    samples[static_cast<std::size_t>(i)].id = "img_" + std::to_string(i * 7919);
  return samples;
}

TEST(Shard, ParsesZeroBasedIOfN) {
  EXPECT_EQ(parse_shard("0/1"), (Shard{0, 1}));
  EXPECT_EQ(parse_shard("3/4"), (Shard{3, 4}));
  for (const char* bad : {"4/4", "1/0", "-1/4", "1", "a/b", "1/4/2", "", "/4", "1/", " 1/4"}) {
    EXPECT_EQ(error_of([&] { parse_shard(bad); }),
              std::string("invalid shard '") + bad +
                  "': expected I/N with 0 <= I < N (I is 0-based: the 4 shards of N = 4 are 0/4, "
                  "1/4, 2/4, 3/4)");
  }
}

TEST(Shard, AutoTakesTheSchedulersIndex) {
  std::string origin;
  // A SLURM array started at 1 (--array=1-8): task 3 is shard 2 of 8.
  EXPECT_EQ(shard_from_environment({{"SLURM_ARRAY_TASK_ID", "3"},
                                    {"SLURM_ARRAY_TASK_MIN", "1"},
                                    {"SLURM_ARRAY_TASK_COUNT", "8"},
                                    {"RANK", "0"},
                                    {"WORLD_SIZE", "2"}},
                                   &origin),
            (Shard{2, 8}));
  EXPECT_EQ(origin, "SLURM job array");
  EXPECT_EQ(shard_from_environment({{"JOB_COMPLETION_INDEX", "4"}, {"JOB_COMPLETIONS", "5"}},
                                   &origin),
            (Shard{4, 5}));
  EXPECT_EQ(origin, "Kubernetes indexed job");
  EXPECT_EQ(shard_from_environment({{"RANK", "1"}, {"WORLD_SIZE", "2"}}, &origin), (Shard{1, 2}));
  EXPECT_EQ(shard_from_environment({{"SLURM_PROCID", "6"}, {"SLURM_NTASKS", "7"}}, &origin),
            (Shard{6, 7}));
  EXPECT_EQ(origin, "SLURM job");
  EXPECT_NE(error_of([] { shard_from_environment({{"JOB_COMPLETION_INDEX", "4"}}, nullptr); })
                .find("JOB_COMPLETION_INDEX is set but JOB_COMPLETIONS is not (Kubernetes "
                      "exports the index only"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              shard_from_environment({{"RANK", "2"}, {"WORLD_SIZE", "2"}}, nullptr);
            }).find("shard 2 of 2 (torchrun job RANK=2, WORLD_SIZE=2) is not within 0..N-1"),
            std::string::npos);
  EXPECT_NE(error_of([] { shard_from_environment({}, nullptr); })
                .find("the environment names no shard"),
            std::string::npos);
}

TEST(Shard, KnownAssignmentsAreStable) {
  // Values of 64-bit FNV-1a + splitmix64 finaliser computed by an independent Python script;
  // a change here would reshuffle the shards of runs already in progress.
  const std::vector<std::string> ids{"2007_000032", "2007_000033", "2007_000250", "2007_003604",
                                     "2007_009258", "2007_009764", "2008_001716", "2008_002681"};
  const std::vector<int> of4{1, 2, 3, 0, 0, 0, 0, 3};
  const std::vector<int> of3{2, 0, 1, 1, 0, 1, 2, 1};
  for (std::size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(shard_of(ids[i], 4), of4[i]) << ids[i];
    EXPECT_EQ(shard_of(ids[i], 3), of3[i]) << ids[i];
  }
}

TEST(Shard, ShardsAreDisjointCoveringOrderedAndBalanced) {
  const auto samples = synthetic_samples(10000);
  for (const int n : {1, 2, 3, 8}) {
    std::multiset<std::string> seen;
    for (int i = 0; i < n; ++i) {
      const auto part = select_samples(samples, Shard{i, n});
      // Each shard keeps the dataset order.
      std::size_t pos = 0;
      for (const auto& s : part) {
        while (pos < samples.size() && samples[pos].id != s.id) ++pos;
        ASSERT_LT(pos, samples.size()) << "shard out of order";
        seen.insert(s.id);
      }
      EXPECT_NEAR(static_cast<double>(part.size()), 10000.0 / n, 0.1 * 10000.0 / n)
          << i << "/" << n;
    }
    EXPECT_EQ(seen.size(), samples.size());                         // covering ...
    for (const auto& s : samples) EXPECT_EQ(seen.count(s.id), 1u);  // ... and disjoint
  }
}

TEST(Shard, MembershipDoesNotDependOnListOrderOrOtherIds) {
  auto samples = synthetic_samples(200);
  const auto forward = select_samples(samples, Shard{1, 3});
  std::reverse(samples.begin(), samples.end());
  samples.resize(150);
  std::set<std::string> a, b;
  for (const auto& s : forward) a.insert(s.id);
  for (const auto& s : select_samples(samples, Shard{1, 3})) b.insert(s.id);
  for (const auto& s : samples) EXPECT_EQ(a.count(s.id), b.count(s.id)) << s.id;
}

TEST(Shard, LimitAppliesAfterTheShard) {
  const auto samples = synthetic_samples(100);
  EXPECT_EQ(select_samples(samples, Shard{}, 5).size(), 5u);
  EXPECT_EQ(select_samples(samples, Shard{}, 0).size(), 0u);
  EXPECT_EQ(select_samples(samples, Shard{}, -1).size(), 100u);
  const auto whole = select_samples(samples, Shard{2, 4});
  const auto limited = select_samples(samples, Shard{2, 4}, 3);
  ASSERT_EQ(limited.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(limited[i].id, whole[i].id);
  EXPECT_EQ(error_of([&] {
              select_samples(samples, Shard{4, 4});
            }),
            "invalid shard 4/4: expected 0 <= I < N");
}

}  // namespace
}  // namespace clipes::data

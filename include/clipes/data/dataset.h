#pragma once
/// Datasets: every layout (VOC, COCO, custom) yields the same ordered list of samples
/// {id, image path, ordered image-level labels}. Problems that concern one image (missing image,
/// no labels, unknown class, an id unusable as a file name) do not fail the dataset: they are
/// recorded in Sample::problem, and the batch runner reports such a sample (id + problem) and
/// skips it. Problems with the dataset as a whole (unreadable split/labels/instances file, a
/// duplicate id, a malformed instances json) throw clipes::Error naming the file and line.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "clipes/core/config_fields.h"

namespace clipes::data {

/// How the dataset folder is organised.
enum class DatasetLayout {
  kVoc,     ///< JPEGImages/<id>.jpg, Annotations/<id>.xml or a labels file, a split file of ids
  kCoco,    ///< images + the reference's label list (`<stem> <idx> ...`) or an instances_*.json
  kCustom,  ///< an image folder + a labels file (`<id> <class> ...`, class by index or name)
};

constexpr auto enum_names(DatasetLayout) {
  return config::EnumNames<DatasetLayout, 3>{{{"voc", DatasetLayout::kVoc},
                                              {"coco", DatasetLayout::kCoco},
                                              {"custom", DatasetLayout::kCustom}}};
}
/// "voc", "coco", "custom".
inline std::string_view to_string(DatasetLayout layout) { return config::enum_name(layout); }
/// Inverse of to_string; std::nullopt for anything else.
inline std::optional<DatasetLayout> parse_dataset_layout(std::string_view text) {
  return config::parse_enum<DatasetLayout>(text);
}

/// Where a dataset's files are. Relative paths are taken from `root`; absolute paths as they are.
struct DatasetConfig {
  DatasetLayout layout = DatasetLayout::kVoc;  ///< folder organisation
  std::string root;                            ///< data root (--data-root); empty: current folder
  std::string images = "JPEGImages";           ///< image folder
  std::string image_ext = ".jpg";  ///< image = <images>/<id><ext>; ".jpg|.png": first that exists
  /// ids: first token per line; empty: every id of the label source, in its order
  std::string split = "ImageSets/Segmentation/train.txt";
  /// labels file `<id> <class> ...`; when set, used instead of the XML annotations (VOC) or the
  /// instances json (COCO)
  std::string labels;
  std::string annotations = "Annotations";  ///< VOC: folder of <id>.xml
  std::string instances;                    ///< COCO: instances_*.json (when `labels` is empty)

  /// `relative` resolved against `root` (absolute paths unchanged).
  std::filesystem::path resolve(const std::string& relative) const;
};

template <class C, class V>
config::FieldsOf<C, DatasetConfig> visit_fields(C& c, V& v) {
  v("layout", c.layout, "folder organisation");
  v("root", c.root, "data root (--data-root); relative paths below are taken from it");
  v("images", c.images, "image folder");
  v("image_ext", c.image_ext, "image = <images>/<id><ext>; \".jpg|.png\": the first that exists");
  v("split", c.split, "file of ids (first token per line); empty: every id of the label source");
  v("labels", c.labels,
    "labels file `<id> <class> ...`; when set, used instead of annotations or instances");
  v("annotations", c.annotations, "VOC: folder of <id>.xml");
  v("instances", c.instances, "COCO: instances_*.json (when labels is empty)");
}

/// One image to process.
struct Sample {
  std::string id;               ///< image id: the stem of every output file
  std::filesystem::path image;  ///< image file
  std::vector<int> labels;      ///< 0-based class indices, unique, in label order
  std::string problem;          ///< non-empty: why this sample cannot be processed (skip it)

  bool ok() const { return problem.empty(); }
};

/// Maps the class tokens of labels files and XML names to 0-based class indices.
/// A token made only of digits is an index (0..size-1); any other token is a class name, matched
/// exactly or with each space of the name written as '_' (`traffic_light` = "traffic light").
class ClassIndex {
 public:
  explicit ClassIndex(std::vector<std::string> names);
  /// The class index of `token`, or std::nullopt when it names no class.
  std::optional<int> find(std::string_view token) const;
  int size() const { return static_cast<int>(names_.size()); }
  const std::vector<std::string>& names() const { return names_; }
  /// "an index 0..19 or a class name" style description for messages.
  std::string expected() const;

 private:
  std::vector<std::string> names_;
  std::unordered_map<std::string, int> by_name_;
};

/// Why `id` cannot name output files ("" when it can): empty, "." or "..", contains '/', '\\',
/// "..", whitespace or control characters, or starts with '.' (hidden files and the atomic
/// writer's temporaries start with '.').
std::string id_problem(std::string_view id);

/// One line of an id list or labels file.
struct LabelLine {
  std::string id;
  int line = 0;             ///< 1-based line number in its file
  std::vector<int> labels;  ///< unique, in file order
  std::string problem;      ///< unknown class / no labels, "file:line: ..." (empty when fine)
};

/// The id of a split file's token: a file name with a .png/.jpg/.jpeg/.npz extension gives its
/// stem ("/JPEGImages/2007_000033.jpg" -> "2007_000033", as deeplab's train_aug.txt); any other
/// token is the id as it is (so "b/c" stays, and is refused as an id by id_problem).
std::string id_of_token(std::string_view token);

/// Ids of a split file, the one reader of id lists for every tool (generate, train-seg, predict,
/// eval): id_of_token of the first whitespace-separated token of each non-blank line that does
/// not start with '#' (so a label list or a deeplab "image mask" list also serves as a split
/// file). Throws clipes::Error for an unreadable file or a duplicate id ("file:line: duplicate
/// id X (first at line N)").
std::vector<LabelLine> read_id_list(const std::filesystem::path& file);

/// read_id_list's ids alone; a file that lists none throws clipes::Error.
std::vector<std::string> read_split_ids(const std::filesystem::path& file);

/// A labels file: `<id> <class> <class> ...` per line, classes as ClassIndex tokens; blank lines
/// and lines starting with '#' are skipped; repeated classes on a line count once. A line with
/// no class or an unknown class gets a `problem`; a duplicate id throws clipes::Error.
std::vector<LabelLine> read_labels_file(const std::filesystem::path& file,
                                        const ClassIndex& classes);

/// Labels of one VOC annotation: the <name> of every <object> under <annotation>, in order of
/// first appearance, repeats dropped. Like the reference, `difficult` and `truncated` objects
/// count (it takes every object name); <part><name> elements (person layout) do not. A missing
/// or malformed file, an unknown name or no object gives `problem` ("file:line: ...").
LabelLine read_voc_xml_labels(const std::filesystem::path& file, const ClassIndex& classes);

/// One image of a COCO instances json.
struct CocoImage {
  std::int64_t image_id = 0;
  std::string file_name;    ///< images[].file_name
  std::vector<int> labels;  ///< sorted ascending (the reference's label lists are)
  std::string problem;      ///< unknown category (with its JSON path) or no annotations
};

/// Reads an instances_*.json: categories sorted by id give the 0-based class indices (the
/// standard 80-class order); every annotation counts, crowd included. The number of categories
/// must equal `num_classes`. Images in images[] order. Throws clipes::Error (file, JSON path) for
/// a malformed file.
std::vector<CocoImage> read_coco_instances(const std::filesystem::path& file, int num_classes);

/// The samples of a dataset, in split order (or label-source order when no split is given).
/// Layouts:
/// - voc: ids from `split` (or the labels file when `split` is empty); labels from `labels` if
///   set, else annotations/<id>.xml; image images/<id><image_ext>.
/// - coco: labels from `labels` (the reference's `<stem> <idx> ...` list) if set, else from
///   `instances`; ids from `split` if set, else the label source's order. A label-list id
///   COCO_train2014_<12 digits> (or val2014) whose image is absent is also looked for as
///   <12 digits><image_ext> (the COCO 2017 name of the same image). An instances image is
///   found as images/<file_name>, else as the 2014 name COCO_train2014_<12-digit id> or
///   COCO_val2014_<12-digit id> with file_name's extension; the sample id is the stem of the
///   file found (so 2014 image folders with a 2017 json work); a split id may be any of these
///   stems.
/// - custom: `labels` is required; ids from `split` if set, else the labels file's order.
/// A missing image, no labels, an unknown class or an unusable id only sets Sample::problem.
std::vector<Sample> read_dataset(const DatasetConfig& config,
                                 const std::vector<std::string>& class_names);

/// One part of a split of the id list across processes or machines (`--shard I/N`).
struct Shard {
  int index = 0;  ///< I, 0-based: 0..count-1
  int count = 1;  ///< N

  bool operator==(const Shard& other) const { return index == other.index && count == other.count; }
};

/// Parses "I/N" (0 <= I < N); throws clipes::Error saying what is expected.
Shard parse_shard(std::string_view text);

/// `--shard auto`: the shard a job scheduler gave this process, from its environment variables
/// (name -> value), first found of: a SLURM job array (SLURM_ARRAY_TASK_ID minus
/// SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT), a Kubernetes indexed job
/// (JOB_COMPLETION_INDEX of JOB_COMPLETIONS, which the pod template sets to the job's
/// completions: Kubernetes exports the index only), a torchrun/srun job (RANK or SLURM_PROCID of
/// WORLD_SIZE or SLURM_NTASKS). `origin` receives which one. Throws clipes::Error when none is
/// there, or a count is missing or the index is outside it.
Shard shard_from_environment(const std::map<std::string, std::string>& env, std::string* origin);

/// The shard (0..count-1) that `id` belongs to: a fixed hash of the id's bytes (64-bit FNV-1a,
/// then the splitmix64 finaliser) modulo count. It depends on nothing but the id and N, so
/// N processes on N machines agree even when their id lists are ordered differently.
int shard_of(std::string_view id, int count);

/// The samples of `shard` (in their order), then at most `limit` of them (limit < 0: all).
std::vector<Sample> select_samples(const std::vector<Sample>& samples, const Shard& shard,
                                   std::int64_t limit = -1);

}  // namespace clipes::data

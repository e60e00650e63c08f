#pragma once
/// The config of clipes-generate: vocabulary (classes with their prompts, background words,
/// template), dataset layout, model files, image-size guard, CAM/CAA/CRF settings, μ and the
/// outputs. JSON schema (every key optional except "classes" and "background"; defaults are the
/// struct defaults below; configs/voc.json holds the reference's values):
///
///   {"name": "voc", "template": "a clean origami {}.",
///    "classes": [{"name": "aeroplane", "prompt": "aeroplane"}, ...],
///    "background": ["ground", "land", ...],
///    "dataset": {"layout": "voc", "root": "", "images": "JPEGImages", "image_ext": ".jpg",
///                "split": "ImageSets/Segmentation/train.txt", "labels": "",
///                "annotations": "Annotations", "instances": ""},
///    "model": "models/ViT-B-16.pt", "vocab": "models/bpe_simple_vocab_16e6.txt.gz",
///    "model_config": "", "model_act": "", "model_heads": [],
///    "input": {"max_side": 0, "max_tokens": 4096},
///    "cam": {"attention_blocks": 8},
///    "caa": {"box_threshold": 0.4, "sinkhorn_rounds": 3, "power": 2, "explicit_power": false},
///    "crf": {"iterations": 10, "pos_std": 1, "pos_weight": 3,
///            "bilateral_std": 67, "bilateral_rgb_std": 3, "bilateral_weight": 4, "image": "rgb"},
///    "mask": {"confidence_threshold": 0.95},
///    "outputs": {"masks": true, "cams": true, "cam_dtype": "float16", "overlays": false}}
///
/// The top-level "classes" array of objects with "name" is a contract: clipes-eval reads the
/// class names from it. Paths: "model" and "vocab" are taken from the current folder, the
/// dataset paths from dataset.root (see data::DatasetConfig).

#include <cstdint>
#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clipes/cam/cam_config.h"
#include "clipes/core/config_fields.h"
#include "clipes/crf/crf_config.h"
#include "clipes/data/dataset.h"
#include "clipes/data/image.h"

namespace clipes::pipeline {

/// One class of the vocabulary. Class i (0-based) is mask value i + 1.
struct ClassConfig {
  std::string name;    ///< class name (labels files may use it; clipes-eval reports it)
  std::string prompt;  ///< text put into the template: comma-joined synonyms; empty = the name
};

template <class C, class V>
config::FieldsOf<C, ClassConfig> visit_fields(C& c, V& v) {
  v("name", c.name, "class name (labels files may use it; clipes-eval reports it)",
    config::kRequired);
  v("prompt", c.prompt, "text put into the template: comma-joined synonyms; empty: the name");
}

/// Guard against images whose attention maps would not fit in memory (spec §3–§4 keep N×N
/// maps, N = ⌈H/16⌉·⌈W/16⌉ patch tokens, 4·N² bytes each).
struct InputConfig {
  int max_side = 0;                ///< > 0: a longer side above it is downscaled to it first
  std::int64_t max_tokens = 4096;  ///< images with more patch tokens (after max_side) are refused
  /// EXIF orientation of JPEGs: kStored (the pixel array, as the reference) or kApply
  /// ("exif_orientation": "apply"); recorded in run.json, followed by train-seg and predict.
  data::ExifOrientation exif_orientation = data::ExifOrientation::kStored;
};

template <class C, class V>
config::FieldsOf<C, InputConfig> visit_fields(C& c, V& v) {
  v("max_side", c.max_side, "> 0: a longer side above it is downscaled to it first");
  v("max_tokens", c.max_tokens, "images with more patch tokens (after max_side) are refused");
  v("exif_orientation", c.exif_orientation,
    "JPEG EXIF orientation: the stored pixel array (as the reference) or applied");
}

/// Storage type of the refined CAMs in cams/<id>.npz.
enum class CamDtype { kFloat16, kFloat32 };
constexpr auto enum_names(CamDtype) {
  return config::EnumNames<CamDtype, 2>{
      {{"float16", CamDtype::kFloat16}, {"float32", CamDtype::kFloat32}}};
}
/// "float16", "float32".
inline std::string_view to_string(CamDtype dtype) { return config::enum_name(dtype); }

/// Which files are written per image.
struct OutputsConfig {
  bool masks = true;  ///< masks/<id>.png + confidence/<id>.png: runs the dense CRF (--no-crf: off)
  bool cams = true;                         ///< cams/<id>.npz (keys, cams, initial)
  CamDtype cam_dtype = CamDtype::kFloat16;  ///< dtype of `cams` in the npz
  bool overlays = false;                    ///< overlays/<id>.jpg for people to look at
  bool labels = false;  ///< labels/<id>.png: the mask before μ (clipes-eval's pre-μ score)
};

template <class C, class V>
config::FieldsOf<C, OutputsConfig> visit_fields(C& c, V& v) {
  v("masks", c.masks, "masks/<id>.png + confidence/<id>.png: runs the dense CRF");
  v("cams", c.cams, "cams/<id>.npz (keys, cams, initial)");
  v("cam_dtype", c.cam_dtype, "dtype of the refined CAMs in the npz");
  v("overlays", c.overlays, "overlays/<id>.jpg for people to look at");
  v("labels", c.labels, "labels/<id>.png: the mask before μ (clipes-eval's pre-μ score)");
}

/// The step after the CRF (spec §7).
struct MaskConfig {
  float confidence_threshold = 0.95f;  ///< μ: pixels with max Q below it become 255 (ignored)
};

template <class C, class V>
config::FieldsOf<C, MaskConfig> visit_fields(C& c, V& v) {
  v("confidence_threshold", c.confidence_threshold,
    "μ: pixels whose CRF probability is below it become 255 (ignored)");
}

struct GenerateConfig {
  std::string name;                                     ///< config name (logs, run.json)
  std::string prompt_template = "a clean origami {}.";  ///< JSON "template": one "{}" (spec §1)
  std::vector<ClassConfig> classes;          ///< the foreground vocabulary, in index order
  std::vector<std::string> background;       ///< background words (spec §1), >= 1
  data::DatasetConfig dataset;               ///< where the images and labels are
  /// CLIP checkpoint: a file or a folder (clip::ClipModel::load).
  std::string model = "models/ViT-B-16.pt";
  /// What the checkpoint may not say (clip::ClipLoadOptions): an open_clip model name or config
  /// file, the activation ("quick_gelu", "gelu") and the head counts [vision, text]; empty:
  /// from the checkpoint.
  std::string model_config;
  std::string model_act;
  std::vector<std::int64_t> model_heads;
  std::string vocab = "models/bpe_simple_vocab_16e6.txt.gz";  ///< CLIP BPE vocabulary
  InputConfig input;                                          ///< image-size guard
  cam::CamConfig cam;                                         ///< softmax-GradCAM (spec §3)
  cam::CaaConfig caa;          ///< class-aware attention affinity (§4)
  crf::CrfConfig crf;          ///< dense CRF (§7)
  MaskConfig mask;             ///< μ (§7)
  OutputsConfig outputs;       ///< optional outputs

  /// The class names in index order.
  std::vector<std::string> class_names() const;
  /// The CRF and μ, as the pseudo-mask step takes them.
  crf::PseudoMaskConfig pseudo_mask() const { return {crf, mask.confidence_threshold}; }
  /// Every range rule, one per line; throws clipes::Error("<source>: <json path> <rule>, got
  /// <value>") at the first failure.
  void validate(const std::string& source) const;
};

template <class C, class V>
config::FieldsOf<C, GenerateConfig> visit_fields(C& c, V& v) {
  v("name", c.name, "config name (logs, run.json)");
  v("template", c.prompt_template, "prompt template: one {} for the class prompt");
  v("classes", c.classes, "the foreground vocabulary in index order: {\"name\", \"prompt\"}");
  v("background", c.background, "background words, at least one");
  v("dataset", c.dataset, "");
  v("model", c.model, "CLIP checkpoint: a file or a folder");
  v("model_config", c.model_config, "open_clip model name or config file; empty: from the file");
  v("model_act", c.model_act, "\"quick_gelu\" or \"gelu\"; empty: from the checkpoint");
  v("model_heads", c.model_heads, "[vision heads, text heads]; empty: from the checkpoint");
  v("vocab", c.vocab, "CLIP BPE vocabulary");
  v("input", c.input, "");
  v("cam", c.cam, "");
  v("caa", c.caa, "");
  v("crf", c.crf, "");
  v("mask", c.mask, "");
  v("outputs", c.outputs, "");
}

/// Reads a config document. Absent keys keep the defaults; unknown keys, wrong types and bad
/// enum strings throw clipes::Error naming `source` and the JSON path. Does not validate.
GenerateConfig read_generate_config(const nlohmann::json& document, const std::string& source);

/// The class-list rules alone (at least one, at most 254, names unique and usable), for tools that
/// read only the vocabulary of a generate config (clipes-eval).
void validate_classes(const std::vector<ClassConfig>& classes, const std::string& source);

/// The class names of a generate config file, "background" first so that entry i names mask value
/// i: the file is read by read_generate_config (a file clipes-generate would refuse is refused)
/// and only the class rules are checked (clipes-eval's --config).
std::vector<std::string> read_config_class_names(const std::filesystem::path& file);

/// Loads `file`, applies each `--set KEY=VALUE` (config::apply_override) to the JSON, reads and
/// validates it. Errors name the file and, when there are overrides, the overrides.
GenerateConfig load_generate_config(const std::filesystem::path& file,
                                    const std::vector<std::string>& overrides = {});

/// The complete resolved config (every field, defaults included) in the schema above; reading it
/// back gives the same config. For run.json.
nlohmann::json to_json(const GenerateConfig& config);

/// Python's `template.format(text)` for a template holding exactly one "{}" and no other brace.
std::string format_prompt(std::string_view prompt_template, std::string_view text);

/// The sentences the text bank encodes (spec §1): template.format(class prompt) per class, in
/// class order, and template.format(word) per background word, in order.
struct PromptTexts {
  std::vector<std::string> foreground;  ///< [num classes]
  std::vector<std::string> background;  ///< [num background words]
};
PromptTexts build_prompt_texts(const GenerateConfig& config);

/// The size an image is processed at.
struct InputSize {
  int width = 0;  ///< after the max_side downscale
  int height = 0;
  bool downscaled = false;  ///< true when max_side shrank the image
  std::int64_t tokens = 0;  ///< ⌈height/patch⌉·⌈width/patch⌉
};

/// Applies the InputConfig rule to a `width`×`height` image: when max_side > 0 and the longer
/// side exceeds it, both sides are scaled by max_side / longer side (rounded, >= 1), so the
/// longer side becomes max_side; then the patch tokens must not exceed max_tokens. Throws
/// clipes::Error with the size, the token count, the limit and what to set otherwise.
InputSize plan_input_size(int width, int height, const InputConfig& config, int patch = 16);

}  // namespace clipes::pipeline

#include "clipes/seg/predict.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <cstring>
#include <opencv2/imgproc.hpp>

#include "clipes/core/error.h"
#include "clipes/crf/pseudo_mask.h"
#include "clipes/data/batch_runner.h"
#include "clipes/io/png.h"
#include "clipes/seg/checkpoint.h"
#include "clipes/seg/deeplab.h"
#include "clipes/seg/seg_data.h"
#include "clipes/seg/trainer.h"

namespace clipes::seg {

Segmenter::Segmenter(const std::filesystem::path& checkpoint, const std::string& device)
    : device_(resolve_device(device)) {
  CheckpointReader reader(checkpoint, device_);
  config_ = reader.state().config;
  model_ = std::make_shared<DeepLabImpl>(config_.model);
  reader.load_model(*model_);
  model_->to(c10::Device(device_));
  model_->eval();
}

Segmenter::~Segmenter() = default;

at::Tensor Segmenter::probabilities(const cv::Mat& bgr, const PredictConfig& config) const {
  if (bgr.empty() || bgr.type() != CV_8UC3) throw Error("predict: expected an 8-bit BGR image");
  if (config.scales.empty()) throw Error("predict: no scales");
  at::NoGradGuard no_grad;
  const at::Tensor image = image_to_input(bgr, config_.input).unsqueeze(0).to(c10::Device(device_));
  const std::int64_t h = image.size(2);
  const std::int64_t w = image.size(3);
  at::Tensor sum;
  int count = 0;
  for (double s : config.scales) {
    if (!(s > 0)) throw Error(fmt::format("predict: scales must be > 0, got {}", s));
    at::Tensor x = image;
    if (s != 1.0) {
      const auto sh = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::floor(h * s)));
      const auto sw = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::floor(w * s)));
      x = at::upsample_bilinear2d(image, {sh, sw}, false, s, s);
    }
    for (int f = 0; f < (config.flip ? 2 : 1); ++f) {
      at::Tensor logits = model_->forward(f == 1 ? x.flip({3}) : x);
      if (f == 1) logits = logits.flip({3});
      logits = at::upsample_bilinear2d(logits, {h, w}, false);
      sum = sum.defined() ? sum + logits : logits;
      ++count;
    }
  }
  return at::softmax(sum[0] / count, 0).to(at::kCPU).contiguous();
}

cv::Mat labels_from_probabilities(const at::Tensor& probabilities) {
  TORCH_CHECK(probabilities.dim() == 3 && probabilities.size(0) <= 255,
              "labels_from_probabilities: expected [C<=255,H,W], got ", probabilities.sizes());
  const at::Tensor labels = probabilities.argmax(0).to(at::kCPU, at::kByte).contiguous();
  cv::Mat out(static_cast<int>(labels.size(0)), static_cast<int>(labels.size(1)), CV_8UC1);
  std::memcpy(out.data, labels.data_ptr(), static_cast<std::size_t>(labels.numel()));
  return out;
}

at::Tensor refine_with_crf(const at::Tensor& probabilities, const cv::Mat& bgr,
                           const crf::CrfConfig& config, crf::CrfWorkspace* workspace) {
  if (probabilities.dim() != 3 || probabilities.size(0) < 2 ||
      probabilities.scalar_type() != at::kFloat || !probabilities.device().is_cpu()) {
    throw Error(
        fmt::format("CRF: expected probabilities [C>=2,H,W] float32 on the CPU, got {} {} on {}",
                    probabilities.sizes(), c10::toString(probabilities.scalar_type()),
                    probabilities.device().str()));
  }
  if (bgr.empty() || bgr.type() != CV_8UC3 || bgr.rows != probabilities.size(1) ||
      bgr.cols != probabilities.size(2)) {
    throw Error(fmt::format(
        "CRF: expected an 8-bit BGR image of {}x{} (the probabilities' width x height), got "
        "{}x{} of type {}",
        probabilities.size(2), probabilities.size(1), bgr.cols, bgr.rows, bgr.type()));
  }
  const at::Tensor p = probabilities.contiguous();
  crf::PlanarView view{p.data_ptr<float>(), static_cast<int>(p.size(0)),
                       static_cast<int>(p.size(1)), static_cast<int>(p.size(2))};
  // pydensecrf's unary_from_softmax: −log(clip(P, 1e−5, 1)) in float32.
  const std::vector<float> unary = crf::crf_unary(view, crf::CrfImageMode::kRgb);
  view.data = unary.data();
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  const crf::DenseCrf crf(crf::crf_input_image(rgb, config.image), config, workspace);
  std::vector<float> q = crf.infer(view, workspace);
  return at::from_blob(q.data(), p.sizes(), at::kFloat).clone();
}

namespace {

// The reporter line of a prediction run: images, scales, flip, CRF, classes, device.
std::string describe_prediction(std::size_t images, const PredictConfig& config,
                                const Segmenter& segmenter) {
  const crf::CrfConfig& c = config.crf_config;
  return fmt::format(
      "{} images; scales {}{}{}; {} classes; on {}", images, fmt::join(config.scales, ","),
      config.flip ? " + flip" : "",
      config.crf ? fmt::format(" + dense CRF ({} iterations, position {}/{}, bilateral {}/{}/{}, "
                               "{} image)",
                               c.iterations, c.pos_weight, c.pos_std, c.bilateral_weight,
                               c.bilateral_std, c.bilateral_rgb_std, crf::to_string(c.image))
                 : "",
      segmenter.config().model.num_classes, segmenter.device());
}

}  // namespace

PredictSummary predict_folder(const PredictInputs& inputs, const PredictConfig& config,
                              Reporter& reporter) {
  if (config.crf) crf::validate(config.crf_config, config::Validator("predict").nested("crf"));
  const auto listed = list_images(inputs.images, inputs.split);
  std::vector<data::BatchItem> items;
  for (const auto& [id, file] : listed) items.push_back({id, ""});
  data::BatchRunner runner(items, {"predict", inputs.shard, -1, nullptr}, reporter);
  std::vector<std::pair<std::string, std::filesystem::path>> images;
  for (const std::size_t i : runner.selected()) images.push_back(listed[i]);
  if (inputs.shard.count > 1) {
    reporter.info(fmt::format("shard {}/{}: {} of the {} images", inputs.shard.index,
                              inputs.shard.count, images.size(), listed.size()));
  }
  Segmenter segmenter(inputs.checkpoint, inputs.device);
  // The image policy of the training run (itself that of the masks' generate run).
  const data::ExifOrientation exif = exif_policy(segmenter.config().input);
  throw_if_problems(check_images(images, exif, config.crf_config.threads),
                    fmt::format("images to predict ({}; nothing was written)", images.size()));
  reporter.info(describe_prediction(images.size(), config, segmenter));
  crf::CrfWorkspace workspace;  // one per worker: reused by every image
  std::filesystem::create_directories(inputs.out);
  const io::Palette palette = data::mask_palette();
  runner.run([&](std::size_t index) {
    const auto& [id, file] = listed[index];
    const cv::Mat bgr = read_image_bgr(file, exif);
    at::Tensor probabilities = segmenter.probabilities(bgr, config);
    if (config.crf) {
      probabilities = refine_with_crf(probabilities, bgr, config.crf_config, &workspace);
    }
    io::write_png_indexed(inputs.out / (id + ".png"), labels_from_probabilities(probabilities),
                          palette);
    return data::ItemOutcome::kDone;
  });
  PredictSummary summary;
  summary.written = runner.counts().done;
  for (const auto& failure : runner.failures()) {
    summary.failures.emplace_back(failure.id, failure.reason);
  }
  return summary;
}

}  // namespace clipes::seg

#pragma once
/// Initial weights of the segmentation model: a state dict that LibTorch can unpickle, keyed with
/// the model's `base` names (deeplab.h). scripts/convert_init_weights.py turns the published
/// files (deeplab-pytorch's Caffe-converted COCO init, its trained MSC models, Caffe-layout
/// ImageNet ResNets and torchvision ResNets) into such an archive:
///   {"format": "clipes-seg-init-1", "layout": "caffe"|"pytorch", "source": str,
///    "state_dict": {name: float32 tensor}}
/// A plain {name: tensor} dict saved by Python's torch.save (zip format) is read too, with the
/// prefixes `module.` and `base.` stripped and `num_batches_tracked` ignored.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace clipes::seg {

class DeepLabImpl;

struct InitWeightsReport {
  std::int64_t backbone_tensors = 0;  ///< ResNet parameters and buffers loaded
  bool classifier_loaded = false;     ///< ASPP loaded too (same classes); else kept from scratch
  std::string classifier_note;        ///< why the ASPP was not loaded (absent, other classes)
  std::vector<std::string> unused;    ///< names in the file that the model does not have
  std::string layout;                 ///< the file's layout ("" when it does not say)
};

/// Loads `file` into `model.base()`. Every backbone tensor (ResNet conv weights, frozen batch
/// norm weight/bias/running_mean/running_var) must be present with the model's shape: otherwise
/// throws clipes::Error naming every missing and every mis-shaped tensor. The ASPP is loaded only
/// when all its tensors are present with matching shapes (initial weights usually have other
/// classes). A file LibTorch cannot read, or one whose layout differs from the model's, throws
/// an error that names scripts/convert_init_weights.py.
InitWeightsReport load_init_weights(DeepLabImpl& model, const std::filesystem::path& file);

}  // namespace clipes::seg

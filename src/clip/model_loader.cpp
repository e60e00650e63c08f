// Reading CLIP weight files with LibTorch's TorchScript loader and unpickler. The only file of
// the clip area that includes <torch/script.h> (slow to compile): everything else is ATen.

#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>
#include <torch/csrc/api/include/torch/cuda.h>
#include <torch/script.h>
#include <torch/serialize.h>

#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "clip_weights.h"
#include "clipes/core/error.h"

namespace clipes::clip::detail {
namespace {

// LibTorch's messages carry a C++ backtrace; its first line says what happened.
std::string first_line(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  std::string text = c10_error != nullptr ? c10_error->what_without_backtrace() : e.what();
  const auto end = text.find('\n');
  if (end != std::string::npos) text.resize(end);
  return text;
}

bool read_torchscript(const std::filesystem::path& file, NamedTensors* out, std::string* why) {
  torch::jit::Module module;
  try {
    module = torch::jit::load(file.string(), c10::Device(c10::kCPU));
  } catch (const std::exception& e) {
    *why = first_line(e);
    return false;
  }
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    out->tensors[p.name] = p.value.detach();
  }
  for (const auto& b : module.named_buffers(/*recurse=*/true)) {
    out->tensors[b.name] = b.value.detach();
  }
  for (const auto& m : module.named_modules()) {
    if (m.value.hasattr("num_heads")) {
      const auto value = m.value.attr("num_heads");
      if (value.isInt()) out->num_heads[m.name] = value.toInt();
    }
  }
  out->format = "TorchScript archive";
  return true;
}

// True when `file` is a torch.save zip archive whose pickle names collections.OrderedDict.
bool pickles_ordered_dict(const std::filesystem::path& file) {
  try {
    caffe2::serialize::PyTorchStreamReader reader(file.string());
    if (!reader.hasRecord("data.pkl")) return false;
    const auto [data, size] = reader.getRecord("data.pkl");
    const std::string_view pickle(static_cast<const char*>(data.get()), size);
    return pickle.find("collections\nOrderedDict") != std::string_view::npos;
  } catch (const std::exception&) {
    return false;
  }
}

bool read_state_dict(const std::filesystem::path& file, NamedTensors* out, std::string* why) {
  // torch::pickle_load reads its buffer through an adapter without bounds checks: a file that is
  // not a well-formed zip archive makes LibTorch 1.13 read past the end of the buffer. Its file
  // reader (bounded reads) checks the archive first.
  try {
    caffe2::serialize::PyTorchStreamReader reader(file.string());
    if (!reader.hasRecord("data.pkl")) {
      *why = "the zip archive holds no data.pkl";
      return false;
    }
  } catch (const std::exception& e) {
    *why = first_line(e);
    return false;
  }
  std::ifstream in(file, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const std::exception& e) {
    if (pickles_ordered_dict(file)) {
      throw Error(fmt::format(
          "CLIP model file {} is a torch.save'd collections.OrderedDict (what "
          "model.state_dict() returns), which LibTorch 1.13 cannot unpickle (it reads an "
          "OrderedDict as None); save a plain dict instead, torch.save(dict(state_dict), path), "
          "or use the TorchScript release file as it is",
          file.string()));
    }
    *why = first_line(e);
    return false;
  }
  if (!value.isGenericDict()) {
    *why = fmt::format("the pickle holds a {}, not a dict of tensors", value.tagKind());
    return false;
  }
  for (const auto& entry : value.toGenericDict()) {
    if (!entry.key().isString() || !entry.value().isTensor()) continue;
    out->tensors[entry.key().toStringRef()] = entry.value().toTensor().detach();
  }
  if (out->tensors.empty()) {
    *why = "the dict holds no named tensors";
    return false;
  }
  out->format = "state dict";
  return true;
}

}  // namespace

NamedTensors read_named_tensors(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) {
    throw Error(fmt::format("CLIP model file {} does not exist", file.string()));
  }
  if (!std::filesystem::is_regular_file(file, ec)) {
    throw Error(fmt::format("CLIP model file {} is not a regular file", file.string()));
  }
  NamedTensors named;
  std::string why_script;
  if (read_torchscript(file, &named, &why_script)) return named;
  named = NamedTensors{};
  std::string why_pickle;
  if (read_state_dict(file, &named, &why_pickle)) return named;
  throw Error(fmt::format(
      "CLIP model file {} is neither a TorchScript archive (torch.jit.save, the format of "
      "OpenAI's ViT-B-16.pt) nor a torch.save'd state dict (truncated or not a model file?): "
      "as TorchScript: {}; as a state dict: {}",
      file.string(), why_script, why_pickle));
}

c10::Device parse_device(const std::string& text) {
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(text);
  } catch (const std::exception&) {
    throw Error(fmt::format("device must be \"cpu\", \"cuda\" or \"cuda:N\", got \"{}\"", text));
  }
  if (device.is_cpu()) return device;
  if (!device.is_cuda()) {
    throw Error(fmt::format("device must be \"cpu\", \"cuda\" or \"cuda:N\", got \"{}\"", text));
  }
  const auto count = static_cast<std::int64_t>(torch::cuda::device_count());
  if (count == 0) {
    throw Error(fmt::format(
        "device \"{}\" requested but CUDA is not available (this LibTorch build has no CUDA "
        "support or no GPU is visible; Debian's libtorch-dev is CPU-only: build with the cuda "
        "preset and a CUDA LibTorch)",
        text));
  }
  if (device.has_index() && device.index() >= count) {
    throw Error(
        fmt::format("device \"{}\" requested but only {} CUDA device(s) are visible", text, count));
  }
  return device;
}

}  // namespace clipes::clip::detail

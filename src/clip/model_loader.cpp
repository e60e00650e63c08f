// Reading CLIP weight files with LibTorch's TorchScript loader and unpickler. The only file of
// the clip area that includes <torch/script.h> (slow to compile): everything else is ATen
// (checkpoint.cpp tells the formats apart and maps names).

#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>
#include <torch/csrc/api/include/torch/cuda.h>
#include <torch/script.h>
#include <torch/serialize.h>

#include <fstream>
#include <map>
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
  std::map<std::string, std::string> activations;  // mlp.gelu module name -> its class
  for (const auto& m : module.named_modules()) {
    if (m.value.hasattr("num_heads")) {
      const auto value = m.value.attr("num_heads");
      if (value.isInt()) out->num_heads[m.name] = value.toInt();
    }
    // OpenAI's blocks name their activation module mlp.gelu; its class says which it is.
    const auto type = m.value.type()->name();
    if (type && m.name.size() >= 9 && m.name.compare(m.name.size() - 9, 9, ".mlp.gelu") == 0) {
      activations[m.name] = type->name();
    }
  }
  out->info.format = "TorchScript archive";
  out->openai_head_rule = true;
  for (const char* name :
       {"visual.transformer.resblocks.0.mlp.gelu", "transformer.resblocks.0.mlp.gelu"}) {
    const auto it = activations.find(name);
    if (it == activations.end()) continue;
    const std::string source = fmt::format("archive module {} ({})", name, it->second);
    Activation activation;
    if (it->second == "QuickGELU") {
      activation = Activation::kQuickGelu;
    } else if (it->second == "GELU") {
      activation = Activation::kGelu;
    } else {
      throw Error(fmt::format("CLIP model file {} (TorchScript archive): {} is a {}, but clipes "
                              "runs QuickGELU or GELU MLPs",
                              file.string(), name, it->second));
    }
    declare_activation(out, activation, source);
  }
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
          "model.state_dict() returns, e.g. pytorch_model.bin, open_clip_pytorch_model.bin), "
          "which LibTorch 1.13 cannot unpickle (it reads an OrderedDict as None); convert it to "
          "safetensors with Python: {}",
          file.string(), to_safetensors_command(file)));
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
  out->info.format = "state dict";
  return true;
}

// torch.save's format before PyTorch 1.6: a bare pickle (protocol 2 and up), not a zip.
bool is_legacy_pickle(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  unsigned char head[2] = {};
  return static_cast<bool>(in.read(reinterpret_cast<char*>(head), 2)) && head[0] == 0x80 &&
         head[1] >= 2 && head[1] <= 5;
}

}  // namespace

NamedTensors read_torch_file(const std::filesystem::path& file) {
  NamedTensors named;
  named.info.weights = file;
  std::string why_script;
  if (read_torchscript(file, &named, &why_script)) return named;
  named = NamedTensors{};
  named.info.weights = file;
  std::string why_pickle;
  if (read_state_dict(file, &named, &why_pickle)) return named;
  if (is_legacy_pickle(file)) {
    throw Error(fmt::format(
        "CLIP model file {} is a torch.save file in the format before PyTorch 1.6 (a bare "
        "pickle, not a zip archive), which LibTorch cannot read; convert it to safetensors with "
        "Python: {}",
        file.string(), to_safetensors_command(file)));
  }
  throw Error(fmt::format(
      "CLIP model file {} is neither a TorchScript archive (torch.jit.save, the format of "
      "OpenAI's ViT-B-16.pt), a torch.save'd state dict nor a safetensors file (truncated or "
      "not a model file?): as TorchScript: {}; as a state dict: {}",
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

#include "clipes/io/npy_tensor.h"

#include <ATen/ATen.h>

#include <cstring>

#include <fmt/format.h>

#include "clipes/core/error.h"

namespace clipes::io {

namespace {

at::ScalarType scalar_type(DType dtype) {
  switch (dtype) {
    case DType::kBool: return at::kBool;
    case DType::kUInt8: return at::kByte;
    case DType::kInt8: return at::kChar;
    case DType::kInt16: return at::kShort;
    case DType::kInt32: return at::kInt;
    case DType::kInt64: return at::kLong;
    case DType::kFloat16: return at::kHalf;
    case DType::kFloat32: return at::kFloat;
    case DType::kFloat64: return at::kDouble;
    case DType::kUInt16: break;
  }
  throw Error("uint16 arrays have no ATen dtype; read them with NpyArray::to_int64()");
}

DType npy_dtype(at::ScalarType type) {
  switch (type) {
    case at::kBool: return DType::kBool;
    case at::kByte: return DType::kUInt8;
    case at::kChar: return DType::kInt8;
    case at::kShort: return DType::kInt16;
    case at::kInt: return DType::kInt32;
    case at::kLong: return DType::kInt64;
    case at::kHalf: return DType::kFloat16;
    case at::kFloat: return DType::kFloat32;
    case at::kDouble: return DType::kFloat64;
    default: break;
  }
  throw Error(fmt::format("no .npy dtype for tensor type {}", c10::toString(type)));
}

}  // namespace

at::Tensor to_tensor(const NpyArray& array) {
  auto tensor = at::empty(array.shape, at::TensorOptions().dtype(scalar_type(array.dtype)));
  if (!array.bytes.empty()) std::memcpy(tensor.data_ptr(), array.bytes.data(), array.bytes.size());
  return tensor;
}

NpyArray from_tensor(const at::Tensor& tensor) {
  const auto cpu = tensor.detach().to(at::kCPU).contiguous();
  NpyArray array;
  array.dtype = npy_dtype(cpu.scalar_type());
  array.shape.assign(cpu.sizes().begin(), cpu.sizes().end());
  array.bytes.resize(static_cast<std::size_t>(cpu.numel()) * cpu.element_size());
  if (!array.bytes.empty()) std::memcpy(array.bytes.data(), cpu.data_ptr(), array.bytes.size());
  return array;
}

at::Tensor read_npy_tensor(const std::filesystem::path& file) { return to_tensor(read_npy(file)); }

}  // namespace clipes::io

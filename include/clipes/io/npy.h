#pragma once
/// NumPy .npy and .npz files (format version 1.0/2.0/3.0, little-endian, C order), without
/// LibTorch: the CRF, the evaluator and the tests read reference dumps with these. For tensors
/// see clipes/io/npy_tensor.h.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clipes::io {

enum class DType { kBool, kUInt8, kInt8, kUInt16, kInt16, kInt32, kInt64, kFloat16, kFloat32, kFloat64 };

std::size_t dtype_size(DType dtype);
/// NumPy's descr string, e.g. "<f4", "|u1".
std::string dtype_descr(DType dtype);

/// One array: raw little-endian bytes in C order.
struct NpyArray {
  DType dtype = DType::kFloat32;
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> bytes;

  std::int64_t numel() const;
  /// Typed view; throws clipes::Error if T does not match the dtype (float16 is std::uint16_t).
  template <class T>
  const T* data() const;
  template <class T>
  T* mutable_data();
  /// Every element converted to float32 / float64 / int64, whatever the stored dtype.
  std::vector<float> to_float32() const;
  std::vector<double> to_float64() const;
  std::vector<std::int64_t> to_int64() const;

  /// An array of `shape` holding a copy of `values` (numel(shape) elements).
  template <class T>
  static NpyArray from(std::vector<std::int64_t> shape, const T* values);
  /// float32 values stored as float16 (round to nearest even).
  static NpyArray float16_from(std::vector<std::int64_t> shape, const float* values);
};

/// Parses .npy bytes; `what` names the source in errors.
NpyArray parse_npy(std::string_view bytes, std::string_view what);
std::string serialize_npy(const NpyArray& array);
NpyArray read_npy(const std::filesystem::path& file);
/// Writes atomically (temporary file, then rename).
void write_npy(const std::filesystem::path& file, const NpyArray& array);

/// Members of an .npz archive in archive order, names without the ".npy" suffix.
using NpzEntries = std::vector<std::pair<std::string, NpyArray>>;
/// Reads stored and deflated members (np.savez and np.savez_compressed), zip64 included.
NpzEntries read_npz(const std::filesystem::path& file);
/// The member called `name`; throws clipes::Error naming the file and the members present.
const NpyArray& npz_member(const NpzEntries& entries, std::string_view name,
                           const std::filesystem::path& file);
/// Serialises an uncompressed .npz (what np.savez writes); numpy and read_npz read it.
std::string serialize_npz(const NpzEntries& entries);
/// Writes atomically.
void write_npz(const std::filesystem::path& file, const NpzEntries& entries);

}  // namespace clipes::io

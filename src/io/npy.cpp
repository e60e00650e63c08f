#include "clipes/io/npy.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <numeric>

#include <fmt/format.h>

#include "clipes/core/error.h"
#include "clipes/io/files.h"
#include "clipes/io/half.h"

namespace clipes::io {

namespace {

struct DTypeInfo {
  DType dtype;
  const char* descr;
  std::size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kBool, "|b1", 1},     {DType::kUInt8, "|u1", 1},   {DType::kInt8, "|i1", 1},
    {DType::kUInt16, "<u2", 2},   {DType::kInt16, "<i2", 2},   {DType::kInt32, "<i4", 4},
    {DType::kInt64, "<i8", 8},    {DType::kFloat16, "<f2", 2}, {DType::kFloat32, "<f4", 4},
    {DType::kFloat64, "<f8", 8},
};

const DTypeInfo& info(DType dtype) {
  for (const auto& entry : kDTypes) {
    if (entry.dtype == dtype) return entry;
  }
  throw Error("unknown npy dtype");
}

template <class T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, bool>) return DType::kBool;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return DType::kUInt8;
  else if constexpr (std::is_same_v<T, std::int8_t>) return DType::kInt8;
  else if constexpr (std::is_same_v<T, std::uint16_t>) return DType::kUInt16;
  else if constexpr (std::is_same_v<T, std::int16_t>) return DType::kInt16;
  else if constexpr (std::is_same_v<T, std::int32_t>) return DType::kInt32;
  else if constexpr (std::is_same_v<T, std::int64_t>) return DType::kInt64;
  else if constexpr (std::is_same_v<T, float>) return DType::kFloat32;
  else if constexpr (std::is_same_v<T, double>) return DType::kFloat64;
  else static_assert(sizeof(T) == 0, "unsupported npy element type");
}

// Value of `key` in the header dict text, e.g. "'descr': '<f4'" -> "'<f4'".
std::string header_value(const std::string& header, const std::string& key, std::string_view what) {
  const auto at = header.find("'" + key + "'");
  if (at == std::string::npos) {
    throw Error(fmt::format("{}: npy header has no '{}' entry: {}", what, key, header));
  }
  auto colon = header.find(':', at);
  auto start = header.find_first_not_of(' ', colon + 1);
  std::size_t end = start;
  if (header[start] == '(') {
    end = header.find(')', start) + 1;
  } else if (header[start] == '\'') {
    end = header.find('\'', start + 1) + 1;
  } else {
    end = header.find_first_of(",}", start);
  }
  return header.substr(start, end - start);
}

// The bytes of a Fortran-order (column-major) array rearranged into C order.
std::vector<std::uint8_t> fortran_to_c_order(const NpyArray& a) {
  const std::size_t item = dtype_size(a.dtype);
  const std::size_t rank = a.shape.size();
  const auto n = static_cast<std::size_t>(a.numel());
  std::vector<std::size_t> fortran_stride(rank, 1);
  for (std::size_t d = 1; d < rank; ++d) {
    fortran_stride[d] = fortran_stride[d - 1] * static_cast<std::size_t>(a.shape[d - 1]);
  }
  std::vector<std::uint8_t> out(a.bytes.size());
  std::vector<std::int64_t> index(rank, 0);  // C-order multi-index of element i
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t source = 0;
    for (std::size_t d = 0; d < rank; ++d) source += static_cast<std::size_t>(index[d]) * fortran_stride[d];
    std::copy_n(a.bytes.begin() + static_cast<std::ptrdiff_t>(source * item), item,
                out.begin() + static_cast<std::ptrdiff_t>(i * item));
    for (std::size_t d = rank; d-- > 0;) {
      if (++index[d] < a.shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

template <class Out>
std::vector<Out> convert_all(const NpyArray& a) {
  const std::int64_t n = a.numel();
  std::vector<Out> out(static_cast<std::size_t>(n));
  auto fill = [&](auto tag) {
    using T = decltype(tag);
    const T* p = reinterpret_cast<const T*>(a.bytes.data());
    for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<Out>(p[i]);
  };
  switch (a.dtype) {
    case DType::kBool:
    case DType::kUInt8: fill(std::uint8_t{}); break;
    case DType::kInt8: fill(std::int8_t{}); break;
    case DType::kUInt16: fill(std::uint16_t{}); break;
    case DType::kInt16: fill(std::int16_t{}); break;
    case DType::kInt32: fill(std::int32_t{}); break;
    case DType::kInt64: fill(std::int64_t{}); break;
    case DType::kFloat32: fill(float{}); break;
    case DType::kFloat64: fill(double{}); break;
    case DType::kFloat16: {
      const auto* p = reinterpret_cast<const std::uint16_t*>(a.bytes.data());
      for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<Out>(half_to_float(p[i]));
      break;
    }
  }
  return out;
}

// ---- zip helpers ----------------------------------------------------------------------------

std::uint16_t get16(const std::string& s, std::size_t at) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(s[at]) |
                                    (static_cast<unsigned char>(s[at + 1]) << 8));
}
std::uint32_t get32(const std::string& s, std::size_t at) {
  return static_cast<std::uint32_t>(get16(s, at)) |
         (static_cast<std::uint32_t>(get16(s, at + 2)) << 16);
}
std::uint64_t get64(const std::string& s, std::size_t at) {
  return static_cast<std::uint64_t>(get32(s, at)) |
         (static_cast<std::uint64_t>(get32(s, at + 4)) << 32);
}
void put16(std::string& s, std::uint32_t v) {
  s.push_back(static_cast<char>(v & 0xff));
  s.push_back(static_cast<char>((v >> 8) & 0xff));
}
void put32(std::string& s, std::uint32_t v) {
  put16(s, v & 0xffff);
  put16(s, v >> 16);
}

std::string inflate_raw(std::string_view compressed, std::size_t expected, std::string_view what) {
  std::string out(expected, '\0');
  z_stream stream{};
  if (inflateInit2(&stream, -MAX_WBITS) != Z_OK) throw Error(fmt::format("{}: zlib init failed", what));
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  stream.avail_in = static_cast<uInt>(compressed.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&stream, Z_FINISH);
  const auto produced = stream.total_out;
  inflateEnd(&stream);
  if (rc != Z_STREAM_END || produced != expected) {
    throw Error(fmt::format("{}: corrupt deflate data", what));
  }
  return out;
}

}  // namespace

std::size_t dtype_size(DType dtype) { return info(dtype).size; }
std::string dtype_descr(DType dtype) { return info(dtype).descr; }

std::int64_t NpyArray::numel() const {
  return std::accumulate(shape.begin(), shape.end(), std::int64_t{1}, std::multiplies<>());
}

template <class T>
const T* NpyArray::data() const {
  constexpr bool is_half = std::is_same_v<T, std::uint16_t>;
  if (!(dtype == dtype_of<T>() || (is_half && dtype == DType::kFloat16))) {
    throw Error(fmt::format("npy array holds {}, asked for another type", dtype_descr(dtype)));
  }
  return reinterpret_cast<const T*>(bytes.data());
}

template <class T>
T* NpyArray::mutable_data() {
  return const_cast<T*>(static_cast<const NpyArray*>(this)->data<T>());
}

template <class T>
NpyArray NpyArray::from(std::vector<std::int64_t> shape, const T* values) {
  NpyArray a;
  a.dtype = dtype_of<T>();
  a.shape = std::move(shape);
  a.bytes.resize(static_cast<std::size_t>(a.numel()) * sizeof(T));
  if (!a.bytes.empty()) std::memcpy(a.bytes.data(), values, a.bytes.size());
  return a;
}

#define CLIPES_NPY_INSTANTIATE(T)                                                  \
  template const T* NpyArray::data<T>() const;                                     \
  template T* NpyArray::mutable_data<T>();                                         \
  template NpyArray NpyArray::from<T>(std::vector<std::int64_t>, const T*);
CLIPES_NPY_INSTANTIATE(bool)
CLIPES_NPY_INSTANTIATE(std::uint8_t)
CLIPES_NPY_INSTANTIATE(std::int8_t)
CLIPES_NPY_INSTANTIATE(std::uint16_t)
CLIPES_NPY_INSTANTIATE(std::int16_t)
CLIPES_NPY_INSTANTIATE(std::int32_t)
CLIPES_NPY_INSTANTIATE(std::int64_t)
CLIPES_NPY_INSTANTIATE(float)
CLIPES_NPY_INSTANTIATE(double)
#undef CLIPES_NPY_INSTANTIATE

NpyArray NpyArray::float16_from(std::vector<std::int64_t> shape, const float* values) {
  NpyArray a;
  a.dtype = DType::kFloat16;
  a.shape = std::move(shape);
  const auto n = static_cast<std::size_t>(a.numel());
  a.bytes.resize(n * 2);
  auto* out = reinterpret_cast<std::uint16_t*>(a.bytes.data());
  for (std::size_t i = 0; i < n; ++i) out[i] = float_to_half(values[i]);
  return a;
}

std::vector<float> NpyArray::to_float32() const { return convert_all<float>(*this); }
std::vector<double> NpyArray::to_float64() const { return convert_all<double>(*this); }
std::vector<std::int64_t> NpyArray::to_int64() const { return convert_all<std::int64_t>(*this); }

NpyArray parse_npy(std::string_view bytes, std::string_view what) {
  static constexpr char kMagic[] = "\x93NUMPY";
  if (bytes.size() < 10 || bytes.substr(0, 6) != std::string_view(kMagic, 6)) {
    throw Error(fmt::format("{}: not a .npy file (bad magic)", what));
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  std::size_t header_len = 0;
  std::size_t offset = 0;
  const std::string all(bytes.substr(0, std::min<std::size_t>(bytes.size(), 12)));
  if (major == 1) {
    header_len = get16(all, 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw Error(fmt::format("{}: truncated .npy header", what));
    header_len = get32(all, 8);
    offset = 12;
  } else {
    throw Error(fmt::format("{}: unsupported .npy version {}", what, major));
  }
  if (offset + header_len > bytes.size()) throw Error(fmt::format("{}: truncated .npy header", what));
  const std::string header(bytes.substr(offset, header_len));
  std::string descr = header_value(header, "descr", what);
  descr = descr.substr(1, descr.size() - 2);
  if (descr.size() == 3 && descr[0] == '=') descr[0] = '<';
  if (descr == "<b1" || descr == "<u1" || descr == "<i1") descr[0] = '|';
  NpyArray array;
  bool known = false;
  for (const auto& entry : kDTypes) {
    if (descr == entry.descr) {
      array.dtype = entry.dtype;
      known = true;
    }
  }
  if (!known) {
    throw Error(fmt::format("{}: unsupported dtype '{}' (expected little-endian bool, int, uint or "
                            "float)", what, descr));
  }
  std::string order = header_value(header, "fortran_order", what);
  order.erase(order.find_last_not_of(' ') + 1);
  if (order != "False" && order != "True") {
    throw Error(fmt::format("{}: fortran_order must be True or False, got '{}'", what, order));
  }
  const bool fortran_order = order == "True";
  const std::string shape_text = header_value(header, "shape", what);
  std::size_t pos = 1;
  while (pos < shape_text.size()) {
    const auto next = shape_text.find_first_of(",)", pos);
    const std::string number = shape_text.substr(pos, next - pos);
    if (number.find_first_not_of(' ') != std::string::npos) array.shape.push_back(std::stoll(number));
    pos = next + 1;
  }
  const std::size_t data_offset = offset + header_len;
  const std::size_t expected = static_cast<std::size_t>(array.numel()) * dtype_size(array.dtype);
  if (bytes.size() - data_offset < expected) {
    throw Error(fmt::format("{}: truncated .npy data ({} bytes, expected {})", what,
                            bytes.size() - data_offset, expected));
  }
  array.bytes.assign(bytes.begin() + data_offset, bytes.begin() + data_offset + expected);
  if (fortran_order && array.shape.size() > 1) array.bytes = fortran_to_c_order(array);
  return array;
}

std::string serialize_npy(const NpyArray& array) {
  std::string shape = "(";
  for (std::size_t i = 0; i < array.shape.size(); ++i) {
    shape += std::to_string(array.shape[i]);
    shape += (array.shape.size() == 1 || i + 1 < array.shape.size()) ? "," : "";
    if (i + 1 < array.shape.size()) shape += " ";
  }
  shape += ")";
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
                                   dtype_descr(array.dtype), shape);
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  put16(out, static_cast<std::uint32_t>(header.size()));
  out += header;
  out.append(reinterpret_cast<const char*>(array.bytes.data()), array.bytes.size());
  return out;
}

NpyArray read_npy(const std::filesystem::path& file) {
  return parse_npy(read_file(file), file.string());
}

void write_npy(const std::filesystem::path& file, const NpyArray& array) {
  write_file_atomic(file, serialize_npy(array));
}

NpzEntries read_npz(const std::filesystem::path& file) {
  const std::string zip = read_file(file);
  const std::string what = file.string();
  // End of central directory: search backwards for its signature.
  if (zip.size() < 22) throw Error(fmt::format("{}: not an .npz (zip) file: too short", what));
  std::size_t eocd = std::string::npos;
  for (std::size_t i = zip.size() - 22 + 1; i-- > 0 && zip.size() - i <= 22 + 65535;) {
    if (get32(zip, i) == 0x06054b50u) {
      eocd = i;
      break;
    }
  }
  if (eocd == std::string::npos) throw Error(fmt::format("{}: not an .npz (zip) file", what));
  std::uint64_t count = get16(zip, eocd + 10);
  std::uint64_t cd_offset = get32(zip, eocd + 16);
  if (cd_offset == 0xffffffffu || count == 0xffffu) {  // zip64 end record
    if (eocd < 20 || get32(zip, eocd - 20) != 0x07064b50u) {
      throw Error(fmt::format("{}: zip64 locator missing", what));
    }
    const std::uint64_t record = get64(zip, eocd - 20 + 8);
    if (record + 56 > zip.size() || get32(zip, record) != 0x06064b50u) {
      throw Error(fmt::format("{}: corrupt zip64 record", what));
    }
    count = get64(zip, record + 32);
    cd_offset = get64(zip, record + 48);
  }
  NpzEntries entries;
  std::size_t at = cd_offset;
  for (std::uint64_t n = 0; n < count; ++n) {
    if (at + 46 > zip.size() || get32(zip, at) != 0x02014b50u) {
      throw Error(fmt::format("{}: corrupt zip central directory", what));
    }
    const std::uint16_t method = get16(zip, at + 10);
    std::uint64_t compressed = get32(zip, at + 20);
    std::uint64_t size = get32(zip, at + 24);
    const std::uint16_t name_len = get16(zip, at + 28);
    const std::uint16_t extra_len = get16(zip, at + 30);
    const std::uint16_t comment_len = get16(zip, at + 32);
    std::uint64_t local = get32(zip, at + 42);
    std::string name = zip.substr(at + 46, name_len);
    // zip64 extended information: the fields that were 0xffffffff, in order.
    std::size_t extra = at + 46 + name_len;
    const std::size_t extra_end = extra + extra_len;
    while (extra + 4 <= extra_end) {
      const std::uint16_t id = get16(zip, extra);
      const std::uint16_t len = get16(zip, extra + 2);
      if (id == 0x0001) {
        std::size_t field = extra + 4;
        if (size == 0xffffffffu) { size = get64(zip, field); field += 8; }
        if (compressed == 0xffffffffu) { compressed = get64(zip, field); field += 8; }
        if (local == 0xffffffffu) { local = get64(zip, field); }
      }
      extra += 4 + len;
    }
    at = extra_end + comment_len;
    if (local + 30 > zip.size() || get32(zip, local) != 0x04034b50u) {
      throw Error(fmt::format("{}: corrupt zip entry {}", what, name));
    }
    const std::size_t data = local + 30 + get16(zip, local + 26) + get16(zip, local + 28);
    if (data + compressed > zip.size()) throw Error(fmt::format("{}: truncated entry {}", what, name));
    const std::string member_what = what + ":" + name;
    std::string bytes;
    if (method == 0) {
      bytes = zip.substr(data, compressed);
    } else if (method == 8) {
      bytes = inflate_raw(std::string_view(zip).substr(data, compressed), size, member_what);
    } else {
      throw Error(fmt::format("{}: unsupported zip compression method {}", member_what, method));
    }
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) name.resize(name.size() - 4);
    entries.emplace_back(name, parse_npy(bytes, member_what));
  }
  return entries;
}

const NpyArray& npz_member(const NpzEntries& entries, std::string_view name,
                           const std::filesystem::path& file) {
  std::string present;
  for (const auto& [key, array] : entries) {
    if (key == name) return array;
    present += present.empty() ? key : ", " + key;
  }
  throw Error(fmt::format("{}: no array '{}' in the archive (it holds: {})", file.string(), name,
                          present.empty() ? "nothing" : present));
}

std::string serialize_npz(const NpzEntries& entries) {
  std::string out;
  std::string central;
  for (const auto& [key, array] : entries) {
    const std::string name = key + ".npy";
    const std::string payload = serialize_npy(array);
    if (payload.size() >= 0xffffffffu || out.size() >= 0xffffffffu) {
      throw Error(fmt::format("npz member {} is too large for a plain zip (4 GB)", name));
    }
    const auto crc = static_cast<std::uint32_t>(
        crc32(0L, reinterpret_cast<const Bytef*>(payload.data()), static_cast<uInt>(payload.size())));
    const auto offset = static_cast<std::uint32_t>(out.size());
    auto header = [&](std::string& s, bool central_entry) {
      put32(s, central_entry ? 0x02014b50u : 0x04034b50u);
      if (central_entry) put16(s, 20);  // version made by
      put16(s, 20);                      // version needed
      put16(s, 0);                       // flags
      put16(s, 0);                       // stored
      put16(s, 0);                       // time
      put16(s, 0x21);                    // date 1980-01-01
      put32(s, crc);
      put32(s, static_cast<std::uint32_t>(payload.size()));
      put32(s, static_cast<std::uint32_t>(payload.size()));
      put16(s, static_cast<std::uint32_t>(name.size()));
      put16(s, 0);  // extra
      if (central_entry) {
        put16(s, 0);  // comment
        put16(s, 0);  // disk
        put16(s, 0);  // internal attributes
        put32(s, 0);  // external attributes
        put32(s, offset);
      }
      s += name;
    };
    header(out, false);
    out += payload;
    header(central, true);
  }
  const auto cd_offset = static_cast<std::uint32_t>(out.size());
  out += central;
  put32(out, 0x06054b50u);
  put16(out, 0);
  put16(out, 0);
  put16(out, static_cast<std::uint32_t>(entries.size()));
  put16(out, static_cast<std::uint32_t>(entries.size()));
  put32(out, static_cast<std::uint32_t>(central.size()));
  put32(out, cd_offset);
  put16(out, 0);
  return out;
}

void write_npz(const std::filesystem::path& file, const NpzEntries& entries) {
  write_file_atomic(file, serialize_npz(entries));
}

}  // namespace clipes::io

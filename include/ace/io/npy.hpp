// SPDX-License-Identifier: MIT
// The .npy format (NumPy 1.0/2.0/3.0 headers): a writer and a strict reader that rejects anything malformed.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "ace/error.hpp"
#include "ace/io/files.hpp"

namespace ace::io {

static_assert(std::endian::native == std::endian::little,
              "ace: .npy checkpoints are written little-endian; big-endian hosts are not supported.");

/// The NumPy dtype string of a scalar type: "<f4" (float32), "<f8" (float64), "<i4" (int32) or "<i8" (int64).
template <class T>
constexpr std::string_view npy_dtype() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int32_t> ||
                    std::is_same_v<T, std::int64_t>,
                "ace: .npy I/O supports float, double, int32 and int64 arrays.");
  if constexpr (std::is_same_v<T, float>) return "<f4";
  else if constexpr (std::is_same_v<T, double>) return "<f8";
  else if constexpr (std::is_same_v<T, std::int32_t>) return "<i4";
  else return "<i8";
}

/// A human name for a dtype string ("float32" for "<f4").
inline std::string dtype_name(std::string_view dtype) {
  if (dtype == "<f4") return "float32";
  if (dtype == "<f8") return "float64";
  if (dtype == "<i4") return "int32";
  if (dtype == "<i8") return "int64";
  return std::string(dtype);
}

/// Bytes per entry of the dtypes read_npy accepts (float32, float64, int32, int64, little-endian); 0 for any other.
constexpr std::size_t npy_itemsize(std::string_view dtype) {
  if (dtype == "<f4" || dtype == "<i4") return 4;
  if (dtype == "<f8" || dtype == "<i8") return 8;
  return 0;
}

/// A parsed .npy file: dtype string, shape and the raw little-endian data bytes.
struct NpyArray {
  std::string dtype;
  std::vector<std::size_t> shape;
  std::vector<char> bytes;

  std::size_t count() const {
    std::size_t n = 1;
    for (std::size_t d : shape) n *= d;
    return n;
  }
  bool is_integer() const { return dtype == "<i4" || dtype == "<i8"; }

  /// The entries converted to T. Integer arrays convert to any arithmetic T (an entry T cannot hold exactly throws);
  /// floating-point arrays only to floating-point T: reading coordinates as indices is an error, not a truncation.
  /// `what` names the array in messages.
  template <class T>
  std::vector<T> values(const std::string& what) const {
    static_assert(std::is_arithmetic_v<T>, "ace: NpyArray::values converts to an arithmetic type.");
    ACE_THROW_IF(!is_integer() && !std::is_floating_point_v<T>, io_error, what, " holds ", dtype,
                 " floating-point data where integers are expected");
    std::vector<T> out(count());
    const auto convert = [&]<class S>(S) {
      for (std::size_t i = 0; i < out.size(); ++i) {
        S v;
        std::memcpy(&v, bytes.data() + i * sizeof(S), sizeof(S));
        if constexpr (std::is_integral_v<S> && std::is_integral_v<T>)
          ACE_THROW_IF(!std::in_range<T>(v), io_error, what, ": entry ", i, " = ", v, " does not fit the ",
                       sizeof(T) * 8, "-bit integer type it is read into");
        out[i] = static_cast<T>(v);
      }
    };
    if (dtype == "<f4") convert(float{});
    else if (dtype == "<f8") convert(double{});
    else if (dtype == "<i4") convert(std::int32_t{});
    else convert(std::int64_t{});
    return out;
  }
};

namespace detail {
/// 64-bit FNV-1a: a cheap checksum that catches corrupted data bytes a header check cannot see.
inline std::uint64_t fnv1a(const char* data, std::size_t n, std::uint64_t h = 0xcbf29ce484222325ULL) {
  for (std::size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 0x100000001b3ULL;
  }
  return h;
}

/// The value text after `'key':` in a header dict, up to the next top-level comma or the closing brace.
inline std::string_view header_value(std::string_view header, std::string_view key, const std::string& file) {
  const std::string quoted = "'" + std::string(key) + "'";
  const std::size_t at = header.find(quoted);
  ACE_THROW_IF(at == std::string_view::npos, io_error, file, ": the .npy header has no ", quoted, " entry");
  std::size_t i = at + quoted.size();
  while (i < header.size() && header[i] == ' ') ++i;
  ACE_THROW_IF(i >= header.size() || header[i] != ':', io_error, file, ": malformed .npy header near ", quoted);
  ++i;
  while (i < header.size() && header[i] == ' ') ++i;
  std::size_t end = i;
  if (end < header.size() && header[end] == '(') {
    end = header.find(')', end);
    ACE_THROW_IF(end == std::string_view::npos, io_error, file, ": unterminated shape tuple in the .npy header");
    ++end;
  } else {
    while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
  }
  return header.substr(i, end - i);
}

inline std::vector<std::size_t> parse_shape(std::string_view tuple, const std::string& file) {
  ACE_THROW_IF(tuple.size() < 2 || tuple.front() != '(' || tuple.back() != ')', io_error, file,
               ": the .npy shape is not a tuple: ", tuple);
  std::vector<std::size_t> shape;
  std::size_t i = 1;
  const std::size_t end = tuple.size() - 1;
  while (i < end) {
    while (i < end && (tuple[i] == ' ' || tuple[i] == ',')) ++i;
    if (i >= end) break;
    std::size_t value = 0;
    const std::size_t start = i;
    while (i < end && tuple[i] >= '0' && tuple[i] <= '9') {
      const std::size_t digit = static_cast<std::size_t>(tuple[i] - '0');
      ACE_THROW_IF(value > (std::numeric_limits<std::size_t>::max() - digit) / 10, io_error, file,
                   ": a .npy dimension overflows: ", tuple);
      value = value * 10 + digit;
      ++i;
    }
    ACE_THROW_IF(i == start, io_error, file, ": the .npy shape has a non-integer entry: ", tuple);
    while (i < end && tuple[i] == ' ') ++i;
    ACE_THROW_IF(i < end && tuple[i] != ',', io_error, file, ": malformed .npy shape: ", tuple);
    shape.push_back(value);
  }
  return shape;
}
}  // namespace detail

namespace detail {
/// The header of a C-order .npy file (format 1.0, padded to 64 bytes) for `data` with the given shape; `path` names
/// the file in errors.
template <class T>
std::string npy_header(const std::filesystem::path& path, std::span<const T> data,
                       std::span<const std::size_t> shape) {
  std::size_t count = 1;
  std::string dims;
  for (std::size_t d : shape) {
    count *= d;
    dims += std::to_string(d) + ", ";
  }
  ACE_THROW_IF(count != data.size(), shape_error, "write_npy(", path.string(), "): shape holds ", count,
               " entries, the data ", data.size());
  if (shape.size() == 1) dims.pop_back();  // "(n,)"
  else if (!dims.empty()) dims.resize(dims.size() - 2);
  std::string dict = ::ace::detail::concat("{'descr': '", npy_dtype<T>(), "', 'fortran_order': False, 'shape': (", dims,
                                    "), }");
  const std::size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict.push_back('\n');
  ACE_THROW_IF(dict.size() > 65535, unsupported, "write_npy: header too long for format 1.0 (", dict.size(), ")");
  std::string head = "\x93NUMPY";
  head.push_back('\x01');
  head.push_back('\x00');
  head.push_back(static_cast<char>(dict.size() & 0xff));
  head.push_back(static_cast<char>(dict.size() >> 8));
  head += dict;
  return head;
}
}  // namespace detail

/// Writes a C-order .npy file (format 1.0, header padded to 64 bytes) holding `data` with the given shape.
template <class T>
void write_npy(const std::filesystem::path& path, std::span<const T> data, std::span<const std::size_t> shape) {
  detail::write_file_durably(path, detail::npy_header(path, data, shape), reinterpret_cast<const char*>(data.data()),
                             data.size() * sizeof(T));
}

/// write_npy through a temporary file renamed into place (write_file_atomically): readers never see a partial
/// array, and a failed write leaves the previous file and no temporary.
template <class T>
void write_npy_atomically(const std::filesystem::path& path, std::span<const T> data,
                          std::span<const std::size_t> shape) {
  write_file_atomically(path, detail::npy_header(path, data, shape), reinterpret_cast<const char*>(data.data()),
                        data.size() * sizeof(T));
}

/// Parses the bytes of a .npy file strictly: the magic string, a known format version, a well-formed header dict
/// with 'descr', 'fortran_order' (must be False) and 'shape', and a data section of exactly shape × itemsize bytes.
/// Anything else (truncated, padded, random bytes, unknown dtype) throws io_error naming `file` and the problem.
inline NpyArray parse_npy(std::span<const char> raw, const std::string& file) {
  ACE_THROW_IF(raw.size() < 10 || std::string_view(raw.data(), 6) != "\x93NUMPY", io_error, file,
               " is not a .npy file (bad magic string or shorter than a header)");
  const auto byte = [&](std::size_t i) { return static_cast<std::size_t>(static_cast<unsigned char>(raw[i])); };
  const std::size_t major = byte(6);
  ACE_THROW_IF(major < 1 || major > 3, io_error, file, ": unknown .npy format version ", major, ".", byte(7));
  const std::size_t prefix = major == 1 ? 10 : 12;
  ACE_THROW_IF(raw.size() < prefix, io_error, file, ": truncated .npy header");
  std::size_t header_len = byte(8) | (byte(9) << 8);
  if (major > 1) header_len |= (byte(10) << 16) | (byte(11) << 24);
  ACE_THROW_IF(header_len > raw.size() - prefix, io_error, file, ": truncated .npy header (", header_len,
               " bytes announced, ", raw.size() - prefix, " present)");
  const std::string_view header(raw.data() + prefix, header_len);
  ACE_THROW_IF(header.empty() || header.front() != '{' || header.back() != '\n' ||
                   header.find('}') == std::string_view::npos,
               io_error, file, ": malformed .npy header");
  NpyArray out;
  const std::string_view descr = detail::header_value(header, "descr", file);
  ACE_THROW_IF(descr.size() < 2 || descr.front() != '\'' || descr.back() != '\'', io_error, file,
               ": malformed dtype in the .npy header: ", descr);
  out.dtype = std::string(descr.substr(1, descr.size() - 2));
  const std::size_t item = npy_itemsize(out.dtype);
  ACE_THROW_IF(item == 0, io_error, file, ": unsupported dtype '", out.dtype,
               "' (ace reads little-endian float32 '<f4', float64 '<f8', int32 '<i4' and int64 '<i8')");
  const std::string_view order = detail::header_value(header, "fortran_order", file);
  ACE_THROW_IF(order != "False", io_error, file, ": only C-order .npy files are supported (fortran_order is ", order,
               ")");
  out.shape = detail::parse_shape(detail::header_value(header, "shape", file), file);
  std::size_t count = 1;
  for (std::size_t d : out.shape) {
    ACE_THROW_IF(d != 0 && count > std::numeric_limits<std::size_t>::max() / item / d, io_error, file,
                 ": the .npy shape is too large");
    count *= d;
  }
  const std::size_t data_at = prefix + header_len;
  ACE_THROW_IF(raw.size() - data_at != count * item, io_error, file, ": the data section has ", raw.size() - data_at,
               " bytes, the header announces ", count, " x ", item, " = ", count * item,
               (raw.size() - data_at < count * item ? " (truncated file)" : " (trailing garbage)"));
  out.bytes.assign(raw.begin() + static_cast<std::ptrdiff_t>(data_at), raw.end());
  return out;
}

/// Reads a .npy file strictly (parse_npy); io_error names the file.
inline NpyArray read_npy(const std::filesystem::path& path) {
  return parse_npy(detail::read_whole_file(path), path.string());
}

}  // namespace ace::io

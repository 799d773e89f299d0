// SPDX-License-Identifier: MIT
// Checkpoints: a directory of .npy tensors plus a manifest, published atomically; strict, all-or-nothing loading.
#pragma once

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "ace/error.hpp"
#include "ace/io/npy.hpp"
#include "ace/backend/default.hpp"
#include "ace/tensor/parameter.hpp"

#if __has_include(<unistd.h>)
#include <cerrno>
#include <csignal>
#include <unistd.h>
#endif

namespace ace {
/// "<input space> -> <output space>" of a module (defined with the layer protocol, nn/module.hpp, which every module's
/// header includes); io only names it, so it depends on parameter views, not on layers.
template <class M>
std::string module_signature();
}  // namespace ace

namespace ace::io {

/// One tensor listed in a manifest.
struct CheckpointTensor {
  std::string name;
  std::string dtype;  // "<f4" or "<f8"
  std::vector<std::size_t> shape;
  std::string file;        // relative to the checkpoint directory
  std::uint64_t checksum;  // FNV-1a of the data bytes
};

inline constexpr std::string_view manifest_name = "manifest.txt";
inline constexpr std::string_view manifest_magic = "ace-checkpoint 1";

namespace detail {
inline std::filesystem::path sibling(const std::filesystem::path& dir, std::string_view suffix) {
  std::filesystem::path p = dir;
  p += suffix;
  return p;
}
inline void require_token(std::string_view text, std::string_view what) {
  ACE_THROW_IF(text.empty() || text.find_first_of(" \t\r\n") != std::string_view::npos, invalid_argument,
               "checkpoint ", what, " must be non-empty without spaces or newlines, got '", text, "'");
}
/// A parameter's shape as recorded in checkpoints: its own, or [size] for a flat one (empty ParamView::shape).
template <class T>
std::vector<std::size_t> param_shape(const ParamView<T>& p) {
  if (p.shape.empty()) return {p.value.size()};
  return {p.shape.begin(), p.shape.end()};
}
inline std::string shape_text(std::span<const std::size_t> shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}
}  // namespace detail

/// Removes what interrupted saves left beside the checkpoint `dir`: the temporary directories "<dir>.tmp-<pid>-<n>"
/// of writers whose process no longer runs (killed while writing: never published, and nothing else would delete
/// them), and the previous checkpoint set aside as "<dir>.old" once "<dir>" is complete (a save killed just after
/// publishing). Every save calls it; a Checkpointer calls it when created, for a resumed run that may not save again.
/// Where processes cannot be probed (no POSIX), temporaries are left alone.
inline void tidy_checkpoint(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ignored;
  if (fs::exists(dir / manifest_name)) fs::remove_all(detail::sibling(dir, ".old"), ignored);
#if __has_include(<unistd.h>)
  const fs::path parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
  const std::string prefix = dir.filename().string() + ".tmp-";
  std::error_code ec;
  for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    long pid = 0;
    const char* first = name.data() + prefix.size();
    const auto [next, err] = std::from_chars(first, name.data() + name.size(), pid);
    if (err != std::errc() || next == first || *next != '-' || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge
    fs::remove_all(it->path(), ignored);
  }
#endif
}

/// Writes a checkpoint: tensors and text values go to a temporary sibling directory, and commit() publishes it under
/// the final name with renames (the previous checkpoint, if any, is replaced only once the new one is complete).
/// If the writer is destroyed without commit(), or anything throws, the temporary directory is removed and the
/// previous checkpoint is untouched. A crash at any moment leaves either the old or the new checkpoint loadable
/// (CheckpointReader falls back to "<dir>.old" when "<dir>" is missing); the next save into the same place removes
/// what saves killed while writing left behind (tidy_checkpoint).
class CheckpointWriter {
 public:
  explicit CheckpointWriter(std::filesystem::path dir) : dir_(std::move(dir)) {
    static std::atomic<unsigned> counter{0};
#if __has_include(<unistd.h>)
    const long pid = static_cast<long>(::getpid());
#else
    const long pid = 0;
#endif
    tmp_ = detail::sibling(dir_, ::ace::detail::concat(".tmp-", pid, "-", counter++));
    std::error_code ec;
    tidy_checkpoint(dir_);
    std::filesystem::remove_all(tmp_, ec);
    std::filesystem::create_directories(tmp_, ec);
    ACE_THROW_IF(ec, io_error, "cannot save the checkpoint ", dir_.string(), ": cannot create ", tmp_.string(), ": ",
                 ec.message());
  }
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;
  ~CheckpointWriter() {
    if (!committed_) {
      std::error_code ec;
      std::filesystem::remove_all(tmp_, ec);
    }
  }

  /// A one-line description of the model's structure; loading into a model with another signature throws.
  void set_signature(std::string signature) {
    ACE_THROW_IF(signature.find('\n') != std::string::npos, invalid_argument,
                 "a checkpoint signature must be one line");
    signature_ = std::move(signature);
  }
  /// A text value (no newlines) stored in the manifest, e.g. a step counter or an RNG state.
  void set_value(const std::string& key, const std::string& value) {
    detail::require_token(key, "value keys");
    ACE_THROW_IF(value.find('\n') != std::string::npos, invalid_argument, "checkpoint value '", key,
                 "' must be one line");
    values_[key] = value;
  }
  /// Adds a tensor (written immediately to the temporary directory). Names are unique tokens without spaces.
  template <class T>
  void add(const std::string& name, std::span<const T> data, std::span<const std::size_t> shape) {
    detail::require_token(name, "tensor names");
    ACE_THROW_IF(std::any_of(tensors_.begin(), tensors_.end(), [&](const auto& t) { return t.name == name; }),
                 invalid_argument, "checkpoint tensor '", name, "' added twice");
    CheckpointTensor t{name, std::string(npy_dtype<T>()), {shape.begin(), shape.end()},
                       ::ace::detail::concat("t", tensors_.size(), ".npy"), 0};
    t.checksum = detail::fnv1a(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(T));
    saving([&] { write_npy<T>(tmp_ / t.file, data, shape); });
    tensors_.push_back(std::move(t));
  }

  /// Writes the manifest and publishes the directory. After commit the writer is done.
  void commit() {
    ACE_THROW_IF(committed_, invalid_argument, "CheckpointWriter::commit called twice");
    std::ostringstream m;
    m << manifest_magic << "\n";
    m << "signature " << signature_ << "\n";
    for (const auto& [key, value] : values_) m << "value " << key << " " << value << "\n";
    for (const auto& t : tensors_) {
      m << "tensor " << t.name << " " << t.dtype << " " << t.file << " " << std::hex << t.checksum << std::dec << " "
        << t.shape.size();
      for (std::size_t d : t.shape) m << " " << d;
      m << "\n";
    }
    m << "end " << tensors_.size() << "\n";
    const std::string text = m.str();
    saving([&] { detail::write_file_durably(tmp_ / manifest_name, text, nullptr, 0); });
    detail::sync_directory(tmp_);

    namespace fs = std::filesystem;
    const fs::path old = detail::sibling(dir_, ".old");
    std::error_code ec;
    if (fs::exists(dir_)) {
      fs::remove_all(old, ec);
      fs::rename(dir_, old, ec);
      ACE_THROW_IF(ec, io_error, "cannot move the previous checkpoint ", dir_.string(), " aside: ", ec.message());
    }
    fs::rename(tmp_, dir_, ec);
    ACE_THROW_IF(ec, io_error, "cannot publish the checkpoint ", dir_.string(), ": ", ec.message());
    committed_ = true;
    if (dir_.has_parent_path()) detail::sync_directory(dir_.parent_path());
    fs::remove_all(old, ec);
  }

 private:
  /// Runs a write into the temporary directory; its io_error says which checkpoint could not be saved.
  template <class F>
  void saving(F&& write) {
    try {
      write();
    } catch (const io_error& e) {
      throw io_error(::ace::detail::concat("cannot save the checkpoint ", dir_.string(), ": ", e.what()));
    }
  }

  std::filesystem::path dir_, tmp_;
  std::string signature_;
  std::map<std::string, std::string> values_;
  std::vector<CheckpointTensor> tensors_;
  bool committed_ = false;
};

/// True when `dir` holds a published checkpoint, or a save into it was interrupted between its two renames and the
/// previous one waits at "<dir>.old": whenever CheckpointReader(dir) has a checkpoint to open.
inline bool checkpoint_exists(const std::filesystem::path& dir) {
  return std::filesystem::exists(dir / manifest_name) ||
         std::filesystem::exists(detail::sibling(dir, ".old") / manifest_name);
}

/// Reads a checkpoint directory: the manifest is parsed and validated on construction; tensors are read, checked
/// (format, dtype, shape, checksum) and converted on request. Every problem throws io_error naming the file.
class CheckpointReader {
 public:
  explicit CheckpointReader(std::filesystem::path dir) : dir_(std::move(dir)) {
    namespace fs = std::filesystem;
    if (!fs::exists(dir_ / manifest_name) && fs::exists(detail::sibling(dir_, ".old") / manifest_name))
      dir_ = detail::sibling(dir_, ".old");  // a save was interrupted between its two renames
    parse(dir_ / manifest_name);
  }

  const std::filesystem::path& directory() const { return dir_; }
  const std::string& signature() const { return signature_; }
  const std::vector<CheckpointTensor>& tensors() const { return tensors_; }
  std::optional<std::string> value(const std::string& key) const {
    const auto it = values_.find(key);
    return it == values_.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
  const CheckpointTensor* find(std::string_view name) const {
    for (const auto& t : tensors_)
      if (t.name == name) return &t;
    return nullptr;
  }

  /// Reads tensor `name` into out (sized by the caller). Throws checkpoint_mismatch when it is missing or its
  /// dtype or shape differs from the caller's, io_error when the file is damaged.
  template <class T>
  void read(std::string_view name, std::span<T> out, std::span<const std::size_t> shape) const {
    const CheckpointTensor* t = find(name);
    ACE_THROW_IF(t == nullptr, checkpoint_mismatch, "checkpoint ", dir_.string(), " has no tensor '", name, "'");
    ACE_THROW_IF(t->dtype != npy_dtype<T>(), checkpoint_mismatch, "checkpoint tensor '", name, "' is ",
                 dtype_name(t->dtype), ", the model's is ", dtype_name(npy_dtype<T>()));
    ACE_THROW_IF(!std::equal(t->shape.begin(), t->shape.end(), shape.begin(), shape.end()), checkpoint_mismatch,
                 "checkpoint tensor '", name, "' has shape ", detail::shape_text(t->shape), ", the model's is ",
                 detail::shape_text(shape));
    const std::filesystem::path path = dir_ / t->file;
    const NpyArray a = read_npy(path);
    ACE_THROW_IF(a.dtype != t->dtype || a.shape != t->shape, io_error, path.string(), " holds ",
                 dtype_name(a.dtype), " ", detail::shape_text(a.shape), " but the manifest lists ",
                 dtype_name(t->dtype), " ", detail::shape_text(t->shape));
    ACE_THROW_IF(detail::fnv1a(a.bytes.data(), a.bytes.size()) != t->checksum, io_error, path.string(),
                 ": the data does not match the manifest's checksum (corrupted file)");
    ACE_THROW_IF(out.size() * sizeof(T) != a.bytes.size(), shape_error, "CheckpointReader::read('", name,
                 "'): the output holds ", out.size(), " entries, the tensor ", a.count());
    std::memcpy(out.data(), a.bytes.data(), a.bytes.size());
  }

 private:
  void parse(const std::filesystem::path& path) {
    const std::string file = path.string();
    std::ifstream in(path);
    ACE_THROW_IF(!in, io_error, "cannot open the checkpoint manifest ", file);
    std::string line;
    ACE_THROW_IF(!std::getline(in, line) || line != manifest_magic, io_error, file,
                 " is not an ace checkpoint manifest (first line '", line.substr(0, 40), "')");
    bool ended = false;
    std::size_t number = 1;
    while (std::getline(in, line)) {
      ++number;
      ACE_THROW_IF(ended, io_error, file, ":", number, ": text after the end line");
      const std::size_t space = line.find(' ');
      const std::string kind = line.substr(0, space);
      const std::string rest = space == std::string::npos ? std::string() : line.substr(space + 1);
      std::istringstream fields(rest);
      if (kind == "signature") {
        signature_ = rest;
      } else if (kind == "value") {
        const std::size_t gap = rest.find(' ');
        ACE_THROW_IF(gap == std::string::npos || gap == 0, io_error, file, ":", number, ": malformed value line");
        values_[rest.substr(0, gap)] = rest.substr(gap + 1);
      } else if (kind == "tensor") {
        CheckpointTensor t;
        std::size_t rank = 0;
        fields >> t.name >> t.dtype >> t.file >> std::hex >> t.checksum >> std::dec >> rank;
        ACE_THROW_IF(!fields || rank > 8, io_error, file, ":", number, ": malformed tensor line '", line, "'");
        t.shape.resize(rank);
        for (auto& d : t.shape) fields >> d;
        std::string extra;
        ACE_THROW_IF(!fields || (fields >> extra), io_error, file, ":", number, ": malformed tensor line '", line,
                     "'");
        ACE_THROW_IF(t.file.find('/') != std::string::npos || t.file.find('\\') != std::string::npos ||
                         t.file.starts_with("."),
                     io_error, file, ":", number, ": tensor file '", t.file, "' is not a plain file name");
        tensors_.push_back(std::move(t));
      } else if (kind == "end") {
        std::size_t count = 0;
        fields >> count;
        ACE_THROW_IF(!fields || count != tensors_.size(), io_error, file, ":", number,
                     ": the end line does not match the ", tensors_.size(), " tensors listed");
        ended = true;
      } else {
        ACE_THROW_IF(true, io_error, file, ":", number, ": unknown manifest line '", line.substr(0, 40), "'");
      }
    }
    ACE_THROW_IF(!ended, io_error, file, ": truncated manifest (no end line)");
  }

  std::filesystem::path dir_;
  std::string signature_;
  std::map<std::string, std::string> values_;
  std::vector<CheckpointTensor> tensors_;
};

namespace detail {
/// What a checkpoint records about a model's structure: model.signature() (composites and models with run-time
/// widths have one; modules get "<input space> -> <output space>" from nn/module.hpp's module_signature).
template <class M>
std::string model_signature(M& model) {
  if constexpr (requires { { model.signature() } -> std::convertible_to<std::string>; })
    return std::string(model.signature());
  else if constexpr (requires { { M::signature() } -> std::convertible_to<std::string>; })
    return M::signature();
  else
    return ::ace::module_signature<M>();
}
}  // namespace detail

/// Adds every parameter of `model` as "param/<name>" and every buffer (HasBuffers: batch-norm running statistics)
/// as "buffer/<name>" (float64), and sets the signature and scalar type.
template <class M>
void add_parameters(CheckpointWriter& writer, M& model) {
  using Scalar = typename M::scalar;
  using B = backend_of_t<M>;
  writer.set_signature(detail::model_signature(model));
  writer.set_value("scalar", dtype_name(npy_dtype<Scalar>()));
  model.for_each_parameter([&](ParamView<Scalar> p) {
    const auto host = to_host_vector<B>(p.value);
    writer.add<Scalar>("param/" + p.name, std::span<const Scalar>(host), detail::param_shape(p));
  });
  if constexpr (HasBuffers<M>)
    model.for_each_buffer([&](BufferView b) {
      const std::size_t shape[] = {b.value.size()};
      const auto host = to_host_vector<B>(b.value);
      writer.add<double>("buffer/" + b.name, std::span<const double>(host), shape);
    });
}

/// Loads every parameter (and buffer) of `model` from a checkpoint, all or nothing: the signature, the scalar type,
/// the list of parameter and buffer names and every shape are checked, and all tensors are read and verified before
/// the first value of the model is overwritten. Throws checkpoint_mismatch naming the first difference, io_error
/// for damaged files.
template <class M>
void load_parameters(const CheckpointReader& reader, M& model) {
  using Scalar = typename M::scalar;
  using B = backend_of_t<M>;
  const std::string expected = detail::model_signature(model);
  ACE_THROW_IF(reader.signature() != expected, checkpoint_mismatch, "checkpoint ", reader.directory().string(),
               " was saved from a model with signature\n  ", reader.signature(), "\nnot\n  ", expected);
  const std::string scalar = dtype_name(npy_dtype<Scalar>());
  ACE_THROW_IF(reader.value("scalar") != scalar, checkpoint_mismatch, "checkpoint ", reader.directory().string(),
               " holds ", reader.value("scalar").value_or("<no scalar type>"), " parameters, the model is ", scalar);
  std::vector<std::vector<Scalar>> staged;
  std::vector<std::string> names;
  model.for_each_parameter([&](ParamView<Scalar> p) {
    staged.emplace_back(p.value.size());
    reader.read<Scalar>("param/" + p.name, std::span<Scalar>(staged.back()), detail::param_shape(p));
    names.push_back("param/" + p.name);
  });
  std::vector<std::vector<double>> buffers;
  if constexpr (HasBuffers<M>)
    model.for_each_buffer([&](BufferView b) {
      buffers.emplace_back(b.value.size());
      const std::size_t shape[] = {b.value.size()};
      reader.read<double>("buffer/" + b.name, std::span<double>(buffers.back()), shape);
      names.push_back("buffer/" + b.name);
    });
  for (const auto& t : reader.tensors())
    ACE_THROW_IF((t.name.starts_with("param/") || t.name.starts_with("buffer/")) &&
                     std::find(names.begin(), names.end(), t.name) == names.end(),
                 checkpoint_mismatch, "checkpoint tensor '", t.name, "' has no ",
                 t.name.starts_with("param/") ? "parameter" : "buffer", " of that name in the model");
  std::size_t i = 0;
  model.for_each_parameter([&](ParamView<Scalar> p) { from_host_vector<B>(staged[i++], p.value); });
  i = 0;
  if constexpr (HasBuffers<M>) model.for_each_buffer([&](BufferView b) { from_host_vector<B>(buffers[i++], b.value); });
}

/// Saves the parameters of `model` to the directory `dir` atomically (see CheckpointWriter).
template <class M>
void save_checkpoint(const std::filesystem::path& dir, M& model) {
  CheckpointWriter writer(dir);
  add_parameters(writer, model);
  writer.commit();
}

/// Loads parameters saved by save_checkpoint into `model` (all or nothing, see load_parameters).
template <class M>
void load_checkpoint(const std::filesystem::path& dir, M& model) {
  load_parameters(CheckpointReader(dir), model);
}

}  // namespace ace::io

// SPDX-License-Identifier: MIT
// The CUDA backend, ace::Cuda: device memory in DeviceArray (cudaMalloc / cudaFree, RAII), every operation of the
// Backend concept from KernelOps (kernel_ops.hpp) launched on the calling thread's stream, GEMM by cuBLAS. This
// header is plain C++: it includes no CUDA header, so code that uses the backend compiles with any C++20 compiler
// and links the compiled target ace::cuda (src/cuda/, built with nvcc when ACE_WITH_CUDA is on). docs/backends.md
// says why, and what runs where.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "ace/backend/concept.hpp"
#include "ace/backend/cuda/exec.hpp"
#include "ace/backend/cuda/kernel_ops.hpp"

namespace ace {

/// A row-major N-d array in device memory: a shape and an owning pointer. Copies copy the entries on the device;
/// a new or grown array holds zeros, and resizing keeps the leading entries (like HostArray). Entries are reached
/// through backend operations and to_host / from_host only.
template <class T, std::size_t N>
class DeviceArray {
 public:
  using value_type = T;
  using shape_type = std::array<std::size_t, N>;

  DeviceArray() = default;
  explicit DeviceArray(const shape_type& shape) { resize(shape); }
  DeviceArray(const DeviceArray& o) : shape_(o.shape_), size_(o.size_), capacity_(o.size_) {
    if (size_ == 0) return;
    data_ = static_cast<T*>(cuda::detail::allocate(size_ * sizeof(T)));
    cuda::detail::copy_bytes(data_, o.data_, size_ * sizeof(T));
  }
  DeviceArray(DeviceArray&& o) noexcept : shape_(o.shape_), data_(o.data_), size_(o.size_), capacity_(o.capacity_) {
    o.data_ = nullptr;
    o.size_ = o.capacity_ = 0;
    o.shape_ = {};
  }
  DeviceArray& operator=(DeviceArray o) noexcept {
    swap(o);
    return *this;
  }
  ~DeviceArray() { cuda::detail::release(data_); }

  const shape_type& shape() const noexcept { return shape_; }
  std::size_t size() const noexcept { return size_; }
  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }

  void resize(const shape_type& shape) {
    std::size_t n = 1;
    for (std::size_t d : shape) n *= d;
    if (n > capacity_) {
      T* grown = static_cast<T*>(cuda::detail::allocate(n * sizeof(T)));
      if (size_ != 0) cuda::detail::copy_bytes(grown, data_, size_ * sizeof(T));
      cuda::detail::zero_bytes(grown + size_, (n - size_) * sizeof(T));
      cuda::detail::release(data_);
      data_ = grown;
      capacity_ = n;
    } else if (n > size_) {
      cuda::detail::zero_bytes(data_ + size_, (n - size_) * sizeof(T));
    }
    shape_ = shape;
    size_ = n;
  }
  void swap(DeviceArray& o) noexcept {
    std::swap(shape_, o.shape_);
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(capacity_, o.capacity_);
  }

 private:
  shape_type shape_{};
  T* data_ = nullptr;
  std::size_t size_ = 0, capacity_ = 0;
};

/// The CUDA backend: DeviceArray storage, KernelOps' operations on the device. Elementwise Op structs other than
/// those of ops.hpp need their kernels instantiated in src/cuda/kernels.cu.
struct Cuda : KernelOps<Cuda, cuda::DeviceExec> {
  static constexpr const char* name = "Cuda";
  template <class T, std::size_t N>
  using tensor = DeviceArray<T, N>;
};

static_assert(Backend<Cuda>, "ace: the Cuda backend must model the Backend concept.");

}  // namespace ace

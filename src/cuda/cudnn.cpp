// SPDX-License-Identifier: MIT
// cuDNN's convolutions for ace::Cuda, where ace::cuda is built with cuDNN (ACE_WITH_CUDNN): a plan per geometry,
// batch size, scalar type and math mode (descriptors and the algorithms cuDNN's heuristics rank first among the
// deterministic ones), run on the calling thread's stream with the backend's scratch buffer as workspace. Without
// cuDNN, or for a geometry it does not support, the functions answer false and KernelOps runs ace's own kernels.
#include "ace/backend/cuda/exec.hpp"

#if defined(ACE_CUDA_HAS_CUDNN)
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <climits>
#include <map>
#include <memory>
#include <tuple>
#include <type_traits>
#endif

namespace ace::cuda {

#if defined(ACE_CUDA_HAS_CUDNN)
cudaStream_t current_stream();  // runtime.cu

namespace {

void check(cudnnStatus_t status, const char* what) {
  if (status == CUDNN_STATUS_SUCCESS) return;
  throw cuda_error(::ace::detail::concat("Cuda::", what, ": cuDNN ", cudnnGetErrorString(status)));
}

constexpr std::size_t workspace_limit = std::size_t{256} << 20;

/// What a plan depends on.
struct Key {
  std::size_t in_channels, out_channels, rows, cols, kernel, stride, padding, batch;
  Layout layout;
  bool is_double, tf32;
  auto tie() const {
    return std::tie(in_channels, out_channels, rows, cols, kernel, stride, padding, batch, layout, is_double, tf32);
  }
  bool operator<(const Key& o) const { return tie() < o.tie(); }
};

/// The descriptors of one convolution and the algorithms chosen for it (ok = false: cuDNN offers none we accept).
struct Plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  bool forward_ok = false, backward_ok = false;
  cudnnConvolutionFwdAlgo_t forward{};
  cudnnConvolutionBwdDataAlgo_t backward_data{};
  cudnnConvolutionBwdFilterAlgo_t backward_filter{};
  std::size_t forward_bytes = 0, backward_bytes = 0;

  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (x) (void)cudnnDestroyTensorDescriptor(x);
    if (y) (void)cudnnDestroyTensorDescriptor(y);
    if (w) (void)cudnnDestroyFilterDescriptor(w);
    if (conv) (void)cudnnDestroyConvolutionDescriptor(conv);
  }
};

/// One cuDNN handle and plan cache per host thread (as the stream and the cuBLAS handle).
struct State {
  cudnnHandle_t handle = nullptr;
  std::map<Key, std::unique_ptr<Plan>> plans;
  State() = default;
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  ~State() {
    plans.clear();
    if (handle) (void)cudnnDestroy(handle);
  }
};

State& state() {
  static thread_local State s;
  if (!s.handle) check(cudnnCreate(&s.handle), "cuDNN initialisation");
  check(cudnnSetStream(s.handle, current_stream()), "cuDNN stream");
  return s;
}

/// The first of cuDNN's ranked results that ran, is deterministic (same inputs, same bits), fits the workspace limit
/// and, without TF32, uses plain FMA arithmetic; -1 if none.
template <class Perf>
int pick(const Perf* perf, int n, bool tf32) {
  for (int i = 0; i < n; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].determinism == CUDNN_DETERMINISTIC &&
        perf[i].memory <= workspace_limit && (tf32 || perf[i].mathType == CUDNN_FMA_MATH))
      return i;
  return -1;
}

template <class T>
Plan* plan_for(const ConvGeometry& g, std::size_t batch) {
  const std::size_t largest = std::max({batch, g.in_channels, g.out_channels, g.rows, g.cols, g.kernel});
  if (largest > static_cast<std::size_t>(INT_MAX) || g.kernel == 0) return nullptr;
  const bool tf32 = std::is_same_v<T, float> && detail::tf32_allowed();
  State& s = state();
  const Key key{g.in_channels, g.out_channels, g.rows, g.cols, g.kernel, g.stride, g.padding, batch, g.layout,
                std::is_same_v<T, double>, tf32};
  auto& slot = s.plans[key];
  if (slot) return slot.get();
  slot = std::make_unique<Plan>();
  Plan& p = *slot;
  const cudnnDataType_t type = std::is_same_v<T, float> ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
  const cudnnTensorFormat_t format = g.layout == Layout::channels_last ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  const auto i = [](std::size_t v) { return static_cast<int>(v); };
  check(cudnnCreateTensorDescriptor(&p.x), "cuDNN descriptor");
  check(cudnnCreateTensorDescriptor(&p.y), "cuDNN descriptor");
  check(cudnnCreateFilterDescriptor(&p.w), "cuDNN descriptor");
  check(cudnnCreateConvolutionDescriptor(&p.conv), "cuDNN descriptor");
  check(cudnnSetTensor4dDescriptor(p.x, format, type, i(batch), i(g.in_channels), i(g.rows), i(g.cols)),
        "cuDNN input descriptor");
  check(cudnnSetTensor4dDescriptor(p.y, format, type, i(batch), i(g.out_channels), i(g.out_rows()), i(g.out_cols())),
        "cuDNN output descriptor");
  // ace's filters are [out, (ky, kx, c)]: cuDNN's KRSC order, its "NHWC" filter format.
  check(cudnnSetFilter4dDescriptor(p.w, type, CUDNN_TENSOR_NHWC, i(g.out_channels), i(g.in_channels), i(g.kernel),
                                   i(g.kernel)),
        "cuDNN filter descriptor");
  check(cudnnSetConvolution2dDescriptor(p.conv, i(g.padding), i(g.padding), i(g.stride), i(g.stride), 1, 1,
                                        CUDNN_CROSS_CORRELATION, type),
        "cuDNN convolution descriptor");
  check(cudnnSetConvolutionMathType(p.conv, tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH), "cuDNN math type");

  int n = 0;
  cudnnConvolutionFwdAlgoPerf_t fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  if (cudnnGetConvolutionForwardAlgorithm_v7(s.handle, p.x, p.w, p.conv, p.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n,
                                             fwd) == CUDNN_STATUS_SUCCESS) {
    if (const int k = pick(fwd, n, tf32); k >= 0) {
      p.forward_ok = true;
      p.forward = fwd[k].algo;
      p.forward_bytes = fwd[k].memory;
    }
  }
  cudnnConvolutionBwdDataAlgoPerf_t data[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  cudnnConvolutionBwdFilterAlgoPerf_t filter[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  int nd = 0, nf = 0;
  if (cudnnGetConvolutionBackwardDataAlgorithm_v7(s.handle, p.w, p.y, p.conv, p.x,
                                                  CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &nd,
                                                  data) == CUDNN_STATUS_SUCCESS &&
      cudnnGetConvolutionBackwardFilterAlgorithm_v7(s.handle, p.x, p.y, p.conv, p.w,
                                                    CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &nf,
                                                    filter) == CUDNN_STATUS_SUCCESS) {
    const int kd = pick(data, nd, tf32), kf = pick(filter, nf, tf32);
    if (kd >= 0 && kf >= 0) {
      p.backward_ok = true;
      p.backward_data = data[kd].algo;
      p.backward_filter = filter[kf].algo;
      p.backward_bytes = std::max(data[kd].memory, filter[kf].memory);
    }
  }
  return &p;
}

template <class T>
bool forward(const ConvGeometry& g, std::size_t batch, const T* x, const T* w, T* y) {
  const Plan* p = plan_for<T>(g, batch);
  if (!p || !p->forward_ok) return false;
  void* workspace = p->forward_bytes ? DeviceExec::scratch(p->forward_bytes) : nullptr;
  const T one = 1, zero = 0;
  check(cudnnConvolutionForward(state().handle, &one, p->x, x, p->w, w, p->conv, p->forward, workspace,
                                p->forward_bytes, &zero, p->y, y),
        "conv2d_forward");
  return true;
}

template <class T>
bool backward(const ConvGeometry& g, std::size_t batch, const T* x, const T* w, const T* dy, T* dw, T* dx) {
  const Plan* p = plan_for<T>(g, batch);
  if (!p || !p->backward_ok) return false;
  void* workspace = p->backward_bytes ? DeviceExec::scratch(p->backward_bytes) : nullptr;
  const T one = 1, zero = 0;
  const cudnnHandle_t h = state().handle;
  check(cudnnConvolutionBackwardData(h, &one, p->w, w, p->y, dy, p->conv, p->backward_data, workspace,
                                     p->backward_bytes, &zero, p->x, dx),
        "conv2d_backward (input)");
  check(cudnnConvolutionBackwardFilter(h, &one, p->x, x, p->y, dy, p->conv, p->backward_filter, workspace,
                                       p->backward_bytes, &one, p->w, dw),  // accumulates, as the concept says
        "conv2d_backward (filters)");
  return true;
}

}  // namespace

int cudnn_version() noexcept { return static_cast<int>(cudnnGetVersion()); }

bool DeviceExec::conv2d_forward(const ConvGeometry& g, std::size_t batch, const float* x, const float* w, float* y) {
  return forward(g, batch, x, w, y);
}
bool DeviceExec::conv2d_forward(const ConvGeometry& g, std::size_t batch, const double* x, const double* w,
                                double* y) {
  return forward(g, batch, x, w, y);
}
bool DeviceExec::conv2d_backward(const ConvGeometry& g, std::size_t batch, const float* x, const float* w,
                                 const float* dy, float* dw, float* dx) {
  return backward(g, batch, x, w, dy, dw, dx);
}
bool DeviceExec::conv2d_backward(const ConvGeometry& g, std::size_t batch, const double* x, const double* w,
                                 const double* dy, double* dw, double* dx) {
  return backward(g, batch, x, w, dy, dw, dx);
}

#else  // no cuDNN: ace's own kernels

int cudnn_version() noexcept { return 0; }
bool DeviceExec::conv2d_forward(const ConvGeometry&, std::size_t, const float*, const float*, float*) { return false; }
bool DeviceExec::conv2d_forward(const ConvGeometry&, std::size_t, const double*, const double*, double*) {
  return false;
}
bool DeviceExec::conv2d_backward(const ConvGeometry&, std::size_t, const float*, const float*, const float*, float*,
                                 float*) {
  return false;
}
bool DeviceExec::conv2d_backward(const ConvGeometry&, std::size_t, const double*, const double*, const double*,
                                 double*, double*) {
  return false;
}

#endif

}  // namespace ace::cuda

// CUDA softmax / log_softmax forward and their fused backwards over the middle dim of a
// contiguous [outer, dim, inner] block. The arithmetic mirrors kernels/cpu/reduce.cpp
// (max in T, exp in T, sums in double). Rows (inner == 1) are handled by a warp (dim <= 1024)
// or a block, with the deterministic group reductions of reduce.cuh; otherwise one thread per
// (o, i) walks the dim (reads coalesced across i).
#include <cmath>

#include "kernels/cuda/loop.cuh"
#include "kernels/f32_compute.h"
#include "kernels/cuda/reduce.cuh"
#include "kernels/reduce.h"

namespace dl::cuda {
namespace {

template <class T>
__device__ __forceinline__ T max_t(T m, T v) { return m < v ? v : m; }  // std::max

// ---- forward -----------------------------------------------------------------------------
template <int G, class T>
__global__ void softmax_row_kernel(const T* x, int64_t rows, int64_t len, bool log, T* out) {
  __shared__ double sh[kBlockThreads / 32];
  const int lane = Group<G>::lane();
  for (int64_t row = Group<G>::first_row(); row < rows; row += Group<G>::row_step()) {
    const T* p = x + row * len;
    T* y = out + row * len;
    double mx = -INFINITY;
    for (int64_t r = lane; r < len; r += G) mx = fmax(mx, static_cast<double>(p[r]));
    const T m = static_cast<T>(group_max<G>(mx, sh));
    double s = 0;
    for (int64_t r = lane; r < len; r += G) s += static_cast<double>(dm::exp(T(p[r] - m)));
    s = group_sum<G>(s, sh);
    if (log) {
      const double lse = static_cast<double>(m) + ::log(s);
      for (int64_t r = lane; r < len; r += G) y[r] = static_cast<T>(static_cast<double>(p[r]) - lse);
    } else {
      for (int64_t r = lane; r < len; r += G)
        y[r] = static_cast<T>(static_cast<double>(dm::exp(T(p[r] - m))) / s);
    }
  }
}

template <class T>
__global__ void softmax_col_kernel(const T* x, int64_t outer, int64_t len, int64_t inner, bool log, T* out) {
  const int64_t m_total = outer * inner;
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < m_total;
       j += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = j / inner, i = j - o * inner;
    const T* p = x + o * len * inner + i;
    T* y = out + o * len * inner + i;
    T m = p[0];
    for (int64_t r = 1; r < len; ++r) m = max_t(m, p[r * inner]);
    double s = 0;
    for (int64_t r = 0; r < len; ++r) s += static_cast<double>(dm::exp(T(p[r * inner] - m)));
    if (log) {
      const double lse = static_cast<double>(m) + ::log(s);
      for (int64_t r = 0; r < len; ++r) y[r * inner] = static_cast<T>(static_cast<double>(p[r * inner]) - lse);
    } else {
      for (int64_t r = 0; r < len; ++r)
        y[r * inner] = static_cast<T>(static_cast<double>(dm::exp(T(p[r * inner] - m))) / s);
    }
  }
}

// ---- backward ----------------------------------------------------------------------------
// softmax: gx = y * (g - sum(g*y));  log_softmax: gx = g - exp(y) * sum(g).
template <class T>
__device__ __forceinline__ T softmax_grad(bool log, T g, T y, double s) {
  return log ? static_cast<T>(static_cast<double>(g) - ::exp(static_cast<double>(y)) * s)
             : static_cast<T>(static_cast<double>(y) * (static_cast<double>(g) - s));
}

template <int G, class T>
__global__ void softmax_bwd_row_kernel(const T* g, const T* y, int64_t rows, int64_t len, bool log, T* gx) {
  __shared__ double sh[kBlockThreads / 32];
  const int lane = Group<G>::lane();
  for (int64_t row = Group<G>::first_row(); row < rows; row += Group<G>::row_step()) {
    const T* gr = g + row * len;
    const T* yr = y + row * len;
    double s = 0;
    for (int64_t r = lane; r < len; r += G)
      s += log ? static_cast<double>(gr[r]) : static_cast<double>(gr[r]) * static_cast<double>(yr[r]);
    s = group_sum<G>(s, sh);
    for (int64_t r = lane; r < len; r += G) gx[row * len + r] = softmax_grad(log, gr[r], yr[r], s);
  }
}

template <class T>
__global__ void softmax_bwd_col_kernel(const T* g, const T* y, int64_t outer, int64_t len, int64_t inner,
                                       bool log, T* gx) {
  const int64_t m_total = outer * inner;
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < m_total;
       j += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = j / inner, i = j - o * inner;
    const int64_t base = o * len * inner + i;
    double s = 0;
    for (int64_t r = 0; r < len; ++r) {
      const int64_t q = base + r * inner;
      s += log ? static_cast<double>(g[q]) : static_cast<double>(g[q]) * static_cast<double>(y[q]);
    }
    for (int64_t r = 0; r < len; ++r) {
      const int64_t q = base + r * inner;
      gx[q] = softmax_grad(log, g[q], y[q], s);
    }
  }
}

template <class F>
void dispatch_float(DType t, const char* what, F&& f) {
  if (t == DType::F32) return f(float{});
  if (t == DType::F64) return f(double{});
  throw std::invalid_argument(std::string(what) + ": unsupported dtype " + dtype_name(t) + " on cuda");
}

void cuda_softmax(const Tensor& x, int64_t outer, int64_t dim, int64_t inner, bool log, Tensor& out) {
  if (outer * dim * inner == 0) return;
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev);
  dispatch_float(x.dtype(), log ? "log_softmax" : "softmax", [&](auto tag) {
    using T = decltype(tag);
    const T* src = x.data<T>();
    T* dst = out.data<T>();
    if (inner > 1 || dim < 32)
      softmax_col_kernel<T><<<grid_for(outer * inner, kBlockThreads), kBlockThreads, 0, s>>>(src, outer, dim, inner, log, dst);
    else if (dim <= 1024)
      softmax_row_kernel<32, T><<<group_grid<32>(outer), kBlockThreads, 0, s>>>(src, outer, dim, log, dst);
    else
      softmax_row_kernel<kBlockThreads, T><<<group_grid<kBlockThreads>(outer), kBlockThreads, 0, s>>>(
          src, outer, dim, log, dst);
    DL_CUDA_CHECK_LAUNCH();
  });
}

void cuda_softmax_backward(const Tensor& grad, const Tensor& y, int64_t outer, int64_t dim, int64_t inner,
                           bool log, Tensor& grad_in) {
  if (outer * dim * inner == 0) return;
  const int dev = y.device().index;
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev);
  dispatch_float(y.dtype(), log ? "log_softmax backward" : "softmax backward", [&](auto tag) {
    using T = decltype(tag);
    const T* g = grad.data<T>();
    const T* yp = y.data<T>();
    T* gx = grad_in.data<T>();
    if (inner > 1 || dim < 32)
      softmax_bwd_col_kernel<T><<<grid_for(outer * inner, kBlockThreads), kBlockThreads, 0, s>>>(
          g, yp, outer, dim, inner, log, gx);
    else if (dim <= 1024)
      softmax_bwd_row_kernel<32, T><<<group_grid<32>(outer), kBlockThreads, 0, s>>>(g, yp, outer, dim, log, gx);
    else
      softmax_bwd_row_kernel<kBlockThreads, T><<<group_grid<kBlockThreads>(outer), kBlockThreads, 0, s>>>(
          g, yp, outer, dim, log, gx);
    DL_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

DL_REGISTER_KERNEL(softmax_stub, CUDA, f32_compute<cuda_softmax>);
DL_REGISTER_KERNEL(softmax_backward_stub, CUDA, f32_compute<cuda_softmax_backward>);

}  // namespace dl::cuda

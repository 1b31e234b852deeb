// CUDA pooling: max / average (both count_include_pad rules) and adaptive average, forward and
// backward, with the semantics of kernels/cpu/pool.cpp (PyTorch's windows and divisors).
//
// Forward: one thread per output element (grid-stride), the window visited row-major, sums in
// double, so each output equals the CPU's loops' bit for bit (max pooling keeps the first
// maximum and lets a NaN win; its workspace holds the argmax's int32 offset in its input plane,
// as the CPU's does). Backward is a gather, one thread per input element: it visits the
// outputs whose windows contain it in row-major order, the order in which the CPU's loops
// scatter into it, and adds in T from 0, so gradients are bit-identical to the CPU's too and
// no atomics are needed. float16/bfloat16 tensors (pooling under autocast) run these kernels
// on f32 copies, like the CPU's (kernels/f32_compute.h).
#include <cstdint>
#include <limits>
#include <stdexcept>

#include "kernels/cuda/helpers.cuh"
#include "kernels/cuda/loop.cuh"
#include "kernels/f32_compute.h"
#include "kernels/nn.h"

namespace dl::cuda {
namespace {

__device__ __forceinline__ int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

// The window of output index o along one axis (kernels/cpu/pool.cpp `windows`): [start, end)
// clipped to the input; span = the window clipped to [-pad, size + pad) (count_include_pad's
// divisor).
struct Win {
  int64_t start, end, span;
};
__device__ __forceinline__ Win pool_window(int64_t o, int64_t stride, int64_t pad, int64_t k, int64_t size) {
  const int64_t s = o * stride - pad;
  const int64_t e = imin(s + k, size + pad);
  return {imax(s, 0), imin(e, size), e - s};
}

// Outputs [lo, hi) along one axis whose windows contain input index i (windows are
// [o * stride - pad, o * stride - pad + k), clipping does not matter for 0 <= i < size).
__device__ __forceinline__ void covering(int64_t i, int64_t stride, int64_t pad, int64_t k, int64_t out,
                                         int64_t& lo, int64_t& hi) {
  lo = i + pad < k ? 0 : (i + pad - k) / stride + 1;
  hi = imin((i + pad) / stride + 1, out);
}

__device__ __forceinline__ double avg_divisor(const Pool2dShape& s, const Win& wy, const Win& wx) {
  const int64_t n = s.kind == PoolKind::AvgIncludePad ? wy.span * wx.span
                                                       : (wy.end - wy.start) * (wx.end - wx.start);
  return static_cast<double>(n > 1 ? n : 1);
}

// i -> (plane, row, col) of an [planes, rows, cols] index.
struct Pos {
  int64_t p, r, c;
};
__device__ __forceinline__ Pos pos_of(int64_t i, int64_t rows, int64_t cols) {
  const int64_t c = i % cols, t = i / cols;
  return {t / rows, t % rows, c};
}

#define DL_GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

template <class T>
__global__ void max_pool_fwd_kernel(Pool2dShape s, const T* x, T* y, int32_t* idx) {
  const int64_t total = s.n * s.c * s.oh * s.ow;
  DL_GRID_STRIDE(i, total) {
    const Pos o = pos_of(i, s.oh, s.ow);
    const Win wy = pool_window(o.r, s.sh, s.ph, s.kh, s.h), wx = pool_window(o.c, s.sw, s.pw, s.kw, s.w);
    const T* xp = x + o.p * s.h * s.w;
    T b = xp[wy.start * s.w + wx.start];
    int64_t bi = wy.start * s.w + wx.start;
    for (int64_t iy = wy.start; iy < wy.end; ++iy)
      for (int64_t ix = wx.start; ix < wx.end; ++ix) {
        const T v = xp[iy * s.w + ix];
        if (v > b || v != v) {  // first maximum wins; a NaN wins (PyTorch)
          b = v;
          bi = iy * s.w + ix;
        }
      }
    y[i] = b;
    if (idx) idx[i] = static_cast<int32_t>(bi);
  }
}

template <class T>
__global__ void avg_pool_fwd_kernel(Pool2dShape s, const T* x, T* y) {
  const int64_t total = s.n * s.c * s.oh * s.ow;
  DL_GRID_STRIDE(i, total) {
    const Pos o = pos_of(i, s.oh, s.ow);
    const Win wy = pool_window(o.r, s.sh, s.ph, s.kh, s.h), wx = pool_window(o.c, s.sw, s.pw, s.kw, s.w);
    const T* xp = x + o.p * s.h * s.w;
    double acc = 0.0;
    for (int64_t iy = wy.start; iy < wy.end; ++iy)
      for (int64_t ix = wx.start; ix < wx.end; ++ix) acc += static_cast<double>(xp[iy * s.w + ix]);
    y[i] = static_cast<T>(acc / avg_divisor(s, wy, wx));
  }
}

// gx[p, iy, ix] = sum of gy over the outputs whose argmax (max) or window (avg) is there.
template <class T>
__global__ void pool_bwd_kernel(Pool2dShape s, const T* gy, const int32_t* idx, T* gx) {
  const int64_t total = s.n * s.c * s.h * s.w;
  DL_GRID_STRIDE(i, total) {
    const Pos in = pos_of(i, s.h, s.w);
    int64_t y0, y1, x0, x1;
    covering(in.r, s.sh, s.ph, s.kh, s.oh, y0, y1);
    covering(in.c, s.sw, s.pw, s.kw, s.ow, x0, x1);
    const int64_t plane = in.p * s.oh * s.ow;
    const int32_t here = static_cast<int32_t>(in.r * s.w + in.c);
    T acc = T(0);
    for (int64_t oy = y0; oy < y1; ++oy)
      for (int64_t ox = x0; ox < x1; ++ox) {
        const int64_t j = plane + oy * s.ow + ox;
        if (idx) {
          if (idx[j] == here) acc += gy[j];
        } else {
          const Win wy = pool_window(oy, s.sh, s.ph, s.kh, s.h), wx = pool_window(ox, s.sw, s.pw, s.kw, s.w);
          acc += static_cast<T>(static_cast<double>(gy[j]) / avg_divisor(s, wy, wx));
        }
      }
    gx[i] = acc;
  }
}

// Adaptive windows: [floor(i * in / out), ceil((i + 1) * in / out)).
__device__ __forceinline__ int64_t ada_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
__device__ __forceinline__ int64_t ada_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

template <class T>
__global__ void adaptive_avg_fwd_kernel(Pool2dShape s, const T* x, T* y) {
  const int64_t total = s.n * s.c * s.oh * s.ow;
  DL_GRID_STRIDE(i, total) {
    const Pos o = pos_of(i, s.oh, s.ow);
    const int64_t y0 = ada_start(o.r, s.h, s.oh), y1 = ada_end(o.r, s.h, s.oh);
    const int64_t x0 = ada_start(o.c, s.w, s.ow), x1 = ada_end(o.c, s.w, s.ow);
    const T* xp = x + o.p * s.h * s.w;
    double acc = 0.0;
    for (int64_t iy = y0; iy < y1; ++iy)
      for (int64_t ix = x0; ix < x1; ++ix) acc += static_cast<double>(xp[iy * s.w + ix]);
    y[i] = static_cast<T>(acc / static_cast<double>((y1 - y0) * (x1 - x0)));
  }
}

// The outputs whose adaptive windows contain input index i are exactly
// [floor(i * out / in), ceil((i + 1) * out / in)): start(o) <= i <=> o < (i + 1) * out / in and
// end(o) > i <=> o > i * out / in - 1.
template <class T>
__global__ void adaptive_avg_bwd_kernel(Pool2dShape s, const T* gy, T* gx) {
  const int64_t total = s.n * s.c * s.h * s.w;
  DL_GRID_STRIDE(i, total) {
    const Pos in = pos_of(i, s.h, s.w);
    const int64_t oy0 = ada_start(in.r, s.oh, s.h), oy1 = ada_end(in.r, s.oh, s.h);
    const int64_t ox0 = ada_start(in.c, s.ow, s.w), ox1 = ada_end(in.c, s.ow, s.w);
    const T* gyp = gy + in.p * s.oh * s.ow;
    T acc = T(0);
    for (int64_t oy = oy0; oy < oy1; ++oy) {
      const int64_t area_y = ada_end(oy, s.h, s.oh) - ada_start(oy, s.h, s.oh);
      for (int64_t ox = ox0; ox < ox1; ++ox) {
        const int64_t area = area_y * (ada_end(ox, s.w, s.ow) - ada_start(ox, s.w, s.ow));
        acc += static_cast<T>(static_cast<double>(gyp[oy * s.ow + ox]) / static_cast<double>(area));
      }
    }
    gx[i] = acc;
  }
}

#undef DL_GRID_STRIDE

// Runs `launch(grid, stream)` for `n` elements on x's device.
template <class F>
void launch_on(const Tensor& t, int64_t n, F&& launch) {
  if (n == 0) return;
  const int dev = t.device().index;
  DeviceGuard guard(dev);
  launch(grid_for(n, kThreads), stream(dev));
  DL_CUDA_CHECK_LAUNCH();
}

void cuda_pool2d_fwd(const Pool2dShape& s, const Tensor& x, Tensor& y, Tensor* workspace) {
  const bool is_max = s.kind == PoolKind::Max;
  if (is_max && s.h * s.w > std::numeric_limits<int32_t>::max())
    throw std::invalid_argument("max_pool2d: input planes above 2^31 elements are not supported");
  DeviceGuard guard(x.device().index);  // the workspace is allocated on x's device
  dispatch_float(x.dtype(), "pool2d", [&](auto tag) {
    using T = decltype(tag);
    int32_t* idx = nullptr;
    if (is_max && workspace) {  // int32 plane offsets in a U8 tensor, like the CPU's
      *workspace = empty({y.numel() * 4}, TensorOptions(DType::U8, x.device()));
      idx = static_cast<int32_t*>(workspace->raw_data());
    }
    launch_on(x, y.numel(), [&](unsigned grid, cudaStream_t st) {
      if (is_max) max_pool_fwd_kernel<T><<<grid, kThreads, 0, st>>>(s, x.data<T>(), y.data<T>(), idx);
      else avg_pool_fwd_kernel<T><<<grid, kThreads, 0, st>>>(s, x.data<T>(), y.data<T>());
    });
  });
}

void cuda_pool2d_bwd(const Pool2dShape& s, const Tensor& gy, const Tensor& workspace, Tensor& gx) {
  const bool is_max = s.kind == PoolKind::Max;
  if (is_max && !workspace.defined())
    throw std::logic_error("max_pool2d backward on cuda: the forward kept no argmax workspace");
  const int32_t* idx = is_max ? static_cast<const int32_t*>(workspace.raw_data()) : nullptr;
  dispatch_float(gy.dtype(), "pool2d backward", [&](auto tag) {
    using T = decltype(tag);
    launch_on(gy, gx.numel(), [&](unsigned grid, cudaStream_t st) {
      pool_bwd_kernel<T><<<grid, kThreads, 0, st>>>(s, gy.data<T>(), idx, gx.data<T>());
    });
  });
}

void cuda_adaptive_avg_pool2d_fwd(const Pool2dShape& s, const Tensor& x, Tensor& y) {
  dispatch_float(x.dtype(), "adaptive_avg_pool2d", [&](auto tag) {
    using T = decltype(tag);
    launch_on(x, y.numel(), [&](unsigned grid, cudaStream_t st) {
      adaptive_avg_fwd_kernel<T><<<grid, kThreads, 0, st>>>(s, x.data<T>(), y.data<T>());
    });
  });
}

void cuda_adaptive_avg_pool2d_bwd(const Pool2dShape& s, const Tensor& gy, Tensor& gx) {
  dispatch_float(gy.dtype(), "adaptive_avg_pool2d backward", [&](auto tag) {
    using T = decltype(tag);
    launch_on(gy, gx.numel(), [&](unsigned grid, cudaStream_t st) {
      adaptive_avg_bwd_kernel<T><<<grid, kThreads, 0, st>>>(s, gy.data<T>(), gx.data<T>());
    });
  });
}

}  // namespace

DL_REGISTER_KERNEL(pool2d_fwd_stub, CUDA, f32_compute<cuda_pool2d_fwd>);
DL_REGISTER_KERNEL(pool2d_bwd_stub, CUDA, f32_compute<cuda_pool2d_bwd>);
DL_REGISTER_KERNEL(adaptive_avg_pool2d_fwd_stub, CUDA, f32_compute<cuda_adaptive_avg_pool2d_fwd>);
DL_REGISTER_KERNEL(adaptive_avg_pool2d_bwd_stub, CUDA, f32_compute<cuda_adaptive_avg_pool2d_bwd>);

}  // namespace dl::cuda

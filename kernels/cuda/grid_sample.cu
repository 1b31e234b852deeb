// CUDA grid_sample (kernels/grid_sample.h): one thread per output point (n, oy, ox), looping over
// the channels like the CPU kernel; the point's source coordinates, corners and weights come from
// kernels/grid_sample_coords.h (the CPU kernel's code).
//
// Backward: the grid gradient of a point is summed over the channels by its own thread, in the
// CPU's order, and written once. The input gradient is scattered with atomicAdd into the (zeroed)
// g_input: not bit-deterministic run to run, equal to the CPU's to rounding.
#include "kernels/cuda/helpers.cuh"
#include "kernels/cuda/loop.cuh"
#include "kernels/grid_sample.h"
#include "kernels/grid_sample_coords.h"

namespace dl::cuda {
namespace {

using grid_sample_detail::Axis;
using grid_sample_detail::Point;

template <class T>
__global__ void grid_sample_fwd_kernel(GridSampleShape s, const T* input, const T* grid, T* y) {
  const Axis<T> ax(s.w, s), ay(s.h, s);
  const int64_t points = s.oh * s.ow, plane = s.h * s.w, total = s.n * points;
  for (int64_t np = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; np < total; np += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = np / points, p = np - b * points;
    const Point<T> pt(ax, ay, grid + np * 2, s.mode);
    const T* in_b = input + b * s.c * plane;
    T* y_b = y + b * s.c * points + p;
    for (int64_t c = 0; c < s.c; ++c) {
      const T* in_c = in_b + c * plane;
      if (s.mode == GridSampleMode::Nearest) {
        y_b[c * points] = pt.value(in_c, 0);
        continue;
      }
      y_b[c * points] = pt.value(in_c, 0) * pt.weight(0) + pt.value(in_c, 1) * pt.weight(1) +
                        pt.value(in_c, 2) * pt.weight(2) + pt.value(in_c, 3) * pt.weight(3);
    }
  }
}

// g_input / g_grid may be null (not wanted).
template <class T>
__global__ void grid_sample_bwd_kernel(GridSampleShape s, const T* gy, const T* input, const T* grid, T* g_input,
                                       T* g_grid) {
  const Axis<T> ax(s.w, s), ay(s.h, s);
  const int64_t points = s.oh * s.ow, plane = s.h * s.w, total = s.n * points;
  const bool bilinear = s.mode == GridSampleMode::Bilinear;
  for (int64_t np = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; np < total; np += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = np / points, p = np - b * points;
    const Point<T> pt(ax, ay, grid + np * 2, s.mode);
    const T* gy_b = gy + b * s.c * points + p;
    const T* in_b = input + b * s.c * plane;
    T* gin_b = g_input ? g_input + b * s.c * plane : nullptr;
    T gx = 0, gyy = 0;
    for (int64_t c = 0; c < s.c; ++c) {
      const T g = gy_b[c * points];
      if (!bilinear) {
        if (gin_b && pt.in[0]) atomicAdd(gin_b + c * plane + pt.off[0], g);
        continue;
      }
      if (gin_b)
        for (int k = 0; k < 4; ++k)
          if (pt.in[k]) atomicAdd(gin_b + c * plane + pt.off[k], pt.weight(k) * g);
      if (g_grid) {
        const T* in_c = in_b + c * plane;
        const T nw = pt.value(in_c, 0), ne = pt.value(in_c, 1), sw = pt.value(in_c, 2), se = pt.value(in_c, 3);
        gx += ((ne - nw) * pt.s + (se - sw) * pt.n) * g;
        gyy += ((sw - nw) * pt.e + (se - ne) * pt.w) * g;
      }
    }
    if (g_grid) {  // nearest: zero, like torch
      g_grid[np * 2] = bilinear ? gx * pt.gx_mult : T(0);
      g_grid[np * 2 + 1] = bilinear ? gyy * pt.gy_mult : T(0);
    }
  }
}

void cuda_grid_sample_fwd(const GridSampleShape& s, const Tensor& input, const Tensor& grid, Tensor& y) {
  const int64_t total = s.n * s.oh * s.ow;
  if (total == 0 || s.c == 0) return;
  const int dev = y.device().index;
  DeviceGuard guard(dev);
  dispatch_float(input.dtype(), "grid_sample", [&](auto tag) {
    using T = decltype(tag);
    grid_sample_fwd_kernel<T><<<grid_for(total, kThreads), kThreads, 0, stream(dev)>>>(
        s, input.data<T>(), grid.data<T>(), y.data<T>());
    DL_CUDA_CHECK_LAUNCH();
  });
}

void cuda_grid_sample_bwd(const GridSampleShape& s, const Tensor& gy, const Tensor& input, const Tensor& grid,
                          Tensor& g_input, Tensor& g_grid) {
  const int dev = input.device().index;
  DeviceGuard guard(dev);
  cudaStream_t st = stream(dev);
  if (g_input.defined() && g_input.numel() > 0)
    DL_CUDA_CHECK(cudaMemsetAsync(g_input.raw_data(), 0, g_input.numel() * g_input.element_size(), st));
  const int64_t total = s.n * s.oh * s.ow;
  if (total == 0 || (!g_input.defined() && !g_grid.defined())) return;
  dispatch_float(input.dtype(), "grid_sample backward", [&](auto tag) {
    using T = decltype(tag);
    grid_sample_bwd_kernel<T><<<grid_for(total, kThreads), kThreads, 0, st>>>(
        s, gy.data<T>(), input.data<T>(), grid.data<T>(), g_input.defined() ? g_input.data<T>() : nullptr,
        g_grid.defined() ? g_grid.data<T>() : nullptr);
    DL_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

DL_REGISTER_KERNEL(grid_sample_fwd_stub, CUDA, cuda_grid_sample_fwd);
DL_REGISTER_KERNEL(grid_sample_bwd_stub, CUDA, cuda_grid_sample_bwd);

}  // namespace dl::cuda

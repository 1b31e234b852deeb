// CUDA interpolate (kernels/interpolate.h): nearest, bilinear and bicubic with PyTorch 1.13's
// source-index rules. Each output element computes its taps with kernels/interpolate_taps.h (the
// CPU kernel's formulas) and sums them in the CPU kernel's order: per vertical tap j,
// row_j = sum_i wx_i x[iy_j, ix_i], then y = sum_j wy_j row_j.
//
// Backward scatters every gy element into its input taps with atomicAdd (the weights multiplied
// in the CPU's order, wx * (wy * gy)): the sums are not in a fixed order, so gradients are not
// bit-deterministic run to run and match the CPU to rounding (f32 within about 1e-6 relative).
#include "kernels/cuda/helpers.cuh"
#include "kernels/cuda/loop.cuh"
#include "kernels/interpolate.h"
#include "kernels/interpolate_taps.h"

namespace dl::cuda {
namespace {

// The taps of one output element (oy, ox) along both dims.
template <class T>
struct Taps2d {
  int ky = 1, kx = 1;
  int64_t iy[4], ix[4];
  T wy[4], wx[4];

  __device__ Taps2d(const Interp2dShape& s, int64_t oy, int64_t ox) {
    ky = kx = interp::tap_count(s.mode);
    interp::taps_at<T>(s.mode, s.h, s.oh, s.align_corners, s.scale_h, oy, iy, wy);
    interp::taps_at<T>(s.mode, s.w, s.ow, s.align_corners, s.scale_w, ox, ix, wx);
  }
};

template <class T>
__global__ void interp_fwd_kernel(Interp2dShape s, const T* x, T* y, int64_t total) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ox = e % s.ow, oy = (e / s.ow) % s.oh, p = e / (s.ow * s.oh);
    const Taps2d<T> tp(s, oy, ox);
    const T* xp = x + p * s.h * s.w;
    T acc = T(0);
    for (int j = 0; j < tp.ky; ++j) {
      const T* xr = xp + tp.iy[j] * s.w;
      T row = T(0);
      for (int i = 0; i < tp.kx; ++i) row += tp.wx[i] * xr[tp.ix[i]];
      acc += tp.wy[j] * row;
    }
    y[e] = acc;
  }
}

template <class T>
__global__ void interp_bwd_kernel(Interp2dShape s, const T* gy, T* gx, int64_t total) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ox = e % s.ow, oy = (e / s.ow) % s.oh, p = e / (s.ow * s.oh);
    const Taps2d<T> tp(s, oy, ox);
    T* gp = gx + p * s.h * s.w;
    const T g = gy[e];
    for (int j = 0; j < tp.ky; ++j) {
      const T gj = tp.wy[j] * g;
      T* gr = gp + tp.iy[j] * s.w;
      for (int i = 0; i < tp.kx; ++i) atomicAdd(gr + tp.ix[i], tp.wx[i] * gj);
    }
  }
}

void cuda_interpolate_fwd(const Interp2dShape& s, const Tensor& x, Tensor& y) {
  const int64_t total = s.n * s.c * s.oh * s.ow;
  if (total == 0) return;
  const int dev = y.device().index;
  DeviceGuard guard(dev);
  dispatch_float(x.dtype(), "interpolate", [&](auto tag) {
    using T = decltype(tag);
    interp_fwd_kernel<T><<<grid_for(total, kThreads), kThreads, 0, stream(dev)>>>(s, x.data<T>(), y.data<T>(), total);
    DL_CUDA_CHECK_LAUNCH();
  });
}

void cuda_interpolate_bwd(const Interp2dShape& s, const Tensor& gy, Tensor& gx) {
  const int64_t in_total = s.n * s.c * s.h * s.w, total = s.n * s.c * s.oh * s.ow;
  if (in_total == 0) return;
  const int dev = gx.device().index;
  DeviceGuard guard(dev);
  cudaStream_t st = stream(dev);
  DL_CUDA_CHECK(cudaMemsetAsync(gx.raw_data(), 0, static_cast<size_t>(in_total) * gx.element_size(), st));
  if (total == 0) return;
  dispatch_float(gy.dtype(), "interpolate backward", [&](auto tag) {
    using T = decltype(tag);
    interp_bwd_kernel<T><<<grid_for(total, kThreads), kThreads, 0, st>>>(s, gy.data<T>(), gx.data<T>(), total);
    DL_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

DL_REGISTER_KERNEL(interpolate_fwd_stub, CUDA, cuda_interpolate_fwd);
DL_REGISTER_KERNEL(interpolate_bwd_stub, CUDA, cuda_interpolate_bwd);

}  // namespace dl::cuda

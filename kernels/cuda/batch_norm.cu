// CUDA batch norm forward (training statistics or given running statistics, optional fused
// ReLU) and backward (ReLU mask, training-mode terms through the statistics), with the
// formulas of kernels/cpu/norm.cpp. x is viewed as [n, c, s].
//
// Two kernels per pass:
//   - a per-channel kernel, one block of 256 threads per channel (grid-stride over channels):
//     reductions over the channel's n * s elements in double, each thread summing a fixed
//     subset and the block combining them in the fixed tree of reduce.cuh, so results are
//     deterministic (no atomics). It turns the statistics into per-channel coefficients in T,
//     computed from doubles exactly as the CPU computes them;
//   - an elementwise kernel over all elements applying the coefficients, written with rn::
//     operations (no FMA contraction) so that it rounds like the CPU's `x * scale + shift`.
// Training statistics are two-pass (mean, then the sum of squared deviations from it) where
// the CPU combines per-row two-pass results with Chan's update: both are exact to double
// rounding, so mean/var agree with the CPU's to the last bit of T in practice, not by
// construction. float16/bfloat16 tensors (autocast runs batch norm in f32, so only direct
// calls) compute on f32 copies, like the CPU's (kernels/f32_compute.h).
#include <cmath>
#include <cstdint>

#include "kernels/cuda/helpers.cuh"
#include "kernels/cuda/loop.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/f32_compute.h"
#include "kernels/nn.h"
#include "kernels/norm_shape.h"

namespace dl::cuda {
namespace {

// Offset of the channel's e-th element (e in [0, n * s)) in [n, c, s].
__device__ __forceinline__ int64_t channel_offset(const NCS& d, int64_t ch, int64_t e) {
  const int64_t nn = e / d.s;
  return (nn * d.c + ch) * d.s + (e - nn * d.s);
}

unsigned channel_grid(int64_t c) { return static_cast<unsigned>(c < 65535 ? c : 65535); }

// Forward coefficients: coef[2 ch] = scale, coef[2 ch + 1] = shift, so y = x * scale + shift.
// Training: writes the batch mean and biased variance to mean/var; eval: reads them.
template <class T>
__global__ void bn_fwd_channel_kernel(NCS d, const T* x, const T* w, const T* b, T* mean, T* var, bool training,
                                      double eps, T* coef) {
  __shared__ double sh[kBlockThreads / 32];
  const double m = static_cast<double>(d.n * d.s);
  const int64_t count = d.n * d.s;
  for (int64_t ch = blockIdx.x; ch < d.c; ch += gridDim.x) {
    double mu, invstd;
    if (training) {
      double acc = 0.0;
      for (int64_t e = threadIdx.x; e < count; e += blockDim.x) acc += static_cast<double>(x[channel_offset(d, ch, e)]);
      mu = group_sum<kBlockThreads>(acc, sh) / m;
      double m2 = 0.0;
      for (int64_t e = threadIdx.x; e < count; e += blockDim.x) {
        const double dv = static_cast<double>(x[channel_offset(d, ch, e)]) - mu;
        m2 += dv * dv;
      }
      const double v = group_sum<kBlockThreads>(m2, sh) / m;
      if (threadIdx.x == 0) {
        mean[ch] = static_cast<T>(mu);
        var[ch] = static_cast<T>(v);
      }
      invstd = 1.0 / ::sqrt(v + eps);
    } else {
      mu = static_cast<double>(mean[ch]);
      invstd = 1.0 / ::sqrt(static_cast<double>(var[ch]) + eps);
    }
    if (threadIdx.x == 0) {
      const double scale = invstd * (w ? static_cast<double>(w[ch]) : 1.0);
      coef[2 * ch] = static_cast<T>(scale);
      coef[2 * ch + 1] = static_cast<T>((b ? static_cast<double>(b[ch]) : 0.0) - mu * scale);
    }
  }
}

template <class T>
__global__ void bn_fwd_apply_kernel(NCS d, const T* x, const T* coef, bool relu, T* y) {
  const int64_t total = d.n * d.c * d.s;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ch = (i / d.s) % d.c;
    const T v = rn::add(rn::mul(x[i], coef[2 * ch]), coef[2 * ch + 1]);
    y[i] = relu ? (v > T(0) ? v : T(0)) : v;
  }
}

// gy masked by the fused ReLU's output (relu's backward), or gy itself.
template <class T>
__device__ __forceinline__ T masked(const T* gy, const T* relu_y, int64_t i) {
  const T g = gy[i];
  return relu_y ? (relu_y[i] > T(0) ? g : T(0)) : g;
}

// Backward coefficients: gx = a * g + b * (x - mu) + k with coef[4 ch + 0..3] = a, b, k, mu
// (kernels/cpu/norm.cpp's formulas); gw = sum(g * (x - mean)) * invstd, gb = sum(g).
template <class T>
__global__ void bn_bwd_channel_kernel(NCS d, const T* x, const T* gy, const T* relu_y, const T* w, const T* mean,
                                      const T* var, bool training, double eps, bool need_sums, T* gw, T* gb,
                                      T* coef) {
  __shared__ double sh[kBlockThreads / 32];
  const double m = static_cast<double>(d.n * d.s);
  const int64_t count = d.n * d.s;
  for (int64_t ch = blockIdx.x; ch < d.c; ch += gridDim.x) {
    const double mu = static_cast<double>(mean[ch]);
    const double invstd = 1.0 / ::sqrt(static_cast<double>(var[ch]) + eps);
    double sum_g = 0.0, sum_gxc = 0.0;
    if (need_sums) {
      for (int64_t e = threadIdx.x; e < count; e += blockDim.x) {
        const int64_t i = channel_offset(d, ch, e);
        const double g = static_cast<double>(masked(gy, relu_y, i));
        sum_g += g;
        sum_gxc += g * (static_cast<double>(x[i]) - mu);
      }
      sum_g = group_sum<kBlockThreads>(sum_g, sh);
      sum_gxc = group_sum<kBlockThreads>(sum_gxc, sh);
    }
    if (threadIdx.x == 0) {
      if (gw) gw[ch] = static_cast<T>(sum_gxc * invstd);
      if (gb) gb[ch] = static_cast<T>(sum_g);
      const double a = (w ? static_cast<double>(w[ch]) : 1.0) * invstd;
      const double b = training ? -a * invstd * invstd * sum_gxc / m : 0.0;
      const double k = training ? -a * sum_g / m : 0.0;
      coef[4 * ch] = static_cast<T>(a);
      coef[4 * ch + 1] = static_cast<T>(b);
      coef[4 * ch + 2] = static_cast<T>(k);
      coef[4 * ch + 3] = static_cast<T>(mu);
    }
  }
}

template <class T>
__global__ void bn_bwd_apply_kernel(NCS d, const T* x, const T* gy, const T* relu_y, const T* coef, T* gx) {
  const int64_t total = d.n * d.c * d.s;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const T* k = coef + 4 * ((i / d.s) % d.c);
    const T g = masked(gy, relu_y, i);
    gx[i] = rn::add(rn::add(rn::mul(k[0], g), rn::mul(k[1], rn::sub(x[i], k[3]))), k[2]);
  }
}

template <class T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}
template <class T>
T* mut_ptr_or_null(Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

void cuda_batch_norm_fwd(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& mean, Tensor& var,
                         bool training, double eps, bool relu, Tensor& y) {
  if (x.numel() == 0) return;  // the op layer does not call with an empty x
  const NCS d = ncs_of(x);
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  cudaStream_t st = stream(dev);
  dispatch_float(x.dtype(), "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    Tensor coef = empty({2 * d.c}, x.options());  // [c, 2]: scale, shift
    bn_fwd_channel_kernel<T><<<channel_grid(d.c), kBlockThreads, 0, st>>>(
        d, x.data<T>(), ptr_or_null<T>(weight), ptr_or_null<T>(bias), mean.data<T>(), var.data<T>(), training,
        eps, coef.data<T>());
    DL_CUDA_CHECK_LAUNCH();
    bn_fwd_apply_kernel<T><<<grid_for(x.numel(), kThreads), kThreads, 0, st>>>(d, x.data<T>(), coef.data<T>(),
                                                                               relu, y.data<T>());
    DL_CUDA_CHECK_LAUNCH();
  });
}

void cuda_batch_norm_bwd(const Tensor& x, const Tensor& gy, const Tensor& relu_y, const Tensor& weight,
                         const Tensor& mean, const Tensor& var, bool training, double eps, Tensor& gx, Tensor& gw,
                         Tensor& gb) {
  if (x.numel() == 0) return;  // the op layer does not call with an empty x
  const NCS d = ncs_of(x);
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  cudaStream_t st = stream(dev);
  const bool need_sums = gw.defined() || gb.defined() || (gx.defined() && training);
  dispatch_float(x.dtype(), "batch_norm backward", [&](auto tag) {
    using T = decltype(tag);
    Tensor coef = empty({4 * d.c}, x.options());  // [c, 4]: a, b, k, mean
    bn_bwd_channel_kernel<T><<<channel_grid(d.c), kBlockThreads, 0, st>>>(
        d, x.data<T>(), gy.data<T>(), ptr_or_null<T>(relu_y), ptr_or_null<T>(weight), mean.data<T>(),
        var.data<T>(), training, eps, need_sums, mut_ptr_or_null<T>(gw), mut_ptr_or_null<T>(gb), coef.data<T>());
    DL_CUDA_CHECK_LAUNCH();
    if (!gx.defined()) return;
    bn_bwd_apply_kernel<T><<<grid_for(x.numel(), kThreads), kThreads, 0, st>>>(
        d, x.data<T>(), gy.data<T>(), ptr_or_null<T>(relu_y), coef.data<T>(), gx.data<T>());
    DL_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

DL_REGISTER_KERNEL(batch_norm_fwd_stub, CUDA, f32_compute<cuda_batch_norm_fwd>);
DL_REGISTER_KERNEL(batch_norm_bwd_stub, CUDA, f32_compute<cuda_batch_norm_bwd>);

}  // namespace dl::cuda

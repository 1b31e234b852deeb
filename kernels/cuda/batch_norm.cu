// CUDA batch norm forward (training statistics or given running statistics, optional fused
// ReLU) and backward (ReLU mask, training-mode terms through the statistics), with the
// formulas of kernels/cpu/norm.cpp. x is viewed as [n, c, s].
//
// Per pass, a few small kernels instead of one block per channel (16 blocks for ResNet-20's
// first stage would leave most of a GPU idle):
//   - partial sums: a channel's n * s elements are cut into `parts` consecutive ranges (about
//     4,096 elements each, at most 64; the count depends on the shape only), one block per
//     (range, channel). Each thread sums a fixed subset in double and the block combines them
//     in the fixed tree of reduce.cuh; the partial sums go to a [c, parts] workspace;
//   - a finalize kernel, one thread per channel, adds the channel's partials in index order
//     and turns the statistics into per-channel coefficients in T, computed from doubles
//     exactly as the CPU computes them;
//   - an elementwise kernel over all elements applying the coefficients, written with rn::
//     operations (no FMA contraction) so that it rounds like the CPU's `x * scale + shift`.
// Every sum has a fixed order: results are deterministic (no atomics). Training statistics
// are two-pass (the sums, then the squared deviations from the mean, which each block of the
// second pass recomputes from the partials in the same order) where the CPU combines per-row
// two-pass results with Chan's update: both are exact to double rounding, so mean/var agree
// with the CPU's to the last bit of T in practice, not by construction. float16/bfloat16
// tensors (autocast runs batch norm in f32, so only direct calls) compute on f32 copies, like
// the CPU's (kernels/f32_compute.h).
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

// How the channels are cut: `parts` ranges of `per` elements (the last one shorter).
struct Split {
  NCS d;
  int64_t count;  // n * s, the elements of one channel
  int64_t parts, per;
  bool idx32;  // every offset fits 32 bits: cheaper divisions
};

constexpr int64_t kPartElems = 4096;
constexpr int64_t kMaxParts = 64;

Split split_of(const NCS& d) {
  Split sp{d, d.n * d.s, 1, 0, d.n * d.c * d.s < (int64_t(1) << 31)};
  sp.parts = std::min<int64_t>(kMaxParts, std::max<int64_t>(1, (sp.count + kPartElems - 1) / kPartElems));
  sp.per = (sp.count + sp.parts - 1) / sp.parts;
  return sp;
}

dim3 split_grid(const Split& sp) {
  return dim3(static_cast<unsigned>(sp.parts), static_cast<unsigned>(sp.d.c < 65535 ? sp.d.c : 65535));
}

unsigned channel_threads_grid(int64_t c) { return static_cast<unsigned>((c + kThreads - 1) / kThreads); }

// Offset of the channel's e-th element (e in [0, n * s)) in [n, c, s].
__device__ __forceinline__ int64_t channel_offset(const Split& sp, int64_t ch, int64_t e) {
  if (sp.idx32) {
    const uint32_t s = static_cast<uint32_t>(sp.d.s), ue = static_cast<uint32_t>(e);
    const uint32_t nn = ue / s;
    return (int64_t(nn) * sp.d.c + ch) * sp.d.s + (ue - nn * s);
  }
  const int64_t nn = e / sp.d.s;
  return (nn * sp.d.c + ch) * sp.d.s + (e - nn * sp.d.s);
}

// Channel of the element at offset i of [n, c, s].
__device__ __forceinline__ int64_t channel_of(const Split& sp, int64_t i) {
  if (sp.idx32) return (static_cast<uint32_t>(i) / static_cast<uint32_t>(sp.d.s)) % static_cast<uint32_t>(sp.d.c);
  return (i / sp.d.s) % sp.d.c;
}

// Sum of the channel's partials [ch, 0..parts) in index order: every reader gets the same bits.
__device__ __forceinline__ double sum_parts(const double* partial, int64_t parts, int64_t ch) {
  double t = 0.0;
  for (int64_t p = 0; p < parts; ++p) t += partial[ch * parts + p];
  return t;
}

// For every (range, channel) block: the block's sum of f(offset) over its range of the channel,
// written to out[ch * parts + range] by thread 0. f returns a double.
template <class F>
__device__ __forceinline__ void block_partial(const Split& sp, int64_t ch, double* sh, F f, double* out) {
  const int64_t e0 = int64_t(blockIdx.x) * sp.per;
  const int64_t e1 = e0 + sp.per < sp.count ? e0 + sp.per : sp.count;
  double acc = 0.0;
  for (int64_t e = e0 + threadIdx.x; e < e1; e += blockDim.x) acc += f(channel_offset(sp, ch, e));
  acc = group_sum<kBlockThreads>(acc, sh);
  if (threadIdx.x == 0) out[ch * sp.parts + blockIdx.x] = acc;
}

template <class T>
__global__ void bn_sum_kernel(Split sp, const T* x, double* part_sum) {
  __shared__ double sh[kBlockThreads / 32];
  for (int64_t ch = blockIdx.y; ch < sp.d.c; ch += gridDim.y)
    block_partial(sp, ch, sh, [&](int64_t i) { return static_cast<double>(x[i]); }, part_sum);
}

template <class T>
__global__ void bn_m2_kernel(Split sp, const T* x, const double* part_sum, double* part_m2) {
  __shared__ double sh[kBlockThreads / 32];
  const double m = static_cast<double>(sp.count);
  for (int64_t ch = blockIdx.y; ch < sp.d.c; ch += gridDim.y) {
    const double mu = sum_parts(part_sum, sp.parts, ch) / m;
    block_partial(sp, ch, sh, [&](int64_t i) {
      const double dv = static_cast<double>(x[i]) - mu;
      return dv * dv;
    }, part_m2);
  }
}

// Forward coefficients: coef[2 ch] = scale, coef[2 ch + 1] = shift, so y = x * scale + shift.
// Training: the batch mean and biased variance from the partials, written to mean/var; eval:
// read from them. One thread per channel.
template <class T>
__global__ void bn_fwd_finalize_kernel(Split sp, const double* part_sum, const double* part_m2, const T* w,
                                       const T* b, T* mean, T* var, bool training, double eps, T* coef) {
  const int64_t ch = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ch >= sp.d.c) return;
  const double m = static_cast<double>(sp.count);
  double mu, invstd;
  if (training) {
    mu = sum_parts(part_sum, sp.parts, ch) / m;
    const double v = sum_parts(part_m2, sp.parts, ch) / m;
    mean[ch] = static_cast<T>(mu);
    var[ch] = static_cast<T>(v);
    invstd = 1.0 / ::sqrt(v + eps);
  } else {
    mu = static_cast<double>(mean[ch]);
    invstd = 1.0 / ::sqrt(static_cast<double>(var[ch]) + eps);
  }
  const double scale = invstd * (w ? static_cast<double>(w[ch]) : 1.0);
  coef[2 * ch] = static_cast<T>(scale);
  coef[2 * ch + 1] = static_cast<T>((b ? static_cast<double>(b[ch]) : 0.0) - mu * scale);
}

template <class T>
__global__ void bn_fwd_apply_kernel(Split sp, const T* x, const T* coef, bool relu, T* y) {
  const int64_t total = sp.d.n * sp.d.c * sp.d.s;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ch = channel_of(sp, i);
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

template <class T>
__global__ void bn_bwd_sum_kernel(Split sp, const T* x, const T* gy, const T* relu_y, const T* mean, double* part_g,
                                  double* part_gxc) {
  __shared__ double sh[kBlockThreads / 32];
  for (int64_t ch = blockIdx.y; ch < sp.d.c; ch += gridDim.y) {
    const double mu = static_cast<double>(mean[ch]);
    block_partial(sp, ch, sh, [&](int64_t i) { return static_cast<double>(masked(gy, relu_y, i)); }, part_g);
    block_partial(sp, ch, sh, [&](int64_t i) {
      return static_cast<double>(masked(gy, relu_y, i)) * (static_cast<double>(x[i]) - mu);
    }, part_gxc);
  }
}

// Backward coefficients: gx = a * g + b * (x - mu) + k with coef[4 ch + 0..3] = a, b, k, mu
// (kernels/cpu/norm.cpp's formulas); gw = sum(g * (x - mean)) * invstd, gb = sum(g). The sums
// come from the partials (null: not needed, 0). One thread per channel.
template <class T>
__global__ void bn_bwd_finalize_kernel(Split sp, const double* part_g, const double* part_gxc, const T* w,
                                       const T* mean, const T* var, bool training, double eps, T* gw, T* gb,
                                       T* coef) {
  const int64_t ch = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ch >= sp.d.c) return;
  const double m = static_cast<double>(sp.count);
  const double mu = static_cast<double>(mean[ch]);
  const double invstd = 1.0 / ::sqrt(static_cast<double>(var[ch]) + eps);
  const double sum_g = part_g ? sum_parts(part_g, sp.parts, ch) : 0.0;
  const double sum_gxc = part_gxc ? sum_parts(part_gxc, sp.parts, ch) : 0.0;
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

template <class T>
__global__ void bn_bwd_apply_kernel(Split sp, const T* x, const T* gy, const T* relu_y, const T* coef, T* gx) {
  const int64_t total = sp.d.n * sp.d.c * sp.d.s;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const T* k = coef + 4 * channel_of(sp, i);
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

// The [c, parts] double workspace of one set of partial sums.
Tensor partials(const Split& sp, const Tensor& x) {
  return empty({sp.d.c * sp.parts}, TensorOptions(DType::F64, x.device()));
}

void cuda_batch_norm_fwd(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& mean, Tensor& var,
                         bool training, double eps, bool relu, Tensor& y) {
  if (x.numel() == 0) return;  // the op layer does not call with an empty x
  const Split sp = split_of(ncs_of(x));
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  cudaStream_t st = stream(dev);
  dispatch_float(x.dtype(), "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    Tensor coef = empty({2 * sp.d.c}, x.options());  // [c, 2]: scale, shift
    Tensor part_sum, part_m2;
    if (training) {
      part_sum = partials(sp, x);
      part_m2 = partials(sp, x);
      bn_sum_kernel<T><<<split_grid(sp), kBlockThreads, 0, st>>>(sp, x.data<T>(), part_sum.data<double>());
      DL_CUDA_CHECK_LAUNCH();
      bn_m2_kernel<T><<<split_grid(sp), kBlockThreads, 0, st>>>(sp, x.data<T>(), part_sum.data<double>(),
                                                                part_m2.data<double>());
      DL_CUDA_CHECK_LAUNCH();
    }
    bn_fwd_finalize_kernel<T><<<channel_threads_grid(sp.d.c), kThreads, 0, st>>>(
        sp, training ? part_sum.data<double>() : nullptr, training ? part_m2.data<double>() : nullptr,
        ptr_or_null<T>(weight), ptr_or_null<T>(bias), mean.data<T>(), var.data<T>(), training, eps, coef.data<T>());
    DL_CUDA_CHECK_LAUNCH();
    bn_fwd_apply_kernel<T><<<grid_for(x.numel(), kThreads), kThreads, 0, st>>>(sp, x.data<T>(), coef.data<T>(),
                                                                               relu, y.data<T>());
    DL_CUDA_CHECK_LAUNCH();
  });
}

void cuda_batch_norm_bwd(const Tensor& x, const Tensor& gy, const Tensor& relu_y, const Tensor& weight,
                         const Tensor& mean, const Tensor& var, bool training, double eps, Tensor& gx, Tensor& gw,
                         Tensor& gb) {
  if (x.numel() == 0) return;  // the op layer does not call with an empty x
  const Split sp = split_of(ncs_of(x));
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  cudaStream_t st = stream(dev);
  const bool need_sums = gw.defined() || gb.defined() || (gx.defined() && training);
  dispatch_float(x.dtype(), "batch_norm backward", [&](auto tag) {
    using T = decltype(tag);
    Tensor coef = empty({4 * sp.d.c}, x.options());  // [c, 4]: a, b, k, mean
    Tensor part_g, part_gxc;
    if (need_sums) {
      part_g = partials(sp, x);
      part_gxc = partials(sp, x);
      bn_bwd_sum_kernel<T><<<split_grid(sp), kBlockThreads, 0, st>>>(sp, x.data<T>(), gy.data<T>(),
                                                                     ptr_or_null<T>(relu_y), mean.data<T>(),
                                                                     part_g.data<double>(), part_gxc.data<double>());
      DL_CUDA_CHECK_LAUNCH();
    }
    bn_bwd_finalize_kernel<T><<<channel_threads_grid(sp.d.c), kThreads, 0, st>>>(
        sp, need_sums ? part_g.data<double>() : nullptr, need_sums ? part_gxc.data<double>() : nullptr,
        ptr_or_null<T>(weight), mean.data<T>(), var.data<T>(), training, eps, mut_ptr_or_null<T>(gw),
        mut_ptr_or_null<T>(gb), coef.data<T>());
    DL_CUDA_CHECK_LAUNCH();
    if (!gx.defined()) return;
    bn_bwd_apply_kernel<T><<<grid_for(x.numel(), kThreads), kThreads, 0, st>>>(
        sp, x.data<T>(), gy.data<T>(), ptr_or_null<T>(relu_y), coef.data<T>(), gx.data<T>());
    DL_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

DL_REGISTER_KERNEL(batch_norm_fwd_stub, CUDA, f32_compute<cuda_batch_norm_fwd>);
DL_REGISTER_KERNEL(batch_norm_bwd_stub, CUDA, f32_compute<cuda_batch_norm_bwd>);

}  // namespace dl::cuda

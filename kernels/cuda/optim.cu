// CUDA fused optimizer updates (kernels/optim.h), the device twins of kernels/cpu/optim.cpp.
//
// The stubs take one parameter tensor per call (engine/optim/sgd.cpp and adam.cpp loop over the
// parameters), so there is one launch per tensor: an elementwise grid-stride kernel. Each
// element is updated by one thread with the CPU kernel's operations in the same order and the
// same dtype; rn:: (helpers.cuh) keeps nvcc from fusing them into FMAs the CPU does not use,
// and sqrt and division are correctly rounded, so results should equal the CPU's bit for bit.
#include "kernels/cuda/helpers.cuh"
#include "kernels/cuda/loop.cuh"
#include "kernels/optim.h"

namespace dl::cuda {
namespace {

// Scalars rounded to T on the host, as the CPU kernel rounds them.
template <class T>
struct SgdScalars {
  T wd, m, one_minus_damp, neg_lr;
  bool has_wd, has_m, nesterov, init;
};

template <class T>
__global__ void sgd_kernel(T* p, const T* g, T* buf, int64_t n, SgdScalars<T> s) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    T d = g[i];
    if (s.has_wd) d = rn::add(d, rn::mul(s.wd, p[i]));  // d_p = d_p.add(param, alpha=wd)
    if (s.has_m) {
      const T b = s.init ? d : rn::add(rn::mul(buf[i], s.m), rn::mul(s.one_minus_damp, d));
      buf[i] = b;
      d = s.nesterov ? rn::add(d, rn::mul(s.m, b)) : b;
    }
    p[i] = rn::add(p[i], rn::mul(s.neg_lr, d));  // param.add_(d_p, alpha=-lr)
  }
}

template <class T>
struct AdamScalars {
  T b1, b2, one_minus_b1, one_minus_b2, wd, decay, bc2, eps, neg_step;
  bool coupled_wd, decoupled;
};

template <class T>
__device__ __forceinline__ T nan_max(T x, T y) {  // torch.maximum propagates NaN
  if (x != x) return x;
  if (y != y) return y;
  return x > y ? x : y;
}

template <class T>
__global__ void adam_kernel(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, AdamScalars<T> s) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    T gi = g[i];
    T pi = p[i];
    if (s.coupled_wd) gi = rn::add(gi, rn::mul(s.wd, pi));  // grad = grad.add(param, alpha=wd)
    if (s.decoupled) pi = rn::mul(pi, s.decay);             // param.mul_(1 - lr * wd)
    const T mi = rn::add(rn::mul(m[i], s.b1), rn::mul(s.one_minus_b1, gi));
    const T vi = rn::add(rn::mul(v[i], s.b2), rn::mul(rn::mul(s.one_minus_b2, gi), gi));
    m[i] = mi;
    v[i] = vi;
    T sq = vi;
    if (vmax) {
      sq = nan_max(vmax[i], vi);
      vmax[i] = sq;
    }
    const T denom = rn::add(rn::div(dm::sqrt(sq), s.bc2), s.eps);  // (sqrt(v) / bc2_sqrt).add_(eps)
    p[i] = rn::add(pi, rn::div(rn::mul(s.neg_step, mi), denom));   // param.addcdiv_(m, denom, -step)
  }
}

void cuda_sgd_step(Tensor& param, const Tensor& grad, Tensor& buf, const SgdArgs& a) {
  const int64_t n = param.numel();
  if (n == 0) return;
  const int dev = param.device().index;
  DeviceGuard guard(dev);
  dispatch_float(param.dtype(), "sgd_step", [&](auto tag) {
    using T = decltype(tag);
    const SgdScalars<T> s{static_cast<T>(a.weight_decay), static_cast<T>(a.momentum),
                          static_cast<T>(1.0 - a.dampening), static_cast<T>(-a.lr),
                          a.weight_decay != 0.0, a.momentum != 0.0, a.nesterov, a.init_buffer};
    sgd_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream(dev)>>>(
        param.data<T>(), grad.data<T>(), buf.defined() ? buf.data<T>() : nullptr, n, s);
    DL_CUDA_CHECK_LAUNCH();
  });
}

void cuda_adam_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, Tensor& vmax, const AdamArgs& a) {
  const int64_t n = param.numel();
  if (n == 0) return;
  const int dev = param.device().index;
  DeviceGuard guard(dev);
  dispatch_float(param.dtype(), "adam_step", [&](auto tag) {
    using T = decltype(tag);
    const AdamScalars<T> s{static_cast<T>(a.beta1), static_cast<T>(a.beta2), static_cast<T>(1.0 - a.beta1),
                           static_cast<T>(1.0 - a.beta2), static_cast<T>(a.weight_decay),
                           static_cast<T>(1.0 - a.lr * a.weight_decay), static_cast<T>(a.bias_correction2_sqrt),
                           static_cast<T>(a.eps), static_cast<T>(-a.step_size),
                           !a.decoupled && a.weight_decay != 0.0, a.decoupled};
    adam_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream(dev)>>>(
        param.data<T>(), grad.data<T>(), m.data<T>(), v.data<T>(), vmax.defined() ? vmax.data<T>() : nullptr, n, s);
    DL_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

DL_REGISTER_KERNEL(sgd_step_stub, CUDA, cuda_sgd_step);
DL_REGISTER_KERNEL(adam_step_stub, CUDA, cuda_adam_step);

}  // namespace dl::cuda

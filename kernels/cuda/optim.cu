// CUDA fused optimizer updates (kernels/optim.h), the device twins of kernels/cpu/optim.cpp.
//
// The stubs take one parameter tensor per call (engine/optim/sgd.cpp and adam.cpp loop over the
// parameters), so there is one launch per tensor: an elementwise grid-stride kernel. Each
// element is updated by one thread with the formula the CPU loops use (kernels/optim_update.h),
// through DeviceMath: rn:: (helpers.cuh) keeps nvcc from fusing the operations into FMAs the CPU
// does not use, and sqrt and division are correctly rounded, so results should equal the CPU's
// bit for bit.
#include "kernels/cuda/helpers.cuh"
#include "kernels/cuda/loop.cuh"
#include "kernels/optim.h"
#include "kernels/optim_update.h"

namespace dl::cuda {
namespace {

// Device arithmetic for kernels/optim_update.h: rn:: keeps nvcc from fusing into FMAs the CPU
// does not use; sqrt and division are correctly rounded.
struct DeviceMath {
  template <class T>
  __device__ static T add(T a, T b) { return rn::add(a, b); }
  template <class T>
  __device__ static T mul(T a, T b) { return rn::mul(a, b); }
  template <class T>
  __device__ static T div(T a, T b) { return rn::div(a, b); }
  template <class T>
  __device__ static T sqrt(T a) { return dm::sqrt(a); }
};

using optim_update::AdamScalars;
using optim_update::SgdScalars;

struct SgdFlags {
  bool wd, momentum, init, nesterov;
};

struct AdamFlags {
  bool coupled_wd, decoupled;
};

template <class T>
__global__ void sgd_kernel(T* p, const T* g, T* buf, int64_t n, SgdScalars<T> s, SgdFlags f) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    optim_update::sgd<DeviceMath>(p, g, buf, i, s, f.wd, f.momentum, f.init, f.nesterov);
}

template <class T>
__global__ void adam_kernel(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, AdamScalars<T> s, AdamFlags f) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    optim_update::adam<DeviceMath>(p, g, m, v, vmax, i, s, f.coupled_wd, f.decoupled, vmax != nullptr);
}

void cuda_sgd_step(Tensor& param, const Tensor& grad, Tensor& buf, const SgdArgs& a) {
  const int64_t n = param.numel();
  if (n == 0) return;
  const int dev = param.device().index;
  DeviceGuard guard(dev);
  dispatch_float(param.dtype(), "sgd_step", [&](auto tag) {
    using T = decltype(tag);
    const SgdScalars<T> s{static_cast<T>(a.weight_decay), static_cast<T>(a.momentum),
                          static_cast<T>(1.0 - a.dampening), static_cast<T>(-a.lr)};
    const SgdFlags f{a.weight_decay != 0.0, a.momentum != 0.0, a.init_buffer, a.nesterov};
    sgd_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream(dev)>>>(
        param.data<T>(), grad.data<T>(), buf.defined() ? buf.data<T>() : nullptr, n, s, f);
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
                           static_cast<T>(a.eps), static_cast<T>(-a.step_size)};
    const AdamFlags f{!a.decoupled && a.weight_decay != 0.0, a.decoupled};
    adam_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream(dev)>>>(
        param.data<T>(), grad.data<T>(), m.data<T>(), v.data<T>(), vmax.defined() ? vmax.data<T>() : nullptr, n, s, f);
    DL_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

DL_REGISTER_KERNEL(sgd_step_stub, CUDA, cuda_sgd_step);
DL_REGISTER_KERNEL(adam_step_stub, CUDA, cuda_adam_step);

}  // namespace dl::cuda

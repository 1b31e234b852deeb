// CPU fused optimizer updates (see kernels/optim.h). Per element, in the tensor's dtype, in
// the order of torch 1.13's _single_tensor_sgd / _single_tensor_adam(w).
#include <cmath>
#include <limits>

#include "kernels/cpu/loop.h"
#include "kernels/optim.h"

namespace dl::cpu {
namespace {

template <class T>
void sgd_impl(Tensor& param, const Tensor& grad, Tensor& buf_t, const SgdArgs& a) {
  T* p = param.data<T>();
  const T* g = grad.data<T>();
  T* buf = buf_t.defined() ? buf_t.data<T>() : nullptr;
  const T wd = static_cast<T>(a.weight_decay), m = static_cast<T>(a.momentum);
  const T one_minus_damp = static_cast<T>(1.0 - a.dampening), neg_lr = static_cast<T>(-a.lr);
  const bool has_wd = a.weight_decay != 0.0, has_m = a.momentum != 0.0;
  const bool nesterov = a.nesterov, init = a.init_buffer;
  parallel_for(param.numel(), kParallelGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      T d = g[i];
      if (has_wd) d = d + wd * p[i];              // d_p = d_p.add(param, alpha=wd)
      if (has_m) {
        T b = init ? d : T(buf[i] * m) + one_minus_damp * d;  // buf.mul_(m).add_(d_p, 1-damp)
        buf[i] = b;
        d = nesterov ? d + m * b : b;
      }
      p[i] = p[i] + neg_lr * d;                   // param.add_(d_p, alpha=-lr)
    }
  });
}

template <class T>
inline T nan_max(T x, T y) {  // torch.maximum propagates NaN
  if (x != x) return x;
  if (y != y) return y;
  return x > y ? x : y;
}

template <class T>
void adam_impl(Tensor& param, const Tensor& grad, Tensor& m_t, Tensor& v_t, Tensor& vmax_t,
               const AdamArgs& a) {
  T* p = param.data<T>();
  const T* g = grad.data<T>();
  T* m = m_t.data<T>();
  T* v = v_t.data<T>();
  T* vmax = vmax_t.defined() ? vmax_t.data<T>() : nullptr;
  const T b1 = static_cast<T>(a.beta1), b2 = static_cast<T>(a.beta2);
  const T one_minus_b1 = static_cast<T>(1.0 - a.beta1), one_minus_b2 = static_cast<T>(1.0 - a.beta2);
  const T wd = static_cast<T>(a.weight_decay);
  const T decay = static_cast<T>(1.0 - a.lr * a.weight_decay);
  const T bc2 = static_cast<T>(a.bias_correction2_sqrt), eps = static_cast<T>(a.eps);
  const T neg_step = static_cast<T>(-a.step_size);
  const bool coupled_wd = !a.decoupled && a.weight_decay != 0.0, decoupled = a.decoupled;
  parallel_for(param.numel(), kParallelGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      T gi = g[i];
      T pi = p[i];
      if (coupled_wd) gi = gi + wd * pi;          // grad = grad.add(param, alpha=wd)
      if (decoupled) pi = pi * decay;             // param.mul_(1 - lr * wd)
      T mi = T(m[i] * b1) + one_minus_b1 * gi;    // exp_avg.mul_(b1).add_(grad, 1-b1)
      T vi = T(v[i] * b2) + T(one_minus_b2 * gi) * gi;  // exp_avg_sq.mul_(b2).addcmul_(g, g, 1-b2)
      m[i] = mi;
      v[i] = vi;
      T s = vi;
      if (vmax) {
        s = nan_max(vmax[i], vi);
        vmax[i] = s;
      }
      T denom = T(std::sqrt(s) / bc2) + eps;      // (sqrt(v) / bc2_sqrt).add_(eps)
      p[i] = pi + T(neg_step * mi) / denom;       // param.addcdiv_(exp_avg, denom, -step_size)
    }
  });
}

void cpu_sgd_step(Tensor& param, const Tensor& grad, Tensor& buf, const SgdArgs& a) {
  DL_DISPATCH_FLOAT(param.dtype(), "sgd_step", [&] { sgd_impl<scalar_t>(param, grad, buf, a); });
}

void cpu_adam_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, Tensor& vmax,
                   const AdamArgs& a) {
  DL_DISPATCH_FLOAT(param.dtype(), "adam_step", [&] { adam_impl<scalar_t>(param, grad, m, v, vmax, a); });
}

}  // namespace

DL_REGISTER_KERNEL(sgd_step_stub, CPU, cpu_sgd_step);
DL_REGISTER_KERNEL(adam_step_stub, CPU, cpu_adam_step);

}  // namespace dl::cpu

// The per-element SGD and Adam/AdamW updates, written once for both backends: the CPU's
// vectorising loops (kernels/cpu/optim.cpp) and the CUDA kernels (kernels/cuda/optim.cu).
// Order and dtype are those of torch 1.13's _single_tensor_sgd / _single_tensor_adam(w).
//
// Arithmetic goes through the policy `A` (A::add, mul, div, sqrt of T): plain operators on the
// CPU (baseline x86-64 has no FMA to contract them into), correctly rounded non-contracting
// intrinsics on the GPU, so both backends perform the same roundings and agree bit for bit.
// The option flags are arguments: the CPU passes compile-time constants (each option set is a
// loop without branches after inlining, which the compiler vectorizes), CUDA passes its
// kernel's arguments.
#pragma once
#include <cstdint>

#include "kernels/host_device.h"

namespace dl::optim_update {

// Scalars rounded to T on the host, once per step.
template <class T>
struct SgdScalars {
  T wd, m, one_minus_damp, neg_lr;
};

template <class T>
struct AdamScalars {
  T b1, b2, one_minus_b1, one_minus_b2, wd, decay, bc2, eps, neg_step;
};

// p[i] -= lr * d, d the gradient with weight decay, through the momentum buffer buf[i]
// (read only when `momentum`; `init`: the first step, the buffer starts as d).
template <class A, class T>
DL_HOST_DEVICE inline void sgd(T* p, const T* g, T* buf, int64_t i, const SgdScalars<T>& s, bool wd, bool momentum,
                               bool init, bool nesterov) {
  T d = g[i];
  if (wd) d = A::add(d, A::mul(s.wd, p[i]));  // d_p = d_p.add(param, alpha=wd)
  if (momentum) {
    const T b = init ? d : A::add(A::mul(buf[i], s.m), A::mul(s.one_minus_damp, d));  // buf.mul_(m).add_(d_p, 1-damp)
    buf[i] = b;
    d = nesterov ? A::add(d, A::mul(s.m, b)) : b;
  }
  p[i] = A::add(p[i], A::mul(s.neg_lr, d));  // param.add_(d_p, alpha=-lr)
}

template <class T>
DL_HOST_DEVICE inline T nan_max(T x, T y) {  // torch.maximum propagates NaN
  if (x != x) return x;
  if (y != y) return y;
  return x > y ? x : y;
}

// One Adam step of element i: coupled weight decay (Adam) or decoupled (AdamW), amsgrad keeps
// the running maximum of v in vmax[i] (read only when `amsgrad`).
template <class A, class T>
DL_HOST_DEVICE inline void adam(T* p, const T* g, T* m, T* v, T* vmax, int64_t i, const AdamScalars<T>& c,
                                bool coupled_wd, bool decoupled, bool amsgrad) {
  T gi = g[i];
  T pi = p[i];
  if (coupled_wd) gi = A::add(gi, A::mul(c.wd, pi));  // grad = grad.add(param, alpha=wd)
  if (decoupled) pi = A::mul(pi, c.decay);            // param.mul_(1 - lr * wd)
  const T mi = A::add(A::mul(m[i], c.b1), A::mul(c.one_minus_b1, gi));              // exp_avg.mul_(b1).add_(g, 1-b1)
  const T vi = A::add(A::mul(v[i], c.b2), A::mul(A::mul(c.one_minus_b2, gi), gi));  // exp_avg_sq...addcmul_(g, g, 1-b2)
  m[i] = mi;
  v[i] = vi;
  T s = vi;
  if (amsgrad) {
    s = nan_max(vmax[i], vi);
    vmax[i] = s;
  }
  const T denom = A::add(A::div(A::sqrt(s), c.bc2), c.eps);  // (sqrt(v) / bc2_sqrt).add_(eps)
  p[i] = A::add(pi, A::div(A::mul(c.neg_step, mi), denom));   // param.addcdiv_(exp_avg, denom, -step_size)
}

}  // namespace dl::optim_update

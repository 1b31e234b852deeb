// The per-element SGD and Adam/AdamW updates, written once for both backends: the CPU's
// vectorising loops (kernels/cpu/optim.cpp) and the CUDA kernels (kernels/cuda/optim.cu).
// Order and dtype are those of torch 1.13's _single_tensor_sgd / _single_tensor_adam(w).
//
// Arithmetic goes through the policy `A` (A::add, sub, mul, div, sqrt of T): plain operators on the
// CPU (baseline x86-64 has no FMA to contract them into), correctly rounded non-contracting
// intrinsics on the GPU, so both backends perform the same roundings and agree bit for bit.
// The option flags are arguments: the CPU passes compile-time constants (each option set is a
// loop without branches after inlining, which the compiler vectorizes), CUDA passes its
// kernel's arguments.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/host_device.h"
#include "kernels/optim.h"

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

// torch.maximum, which propagates NaN; one select (ew::MaximumOp's expression), so that the
// CPU loops if-convert and vectorize it.
template <class T>
DL_HOST_DEVICE inline T nan_max(T x, T y) {
  return ((x != x) | (x > y)) ? x : y;  // `|`, not `||`: no branch
}

// |x| by clearing the sign bit (andps; a compare-and-branch on a random sign mispredicts half
// the time and made Adamax's CPU loop 3x slower than the engine ops). It differs from
// ew::AbsOp only on -0 (AbsOp keeps it, which |g| + eps erases) and in the sign of a NaN.
template <class T>
DL_HOST_DEVICE inline T abs_value(T x) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == 4) return ::fabsf(x);
  else return ::fabs(x);
#else
  return std::fabs(x);
#endif
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

// ---- the other optimizers: one functor each, built on the host from the call's arguments ----
// Roles of `t` (a row of kernels/optim.h): t[0] param, t[1] grad, t[2..] the state slots.
// Each line is the engine-op path's line (engine/optim/<name>.cpp) with its rounding: a scalar
// argument of an op is rounded to T, `add(x, y, alpha)` is x + alpha * y.

template <class A, class T>
DL_HOST_DEVICE inline T weight_decayed(T g, T p, T wd, bool on) {  // grad.add(param, alpha=wd)
  return on ? A::add(g, A::mul(wd, p)) : g;
}

template <class A, class T>
struct SgdUpdate {
  SgdScalars<T> s;
  bool wd, momentum, init, nesterov;
  DL_HOST_DEVICE void operator()(T* const* t, int64_t i) const {
    sgd<A>(t[0], t[1], t[2], i, s, wd, momentum, init, nesterov);
  }
};
template <class A, class T>
SgdUpdate<A, T> make_update(const SgdArgs& a) {
  return {{static_cast<T>(a.weight_decay), static_cast<T>(a.momentum), static_cast<T>(1.0 - a.dampening),
           static_cast<T>(-a.lr)},
          a.weight_decay != 0.0, a.momentum != 0.0, a.init_buffer, a.nesterov};
}

template <class T>
AdamScalars<T> adam_scalars(const AdamArgs& a) {
  return {static_cast<T>(a.beta1),        static_cast<T>(a.beta2),
          static_cast<T>(1.0 - a.beta1),  static_cast<T>(1.0 - a.beta2),
          static_cast<T>(a.weight_decay), static_cast<T>(1.0 - a.lr * a.weight_decay),
          static_cast<T>(a.bias_correction2_sqrt), static_cast<T>(a.eps),
          static_cast<T>(-a.step_size)};
}
template <class A, class T>
struct AdamUpdate {
  AdamScalars<T> s;
  bool coupled_wd, decoupled, amsgrad;
  DL_HOST_DEVICE void operator()(T* const* t, int64_t i) const {
    adam<A>(t[0], t[1], t[2], t[3], t[4], i, s, coupled_wd, decoupled, amsgrad);
  }
};
template <class A, class T>
AdamUpdate<A, T> make_update(const AdamArgs& a) {
  return {adam_scalars<T>(a), !a.decoupled && a.weight_decay != 0.0, a.decoupled, a.amsgrad};
}

// RMSprop: square_avg t[2], momentum_buffer t[3], grad_avg t[4].
template <class T>
struct RmspropScalars {
  T alpha, one_minus_alpha, wd, eps, momentum, neg_lr;
};

// One RMSprop step of element i (flags as sgd / adam: compile-time constants on the CPU).
template <class A, class T>
DL_HOST_DEVICE inline void rmsprop(T* p, const T* grad, T* square_avg, T* buf, T* grad_avg, int64_t i,
                                   const RmspropScalars<T>& s, bool has_wd, bool centered, bool has_momentum) {
  const T g = weight_decayed<A>(grad[i], p[i], s.wd, has_wd);
  // square_avg.mul_(alpha).addcmul_(g, g, 1 - alpha)
  const T sq = A::add(A::mul(square_avg[i], s.alpha), A::mul(A::mul(g, s.one_minus_alpha), g));
  square_avg[i] = sq;
  T avg;
  if (centered) {
    const T ga = A::add(A::mul(grad_avg[i], s.alpha), A::mul(s.one_minus_alpha, g));  // mul_(a); add_(g, 1-a)
    grad_avg[i] = ga;
    avg = A::sqrt(A::sub(sq, A::mul(ga, ga)));
  } else {
    avg = A::sqrt(sq);
  }
  avg = A::add(avg, s.eps);
  if (has_momentum) {
    const T b = A::add(A::mul(buf[i], s.momentum), A::div(g, avg));  // mul_(m); add_(g / avg)
    buf[i] = b;
    p[i] = A::add(p[i], A::mul(s.neg_lr, b));
  } else {
    p[i] = A::add(p[i], A::div(A::mul(g, s.neg_lr), avg));
  }
}

template <class A, class T>
struct RmspropUpdate {
  RmspropScalars<T> s;
  bool has_wd, centered, has_momentum;
  DL_HOST_DEVICE void operator()(T* const* t, int64_t i) const {
    rmsprop<A>(t[0], t[1], t[2], t[3], t[4], i, s, has_wd, centered, has_momentum);
  }
};
template <class A, class T>
RmspropUpdate<A, T> make_update(const RmspropArgs& a) {
  return {{static_cast<T>(a.alpha), static_cast<T>(1.0 - a.alpha), static_cast<T>(a.weight_decay),
           static_cast<T>(a.eps), static_cast<T>(a.momentum), static_cast<T>(-a.lr)},
          a.weight_decay != 0.0, a.centered, a.momentum > 0};
}

// Adagrad: sum t[2].
template <class A, class T>
struct AdagradUpdate {
  T wd, eps, neg_clr;
  bool has_wd;
  DL_HOST_DEVICE void operator()(T* const* t, int64_t i) const {
    const T g = weight_decayed<A>(t[1][i], t[0][i], wd, has_wd);
    const T sum = A::add(t[2][i], A::mul(g, g));
    t[2][i] = sum;
    const T std_ = A::add(A::sqrt(sum), eps);
    t[0][i] = A::add(t[0][i], A::div(A::mul(g, neg_clr), std_));
  }
};
template <class A, class T>
AdagradUpdate<A, T> make_update(const AdagradArgs& a) {
  return {static_cast<T>(a.weight_decay), static_cast<T>(a.eps), static_cast<T>(-a.clr), a.weight_decay != 0.0};
}

// Adadelta: square_avg t[2], acc_delta t[3].
template <class A, class T>
struct AdadeltaUpdate {
  T rho, one_minus_rho, eps, wd, neg_lr;
  bool has_wd;
  DL_HOST_DEVICE void operator()(T* const* t, int64_t i) const {
    const T g = weight_decayed<A>(t[1][i], t[0][i], wd, has_wd);
    const T sq = A::add(A::mul(t[2][i], rho), A::mul(A::mul(g, one_minus_rho), g));
    t[2][i] = sq;
    const T std_ = A::sqrt(A::add(sq, eps));
    const T acc = t[3][i];
    const T delta = A::mul(A::div(A::sqrt(A::add(acc, eps)), std_), g);
    t[3][i] = A::add(A::mul(acc, rho), A::mul(A::mul(delta, one_minus_rho), delta));
    t[0][i] = A::add(t[0][i], A::mul(neg_lr, delta));
  }
};
template <class A, class T>
AdadeltaUpdate<A, T> make_update(const AdadeltaArgs& a) {
  return {static_cast<T>(a.rho), static_cast<T>(1.0 - a.rho), static_cast<T>(a.eps),
          static_cast<T>(a.weight_decay), static_cast<T>(-a.lr), a.weight_decay != 0.0};
}

// Adamax: exp_avg t[2], exp_inf t[3].
template <class A, class T>
struct AdamaxUpdate {
  T b1, one_minus_b1, b2, eps, wd, neg_clr;
  bool has_wd;
  DL_HOST_DEVICE void operator()(T* const* t, int64_t i) const {
    const T g = weight_decayed<A>(t[1][i], t[0][i], wd, has_wd);
    const T m = A::add(A::mul(t[2][i], b1), A::mul(one_minus_b1, g));
    t[2][i] = m;
    const T u = nan_max(A::mul(t[3][i], b2), A::add(abs_value(g), eps));  // maximum(exp_inf * b2, |g| + eps)
    t[3][i] = u;
    t[0][i] = A::add(t[0][i], A::div(A::mul(m, neg_clr), u));
  }
};
template <class A, class T>
AdamaxUpdate<A, T> make_update(const AdamaxArgs& a) {
  return {static_cast<T>(a.beta1), static_cast<T>(1.0 - a.beta1), static_cast<T>(a.beta2),
          static_cast<T>(a.eps),   static_cast<T>(a.weight_decay), static_cast<T>(-a.clr),
          a.weight_decay != 0.0};
}

// The exp_avg / exp_avg_sq moments NAdam and RAdam share with Adam: t[2], t[3].
template <class A, class T>
DL_HOST_DEVICE inline void adam_moments(T* const* t, int64_t i, T g, T b1, T one_minus_b1, T b2, T one_minus_b2,
                                        T& m, T& v) {
  m = A::add(A::mul(t[2][i], b1), A::mul(one_minus_b1, g));               // mul_(b1); add_(g, 1-b1)
  v = A::add(A::mul(t[3][i], b2), A::mul(A::mul(g, one_minus_b2), g));  // mul_(b2); add_(g*(1-b2)*g)
  t[2][i] = m;
  t[3][i] = v;
}

// NAdam: exp_avg t[2], exp_avg_sq t[3].
template <class A, class T>
struct NadamUpdate {
  T b1, one_minus_b1, b2, one_minus_b2, eps, wd, bc2, grad_coef, exp_avg_coef;
  bool has_wd;
  DL_HOST_DEVICE void operator()(T* const* t, int64_t i) const {
    const T g = weight_decayed<A>(t[1][i], t[0][i], wd, has_wd);
    T m, v;
    adam_moments<A>(t, i, g, b1, one_minus_b1, b2, one_minus_b2, m, v);
    const T denom = A::add(A::sqrt(A::div(v, bc2)), eps);
    const T p = A::add(t[0][i], A::div(A::mul(g, grad_coef), denom));
    t[0][i] = A::add(p, A::div(A::mul(m, exp_avg_coef), denom));
  }
};
template <class A, class T>
NadamUpdate<A, T> make_update(const NadamArgs& a) {
  return {static_cast<T>(a.beta1),        static_cast<T>(1.0 - a.beta1), static_cast<T>(a.beta2),
          static_cast<T>(1.0 - a.beta2),  static_cast<T>(a.eps),         static_cast<T>(a.weight_decay),
          static_cast<T>(a.bias_correction2), static_cast<T>(a.grad_coef), static_cast<T>(a.exp_avg_coef),
          a.weight_decay != 0.0};
}

// RAdam: exp_avg t[2], exp_avg_sq t[3].
template <class A, class T>
struct RadamUpdate {
  T b1, one_minus_b1, b2, one_minus_b2, eps, wd, bc1, bc2_sqrt, lr, rect;
  bool has_wd, rectified;
  DL_HOST_DEVICE void operator()(T* const* t, int64_t i) const {
    const T g = weight_decayed<A>(t[1][i], t[0][i], wd, has_wd);
    T m, v;
    adam_moments<A>(t, i, g, b1, one_minus_b1, b2, one_minus_b2, m, v);
    const T step = A::mul(A::div(m, bc1), lr);  // (exp_avg / bias_correction1) * lr
    T d = step;
    if (rectified) d = A::mul(A::mul(step, A::div(bc2_sqrt, A::add(A::sqrt(v), eps))), rect);
    t[0][i] = A::add(t[0][i], A::mul(T(-1), d));  // add_(.., alpha=-1)
  }
};
template <class A, class T>
RadamUpdate<A, T> make_update(const RadamArgs& a) {
  return {static_cast<T>(a.beta1),
          static_cast<T>(1.0 - a.beta1),
          static_cast<T>(a.beta2),
          static_cast<T>(1.0 - a.beta2),
          static_cast<T>(a.eps),
          static_cast<T>(a.weight_decay),
          static_cast<T>(a.bias_correction1),
          static_cast<T>(a.bias_correction2_sqrt),
          static_cast<T>(a.lr),
          static_cast<T>(a.rect),
          a.weight_decay != 0.0,
          a.rectified};
}

// ASGD: ax t[2].
template <class A, class T>
struct AsgdUpdate {
  T wd, decay, neg_eta, mu;
  bool has_wd, average;
  DL_HOST_DEVICE void operator()(T* const* t, int64_t i) const {
    const T g = weight_decayed<A>(t[1][i], t[0][i], wd, has_wd);
    const T p = A::add(A::mul(t[0][i], decay), A::mul(neg_eta, g));  // mul_(1 - lambd eta); add_(g, -eta)
    t[0][i] = p;
    t[2][i] = average ? A::add(t[2][i], A::mul(A::sub(p, t[2][i]), mu)) : p;  // ax += (p - ax) mu, or ax = p
  }
};
template <class A, class T>
AsgdUpdate<A, T> make_update(const AsgdArgs& a) {
  return {static_cast<T>(a.weight_decay), static_cast<T>(1.0 - a.lambd * a.eta), static_cast<T>(-a.eta),
          static_cast<T>(a.mu), a.weight_decay != 0.0, a.mu != 1.0};
}

// Rprop: prev t[2], step_size t[3]. Written as selects, not branches: the signs of the
// gradients are random, and a mispredicted branch per element cost more than the arithmetic.
template <class A, class T>
struct RpropUpdate {
  T etaminus, etaplus;
  // Clamp's bounds rounded to T: clamping in T gives ew::ClampOp's result (which compares in
  // double), because no T value lies strictly between a bound and its rounding.
  T lo, hi;
  DL_HOST_DEVICE void operator()(T* const* t, int64_t i) const {
    const T g = t[1][i];
    const T product = A::mul(g, t[2][i]);
    const bool increase = product > T(0), decrease = product < T(0);
    T factor = T(1);  // one select per line: the compiler keeps each a select, not a branch
    factor = increase ? etaplus : factor;
    factor = decrease ? etaminus : factor;
    T step = A::mul(t[3][i], factor);
    step = step < lo ? lo : step;
    step = step > hi ? hi : step;
    t[3][i] = step;
    const T gr = decrease ? T(0) : g;                   // for dir < 0, dfdx = 0
    T sign = gr > T(0) ? T(1) : T(0);  // ew::SignOp (0 for NaN and -0), as selects (int casts kept
    sign = gr < T(0) ? T(-1) : sign;   // the CPU loop scalar)
    t[0][i] = A::add(t[0][i], A::mul(T(-1), A::mul(sign, step)));  // addcmul_(sign, step_size, value=-1)
    t[2][i] = gr;
  }
};
template <class A, class T>
RpropUpdate<A, T> make_update(const RpropArgs& a) {
  return {static_cast<T>(a.etaminus), static_cast<T>(a.etaplus), static_cast<T>(a.step_size_min),
          static_cast<T>(a.step_size_max)};
}

}  // namespace dl::optim_update

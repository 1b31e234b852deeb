// CPU fused optimizer updates (see kernels/optim.h). Per element, in the tensor's dtype, in
// the order of torch 1.13's _single_tensor_sgd / _single_tensor_adam(w).
#include <cmath>
#include <limits>

#include "kernels/cpu/loop.h"
#include "kernels/optim.h"

namespace dl::cpu {
namespace {

// One chunk of the SGD update, its options as template arguments: a loop without branches,
// which the compiler vectorizes (the runtime flags inside the loop kept it scalar, 17
// instructions per element). The same operations in the same order on every element.
template <class T, bool WD, bool M, bool INIT, bool NESTEROV>
void sgd_chunk(T* __restrict p, const T* __restrict g, T* __restrict buf, int64_t i0, int64_t i1, T wd, T m,
               T one_minus_damp, T neg_lr) {
  for (int64_t i = i0; i < i1; ++i) {
    T d = g[i];
    if constexpr (WD) d = d + wd * p[i];  // d_p = d_p.add(param, alpha=wd)
    if constexpr (M) {
      T b;
      if constexpr (INIT) b = d;
      else b = T(buf[i] * m) + one_minus_damp * d;  // buf.mul_(m).add_(d_p, 1-damp)
      buf[i] = b;
      d = NESTEROV ? d + m * b : b;
    }
    p[i] = p[i] + neg_lr * d;  // param.add_(d_p, alpha=-lr)
  }
}

template <class T>
void sgd_impl(Tensor& param, const Tensor& grad, Tensor& buf_t, const SgdArgs& a) {
  T* p = param.data<T>();
  const T* g = grad.data<T>();
  T* buf = buf_t.defined() ? buf_t.data<T>() : nullptr;
  const T wd = static_cast<T>(a.weight_decay), m = static_cast<T>(a.momentum);
  const T one_minus_damp = static_cast<T>(1.0 - a.dampening), neg_lr = static_cast<T>(-a.lr);
  using Chunk = void (*)(T*, const T*, T*, int64_t, int64_t, T, T, T, T);
  // [weight decay][momentum][first step: the buffer starts as d_p][nesterov]
  static constexpr Chunk kChunks[2][2][2][2] = {
      {{{sgd_chunk<T, false, false, false, false>, sgd_chunk<T, false, false, false, false>},
        {sgd_chunk<T, false, false, false, false>, sgd_chunk<T, false, false, false, false>}},
       {{sgd_chunk<T, false, true, false, false>, sgd_chunk<T, false, true, false, true>},
        {sgd_chunk<T, false, true, true, false>, sgd_chunk<T, false, true, true, true>}}},
      {{{sgd_chunk<T, true, false, false, false>, sgd_chunk<T, true, false, false, false>},
        {sgd_chunk<T, true, false, false, false>, sgd_chunk<T, true, false, false, false>}},
       {{sgd_chunk<T, true, true, false, false>, sgd_chunk<T, true, true, false, true>},
        {sgd_chunk<T, true, true, true, false>, sgd_chunk<T, true, true, true, true>}}}};
  const Chunk chunk = kChunks[a.weight_decay != 0.0][a.momentum != 0.0][a.init_buffer][a.nesterov];
  parallel_for(param.numel(), kParallelGrain,
               [&](int64_t i0, int64_t i1) { chunk(p, g, buf, i0, i1, wd, m, one_minus_damp, neg_lr); });
}

template <class T>
inline T nan_max(T x, T y) {  // torch.maximum propagates NaN
  if (x != x) return x;
  if (y != y) return y;
  return x > y ? x : y;
}

// Scalars of one Adam/AdamW step, in the parameter's type.
template <class T>
struct AdamScalars {
  T b1, b2, one_minus_b1, one_minus_b2, wd, decay, bc2, eps, neg_step;
};

// One chunk of the Adam update, its options as template arguments (a loop without branches:
// vectorized, as sgd_chunk; optim.cpp is built with -fno-math-errno so that sqrt needs no errno
// branch either). The same operations in the same order on every element.
template <class T, bool COUPLED_WD, bool DECOUPLED, bool AMSGRAD>
void adam_chunk(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, T* __restrict vmax,
                int64_t i0, int64_t i1, const AdamScalars<T>& c) {
  const T b1 = c.b1, b2 = c.b2, one_minus_b1 = c.one_minus_b1, one_minus_b2 = c.one_minus_b2;
  const T wd = c.wd, decay = c.decay, bc2 = c.bc2, eps = c.eps, neg_step = c.neg_step;
  for (int64_t i = i0; i < i1; ++i) {
    T gi = g[i];
    T pi = p[i];
    if constexpr (COUPLED_WD) gi = gi + wd * pi;  // grad = grad.add(param, alpha=wd)
    if constexpr (DECOUPLED) pi = pi * decay;     // param.mul_(1 - lr * wd)
    T mi = T(m[i] * b1) + one_minus_b1 * gi;      // exp_avg.mul_(b1).add_(grad, 1-b1)
    T vi = T(v[i] * b2) + T(one_minus_b2 * gi) * gi;  // exp_avg_sq.mul_(b2).addcmul_(g, g, 1-b2)
    m[i] = mi;
    v[i] = vi;
    T s = vi;
    if constexpr (AMSGRAD) {
      s = nan_max(vmax[i], vi);
      vmax[i] = s;
    }
    T denom = T(std::sqrt(s) / bc2) + eps;  // (sqrt(v) / bc2_sqrt).add_(eps)
    p[i] = pi + T(neg_step * mi) / denom;   // param.addcdiv_(exp_avg, denom, -step_size)
  }
}

template <class T>
void adam_impl(Tensor& param, const Tensor& grad, Tensor& m_t, Tensor& v_t, Tensor& vmax_t,
               const AdamArgs& a) {
  T* p = param.data<T>();
  const T* g = grad.data<T>();
  T* m = m_t.data<T>();
  T* v = v_t.data<T>();
  T* vmax = vmax_t.defined() ? vmax_t.data<T>() : nullptr;
  const AdamScalars<T> c{static_cast<T>(a.beta1),
                         static_cast<T>(a.beta2),
                         static_cast<T>(1.0 - a.beta1),
                         static_cast<T>(1.0 - a.beta2),
                         static_cast<T>(a.weight_decay),
                         static_cast<T>(1.0 - a.lr * a.weight_decay),
                         static_cast<T>(a.bias_correction2_sqrt),
                         static_cast<T>(a.eps),
                         static_cast<T>(-a.step_size)};
  using Chunk = void (*)(T*, const T*, T*, T*, T*, int64_t, int64_t, const AdamScalars<T>&);
  // [coupled weight decay (Adam)][decoupled (AdamW)][amsgrad]; never both kinds of decay.
  static constexpr Chunk kChunks[2][2][2] = {
      {{adam_chunk<T, false, false, false>, adam_chunk<T, false, false, true>},
       {adam_chunk<T, false, true, false>, adam_chunk<T, false, true, true>}},
      {{adam_chunk<T, true, false, false>, adam_chunk<T, true, false, true>},
       {adam_chunk<T, true, false, false>, adam_chunk<T, true, false, true>}}};
  const bool coupled_wd = !a.decoupled && a.weight_decay != 0.0;
  const Chunk chunk = kChunks[coupled_wd][a.decoupled][vmax != nullptr];
  parallel_for(param.numel(), kParallelGrain,
               [&](int64_t i0, int64_t i1) { chunk(p, g, m, v, vmax, i0, i1, c); });
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

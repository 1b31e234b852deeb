// CPU fused optimizer updates (see kernels/optim.h): the per-element formulas of
// kernels/optim_update.h (shared with the CUDA kernels) in vectorising loops.
#include <cmath>
#include <limits>

#include "kernels/cpu/loop.h"
#include "kernels/optim.h"
#include "kernels/optim_update.h"

namespace dl::cpu {
namespace {

// Host arithmetic for kernels/optim_update.h: IEEE operators (baseline x86-64: no FMA).
struct HostMath {
  template <class T>
  static T add(T a, T b) { return a + b; }
  template <class T>
  static T mul(T a, T b) { return a * b; }
  template <class T>
  static T div(T a, T b) { return a / b; }
  template <class T>
  static T sqrt(T a) { return std::sqrt(a); }
};

using optim_update::AdamScalars;
using optim_update::SgdScalars;

// One chunk of the SGD update, its options as template arguments: a loop without branches,
// which the compiler vectorizes (the runtime flags inside the loop kept it scalar, 17
// instructions per element). The same operations in the same order on every element.
template <class T, bool WD, bool M, bool INIT, bool NESTEROV>
void sgd_chunk(T* __restrict p, const T* __restrict g, T* __restrict buf, int64_t i0, int64_t i1,
               const SgdScalars<T>& s) {
  for (int64_t i = i0; i < i1; ++i) optim_update::sgd<HostMath>(p, g, buf, i, s, WD, M, INIT, NESTEROV);
}

template <class T>
void sgd_impl(Tensor& param, const Tensor& grad, Tensor& buf_t, const SgdArgs& a) {
  T* p = param.data<T>();
  const T* g = grad.data<T>();
  T* buf = buf_t.defined() ? buf_t.data<T>() : nullptr;
  const SgdScalars<T> s{static_cast<T>(a.weight_decay), static_cast<T>(a.momentum),
                        static_cast<T>(1.0 - a.dampening), static_cast<T>(-a.lr)};
  using Chunk = void (*)(T*, const T*, T*, int64_t, int64_t, const SgdScalars<T>&);
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
               [&](int64_t i0, int64_t i1) { chunk(p, g, buf, i0, i1, s); });
}

// One chunk of the Adam update, its options as template arguments (a loop without branches:
// vectorized, as sgd_chunk; optim.cpp is built with -fno-math-errno so that sqrt needs no errno
// branch either). The same operations in the same order on every element.
template <class T, bool COUPLED_WD, bool DECOUPLED, bool AMSGRAD>
void adam_chunk(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, T* __restrict vmax,
                int64_t i0, int64_t i1, const AdamScalars<T>& c) {
  for (int64_t i = i0; i < i1; ++i)
    optim_update::adam<HostMath>(p, g, m, v, vmax, i, c, COUPLED_WD, DECOUPLED, AMSGRAD);
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

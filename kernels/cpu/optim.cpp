// CPU fused optimizer updates (see kernels/optim.h): the per-element formulas of
// kernels/optim_update.h (shared with the CUDA kernels), one row of the list after the other.
// SGD, Adam and RMSprop, the common ones, run in vectorising loops with their options as
// template arguments; the others run their functor element by element (still one pass per
// parameter instead of one per engine op, and no temporaries).
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
  template <class T>
  static T sub(T a, T b) { return a - b; }
};

template <class T>
T* role(const OptimRow& row, int k) {
  return row[k].defined() ? row[k].data<T>() : nullptr;
}

using optim_update::AdamScalars;
using optim_update::RmspropScalars;
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
void sgd_impl(const OptimRow& row, const SgdArgs& a) {
  T* p = role<T>(row, 0);
  const T* g = role<T>(row, 1);
  T* buf = role<T>(row, 2);
  const SgdScalars<T> s = optim_update::make_update<HostMath, T>(a).s;
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
  parallel_for(row[0].numel(), kParallelGrain,
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
void adam_impl(const OptimRow& row, const AdamArgs& a) {
  T* p = role<T>(row, 0);
  const T* g = role<T>(row, 1);
  T* m = role<T>(row, 2);
  T* v = role<T>(row, 3);
  T* vmax = a.amsgrad ? role<T>(row, 4) : nullptr;
  const AdamScalars<T> c = optim_update::adam_scalars<T>(a);
  using Chunk = void (*)(T*, const T*, T*, T*, T*, int64_t, int64_t, const AdamScalars<T>&);
  // [coupled weight decay (Adam)][decoupled (AdamW)][amsgrad]; never both kinds of decay.
  static constexpr Chunk kChunks[2][2][2] = {
      {{adam_chunk<T, false, false, false>, adam_chunk<T, false, false, true>},
       {adam_chunk<T, false, true, false>, adam_chunk<T, false, true, true>}},
      {{adam_chunk<T, true, false, false>, adam_chunk<T, true, false, true>},
       {adam_chunk<T, true, false, false>, adam_chunk<T, true, false, true>}}};
  const bool coupled_wd = !a.decoupled && a.weight_decay != 0.0;
  const Chunk chunk = kChunks[coupled_wd][a.decoupled][vmax != nullptr];
  parallel_for(row[0].numel(), kParallelGrain,
               [&](int64_t i0, int64_t i1) { chunk(p, g, m, v, vmax, i0, i1, c); });
}

// One chunk of the RMSprop update, its options as template arguments (as sgd_chunk: a loop
// without branches, which the compiler vectorizes; with the flags read at run time it was the
// slowest fused step, 2.6x Adam's).
template <class T, bool WD, bool CENTERED, bool MOMENTUM>
void rmsprop_chunk(T* __restrict p, const T* __restrict g, T* __restrict sq, T* __restrict buf, T* __restrict ga,
                   int64_t i0, int64_t i1, const RmspropScalars<T>& s) {
  for (int64_t i = i0; i < i1; ++i) optim_update::rmsprop<HostMath>(p, g, sq, buf, ga, i, s, WD, CENTERED, MOMENTUM);
}

template <class T>
void rmsprop_impl(const OptimRow& row, const RmspropArgs& a) {
  const auto u = optim_update::make_update<HostMath, T>(a);
  using Chunk = void (*)(T*, const T*, T*, T*, T*, int64_t, int64_t, const RmspropScalars<T>&);
  // [weight decay][centered][momentum]
  static constexpr Chunk kChunks[2][2][2] = {
      {{rmsprop_chunk<T, false, false, false>, rmsprop_chunk<T, false, false, true>},
       {rmsprop_chunk<T, false, true, false>, rmsprop_chunk<T, false, true, true>}},
      {{rmsprop_chunk<T, true, false, false>, rmsprop_chunk<T, true, false, true>},
       {rmsprop_chunk<T, true, true, false>, rmsprop_chunk<T, true, true, true>}}};
  const Chunk chunk = kChunks[u.has_wd][u.centered][u.has_momentum];
  T* p = role<T>(row, 0);
  const T* g = role<T>(row, 1);
  T* sq = role<T>(row, 2);
  T* buf = role<T>(row, 3);
  T* ga = role<T>(row, 4);
  parallel_for(row[0].numel(), kParallelGrain,
               [&](int64_t i0, int64_t i1) { chunk(p, g, sq, buf, ga, i0, i1, u.s); });
}

// The other optimizers: the functor of kernels/optim_update.h on every element. The functor
// is a local copy and the rows' tensors are distinct (__restrict): nothing a store writes can
// change a scalar or a flag, so the compiler keeps them in registers and hoists the flags out
// of the loop (reloading them after every store made these loops 3-8x slower).
template <class T, class F>
void foreach_chunk(T* __restrict p0, T* __restrict p1, T* __restrict p2, T* __restrict p3, T* __restrict p4,
                   int64_t i0, int64_t i1, const F f) {
  T* const t[kOptimRoles] = {p0, p1, p2, p3, p4};
  for (int64_t i = i0; i < i1; ++i) f(t, i);
}

template <class T, class F>
void foreach_impl(const OptimRow& row, const F& f) {
  T* t[kOptimRoles];
  for (int k = 0; k < kOptimRoles; ++k) t[k] = role<T>(row, k);
  parallel_for(row[0].numel(), kParallelGrain,
               [&](int64_t i0, int64_t i1) { foreach_chunk<T>(t[0], t[1], t[2], t[3], t[4], i0, i1, f); });
}

// Every row of the list, in order; the dtype of the list (one per call) picks the instantiation.
#define DL_CPU_OPTIM_STEP(name, Args, row_impl)                                   \
  void cpu_##name(const OptimList& rows, const Args& a) {                         \
    if (rows.empty()) return;                                                     \
    DL_DISPATCH_FLOAT(rows[0][0].dtype(), #name, [&] {                            \
      for (const OptimRow& row : rows) row_impl;                                  \
    });                                                                           \
  }

DL_CPU_OPTIM_STEP(sgd_step, SgdArgs, sgd_impl<scalar_t>(row, a))
DL_CPU_OPTIM_STEP(adam_step, AdamArgs, adam_impl<scalar_t>(row, a))
DL_CPU_OPTIM_STEP(rmsprop_step, RmspropArgs, rmsprop_impl<scalar_t>(row, a))
#define DL_CPU_FOREACH(name, Args) \
  DL_CPU_OPTIM_STEP(name, Args, foreach_impl<scalar_t>(row, optim_update::make_update<HostMath, scalar_t>(a)))
DL_CPU_FOREACH(adagrad_step, AdagradArgs)
DL_CPU_FOREACH(adadelta_step, AdadeltaArgs)
DL_CPU_FOREACH(adamax_step, AdamaxArgs)
DL_CPU_FOREACH(nadam_step, NadamArgs)
DL_CPU_FOREACH(radam_step, RadamArgs)
DL_CPU_FOREACH(asgd_step, AsgdArgs)
DL_CPU_FOREACH(rprop_step, RpropArgs)
#undef DL_CPU_FOREACH
#undef DL_CPU_OPTIM_STEP

}  // namespace

DL_REGISTER_KERNEL(sgd_step_stub, CPU, cpu_sgd_step);
DL_REGISTER_KERNEL(adam_step_stub, CPU, cpu_adam_step);
DL_REGISTER_KERNEL(rmsprop_step_stub, CPU, cpu_rmsprop_step);
DL_REGISTER_KERNEL(adagrad_step_stub, CPU, cpu_adagrad_step);
DL_REGISTER_KERNEL(adadelta_step_stub, CPU, cpu_adadelta_step);
DL_REGISTER_KERNEL(adamax_step_stub, CPU, cpu_adamax_step);
DL_REGISTER_KERNEL(nadam_step_stub, CPU, cpu_nadam_step);
DL_REGISTER_KERNEL(radam_step_stub, CPU, cpu_radam_step);
DL_REGISTER_KERNEL(asgd_step_stub, CPU, cpu_asgd_step);
DL_REGISTER_KERNEL(rprop_step_stub, CPU, cpu_rprop_step);

}  // namespace dl::cpu

// CUDA CTC loss (kernels/ctc.h): one block per sample, the time loop inside the block and the
// extended-target positions s split across its threads, __syncthreads() between time steps.
// Same recursions, log-space sums (kernels/ctc_logsum.h) and summation orders as the CPU kernel
// (kernels/cpu/ctc.cpp), in the log_probs dtype; only exp/log come from CUDA's libm. No atomics:
// the results are deterministic.
//
// Forward: log_alpha rows t < input_len[b] (columns s <= 2 L_b), nll[b].
// Backward: log_beta is kept for every step ([N, T, 2 Lmax + 1], a device scratch tensor), then
// each (t, c) of the sample collects log sum_{s: l'_s = c} alpha_t(s) beta_t(s) over s in
// descending order (the CPU's order) and writes its gradient.
#include <vector>

#include "kernels/ctc.h"
#include "kernels/ctc_logsum.h"
#include "kernels/cuda/helpers.cuh"
#include "kernels/cuda/loop.cuh"

namespace dl::cuda {
namespace {

using ctc_detail::log_add;
using ctc_detail::log_sum3;

constexpr int kCtcThreads = 256;

// Per-sample lengths and offsets on the device: lens[b] = input_len, lens[N + b] = target_len,
// lens[2N + b] = target_offset.
struct CtcDims {
  int64_t T, N, C, W, blank;  // W = 2 Lmax + 1
  const int64_t* lens;
  const int64_t* targets;
  bool zero_infinity;
};

// l'_s of sample b: blank at even s, label s / 2 at odd s.
__device__ __forceinline__ int64_t ext_label(const CtcDims& d, int64_t b, int64_t s) {
  return s % 2 == 0 ? d.blank : d.targets[d.lens[2 * d.N + b] + s / 2];
}

template <class T>
__global__ void ctc_forward_kernel(CtcDims d, const T* lp, T* log_alpha, T* nll) {
  for (int64_t b = blockIdx.x; b < d.N; b += gridDim.x) {
    const int64_t Tb = d.lens[b], L = d.lens[d.N + b], S = 2 * L + 1;
    if (Tb == 0) {  // only the empty target has an (empty) alignment
      if (threadIdx.x == 0) nll[b] = L == 0 ? T(0) : T(INFINITY);
      continue;
    }
    T* alpha = log_alpha + b * d.T * d.W;
    auto lp_at = [&](int64_t t) { return lp + (t * d.N + b) * d.C; };
    for (int64_t s = threadIdx.x; s < S; s += blockDim.x)
      alpha[s] = s == 0 ? lp_at(0)[d.blank] : s == 1 ? lp_at(0)[ext_label(d, b, 1)] : T(-INFINITY);
    __syncthreads();
    for (int64_t t = 1; t < Tb; ++t) {
      const T* prev = alpha + (t - 1) * d.W;
      T* cur = alpha + t * d.W;
      const T* x = lp_at(t);
      for (int64_t s = threadIdx.x; s < S; s += blockDim.x) {
        const int64_t l = ext_label(d, b, s);
        const T a2 = s > 0 ? prev[s - 1] : T(-INFINITY);
        // Skipping the blank between two labels is allowed only when they differ.
        const T a3 = s > 1 && ext_label(d, b, s - 2) != l ? prev[s - 2] : T(-INFINITY);
        cur[s] = log_sum3(prev[s], a2, a3) + x[l];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      const T* last = alpha + (Tb - 1) * d.W;
      nll[b] = L == 0 ? -last[0] : -log_sum3(last[2 * L], last[2 * L - 1], T(-INFINITY));
    }
    __syncthreads();  // the next sample of this block reuses nothing, but keep the steps apart
  }
}

template <class T>
__global__ void ctc_backward_kernel(CtcDims d, const T* grad_nll, const T* lp, const T* log_alpha, const T* nll,
                                    T* log_beta, T* grad) {
  for (int64_t b = blockIdx.x; b < d.N; b += gridDim.x) {
    auto lp_at = [&](int64_t t) { return lp + (t * d.N + b) * d.C; };
    auto row = [&](int64_t t) { return grad + (t * d.N + b) * d.C; };
    const T loss = nll[b];
    const bool zeroed = d.zero_infinity && loss == T(INFINITY);
    const int64_t Tb = zeroed ? 0 : d.lens[b], L = d.lens[d.N + b], S = 2 * L + 1;
    // Padded steps (and a zeroed sample) get 0.
    for (int64_t e = threadIdx.x; e < (d.T - Tb) * d.C; e += blockDim.x) row(Tb + e / d.C)[e % d.C] = T(0);
    if (Tb == 0) continue;  // uniform over the block
    const T* alpha = log_alpha + b * d.T * d.W;
    T* beta = log_beta + b * d.T * d.W;
    {  // the last step: only the final blank and the final label
      const int64_t t = Tb - 1;
      for (int64_t s = threadIdx.x; s < S; s += blockDim.x)
        beta[t * d.W + s] = s == 2 * L || s == 2 * L - 1 ? lp_at(t)[ext_label(d, b, s)] : T(-INFINITY);
    }
    __syncthreads();
    for (int64_t t = Tb - 2; t >= 0; --t) {
      const T* next = beta + (t + 1) * d.W;
      const T* x = lp_at(t);
      for (int64_t s = threadIdx.x; s < S; s += blockDim.x) {
        const int64_t c = ext_label(d, b, s);
        const T b2 = s < 2 * L ? next[s + 1] : T(-INFINITY);
        const T b3 = s < 2 * L - 1 && ext_label(d, b, s + 2) != c ? next[s + 2] : T(-INFINITY);
        beta[t * d.W + s] = log_sum3(next[s], b2, b3) + x[c];
      }
      __syncthreads();
    }
    // grad[t, c] = (exp(lp) - exp(log sum alpha beta + nll - lp)) * grad_nll; blanks sit at the
    // even s, label c at the odd s whose target is c.
    const T go = grad_nll[b];
    for (int64_t e = threadIdx.x; e < Tb * d.C; e += blockDim.x) {
      const int64_t t = e / d.C, c = e % d.C;
      const T* a_t = alpha + t * d.W;
      const T* b_t = beta + t * d.W;
      T acc = T(-INFINITY);
      if (c == d.blank) {
        for (int64_t s = 2 * L; s >= 0; s -= 2) acc = log_add(acc, a_t[s] + b_t[s]);
      } else {
        for (int64_t s = 2 * L - 1; s >= 1; s -= 2)
          if (ext_label(d, b, s) == c) acc = log_add(acc, a_t[s] + b_t[s]);
      }
      const T x = lp_at(t)[c];
      row(t)[c] = (dm::exp(x) - dm::exp(acc + loss - x)) * go;
    }
    __syncthreads();
  }
}

// The kernels' view of `a` and the device tensor holding its per-sample vectors.
CtcDims make_dims(const CtcArgs& a, const Tensor& targets, const Device& dev, Tensor& lens_holder) {
  std::vector<int64_t> lens;
  lens.reserve(static_cast<size_t>(3 * a.batch));
  lens.insert(lens.end(), a.input_len.begin(), a.input_len.end());
  lens.insert(lens.end(), a.target_len.begin(), a.target_len.end());
  lens.insert(lens.end(), a.target_offset.begin(), a.target_offset.end());
  lens_holder = from_vector<int64_t>(lens, {3 * a.batch}).to(dev);
  CtcDims d;
  d.T = a.max_time;
  d.N = a.batch;
  d.C = a.classes;
  d.W = 2 * a.max_target_len + 1;
  d.blank = a.blank;
  d.lens = lens_holder.data<int64_t>();
  d.targets = targets.numel() ? targets.data<int64_t>() : nullptr;
  d.zero_infinity = a.zero_infinity;
  return d;
}

unsigned ctc_blocks(int64_t batch) { return static_cast<unsigned>(std::min<int64_t>(batch, 65535)); }

void cuda_ctc_loss(const Tensor& log_probs, const Tensor& targets, const CtcArgs& a, Tensor& nll, Tensor& log_alpha) {
  if (a.batch == 0) return;
  const Device dev = log_probs.device();
  DeviceGuard guard(dev.index);
  Tensor lens;
  const CtcDims d = make_dims(a, targets, dev, lens);
  dispatch_float(log_probs.dtype(), "ctc_loss", [&](auto tag) {
    using T = decltype(tag);
    ctc_forward_kernel<T><<<ctc_blocks(a.batch), kCtcThreads, 0, stream(dev.index)>>>(
        d, log_probs.data<T>(), log_alpha.data<T>(), nll.data<T>());
    DL_CUDA_CHECK_LAUNCH();
  });
}

void cuda_ctc_loss_backward(const Tensor& grad_nll, const Tensor& log_probs, const Tensor& targets, const Tensor& nll,
                            const Tensor& log_alpha, const CtcArgs& a, Tensor& grad) {
  if (a.batch == 0 || a.classes == 0) return;
  const Device dev = log_probs.device();
  DeviceGuard guard(dev.index);
  Tensor lens;
  const CtcDims d = make_dims(a, targets, dev, lens);
  Tensor log_beta = empty(log_alpha.shape(), log_alpha.options());  // [N, T, W] scratch
  dispatch_float(log_probs.dtype(), "ctc_loss backward", [&](auto tag) {
    using T = decltype(tag);
    ctc_backward_kernel<T><<<ctc_blocks(a.batch), kCtcThreads, 0, stream(dev.index)>>>(
        d, grad_nll.data<T>(), log_probs.data<T>(), log_alpha.data<T>(), nll.data<T>(), log_beta.data<T>(),
        grad.data<T>());
    DL_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

DL_REGISTER_KERNEL(ctc_loss_stub, CUDA, cuda_ctc_loss);
DL_REGISTER_KERNEL(ctc_loss_backward_stub, CUDA, cuda_ctc_loss_backward);

}  // namespace dl::cuda

// CPU kernels of the CTC loss (see kernels/ctc.h for the layouts and formulas).
//
// One sample per work item: alpha (forward) and beta (backward) recursions over time, in log
// space, in the order torch's CPU kernel uses (s ascending for alpha, descending for beta), so
// f32 results round the same way. Beta needs only two rows: the gradient collects
// alpha_t(s) + beta_t(s) as soon as beta_t(s) is known.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/loop.h"
#include "kernels/ctc.h"
#include "kernels/ctc_logsum.h"

namespace dl::cpu {
namespace {

template <class T>
constexpr T kNegInf = -std::numeric_limits<T>::infinity();

using ctc_detail::log_add;
using ctc_detail::log_sum3;

// The extended target l' of sample b: blank, l_0, blank, l_1, ..., blank (2L + 1 labels).
std::vector<int64_t> extended_target(const int64_t* targets, const CtcArgs& a, int64_t b) {
  const int64_t L = a.target_len[static_cast<size_t>(b)];
  const int64_t* lab = targets + a.target_offset[static_cast<size_t>(b)];
  std::vector<int64_t> ext(static_cast<size_t>(2 * L + 1), a.blank);
  for (int64_t k = 0; k < L; ++k) ext[static_cast<size_t>(2 * k + 1)] = lab[k];
  return ext;
}

// Samples per parallel chunk: enough recursion steps to be worth a thread.
int64_t batch_grain(const CtcArgs& a) {
  const int64_t per_sample = std::max<int64_t>(1, a.max_time * (2 * a.max_target_len + 1 + a.classes));
  return std::max<int64_t>(1, kParallelGrain / per_sample);
}

template <class T>
void ctc_forward_impl(const Tensor& log_probs, const Tensor& targets, const CtcArgs& a, Tensor& nll_t,
                      Tensor& log_alpha) {
  const int64_t N = a.batch, C = a.classes, W = 2 * a.max_target_len + 1;
  const T* lp = log_probs.data<T>();                 // [T, N, C]
  const int64_t* tg = targets.numel() ? targets.data<int64_t>() : nullptr;
  T* alpha_all = log_alpha.data<T>();                // [N, T, W]
  T* nll = nll_t.data<T>();                          // [N]
  parallel_for(N, batch_grain(a), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t Tb = a.input_len[static_cast<size_t>(b)], L = a.target_len[static_cast<size_t>(b)];
      if (Tb == 0) {  // only the empty target has an (empty) alignment
        nll[b] = L == 0 ? T(0) : std::numeric_limits<T>::infinity();
        continue;
      }
      const std::vector<int64_t> ext = extended_target(tg, a, b);
      const int64_t S = 2 * L + 1;
      T* alpha = alpha_all + b * a.max_time * W;
      auto lp_at = [&](int64_t t) { return lp + (t * N + b) * C; };
      std::fill(alpha, alpha + S, kNegInf<T>);
      alpha[0] = lp_at(0)[a.blank];
      if (L > 0) alpha[1] = lp_at(0)[ext[1]];
      for (int64_t t = 1; t < Tb; ++t) {
        const T* prev = alpha + (t - 1) * W;
        T* cur = alpha + t * W;
        const T* x = lp_at(t);
        for (int64_t s = 0; s < S; ++s) {
          const T a2 = s > 0 ? prev[s - 1] : kNegInf<T>;
          // Skipping the blank between two labels is allowed only when they differ.
          const T a3 = s > 1 && ext[static_cast<size_t>(s - 2)] != ext[static_cast<size_t>(s)] ? prev[s - 2]
                                                                                              : kNegInf<T>;
          cur[s] = log_sum3(prev[s], a2, a3) + x[ext[static_cast<size_t>(s)]];
        }
      }
      const T* last = alpha + (Tb - 1) * W;
      nll[b] = L == 0 ? -last[0] : -log_sum3(last[2 * L], last[2 * L - 1], kNegInf<T>);
    }
  });
}

template <class T>
void ctc_backward_impl(const Tensor& grad_nll, const Tensor& log_probs, const Tensor& targets, const Tensor& nll_t,
                       const Tensor& log_alpha, const CtcArgs& a, Tensor& grad_t) {
  const int64_t N = a.batch, C = a.classes, W = 2 * a.max_target_len + 1;
  const T* lp = log_probs.data<T>();
  const int64_t* tg = targets.numel() ? targets.data<int64_t>() : nullptr;
  const T* alpha_all = log_alpha.data<T>();
  const T* nll = nll_t.data<T>();
  const T* gout = grad_nll.data<T>();
  T* grad = grad_t.data<T>();  // [T, N, C]
  parallel_for(N, batch_grain(a), [&](int64_t b0, int64_t b1) {
    std::vector<T> beta_next(static_cast<size_t>(W)), beta_cur(static_cast<size_t>(W));
    for (int64_t b = b0; b < b1; ++b) {
      auto row = [&](int64_t t) { return grad + (t * N + b) * C; };
      auto lp_at = [&](int64_t t) { return lp + (t * N + b) * C; };
      const bool zeroed = a.zero_infinity && nll[b] == std::numeric_limits<T>::infinity();
      const int64_t Tb = zeroed ? 0 : a.input_len[static_cast<size_t>(b)];
      for (int64_t t = Tb; t < a.max_time; ++t) std::fill(row(t), row(t) + C, T(0));
      if (Tb == 0) continue;
      const int64_t L = a.target_len[static_cast<size_t>(b)], S = 2 * L + 1;
      const std::vector<int64_t> ext = extended_target(tg, a, b);
      const T* alpha = alpha_all + b * a.max_time * W;
      // row(t)[c] first collects log sum_{s: l'_s = c} alpha_t(s) beta_t(s).
      for (int64_t t = 0; t < Tb; ++t) std::fill(row(t), row(t) + C, kNegInf<T>);
      std::fill(beta_next.begin(), beta_next.begin() + S, kNegInf<T>);
      {
        const int64_t t = Tb - 1;
        beta_next[static_cast<size_t>(2 * L)] = lp_at(t)[a.blank];
        row(t)[a.blank] = alpha[t * W + 2 * L] + beta_next[static_cast<size_t>(2 * L)];
        if (L > 0) {  // a label and a blank: different entries, no log-add needed
          const int64_t c = ext[static_cast<size_t>(2 * L - 1)];
          beta_next[static_cast<size_t>(2 * L - 1)] = lp_at(t)[c];
          row(t)[c] = alpha[t * W + 2 * L - 1] + beta_next[static_cast<size_t>(2 * L - 1)];
        }
      }
      for (int64_t t = Tb - 2; t >= 0; --t) {
        const T* x = lp_at(t);
        T* g = row(t);
        for (int64_t s = S - 1; s >= 0; --s) {
          const int64_t c = ext[static_cast<size_t>(s)];
          const T b2 = s < 2 * L ? beta_next[static_cast<size_t>(s + 1)] : kNegInf<T>;
          const T b3 = s < 2 * L - 1 && ext[static_cast<size_t>(s + 2)] != c ? beta_next[static_cast<size_t>(s + 2)]
                                                                             : kNegInf<T>;
          const T beta = log_sum3(beta_next[static_cast<size_t>(s)], b2, b3) + x[c];
          beta_cur[static_cast<size_t>(s)] = beta;
          const T ab = alpha[t * W + s] + beta;
          g[c] = log_add(g[c], ab);
        }
        std::swap(beta_next, beta_cur);
      }
      const T loss = nll[b], go = gout[b];
      for (int64_t t = 0; t < Tb; ++t) {
        const T* x = lp_at(t);
        T* g = row(t);
        for (int64_t c = 0; c < C; ++c) g[c] = (std::exp(x[c]) - std::exp(g[c] + loss - x[c])) * go;
      }
    }
  });
}

void cpu_ctc_loss(const Tensor& log_probs, const Tensor& targets, const CtcArgs& a, Tensor& nll, Tensor& log_alpha) {
  DL_DISPATCH_FLOAT(log_probs.dtype(), "ctc_loss",
                    [&] { ctc_forward_impl<scalar_t>(log_probs, targets, a, nll, log_alpha); });
}

void cpu_ctc_loss_backward(const Tensor& grad_nll, const Tensor& log_probs, const Tensor& targets, const Tensor& nll,
                           const Tensor& log_alpha, const CtcArgs& a, Tensor& grad) {
  DL_DISPATCH_FLOAT(log_probs.dtype(), "ctc_loss backward", [&] {
    ctc_backward_impl<scalar_t>(grad_nll, log_probs, targets, nll, log_alpha, a, grad);
  });
}

}  // namespace

DL_REGISTER_KERNEL(ctc_loss_stub, CPU, cpu_ctc_loss);
DL_REGISTER_KERNEL(ctc_loss_backward_stub, CPU, cpu_ctc_loss_backward);

}  // namespace dl::cpu

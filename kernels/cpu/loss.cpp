// CPU kernels for the class-index losses (see kernels/loss.h for the formulas and layouts).
//
// Work items are (n, tile of kTile inner positions); for [N, C] logits (inner == 1) a tile is
// one row. Per-position losses are computed in parallel and then summed in position order in
// double, so totals do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/loop.h"
#include "kernels/cpu/vec_exp.h"
#include "kernels/f32_compute.h"
#include "kernels/loss.h"

namespace dl::cpu {
namespace {

constexpr int64_t kTile = 64;

// f(n, i0, i1) over every (n, tile of inner positions) in parallel; `work` = elements per position.
template <class F>
void for_each_tile(int64_t n, int64_t inner, int64_t work, F&& f) {
  const int64_t tiles = (inner + kTile - 1) / kTile;
  const int64_t per_item = std::max<int64_t>(work, 1) * std::min(inner, kTile);
  parallel_for(n * tiles, std::max<int64_t>(1, kParallelGrain / per_item), [&](int64_t w0, int64_t w1) {
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t i0 = (w % tiles) * kTile;
      f(w / tiles, i0, std::min(inner, i0 + kTile));
    }
  });
}

int64_t first_bad_target(const int64_t* t, int64_t count, int64_t classes, int64_t ignore) {
  for (int64_t p = 0; p < count; ++p)
    if (bad_class_target(t[p], classes, ignore)) return p;
  return -1;
}

template <class T>
double weight_of(const T* w, int64_t c) {
  return w ? static_cast<double>(w[c]) : 1.0;
}

// Sum of target weights over non-ignored positions, in position order.
template <class T>
double total_target_weight(const int64_t* t, int64_t count, const T* w, int64_t ignore) {
  double s = 0;
  for (int64_t p = 0; p < count; ++p)
    if (t[p] != ignore) s += weight_of(w, t[p]);
  return s;
}

// Writes the reduced (or per-position) result. `loss` holds per-position losses in double.
template <class T>
void finish_forward(const std::vector<double>& loss, double total_weight, Reduction red, Tensor& out,
                    Tensor& tw) {
  tw.data<T>()[0] = static_cast<T>(total_weight);
  if (red == Reduction::None) {
    T* o = out.data<T>();
    for (size_t p = 0; p < loss.size(); ++p) o[p] = static_cast<T>(loss[p]);
    return;
  }
  double s = 0;
  for (double v : loss) s += v;
  out.data<T>()[0] = static_cast<T>(red == Reduction::Mean ? s / total_weight : s);
}

// Per-position gradient scale s (see kernels/loss.h).
template <class T>
struct GradScale {
  const T* g = nullptr;  // per position (None) or nullptr
  double scalar = 0;
  GradScale(const Tensor& grad_out, const Tensor& tw, Reduction red) {
    if (red == Reduction::None) {
      g = grad_out.data<T>();
    } else {
      scalar = static_cast<double>(grad_out.data<T>()[0]);
      if (red == Reduction::Mean) scalar /= static_cast<double>(tw.data<T>()[0]);
    }
  }
  double operator()(int64_t p) const { return g ? static_cast<double>(g[p]) : scalar; }
};

// ---- cross_entropy -----------------------------------------------------------------

template <class T>
int64_t cross_entropy_impl(const Tensor& logits, const Tensor& target, const Tensor& weight,
                           const ClassLossArgs& a, Tensor& out, Tensor& tw, Tensor& lse_t) {
  const int64_t C = a.classes, inner = a.inner, count = a.n * inner;
  const int64_t* t = target.data<int64_t>();
  if (a.check_targets)
    if (const int64_t bad = first_bad_target(t, count, C, a.ignore_index); bad >= 0) return bad;
  const T* x = logits.data<T>();
  const T* w = weight.defined() ? weight.data<T>() : nullptr;
  T* lse = lse_t.data<T>();
  const double eps = a.label_smoothing;
  double wsum = 0;
  for (int64_t c = 0; c < C; ++c) wsum += weight_of(w, c);
  std::vector<double> loss(static_cast<size_t>(count));
  if (inner == 1) {
    // [N, C]: one contiguous row per position (the training hot path).
    parallel_for(a.n, std::max<int64_t>(1, kParallelGrain / (3 * std::max<int64_t>(C, 1))), [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        const T* row = x + n * C;
        T mx = row[0];
        for (int64_t c = 1; c < C; ++c) mx = row[c] > mx ? row[c] : mx;
        double se = 0, swx = 0;
        for (int64_t c0 = 0; c0 < C; c0 += kTile) {  // exps in vectorised chunks, summed in order
          const int64_t cn = std::min(kTile, C - c0);
          T e[kTile];
          exp_sub(row + c0, mx, e, cn);
          for (int64_t c = 0; c < cn; ++c) se += static_cast<double>(e[c]);
        }
        if (eps > 0)
          for (int64_t c = 0; c < C; ++c) swx += weight_of(w, c) * static_cast<double>(row[c]);
        const double l = static_cast<double>(mx) + std::log(se);
        lse[n] = static_cast<T>(l);
        const int64_t tgt = t[n];
        double v = 0;
        if (tgt != a.ignore_index) {
          v = (1 - eps) * weight_of(w, tgt) * (l - static_cast<double>(row[tgt]));
          if (eps > 0) v += eps / static_cast<double>(C) * (wsum * l - swx);
        }
        loss[static_cast<size_t>(n)] = v;
      }
    });
    finish_forward<T>(loss, total_target_weight(t, count, w, a.ignore_index), a.reduction, out, tw);
    return -1;
  }
  for_each_tile(a.n, inner, 3 * C, [&](int64_t n, int64_t i0, int64_t i1) {
    const int64_t k = i1 - i0;
    const T* base = x + n * C * inner + i0;  // base[c * inner + j] = x[n, c, i0 + j]
    T mx[kTile];
    double se[kTile] = {}, swx[kTile] = {};
    for (int64_t j = 0; j < k; ++j) mx[j] = base[j];
    for (int64_t c = 1; c < C; ++c)
      for (int64_t j = 0; j < k; ++j) mx[j] = base[c * inner + j] > mx[j] ? base[c * inner + j] : mx[j];
    for (int64_t c = 0; c < C; ++c) {
      T e[kTile];
      exp_sub(base + c * inner, mx, e, k);
      for (int64_t j = 0; j < k; ++j) se[j] += static_cast<double>(e[j]);
    }
    if (eps > 0)
      for (int64_t c = 0; c < C; ++c) {
        const double wc = weight_of(w, c);
        for (int64_t j = 0; j < k; ++j) swx[j] += wc * static_cast<double>(base[c * inner + j]);
      }
    for (int64_t j = 0; j < k; ++j) {
      const int64_t p = n * inner + i0 + j;
      const double l = static_cast<double>(mx[j]) + std::log(se[j]);
      lse[p] = static_cast<T>(l);
      const int64_t tgt = t[p];
      if (tgt == a.ignore_index) {
        loss[static_cast<size_t>(p)] = 0;
        continue;
      }
      double v = (1 - eps) * weight_of(w, tgt) * (l - static_cast<double>(base[tgt * inner + j]));
      if (eps > 0) v += eps / static_cast<double>(C) * (wsum * l - swx[j]);
      loss[static_cast<size_t>(p)] = v;
    }
  });
  finish_forward<T>(loss, total_target_weight(t, count, w, a.ignore_index), a.reduction, out, tw);
  return -1;
}

template <class T>
void cross_entropy_backward_impl(const Tensor& grad_out, const Tensor& logits, const Tensor& target,
                                 const Tensor& weight, const Tensor& lse_t, const Tensor& tw,
                                 const ClassLossArgs& a, Tensor& grad_in) {
  const int64_t C = a.classes, inner = a.inner;
  const int64_t* t = target.data<int64_t>();
  const T* x = logits.data<T>();
  const T* w = weight.defined() ? weight.data<T>() : nullptr;
  const T* lse = lse_t.data<T>();
  T* gx = grad_in.data<T>();
  const double eps = a.label_smoothing;
  double wsum = 0;
  for (int64_t c = 0; c < C; ++c) wsum += weight_of(w, c);
  const GradScale<T> scale(grad_out, tw, a.reduction);
  // gx = p_c * (A + B * W) - A * [c == t] - B * w_c,  A = s (1 - eps) w_t,  B = s eps / C.
  if (inner == 1) {
    parallel_for(a.n, std::max<int64_t>(1, kParallelGrain / (2 * std::max<int64_t>(C, 1))), [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        const T* row = x + n * C;
        T* grow = gx + n * C;
        const int64_t tgt = t[n];
        if (tgt == a.ignore_index) {
          std::fill(grow, grow + C, T(0));
          continue;
        }
        const double s = scale(n);
        const double A = s * (1 - eps) * weight_of(w, tgt), B = s * eps / static_cast<double>(C);
        const double coef = A + B * wsum;
        const T l = lse[n];
        exp_sub(row, l, grow, C);  // p_c
        if (w && eps > 0) {
          for (int64_t c = 0; c < C; ++c)
            grow[c] = static_cast<T>(static_cast<double>(grow[c]) * coef - B * static_cast<double>(w[c]));
        } else {
          const double b = eps > 0 ? B : 0.0;
          for (int64_t c = 0; c < C; ++c) grow[c] = static_cast<T>(static_cast<double>(grow[c]) * coef - b);
        }
        // The target entry once more, in one rounding (p_t * coef - A cancels when p_t ~ 1).
        grow[tgt] = static_cast<T>(static_cast<double>(exp_vec(row[tgt] - l)) * coef -
                                   (eps > 0 ? B * weight_of(w, tgt) : 0.0) - A);
      }
    });
    return;
  }
  for_each_tile(a.n, inner, 2 * C, [&](int64_t n, int64_t i0, int64_t i1) {
    const int64_t k = i1 - i0;
    const int64_t off = n * C * inner + i0;
    double A[kTile], B[kTile];
    T l[kTile];
    int64_t tg[kTile];
    for (int64_t j = 0; j < k; ++j) {
      const int64_t p = n * inner + i0 + j;
      tg[j] = t[p];
      l[j] = lse[p];
      const bool ignored = tg[j] == a.ignore_index;
      const double s = ignored ? 0.0 : scale(p);
      A[j] = ignored ? 0.0 : s * (1 - eps) * weight_of(w, tg[j]);
      B[j] = s * eps / static_cast<double>(C);
    }
    for (int64_t c = 0; c < C; ++c) {
      const double wc = weight_of(w, c);
      T* gl = gx + off + c * inner;
      exp_sub(x + off + c * inner, l, gl, k);  // p_c
      for (int64_t j = 0; j < k; ++j)
        gl[j] = static_cast<T>(static_cast<double>(gl[j]) * (A[j] + B[j] * wsum) - B[j] * wc -
                               (c == tg[j] ? A[j] : 0.0));
    }
  });
}

// ---- nll_loss ---------------------------------------------------------------------------

template <class T>
int64_t nll_loss_impl(const Tensor& log_probs, const Tensor& target, const Tensor& weight,
                      const ClassLossArgs& a, Tensor& out, Tensor& tw) {
  const int64_t C = a.classes, inner = a.inner, count = a.n * inner;
  const int64_t* t = target.data<int64_t>();
  if (a.check_targets)
    if (const int64_t bad = first_bad_target(t, count, C, a.ignore_index); bad >= 0) return bad;
  const T* x = log_probs.data<T>();
  const T* w = weight.defined() ? weight.data<T>() : nullptr;
  std::vector<double> loss(static_cast<size_t>(count));
  for (int64_t p = 0; p < count; ++p) {
    const int64_t tgt = t[p], n = p / inner, i = p % inner;
    loss[static_cast<size_t>(p)] =
        tgt == a.ignore_index ? 0.0 : -weight_of(w, tgt) * static_cast<double>(x[(n * C + tgt) * inner + i]);
  }
  finish_forward<T>(loss, total_target_weight(t, count, w, a.ignore_index), a.reduction, out, tw);
  return -1;
}

template <class T>
void nll_loss_backward_impl(const Tensor& grad_out, const Tensor& target, const Tensor& weight,
                            const Tensor& tw, const ClassLossArgs& a, Tensor& grad_in) {
  const int64_t C = a.classes, inner = a.inner, count = a.n * inner;
  const int64_t* t = target.data<int64_t>();
  const T* w = weight.defined() ? weight.data<T>() : nullptr;
  T* gx = grad_in.data<T>();
  const int64_t total = count * C;
  parallel_for(total, kParallelGrain, [&](int64_t b, int64_t e) { std::fill(gx + b, gx + e, T(0)); });
  const GradScale<T> scale(grad_out, tw, a.reduction);
  for (int64_t p = 0; p < count; ++p) {
    const int64_t tgt = t[p], n = p / inner, i = p % inner;
    if (tgt != a.ignore_index)
      gx[(n * C + tgt) * inner + i] = static_cast<T>(-scale(p) * weight_of(w, tgt));
  }
}

// ---- dispatch ---------------------------------------------------------------------------

int64_t cpu_cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight,
                          const ClassLossArgs& a, Tensor& out, Tensor& tw, Tensor& lse) {
  return DL_DISPATCH_FLOAT(logits.dtype(), "cross_entropy", [&] {
    return cross_entropy_impl<scalar_t>(logits, target, weight, a, out, tw, lse);
  });
}

void cpu_cross_entropy_backward(const Tensor& grad_out, const Tensor& logits, const Tensor& target,
                                const Tensor& weight, const Tensor& lse, const Tensor& tw,
                                const ClassLossArgs& a, Tensor& grad_in) {
  DL_DISPATCH_FLOAT(logits.dtype(), "cross_entropy backward", [&] {
    cross_entropy_backward_impl<scalar_t>(grad_out, logits, target, weight, lse, tw, a, grad_in);
  });
}

int64_t cpu_nll_loss(const Tensor& log_probs, const Tensor& target, const Tensor& weight,
                     const ClassLossArgs& a, Tensor& out, Tensor& tw) {
  return DL_DISPATCH_FLOAT(log_probs.dtype(), "nll_loss", [&] {
    return nll_loss_impl<scalar_t>(log_probs, target, weight, a, out, tw);
  });
}

void cpu_nll_loss_backward(const Tensor& grad_out, const Tensor& target, const Tensor& weight,
                           const Tensor& tw, const ClassLossArgs& a, Tensor& grad_in) {
  DL_DISPATCH_FLOAT(grad_in.dtype(), "nll_loss backward", [&] {
    nll_loss_backward_impl<scalar_t>(grad_out, target, weight, tw, a, grad_in);
  });
}

void cpu_sanitize_class_targets(const Tensor& target, const ClassLossArgs& a, Tensor& safe, Tensor& first_bad) {
  const int64_t count = target.numel();
  const int64_t* t = target.data<int64_t>();
  int64_t* out = safe.data<int64_t>();
  int64_t first = -1;
  for (int64_t p = 0; p < count; ++p) {
    const bool bad = bad_class_target(t[p], a.classes, a.ignore_index);
    if (bad && first < 0) first = p;
    out[p] = bad ? a.ignore_index : t[p];
  }
  first_bad.data<int64_t>()[0] = first;
}

// ---- multilabel_margin_loss (kernels/loss.h: the row code shared with CUDA) -------------------

template <class T>
void multilabel_margin_impl(const Tensor& x, const Tensor& target, Tensor& loss_rows, Tensor& is_target,
                            Tensor& first_bad) {
  const int64_t n = x.size(0), C = x.size(1);
  const T* xp = x.data<T>();
  const int64_t* t = target.data<int64_t>();
  uint8_t* it = is_target.data<uint8_t>();
  T* out = loss_rows.data<T>();
  parallel_for(n, std::max<int64_t>(1, kParallelGrain / C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t* tr = t + r * C;
      const double s = multilabel_row_sum(xp + r * C, tr, multilabel_slots(tr, C), C, it + r * C);
      out[r] = static_cast<T>(s / static_cast<double>(C));
    }
  });
  int64_t first = -1;
  for (int64_t r = 0; r < n && first < 0; ++r) {
    const int64_t* tr = t + r * C;
    const int64_t k = multilabel_slots(tr, C);
    if (multilabel_bad_at(tr, k, C)) first = r * C + k;
  }
  first_bad.data<int64_t>()[0] = first;
}

template <class T>
void multilabel_margin_backward_impl(const Tensor& grad_rows, const Tensor& x, const Tensor& target,
                                     const Tensor& is_target, Tensor& grad_in) {
  const int64_t n = x.size(0), C = x.size(1);
  const T* xp = x.data<T>();
  const T* g = grad_rows.data<T>();
  const int64_t* t = target.data<int64_t>();
  const uint8_t* it = is_target.data<uint8_t>();
  T* gx = grad_in.data<T>();
  parallel_for(n, std::max<int64_t>(1, kParallelGrain / C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t* tr = t + r * C;
      const int64_t k = multilabel_slots(tr, C);
      const double scale = static_cast<double>(g[r]) / static_cast<double>(C);
      for (int64_t c = 0; c < C; ++c)
        gx[r * C + c] =
            static_cast<T>(static_cast<double>(multilabel_grad_count(xp + r * C, tr, k, C, it + r * C, c)) * scale);
    }
  });
}

void cpu_multilabel_margin(const Tensor& x, const Tensor& target, Tensor& loss_rows, Tensor& is_target,
                           Tensor& first_bad) {
  DL_DISPATCH_FLOAT(x.dtype(), "multilabel_margin_loss", [&] {
    multilabel_margin_impl<scalar_t>(x, target, loss_rows, is_target, first_bad);
  });
}

void cpu_multilabel_margin_backward(const Tensor& grad_rows, const Tensor& x, const Tensor& target,
                                    const Tensor& is_target, Tensor& grad_in) {
  DL_DISPATCH_FLOAT(x.dtype(), "multilabel_margin_loss backward", [&] {
    multilabel_margin_backward_impl<scalar_t>(grad_rows, x, target, is_target, grad_in);
  });
}

}  // namespace

DL_REGISTER_KERNEL(multilabel_margin_stub, CPU, f32_compute<cpu_multilabel_margin>);
DL_REGISTER_KERNEL(multilabel_margin_backward_stub, CPU, f32_compute<cpu_multilabel_margin_backward>);
DL_REGISTER_KERNEL(sanitize_class_targets_stub, CPU, cpu_sanitize_class_targets);
DL_REGISTER_KERNEL(cross_entropy_stub, CPU, cpu_cross_entropy);
DL_REGISTER_KERNEL(cross_entropy_backward_stub, CPU, cpu_cross_entropy_backward);
DL_REGISTER_KERNEL(nll_loss_stub, CPU, cpu_nll_loss);
DL_REGISTER_KERNEL(nll_loss_backward_stub, CPU, cpu_nll_loss_backward);

}  // namespace dl::cpu

// CPU reduction kernels: sum, max/min (+ indices), var/std, softmax/log_softmax.
//
// Inputs are contiguous [outer, reduce, inner] blocks (see kernels/reduce.h). Three layouts:
//   - one output (outer == inner == 1): fixed kBlock-element blocks reduced in parallel, the
//     block results combined in block order;
//   - rows (inner == 1): each output row reduced by one thread, in order;
//   - columns (inner > 1): work items are (o, tile of kTile inner positions); each item
//     walks r in order with per-position accumulators on the stack (vectorised across i).
// None of these orders depends on the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/cpu/loop.h"
#include "kernels/cpu/vec_exp.h"
#include "kernels/f32_compute.h"
#include "kernels/reduce.h"

namespace dl::cpu {
namespace {

constexpr int64_t kBlock = 4096;  // elements per block of a single-output reduction
constexpr int64_t kTile = 64;     // inner positions per work item of a column reduction

// ---- loop helpers ----------------------------------------------------------

// f(o) for every row o in [0, outer); each row is `work` elements of work.
template <class F>
void for_each_row(int64_t outer, int64_t work, F&& f) {
  parallel_for(outer, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(work, 1)),
               [&](int64_t o0, int64_t o1) {
                 for (int64_t o = o0; o < o1; ++o) f(o);
               });
}

// f(o, i0, i1) for every (o, inner tile); each item is work * tile elements of work.
template <class F>
void for_each_tile(int64_t outer, int64_t inner, int64_t work, F&& f) {
  const int64_t tiles = (inner + kTile - 1) / kTile;
  const int64_t per_item = std::max<int64_t>(work, 1) * std::min(inner, kTile);
  parallel_for(outer * tiles, std::max<int64_t>(1, kParallelGrain / per_item),
               [&](int64_t w0, int64_t w1) {
                 for (int64_t w = w0; w < w1; ++w) {
                   const int64_t o = w / tiles, i0 = (w % tiles) * kTile;
                   f(o, i0, std::min(inner, i0 + kTile));
                 }
               });
}

// Reduces [0, n) in fixed blocks: partial[b] = block_fn(begin, len), then folds them in order.
template <class P, class BlockFn, class Combine>
P blocked(int64_t n, P init, BlockFn&& block_fn, Combine&& combine) {
  const int64_t nblocks = (n + kBlock - 1) / kBlock;
  std::vector<P> partial(static_cast<size_t>(nblocks), init);
  parallel_for(nblocks, 4, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t s = b * kBlock;
      partial[static_cast<size_t>(b)] = block_fn(s, std::min(kBlock, n - s));
    }
  });
  P acc = init;
  for (int64_t b = 0; b < nblocks; ++b) acc = combine(acc, partial[static_cast<size_t>(b)], b);
  return acc;
}

// Sum of p[0..n) in double with 8 independent lanes (fixed order).
template <class T>
double sum_contiguous(const T* p, int64_t n) {
  double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) lanes[l] += static_cast<double>(p[i + l]);
  double s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; i < n; ++i) s += static_cast<double>(p[i]);
  return s;
}

// Sum of (p[i] - mean)^2 in double, same lane structure.
template <class T>
double sqdev_contiguous(const T* p, int64_t n, double mean) {
  double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) {
      const double d = static_cast<double>(p[i + l]) - mean;
      lanes[l] += d * d;
    }
  double s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; i < n; ++i) {
    const double d = static_cast<double>(p[i]) - mean;
    s += d * d;
  }
  return s;
}

// ---- sum -------------------------------------------------------------------

template <class T>
void sum_impl(const Tensor& x, int64_t outer, int64_t reduce, int64_t inner, Tensor& out) {
  const T* src = x.data<T>();
  T* dst = out.data<T>();
  if (inner == 1 && outer == 1) {
    dst[0] = static_cast<T>(blocked<double>(
        reduce, 0.0, [&](int64_t s, int64_t n) { return sum_contiguous(src + s, n); },
        [](double a, double b, int64_t) { return a + b; }));
  } else if (inner == 1) {
    for_each_row(outer, reduce, [&](int64_t o) {
      dst[o] = static_cast<T>(sum_contiguous(src + o * reduce, reduce));
    });
  } else {
    for_each_tile(outer, inner, reduce, [&](int64_t o, int64_t i0, int64_t i1) {
      double acc[kTile] = {};
      const int64_t n = i1 - i0;
      const T* base = src + o * reduce * inner + i0;
      for (int64_t r = 0; r < reduce; ++r) {
        const T* row = base + r * inner;
        for (int64_t j = 0; j < n; ++j) acc[j] += static_cast<double>(row[j]);
      }
      for (int64_t j = 0; j < n; ++j) dst[o * inner + i0 + j] = static_cast<T>(acc[j]);
    });
  }
}

void cpu_sum(const Tensor& x, int64_t outer, int64_t reduce, int64_t inner, Tensor& out) {
  DL_DISPATCH_FLOAT(x.dtype(), "sum", [&] { sum_impl<scalar_t>(x, outer, reduce, inner, out); });
}

// ---- max / min with indices -------------------------------------------------

template <class T>
inline bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>) return v != v;
  else return false;
}

// True when v should replace `best` seen earlier: strictly more extreme, or the first NaN.
template <bool kMax, class T>
inline bool better(T v, T best) {
  if (is_nan(v)) return !is_nan(best);
  return kMax ? v > best : v < best;
}

template <class T, bool kMax>
void arg_reduce_impl(const Tensor& x, int64_t outer, int64_t reduce, int64_t inner, Tensor& values,
                     Tensor& indices) {
  const T* src = x.data<T>();
  T* vals = values.defined() ? values.data<T>() : nullptr;
  int64_t* idx = indices.data<int64_t>();
  using VI = std::pair<T, int64_t>;
  // Scan of p[0..n) (stride 1): first extreme element.
  auto scan = [](const T* p, int64_t n) {
    VI b{p[0], 0};
    for (int64_t r = 1; r < n; ++r) {
      if (is_nan(b.first)) break;  // nothing beats the first NaN
      if (better<kMax>(p[r], b.first)) b = {p[r], r};
    }
    return b;
  };
  if (inner == 1 && outer == 1) {
    VI b = blocked<VI>(
        reduce, VI{src[0], 0},
        [&](int64_t s, int64_t n) {
          VI p = scan(src + s, n);
          return VI{p.first, p.second + s};
        },
        [](const VI& acc, const VI& p, int64_t blk) { return blk == 0 || better<kMax>(p.first, acc.first) ? p : acc; });
    if (vals) vals[0] = b.first;
    idx[0] = b.second;
  } else if (inner == 1) {
    for_each_row(outer, reduce, [&](int64_t o) {
      VI b = scan(src + o * reduce, reduce);
      if (vals) vals[o] = b.first;
      idx[o] = b.second;
    });
  } else {
    for_each_tile(outer, inner, reduce, [&](int64_t o, int64_t i0, int64_t i1) {
      T best[kTile];
      int64_t bi[kTile];
      const int64_t n = i1 - i0;
      const T* base = src + o * reduce * inner + i0;
      for (int64_t j = 0; j < n; ++j) {
        best[j] = base[j];
        bi[j] = 0;
      }
      for (int64_t r = 1; r < reduce; ++r) {
        const T* row = base + r * inner;
        for (int64_t j = 0; j < n; ++j)
          if (better<kMax>(row[j], best[j])) {
            best[j] = row[j];
            bi[j] = r;
          }
      }
      for (int64_t j = 0; j < n; ++j) {
        if (vals) vals[o * inner + i0 + j] = best[j];
        idx[o * inner + i0 + j] = bi[j];
      }
    });
  }
}

void cpu_arg_reduce(ArgReduceOp op, const Tensor& x, int64_t outer, int64_t reduce, int64_t inner,
                    Tensor& values, Tensor& indices) {
  DL_DISPATCH_ALL(x.dtype(), "max/min", [&] {
    if (op == ArgReduceOp::Max) arg_reduce_impl<scalar_t, true>(x, outer, reduce, inner, values, indices);
    else arg_reduce_impl<scalar_t, false>(x, outer, reduce, inner, values, indices);
  });
}

// ---- var / std -------------------------------------------------------------

template <class T>
void var_impl(const Tensor& x, int64_t outer, int64_t reduce, int64_t inner, int64_t correction,
              bool take_sqrt, Tensor& out) {
  const T* src = x.data<T>();
  T* dst = out.data<T>();
  const double divisor = static_cast<double>(std::max<int64_t>(0, reduce - correction));
  const double n = static_cast<double>(reduce);
  auto finish = [&](double m2) {
    double v = m2 / divisor;
    return static_cast<T>(take_sqrt ? std::sqrt(v) : v);
  };
  if (reduce == 0) {
    for (int64_t k = 0; k < outer * inner; ++k) dst[k] = std::numeric_limits<T>::quiet_NaN();
    return;
  }
  auto add = [](double a, double b, int64_t) { return a + b; };
  if (inner == 1 && outer == 1) {
    const double mean =
        blocked<double>(reduce, 0.0, [&](int64_t s, int64_t k) { return sum_contiguous(src + s, k); }, add) / n;
    const double m2 = blocked<double>(
        reduce, 0.0, [&](int64_t s, int64_t k) { return sqdev_contiguous(src + s, k, mean); }, add);
    dst[0] = finish(m2);
  } else if (inner == 1) {
    for_each_row(outer, 2 * reduce, [&](int64_t o) {
      const T* p = src + o * reduce;
      dst[o] = finish(sqdev_contiguous(p, reduce, sum_contiguous(p, reduce) / n));
    });
  } else {
    for_each_tile(outer, inner, 2 * reduce, [&](int64_t o, int64_t i0, int64_t i1) {
      double mean[kTile] = {}, m2[kTile] = {};
      const int64_t k = i1 - i0;
      const T* base = src + o * reduce * inner + i0;
      for (int64_t r = 0; r < reduce; ++r)
        for (int64_t j = 0; j < k; ++j) mean[j] += static_cast<double>(base[r * inner + j]);
      for (int64_t j = 0; j < k; ++j) mean[j] /= n;
      for (int64_t r = 0; r < reduce; ++r)
        for (int64_t j = 0; j < k; ++j) {
          const double d = static_cast<double>(base[r * inner + j]) - mean[j];
          m2[j] += d * d;
        }
      for (int64_t j = 0; j < k; ++j) dst[o * inner + i0 + j] = finish(m2[j]);
    });
  }
}

void cpu_var(const Tensor& x, int64_t outer, int64_t reduce, int64_t inner, int64_t correction,
             bool take_sqrt, Tensor& out) {
  DL_DISPATCH_FLOAT(x.dtype(), "var/std",
                    [&] { var_impl<scalar_t>(x, outer, reduce, inner, correction, take_sqrt, out); });
}

// ---- softmax ---------------------------------------------------------------

// Max of p[0..n), n > 0, over 8 lanes (vectorises). A NaN may be skipped here; it still
// turns the whole softmax row into NaN through exp(NaN - m).
template <class T>
T max_contiguous(const T* p, int64_t n) {
  if (n < 8) {
    T m = p[0];
    for (int64_t i = 1; i < n; ++i) m = p[i] > m ? p[i] : m;
    return m;
  }
  T lanes[8];
  for (int l = 0; l < 8; ++l) lanes[l] = p[l];
  int64_t i = 8;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) lanes[l] = p[i + l] > lanes[l] ? p[i + l] : lanes[l];
  for (; i < n; ++i) lanes[0] = p[i] > lanes[0] ? p[i] : lanes[0];
  T m = lanes[0];
  for (int l = 1; l < 8; ++l) m = lanes[l] > m ? lanes[l] : m;
  return m;
}

template <class T>
void softmax_impl(const Tensor& x, int64_t outer, int64_t dim, int64_t inner, bool log, Tensor& out) {
  const T* src = x.data<T>();
  T* dst = out.data<T>();
  if (inner == 1) {
    for_each_row(outer, 2 * dim, [&](int64_t o) {
      const T* p = src + o * dim;
      T* y = dst + o * dim;
      const T m = max_contiguous(p, dim);
      exp_sub(p, m, y, dim);
      const double s = sum_contiguous(y, dim);
      if (log) {
        const double lse = static_cast<double>(m) + std::log(s);
        for (int64_t r = 0; r < dim; ++r) y[r] = static_cast<T>(static_cast<double>(p[r]) - lse);
      } else {
        const T inv = static_cast<T>(1.0 / s);
        for (int64_t r = 0; r < dim; ++r) y[r] *= inv;
      }
    });
    return;
  }
  for_each_tile(outer, inner, 3 * dim, [&](int64_t o, int64_t i0, int64_t i1) {
    T m[kTile];
    double s[kTile] = {};
    const int64_t k = i1 - i0;
    const T* p = src + o * dim * inner + i0;  // p[r * inner + j] = x[o, r, i0 + j]
    T* y = dst + o * dim * inner + i0;
    for (int64_t j = 0; j < k; ++j) m[j] = p[j];
    for (int64_t r = 1; r < dim; ++r)
      for (int64_t j = 0; j < k; ++j) m[j] = p[r * inner + j] > m[j] ? p[r * inner + j] : m[j];
    for (int64_t r = 0; r < dim; ++r) {
      exp_sub(p + r * inner, m, y + r * inner, k);
      for (int64_t j = 0; j < k; ++j) s[j] += static_cast<double>(y[r * inner + j]);
    }
    if (log) {
      for (int64_t j = 0; j < k; ++j) s[j] = static_cast<double>(m[j]) + std::log(s[j]);  // lse
      for (int64_t r = 0; r < dim; ++r)
        for (int64_t j = 0; j < k; ++j)
          y[r * inner + j] = static_cast<T>(static_cast<double>(p[r * inner + j]) - s[j]);
    } else {
      T inv[kTile];
      for (int64_t j = 0; j < k; ++j) inv[j] = static_cast<T>(1.0 / s[j]);
      for (int64_t r = 0; r < dim; ++r)
        for (int64_t j = 0; j < k; ++j) y[r * inner + j] *= inv[j];
    }
  });
}

// softmax: gx = y * (g - sum(g * y));  log_softmax: gx = g - exp(y) * sum(g).
template <class T>
void softmax_backward_impl(const Tensor& grad, const Tensor& yt, int64_t outer, int64_t dim,
                           int64_t inner, bool log, Tensor& grad_in) {
  const T* g = grad.data<T>();
  const T* y = yt.data<T>();
  T* gx = grad_in.data<T>();
  // One [rows of n] line: gx = g - exp(y) * s  or  y * (g - s).
  auto finish = [log](const T* gl, const T* yl, T* out, int64_t n, const double* s, int64_t s_stride) {
    if (log) {
      exp_sub(yl, T(0), out, n);
      for (int64_t j = 0; j < n; ++j)
        out[j] = static_cast<T>(static_cast<double>(gl[j]) - static_cast<double>(out[j]) * s[j * s_stride]);
    } else {
      for (int64_t j = 0; j < n; ++j)
        out[j] = static_cast<T>(static_cast<double>(yl[j]) * (static_cast<double>(gl[j]) - s[j * s_stride]));
    }
  };
  if (inner == 1) {
    for_each_row(outer, 2 * dim, [&](int64_t o) {
      const T* gr = g + o * dim;
      const T* yr = y + o * dim;
      double s = 0;
      if (log) {
        s = sum_contiguous(gr, dim);
      } else {
        for (int64_t r = 0; r < dim; ++r) s += static_cast<double>(gr[r]) * static_cast<double>(yr[r]);
      }
      finish(gr, yr, gx + o * dim, dim, &s, 0);
    });
    return;
  }
  for_each_tile(outer, inner, 2 * dim, [&](int64_t o, int64_t i0, int64_t i1) {
    double s[kTile] = {};
    const int64_t k = i1 - i0;
    const int64_t base = o * dim * inner + i0;
    for (int64_t r = 0; r < dim; ++r) {
      const T* gl = g + base + r * inner;
      const T* yl = y + base + r * inner;
      if (log) {
        for (int64_t j = 0; j < k; ++j) s[j] += static_cast<double>(gl[j]);
      } else {
        for (int64_t j = 0; j < k; ++j) s[j] += static_cast<double>(gl[j]) * static_cast<double>(yl[j]);
      }
    }
    for (int64_t r = 0; r < dim; ++r)
      finish(g + base + r * inner, y + base + r * inner, gx + base + r * inner, k, s, 1);
  });
}

void cpu_softmax(const Tensor& x, int64_t outer, int64_t dim, int64_t inner, bool log, Tensor& out) {
  DL_DISPATCH_FLOAT(x.dtype(), log ? "log_softmax" : "softmax",
                    [&] { softmax_impl<scalar_t>(x, outer, dim, inner, log, out); });
}

void cpu_softmax_backward(const Tensor& grad, const Tensor& y, int64_t outer, int64_t dim,
                          int64_t inner, bool log, Tensor& grad_in) {
  DL_DISPATCH_FLOAT(y.dtype(), log ? "log_softmax backward" : "softmax backward",
                    [&] { softmax_backward_impl<scalar_t>(grad, y, outer, dim, inner, log, grad_in); });
}

}  // namespace

DL_REGISTER_KERNEL(sum_stub, CPU, f32_compute<cpu_sum>);
DL_REGISTER_KERNEL(arg_reduce_stub, CPU, f32_compute<cpu_arg_reduce>);
DL_REGISTER_KERNEL(var_stub, CPU, f32_compute<cpu_var>);
DL_REGISTER_KERNEL(softmax_stub, CPU, f32_compute<cpu_softmax>);
DL_REGISTER_KERNEL(softmax_backward_stub, CPU, f32_compute<cpu_softmax_backward>);

}  // namespace dl::cpu

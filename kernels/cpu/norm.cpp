// CPU batch norm (our own loops for f32 and f64) and dropout.
//
// Batch statistics are deterministic at any thread count: each (n, c) row of x [n, c, s] is
// reduced by one thread in double, then the rows of a channel are combined over n in order.
// The row sums are vectorised over 8 fixed lanes (see Lanes below). Variance never cancels
// catastrophically for large means: each row is two-pass (its mean, then the sum of squared
// deviations from it, while the row is still in cache) and the rows of a channel are combined
// with Chan et al.'s pairwise update
//   M2 = sum_r [M2_r + s * (mean_r - mean)^2],
// so x is read from memory once for the statistics instead of twice. The forward can apply a
// ReLU to its output and the backward mask gy by that output (batch norm + ReLU fused).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/loop.h"
#include "kernels/nn.h"
#include "kernels/random.h"

namespace dl::cpu {
namespace {

struct NCS {
  int64_t n, c, s;
};

NCS ncs_of(const Tensor& x) {
  NCS d{x.size(0), x.size(1), 1};
  for (int64_t i = 2; i < x.dim(); ++i) d.s *= x.size(i);
  return d;
}

int64_t row_grain(int64_t s) { return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(s, 1)); }

// Row sums in double over 8 fixed lanes: element i (of the first n - n % 8) goes to lane i % 8,
// the lanes are added in a fixed tree, then the tail in order. The order depends only on the
// row length, never on the data's alignment or the build's vector width (an omp simd
// reduction's does: the vectoriser peels iterations to align a pointer), so the fused ReLU path
// and the unfused one, or the same values in two buffers, give the same bits. GCC/Clang vector
// extensions, four 2-wide double vectors (SSE2 registers): 2.5-3x a scalar double sum.
using Lanes = double __attribute__((vector_size(16)));

template <class T>
Lanes load2(const T* p) {
  return Lanes{static_cast<double>(p[0]), static_cast<double>(p[1])};
}

double lanes_total(Lanes a0, Lanes a1, Lanes a2, Lanes a3) {
  const Lanes v = (a0 + a1) + (a2 + a3);
  return v[0] + v[1];
}

// sum over i of f(p[i]) (f takes double or Lanes, elementwise).
template <class T, class F>
double row_sum(const T* p, int64_t n, F f) {
  Lanes a0 = {}, a1 = {}, a2 = {}, a3 = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    a0 += f(load2(p + i));
    a1 += f(load2(p + i + 2));
    a2 += f(load2(p + i + 4));
    a3 += f(load2(p + i + 6));
  }
  double total = lanes_total(a0, a1, a2, a3);
  for (; i < n; ++i) total += f(static_cast<double>(p[i]));
  return total;
}

// a = sum(g), b = sum(g * (x - mu)) over a row, in row_sum's order.
template <class T>
void row_grad_sums(const T* g, const T* x, int64_t n, double mu, double& a_out, double& b_out) {
  Lanes a[4] = {}, b[4] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 4; ++k) {
      const Lanes gk = load2(g + i + 2 * k);
      a[k] += gk;
      b[k] += gk * (load2(x + i + 2 * k) - mu);
    }
  double sa = lanes_total(a[0], a[1], a[2], a[3]), sb = lanes_total(b[0], b[1], b[2], b[3]);
  for (; i < n; ++i) {
    const double gi = static_cast<double>(g[i]);
    sa += gi;
    sb += gi * (static_cast<double>(x[i]) - mu);
  }
  a_out = sa;
  b_out = sb;
}

// out[c] = sum over n of part[n * c_count + c], in order of n.
void combine_rows(const std::vector<double>& part, const NCS& d, std::vector<double>& out) {
  out.assign(static_cast<size_t>(d.c), 0.0);
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t c = 0; c < d.c; ++c) out[c] += part[n * d.c + c];
}

template <class T>
void bn_fwd(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& mean_t, Tensor& var_t,
            bool training, double eps, bool relu, Tensor& y) {
  const NCS d = ncs_of(x);
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  std::vector<double> mean(d.c), invstd(d.c);
  if (training) {
    const double m = static_cast<double>(d.n * d.s), s = static_cast<double>(d.s);
    // Per row: its sum and the sum of squared deviations from its mean.
    std::vector<double> row_sums(static_cast<size_t>(d.n * d.c)), row_m2(row_sums.size()), tot;
    parallel_for(d.n * d.c, row_grain(d.s), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* row = xp + r * d.s;
        const double acc = row_sum(row, d.s, [](auto v) { return v; });
        const double mu = acc / s;
        row_sums[r] = acc;
        row_m2[r] = row_sum(row, d.s, [mu](auto v) {
          const auto dv = v - mu;
          return dv * dv;
        });
      }
    });
    // Channel mean from the row sums in order of n, then the channel's M2 (Chan et al.).
    combine_rows(row_sums, d, tot);
    for (int64_t c = 0; c < d.c; ++c) mean[c] = tot[c] / m;
    std::fill(tot.begin(), tot.end(), 0.0);
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t c = 0; c < d.c; ++c) {
        const double dm = row_sums[n * d.c + c] / s - mean[c];
        tot[c] += row_m2[n * d.c + c] + s * dm * dm;
      }
    T* mo = mean_t.data<T>();
    T* vo = var_t.data<T>();
    for (int64_t c = 0; c < d.c; ++c) {
      double var = tot[c] / m;
      mo[c] = static_cast<T>(mean[c]);
      vo[c] = static_cast<T>(var);
      invstd[c] = 1.0 / std::sqrt(var + eps);
    }
  } else {
    const T* mi = mean_t.data<T>();
    const T* vi = var_t.data<T>();
    for (int64_t c = 0; c < d.c; ++c) {
      mean[c] = static_cast<double>(mi[c]);
      invstd[c] = 1.0 / std::sqrt(static_cast<double>(vi[c]) + eps);
    }
  }
  // y = x * scale + shift per channel; with relu, max(y, 0) as relu's kernel writes it.
  std::vector<T> scale(d.c), shift(d.c);
  const T* w = weight.defined() ? weight.data<T>() : nullptr;
  const T* b = bias.defined() ? bias.data<T>() : nullptr;
  for (int64_t c = 0; c < d.c; ++c) {
    double sc = invstd[c] * (w ? static_cast<double>(w[c]) : 1.0);
    scale[c] = static_cast<T>(sc);
    shift[c] = static_cast<T>((b ? static_cast<double>(b[c]) : 0.0) - mean[c] * sc);
  }
  parallel_for(d.n * d.c, row_grain(d.s), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T sc = scale[r % d.c], sh = shift[r % d.c];
      const T* row = xp + r * d.s;
      T* out = yp + r * d.s;
      if (relu) {
        for (int64_t i = 0; i < d.s; ++i) {
          const T v = row[i] * sc + sh;
          out[i] = v > T(0) ? v : T(0);
        }
      } else {
        for (int64_t i = 0; i < d.s; ++i) out[i] = row[i] * sc + sh;
      }
    }
  });
}

// gy masked by the fused ReLU's output (relu's backward: g where y > 0, else 0); the whole of
// gy without it. Written into `buf` (one row) so that the loops below stay plain and vectorise.
template <class T>
const T* masked_row(const T* gr, const T* yr, int64_t s, std::vector<T>& buf) {
  if (!yr) return gr;
  buf.resize(static_cast<size_t>(s));
  T* out = buf.data();
  for (int64_t i = 0; i < s; ++i) {
    const T g = gr[i];  // loaded unconditionally: a select, vectorised, not a branch per element
    out[i] = yr[i] > T(0) ? g : T(0);
  }
  return buf.data();
}

template <class T>
void bn_bwd(const Tensor& x, const Tensor& gy, const Tensor& relu_y, const Tensor& weight, const Tensor& mean_t,
            const Tensor& var_t, bool training, double eps, Tensor& gx, Tensor& gw, Tensor& gb) {
  const NCS d = ncs_of(x);
  const T* xp = x.data<T>();
  const T* gp = gy.data<T>();
  const T* ry = relu_y.defined() ? relu_y.data<T>() : nullptr;
  const T* w = weight.defined() ? weight.data<T>() : nullptr;
  std::vector<double> mean(d.c), invstd(d.c);
  for (int64_t c = 0; c < d.c; ++c) {
    mean[c] = static_cast<double>(mean_t.data<T>()[c]);
    invstd[c] = 1.0 / std::sqrt(static_cast<double>(var_t.data<T>()[c]) + eps);
  }
  // Per channel: sum_g = sum(gy), sum_gxc = sum(gy * (x - mean)).
  std::vector<double> sum_g, sum_gxc;
  const bool need_sums = gw.defined() || gb.defined() || (gx.defined() && training);
  if (need_sums) {
    std::vector<double> pg(static_cast<size_t>(d.n * d.c)), pgx(static_cast<size_t>(d.n * d.c));
    parallel_for(d.n * d.c, row_grain(d.s), [&](int64_t r0, int64_t r1) {
      std::vector<T> buf;
      for (int64_t r = r0; r < r1; ++r) {
        const T* xr = xp + r * d.s;
        const T* gr = masked_row(gp + r * d.s, ry ? ry + r * d.s : nullptr, d.s, buf);
        row_grad_sums(gr, xr, d.s, mean[r % d.c], pg[r], pgx[r]);
      }
    });
    combine_rows(pg, d, sum_g);
    combine_rows(pgx, d, sum_gxc);
  }
  if (gw.defined()) {
    T* o = gw.data<T>();
    for (int64_t c = 0; c < d.c; ++c) o[c] = static_cast<T>(sum_gxc[c] * invstd[c]);
  }
  if (gb.defined()) {
    T* o = gb.data<T>();
    for (int64_t c = 0; c < d.c; ++c) o[c] = static_cast<T>(sum_g[c]);
  }
  if (!gx.defined()) return;
  // gx = a * gy + b * (x - mean) + k per channel, with
  //   eval:     a = w * invstd, b = k = 0
  //   training: a = w * invstd, b = -a * invstd^2 * sum_gxc / m, k = -a * sum_g / m
  std::vector<T> ca(d.c), cb(d.c), ck(d.c), cm(d.c);
  const double m = static_cast<double>(d.n * d.s);
  for (int64_t c = 0; c < d.c; ++c) {
    double a = (w ? static_cast<double>(w[c]) : 1.0) * invstd[c];
    double b = 0.0, k = 0.0;
    if (training) {
      b = -a * invstd[c] * invstd[c] * sum_gxc[c] / m;
      k = -a * sum_g[c] / m;
    }
    ca[c] = static_cast<T>(a);
    cb[c] = static_cast<T>(b);
    ck[c] = static_cast<T>(k);
    cm[c] = static_cast<T>(mean[c]);
  }
  T* gxp = gx.data<T>();
  parallel_for(d.n * d.c, row_grain(d.s), [&](int64_t r0, int64_t r1) {
    std::vector<T> buf;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t c = r % d.c;
      const T a = ca[c], b = cb[c], k = ck[c], mu = cm[c];
      const T* xr = xp + r * d.s;
      const T* gr = masked_row(gp + r * d.s, ry ? ry + r * d.s : nullptr, d.s, buf);
      T* o = gxp + r * d.s;
      for (int64_t i = 0; i < d.s; ++i) o[i] = a * gr[i] + b * (xr[i] - mu) + k;
    }
  });
}

void cpu_batch_norm_fwd(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& mean,
                        Tensor& var, bool training, double eps, bool relu, Tensor& y) {
  DL_DISPATCH_FLOAT(x.dtype(), "batch_norm", [&] {
    bn_fwd<scalar_t>(x, weight, bias, mean, var, training, eps, relu, y);
  });
}

void cpu_batch_norm_bwd(const Tensor& x, const Tensor& gy, const Tensor& relu_y, const Tensor& weight,
                        const Tensor& mean, const Tensor& var, bool training, double eps, Tensor& gx,
                        Tensor& gw, Tensor& gb) {
  DL_DISPATCH_FLOAT(x.dtype(), "batch_norm backward", [&] {
    bn_bwd<scalar_t>(x, gy, relu_y, weight, mean, var, training, eps, gx, gw, gb);
  });
}

// ---- dropout -------------------------------------------------------------------------------
template <class T>
void dropout_impl(const Tensor& x, double p, uint64_t seed, uint64_t offset, Tensor& y, Tensor& mask) {
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  T* mp = mask.data<T>();
  const T scale = static_cast<T>(1.0 / (1.0 - p));
  const T tp = static_cast<T>(p);
  parallel_for(x.numel(), 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      Philox4 r = philox4x32_10(seed, offset + static_cast<uint64_t>(i));
      T u;
      if constexpr (std::is_same_v<T, float>) u = uniform_float(r.v[0]);
      else u = static_cast<T>(uniform_double(r.v[0], r.v[1]));
      const T m = u < tp ? T(0) : scale;
      mp[i] = m;
      yp[i] = xp[i] * m;
    }
  });
}

void cpu_dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset, Tensor& y, Tensor& mask) {
  DL_DISPATCH_FLOAT(x.dtype(), "dropout", [&] { dropout_impl<scalar_t>(x, p, seed, offset, y, mask); });
}

}  // namespace

DL_REGISTER_KERNEL(batch_norm_fwd_stub, CPU, cpu_batch_norm_fwd);
DL_REGISTER_KERNEL(batch_norm_bwd_stub, CPU, cpu_batch_norm_bwd);
DL_REGISTER_KERNEL(dropout_stub, CPU, cpu_dropout);

}  // namespace dl::cpu

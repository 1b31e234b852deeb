// CPU batch norm (our own loops for f32 and f64) and dropout.
//
// Batch statistics are deterministic at any thread count: each channel of x [n, c, s] is done
// by one thread, its (n, c) rows reduced in double and combined over n in order.
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
#include "kernels/f32_compute.h"
#include "kernels/nn.h"
#include "kernels/norm_shape.h"
#include "kernels/random.h"

namespace dl::cpu {
namespace {

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

// Threads split the channels; each channel is done start to finish by one thread (its
// statistics, then its output), so its rows, read once from memory for the statistics, are
// still in cache (L2: 128 x 28 x 28 floats = 400 KB) for the second pass.
int64_t channel_grain(const NCS& d) { return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(d.n * d.s, 1)); }

template <class T>
void bn_fwd(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& mean_t, Tensor& var_t,
            bool training, double eps, bool relu, Tensor& y) {
  const NCS d = ncs_of(x);
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  const T* w = weight.defined() ? weight.data<T>() : nullptr;
  const T* b = bias.defined() ? bias.data<T>() : nullptr;
  T* mo = mean_t.data<T>();
  T* vo = var_t.data<T>();
  const double m = static_cast<double>(d.n * d.s), s = static_cast<double>(d.s);
  parallel_for(d.c, channel_grain(d), [&](int64_t c0, int64_t c1) {
    std::vector<double> row_sums(static_cast<size_t>(d.n)), row_m2(row_sums.size());
    for (int64_t c = c0; c < c1; ++c) {
      double mean, invstd;
      if (training) {
        // Per row: its sum and the sum of squared deviations from its mean; then the channel's
        // mean from the row sums in order of n, and its M2 (Chan et al.).
        for (int64_t n = 0; n < d.n; ++n) {
          const T* row = xp + (n * d.c + c) * d.s;
          const double acc = row_sum(row, d.s, [](auto v) { return v; });
          const double mu = acc / s;
          row_sums[n] = acc;
          row_m2[n] = row_sum(row, d.s, [mu](auto v) {
            const auto dv = v - mu;
            return dv * dv;
          });
        }
        double tot = 0.0;
        for (int64_t n = 0; n < d.n; ++n) tot += row_sums[n];
        mean = tot / m;
        double m2 = 0.0;
        for (int64_t n = 0; n < d.n; ++n) {
          const double dm = row_sums[n] / s - mean;
          m2 += row_m2[n] + s * dm * dm;
        }
        const double var = m2 / m;
        mo[c] = static_cast<T>(mean);
        vo[c] = static_cast<T>(var);
        invstd = 1.0 / std::sqrt(var + eps);
      } else {
        mean = static_cast<double>(mo[c]);
        invstd = 1.0 / std::sqrt(static_cast<double>(vo[c]) + eps);
      }
      // y = x * scale + shift; with relu, max(y, 0) as relu's kernel writes it.
      const double scale_d = invstd * (w ? static_cast<double>(w[c]) : 1.0);
      const T sc = static_cast<T>(scale_d);
      const T sh = static_cast<T>((b ? static_cast<double>(b[c]) : 0.0) - mean * scale_d);
      for (int64_t n = 0; n < d.n; ++n) {
        const T* row = xp + (n * d.c + c) * d.s;
        T* out = yp + (n * d.c + c) * d.s;
        if (relu) {
          for (int64_t i = 0; i < d.s; ++i) {
            const T v = row[i] * sc + sh;
            out[i] = v > T(0) ? v : T(0);
          }
        } else {
          for (int64_t i = 0; i < d.s; ++i) out[i] = row[i] * sc + sh;
        }
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
  T* gwp = gw.defined() ? gw.data<T>() : nullptr;
  T* gbp = gb.defined() ? gb.data<T>() : nullptr;
  T* gxp = gx.defined() ? gx.data<T>() : nullptr;
  const bool need_sums = gwp || gbp || (gxp && training);
  const double m = static_cast<double>(d.n * d.s);
  parallel_for(d.c, channel_grain(d), [&](int64_t c0, int64_t c1) {
    std::vector<T> buf;
    for (int64_t c = c0; c < c1; ++c) {
      const double mean = static_cast<double>(mean_t.data<T>()[c]);
      const double invstd = 1.0 / std::sqrt(static_cast<double>(var_t.data<T>()[c]) + eps);
      // sum_g = sum(gy), sum_gxc = sum(gy * (x - mean)): per row, then over n in order.
      double sum_g = 0.0, sum_gxc = 0.0;
      if (need_sums)
        for (int64_t n = 0; n < d.n; ++n) {
          const int64_t r = n * d.c + c;
          const T* gr = masked_row(gp + r * d.s, ry ? ry + r * d.s : nullptr, d.s, buf);
          double a, b;
          row_grad_sums(gr, xp + r * d.s, d.s, mean, a, b);
          sum_g += a;
          sum_gxc += b;
        }
      if (gwp) gwp[c] = static_cast<T>(sum_gxc * invstd);
      if (gbp) gbp[c] = static_cast<T>(sum_g);
      if (!gxp) continue;
      // gx = a * gy + b * (x - mean) + k, with
      //   eval:     a = w * invstd, b = k = 0
      //   training: a = w * invstd, b = -a * invstd^2 * sum_gxc / m, k = -a * sum_g / m
      const double a_d = (w ? static_cast<double>(w[c]) : 1.0) * invstd;
      const double b_d = training ? -a_d * invstd * invstd * sum_gxc / m : 0.0;
      const double k_d = training ? -a_d * sum_g / m : 0.0;
      const T a = static_cast<T>(a_d), b = static_cast<T>(b_d), k = static_cast<T>(k_d);
      const T mu = static_cast<T>(mean);
      for (int64_t n = 0; n < d.n; ++n) {
        const int64_t r = n * d.c + c;
        const T* xr = xp + r * d.s;
        const T* gr = masked_row(gp + r * d.s, ry ? ry + r * d.s : nullptr, d.s, buf);
        T* o = gxp + r * d.s;
        for (int64_t i = 0; i < d.s; ++i) o[i] = a * gr[i] + b * (xr[i] - mu) + k;
      }
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

DL_REGISTER_KERNEL(batch_norm_fwd_stub, CPU, f32_compute<cpu_batch_norm_fwd>);
DL_REGISTER_KERNEL(batch_norm_bwd_stub, CPU, f32_compute<cpu_batch_norm_bwd>);
DL_REGISTER_KERNEL(dropout_stub, CPU, f32_compute<cpu_dropout>);

}  // namespace dl::cpu

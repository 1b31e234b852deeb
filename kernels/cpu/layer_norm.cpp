// CPU layer norm (kernels/nn.h: layer_norm_fwd_stub / layer_norm_bwd_stub), f32 and f64.
//
// Forward: one pass over each row for its moments, in double, shifted by the row's first
// element (sum and sum of squares of x - x0: no catastrophic cancellation for rows with a
// large mean), then one pass writing y in x's dtype. Backward: per row one pass for its two
// sums (double) and one writing gx, which also accumulates the weight and bias gradients
// (double) into a partial sum per block of rows. The blocks depend on the row count only and
// are combined in order, and every row is handled by one thread, so results are bit-identical
// at any thread count.
//
// x - mean is taken as (x - mean_hi) - mean_lo, mean_hi + mean_lo being the double mean split
// into two values of x's dtype: for float rows with a large mean (1000 + N(0, 1)) the first
// difference is exact and the result keeps float's precision, where x - float(mean) would not.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/loop.h"
#include "kernels/f32_compute.h"
#include "kernels/nn.h"

namespace dl::cpu {
namespace {

constexpr int64_t kRowBlocks = 32;  // weight/bias gradient partial sums (at most)

int64_t rows_grain(int64_t n) { return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(n, 1)); }

// A row's statistics in x's dtype: xhat = ((x - hi) - lo) * rstd.
template <class T>
struct RowStats {
  T hi, lo, rstd;
  RowStats(double mean, double rstd_d)
      : hi(static_cast<T>(mean)), lo(static_cast<T>(mean - static_cast<double>(hi))), rstd(static_cast<T>(rstd_d)) {}
  T xhat(T x) const { return ((x - hi) - lo) * rstd; }
};

// a = sum(g), c = sum(g * xhat) over a row in double, g = gy * w (w null: 1). Separate loops
// with and without w so that each one vectorises.
template <class T>
void row_sums(const T* gr, const T* xr, const T* w, const RowStats<T>& st, int64_t n, double& a_out, double& c_out) {
  double a = 0.0, c = 0.0;
  if (w) {
#pragma omp simd reduction(+ : a, c)
    for (int64_t j = 0; j < n; ++j) {
      const double g = static_cast<double>(gr[j] * w[j]);
      a += g;
      c += g * static_cast<double>(st.xhat(xr[j]));
    }
  } else {
#pragma omp simd reduction(+ : a, c)
    for (int64_t j = 0; j < n; ++j) {
      const double g = static_cast<double>(gr[j]);
      a += g;
      c += g * static_cast<double>(st.xhat(xr[j]));
    }
  }
  a_out = a;
  c_out = c;
}

template <class T>
void fwd_impl(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& y, Tensor& mean_t,
              Tensor& rstd_t) {
  const int64_t m = mean_t.numel(), n = m > 0 ? x.numel() / m : 0;
  const T* xp = x.data<T>();
  const T* w = weight.defined() ? weight.data<T>() : nullptr;
  const T* b = bias.defined() ? bias.data<T>() : nullptr;
  T* yp = y.data<T>();
  double* mo = mean_t.data<double>();
  double* ro = rstd_t.data<double>();
  parallel_for(m, rows_grain(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* row = xp + r * n;
      const double shift = static_cast<double>(row[0]);
      double s = 0.0, ss = 0.0;
#pragma omp simd reduction(+ : s, ss)
      for (int64_t j = 0; j < n; ++j) {
        const double v = static_cast<double>(row[j]) - shift;
        s += v;
        ss += v * v;
      }
      const double dm = s / static_cast<double>(n);
      const double var = std::max(ss / static_cast<double>(n) - dm * dm, 0.0);
      mo[r] = shift + dm;
      ro[r] = 1.0 / std::sqrt(var + eps);
      const RowStats<T> st(mo[r], ro[r]);
      T* out = yp + r * n;
      if (w && b) {
        for (int64_t j = 0; j < n; ++j) out[j] = st.xhat(row[j]) * w[j] + b[j];
      } else {
        for (int64_t j = 0; j < n; ++j) out[j] = st.xhat(row[j]) * (w ? w[j] : T(1)) + (b ? b[j] : T(0));
      }
    }
  });
}

template <class T>
void bwd_impl(const Tensor& x, const Tensor& gy, const Tensor& weight, const Tensor& mean_t, const Tensor& rstd_t,
              Tensor& gx, Tensor& gw, Tensor& gb) {
  const int64_t m = mean_t.numel(), n = m > 0 ? x.numel() / m : 0;
  const T* xp = x.data<T>();
  const T* gp = gy.data<T>();
  const T* w = weight.defined() ? weight.data<T>() : nullptr;
  const double* mp = mean_t.data<double>();
  const double* rp = rstd_t.data<double>();
  T* gxp = gx.defined() ? gx.data<T>() : nullptr;
  const bool sums = gw.defined() || gb.defined();
  const int64_t blocks = std::min(m, kRowBlocks);
  std::vector<double> part_w(sums ? blocks * n : 0), part_b(sums ? blocks * n : 0);  // [blocks, n]

  parallel_for(blocks, 1, [&](int64_t blk0, int64_t blk1) {
    for (int64_t blk = blk0; blk < blk1; ++blk) {
      double* pw = sums ? part_w.data() + blk * n : nullptr;
      double* pb = sums ? part_b.data() + blk * n : nullptr;
      for (int64_t r = blk * m / blocks; r < (blk + 1) * m / blocks; ++r) {
        const T* xr = xp + r * n;
        const T* gr = gp + r * n;
        const RowStats<T> st(mp[r], rp[r]);
        if (gxp) {
          // gx = rstd * (g - mean_j(g) - xhat * mean_j(g * xhat)), g = gy * w.
          double a, c;
          row_sums(gr, xr, w, st, n, a, c);
          const double rstd = rp[r], inv_n = 1.0 / static_cast<double>(n);
          const T k1 = static_cast<T>(rstd), k2 = static_cast<T>(-rstd * c * inv_n),
                  k3 = static_cast<T>(-rstd * a * inv_n);
          T* o = gxp + r * n;
          for (int64_t j = 0; j < n; ++j) o[j] = k1 * (gr[j] * (w ? w[j] : T(1))) + k2 * st.xhat(xr[j]) + k3;
        }
        if (sums)
          for (int64_t j = 0; j < n; ++j) {
            const double g = static_cast<double>(gr[j]);
            pw[j] += g * static_cast<double>(st.xhat(xr[j]));
            pb[j] += g;
          }
      }
    }
  });
  if (!sums) return;
  T* gwp = gw.defined() ? gw.data<T>() : nullptr;
  T* gbp = gb.defined() ? gb.data<T>() : nullptr;
  parallel_for(n, kParallelGrain, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      double sw = 0.0, sb = 0.0;
      for (int64_t blk = 0; blk < blocks; ++blk) {
        sw += part_w[blk * n + j];
        sb += part_b[blk * n + j];
      }
      if (gwp) gwp[j] = static_cast<T>(sw);
      if (gbp) gbp[j] = static_cast<T>(sb);
    }
  });
}

void cpu_layer_norm_fwd(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& y,
                        Tensor& mean, Tensor& rstd) {
  DL_DISPATCH_FLOAT(x.dtype(), "layer_norm", [&] { fwd_impl<scalar_t>(x, weight, bias, eps, y, mean, rstd); });
}

void cpu_layer_norm_bwd(const Tensor& x, const Tensor& gy, const Tensor& weight, const Tensor& mean,
                        const Tensor& rstd, Tensor& gx, Tensor& gw, Tensor& gb) {
  DL_DISPATCH_FLOAT(x.dtype(), "layer_norm backward",
                    [&] { bwd_impl<scalar_t>(x, gy, weight, mean, rstd, gx, gw, gb); });
}

}  // namespace

DL_REGISTER_KERNEL(layer_norm_fwd_stub, CPU, f32_compute<cpu_layer_norm_fwd>);
DL_REGISTER_KERNEL(layer_norm_bwd_stub, CPU, f32_compute<cpu_layer_norm_bwd>);

}  // namespace dl::cpu

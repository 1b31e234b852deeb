// CPU layer norm (kernels/nn.h: layer_norm_fwd_stub / layer_norm_bwd_stub), f32 and f64.
//
// Forward: one pass over each row for its moments, in double, shifted by the row's first
// element (sum and sum of squares of x - x0: no catastrophic cancellation for rows with a
// large mean), then one pass writing y from xhat = (x - mean) * rstd computed in double. Backward: one pass for the row's two sums and one
// writing gx (fused); the weight and bias gradients go over column blocks, each summing its
// columns over the rows in row order. Each output is written by one thread in a fixed order,
// so results are bit-identical at any thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/loop.h"
#include "kernels/nn.h"

namespace dl::cpu {
namespace {

constexpr int64_t kColumnBlock = 256;  // columns per task of the weight/bias gradient

int64_t rows_grain(int64_t n) { return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(n, 1)); }

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
      const double mean = shift + dm, rstd = 1.0 / std::sqrt(var + eps);
      mo[r] = mean;
      ro[r] = rstd;
      // xhat in double: x - mean cancels for rows with a large mean, which float would round.
      T* out = yp + r * n;
      for (int64_t j = 0; j < n; ++j) {
        const T xhat = static_cast<T>((static_cast<double>(row[j]) - mean) * rstd);
        out[j] = xhat * (w ? w[j] : T(1)) + (b ? b[j] : T(0));
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
  if (gx.defined()) {
    // gx = rstd * (g - mean_j(g) - xhat * mean_j(g * xhat)) with g = gy * w, xhat = (x - mean) * rstd:
    //    = rstd * g + k2 * (x - mean) + k3.
    T* gxp = gx.data<T>();
    parallel_for(m, rows_grain(n), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* xr = xp + r * n;
        const T* gr = gp + r * n;
        const double mu = mp[r], rstd = rp[r];
        double a = 0.0, bsum = 0.0;
#pragma omp simd reduction(+ : a, bsum)
        for (int64_t j = 0; j < n; ++j) {
          const double g = static_cast<double>(gr[j]) * (w ? static_cast<double>(w[j]) : 1.0);
          a += g;
          bsum += g * (static_cast<double>(xr[j]) - mu);
        }
        const double inv_n = 1.0 / static_cast<double>(n);
        const double k2 = -rstd * rstd * rstd * bsum * inv_n, k3 = -rstd * a * inv_n;
        T* o = gxp + r * n;
        for (int64_t j = 0; j < n; ++j) {
          const double g = static_cast<double>(gr[j]) * (w ? static_cast<double>(w[j]) : 1.0);
          o[j] = static_cast<T>(rstd * g + k2 * (static_cast<double>(xr[j]) - mu) + k3);
        }
      }
    });
  }
  if (!gw.defined() && !gb.defined()) return;
  T* gwp = gw.defined() ? gw.data<T>() : nullptr;
  T* gbp = gb.defined() ? gb.data<T>() : nullptr;
  const int64_t blocks = (n + kColumnBlock - 1) / kColumnBlock;
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<double> acc_w(kColumnBlock), acc_b(kColumnBlock);
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t j0 = blk * kColumnBlock, len = std::min(kColumnBlock, n - j0);
      std::fill(acc_w.begin(), acc_w.end(), 0.0);
      std::fill(acc_b.begin(), acc_b.end(), 0.0);
      for (int64_t r = 0; r < m; ++r) {
        const T* xr = xp + r * n + j0;
        const T* gr = gp + r * n + j0;
        const double mu = mp[r], rstd = rp[r];
        for (int64_t j = 0; j < len; ++j) {
          const double g = static_cast<double>(gr[j]);
          acc_w[j] += g * ((static_cast<double>(xr[j]) - mu) * rstd);
          acc_b[j] += g;
        }
      }
      for (int64_t j = 0; j < len; ++j) {
        if (gwp) gwp[j0 + j] = static_cast<T>(acc_w[j]);
        if (gbp) gbp[j0 + j] = static_cast<T>(acc_b[j]);
      }
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

DL_REGISTER_KERNEL(layer_norm_fwd_stub, CPU, cpu_layer_norm_fwd);
DL_REGISTER_KERNEL(layer_norm_bwd_stub, CPU, cpu_layer_norm_bwd);

}  // namespace dl::cpu

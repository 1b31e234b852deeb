// CPU batch norm (our own loops for f32 and f64) and dropout.
//
// Batch statistics are deterministic at any thread count: each (n, c) row of x [n, c, s] is
// summed by one thread in double, then the rows of a channel are combined over n in order.
// Variance is two-pass (mean first, then the sum of squared deviations), like PyTorch's CPU
// kernel, so it does not cancel catastrophically for large means.
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

// out[c] = sum over n of part[n * c_count + c], in order of n.
void combine_rows(const std::vector<double>& part, const NCS& d, std::vector<double>& out) {
  out.assign(static_cast<size_t>(d.c), 0.0);
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t c = 0; c < d.c; ++c) out[c] += part[n * d.c + c];
}

template <class T>
void bn_fwd(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& mean_t, Tensor& var_t,
            bool training, double eps, Tensor& y) {
  const NCS d = ncs_of(x);
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  std::vector<double> mean(d.c), invstd(d.c);
  if (training) {
    const double m = static_cast<double>(d.n * d.s);
    std::vector<double> part(static_cast<size_t>(d.n * d.c)), tot;
    parallel_for(d.n * d.c, row_grain(d.s), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* row = xp + r * d.s;
        double acc = 0.0;
        for (int64_t i = 0; i < d.s; ++i) acc += static_cast<double>(row[i]);
        part[r] = acc;
      }
    });
    combine_rows(part, d, tot);
    for (int64_t c = 0; c < d.c; ++c) mean[c] = tot[c] / m;
    parallel_for(d.n * d.c, row_grain(d.s), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* row = xp + r * d.s;
        const double mu = mean[r % d.c];
        double acc = 0.0;
        for (int64_t i = 0; i < d.s; ++i) {
          double v = static_cast<double>(row[i]) - mu;
          acc += v * v;
        }
        part[r] = acc;
      }
    });
    combine_rows(part, d, tot);
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
  // y = x * scale + shift per channel.
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
      for (int64_t i = 0; i < d.s; ++i) out[i] = row[i] * sc + sh;
    }
  });
}

template <class T>
void bn_bwd(const Tensor& x, const Tensor& gy, const Tensor& weight, const Tensor& mean_t,
            const Tensor& var_t, bool training, double eps, Tensor& gx, Tensor& gw, Tensor& gb) {
  const NCS d = ncs_of(x);
  const T* xp = x.data<T>();
  const T* gp = gy.data<T>();
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
      for (int64_t r = r0; r < r1; ++r) {
        const T* xr = xp + r * d.s;
        const T* gr = gp + r * d.s;
        const double mu = mean[r % d.c];
        double a = 0.0, b = 0.0;
        for (int64_t i = 0; i < d.s; ++i) {
          double g = static_cast<double>(gr[i]);
          a += g;
          b += g * (static_cast<double>(xr[i]) - mu);
        }
        pg[r] = a;
        pgx[r] = b;
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
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t c = r % d.c;
      const T a = ca[c], b = cb[c], k = ck[c], mu = cm[c];
      const T* xr = xp + r * d.s;
      const T* gr = gp + r * d.s;
      T* o = gxp + r * d.s;
      for (int64_t i = 0; i < d.s; ++i) o[i] = a * gr[i] + b * (xr[i] - mu) + k;
    }
  });
}

void cpu_batch_norm_fwd(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& mean,
                        Tensor& var, bool training, double eps, Tensor& y) {
  DL_DISPATCH_FLOAT(x.dtype(), "batch_norm", [&] {
    bn_fwd<scalar_t>(x, weight, bias, mean, var, training, eps, y);
  });
}

void cpu_batch_norm_bwd(const Tensor& x, const Tensor& gy, const Tensor& weight, const Tensor& mean,
                        const Tensor& var, bool training, double eps, Tensor& gx, Tensor& gw,
                        Tensor& gb) {
  DL_DISPATCH_FLOAT(x.dtype(), "batch_norm backward", [&] {
    bn_bwd<scalar_t>(x, gy, weight, mean, var, training, eps, gx, gw, gb);
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

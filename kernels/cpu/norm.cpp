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
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/loop.h"
#include "kernels/f32_compute.h"
#include "kernels/nn.h"
#include "kernels/norm_shape.h"
#include "kernels/random.h"

// The 4-wide double vectors below are passed between always-inlined helpers only, so GCC's
// note that their calling convention differs with and without AVX does not apply.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wunknown-warning-option"
#pragma clang diagnostic ignored "-Wpsabi"
#elif defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace dl::cpu {
namespace {

// Row sums in double over 8 fixed lanes: element i (of the first n - n % 8) goes to lane i % 8,
// the lanes are added in a fixed tree, then the tail in order. The order depends only on the
// row length, never on the data's alignment or the build's vector width (an omp simd
// reduction's does: the vectoriser peels iterations to align a pointer), so the fused ReLU path
// and the unfused one, or the same values in two buffers, give the same bits. GCC/Clang vector
// extensions: two 4-wide double vectors (lanes 0-3 and 4-7), one AVX2 register each in the
// AVX2 build, two SSE2 registers each in the baseline build (kernels/cpu/isa.h); both builds
// give the same bits. 2.5-3x a scalar double sum in SSE2, about 2x more in AVX2.
using Lanes = double __attribute__((vector_size(32)));
using Floats4 = float __attribute__((vector_size(16), aligned(4)));  // 4 floats, any alignment

template <class T>
DL_ALWAYS_INLINE Lanes load4(const T* p) {
  if constexpr (std::is_same_v<T, float>) {
    Floats4 v;
    std::memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, Lanes);
  } else {
    Lanes v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
}

// The 8 lanes' total: ((l0 + l2) + (l4 + l6)) + ((l1 + l3) + (l5 + l7)).
DL_ALWAYS_INLINE double lanes_total(Lanes lo, Lanes hi) {
  return ((lo[0] + lo[2]) + (hi[0] + hi[2])) + ((lo[1] + lo[3]) + (hi[1] + hi[3]));
}

struct Identity {
  template <class V>
  DL_ALWAYS_INLINE V operator()(V v) const { return v; }
};
struct SquaredDeviation {  // (v - mu)^2
  double mu;
  template <class V>
  DL_ALWAYS_INLINE V operator()(V v) const {
    const V dv = v - mu;
    return dv * dv;
  }
};

// sum over i of f(p[i]) (f takes double or Lanes, elementwise).
template <class T, class F>
DL_ALWAYS_INLINE double row_sum(const T* p, int64_t n, F f) {
  Lanes lo = {}, hi = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    lo += f(load4(p + i));
    hi += f(load4(p + i + 4));
  }
  double total = lanes_total(lo, hi);
  for (; i < n; ++i) total += f(static_cast<double>(p[i]));
  return total;
}

// a = sum(g), b = sum(g * (x - mu)) over a row, in row_sum's order. Masked (batch norm + ReLU
// fused): g where the ReLU's output y > 0, else 0 (relu's backward), selected lane by lane.
template <bool Masked, class T>
DL_ALWAYS_INLINE void row_grad_sums(const T* g, const T* y, const T* x, int64_t n, double mu, double& a_out,
                                    double& b_out) {
  Lanes a_lo = {}, a_hi = {}, b_lo = {}, b_hi = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    Lanes g_lo = load4(g + i), g_hi = load4(g + i + 4);
    if constexpr (Masked) {
      g_lo = load4(y + i) > 0.0 ? g_lo : Lanes{};
      g_hi = load4(y + i + 4) > 0.0 ? g_hi : Lanes{};
    }
    a_lo += g_lo;
    a_hi += g_hi;
    b_lo += g_lo * (load4(x + i) - mu);
    b_hi += g_hi * (load4(x + i + 4) - mu);
  }
  double sa = lanes_total(a_lo, a_hi), sb = lanes_total(b_lo, b_hi);
  for (; i < n; ++i) {
    const double gi = !Masked || y[i] > T(0) ? static_cast<double>(g[i]) : 0.0;
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
struct BnFwdArgs {
  NCS d;
  const T* x;
  const T* w;  // null: no affine weight
  const T* b;  // null: no affine bias
  T* mean;     // training: written; eval: the running mean read
  T* var;
  T* y;
  bool training, relu;
  double eps;
};

// Channels [c0, c1) of the forward. `row_sums`, `row_m2`: d.n doubles each.
template <class T>
DL_ALWAYS_INLINE void bn_fwd_channels(const BnFwdArgs<T>& a, int64_t c0, int64_t c1, double* row_sums,
                                      double* row_m2) {
  const NCS& d = a.d;
  const double m = static_cast<double>(d.n * d.s), s = static_cast<double>(d.s);
  for (int64_t c = c0; c < c1; ++c) {
    double mean, invstd;
    if (a.training) {
      // Per row: its sum and the sum of squared deviations from its mean; then the channel's
      // mean from the row sums in order of n, and its M2 (Chan et al.).
      for (int64_t n = 0; n < d.n; ++n) {
        const T* row = a.x + (n * d.c + c) * d.s;
        const double acc = row_sum(row, d.s, Identity{});
        row_sums[n] = acc;
        row_m2[n] = row_sum(row, d.s, SquaredDeviation{acc / s});
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
      a.mean[c] = static_cast<T>(mean);
      a.var[c] = static_cast<T>(var);
      invstd = 1.0 / std::sqrt(var + a.eps);
    } else {
      mean = static_cast<double>(a.mean[c]);
      invstd = 1.0 / std::sqrt(static_cast<double>(a.var[c]) + a.eps);
    }
    // y = x * scale + shift; with relu, max(y, 0) as relu's kernel writes it.
    const double scale_d = invstd * (a.w ? static_cast<double>(a.w[c]) : 1.0);
    const T sc = static_cast<T>(scale_d);
    const T sh = static_cast<T>((a.b ? static_cast<double>(a.b[c]) : 0.0) - mean * scale_d);
    for (int64_t n = 0; n < d.n; ++n) {
      const T* row = a.x + (n * d.c + c) * d.s;
      T* out = a.y + (n * d.c + c) * d.s;
      if (a.relu) {
        for (int64_t i = 0; i < d.s; ++i) {
          const T v = row[i] * sc + sh;
          out[i] = v > T(0) ? v : T(0);
        }
      } else {
        for (int64_t i = 0; i < d.s; ++i) out[i] = row[i] * sc + sh;
      }
    }
  }
}

template <class T>
void bn_fwd_channels_baseline(const BnFwdArgs<T>& a, int64_t c0, int64_t c1, double* rs, double* rm) {
  bn_fwd_channels(a, c0, c1, rs, rm);
}
template <class T>
DL_TARGET_AVX2 void bn_fwd_channels_avx2(const BnFwdArgs<T>& a, int64_t c0, int64_t c1, double* rs, double* rm) {
  bn_fwd_channels(a, c0, c1, rs, rm);
}

template <class T>
void bn_fwd(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& mean_t, Tensor& var_t,
            bool training, double eps, bool relu, Tensor& y) {
  BnFwdArgs<T> a{ncs_of(x),
                 x.data<T>(),
                 weight.defined() ? weight.data<T>() : nullptr,
                 bias.defined() ? bias.data<T>() : nullptr,
                 mean_t.data<T>(),
                 var_t.data<T>(),
                 y.data<T>(),
                 training,
                 relu,
                 eps};
  const auto channels = cpu_isa() == CpuIsa::Avx2 ? bn_fwd_channels_avx2<T> : bn_fwd_channels_baseline<T>;
  parallel_for(a.d.c, channel_grain(a.d), [&](int64_t c0, int64_t c1) {
    std::vector<double> row_sums(static_cast<size_t>(a.d.n)), row_m2(row_sums.size());
    channels(a, c0, c1, row_sums.data(), row_m2.data());
  });
}

template <class T>
struct BnBwdArgs {
  NCS d;
  const T* x;
  const T* gy;
  const T* relu_y;  // null: no fused ReLU
  const T* w;
  const T* mean;
  const T* var;
  T* gx;  // null: not wanted
  T* gw;
  T* gb;
  bool training;
  double eps;
};

// Channels [c0, c1) of the backward. With the fused ReLU, gy is masked by its output y as
// relu's backward does (gy where y > 0, else 0) wherever it is read.
template <class T>
DL_ALWAYS_INLINE void bn_bwd_channels(const BnBwdArgs<T>& a, int64_t c0, int64_t c1) {
  const NCS& d = a.d;
  const bool need_sums = a.gw || a.gb || (a.gx && a.training);
  const double m = static_cast<double>(d.n * d.s);
  for (int64_t c = c0; c < c1; ++c) {
    const double mean = static_cast<double>(a.mean[c]);
    const double invstd = 1.0 / std::sqrt(static_cast<double>(a.var[c]) + a.eps);
    // sum_g = sum(gy), sum_gxc = sum(gy * (x - mean)): per row, then over n in order.
    double sum_g = 0.0, sum_gxc = 0.0;
    if (need_sums)
      for (int64_t n = 0; n < d.n; ++n) {
        const int64_t r = n * d.c + c;
        double sa, sb;
        if (a.relu_y) row_grad_sums<true>(a.gy + r * d.s, a.relu_y + r * d.s, a.x + r * d.s, d.s, mean, sa, sb);
        else row_grad_sums<false>(a.gy + r * d.s, a.gy, a.x + r * d.s, d.s, mean, sa, sb);
        sum_g += sa;
        sum_gxc += sb;
      }
    if (a.gw) a.gw[c] = static_cast<T>(sum_gxc * invstd);
    if (a.gb) a.gb[c] = static_cast<T>(sum_g);
    if (!a.gx) continue;
    // gx = ka * gy + kb * (x - mean) + kc, with
    //   eval:     ka = w * invstd, kb = kc = 0
    //   training: ka = w * invstd, kb = -ka * invstd^2 * sum_gxc / m, kc = -ka * sum_g / m
    const double a_d = (a.w ? static_cast<double>(a.w[c]) : 1.0) * invstd;
    const double b_d = a.training ? -a_d * invstd * invstd * sum_gxc / m : 0.0;
    const double k_d = a.training ? -a_d * sum_g / m : 0.0;
    const T ka = static_cast<T>(a_d), kb = static_cast<T>(b_d), kc = static_cast<T>(k_d);
    const T mu = static_cast<T>(mean);
    for (int64_t n = 0; n < d.n; ++n) {
      const int64_t r = n * d.c + c;
      const T* xr = a.x + r * d.s;
      const T* gr = a.gy + r * d.s;
      T* o = a.gx + r * d.s;
      if (a.relu_y) {
        const T* yr = a.relu_y + r * d.s;
        for (int64_t i = 0; i < d.s; ++i) {
          const T g = gr[i];  // loaded unconditionally: a select, vectorised, not a branch per element
          o[i] = ka * (yr[i] > T(0) ? g : T(0)) + kb * (xr[i] - mu) + kc;
        }
      } else {
        for (int64_t i = 0; i < d.s; ++i) o[i] = ka * gr[i] + kb * (xr[i] - mu) + kc;
      }
    }
  }
}

template <class T>
void bn_bwd_channels_baseline(const BnBwdArgs<T>& a, int64_t c0, int64_t c1) {
  bn_bwd_channels(a, c0, c1);
}
template <class T>
DL_TARGET_AVX2 void bn_bwd_channels_avx2(const BnBwdArgs<T>& a, int64_t c0, int64_t c1) {
  bn_bwd_channels(a, c0, c1);
}

template <class T>
void bn_bwd(const Tensor& x, const Tensor& gy, const Tensor& relu_y, const Tensor& weight, const Tensor& mean_t,
            const Tensor& var_t, bool training, double eps, Tensor& gx, Tensor& gw, Tensor& gb) {
  BnBwdArgs<T> a{ncs_of(x),
                 x.data<T>(),
                 gy.data<T>(),
                 relu_y.defined() ? relu_y.data<T>() : nullptr,
                 weight.defined() ? weight.data<T>() : nullptr,
                 mean_t.data<T>(),
                 var_t.data<T>(),
                 gx.defined() ? gx.data<T>() : nullptr,
                 gw.defined() ? gw.data<T>() : nullptr,
                 gb.defined() ? gb.data<T>() : nullptr,
                 training,
                 eps};
  const auto channels = cpu_isa() == CpuIsa::Avx2 ? bn_bwd_channels_avx2<T> : bn_bwd_channels_baseline<T>;
  parallel_for(a.d.c, channel_grain(a.d), [&](int64_t c0, int64_t c1) { channels(a, c0, c1); });
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

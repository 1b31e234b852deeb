// CUDA layer norm (kernels/nn.h layer_norm_fwd_stub / layer_norm_bwd_stub), the device twin of
// kernels/cpu/layer_norm.cpp, f32 and f64 (f16/bf16 through f32_compute, as on the CPU). x is [m, n]
// rows.
//
// Forward: one group of G threads per row (G = 1, a warp or a block by n, as in reduce.cu):
// the row's shifted moments in double with the deterministic group sums of reduce.cuh, then y
// written in x's dtype through the same split mean (hi + lo) as the CPU. Backward: gx per row
// the same way; the weight/bias gradients as the CPU computes them: partial sums over the same
// fixed blocks of rows (<= 32, from the row count only), one thread per (block, column) in row
// order, then the blocks combined in order by one thread per column. Per-element formulas use
// rn:: (helpers.cuh) so that no FMA changes their rounding: y, gw and gb should be
// bit-identical to the CPU's; the row sums (mean, rstd, gx) differ from the CPU's vectorised
// order in the last bits.
#include "kernels/cuda/helpers.cuh"
#include "kernels/cuda/loop.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/f32_compute.h"
#include "kernels/nn.h"

namespace dl::cuda {
namespace {

constexpr int64_t kRowBlocks = 32;  // as kernels/cpu/layer_norm.cpp

// A row's statistics in x's dtype: xhat = ((x - hi) - lo) * rstd (see the CPU kernel).
template <class T>
struct RowStats {
  T hi, lo, rstd;
  __device__ RowStats(double mean, double rstd_d)
      : hi(static_cast<T>(mean)), lo(static_cast<T>(mean - static_cast<double>(hi))), rstd(static_cast<T>(rstd_d)) {}
  __device__ T xhat(T x) const { return rn::mul(rn::sub(rn::sub(x, hi), lo), rstd); }
};

template <int G, class T>
__global__ void ln_fwd_kernel(const T* x, const T* w, const T* b, double eps, int64_t m, int64_t n, T* y,
                              double* mean_out, double* rstd_out) {
  __shared__ double sh[kBlockThreads / 32];
  const int lane = Group<G>::lane();
  for (int64_t r = Group<G>::first_row(); r < m; r += Group<G>::row_step()) {
    const T* row = x + r * n;
    const double shift = static_cast<double>(row[0]);
    double s = 0.0, ss = 0.0;
    for (int64_t j = lane; j < n; j += G) {
      const double v = static_cast<double>(row[j]) - shift;
      s += v;
      ss += v * v;
    }
    s = group_sum<G>(s, sh);
    ss = group_sum<G>(ss, sh);
    const double dn = static_cast<double>(n);
    const double dmean = s / dn;
    const double d = __dsub_rn(ss / dn, __dmul_rn(dmean, dmean));
    const double var = d < 0.0 ? 0.0 : d;  // std::max(d, 0.0): NaN stays NaN
    const double mean = shift + dmean, rstd = 1.0 / ::sqrt(var + eps);
    if (lane == 0) {
      mean_out[r] = mean;
      rstd_out[r] = rstd;
    }
    const RowStats<T> st(mean, rstd);
    T* out = y + r * n;
    for (int64_t j = lane; j < n; j += G) out[j] = rn::add(rn::mul(st.xhat(row[j]), w ? w[j] : T(1)), b ? b[j] : T(0));
  }
}

// gx = rstd * (g - mean_j(g) - xhat * mean_j(g * xhat)), g = gy * w.
template <int G, class T>
__global__ void ln_bwd_dx_kernel(const T* x, const T* gy, const T* w, const double* mean, const double* rstd,
                                 int64_t m, int64_t n, T* gx) {
  __shared__ double sh[kBlockThreads / 32];
  const int lane = Group<G>::lane();
  for (int64_t r = Group<G>::first_row(); r < m; r += Group<G>::row_step()) {
    const T* xr = x + r * n;
    const T* gr = gy + r * n;
    const RowStats<T> st(mean[r], rstd[r]);
    double a = 0.0, c = 0.0;
    for (int64_t j = lane; j < n; j += G) {
      const double g = static_cast<double>(w ? rn::mul(gr[j], w[j]) : gr[j]);
      a += g;
      c += g * static_cast<double>(st.xhat(xr[j]));
    }
    a = group_sum<G>(a, sh);
    c = group_sum<G>(c, sh);
    const double inv_n = 1.0 / static_cast<double>(n);
    const T k1 = static_cast<T>(rstd[r]), k2 = static_cast<T>(-rstd[r] * c * inv_n),
            k3 = static_cast<T>(-rstd[r] * a * inv_n);
    T* o = gx + r * n;
    for (int64_t j = lane; j < n; j += G)
      o[j] = rn::add(rn::add(rn::mul(k1, w ? rn::mul(gr[j], w[j]) : gr[j]), rn::mul(k2, st.xhat(xr[j]))), k3);
  }
}

// part_w/part_b [blocks, n]: sums over the rows of block blk (row order) of gy * xhat and gy.
template <class T>
__global__ void ln_bwd_partial_kernel(const T* x, const T* gy, const double* mean, const double* rstd, int64_t m,
                                      int64_t n, int64_t blocks, double* part_w, double* part_b) {
  const int64_t total = blocks * n;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t blk = t / n, j = t - blk * n;
    double sw = 0.0, sb = 0.0;
    for (int64_t r = blk * m / blocks; r < (blk + 1) * m / blocks; ++r) {
      const RowStats<T> st(mean[r], rstd[r]);
      const double g = static_cast<double>(gy[r * n + j]);
      sw = __dadd_rn(sw, __dmul_rn(g, static_cast<double>(st.xhat(x[r * n + j]))));
      sb += g;
    }
    part_w[t] = sw;
    part_b[t] = sb;
  }
}

template <class T>
__global__ void ln_bwd_combine_kernel(const double* part_w, const double* part_b, int64_t n, int64_t blocks, T* gw,
                                      T* gb) {
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < n; j += int64_t(gridDim.x) * blockDim.x) {
    double sw = 0.0, sb = 0.0;
    for (int64_t blk = 0; blk < blocks; ++blk) {
      sw += part_w[blk * n + j];
      sb += part_b[blk * n + j];
    }
    if (gw) gw[j] = static_cast<T>(sw);
    if (gb) gb[j] = static_cast<T>(sb);
  }
}

void cuda_layer_norm_fwd(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& y,
                         Tensor& mean, Tensor& rstd) {
  const int64_t m = mean.numel(), n = m > 0 ? x.numel() / m : 0;
  if (m == 0 || n == 0) return;
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev);
  dispatch_float(x.dtype(), "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    const T* w = weight.defined() ? weight.data<T>() : nullptr;
    const T* b = bias.defined() ? bias.data<T>() : nullptr;
    T* yp = y.data<T>();
    double* mo = mean.data<double>();
    double* ro = rstd.data<double>();
    with_group_size(n, [&](auto g) {
      constexpr int G = decltype(g)::value;
      ln_fwd_kernel<G, T><<<group_grid<G>(m), kBlockThreads, 0, s>>>(xp, w, b, eps, m, n, yp, mo, ro);
    });
    DL_CUDA_CHECK_LAUNCH();
  });
}

void cuda_layer_norm_bwd(const Tensor& x, const Tensor& gy, const Tensor& weight, const Tensor& mean,
                         const Tensor& rstd, Tensor& gx, Tensor& gw, Tensor& gb) {
  const int64_t m = mean.numel(), n = m > 0 ? x.numel() / m : 0;
  if (m == 0 || n == 0) return;
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev);
  dispatch_float(x.dtype(), "layer_norm backward", [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    const T* gp = gy.data<T>();
    const T* w = weight.defined() ? weight.data<T>() : nullptr;
    const double* mp = mean.data<double>();
    const double* rp = rstd.data<double>();
    if (gx.defined()) {
      T* o = gx.data<T>();
      with_group_size(n, [&](auto g) {
        constexpr int G = decltype(g)::value;
        ln_bwd_dx_kernel<G, T><<<group_grid<G>(m), kBlockThreads, 0, s>>>(xp, gp, w, mp, rp, m, n, o);
      });
      DL_CUDA_CHECK_LAUNCH();
    }
    if (!gw.defined() && !gb.defined()) return;
    const int64_t blocks = std::min(m, kRowBlocks);
    Tensor part = empty({2, blocks, n}, TensorOptions(DType::F64, x.device()));  // [w | b][blocks, n]
    double* pw = part.data<double>();
    double* pb = pw + blocks * n;
    ln_bwd_partial_kernel<T><<<grid_for(blocks * n, kBlockThreads), kBlockThreads, 0, s>>>(xp, gp, mp, rp, m, n,
                                                                                           blocks, pw, pb);
    DL_CUDA_CHECK_LAUNCH();
    ln_bwd_combine_kernel<T><<<grid_for(n, kBlockThreads), kBlockThreads, 0, s>>>(
        pw, pb, n, blocks, gw.defined() ? gw.data<T>() : nullptr, gb.defined() ? gb.data<T>() : nullptr);
    DL_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

// f16/bf16 inputs through f32 (kernels/f32_compute.h), as the CPU kernels are registered.
DL_REGISTER_KERNEL(layer_norm_fwd_stub, CUDA, f32_compute<cuda_layer_norm_fwd>);
DL_REGISTER_KERNEL(layer_norm_bwd_stub, CUDA, f32_compute<cuda_layer_norm_bwd>);

}  // namespace dl::cuda

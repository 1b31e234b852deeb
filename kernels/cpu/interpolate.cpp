// CPU interpolate (kernels/interpolate.h). Every mode is separable: per dim, each output index
// reads `k` input indices with weights (nearest 1, bilinear 2, bicubic 4), computed once per
// call by kernels/interpolate_taps.h (shared with the CUDA kernel). Forward: a horizontal pass
// into a [h, ow] buffer, then a vertical pass. Backward: the transpose of both passes,
// scattering into the input plane. Planes (n, c) are split across threads; each plane is owned
// by one thread, so the results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/loop.h"
#include "kernels/interpolate.h"
#include "kernels/interpolate_taps.h"

namespace dl::cpu {
namespace {

// Input indices and weights of one dim: output i reads idx[i * k + j] with weight w[i * k + j].
template <class T>
struct Taps {
  int k = 1;
  std::vector<int64_t> idx;
  std::vector<T> w;
};

template <class T>
Taps<T> make_taps(InterpMode mode, int64_t in, int64_t out, bool align_corners, double scale_factor) {
  Taps<T> t;
  t.k = interp::tap_count(mode);
  t.idx.resize(static_cast<size_t>(out * t.k));
  t.w.resize(static_cast<size_t>(out * t.k));
  for (int64_t i = 0; i < out; ++i)
    interp::taps_at<T>(mode, in, out, align_corners, scale_factor, i, &t.idx[static_cast<size_t>(i * t.k)],
                       &t.w[static_cast<size_t>(i * t.k)]);
  return t;
}

template <class T>
void interp_fwd(const Interp2dShape& s, const T* x, T* y) {
  const Taps<T> ty = make_taps<T>(s.mode, s.h, s.oh, s.align_corners, s.scale_h);
  const Taps<T> tx = make_taps<T>(s.mode, s.w, s.ow, s.align_corners, s.scale_w);
  parallel_for(s.n * s.c, 1, [&](int64_t p0, int64_t p1) {
    std::vector<T> rows(static_cast<size_t>(s.h * s.ow));  // [h, ow]: the horizontal pass
    for (int64_t p = p0; p < p1; ++p) {
      const T* xp = x + p * s.h * s.w;
      T* yp = y + p * s.oh * s.ow;
      for (int64_t r = 0; r < s.h; ++r) {
        const T* xr = xp + r * s.w;
        T* out = &rows[static_cast<size_t>(r * s.ow)];
        for (int64_t o = 0; o < s.ow; ++o) {
          T acc = T(0);
          for (int j = 0; j < tx.k; ++j) acc += tx.w[o * tx.k + j] * xr[tx.idx[o * tx.k + j]];
          out[o] = acc;
        }
      }
      for (int64_t o = 0; o < s.oh; ++o) {
        T* yr = yp + o * s.ow;
        std::fill(yr, yr + s.ow, T(0));
        for (int j = 0; j < ty.k; ++j) {
          const T wj = ty.w[o * ty.k + j];
          const T* src = &rows[static_cast<size_t>(ty.idx[o * ty.k + j] * s.ow)];
          for (int64_t c = 0; c < s.ow; ++c) yr[c] += wj * src[c];
        }
      }
    }
  });
}

template <class T>
void interp_bwd(const Interp2dShape& s, const T* gy, T* gx) {
  const Taps<T> ty = make_taps<T>(s.mode, s.h, s.oh, s.align_corners, s.scale_h);
  const Taps<T> tx = make_taps<T>(s.mode, s.w, s.ow, s.align_corners, s.scale_w);
  parallel_for(s.n * s.c, 1, [&](int64_t p0, int64_t p1) {
    std::vector<T> rows(static_cast<size_t>(s.h * s.ow));  // [h, ow]: gradient of the horizontal pass
    for (int64_t p = p0; p < p1; ++p) {
      const T* gp = gy + p * s.oh * s.ow;
      T* gxp = gx + p * s.h * s.w;
      std::fill(rows.begin(), rows.end(), T(0));
      for (int64_t o = 0; o < s.oh; ++o) {
        const T* gr = gp + o * s.ow;
        for (int j = 0; j < ty.k; ++j) {
          const T wj = ty.w[o * ty.k + j];
          T* dst = &rows[static_cast<size_t>(ty.idx[o * ty.k + j] * s.ow)];
          for (int64_t c = 0; c < s.ow; ++c) dst[c] += wj * gr[c];
        }
      }
      std::fill(gxp, gxp + s.h * s.w, T(0));
      for (int64_t r = 0; r < s.h; ++r) {
        const T* src = &rows[static_cast<size_t>(r * s.ow)];
        T* gxr = gxp + r * s.w;
        for (int64_t o = 0; o < s.ow; ++o)
          for (int j = 0; j < tx.k; ++j) gxr[tx.idx[o * tx.k + j]] += tx.w[o * tx.k + j] * src[o];
      }
    }
  });
}

void cpu_interpolate_fwd(const Interp2dShape& s, const Tensor& x, Tensor& y) {
  DL_DISPATCH_FLOAT(x.dtype(), "interpolate", [&] { interp_fwd<scalar_t>(s, x.data<scalar_t>(), y.data<scalar_t>()); });
}

void cpu_interpolate_bwd(const Interp2dShape& s, const Tensor& gy, Tensor& gx) {
  DL_DISPATCH_FLOAT(gy.dtype(), "interpolate backward",
                    [&] { interp_bwd<scalar_t>(s, gy.data<scalar_t>(), gx.data<scalar_t>()); });
}

}  // namespace

DL_REGISTER_KERNEL(interpolate_fwd_stub, CPU, cpu_interpolate_fwd);
DL_REGISTER_KERNEL(interpolate_bwd_stub, CPU, cpu_interpolate_bwd);

}  // namespace dl::cpu

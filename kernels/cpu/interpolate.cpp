// CPU interpolate (kernels/interpolate.h). Every mode is separable: per dim, each output index
// reads `k` input indices with weights (nearest 1, bilinear 2, bicubic 4), computed once per
// call. Forward: a horizontal pass into a [h, ow] buffer, then a vertical pass. Backward: the
// transpose of both passes, scattering into the input plane. Planes (n, c) are split across
// threads; each plane is owned by one thread, so the results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/loop.h"
#include "kernels/interpolate.h"

namespace dl::cpu {
namespace {

// Input indices and weights of one dim: output i reads idx[i * k + j] with weight w[i * k + j].
template <class T>
struct Taps {
  int k = 1;
  std::vector<int64_t> idx;
  std::vector<T> w;
};

// torch's area_pixel_compute_scale: the step in input coordinates per output index.
template <class T>
T pixel_scale(int64_t in, int64_t out, bool align_corners, double scale_factor) {
  if (align_corners) return out > 1 ? static_cast<T>(in - 1) / static_cast<T>(out - 1) : T(0);
  return scale_factor > 0.0 ? static_cast<T>(1.0 / scale_factor) : static_cast<T>(in) / static_cast<T>(out);
}

// torch's area_pixel_compute_source_index (the half-pixel product is evaluated in double and
// rounded to T, as the C++ expression there does).
template <class T>
T source_index(T scale, int64_t dst, bool align_corners, bool cubic) {
  if (align_corners) return scale * static_cast<T>(dst);
  const T src = static_cast<T>(static_cast<double>(scale) * (static_cast<double>(dst) + 0.5) - 0.5);
  return !cubic && src < T(0) ? T(0) : src;
}

// Keys' cubic convolution kernel, A = -0.75 (torch's cubic_convolution1/2).
template <class T>
void cubic_coefficients(T t, T c[4]) {
  const T A = T(-0.75);
  auto near = [A](T x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };       // |x| <= 1
  auto far = [A](T x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };  // 1 < |x| < 2
  c[0] = far(t + 1);
  c[1] = near(t);
  c[2] = near(1 - t);
  c[3] = far(2 - t);
}

template <class T>
Taps<T> make_taps(InterpMode mode, int64_t in, int64_t out, bool align_corners, double scale_factor) {
  Taps<T> t;
  t.k = mode == InterpMode::Nearest ? 1 : mode == InterpMode::Bilinear ? 2 : 4;
  t.idx.resize(static_cast<size_t>(out * t.k));
  t.w.resize(static_cast<size_t>(out * t.k));
  for (int64_t i = 0; i < out; ++i) {
    int64_t* idx = &t.idx[static_cast<size_t>(i * t.k)];
    T* w = &t.w[static_cast<size_t>(i * t.k)];
    if (mode == InterpMode::Nearest) {
      // torch's nearest_idx: float arithmetic for every dtype
      w[0] = T(1);
      if (out == in) idx[0] = i;
      else if (out == 2 * in) idx[0] = i >> 1;
      else {
        const float scale = pixel_scale<float>(in, out, false, scale_factor);
        idx[0] = std::min(static_cast<int64_t>(std::floor(static_cast<float>(i) * scale)), in - 1);
      }
    } else if (mode == InterpMode::Bilinear) {
      if (out == in) {  // torch copies
        idx[0] = idx[1] = i;
        w[0] = T(1);
        w[1] = T(0);
        continue;
      }
      const T src = source_index<T>(pixel_scale<T>(in, out, align_corners, scale_factor), i, align_corners, false);
      idx[0] = static_cast<int64_t>(src);
      idx[1] = idx[0] + (idx[0] < in - 1 ? 1 : 0);
      w[1] = std::min(std::max(src - static_cast<T>(idx[0]), T(0)), T(1));
      w[0] = T(1) - w[1];
    } else {
      const T src = source_index<T>(pixel_scale<T>(in, out, align_corners, scale_factor), i, align_corners, true);
      const int64_t i0 = static_cast<int64_t>(std::floor(src));
      cubic_coefficients<T>(src - static_cast<T>(i0), w);
      for (int j = 0; j < 4; ++j) idx[j] = std::min(std::max(i0 - 1 + j, int64_t{0}), in - 1);
    }
  }
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

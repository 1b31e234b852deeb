// Interpolating kernels: resize (torch.nn.functional.interpolate, align_corners=False, no
// antialias) and rotate (torchvision's affine grid + grid_sample), written to give PyTorch
// 1.13's float32 numbers: the same index and weight arithmetic, and fused multiply-adds where PyTorch's
// AVX2 kernels (compiled by GCC, which contracts a * b + c) fuse a multiply-add.
#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

#include "datasets/transforms/kernels.h"

namespace dl::data::fn {
namespace {

// The per-pixel arithmetic, inline (the default x86-64 target has neither an FMA nor a
// rounding instruction, and libm calls per pixel cost more than the interpolation).
//
// a * b + c rounded once to float32, as PyTorch's fused multiply-adds: the product of two
// floats is exact in double and the sum is rounded to double first, which differs from one
// rounding only when that double lands exactly on a float32 rounding midpoint (about once in
// 2^29 operations).
inline float fused(float a, float b, float c) {
  return static_cast<float>(static_cast<double>(a) * static_cast<double>(b) + static_cast<double>(c));
}
constexpr float kNoFraction = 8388608.0f;  // 2^23: floats this large are integers
// Round half to even (torch.round, std::nearbyint in the default rounding mode).
inline float round_even(float v) {
  if (!(std::fabs(v) < kNoFraction)) return v;
  return std::copysign((std::fabs(v) + kNoFraction) - kNoFraction, v);
}
inline float floor_fast(float v) {
  if (!(std::fabs(v) < kNoFraction)) return v;
  auto t = static_cast<float>(static_cast<int32_t>(v));
  return t > v ? t - 1.0f : t;
}

// Pixel load/store: computed in float32; a u8 result is rounded half to even (torch.round)
// and saturated, as torchvision's _cast_squeeze_out.
inline float load(uint8_t v) { return static_cast<float>(v); }
inline float load(float v) { return v; }
template <class T>
T store(float v);
template <>
inline float store<float>(float v) {
  return v;
}
template <>
inline uint8_t store<uint8_t>(float v) {
  return static_cast<uint8_t>(round_even(std::clamp(v, 0.0f, 255.0f)));
}

// A view of the source planes: a crop window of the image (resized_crop reads it in place).
template <class T>
struct Planes {
  const T* data;                 // first pixel of the window in channel 0
  int64_t channels, plane, row;  // plane and row strides in elements
};

// ---- nearest: upsample_nearest2d's source index (float scale, floorf) ------------------------
AxisMap nearest_axis(int64_t in, int64_t out, int64_t offset) {
  AxisMap m(static_cast<size_t>(out));
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int64_t o = 0; o < out; ++o) {
    int64_t s = in == out       ? o
                : out == 2 * in ? (o >> 1)
                                : std::min(static_cast<int64_t>(std::floor(static_cast<float>(o) * scale)), in - 1);
    m[static_cast<size_t>(o)] = offset + s;
  }
  return m;
}

// ---- bilinear: upsample_bilinear2d's indices and weights -------------------------------------
struct LinearAxis {
  std::vector<int64_t> i0, i1;
  std::vector<float> w0, w1;
};

LinearAxis linear_axis(int64_t in, int64_t out) {
  LinearAxis a;
  a.i0.resize(static_cast<size_t>(out));
  a.i1.resize(static_cast<size_t>(out));
  a.w0.resize(static_cast<size_t>(out));
  a.w1.resize(static_cast<size_t>(out));
  // The scale is float32; the source coordinate is computed in double from it.
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int64_t o = 0; o < out; ++o) {
    auto k = static_cast<size_t>(o);
    if (in == out) {
      a.i0[k] = a.i1[k] = o;
      a.w0[k] = 1.0f;
      a.w1[k] = 0.0f;
      continue;
    }
    double src = std::max(static_cast<double>(scale) * (static_cast<double>(o) + 0.5) - 0.5, 0.0);
    int64_t i0 = std::min(static_cast<int64_t>(src), in - 1);
    double l1 = src - static_cast<double>(i0);
    a.i0[k] = i0;
    a.i1[k] = i0 + (i0 < in - 1 ? 1 : 0);
    a.w1[k] = static_cast<float>(l1);
    a.w0[k] = static_cast<float>(1.0 - l1);
  }
  return a;
}

template <class T>
void bilinear(const Planes<T>& in, const LinearAxis& ya, const LinearAxis& xa, T* out) {
  const size_t oh = ya.i0.size(), ow = xa.i0.size();
  for (int64_t c = 0; c < in.channels; ++c) {
    const T* p = in.data + c * in.plane;
    for (size_t y = 0; y < oh; ++y) {
      const T* r0 = p + ya.i0[y] * in.row;
      const T* r1 = p + ya.i1[y] * in.row;
      const float h0 = ya.w0[y], h1 = ya.w1[y];
      for (size_t x = 0; x < ow; ++x) {
        const int64_t x0 = xa.i0[x], x1 = xa.i1[x];
        const float w0 = xa.w0[x], w1 = xa.w1[x];
        float top = fused(load(r0[x0]), w0, load(r0[x1]) * w1);
        float bottom = fused(load(r1[x0]), w0, load(r1[x1]) * w1);
        *out++ = store<T>(fused(top, h0, bottom * h1));
      }
    }
  }
}

// ---- bicubic: upsample_bicubic2d (A = -0.75, borders replicated) -----------------------------
// Matches PyTorch's float32 results to a few ulp (its exact rounding order is not reproduced).
struct CubicAxis {
  std::vector<std::array<int64_t, 4>> idx;
  std::vector<std::array<float, 4>> w;
};

float cubic1(float x, float a) { return ((a + 2) * x - (a + 3)) * x * x + 1; }        // |x| <= 1
float cubic2(float x, float a) { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a; }  // 1 < |x| < 2

CubicAxis cubic_axis(int64_t in, int64_t out) {
  CubicAxis a;
  a.idx.resize(static_cast<size_t>(out));
  a.w.resize(static_cast<size_t>(out));
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  const float A = -0.75f;
  for (int64_t o = 0; o < out; ++o) {
    auto k = static_cast<size_t>(o);
    double src = static_cast<double>(scale) * (static_cast<double>(o) + 0.5) - 0.5;
    auto i0 = static_cast<int64_t>(std::floor(static_cast<float>(src)));
    auto t = static_cast<float>(src - static_cast<double>(i0));
    a.w[k] = {cubic2(t + 1.0f, A), cubic1(t, A), cubic1(1.0f - t, A), cubic2(2.0f - t, A)};
    for (int64_t j = 0; j < 4; ++j) a.idx[k][static_cast<size_t>(j)] = std::clamp<int64_t>(i0 - 1 + j, 0, in - 1);
  }
  return a;
}

template <class T>
void bicubic(const Planes<T>& in, const CubicAxis& ya, const CubicAxis& xa, T* out) {
  const size_t oh = ya.idx.size(), ow = xa.idx.size();
  for (int64_t c = 0; c < in.channels; ++c) {
    const T* p = in.data + c * in.plane;
    for (size_t y = 0; y < oh; ++y) {
      for (size_t x = 0; x < ow; ++x) {
        float v = 0.0f;
        for (size_t i = 0; i < 4; ++i) {
          const T* r = p + ya.idx[y][i] * in.row;
          float row = 0.0f;
          for (size_t j = 0; j < 4; ++j) row += load(r[xa.idx[x][j]]) * xa.w[x][j];
          v += row * ya.w[y][i];
        }
        // torchvision clamps a u8 image's bicubic result to [0, 255] before rounding.
        *out++ = store<T>(v);
      }
    }
  }
}

template <class T>
void resize_planes(const Planes<T>& in, int64_t h, int64_t w, int64_t oh, int64_t ow, Interp mode, T* out) {
  if (mode == Interp::Bilinear) {
    bilinear(in, linear_axis(h, oh), linear_axis(w, ow), out);
  } else {
    bicubic(in, cubic_axis(h, oh), cubic_axis(w, ow), out);
  }
}

}  // namespace

Tensor resized_crop(const Tensor& x, int64_t top, int64_t left, int64_t height, int64_t width, int64_t out_h,
                    int64_t out_w, Interp mode) {
  check_image(x, "resized_crop");
  const int64_t c = x.size(0), h = x.size(1), w = x.size(2);
  if (top < 0 || left < 0 || height <= 0 || width <= 0 || top + height > h || left + width > w)
    throw std::invalid_argument("resized_crop: the box (top " + std::to_string(top) + ", left " + std::to_string(left) +
                                ", " + std::to_string(height) + " x " + std::to_string(width) +
                                ") is not inside the image (" + std::to_string(h) + " x " + std::to_string(w) + ")");
  if (out_h <= 0 || out_w <= 0)
    throw std::invalid_argument("resize: the output size must be >= 1, got [" + std::to_string(out_h) + ", " +
                                std::to_string(out_w) + "]");
  if (mode == Interp::Nearest) return remap(x, nearest_axis(height, out_h, top), nearest_axis(width, out_w, left));
  // torchvision returns the image itself when the size does not change (no interpolation).
  if (height == out_h && width == out_w) return crop(x, top, left, height, width);
  Tensor out = empty({c, out_h, out_w}, x.dtype());
  if (x.dtype() == DType::U8) {
    Planes<uint8_t> in{x.data<uint8_t>() + top * w + left, c, h * w, w};
    resize_planes(in, height, width, out_h, out_w, mode, out.data<uint8_t>());
  } else {
    Planes<float> in{x.data<float>() + top * w + left, c, h * w, w};
    resize_planes(in, height, width, out_h, out_w, mode, out.data<float>());
  }
  return out;
}

Tensor resize(const Tensor& x, int64_t out_h, int64_t out_w, Interp mode) {
  check_image(x, "resize");
  if (x.size(1) == out_h && x.size(2) == out_w) return x;
  return resized_crop(x, 0, 0, x.size(1), x.size(2), out_h, out_w, mode);
}

// ---- rotate ---------------------------------------------------------------------------------
namespace {

// torchvision's _get_inverse_affine_matrix(center, -angle, translate 0, scale 1, shear 0), in
// double as Python computes it: the map from output pixel to input pixel, both relative to the
// image centre.
std::array<double, 6> inverse_rotation(double angle, double cx, double cy) {
  const double rot = -angle * (std::numbers::pi / 180.0);  // math.radians
  const double a = std::cos(rot), b = -std::sin(rot), c = std::sin(rot), d = std::cos(rot);
  std::array<double, 6> m{d, -b, 0.0, -c, a, 0.0};
  m[2] += m[0] * -cx + m[1] * -cy;
  m[5] += m[3] * -cx + m[4] * -cy;
  m[2] += cx;
  m[5] += cy;
  return m;
}

// Centre relative to the image centre (F.rotate's center_f).
std::pair<double, double> centre_offset(int64_t h, int64_t w, std::optional<std::pair<double, double>> center) {
  if (!center) return {0.0, 0.0};
  return {center->first - static_cast<double>(w) * 0.5, center->second - static_cast<double>(h) * 0.5};
}

// _compute_affine_output_size in float32: the bounding box of the rotated corners, with the
// corners' coordinates truncated to 1e-4 before ceil/floor.
std::pair<int64_t, int64_t> affine_output_size(const std::array<double, 6>& m, int64_t h, int64_t w) {
  std::array<float, 6> t{};
  for (size_t k = 0; k < 6; ++k) t[k] = static_cast<float>(m[k]);
  const float hw = 0.5f * static_cast<float>(w), hh = 0.5f * static_cast<float>(h);
  const float px[4] = {-hw, -hw, hw, hw}, py[4] = {-hh, hh, hh, -hh};
  float lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
  for (int k = 0; k < 4; ++k) {
    float v[2] = {px[k] * t[0] + py[k] * t[1] + t[2], px[k] * t[3] + py[k] * t[4] + t[5]};
    for (int d = 0; d < 2; ++d) {
      lo[d] = std::min(lo[d], v[d]);
      hi[d] = std::max(hi[d], v[d]);
    }
  }
  const float tol = 1e-4f, shift[2] = {hw, hh};
  int64_t size[2];
  for (int d = 0; d < 2; ++d) {
    float cmax = std::ceil(std::trunc((hi[d] + shift[d]) / tol) * tol);
    float cmin = std::floor(std::trunc((lo[d] + shift[d]) / tol) * tol);
    size[d] = static_cast<int64_t>(cmax - cmin);
  }
  return {size[1], size[0]};
}

// grid_sample(align_corners=False, padding zeros) of the affine grid, then torchvision's fill:
// a ones channel sampled alongside says how much of each output pixel came from inside.
template <class T>
void rotate_planes(const T* in, int64_t channels, int64_t h, int64_t w, int64_t oh, int64_t ow,
                   const std::array<double, 6>& m, Interp mode, const std::vector<float>& fill, T* out) {
  // _gen_affine_grid: theta in float32, divided by half the input size.
  const float sx = static_cast<float>(0.5 * static_cast<double>(w)),
              sy = static_cast<float>(0.5 * static_cast<double>(h));
  const float r00 = static_cast<float>(m[0]) / sx, r10 = static_cast<float>(m[1]) / sx,
              r20 = static_cast<float>(m[2]) / sx;
  const float r01 = static_cast<float>(m[3]) / sy, r11 = static_cast<float>(m[4]) / sy,
              r21 = static_cast<float>(m[5]) / sy;
  // grid_sample's unnormalize: (g + 1) * size / 2 - 0.5 (fused in PyTorch's AVX2 kernel).
  const float ux = static_cast<float>(w) / 2, uy = static_cast<float>(h) / 2;
  const int64_t plane = oh * ow;
  auto at = [&](int64_t c, int64_t y, int64_t x) { return load(in[(c * h + y) * w + x]); };
  auto inside = [&](int64_t y, int64_t x) { return y >= 0 && y < h && x >= 0 && x < w; };
  for (int64_t oy = 0; oy < oh; ++oy) {
    const float by = static_cast<float>(-static_cast<double>(oh) * 0.5 + 0.5 + static_cast<double>(oy));
    for (int64_t ox = 0; ox < ow; ++ox) {
      const float bx = static_cast<float>(-static_cast<double>(ow) * 0.5 + 0.5 + static_cast<double>(ox));
      const float gx = bx * r00 + by * r10 + r20, gy = bx * r01 + by * r11 + r21;
      const float ix = fused(gx + 1.0f, ux, -0.5f), iy = fused(gy + 1.0f, uy, -0.5f);
      T* o = out + oy * ow + ox;
      if (mode == Interp::Nearest) {
        const auto xi = static_cast<int64_t>(round_even(ix)), yi = static_cast<int64_t>(round_even(iy));
        const bool ok = inside(yi, xi);
        for (int64_t c = 0; c < channels; ++c)
          o[c * plane] = store<T>(ok ? at(c, yi, xi) : fill[static_cast<size_t>(c)]);
        continue;
      }
      const float fx = floor_fast(ix), fy = floor_fast(iy);
      const float we = ix - fx, ww = 1.0f - we, ws = iy - fy, wn = 1.0f - ws;
      const float nw = wn * ww, ne = wn * we, sw = ws * ww, se = ws * we;
      const auto x0 = static_cast<int64_t>(fx), y0 = static_cast<int64_t>(fy);
      const bool in_nw = inside(y0, x0), in_ne = inside(y0, x0 + 1), in_sw = inside(y0 + 1, x0),
                 in_se = inside(y0 + 1, x0 + 1);
      // (nw_val * nw) + (ne_val * ne) + (sw_val * sw) + (se_val * se), as GCC fuses it.
      auto blend = [&](float vnw, float vne, float vsw, float vse) {
        return fused(vse, se, fused(vsw, sw, fused(vne, ne, vnw * nw)));
      };
      const float mask = blend(in_nw, in_ne, in_sw, in_se);
      for (int64_t c = 0; c < channels; ++c) {
        float v = blend(in_nw ? at(c, y0, x0) : 0.0f, in_ne ? at(c, y0, x0 + 1) : 0.0f,
                        in_sw ? at(c, y0 + 1, x0) : 0.0f, in_se ? at(c, y0 + 1, x0 + 1) : 0.0f);
        // img * mask + (1 - mask) * fill (separate tensor ops in torchvision: no fusion).
        const float kept = v * mask, filled = (1.0f - mask) * fill[static_cast<size_t>(c)];
        o[c * plane] = store<T>(kept + filled);
      }
    }
  }
}

}  // namespace

std::pair<int64_t, int64_t> rotated_size(int64_t h, int64_t w, double angle,
                                         std::optional<std::pair<double, double>> center) {
  auto [cx, cy] = centre_offset(h, w, center);
  return affine_output_size(inverse_rotation(angle, cx, cy), h, w);
}

Tensor rotate(const Tensor& x, double angle, Interp mode, bool expand, std::optional<std::pair<double, double>> center,
              const std::vector<double>& fill) {
  check_image(x, "rotate");
  if (mode == Interp::Bicubic) throw std::invalid_argument("rotate: interpolation must be 'nearest' or 'bilinear'");
  if (!std::isfinite(angle))
    throw std::invalid_argument("rotate: the angle must be finite, got " + std::to_string(angle));
  const int64_t c = x.size(0), h = x.size(1), w = x.size(2);
  if (fill.size() != 1 && static_cast<int64_t>(fill.size()) != c)
    throw std::invalid_argument("rotate: fill has " + std::to_string(fill.size()) + " values for " + std::to_string(c) +
                                " channel(s) (give 1 or " + std::to_string(c) + ")");
  std::vector<float> fill_c(static_cast<size_t>(c));
  for (int64_t k = 0; k < c; ++k)
    fill_c[static_cast<size_t>(k)] = static_cast<float>(fill.size() == 1 ? fill[0] : fill[static_cast<size_t>(k)]);
  auto [cx, cy] = centre_offset(h, w, center);
  const auto m = inverse_rotation(angle, cx, cy);
  auto [oh, ow] = expand ? affine_output_size(m, h, w) : std::pair{h, w};
  Tensor out = empty({c, oh, ow}, x.dtype());
  if (x.dtype() == DType::U8)
    rotate_planes(x.data<uint8_t>(), c, h, w, oh, ow, m, mode, fill_c, out.data<uint8_t>());
  else
    rotate_planes(x.data<float>(), c, h, w, oh, ow, m, mode, fill_c, out.data<float>());
  return out;
}

}  // namespace dl::data::fn

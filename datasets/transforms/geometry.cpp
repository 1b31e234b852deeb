// Geometric transforms (torchvision names, arguments and defaults): resize, center_crop, pad,
// random_crop, random_resized_crop, random_horizontal_flip, random_vertical_flip,
// random_rotation. Crops, pads and flips are index maps applied in one pass (fn::remap); the
// interpolating kernels are in interpolate.cpp.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "datasets/transforms.h"
#include "datasets/transforms/kernels.h"

namespace dl::data::fn {

Interp parse_interp(std::string_view name) {
  if (name == "nearest") return Interp::Nearest;
  if (name == "bilinear") return Interp::Bilinear;
  if (name == "bicubic") return Interp::Bicubic;
  throw std::invalid_argument("interpolation must be 'nearest', 'bilinear' or 'bicubic', got '" + std::string(name) +
                              "'");
}

PadMode parse_pad_mode(std::string_view name) {
  if (name == "constant") return PadMode::Constant;
  if (name == "edge") return PadMode::Edge;
  if (name == "reflect") return PadMode::Reflect;
  if (name == "symmetric") return PadMode::Symmetric;
  throw std::invalid_argument("padding_mode must be 'constant', 'edge', 'reflect' or 'symmetric', got '" +
                              std::string(name) + "'");
}

void check_image(const Tensor& x, const char* what) {
  auto fail = [&](const std::string& why) { throw std::invalid_argument(std::string(what) + ": " + why); };
  if (!x.defined()) fail("expected an image [C, H, W], got an undefined tensor");
  if (x.dim() != 3) fail("expected an image [C, H, W], got shape " + shape_str(x.shape()));
  if (!x.device().is_cpu()) fail("expected an image on the cpu, got " + x.str());
  if (x.dtype() != DType::U8 && x.dtype() != DType::F32)
    fail(std::string("expected uint8 or float32 pixels, got ") + dtype_name(x.dtype()));
  if (!x.is_contiguous()) fail("expected a contiguous image");
}

namespace {

AxisMap iota_map(int64_t n) {
  AxisMap m(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) m[static_cast<size_t>(i)] = i;
  return m;
}

// Entries start .. start+len-1 of `m`; outside it -1 (fill), as F.crop reads zeros there.
AxisMap window(const AxisMap& m, int64_t start, int64_t len) {
  AxisMap out(static_cast<size_t>(len));
  const auto n = static_cast<int64_t>(m.size());
  for (int64_t i = 0; i < len; ++i) {
    int64_t j = start + i;
    out[static_cast<size_t>(i)] = (j >= 0 && j < n) ? m[static_cast<size_t>(j)] : -1;
  }
  return out;
}

// `m` with `before` and `after` entries added in `mode` (torch.nn.functional.pad's modes, and
// torchvision's symmetric). `axis` ("width") names the dimension in the error.
AxisMap padded(const AxisMap& m, int64_t before, int64_t after, PadMode mode, const char* axis) {
  const auto n = static_cast<int64_t>(m.size());
  if (before < 0 || after < 0)
    throw std::invalid_argument("pad: padding must be >= 0, got " + std::to_string(std::min(before, after)));
  const int64_t most = std::max(before, after);
  auto refuse = [&](const char* mode_name, const char* bound) {
    throw std::invalid_argument(std::string("pad: padding_mode '") + mode_name + "' needs padding " + bound + " the " +
                                axis + " (" + std::to_string(n) + "), got " + std::to_string(most));
  };
  if (most > 0) {
    if (mode == PadMode::Reflect && most >= n) refuse("reflect", "smaller than");
    if (mode == PadMode::Symmetric && most > n) refuse("symmetric", "at most");
    if (mode == PadMode::Edge && n == 0)
      throw std::invalid_argument(std::string("pad: padding_mode 'edge' cannot pad an empty ") + axis);
  }
  AxisMap out(static_cast<size_t>(n + before + after));
  for (int64_t o = 0; o < n + before + after; ++o) {
    int64_t i = o - before;
    if (i < 0 || i >= n) {
      switch (mode) {
        case PadMode::Constant: i = -1; break;
        case PadMode::Edge: i = i < 0 ? 0 : n - 1; break;
        case PadMode::Reflect: i = i < 0 ? -i : 2 * (n - 1) - i; break;
        case PadMode::Symmetric: i = i < 0 ? -i - 1 : 2 * n - 1 - i; break;
      }
    }
    out[static_cast<size_t>(o)] = i < 0 ? -1 : m[static_cast<size_t>(i)];
  }
  return out;
}

// torchvision's padding list -> {left, top, right, bottom}.
std::array<int64_t, 4> ltrb(const std::vector<int64_t>& p) {
  for (int64_t v : p)
    if (v < 0) throw std::invalid_argument("pad: padding must be >= 0, got " + std::to_string(v));
  if (p.size() == 1) return {p[0], p[0], p[0], p[0]};
  if (p.size() == 2) return {p[0], p[1], p[0], p[1]};
  if (p.size() == 4) return {p[0], p[1], p[2], p[3]};
  throw std::invalid_argument("pad: padding must have 1, 2 or 4 values, got " + std::to_string(p.size()));
}

// A row's columns as runs: `len` outputs from `out` read src, src+1, ... (Forward),
// src, src-1, ... (Reverse) or the fill. Crops, pads and flips are a few runs; a map with
// repeats (nearest upscaling) is Gathered pixel by pixel.
struct Run {
  enum Kind { Forward, Reverse, Fill } kind;
  int64_t out, src, len;
};

std::vector<Run> column_runs(const AxisMap& cols) {
  std::vector<Run> runs;
  const auto n = static_cast<int64_t>(cols.size());
  for (int64_t x = 0; x < n;) {
    const int64_t s = cols[static_cast<size_t>(x)];
    Run r{s < 0 ? Run::Fill : Run::Forward, x, s, 1};
    if (s >= 0 && x + 1 < n && cols[static_cast<size_t>(x + 1)] == s - 1) r.kind = Run::Reverse;
    const int64_t step = r.kind == Run::Reverse ? -1 : 1;
    while (x + r.len < n) {
      const int64_t next = cols[static_cast<size_t>(x + r.len)];
      if (r.kind == Run::Fill ? next >= 0 : next != s + step * r.len) break;
      ++r.len;
    }
    runs.push_back(r);
    x += r.len;
  }
  return runs;
}

// out[i] = last[-i] for i < n. Bytes go 8 at a time (a byte swap), as the compiler does not
// vectorise a reversed byte copy without SSSE3.
template <class T>
void reverse_row(const T* last, int64_t n, T* out) {
  int64_t i = 0;
  if constexpr (sizeof(T) == 1) {
    for (; i + 8 <= n; i += 8) {
      uint64_t v;
      std::memcpy(&v, last - i - 7, 8);
      v = __builtin_bswap64(v);
      std::memcpy(out + i, &v, 8);
    }
  }
  for (; i < n; ++i) out[i] = last[-i];
}

template <class T>
void remap_planes(const T* in, int64_t channels, int64_t h, int64_t w, const AxisMap& rows, const AxisMap& cols, T fill,
                  T* out) {
  const auto ow = static_cast<int64_t>(cols.size());
  const std::vector<Run> runs = column_runs(cols);
  const bool gather = static_cast<int64_t>(runs.size()) * 4 > ow;  // mostly single pixels
  for (int64_t c = 0; c < channels; ++c) {
    const T* plane = in + c * h * w;
    for (int64_t r : rows) {
      const T* src = r < 0 ? nullptr : plane + r * w;
      if (r < 0) {
        std::fill(out, out + ow, fill);
      } else if (gather) {
        for (int64_t x = 0; x < ow; ++x) {
          int64_t s = cols[static_cast<size_t>(x)];
          out[x] = s < 0 ? fill : src[s];
        }
      } else {
        for (const Run& run : runs) {
          T* o = out + run.out;
          if (run.kind == Run::Fill)
            std::fill(o, o + run.len, fill);
          else if (run.kind == Run::Forward)
            std::memcpy(o, src + run.src, static_cast<size_t>(run.len) * sizeof(T));
          else
            reverse_row(src + run.src, run.len, o);
        }
      }
      out += ow;
    }
  }
}

}  // namespace

Tensor remap(const Tensor& x, const AxisMap& rows, const AxisMap& cols, double fill) {
  const int64_t c = x.size(0), h = x.size(1), w = x.size(2);
  Tensor out = empty({c, static_cast<int64_t>(rows.size()), static_cast<int64_t>(cols.size())}, x.dtype());
  if (x.dtype() == DType::U8) {
    // torch converts the fill to the image's dtype (truncating); out-of-range values saturate here.
    auto f = static_cast<uint8_t>(std::clamp(std::trunc(fill), 0.0, 255.0));
    remap_planes(x.data<uint8_t>(), c, h, w, rows, cols, f, out.data<uint8_t>());
  } else {
    remap_planes(x.data<float>(), c, h, w, rows, cols, static_cast<float>(fill), out.data<float>());
  }
  return out;
}

Tensor crop(const Tensor& x, int64_t top, int64_t left, int64_t height, int64_t width) {
  check_image(x, "crop");
  if (height < 0 || width < 0)
    throw std::invalid_argument("crop: height and width must be >= 0, got " + std::to_string(height) + " x " +
                                std::to_string(width));
  return remap(x, window(iota_map(x.size(1)), top, height), window(iota_map(x.size(2)), left, width));
}

namespace {
// F.center_crop along one axis: pad with zeros when the crop is larger, then the central window
// (top = round((n - len) / 2), Python's round: half to even).
AxisMap center_axis(int64_t n, int64_t len, const char* axis) {
  AxisMap m = iota_map(n);
  if (len > n) m = padded(m, (len - n) / 2, (len - n + 1) / 2, PadMode::Constant, axis);
  auto start = static_cast<int64_t>(std::nearbyint(static_cast<double>(static_cast<int64_t>(m.size()) - len) / 2.0));
  return window(m, start, len);
}
}  // namespace

Tensor center_crop(const Tensor& x, int64_t height, int64_t width) {
  check_image(x, "center_crop");
  if (height <= 0 || width <= 0)
    throw std::invalid_argument("center_crop: size must be >= 1, got [" + std::to_string(height) + ", " +
                                std::to_string(width) + "]");
  return remap(x, center_axis(x.size(1), height, "height"), center_axis(x.size(2), width, "width"));
}

Tensor pad(const Tensor& x, const std::vector<int64_t>& padding, double fill, PadMode mode) {
  check_image(x, "pad");
  auto p = ltrb(padding);
  return remap(x, padded(iota_map(x.size(1)), p[1], p[3], mode, "height"),
               padded(iota_map(x.size(2)), p[0], p[2], mode, "width"), fill);
}

Tensor hflip(const Tensor& x) {
  check_image(x, "hflip");
  AxisMap cols = iota_map(x.size(2));
  std::reverse(cols.begin(), cols.end());
  return remap(x, iota_map(x.size(1)), cols);
}

Tensor vflip(const Tensor& x) {
  check_image(x, "vflip");
  AxisMap rows = iota_map(x.size(1));
  std::reverse(rows.begin(), rows.end());
  return remap(x, rows, iota_map(x.size(2)));
}

std::pair<int64_t, int64_t> resized_size(int64_t h, int64_t w, const std::vector<int64_t>& size, int64_t max_size) {
  if (size.size() == 2) {
    if (max_size > 0)
      throw std::invalid_argument("resize: max_size is only allowed when size is a single value (the shorter side)");
    return {size[0], size[1]};
  }
  if (size.size() != 1)
    throw std::invalid_argument("resize: size must have 1 or 2 values, got " + std::to_string(size.size()));
  const int64_t shorter = std::min(h, w), longer = std::max(h, w);
  if (shorter <= 0) throw std::invalid_argument("resize: cannot resize an empty image");
  int64_t new_short = size[0];
  // Python's int(requested * long / short): true division, then truncation.
  auto new_long = static_cast<int64_t>(static_cast<double>(new_short * longer) / static_cast<double>(shorter));
  if (max_size > 0) {
    if (max_size <= new_short)
      throw std::invalid_argument(
          "resize: max_size = " + std::to_string(max_size) +
          " must be strictly greater than the requested size for the smaller edge size = " + std::to_string(new_short));
    if (new_long > max_size) {
      new_short = static_cast<int64_t>(static_cast<double>(max_size * new_short) / static_cast<double>(new_long));
      new_long = max_size;
    }
  }
  return w <= h ? std::pair{new_long, new_short} : std::pair{new_short, new_long};
}

int64_t randint(Generator& rng, int64_t n) {
  if (n <= 0) throw std::invalid_argument("randint: n must be >= 1, got " + std::to_string(n));
  return static_cast<int64_t>(rng.next_u64() % static_cast<uint64_t>(n));
}

double uniform(Generator& rng, double low, double high) { return low + (high - low) * rng.next_double(); }

Box random_crop_box(int64_t h, int64_t w, int64_t th, int64_t tw, Generator& rng) {
  if (h < th || w < tw)
    throw std::invalid_argument("random_crop: required crop size (" + std::to_string(th) + ", " + std::to_string(tw) +
                                ") is larger than input image size (" + std::to_string(h) + ", " + std::to_string(w) +
                                ")");
  if (h == th && w == tw) return {0, 0, h, w};
  int64_t top = randint(rng, h - th + 1);
  int64_t left = randint(rng, w - tw + 1);
  return {top, left, th, tw};
}

Box random_resized_crop_box(int64_t h, int64_t w, const std::vector<double>& scale, const std::vector<double>& ratio,
                            Generator& rng) {
  const double area = static_cast<double>(h * w);
  const double log_lo = std::log(ratio[0]), log_hi = std::log(ratio[1]);
  for (int attempt = 0; attempt < 10; ++attempt) {
    double target_area = area * uniform(rng, scale[0], scale[1]);
    double aspect = std::exp(uniform(rng, log_lo, log_hi));
    // Python's round(): half to even.
    auto cw = static_cast<int64_t>(std::nearbyint(std::sqrt(target_area * aspect)));
    auto ch = static_cast<int64_t>(std::nearbyint(std::sqrt(target_area / aspect)));
    if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
      int64_t top = randint(rng, h - ch + 1);
      int64_t left = randint(rng, w - cw + 1);
      return {top, left, ch, cw};
    }
  }
  // Central crop with the aspect ratio clamped to `ratio`.
  const double in_ratio = static_cast<double>(w) / static_cast<double>(h);
  int64_t cw = w, ch = h;
  if (in_ratio < ratio[0]) {
    ch = static_cast<int64_t>(std::nearbyint(static_cast<double>(w) / ratio[0]));
  } else if (in_ratio > ratio[1]) {
    cw = static_cast<int64_t>(std::nearbyint(static_cast<double>(h) * ratio[1]));
  }
  return {(h - ch) / 2, (w - cw) / 2, ch, cw};
}

}  // namespace dl::data::fn

// ---- the registered transforms --------------------------------------------------------------
namespace dl::data {
namespace {

using A = AttrSchema;
using fn::AxisMap;

void check_shape(const Shape& in, const char* what) {
  if (in.size() != 3)
    throw std::invalid_argument(std::string(what) + ": expected an image [C, H, W], got shape " + shape_str(in));
}

const std::vector<std::string> kInterpolations = {"nearest", "bilinear", "bicubic"};
const std::vector<std::string> kPadModes = {"constant", "edge", "reflect", "symmetric"};

A padding_attr() {
  return A::int_list("padding")
      .check(
          [](const AttrValue& v) {
            const auto& p = std::get<std::vector<int64_t>>(v);
            bool ok = p.size() == 1 || p.size() == 2 || p.size() == 4;
            for (int64_t x : p) ok = ok && x >= 0;
            return ok ? std::string() : std::string("bad");
          },
          "an integer or 1, 2 or 4 integers >= 0 (all sides; [left/right, top/bottom]; [left, top, right, bottom])")
      .describe("pixels added: one value for all sides, [left/right, top/bottom] or [left, top, right, bottom]");
}
A fill_attr() {
  return A::floating("fill", 0.0).describe("value of constant padding, in the image's units (0..255 before to_float)");
}
A padding_mode_attr() {
  return A::choice("padding_mode", kPadModes, "constant")
      .describe("constant (fill), edge (repeat the border), reflect (mirror without the border), symmetric (with it)");
}

class Resize final : public Transform {
 public:
  Resize(std::vector<int64_t> size, fn::Interp mode, int64_t max_size)
      : size_(std::move(size)), mode_(mode), max_size_(max_size) {}
  Tensor apply(const Tensor& x, Generator&) const override {
    fn::check_image(x, "resize");
    auto [h, w] = fn::resized_size(x.size(1), x.size(2), size_, max_size_);
    return fn::resize(x, h, w, mode_);
  }
  Shape out_shape(const Shape& in) const override {
    check_shape(in, "resize");
    auto [h, w] = fn::resized_size(in[1], in[2], size_, max_size_);
    return {in[0], h, w};
  }

 private:
  std::vector<int64_t> size_;
  fn::Interp mode_;
  int64_t max_size_;
};

class CenterCrop final : public Transform {
 public:
  CenterCrop(int64_t h, int64_t w) : h_(h), w_(w) {}
  Tensor apply(const Tensor& x, Generator&) const override { return fn::center_crop(x, h_, w_); }
  Shape out_shape(const Shape& in) const override {
    check_shape(in, "center_crop");
    return {in[0], h_, w_};
  }

 private:
  int64_t h_, w_;
};

// pad and random_crop: the padded index maps of an h x w image.
struct PaddedMaps {
  AxisMap rows, cols;
};
PaddedMaps pad_maps(int64_t h, int64_t w, const std::vector<int64_t>& padding, fn::PadMode mode) {
  PaddedMaps m{fn::iota_map(h), fn::iota_map(w)};
  if (padding.empty()) return m;
  auto p = fn::ltrb(padding);
  return {fn::padded(m.rows, p[1], p[3], mode, "height"), fn::padded(m.cols, p[0], p[2], mode, "width")};
}

class Pad final : public Transform {
 public:
  Pad(std::vector<int64_t> padding, double fill, fn::PadMode mode)
      : padding_(std::move(padding)), fill_(fill), mode_(mode) {}
  Tensor apply(const Tensor& x, Generator&) const override {
    fn::check_image(x, "pad");
    auto m = pad_maps(x.size(1), x.size(2), padding_, mode_);
    return fn::remap(x, m.rows, m.cols, fill_);
  }
  Shape out_shape(const Shape& in) const override {
    check_shape(in, "pad");
    auto m = pad_maps(in[1], in[2], padding_, mode_);
    return {in[0], static_cast<int64_t>(m.rows.size()), static_cast<int64_t>(m.cols.size())};
  }

 private:
  std::vector<int64_t> padding_;
  double fill_;
  fn::PadMode mode_;
};

class RandomCrop final : public Transform {
 public:
  RandomCrop(int64_t h, int64_t w, std::vector<int64_t> padding, bool pad_if_needed, double fill, fn::PadMode mode)
      : h_(h), w_(w), padding_(std::move(padding)), pad_if_needed_(pad_if_needed), fill_(fill), mode_(mode) {}
  Tensor apply(const Tensor& x, Generator& rng) const override {
    fn::check_image(x, "random_crop");
    auto m = plan(x.size(1), x.size(2));
    auto box =
        fn::random_crop_box(static_cast<int64_t>(m.rows.size()), static_cast<int64_t>(m.cols.size()), h_, w_, rng);
    return fn::remap(x, fn::window(m.rows, box.top, h_), fn::window(m.cols, box.left, w_), fill_);
  }
  Shape out_shape(const Shape& in) const override {
    check_shape(in, "random_crop");
    plan(in[1], in[2]);
    return {in[0], h_, w_};
  }

 private:
  // RandomCrop.forward: `padding` first, then (pad_if_needed) both sides of a dimension still
  // smaller than the crop by the whole difference, as torchvision does.
  PaddedMaps plan(int64_t h, int64_t w) const {
    PaddedMaps m = pad_maps(h, w, padding_, mode_);
    const auto ph = static_cast<int64_t>(m.rows.size()), pw = static_cast<int64_t>(m.cols.size());
    if (pad_if_needed_ && pw < w_) m.cols = fn::padded(m.cols, w_ - pw, w_ - pw, mode_, "width");
    if (pad_if_needed_ && ph < h_) m.rows = fn::padded(m.rows, h_ - ph, h_ - ph, mode_, "height");
    const auto rh = static_cast<int64_t>(m.rows.size()), rw = static_cast<int64_t>(m.cols.size());
    if (rh < h_ || rw < w_)
      throw std::invalid_argument("random_crop: required crop size (" + std::to_string(h_) + ", " + std::to_string(w_) +
                                  ") is larger than input image size (" + std::to_string(rh) + ", " +
                                  std::to_string(rw) + ")" + (padding_.empty() ? "" : " after padding") +
                                  "; set pad_if_needed: true or a smaller size");
    return m;
  }
  int64_t h_, w_;
  std::vector<int64_t> padding_;
  bool pad_if_needed_;
  double fill_;
  fn::PadMode mode_;
};

class RandomResizedCrop final : public Transform {
 public:
  RandomResizedCrop(int64_t h, int64_t w, std::vector<double> scale, std::vector<double> ratio, fn::Interp mode)
      : h_(h), w_(w), scale_(std::move(scale)), ratio_(std::move(ratio)), mode_(mode) {}
  Tensor apply(const Tensor& x, Generator& rng) const override {
    fn::check_image(x, "random_resized_crop");
    out_shape(x.shape());
    auto b = fn::random_resized_crop_box(x.size(1), x.size(2), scale_, ratio_, rng);
    return fn::resized_crop(x, b.top, b.left, b.height, b.width, h_, w_, mode_);
  }
  Shape out_shape(const Shape& in) const override {
    check_shape(in, "random_resized_crop");
    if (in[1] <= 0 || in[2] <= 0)
      throw std::invalid_argument("random_resized_crop: the image is empty (" + shape_str(in) + ")");
    return {in[0], h_, w_};
  }

 private:
  int64_t h_, w_;
  std::vector<double> scale_, ratio_;
  fn::Interp mode_;
};

class RandomFlip final : public Transform {
 public:
  RandomFlip(bool horizontal, double p) : horizontal_(horizontal), p_(p) {}
  // One draw per sample whatever p is (torch.rand(1) < p), so p does not shift the stream.
  Tensor apply(const Tensor& x, Generator& rng) const override {
    fn::check_image(x, horizontal_ ? "random_horizontal_flip" : "random_vertical_flip");
    if (rng.next_double() >= p_) return x;
    return horizontal_ ? fn::hflip(x) : fn::vflip(x);
  }

 private:
  bool horizontal_;
  double p_;
};

class RandomRotation final : public Transform {
 public:
  RandomRotation(double lo, double hi, fn::Interp mode, std::optional<std::pair<double, double>> center,
                 std::vector<double> fill)
      : lo_(lo), hi_(hi), mode_(mode), center_(center), fill_(std::move(fill)) {}
  Tensor apply(const Tensor& x, Generator& rng) const override {
    return fn::rotate(x, fn::uniform(rng, lo_, hi_), mode_, false, center_, fill_);
  }
  Shape out_shape(const Shape& in) const override {
    check_shape(in, "random_rotation");
    if (fill_.size() != 1 && static_cast<int64_t>(fill_.size()) != in[0])
      throw std::invalid_argument("random_rotation: fill has " + std::to_string(fill_.size()) + " values for " +
                                  std::to_string(in[0]) + " channel(s) (give 1 or " + std::to_string(in[0]) + ")");
    return in;
  }

 private:
  double lo_, hi_;
  fn::Interp mode_;
  std::optional<std::pair<double, double>> center_;
  std::vector<double> fill_;
};

// ---- registrations --------------------------------------------------------------------------
std::string pair_range_rule(const AttrMap& a, const char* key) {
  const auto& v = attr_floats(a, key);
  return v[0] <= v[1] ? "" : std::string(key) + " must be [min, max] with min <= max, got " + format_attr(v);
}

const RegisterTransform resize_reg({
    "resize",
    "torchvision.transforms.Resize",
    "resize to [h, w], or the shorter side to size (aspect kept); tensor interpolation, no antialias",
    {A::int_list("size")
         .check(
             [](const AttrValue& v) {
               const auto& size = std::get<std::vector<int64_t>>(v);
               bool ok = size.size() == 1 || size.size() == 2;
               for (int64_t x : size) ok = ok && x >= 1;
               return ok ? std::string() : std::string("bad");
             },
             "s, [s] or [h, w], integers >= 1")
         .describe("s or [s]: the shorter side becomes s (aspect kept); [h, w]: exactly"),
     A::choice("interpolation", kInterpolations, "bilinear").describe("nearest, bilinear or bicubic"),
     A::integer("max_size", 0)
         .keyword("none", 0)
         .at_least(1)
         .describe("with a single size: the longer side is at most this (none: no limit)")},
    [](const AttrMap& a) -> std::string {
      const auto& size = attr_ints(a, "size");
      int64_t max_size = attr_int(a, "max_size");
      if (max_size > 0 && size.size() != 1)
        return "max_size needs a single size (the shorter side), got size " + format_attr(size);
      if (max_size > 0 && max_size <= size[0])
        return "max_size (" + std::to_string(max_size) + ") must be greater than size (" + std::to_string(size[0]) +
               ")";
      return "";
    },
    false,
    [](const AttrMap& a) -> TransformPtr {
      return std::make_shared<Resize>(attr_ints(a, "size"), fn::parse_interp(attr_string(a, "interpolation")),
                                      attr_int(a, "max_size"));
    },
    "{type: resize, size: 32}",
});

const RegisterTransform center_crop_reg({
    "center_crop",
    "torchvision.transforms.CenterCrop",
    "the central window of size (zero padding where the image is smaller)",
    {A::pair("size").at_least(1).describe("s or [h, w]")},
    nullptr,
    false,
    [](const AttrMap& a) -> TransformPtr {
      const auto& s = attr_ints(a, "size");
      return std::make_shared<CenterCrop>(s[0], s[1]);
    },
    "{type: center_crop, size: 24}",
});

const RegisterTransform pad_reg({
    "pad",
    "torchvision.transforms.Pad",
    "pad the borders with a constant, the edge or a reflection",
    {padding_attr(), fill_attr(), padding_mode_attr()},
    nullptr,
    false,
    [](const AttrMap& a) -> TransformPtr {
      return std::make_shared<Pad>(attr_ints(a, "padding"), attr_float(a, "fill"),
                                   fn::parse_pad_mode(attr_string(a, "padding_mode")));
    },
    "{type: pad, padding: 2, padding_mode: reflect}",
});

const RegisterTransform random_crop_reg({
    "random_crop",
    "torchvision.transforms.RandomCrop",
    "a window of size at a uniform random position, after optional padding",
    {A::pair("size").at_least(1).describe("s or [h, w]"), padding_attr().optional(),
     A::boolean("pad_if_needed", false).describe("pad a dimension smaller than size (both sides, by the difference)"),
     fill_attr(), padding_mode_attr()},
    nullptr,
    true,
    [](const AttrMap& a) -> TransformPtr {
      const auto& s = attr_ints(a, "size");
      std::vector<int64_t> padding = a.count("padding") ? attr_ints(a, "padding") : std::vector<int64_t>{};
      return std::make_shared<RandomCrop>(s[0], s[1], std::move(padding), attr_bool(a, "pad_if_needed"),
                                          attr_float(a, "fill"), fn::parse_pad_mode(attr_string(a, "padding_mode")));
    },
    "{type: random_crop, size: 28, padding: 4}",
});

const RegisterTransform random_resized_crop_reg({
    "random_resized_crop",
    "torchvision.transforms.RandomResizedCrop",
    "a crop of random area and aspect ratio, resized to size (10 tries, then the central crop)",
    {A::pair("size").at_least(1).describe("output s or [h, w]"),
     A::float_list("scale")
         .def(std::vector<double>{0.08, 1.0})
         .length(2, 2)
         .above(0)
         .describe("[min, max] fraction of the image area"),
     A::float_list("ratio")
         .def(std::vector<double>{3.0 / 4.0, 4.0 / 3.0})
         .length(2, 2)
         .above(0)
         .describe("[min, max] aspect ratio (width / height), sampled log-uniformly"),
     A::choice("interpolation", kInterpolations, "bilinear").describe("nearest, bilinear or bicubic")},
    [](const AttrMap& a) -> std::string {
      std::string s = pair_range_rule(a, "scale");
      return s.empty() ? pair_range_rule(a, "ratio") : s;
    },
    true,
    [](const AttrMap& a) -> TransformPtr {
      const auto& s = attr_ints(a, "size");
      return std::make_shared<RandomResizedCrop>(s[0], s[1], attr_floats(a, "scale"), attr_floats(a, "ratio"),
                                                 fn::parse_interp(attr_string(a, "interpolation")));
    },
    "{type: random_resized_crop, size: 28, scale: [0.5, 1.0]}",
});

TransformDef flip_def(bool horizontal) {
  return {
      horizontal ? "random_horizontal_flip" : "random_vertical_flip",
      horizontal ? "torchvision.transforms.RandomHorizontalFlip" : "torchvision.transforms.RandomVerticalFlip",
      horizontal ? "mirror left-right with probability p" : "flip upside down with probability p",
      {A::floating("p", 0.5).range(0, 1).describe("probability of flipping")},
      nullptr,
      true,
      [horizontal](const AttrMap& a) -> TransformPtr {
        return std::make_shared<RandomFlip>(horizontal, attr_float(a, "p"));
      },
      horizontal ? "{type: random_horizontal_flip}" : "{type: random_vertical_flip, p: 0.5}",
  };
}
const RegisterTransform hflip_reg(flip_def(true));
const RegisterTransform vflip_reg(flip_def(false));

const RegisterTransform random_rotation_reg({
    "random_rotation",
    "torchvision.transforms.RandomRotation",
    "rotate by a uniform angle in degrees (counter-clockwise), outside pixels filled",
    {A::float_list("degrees")
         .length(1, 2)
         .check(
             [](const AttrValue& v) {
               const auto& d = std::get<std::vector<double>>(v);
               return (d.size() == 1 ? d[0] >= 0 : d[0] <= d[1]) ? std::string() : std::string("bad");
             },
             "d >= 0 (or [d]), or [min, max] with min <= max")
         .describe("d: the angle is uniform in [-d, d]; [min, max]: in [min, max]"),
     A::choice("interpolation", {"nearest", "bilinear"}, "nearest").describe("nearest or bilinear"),
     A::boolean("expand", false).describe("must be false: an enlarged output's size depends on the angle"),
     A::float_list("center").optional().length(2, 2).describe("[x, y] pixel to rotate around (default: the centre)"),
     A::float_list("fill")
         .def(std::vector<double>{0.0})
         .length(1, 4096)
         .describe("value of pixels from outside the image (0..255 before to_float): one, or one per channel")},
    [](const AttrMap& a) -> std::string {
      if (attr_bool(a, "expand"))
        return "expand: true gives every sample its own size (by its angle), so batches cannot be collated; use "
               "expand: false (torchvision's default)";
      return "";
    },
    true,
    [](const AttrMap& a) -> TransformPtr {
      const auto& d = attr_floats(a, "degrees");
      std::optional<std::pair<double, double>> center;
      if (a.count("center")) center = std::pair{attr_floats(a, "center")[0], attr_floats(a, "center")[1]};
      return std::make_shared<RandomRotation>(d.size() == 1 ? -d[0] : d[0], d.size() == 1 ? d[0] : d[1],
                                              fn::parse_interp(attr_string(a, "interpolation")), center,
                                              attr_floats(a, "fill"));
    },
    "{type: random_rotation, degrees: 15}",
});

}  // namespace
}  // namespace dl::data

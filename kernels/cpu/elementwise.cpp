// CPU elementwise kernels: unary, binary (incl. fused activation backwards), where, copy, fill.
#include <cmath>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include "kernels/cpu/half.h"
#include "kernels/cpu/loop.h"
#include "kernels/elementwise.h"
#include "kernels/f32_compute.h"

namespace dl::cpu {
namespace {

template <class T>
constexpr T kSqrt1_2 = T(0.70710678118654752440);
template <class T>
constexpr T kSqrt2OverPi = T(0.79788456080286535588);  // sqrt(2/pi)
template <class T>
constexpr T kInvSqrt2Pi = T(0.39894228040143267794);   // 1/sqrt(2*pi)

// Applies f(x) over a 2-operand plan (out, x), with a contiguous fast path that vectorises.
template <class Tin, class Tout, class F>
void map1(const Tensor& x, Tensor& out, F f) {
  auto plan = make_plan<2>(out, {&x});
  run_plan(plan, [&](char** p, const int64_t* s, int64_t n) {
    Tout* o = reinterpret_cast<Tout*>(p[0]);
    const Tin* a = reinterpret_cast<const Tin*>(p[1]);
    if (s[0] == sizeof(Tout) && s[1] == sizeof(Tin)) {
      for (int64_t i = 0; i < n; ++i) o[i] = f(a[i]);
    } else {
      for (int64_t i = 0; i < n; ++i)
        *reinterpret_cast<Tout*>(p[0] + i * s[0]) = f(*reinterpret_cast<const Tin*>(p[1] + i * s[1]));
    }
  });
}

template <class Tin, class Tout, class F>
void map2(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  auto plan = make_plan<3>(out, {&a, &b});
  run_plan(plan, [&](char** p, const int64_t* s, int64_t n) {
    Tout* o = reinterpret_cast<Tout*>(p[0]);
    const Tin* x = reinterpret_cast<const Tin*>(p[1]);
    const Tin* y = reinterpret_cast<const Tin*>(p[2]);
    if (s[0] == sizeof(Tout) && s[1] == sizeof(Tin) && s[2] == sizeof(Tin)) {
      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
    } else if (s[0] == sizeof(Tout) && s[1] == sizeof(Tin) && s[2] == 0) {
      const Tin yv = *y;
      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], yv);
    } else if (s[0] == sizeof(Tout) && s[1] == 0 && s[2] == sizeof(Tin)) {
      const Tin xv = *x;
      for (int64_t i = 0; i < n; ++i) o[i] = f(xv, y[i]);
    } else {
      for (int64_t i = 0; i < n; ++i)
        *reinterpret_cast<Tout*>(p[0] + i * s[0]) =
            f(*reinterpret_cast<const Tin*>(p[1] + i * s[1]),
              *reinterpret_cast<const Tin*>(p[2] + i * s[2]));
    }
  });
}

[[noreturn]] void unsupported(const char* what, DType t) {
  throw std::invalid_argument(std::string(what) + ": unsupported dtype " + dtype_name(t));
}

template <class T>
void unary_typed(UnaryOp op, ScalarArgs s, const Tensor& x, Tensor& out) {
  constexpr bool fp = std::is_floating_point_v<T>;
  const T a = static_cast<T>(s.a), b = static_cast<T>(s.b);
  switch (op) {
    case UnaryOp::Neg: return map1<T, T>(x, out, [](T v) { return T(-v); });
    case UnaryOp::Abs: return map1<T, T>(x, out, [](T v) { return v < T(0) ? T(-v) : v; });
    case UnaryOp::Sign:
      return map1<T, T>(x, out, [](T v) { return T((T(0) < v) - (v < T(0))); });
    case UnaryOp::Relu: return map1<T, T>(x, out, [](T v) { return v > T(0) ? v : T(0); });
    case UnaryOp::AddScalar: return map1<T, T>(x, out, [a](T v) { return T(v + a); });
    case UnaryOp::MulScalar: return map1<T, T>(x, out, [a](T v) { return T(v * a); });
    case UnaryOp::Clamp: {
      // NaN passes through (like torch.clamp); bounds as the tensor type.
      const double lo = s.a, hi = s.b;
      return map1<T, T>(x, out, [lo, hi](T v) {
        double d = static_cast<double>(v);
        if (d < lo) d = lo;
        if (d > hi) d = hi;
        return static_cast<T>(d);
      });
    }
    default: break;
  }
  if constexpr (fp) {
    switch (op) {
      case UnaryOp::Exp: return map1<T, T>(x, out, [](T v) { return std::exp(v); });
      case UnaryOp::Log: return map1<T, T>(x, out, [](T v) { return std::log(v); });
      case UnaryOp::Sqrt: return map1<T, T>(x, out, [](T v) { return std::sqrt(v); });
      case UnaryOp::Rsqrt: return map1<T, T>(x, out, [](T v) { return T(1) / std::sqrt(v); });
      case UnaryOp::Reciprocal: return map1<T, T>(x, out, [](T v) { return T(1) / v; });
      case UnaryOp::Sigmoid:
        return map1<T, T>(x, out, [](T v) { return T(1) / (T(1) + std::exp(-v)); });
      case UnaryOp::Tanh: return map1<T, T>(x, out, [](T v) { return std::tanh(v); });
      case UnaryOp::LeakyRelu: return map1<T, T>(x, out, [a](T v) { return v > T(0) ? v : v * a; });
      case UnaryOp::Elu:
        return map1<T, T>(x, out, [a](T v) { return v > T(0) ? v : a * std::expm1(v); });
      case UnaryOp::Gelu:
        return map1<T, T>(x, out, [](T v) { return T(0.5) * v * (T(1) + std::erf(v * kSqrt1_2<T>)); });
      case UnaryOp::GeluTanh:
        return map1<T, T>(x, out, [](T v) {
          T inner = kSqrt2OverPi<T> * (v + T(0.044715) * v * v * v);
          return T(0.5) * v * (T(1) + std::tanh(inner));
        });
      case UnaryOp::Softplus:
        return map1<T, T>(x, out, [a, b](T v) {
          return v * a > b ? v : std::log1p(std::exp(v * a)) / a;
        });
      case UnaryOp::PowScalar: {
        if (s.a == 2.0) return map1<T, T>(x, out, [](T v) { return v * v; });
        if (s.a == 0.5) return map1<T, T>(x, out, [](T v) { return std::sqrt(v); });
        return map1<T, T>(x, out, [a](T v) { return std::pow(v, a); });
      }
      default: break;
    }
  }
  unsupported("unary op", x.dtype());
}

template <class T>
void binary_typed(BinaryOp op, ScalarArgs s, const Tensor& x, const Tensor& y, Tensor& out) {
  constexpr bool fp = std::is_floating_point_v<T>;
  const T a = static_cast<T>(s.a), b = static_cast<T>(s.b);
  switch (op) {
    case BinaryOp::Add:
      if (s.a == 1.0) return map2<T, T>(x, y, out, [](T u, T v) { return T(u + v); });
      return map2<T, T>(x, y, out, [a](T u, T v) { return T(u + a * v); });
    case BinaryOp::Sub:
      if (s.a == 1.0) return map2<T, T>(x, y, out, [](T u, T v) { return T(u - v); });
      return map2<T, T>(x, y, out, [a](T u, T v) { return T(u - a * v); });
    case BinaryOp::Mul: return map2<T, T>(x, y, out, [](T u, T v) { return T(u * v); });
    case BinaryOp::Maximum:
      return map2<T, T>(x, y, out, [](T u, T v) { return (u != u || u > v) ? u : v; });
    case BinaryOp::Minimum:
      return map2<T, T>(x, y, out, [](T u, T v) { return (u != u || u < v) ? u : v; });
    case BinaryOp::Eq: return map2<T, bool>(x, y, out, [](T u, T v) { return u == v; });
    case BinaryOp::Ne: return map2<T, bool>(x, y, out, [](T u, T v) { return u != v; });
    case BinaryOp::Lt: return map2<T, bool>(x, y, out, [](T u, T v) { return u < v; });
    case BinaryOp::Le: return map2<T, bool>(x, y, out, [](T u, T v) { return u <= v; });
    case BinaryOp::Gt: return map2<T, bool>(x, y, out, [](T u, T v) { return u > v; });
    case BinaryOp::Ge: return map2<T, bool>(x, y, out, [](T u, T v) { return u >= v; });
    case BinaryOp::ReluBackward:
      return map2<T, T>(x, y, out, [](T g, T v) { return v > T(0) ? g : T(0); });
    case BinaryOp::ClampBackward: {
      const double lo = s.a, hi = s.b;
      return map2<T, T>(x, y, out, [lo, hi](T g, T v) {
        double d = static_cast<double>(v);
        return (d >= lo && d <= hi) ? g : T(0);
      });
    }
    default: break;
  }
  if constexpr (fp) {
    switch (op) {
      case BinaryOp::Div: return map2<T, T>(x, y, out, [](T u, T v) { return u / v; });
      case BinaryOp::Pow: return map2<T, T>(x, y, out, [](T u, T v) { return std::pow(u, v); });
      case BinaryOp::LeakyReluBackward:
        return map2<T, T>(x, y, out, [a](T g, T v) { return v > T(0) ? g : g * a; });
      case BinaryOp::EluBackward:
        return map2<T, T>(x, y, out, [a](T g, T v) { return v > T(0) ? g : g * a * std::exp(v); });
      case BinaryOp::GeluBackward:
        return map2<T, T>(x, y, out, [](T g, T v) {
          T cdf = T(0.5) * (T(1) + std::erf(v * kSqrt1_2<T>));
          T pdf = kInvSqrt2Pi<T> * std::exp(T(-0.5) * v * v);
          return g * (cdf + v * pdf);
        });
      case BinaryOp::GeluTanhBackward:
        return map2<T, T>(x, y, out, [](T g, T v) {
          const T kappa = T(0.044715);
          T inner = kSqrt2OverPi<T> * (v + kappa * v * v * v);
          T th = std::tanh(inner);
          T left = T(0.5) * v, right = T(1) + th;
          T dleft = T(0.5) * right;
          T dright = left * (T(1) - th * th) * kSqrt2OverPi<T> * (T(1) + T(3) * kappa * v * v);
          return g * (dleft + dright);
        });
      case BinaryOp::SigmoidBackward:
        return map2<T, T>(x, y, out, [](T g, T yv) { return g * (T(1) - yv) * yv; });
      case BinaryOp::TanhBackward:
        return map2<T, T>(x, y, out, [](T g, T yv) { return g * (T(1) - yv * yv); });
      case BinaryOp::SoftplusBackward:
        return map2<T, T>(x, y, out, [a, b](T g, T v) {
          T z = std::exp(v * a);
          return v * a > b ? g : g * z / (z + T(1));
        });
      default: break;
    }
  } else {
    if (op == BinaryOp::Div)  // integer division truncates toward zero like C (torch: trunc)
      return map2<T, T>(x, y, out, [](T u, T v) { return v == T(0) ? T(0) : T(u / v); });
  }
  unsupported("binary op", x.dtype());
}

void cpu_unary(UnaryOp op, ScalarArgs s, const Tensor& x, Tensor& out) {
  switch (x.dtype()) {
    case DType::F32: return unary_typed<float>(op, s, x, out);
    case DType::F64: return unary_typed<double>(op, s, x, out);
    case DType::I64: return unary_typed<int64_t>(op, s, x, out);
    case DType::Bool:
      if (op == UnaryOp::LogicalNot) return map1<bool, bool>(x, out, [](bool v) { return !v; });
      break;
    default: break;
  }
  unsupported("unary op", x.dtype());
}

void cpu_binary(BinaryOp op, ScalarArgs s, const Tensor& a, const Tensor& b, Tensor& out) {
  switch (a.dtype()) {
    case DType::F32: return binary_typed<float>(op, s, a, b, out);
    case DType::F64: return binary_typed<double>(op, s, a, b, out);
    case DType::I64: return binary_typed<int64_t>(op, s, a, b, out);
    case DType::U8: return binary_typed<uint8_t>(op, s, a, b, out);
    case DType::Bool:
      if (op == BinaryOp::Eq) return map2<bool, bool>(a, b, out, [](bool u, bool v) { return u == v; });
      if (op == BinaryOp::Ne) return map2<bool, bool>(a, b, out, [](bool u, bool v) { return u != v; });
      if (op == BinaryOp::Mul) return map2<bool, bool>(a, b, out, [](bool u, bool v) { return u && v; });
      if (op == BinaryOp::Add) return map2<bool, bool>(a, b, out, [](bool u, bool v) { return u || v; });
      break;
    default: break;
  }
  unsupported("binary op", a.dtype());
}

void cpu_where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  DL_DISPATCH_ALL(a.dtype(), "where", [&] {
    auto plan = make_plan<4>(out, {&cond, &a, &b});
    run_plan(plan, [&](char** p, const int64_t* s, int64_t n) {
      for (int64_t i = 0; i < n; ++i) {
        bool c = *reinterpret_cast<const bool*>(p[1] + i * s[1]);
        *reinterpret_cast<scalar_t*>(p[0] + i * s[0]) =
            *reinterpret_cast<const scalar_t*>(p[c ? 2 : 3] + i * s[c ? 2 : 3]);
      }
    });
  });
}

template <class Tdst, class Tsrc>
Tdst convert(Tsrc v) {
  if constexpr (std::is_same_v<Tdst, Tsrc>) return v;
  else if constexpr (is_half_v<Tsrc>) return convert<Tdst>(v.to_float());
  else if constexpr (is_half_v<Tdst>) return Tdst::from_float(static_cast<float>(v));
  else if constexpr (std::is_same_v<Tdst, bool>) return v != Tsrc(0);
  else if constexpr (std::is_integral_v<Tdst> && std::is_floating_point_v<Tsrc>) {
    // NaN, inf or a value beyond int64 has no integer value: converting it is undefined in C++
    // (clang's UBSan aborts). Give what x86 (and so PyTorch's CPU cast) gives, the int64
    // minimum ("integer indefinite"); narrower integer types wrap from int64, as there.
    constexpr Tsrc kTwo63 = static_cast<Tsrc>(9223372036854775808.0);
    const int64_t wide = v >= -kTwo63 && v < kTwo63 ? static_cast<int64_t>(v) : std::numeric_limits<int64_t>::min();
    return static_cast<Tdst>(wide);
  } else {
    return static_cast<Tdst>(v);
  }
}

// Calls body(T{}) with T the storage type of `dt`: the DL_DISPATCH_ALL types plus the
// half-precision ones, which take part in copies (dtype conversions) only.
template <class F>
void dispatch_storage(DType dt, const char* opname, F&& body) {
  if (dt == DType::F16) return body(Half{});
  if (dt == DType::BF16) return body(BFloat16{});
  DL_DISPATCH_ALL(dt, opname, [&] { body(scalar_t{}); });
}

void cpu_copy(const Tensor& src, Tensor& dst) {
  dispatch_storage(dst.dtype(), "copy", [&](auto d) {
    using dst_t = decltype(d);
    dispatch_storage(src.dtype(), "copy", [&](auto s) {
      using src_t = decltype(s);
      map1<src_t, dst_t>(src, dst, [](src_t v) { return convert<dst_t>(v); });
    });
  });
}

void cpu_fill(Tensor& dst, double value) {
  DL_DISPATCH_ALL(dst.dtype(), "fill", [&] {
    const scalar_t v = convert<scalar_t>(value);
    auto plan = make_plan<1>(dst, {});
    run_plan(plan, [&](char** p, const int64_t* s, int64_t n) {
      if (s[0] == sizeof(scalar_t)) {
        scalar_t* o = reinterpret_cast<scalar_t*>(p[0]);
        for (int64_t i = 0; i < n; ++i) o[i] = v;
      } else {
        for (int64_t i = 0; i < n; ++i) *reinterpret_cast<scalar_t*>(p[0] + i * s[0]) = v;
      }
    });
  });
}

bool cpu_all_finite(const Tensor& x) {
  return DL_DISPATCH_FLOAT(x.dtype(), "isfinite", [&] {
    Tensor c = x.contiguous();
    const scalar_t* d = c.data<scalar_t>();
    const int64_t n = c.numel();
    bool ok = true;
    for (int64_t i = 0; i < n; ++i) ok = ok && std::isfinite(d[i]);
    return ok;
  });
}

}  // namespace

DL_REGISTER_KERNEL(unary_stub, CPU, f32_compute<cpu_unary>);
DL_REGISTER_KERNEL(binary_stub, CPU, f32_compute<cpu_binary>);
DL_REGISTER_KERNEL(where_stub, CPU, f32_compute<cpu_where>);
DL_REGISTER_KERNEL(copy_stub, CPU, cpu_copy);
DL_REGISTER_KERNEL(fill_stub, CPU, f32_compute<cpu_fill>);
DL_REGISTER_KERNEL(all_finite_stub, CPU, f32_compute<cpu_all_finite>);

}  // namespace dl::cpu

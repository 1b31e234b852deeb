// CPU elementwise kernels: unary, binary (incl. fused activation backwards), where, copy, fill.
// The unary and binary formulas are kernels/elementwise_ops.h's, shared with the CUDA backend.
#include <cmath>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include "kernels/cpu/half.h"
#include "kernels/cpu/loop.h"
#include "kernels/elementwise.h"
#include "kernels/elementwise_ops.h"
#include "kernels/f32_compute.h"

namespace dl::cpu {
namespace {

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

void cpu_unary(UnaryOp op, ScalarArgs s, const Tensor& x, Tensor& out) {
  const bool ran = ew::dispatch_unary(op, s, x.dtype(), [&](auto in, auto f) {
    using T = decltype(in);
    map1<T, decltype(f(T{}))>(x, out, f);
  });
  if (!ran) unsupported("unary op", x.dtype());
}

void cpu_binary(BinaryOp op, ScalarArgs s, const Tensor& a, const Tensor& b, Tensor& out) {
  const bool ran = ew::dispatch_binary(op, s, a.dtype(), [&](auto in, auto f) {
    using T = decltype(in);
    map2<T, decltype(f(T{}, T{}))>(a, b, out, f);
  });
  if (!ran) unsupported("binary op", a.dtype());
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

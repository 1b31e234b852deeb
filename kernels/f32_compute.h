// Half-precision tensors through f32 kernels: f16/bf16 compute for kernels written for f32/f64
// (engine/amp/autocast.h). Device-neutral: the copies run on the tensors' device (copy_stub).
//
//   DL_REGISTER_KERNEL(conv2d_fwd_stub, CPU, f32_compute<cpu_conv2d_fwd>);
//
// f32_compute<K> has K's signature. When no tensor argument is f16/bf16 it calls K as is;
// otherwise every f16/bf16 tensor argument becomes an exact f32 copy (a `Tensor&` output one
// too, so a kernel that reads its output still sees the values), K runs on those, and each f16/bf16
// output is rounded back into the caller's tensor (nearest even, kernels/cpu/half.h). So a
// half-precision op computes like cuBLAS/cuDNN with f32 accumulation: inputs exactly
// representable in f32, one rounding of each result. Other arguments (shapes, scalars,
// pointers) pass through. Speed is not the goal on the CPU: each call copies its operands.
#pragma once
#include <tuple>
#include <type_traits>
#include <utility>

#include "engine/tensor/tensor.h"
#include "kernels/elementwise.h"

namespace dl {

inline bool is_half_dtype(DType t) { return t == DType::F16 || t == DType::BF16; }

namespace f32c {

inline Tensor upcast(const Tensor& x) {
  Tensor y = empty(x.shape(), TensorOptions(DType::F32, x.device()));
  copy_stub(x.device())(x, y);
  return y;
}

template <class A>
bool holds_half(const A& a) {
  if constexpr (std::is_same_v<std::decay_t<A>, Tensor>) return a.defined() && is_half_dtype(a.dtype());
  else return false;
}

// One argument as the f32 kernel sees it. Default: passed through.
template <class A>
struct Arg {
  A& ref;
  explicit Arg(A& a) : ref(a) {}
  A& get() { return ref; }
  void write_back() {}
};

template <>
struct Arg<const Tensor> {  // an input: an f32 copy of a half tensor
  Tensor t;
  explicit Arg(const Tensor& a) : t(holds_half(a) ? upcast(a) : a) {}
  const Tensor& get() { return t; }
  void write_back() {}
};

template <>
struct Arg<Tensor> {  // an output: an f32 copy, rounded back into the caller's half tensor
  Tensor& out;
  Tensor t;
  explicit Arg(Tensor& a) : out(a), t(holds_half(a) ? upcast(a) : a) {}
  Tensor& get() { return t; }
  void write_back() {
    if (holds_half(out)) copy_stub(out.device())(t, out);
  }
};

template <auto K>
struct Wrap;

template <class R, class... As, R (*K)(As...)>
struct Wrap<K> {
  static R call(As... as) {
    if (!(holds_half(as) || ...)) return K(static_cast<As>(as)...);
    std::tuple<Arg<std::remove_reference_t<As>>...> args{Arg<std::remove_reference_t<As>>(as)...};
    auto run = [&] { return std::apply([](auto&... a) { return K(a.get()...); }, args); };
    auto finish = [&] { std::apply([](auto&... a) { (a.write_back(), ...); }, args); };
    if constexpr (std::is_void_v<R>) {
      run();
      finish();
    } else {
      R r = run();
      finish();
      return r;
    }
  }
};

}  // namespace f32c

// The kernel K, accepting f16/bf16 tensors by computing in f32 (see above).
template <auto K>
inline constexpr auto f32_compute = &f32c::Wrap<K>::call;

}  // namespace dl

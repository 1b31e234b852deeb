// Helpers shared by the op tests that read PyTorch fixtures (tests/support/fixtures.h): leaf
// copies, pair attributes, and the forward + backward check of an op of (x, weight, bias).
#pragma once
#include <catch2/catch.hpp>
#include <string>

#include "engine/ops.h"
#include "tests/support/fixtures.h"

namespace dl::test {

// A fresh leaf copy of `t` in `dtype` that requires grad (fixture tensors are shared between
// sections); undefined stays undefined.
inline Tensor leaf(const Tensor& t, DType dtype = DType::F32) {
  if (!t.defined()) return Tensor();
  return t.to(dtype).clone().detach().requires_grad_();
}

// The attribute `key` written as two integers ("stride 2 1").
inline Pair pair_attr(const FixtureCase& c, const std::string& key) {
  auto v = c.attr_ints(key);
  REQUIRE(v.size() == 2);
  return {v[0], v[1]};
}

// f32 reductions (convolutions, batch-norm gradients) carry rounding error proportional to the
// size of the summands, not of the (possibly cancelled) result: atol scaled by the reference's range.
inline double scaled_atol(const Tensor& ref, double atol) {
  double m = ref.numel() > 0 ? max(abs(ref)).item() : 0.0;
  return atol * std::max(1.0, 2.0 * m);
}

// Case `c` holds x, w, optional b, the output y, the output gradient gy and the gradients gx,
// gw, gb. Runs op(x, w, b) in f32 and f64 and checks y and every gradient.
template <class Op>
void check_xwb_case(const FixtureCase& c, Op op, double rtol, double atol) {
  for (DType dtype : {DType::F32, DType::F64}) {  // f64 runs the reference kernels
    INFO("case " << c.name << " dtype " << dtype_name(dtype));
    Tensor x = leaf(c.t("x"), dtype), w = leaf(c.t("w"), dtype);
    Tensor b = c.has("b") ? leaf(c.t("b"), dtype) : Tensor();
    Tensor y = op(x, w, b);
    CHECK_CLOSE(y.to(DType::F32), c.t("y"), rtol, scaled_atol(c.t("y"), atol));
    y.backward(c.t("gy").to(dtype));
    CHECK_CLOSE(x.grad().to(DType::F32), c.t("gx"), rtol, scaled_atol(c.t("gx"), atol));
    CHECK_CLOSE(w.grad().to(DType::F32), c.t("gw"), rtol, scaled_atol(c.t("gw"), atol));
    if (b.defined()) CHECK_CLOSE(b.grad().to(DType::F32), c.t("gb"), rtol, scaled_atol(c.t("gb"), atol));
  }
}

}  // namespace dl::test

// CUDA backend vs the CPU backend (ggml test-backend-ops style): every kernel of
// kernels/cuda is compared with the CPU kernel on the same inputs, forward and through
// autograd. Every test exits with code 4 (ctest: "Skipped") when no GPU is usable, printing
// nothing; the file compiles in CPU-only builds too.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/random.h"
#include "kernels/reduce.h"
#include "tests/support/fixtures.h"
#ifdef DLTOOL_WITH_CUDA
#include "kernels/cuda/runtime.h"
#endif

using namespace dl;

namespace {

const Device kCuda = Device::cuda(0);

// Tolerances of a CUDA result against the CPU's: the CUDA math library differs from glibc by a
// few ulps, and nvcc may fuse multiply-adds.
double rtol_for(DType t) { return t == DType::F64 ? 1e-12 : 1e-5; }
double atol_for(DType t) { return t == DType::F64 ? 1e-12 : 1e-6; }

// The CUDA result `got` (on the GPU) must match the CPU result `want`.
void check_matches(const Tensor& got, const Tensor& want, double rtol, double atol) {
  REQUIRE(got.defined());
  REQUIRE(want.defined());
  CHECK(got.device() == kCuda);
  CHECK(got.dtype() == want.dtype());
  CHECK_CLOSE(got.cpu(), want, rtol, atol);
}

void check_matches(const Tensor& got, const Tensor& want) {
  check_matches(got, want, rtol_for(want.dtype()), atol_for(want.dtype()));
}

template <class T>
void check_bits_equal(const Tensor& got, const Tensor& want) {
  std::vector<T> a = got.cpu().contiguous().to_vector<T>(), b = want.contiguous().to_vector<T>();
  REQUIRE(a.size() == b.size());
  size_t mismatches = 0, first = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0 && mismatches++ == 0) first = i;
  INFO("mismatches: " << mismatches << ", first at " << first);
  CHECK(mismatches == 0);
}

Tensor randn_cpu(const Shape& s, uint64_t seed, DType t = DType::F32) {
  Generator g(seed);
  return randn(s, g, t);
}

// Inputs in (0.5, ~3.5): legal for log, sqrt, rsqrt, pow with fractional exponents.
Tensor positive_cpu(const Shape& s, uint64_t seed, DType t = DType::F32) {
  return add(abs(randn_cpu(s, seed, t)), 0.5);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Transfers and copies
// ---------------------------------------------------------------------------------------------
TEST_CASE("cuda: host <-> device round trips keep every dtype bit-exact", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  Tensor f = randn_cpu({3, 5, 7}, 1);
  check_bits_equal<float>(f.to(kCuda), f);
  Tensor d = randn_cpu({4, 9}, 2, DType::F64);
  check_bits_equal<double>(d.to(kCuda), d);
  Tensor i = from_vector<int64_t>({-3, 0, 7, int64_t(1) << 40, -(int64_t(1) << 50)}, {5});
  CHECK(i.to(kCuda).to_vector<int64_t>() == i.to_vector<int64_t>());
  Tensor u = from_vector<uint8_t>({0, 1, 127, 128, 255}, {5});
  CHECK(u.to(kCuda).to_vector<uint8_t>() == u.to_vector<uint8_t>());
  Tensor b = from_vector<bool>({true, false, false, true}, {2, 2});
  CHECK(b.to(kCuda).cpu().to_vector<uint8_t>() == b.to_vector<uint8_t>());
  // Empty and 0-dim tensors.
  Tensor e = zeros({0, 4}).to(kCuda);
  CHECK(e.shape() == Shape{0, 4});
  CHECK(e.cpu().numel() == 0);
  CHECK(scalar_tensor(2.5).to(kCuda).item() == 2.5);
  // The CUDA tensor reports its device; to() onto the same device is a no-op.
  Tensor fc = f.to(kCuda);
  CHECK(fc.device() == kCuda);
  CHECK(fc.to(kCuda).same(fc));
}

TEST_CASE("cuda: dtype conversions match the CPU for every pair", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  // Values every dtype can hold after conversion (non-negative, integral parts < 256).
  Tensor base = from_vector<double>({0.0, 1.0, 2.75, 3.5, 0.25, 200.0, 17.0, 1.0}, {2, 4});
  const DType all[] = {DType::F32, DType::F64, DType::I64, DType::U8, DType::Bool};
  for (DType from : all) {
    Tensor src_cpu = base.to(from);
    Tensor src_cuda = src_cpu.to(kCuda);
    for (DType to : all) {
      INFO(dtype_name(from) << " -> " << dtype_name(to));
      check_matches(src_cuda.to(to), src_cpu.to(to), 0, 0);
      // Through a non-contiguous view as well.
      check_matches(src_cuda.t().to(to), src_cpu.t().to(to), 0, 0);
    }
  }
  // Negative floats to i64 truncate toward zero, as on the CPU.
  Tensor neg = from_vector<float>({-1.5f, -0.5f, 2.5f}, {3});
  check_matches(neg.to(kCuda).to(DType::I64), neg.to(DType::I64), 0, 0);
}

TEST_CASE("cuda: copy_ broadcasts, handles strided views and crosses devices", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  Tensor row = randn_cpu({5}, 3);
  // Broadcast copy into a contiguous destination.
  Tensor z = zeros({3, 5}, kCuda);
  z.copy_(row.to(kCuda));
  check_matches(z, row.expand({3, 5}).contiguous(), 0, 0);
  // Non-contiguous source and destination on the device.
  Tensor x = randn_cpu({4, 6}, 4);
  Tensor xc = x.to(kCuda);
  Tensor dst_cpu = zeros({6, 8});
  Tensor dst_cuda = zeros({6, 8}, kCuda);
  Tensor view_cpu = dst_cpu.slice(1, 1, 8, 2);  // [6, 4], stride 2
  Tensor view_cuda = dst_cuda.slice(1, 1, 8, 2);
  view_cpu.copy_(x.t());
  view_cuda.copy_(xc.t());
  check_matches(dst_cuda, dst_cpu, 0, 0);
  // Host -> device copy into a strided device view, with a dtype change.
  Tensor dst2 = zeros({6, 8}, TensorOptions(DType::F64, kCuda));
  Tensor v2 = dst2.slice(1, 1, 8, 2);
  v2.copy_(x.t());
  Tensor want2 = zeros({6, 8}, DType::F64);
  Tensor w2 = want2.slice(1, 1, 8, 2);
  w2.copy_(x.t());
  check_matches(dst2, want2, 0, 0);
  // Device -> host copy from a strided device view.
  Tensor host = zeros({4, 6});
  host.copy_(xc.t().t());
  CHECK_CLOSE(host, x, 0, 0);
  // contiguous()/clone() of a permuted 4-d view (several non-mergeable dims).
  Tensor y = randn_cpu({2, 3, 4, 5}, 5);
  Tensor yc = y.to(kCuda);
  check_matches(yc.permute({3, 1, 0, 2}).contiguous(), y.permute({3, 1, 0, 2}).contiguous(), 0, 0);
  check_matches(yc.slice(3, 0, 5, 2).clone(), y.slice(3, 0, 5, 2).clone(), 0, 0);
}

TEST_CASE("cuda: fill, zeros, ones and full for every dtype", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  const DType all[] = {DType::F32, DType::F64, DType::I64, DType::U8, DType::Bool};
  for (DType t : all) {
    INFO(dtype_name(t));
    check_matches(full({3, 4}, 3.0, TensorOptions(t, kCuda)), full({3, 4}, 3.0, t), 0, 0);
    check_matches(zeros({7}, TensorOptions(t, kCuda)), zeros({7}, t), 0, 0);
    check_matches(ones({2, 2, 2}, TensorOptions(t, kCuda)), ones({2, 2, 2}, t), 0, 0);
  }
  check_matches(full({5}, -2.5, kCuda), full({5}, -2.5), 0, 0);
  // Filling a strided view leaves the other elements alone.
  Tensor a = zeros({4, 6}, kCuda), b = zeros({4, 6});
  Tensor av = a.slice(1, 0, 6, 3), bv = b.slice(1, 0, 6, 3);
  fill_(av, 7.0);
  fill_(bv, 7.0);
  check_matches(a, b, 0, 0);
  // A large fill (several blocks, grid-stride).
  Tensor big = full({1 << 20}, 0.5, kCuda);
  CHECK(sum(big).item() == 0.5 * (1 << 20));
}

// ---------------------------------------------------------------------------------------------
// Elementwise
// ---------------------------------------------------------------------------------------------
// Every UnaryOp and BinaryOp on every dtype and layout is compared through the kernel registry
// walk (tests/engine/kernel_cases_core.cpp, case every_elementwise_op); its inputs are finite.
// Here: the non-finite values and the errors.
TEST_CASE("cuda: NaN and inf through clamp, relu, abs, maximum and minimum, and unsupported dtypes", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  Tensor special = from_vector<float>({NAN, INFINITY, -INFINITY, 0.0f, -0.0f}, {5});
  check_matches(clamp(special.to(kCuda), -1.0, 1.0), clamp(special, -1.0, 1.0), 0, 0);
  check_matches(relu(special.to(kCuda)), relu(special), 0, 0);
  check_matches(abs(special.to(kCuda)), abs(special), 0, 0);
  Tensor na = from_vector<float>({NAN, 1.0f, 2.0f}, {3}), nb = from_vector<float>({0.0f, NAN, 1.0f}, {3});
  check_matches(maximum(na.to(kCuda), nb.to(kCuda)), maximum(na, nb), 0, 0);
  check_matches(minimum(na.to(kCuda), nb.to(kCuda)), minimum(na, nb), 0, 0);
  // An op the CUDA backend lacks for a dtype is a clear error.
  Tensor xi = from_vector<int64_t>({-5, -1, 0, 1, 3, 9}, {2, 3});
  Tensor i_out = empty({2, 3}, TensorOptions(DType::I64, kCuda));
  CHECK_THROWS_WITH(unary_stub(kCuda)(UnaryOp::Exp, {}, xi.to(kCuda), i_out),
                    Catch::Contains("unsupported dtype int64"));
}

TEST_CASE("cuda: where, in-place ops and all_finite", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  Tensor cond = gt(randn_cpu({4, 1, 6}, 20), 0.0);
  Tensor a = randn_cpu({3, 6}, 21), b = randn_cpu({4, 3, 1}, 22);
  check_matches(where(cond.to(kCuda), a.to(kCuda), b.to(kCuda)), where(cond, a, b), 0, 0);
  Tensor ai = from_vector<int64_t>({1, 2, 3}, {3}), bi = from_vector<int64_t>({-1, -2, -3}, {3});
  Tensor ci = from_vector<bool>({true, false, true}, {3});
  check_matches(where(ci.to(kCuda), ai.to(kCuda), bi.to(kCuda)), where(ci, ai, bi), 0, 0);
  Tensor ad = randn_cpu({2, 5}, 23, DType::F64);
  Tensor cd = gt(ad, 0.0);
  check_matches(where(cd.to(kCuda).t(), ad.to(kCuda).t(), scalar_tensor(0.0, TensorOptions(DType::F64, kCuda))),
                where(cd.t(), ad.t(), scalar_tensor(0.0, DType::F64)), 0, 0);

  // In-place updates (optimizer style), including a broadcast operand.
  Tensor p = randn_cpu({5, 4}, 24), g = randn_cpu({4}, 25);
  Tensor pc = p.to(kCuda), gc = g.to(kCuda);
  add_(p, g, -0.1);
  add_(pc, gc, -0.1);
  mul_(p, 0.9);
  mul_(pc, 0.9);
  mul_(p, g);
  mul_(pc, gc);
  check_matches(pc, p);

  Tensor fin = randn_cpu({1000}, 26);
  CHECK(isfinite_all(fin.to(kCuda)));
  Tensor with_nan = fin.clone();
  with_nan.narrow(0, 777, 1).copy_(scalar_tensor(NAN));
  CHECK_FALSE(isfinite_all(with_nan.to(kCuda)));
  Tensor with_inf = randn_cpu({3, 300}, 27, DType::F64);
  with_inf.narrow(1, 299, 1).narrow(0, 2, 1).copy_(scalar_tensor(-INFINITY));
  CHECK_FALSE(isfinite_all(with_inf.to(kCuda)));
  CHECK_FALSE(isfinite_all(with_inf.to(kCuda).t()));
  CHECK(isfinite_all(with_inf.narrow(0, 0, 2).to(kCuda)));
  CHECK(isfinite_all(zeros({0}, kCuda)));
}

// Forward and backward of every differentiable elementwise op: the input is a CPU leaf moved to
// the GPU with .to(cuda), so the gradient also flows back through the device transfer.
TEST_CASE("cuda: elementwise ops forward and backward through .to(cuda) match the CPU", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  using Fn1 = std::function<Tensor(const Tensor&)>;
  struct Unary {
    const char* name;
    Fn1 f;
    bool positive;
  };
  const std::vector<Unary> unary = {
      {"neg", [](const Tensor& x) { return neg(x); }, false},
      {"exp", [](const Tensor& x) { return exp(x); }, false},
      {"log", [](const Tensor& x) { return log(x); }, true},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, true},
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, true},
      {"abs", [](const Tensor& x) { return abs(x); }, false},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.8); }, false},
      {"clamp_max", [](const Tensor& x) { return clamp(x, std::nullopt, 0.3); }, false},
      {"pow3", [](const Tensor& x) { return pow(x, 3.0); }, false},
      {"pow_half", [](const Tensor& x) { return pow(x, 0.5); }, true},
      {"add_scalar", [](const Tensor& x) { return add(x, 1.25); }, false},
      {"mul_scalar", [](const Tensor& x) { return mul(x, -0.75); }, false},
      {"relu", [](const Tensor& x) { return relu(x); }, false},
      {"leaky_relu", [](const Tensor& x) { return leaky_relu(x, 0.05); }, false},
      {"elu", [](const Tensor& x) { return elu(x, 1.2); }, false},
      {"gelu", [](const Tensor& x) { return gelu(x); }, false},
      {"gelu_tanh", [](const Tensor& x) { return gelu(x, "tanh"); }, false},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, false},
      {"tanh", [](const Tensor& x) { return tanh(x); }, false},
      {"softplus", [](const Tensor& x) { return softplus(x, 2.0, 1.0); }, false},
  };
  for (DType t : {DType::F32, DType::F64}) {
    for (size_t i = 0; i < unary.size(); ++i) {
      const Unary& u = unary[i];
      INFO(u.name << " " << dtype_name(t));
      Tensor x0 = u.positive ? positive_cpu({5, 8}, 700 + i, t) : randn_cpu({5, 8}, 700 + i, t);
      Tensor w = randn_cpu({8, 5}, 800 + i, t);  // weights of the scalar loss sum(f(x^T) * w)
      Tensor x_cpu = x0.clone().requires_grad_();
      Tensor y_cpu = u.f(x_cpu.t());
      sum(mul(y_cpu, w)).backward();
      Tensor x_leaf = x0.clone().requires_grad_();
      Tensor y_cuda = u.f(x_leaf.to(kCuda).t());  // non-contiguous input on the GPU
      sum(mul(y_cuda, w.to(kCuda))).backward();
      check_matches(y_cuda, y_cpu.detach());
      REQUIRE(x_leaf.grad().defined());
      CHECK(x_leaf.grad().device() == Device::cpu());
      CHECK_CLOSE(x_leaf.grad(), x_cpu.grad(), rtol_for(t), atol_for(t));
    }
  }

  using Fn2 = std::function<Tensor(const Tensor&, const Tensor&)>;
  struct Binary {
    const char* name;
    Fn2 f;
    bool positive_a;
  };
  const std::vector<Binary> binary = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }, false},
      {"add_alpha", [](const Tensor& a, const Tensor& b) { return add(a, b, 0.3); }, false},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, false},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }, false},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, add(abs(b), 0.5)); }, false},
      {"pow", [](const Tensor& a, const Tensor& b) { return pow(a, b); }, true},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }, false},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }, false},
      {"where", [](const Tensor& a, const Tensor& b) { return where(gt(a, b), a, mul(b, 2.0)); }, false},
  };
  for (DType t : {DType::F32, DType::F64}) {
    for (size_t i = 0; i < binary.size(); ++i) {
      const Binary& bf = binary[i];
      INFO(bf.name << " " << dtype_name(t));
      // a [3, 1, 4] broadcast against b [2, 4]: the backward reduces over broadcast dims.
      Tensor a0 = bf.positive_a ? positive_cpu({3, 1, 4}, 900 + i, t) : randn_cpu({3, 1, 4}, 900 + i, t);
      Tensor b0 = randn_cpu({2, 4}, 950 + i, t);
      if (std::string(bf.name) == "maximum" || std::string(bf.name) == "minimum")
        b0.narrow(1, 0, 1).copy_(a0.select(0, 1).narrow(1, 0, 1).expand({2, 1}));  // ties
      Tensor w = randn_cpu({3, 2, 4}, 990 + i, t);
      Tensor a_cpu = a0.clone().requires_grad_(), b_cpu = b0.clone().requires_grad_();
      Tensor y_cpu = bf.f(a_cpu, b_cpu);
      sum(mul(y_cpu, w)).backward();
      Tensor a_leaf = a0.clone().requires_grad_(), b_leaf = b0.clone().requires_grad_();
      Tensor y_cuda = bf.f(a_leaf.to(kCuda), b_leaf.to(kCuda));
      sum(mul(y_cuda, w.to(kCuda))).backward();
      check_matches(y_cuda, y_cpu.detach());
      CHECK_CLOSE(a_leaf.grad(), a_cpu.grad(), rtol_for(t), atol_for(t));
      CHECK_CLOSE(b_leaf.grad(), b_cpu.grad(), rtol_for(t), atol_for(t));
    }
  }
  // Comparisons with a scalar on the device.
  Tensor x = randn_cpu({4, 4}, 31);
  Tensor xc = x.to(kCuda);
  check_matches(eq(xc, 0.0), eq(x, 0.0), 0, 0);
  check_matches(ne(xc, 0.5), ne(x, 0.5), 0, 0);
  check_matches(lt(xc, 0.1), lt(x, 0.1), 0, 0);
  check_matches(le(xc, 0.1), le(x, 0.1), 0, 0);
  check_matches(gt(xc.t(), -0.2), gt(x.t(), -0.2), 0, 0);
  check_matches(ge(xc, x.to(kCuda)), ge(x, x), 0, 0);
  check_matches(sign(xc), sign(x), 0, 0);
}

// ---------------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------------
TEST_CASE("cuda: sum and mean over dims match the CPU, on every kernel path", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  for (DType t : {DType::F32, DType::F64}) {
    INFO(dtype_name(t));
    Tensor x = randn_cpu({6, 7, 8}, 40, t);
    Tensor xc = x.to(kCuda);
    check_matches(sum(xc), sum(x));
    check_matches(mean(xc), mean(x));
    for (const std::vector<int64_t>& dims : std::vector<std::vector<int64_t>>{{0}, {1}, {2}, {0, 2}, {-1, 0}, {1, 2}}) {
      INFO("dims " << shape_str(dims));
      check_matches(sum(xc, dims), sum(x, dims));
      check_matches(sum(xc, dims, true), sum(x, dims, true));
      check_matches(mean(xc, dims), mean(x, dims));
    }
    // Non-contiguous input.
    check_matches(sum(xc.transpose(0, 2), {1}), sum(x.transpose(0, 2), {1}));
    // Each kernel path: [outer, reduce, inner] shapes chosen to hit them.
    const std::vector<std::pair<Shape, std::vector<int64_t>>> paths = {
        {{100, 7}, {1}},      // thread per row
        {{2000, 40}, {1}},    // warp per row
        {{10, 5000}, {1}},    // block per row
        {{3, 100000}, {1}},   // few long rows: chunks + second pass
        {{70001}, {0}},       // one output: chunks + second pass
        {{300, 5, 64}, {1}},  // thread per column
        {{4096, 3}, {0}},     // few columns, long reduce: slices + second pass
        {{20000, 2}, {0}},
        {{0, 5}, {0}},        // empty reduction -> zeros
    };
    for (const auto& [shape, dims] : paths) {
      INFO("shape " << shape_str(shape) << " dims " << shape_str(dims));
      Tensor y = randn_cpu(shape, 41, t);
      const double tol = t == DType::F64 ? 1e-10 : 1e-5;
      check_matches(sum(y.to(kCuda), dims), sum(y, dims), tol, tol);
    }
  }
  // Deterministic: the same input gives bit-identical sums on repeated runs.
  Tensor big = randn_cpu({3, 100000}, 42).to(kCuda);
  check_bits_equal<float>(sum(big, {1}), sum(big, {1}).cpu());
  check_bits_equal<float>(sum(big), sum(big).cpu());
  // Sum backward on the device (expand of the gradient).
  Tensor x0 = randn_cpu({4, 5}, 43);
  Tensor leaf = x0.clone().requires_grad_();
  sum(mul(sum(leaf.to(kCuda), {1}, true), 3.0)).backward();
  CHECK_CLOSE(leaf.grad(), full({4, 5}, 3.0), 0, 0);
  // Integer sum (computed via f64).
  Tensor ints = from_vector<int64_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  check_matches(sum(ints.to(kCuda), {0}), sum(ints, {0}), 0, 0);
}

TEST_CASE("cuda: max/min/argmax/var/std/softmax match the CPU", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  for (DType t : {DType::F32, DType::F64}) {
    INFO(dtype_name(t));
    // Shapes hit the warp-per-row, thread-per-row and column kernels.
    for (const Shape& shape : std::vector<Shape>{{8, 300}, {50, 6}, {4, 9, 5}}) {
      INFO("shape " << shape_str(shape));
      Tensor x = randn_cpu(shape, 50, t);
      // Ties: copy the first column into the last one.
      x.narrow(-1, x.size(-1) - 1, 1).copy_(x.narrow(-1, 0, 1));
      Tensor xc = x.to(kCuda);
      for (int64_t dim = 0; dim < x.dim(); ++dim) {
        INFO("dim " << dim);
        auto [v, i] = max(x, dim);
        auto [vc, ic] = max(xc, dim);
        check_matches(vc, v, 0, 0);
        check_matches(ic, i, 0, 0);
        auto [mv, mi] = min(x, dim, true);
        auto [mvc, mic] = min(xc, dim, true);
        check_matches(mvc, mv, 0, 0);
        check_matches(mic, mi, 0, 0);
        check_matches(argmax(xc, dim), argmax(x, dim), 0, 0);
        check_matches(argmin(xc.transpose(0, dim), 0), argmin(x.transpose(0, dim), 0), 0, 0);
        check_matches(var(xc, std::vector<int64_t>{dim}), var(x, std::vector<int64_t>{dim}));
        check_matches(dl::std(xc, {dim}, 0, true), dl::std(x, {dim}, 0, true));
        check_matches(softmax(xc, dim), softmax(x, dim));
        check_matches(log_softmax(xc, dim), log_softmax(x, dim));
      }
      check_matches(max(xc), max(x), 0, 0);
      check_matches(min(xc), min(x), 0, 0);
      check_matches(var(xc), var(x));
    }
    // Long rows: block-per-row softmax and var.
    Tensor wide = randn_cpu({3, 3000}, 51, t);
    check_matches(softmax(wide.to(kCuda), 1), softmax(wide, 1));
    check_matches(log_softmax(wide.to(kCuda), 1), log_softmax(wide, 1));
    check_matches(var(wide.to(kCuda), std::vector<int64_t>{1}), var(wide, std::vector<int64_t>{1}));
  }
  // NaN wins max/argmax (first NaN), for both the row and the column kernels.
  Tensor nan_rows = randn_cpu({3, 64}, 52);
  nan_rows.select(0, 1).narrow(0, 40, 1).copy_(scalar_tensor(NAN));
  nan_rows.select(0, 1).narrow(0, 50, 1).copy_(scalar_tensor(NAN));
  check_matches(argmax(nan_rows.to(kCuda), 1), argmax(nan_rows, 1), 0, 0);
  check_matches(argmin(nan_rows.to(kCuda), 1), argmin(nan_rows, 1), 0, 0);
  check_matches(argmax(nan_rows.to(kCuda).t(), 1), argmax(nan_rows.t(), 1), 0, 0);
  // Integer argmax.
  Tensor ints = from_vector<int64_t>({3, 9, 9, -1, 0, 4, 4, 2}, {2, 4});
  check_matches(argmax(ints.to(kCuda), 1), argmax(ints, 1), 0, 0);
  // Backward of max, var and softmax through the device.
  Tensor x0 = randn_cpu({6, 40}, 53);
  Tensor w = randn_cpu({6, 40}, 54);
  auto loss = [&](const Tensor& x, const Tensor& wt) {
    Tensor a = std::get<0>(max(x, 1));
    Tensor b = var(x, std::vector<int64_t>{1});
    Tensor c = mul(softmax(x, 1), wt);
    Tensor d = mul(log_softmax(x, 0), wt);
    return add(add(sum(a), sum(b)), add(sum(c), sum(d)));
  };
  Tensor a_cpu = x0.clone().requires_grad_();
  loss(a_cpu, w).backward();
  Tensor a_leaf = x0.clone().requires_grad_();
  loss(a_leaf.to(kCuda), w.to(kCuda)).backward();
  CHECK_CLOSE(a_leaf.grad(), a_cpu.grad(), 1e-5, 1e-6);
}

// ---------------------------------------------------------------------------------------------
// GEMM
// ---------------------------------------------------------------------------------------------
TEST_CASE("cuda: matmul, mm and linear match the CPU (cuBLAS, transposed operands)", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  for (DType t : {DType::F32, DType::F64}) {
    INFO(dtype_name(t));
    const double rtol = t == DType::F64 ? 1e-12 : 1e-5, atol = t == DType::F64 ? 1e-12 : 1e-5;
    Tensor a = randn_cpu({5, 7}, 60, t), b = randn_cpu({7, 3}, 61, t);
    Tensor ac = a.to(kCuda), bc = b.to(kCuda);
    check_matches(mm(ac, bc), mm(a, b), rtol, atol);
    // Transposed operands (trans_a / trans_b without a copy).
    Tensor at = randn_cpu({7, 5}, 62, t), bt = randn_cpu({3, 7}, 63, t);
    Tensor atc = at.to(kCuda), btc = bt.to(kCuda);
    check_matches(mm(atc.t(), bc), mm(at.t(), b), rtol, atol);
    check_matches(mm(ac, btc.t()), mm(a, bt.t()), rtol, atol);
    check_matches(mm(atc.t(), btc.t()), mm(at.t(), bt.t()), rtol, atol);
    // A strided (padded) leading dimension: a column slice of a wider matrix.
    Tensor wide = randn_cpu({5, 12}, 64, t);
    check_matches(mm(wide.to(kCuda).narrow(1, 2, 7), bc), mm(wide.narrow(1, 2, 7), b), rtol, atol);
    // A larger, non-square product (several cuBLAS tiles).
    Tensor big_a = randn_cpu({129, 257}, 65, t), big_b = randn_cpu({257, 65}, 66, t);
    const double big_tol = t == DType::F64 ? 1e-10 : 1e-4;
    check_matches(matmul(big_a.to(kCuda), big_b.to(kCuda)), matmul(big_a, big_b), big_tol, big_tol);
    // Vector and batched forms, with broadcast batch dims.
    Tensor v = randn_cpu({7}, 67, t);
    check_matches(matmul(ac, v.to(kCuda)), matmul(a, v), rtol, atol);
    check_matches(matmul(v.to(kCuda), bc), matmul(v, b), rtol, atol);
    Tensor ba = randn_cpu({2, 1, 4, 5}, 68, t), bb = randn_cpu({3, 5, 6}, 69, t);
    check_matches(matmul(ba.to(kCuda), bb.to(kCuda)), matmul(ba, bb), rtol, atol);
    Tensor bb2 = randn_cpu({5, 6}, 70, t);
    check_matches(matmul(ba.to(kCuda), bb2.to(kCuda)), matmul(ba, bb2), rtol, atol);
    // k == 0 gives zeros; m == 0 gives an empty result.
    check_matches(mm(zeros({3, 0}, TensorOptions(t, kCuda)), zeros({0, 4}, TensorOptions(t, kCuda))),
                  zeros({3, 4}, t), 0, 0);
    CHECK(mm(zeros({0, 3}, TensorOptions(t, kCuda)), zeros({3, 4}, TensorOptions(t, kCuda))).shape() == Shape{0, 4});

    // linear forward/backward (bias added with beta = 1), inputs moved with .to(cuda).
    Tensor x0 = randn_cpu({2, 3, 7}, 71, t), w0 = randn_cpu({4, 7}, 72, t), b0 = randn_cpu({4}, 73, t);
    Tensor g = randn_cpu({2, 3, 4}, 74, t);
    Tensor x_cpu = x0.clone().requires_grad_(), w_cpu = w0.clone().requires_grad_(), b_cpu = b0.clone().requires_grad_();
    Tensor y_cpu = linear(x_cpu, w_cpu, b_cpu);
    sum(mul(y_cpu, g)).backward();
    Tensor x_leaf = x0.clone().requires_grad_(), w_leaf = w0.clone().requires_grad_(), b_leaf = b0.clone().requires_grad_();
    Tensor y_cuda = linear(x_leaf.to(kCuda), w_leaf.to(kCuda), b_leaf.to(kCuda));
    sum(mul(y_cuda, g.to(kCuda))).backward();
    check_matches(y_cuda, y_cpu.detach(), rtol, atol);
    CHECK_CLOSE(x_leaf.grad(), x_cpu.grad(), rtol, atol);
    CHECK_CLOSE(w_leaf.grad(), w_cpu.grad(), rtol, atol);
    CHECK_CLOSE(b_leaf.grad(), b_cpu.grad(), rtol, atol);
    // matmul backward with transposed operands.
    Tensor p_cpu = at.clone().requires_grad_(), q_cpu = bt.clone().requires_grad_();
    sum(mul(matmul(p_cpu.t(), q_cpu.t()), randn_cpu({5, 3}, 75, t))).backward();
    Tensor p_leaf = at.clone().requires_grad_(), q_leaf = bt.clone().requires_grad_();
    sum(mul(matmul(p_leaf.to(kCuda).t(), q_leaf.to(kCuda).t()), randn_cpu({5, 3}, 75, t).to(kCuda))).backward();
    CHECK_CLOSE(p_leaf.grad(), p_cpu.grad(), rtol, atol);
    CHECK_CLOSE(q_leaf.grad(), q_cpu.grad(), rtol, atol);
  }
  // The gemm stub itself with beta != 0 (accumulate into C).
  Tensor a = randn_cpu({4, 6}, 76), b = randn_cpu({6, 5}, 77), c = randn_cpu({4, 5}, 78);
  Tensor cc = c.to(kCuda), ac = a.to(kCuda), bc = b.to(kCuda);
  GemmArgs g;
  g.m = 4; g.n = 5; g.k = 6; g.alpha = 0.5; g.beta = 2.0;
  g.lda = 6; g.ldb = 5; g.ldc = 5;
  g.a = a.raw_data(); g.b = b.raw_data(); g.c = c.raw_data();
  gemm_stub(Device::cpu())(g);
  g.a = ac.raw_data(); g.b = bc.raw_data(); g.c = cc.raw_data();
  gemm_stub(kCuda)(g);
  check_matches(cc, c, 1e-5, 1e-5);
}

// ---------------------------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------------------------
TEST_CASE("cuda: random fills equal the CPU's bit for bit for the same generator state", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  for (uint64_t seed : {uint64_t(0), uint64_t(42), uint64_t(0x123456789abcdefULL)}) {
    INFO("seed " << seed);
    Generator g_cpu(seed), g_cuda(seed);
    // Draws advance both generators identically; interleave kinds and sizes.
    check_bits_equal<float>(rand({1000}, g_cuda, kCuda), rand({1000}, g_cpu));
    check_bits_equal<float>(randn({33, 31}, g_cuda, kCuda), randn({33, 31}, g_cpu));
    check_bits_equal<double>(rand({517}, g_cuda, TensorOptions(DType::F64, kCuda)), rand({517}, g_cpu, DType::F64));
    Tensor u_cpu = empty({300}), u_cuda = empty({300}, kCuda);
    uniform_(u_cpu, -2.0, 3.0, g_cpu);
    uniform_(u_cuda, -2.0, 3.0, g_cuda);
    check_bits_equal<float>(u_cuda, u_cpu);
    Tensor n_cpu = empty({400}), n_cuda = empty({400}, kCuda);
    normal_(n_cpu, 1.5, 0.25, g_cpu);
    normal_(n_cuda, 1.5, 0.25, g_cuda);
    check_bits_equal<float>(n_cuda, n_cpu);
    // f64 normals go through CUDA's log/cos, which may differ from glibc in the last ulps.
    check_matches(randn({250}, g_cuda, TensorOptions(DType::F64, kCuda)), randn({250}, g_cpu, DType::F64),
                  1e-13, 1e-13);
    // Non-contiguous target: filled through a contiguous temporary.
    Tensor nc_cpu = empty({8, 6}), nc_cuda = empty({8, 6}, kCuda);
    Tensor v_cpu = nc_cpu.t(), v_cuda = nc_cuda.t();
    normal_(v_cpu, 0.0, 1.0, g_cpu);
    normal_(v_cuda, 0.0, 1.0, g_cuda);
    check_bits_equal<float>(nc_cuda, nc_cpu);
    CHECK(g_cpu.offset() == g_cuda.offset());
    // bernoulli is built from rand + lt.
    check_matches(bernoulli({64}, 0.3, g_cuda, kCuda), bernoulli({64}, 0.3, g_cpu), 0, 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Allocator
// ---------------------------------------------------------------------------------------------
#ifdef DLTOOL_WITH_CUDA
TEST_CASE("cuda: the caching allocator reuses freed blocks and reports OOM clearly", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  using cuda::allocator_stats;
  // Size classes.
  CHECK(cuda::allocator_round_size(1) == 512);
  CHECK(cuda::allocator_round_size(512) == 512);
  CHECK(cuda::allocator_round_size(513) == 1024);
  CHECK(cuda::allocator_round_size(size_t(1) << 20) == size_t(1) << 20);
  CHECK(cuda::allocator_round_size((size_t(1) << 20) + 1) == (size_t(1) << 20) + (size_t(1) << 17));
  CHECK(cuda::allocator_round_size(size_t(3) << 29) == size_t(3) << 29);

  allocator_for(DeviceType::CUDA).synchronize();
  void* first = nullptr;
  {
    Tensor t = empty({1 << 18}, kCuda);  // 1 MiB
    first = t.raw_data();
  }
  const cuda::AllocatorStats before = allocator_stats(0);
  CHECK(before.cached_bytes >= (size_t(1) << 20));
  {
    Tensor t = empty({1 << 18}, kCuda);  // same size class: the cached block comes back
    CHECK(t.raw_data() == first);
    const cuda::AllocatorStats during = allocator_stats(0);
    CHECK(during.device_mallocs == before.device_mallocs);
    CHECK(during.cache_hits == before.cache_hits + 1);
    CHECK(during.allocated_bytes == before.allocated_bytes + (size_t(1) << 20));
  }
  // A training-style loop allocates nothing new after its first iteration.
  Generator gen(1);
  Tensor w = randn({64, 64}, gen, kCuda);
  auto step = [&] { return sum(relu(matmul(w, w))).item(); };
  step();
  const uint64_t mallocs = allocator_stats(0).device_mallocs;
  for (int i = 0; i < 5; ++i) step();
  CHECK(allocator_stats(0).device_mallocs == mallocs);

  allocator_for(DeviceType::CUDA).empty_cache();
  CHECK(allocator_stats(0).cached_bytes == 0);
  // Out of memory: the message names the request and the cache.
  {
    Tensor keep = empty({1 << 18}, kCuda);
  }
  CHECK_THROWS_WITH(empty({int64_t(1) << 48}, kCuda),
                    Catch::Contains("CUDA out of memory") && Catch::Contains("tried to allocate") &&
                        Catch::Contains("cached"));
  // The backend still works after the failed allocation.
  CHECK(sum(ones({10}, kCuda)).item() == 10.0);
}
#endif

// ---------------------------------------------------------------------------------------------
// End to end
// ---------------------------------------------------------------------------------------------
TEST_CASE("cuda: a 2-layer MLP forward and backward matches the CPU to 1e-5", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  Generator gen(2024);
  Tensor x = randn({16, 10}, gen);
  Tensor target = randn({16, 4}, gen);
  Tensor w1 = mul(randn({32, 10}, gen), 0.3), b1 = mul(randn({32}, gen), 0.1);
  Tensor w2 = mul(randn({4, 32}, gen), 0.3), b2 = mul(randn({4}, gen), 0.1);

  struct Result {
    double loss;
    TensorList grads;
  };
  auto run = [&](Device d) {
    TensorList params;
    for (const Tensor& p : {w1, b1, w2, b2}) params.push_back(p.detach().to(d).requires_grad_());
    Tensor h = tanh(linear(x.to(d), params[0], params[1]));
    h = relu(h);
    Tensor out = linear(h, params[2], params[3]);
    Tensor loss = mean(pow(sub(out, target.to(d)), 2.0));
    loss.backward();
    Result r{loss.item(), {}};
    for (const Tensor& p : params) {
      CHECK(p.grad().device() == d);
      r.grads.push_back(p.grad().cpu());
    }
    return r;
  };
  Result cpu = run(Device::cpu());
  Result gpu = run(kCuda);
  CHECK(std::fabs(gpu.loss - cpu.loss) <= 1e-5 * std::fabs(cpu.loss));
  for (size_t i = 0; i < cpu.grads.size(); ++i) {
    INFO("parameter " << i);
    CHECK_CLOSE(gpu.grads[i], cpu.grads[i], 1e-5, 1e-6);
  }
  // Run to run, the GPU result is bit-identical (no atomics, one stream).
  Result again = run(kCuda);
  CHECK(again.loss == gpu.loss);
  for (size_t i = 0; i < gpu.grads.size(); ++i) check_bits_equal<float>(again.grads[i], gpu.grads[i]);
}

TEST_CASE("cuda: mixing devices is a clear error", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  Tensor a = ones({3}), b = ones({3}, kCuda);
  CHECK_THROWS_WITH(add(a, b), Catch::Contains("same device"));
  CHECK_THROWS_WITH(mm(ones({2, 2}), ones({2, 2}, kCuda)), Catch::Contains("different devices"));
  CHECK_THROWS_WITH(ones({2}, Device::cuda(cuda_device_count())), Catch::Contains("does not exist"));
}

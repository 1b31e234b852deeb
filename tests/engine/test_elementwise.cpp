// Elementwise ops, activations, type promotion, casts and in-place ops against PyTorch fixtures
// (tests/fixtures/elementwise.txt, made by tests/fixtures/gen_elementwise.py), f64
// finite-difference gradient checks, and thread-count independence.
//
// This file also defines the fixture runner shared with test_linalg.cpp and test_shape.cpp
// (run_op_fixtures below): each fixture case names an op, its inputs, which inputs require
// grad and an optional view per input; the runner applies the views to the stored bases,
// runs the op, back-propagates the stored upstream gradient and compares the output and the
// bases' gradients (values and dtypes) with PyTorch's.
#include <omp.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "engine/ops.h"
#include "tests/support/fixtures.h"
#include "tests/support/gradcheck.h"

using namespace dl;
using dl::test::FixtureCase;

namespace dl::test {

using OpFn = std::function<Tensor(const TensorList& inputs, const FixtureCase& c)>;
using OpTable = std::map<std::string, OpFn>;

std::vector<std::string> split_words(const std::string& s) {
  std::istringstream is(s);
  std::vector<std::string> out;
  for (std::string w; is >> w;) out.push_back(w);
  return out;
}

// Like allclose, but equal infinities match (allclose computes inf - inf = nan and fails),
// and the dtype must match too.
void check_matches(const Tensor& got, const Tensor& want, double rtol, double atol, const std::string& what) {
  INFO(what << ": got " << got.str() << ", expected " << want.str());
  REQUIRE(got.defined());
  CHECK(got.dtype() == want.dtype());
  REQUIRE(got.shape() == want.shape());
  std::vector<double> x = got.to_vector<double>(), y = want.to_vector<double>();
  size_t bad = 0, worst = 0;
  double worst_excess = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if ((std::isnan(x[i]) && std::isnan(y[i])) || x[i] == y[i]) continue;
    double excess = std::fabs(x[i] - y[i]) - (atol + rtol * std::fabs(y[i]));
    if (!(excess <= 0)) {  // also catches nan vs number and inf vs finite
      if (bad == 0 || !(excess <= worst_excess)) { worst = i; worst_excess = excess; }
      ++bad;
    }
  }
  INFO(bad << " of " << x.size() << " elements differ; worst at flat index " << worst << ": got "
            << (x.empty() ? 0.0 : x[worst]) << " expected " << (y.empty() ? 0.0 : y[worst]));
  CHECK(bad == 0);
}

Tensor apply_view(const Tensor& base, const std::string& view) {
  if (view == "t") return base.transpose(-2, -1);
  if (view == "s2") return base.slice(-1, 0, base.size(-1), 2);
  if (view == "p") {
    std::vector<int64_t> dims;
    for (int64_t d = base.dim() - 1; d >= 0; --d) dims.push_back(d);
    return base.permute(dims);
  }
  throw std::invalid_argument("unknown fixture view '" + view + "'");
}

// Runs every case of tests/fixtures/<file> whose op is in `only` (all when empty); returns how
// many ran. Every op a case names must be in `ops`.
int run_op_fixtures(const std::string& file, const OpTable& ops, double rtol, double atol,
                    const std::set<std::string>& only) {
  std::vector<FixtureCase> cases = load_fixtures(file);
  int ran = 0;
  for (const FixtureCase& c : cases) {
    const std::string& op = c.attr("op");
    if (!only.empty() && !only.count(op)) continue;
    INFO("fixture case '" << c.name << "' (op " << op << ")");
    auto it = ops.find(op);
    REQUIRE(it != ops.end());
    std::vector<std::string> keys = split_words(c.attr("inputs"));
    std::vector<std::string> grad_keys = split_words(c.attr("grad"));
    std::set<std::string> wants_grad(grad_keys.begin(), grad_keys.end());
    TensorList bases, inputs;
    for (const std::string& k : keys) {
      Tensor base = c.t(k).clone();
      if (wants_grad.count(k)) base.requires_grad_();
      bases.push_back(base);
      inputs.push_back(c.has("view_" + k) ? apply_view(base, c.attr("view_" + k)) : base);
    }
    Tensor out = it->second(inputs, c);
    check_matches(out, c.t("out"), rtol, atol, "forward");
    if (c.tensors.count("g")) {
      REQUIRE(out.requires_grad());
      out.backward(c.t("g"));
      for (size_t i = 0; i < keys.size(); ++i) {
        if (!wants_grad.count(keys[i])) continue;
        Tensor g = bases[i].grad();
        if (!g.defined()) g = zeros_like(bases[i]);  // no gradient flowed = zeros (torch: None)
        check_matches(g, c.t("grad_" + keys[i]), rtol, atol, "gradient of " + keys[i]);
      }
    } else {
      CHECK_FALSE(out.requires_grad());
    }
    ++ran;
  }
  return ran;
}

}  // namespace dl::test

namespace {

using dl::test::OpTable;
using dl::test::run_op_fixtures;

std::optional<double> opt_attr(const FixtureCase& c, const std::string& key) {
  const std::string& v = c.attr(key);
  if (v == "none") return std::nullopt;
  return std::stod(v);
}

DType parse_dtype(const std::string& s) {
  if (s == "f32") return DType::F32;
  if (s == "f64") return DType::F64;
  if (s == "i64") return DType::I64;
  if (s == "bool") return DType::Bool;
  throw std::invalid_argument("unknown dtype " + s);
}

#define OP(expr) [](const TensorList& x, const FixtureCase& c) -> Tensor { (void)c; return expr; }

const OpTable& elementwise_ops() {
  static const OpTable ops = {
      {"add", OP(add(x[0], x[1], c.attr_f("alpha")))},
      {"sub", OP(sub(x[0], x[1], c.attr_f("alpha")))},
      {"mul", OP(mul(x[0], x[1]))},
      {"div", OP(div(x[0], x[1]))},
      {"pow", OP(pow(x[0], x[1]))},
      {"maximum", OP(maximum(x[0], x[1]))},
      {"minimum", OP(minimum(x[0], x[1]))},
      {"add_s", OP(add(x[0], c.attr_f("s")))},
      {"mul_s", OP(mul(x[0], c.attr_f("s")))},
      {"pow_s", OP(pow(x[0], c.attr_f("s")))},
      {"neg", OP(neg(x[0]))},
      {"exp", OP(exp(x[0]))},
      {"log", OP(log(x[0]))},
      {"sqrt", OP(sqrt(x[0]))},
      {"rsqrt", OP(rsqrt(x[0]))},
      {"abs", OP(abs(x[0]))},
      {"sign", OP(sign(x[0]))},
      {"clamp", OP(clamp(x[0], opt_attr(c, "min"), opt_attr(c, "max")))},
      {"where", OP(where(x[0], x[1], x[2]))},
      {"eq", OP(eq(x[0], x[1]))},
      {"ne", OP(ne(x[0], x[1]))},
      {"lt", OP(lt(x[0], x[1]))},
      {"le", OP(le(x[0], x[1]))},
      {"gt", OP(gt(x[0], x[1]))},
      {"ge", OP(ge(x[0], x[1]))},
      {"eq_s", OP(eq(x[0], c.attr_f("s")))},
      {"ne_s", OP(ne(x[0], c.attr_f("s")))},
      {"lt_s", OP(lt(x[0], c.attr_f("s")))},
      {"le_s", OP(le(x[0], c.attr_f("s")))},
      {"gt_s", OP(gt(x[0], c.attr_f("s")))},
      {"ge_s", OP(ge(x[0], c.attr_f("s")))},
      {"logical_not", OP(logical_not(x[0]))},
      {"relu", OP(relu(x[0]))},
      {"leaky_relu", OP(leaky_relu(x[0], c.attr_f("slope")))},
      {"elu", OP(elu(x[0], c.attr_f("alpha")))},
      {"gelu", OP(gelu(x[0], c.attr("approximate")))},
      {"sigmoid", OP(sigmoid(x[0]))},
      {"tanh", OP(tanh(x[0]))},
      {"softplus", OP(softplus(x[0], c.attr_f("beta"), c.attr_f("threshold")))},
      {"cast", OP(cast(x[0], parse_dtype(c.attr("dtype"))))},
  };
  return ops;
}

// f32 forward and backward vs PyTorch: ~1e-5 relative, 1e-6 absolute.
constexpr double kRtol = 1e-5, kAtol = 1e-6;

int run(const std::set<std::string>& only) {
  return run_op_fixtures("elementwise.txt", elementwise_ops(), kRtol, kAtol, only);
}

Tensor rand_f64(const Shape& s, Generator& gen, double lo, double hi) {
  Tensor t = rand(s, gen, DType::F64);
  return add(mul(t, hi - lo), lo).requires_grad_();
}

// Random f64 values with |v| in [lo, hi) and random sign: away from kinks and poles.
Tensor rand_pm(const Shape& s, Generator& gen, double lo = 0.3, double hi = 2.0) {
  Tensor mag = rand(s, gen, DType::F64) * (hi - lo) + lo;
  Tensor sgn = where(lt(rand(s, gen, DType::F64), 0.5), scalar_tensor(-1.0, DType::F64),
                     scalar_tensor(1.0, DType::F64));
  return mul(mag, sgn).requires_grad_();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// PyTorch parity
// ---------------------------------------------------------------------------------------------
TEST_CASE("elementwise fixtures: every case names a known op", "[elementwise][fixtures]") {
  CHECK(run({}) == static_cast<int>(dl::test::load_fixtures("elementwise.txt").size()));
}

TEST_CASE("binary arithmetic matches PyTorch (broadcast, 0-dim, views, empty)", "[elementwise][fixtures]") {
  CHECK(run({"add", "sub", "mul", "div"}) >= 40);
}

TEST_CASE("pow (scalar and tensor exponent) matches PyTorch incl. zero base", "[elementwise][fixtures]") {
  CHECK(run({"pow", "pow_s"}) >= 20);
}

TEST_CASE("maximum/minimum match PyTorch incl. ties (half gradient each) and NaN", "[elementwise][fixtures]") {
  CHECK(run({"maximum", "minimum"}) >= 26);
}

TEST_CASE("scalar add/mul match PyTorch", "[elementwise][fixtures]") {
  CHECK(run({"add_s", "mul_s"}) >= 3);
}

TEST_CASE("unary math matches PyTorch incl. log/sqrt of 0 and negatives", "[elementwise][fixtures]") {
  CHECK(run({"neg", "exp", "log", "sqrt", "rsqrt", "abs", "sign"}) >= 45);
}

TEST_CASE("clamp matches PyTorch (min only, max only, both, at the bounds, NaN)", "[elementwise][fixtures]") {
  CHECK(run({"clamp"}) == 6);
}

TEST_CASE("where, comparisons and logical_not match PyTorch", "[elementwise][fixtures]") {
  CHECK(run({"where", "eq", "ne", "lt", "le", "gt", "ge", "eq_s", "ne_s", "lt_s", "le_s", "gt_s",
             "ge_s", "logical_not"}) >= 30);
}

TEST_CASE("activations match PyTorch incl. subgradients at 0 and softplus threshold", "[elementwise][fixtures]") {
  CHECK(run({"relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softplus"}) >= 70);
}

TEST_CASE("casts match PyTorch and float casts are differentiable", "[elementwise][fixtures]") {
  CHECK(run({"cast"}) == 6);
}

// ---------------------------------------------------------------------------------------------
// Type promotion beyond the fixtures (uint8 has no fixture dtype)
// ---------------------------------------------------------------------------------------------
TEST_CASE("type promotion follows PyTorch's rules", "[elementwise][promotion]") {
  Tensor f32 = from_vector<float>({1.5f, -2.f}, {2});
  Tensor f64s = scalar_tensor(0.25, DType::F64);
  Tensor i64 = from_vector<int64_t>({3, 4}, {2});
  Tensor i64s = scalar_tensor(2, DType::I64);
  Tensor u8 = from_vector<uint8_t>({250, 7}, {2});
  Tensor b = from_vector<bool>({true, false}, {2});
  CHECK(add(f32, f64s).dtype() == DType::F32);             // 0-dim does not widen a float tensor
  CHECK(add(f64s, f32).dtype() == DType::F32);
  CHECK(add(f32, f32.to(DType::F64)).dtype() == DType::F64);
  CHECK(add(i64, f32).dtype() == DType::F32);              // int op float -> float
  CHECK(add(i64, f64s).dtype() == DType::F64);             // higher category 0-dim wins
  CHECK(add(i64, scalar_tensor(1.f)).dtype() == DType::F32);
  CHECK(add(u8, i64s).dtype() == DType::U8);               // same category: 0-dim does not widen
  CHECK(add(u8, i64s).to_vector<uint8_t>() == std::vector<uint8_t>{252, 9});
  CHECK(add(u8, i64).dtype() == DType::I64);
  CHECK(add(b, i64s).dtype() == DType::I64);
  CHECK(mul(b, f32).dtype() == DType::F32);
  CHECK(where(b, f32, f64s).dtype() == DType::F32);
  CHECK(eq(i64, f32).dtype() == DType::Bool);
  CHECK(eq(i64, from_vector<float>({3.f, 4.5f}, {2})).to_vector<uint8_t>() == std::vector<uint8_t>{1, 0});
  // Python-scalar overloads on integer tensors (torch: int literal keeps the dtype, a float
  // literal gives float32). Our scalars are doubles: an integral value keeps the integer dtype.
  CHECK(mul(i64, 2.0).dtype() == DType::I64);
  CHECK(mul(i64, 2.0).to_vector<int64_t>() == std::vector<int64_t>{6, 8});
  CHECK(mul(i64, 0.5).dtype() == DType::F32);
  CHECK(mul(i64, 0.5).to_vector<float>() == std::vector<float>{1.5f, 2.f});
  CHECK(add(i64, -0.5).to_vector<float>() == std::vector<float>{2.5f, 3.5f});
  CHECK(lt(i64, 3.5).to_vector<uint8_t>() == std::vector<uint8_t>{1, 0});
  CHECK(eq(i64, 3.5).to_vector<uint8_t>() == std::vector<uint8_t>{0, 0});
  CHECK(mul(b, 2.0).dtype() == DType::I64);                // bool * 2 -> int64
  CHECK(mul(b, 2.0).to_vector<int64_t>() == std::vector<int64_t>{2, 0});
  // Integer division is true division (torch.div with rounding_mode=None), also by a double.
  CHECK((i64 / 1.0).dtype() == DType::F32);
  CHECK((i64 / 2.0).to_vector<float>() == std::vector<float>{1.5f, 2.f});
  CHECK(div(i64, i64s).dtype() == DType::F32);
  CHECK(div(from_vector<int64_t>({7, -7}, {2}), i64s).to_vector<float>() == std::vector<float>{3.5f, -3.5f});
}

TEST_CASE("the gradient of a mixed-dtype op has each input's dtype", "[elementwise][promotion][autograd]") {
  Tensor a = from_vector<float>({1.f, 2.f, 3.f}, {3}).requires_grad_();
  Tensor s = scalar_tensor(2.0, DType::F64).requires_grad_();
  Tensor y = mul(a, s);
  REQUIRE(y.dtype() == DType::F32);
  y.sum().backward();
  CHECK(a.grad().dtype() == DType::F32);
  REQUIRE(s.grad().dtype() == DType::F64);
  CHECK(s.grad().item() == 6.0);
  Tensor c = from_vector<double>({1.0, 2.0, 3.0}, {3}).requires_grad_();
  Tensor d = from_vector<float>({0.5f, 0.5f, 0.5f}, {3}).requires_grad_();
  add(c, d).sum().backward();  // f64 result; d's grad comes back as f32
  CHECK(c.grad().dtype() == DType::F64);
  CHECK(d.grad().dtype() == DType::F32);
}

// ---------------------------------------------------------------------------------------------
// Finite-difference gradient checks (f64), away from kinks
// ---------------------------------------------------------------------------------------------
TEST_CASE("binary ops pass gradcheck with broadcasting and views", "[elementwise][gradcheck]") {
  Generator gen(11);
  Tensor a = randn({3, 4}, gen, DType::F64).requires_grad_();
  Tensor b = randn({4}, gen, DType::F64).requires_grad_();
  Tensor c = randn({3, 1}, gen, DType::F64).requires_grad_();
  Tensor s = randn({}, gen, DType::F64).requires_grad_();
  Tensor at = randn({4, 3}, gen, DType::F64).requires_grad_();  // used as at.t(): [3, 4]
  Tensor nz = rand_pm({4}, gen);
  Tensor pos = rand_f64({3, 4}, gen, 0.3, 2.0);
  using L = const TensorList&;
  REQUIRE_GRADCHECK([](L x) { return add(x[0], x[1]); }, (TensorList{a, b}));
  REQUIRE_GRADCHECK([](L x) { return add(x[0], x[1], 2.5); }, (TensorList{c, b}));
  REQUIRE_GRADCHECK([](L x) { return sub(x[0].t(), x[1], -0.5); }, (TensorList{at, s}));
  REQUIRE_GRADCHECK([](L x) { return mul(x[0], x[1]); }, (TensorList{c, b}));
  REQUIRE_GRADCHECK([](L x) { return mul(x[0].t(), x[1]); }, (TensorList{at, a}));
  REQUIRE_GRADCHECK([](L x) { return div(x[0], x[1]); }, (TensorList{a, nz}));
  REQUIRE_GRADCHECK([](L x) { return div(x[1], x[0]); }, (TensorList{nz, s}));
  REQUIRE_GRADCHECK([](L x) { return pow(x[0], x[1]); }, (TensorList{pos, b}));
  REQUIRE_GRADCHECK([](L x) { return pow(x[0], x[1]); }, (TensorList{pos, s}));
  Tensor big = add(a.detach(), 5.0).requires_grad_();  // no ties with a
  REQUIRE_GRADCHECK([](L x) { return maximum(x[0], x[1]); }, (TensorList{a, c}));
  REQUIRE_GRADCHECK([](L x) { return minimum(x[0], x[1]); }, (TensorList{a, c}));
  REQUIRE_GRADCHECK([](L x) { return maximum(x[0], x[1]) + minimum(x[1], x[0]); }, (TensorList{a, big}));
  Tensor cond = gt(randn({3, 1}, gen, DType::F64), 0.0);
  REQUIRE_GRADCHECK([cond](L x) { return where(cond, x[0], x[1]); }, (TensorList{a, b}));
  REQUIRE_GRADCHECK([cond](L x) { return where(cond, x[0], x[1]); }, (TensorList{s, c}));
}

TEST_CASE("unary ops and activations pass gradcheck", "[elementwise][gradcheck]") {
  Generator gen(12);
  Tensor x = rand_pm({3, 4}, gen, 0.05, 3.0);       // kinks at 0 avoided
  Tensor xt = rand_pm({4, 3}, gen, 0.05, 3.0);      // used transposed
  Tensor p = rand_f64({2, 3}, gen, 0.2, 3.0);       // positive
  using L = const TensorList&;
  REQUIRE_GRADCHECK([](L v) { return neg(v[0]); }, TensorList{x});
  REQUIRE_GRADCHECK([](L v) { return exp(v[0].t()); }, TensorList{xt});
  REQUIRE_GRADCHECK([](L v) { return log(v[0]); }, TensorList{p});
  REQUIRE_GRADCHECK([](L v) { return sqrt(v[0]); }, TensorList{p});
  REQUIRE_GRADCHECK([](L v) { return rsqrt(v[0]); }, TensorList{p});
  REQUIRE_GRADCHECK([](L v) { return abs(v[0].t()); }, TensorList{xt});
  REQUIRE_GRADCHECK([](L v) { return add(v[0], 1.75); }, TensorList{x});
  REQUIRE_GRADCHECK([](L v) { return mul(v[0], -0.3); }, TensorList{x});
  for (double e : {2.0, 3.0, 0.5, -1.5, 1.0, 0.0})
    REQUIRE_GRADCHECK([e](L v) { return pow(v[0], e); }, TensorList{p});
  REQUIRE_GRADCHECK([](L v) { return pow(v[0], 3.0); }, TensorList{x});  // negative base, integer exponent
  // clamp: bounds chosen between the sample values (|x| >= 0.05, so +-0.01 is never hit).
  REQUIRE_GRADCHECK([](L v) { return clamp(v[0], -0.51, 0.49); }, TensorList{x});
  REQUIRE_GRADCHECK([](L v) { return clamp(v[0], -0.01, std::nullopt); }, TensorList{x});
  REQUIRE_GRADCHECK([](L v) { return clamp(v[0], std::nullopt, 0.01); }, TensorList{x});
  REQUIRE_GRADCHECK([](L v) { return relu(v[0]); }, TensorList{x});
  REQUIRE_GRADCHECK([](L v) { return leaky_relu(v[0], 0.2); }, TensorList{x});
  REQUIRE_GRADCHECK([](L v) { return elu(v[0], 0.7); }, TensorList{x});
  REQUIRE_GRADCHECK([](L v) { return gelu(v[0]); }, TensorList{x});
  REQUIRE_GRADCHECK([](L v) { return gelu(v[0].t(), "tanh"); }, TensorList{xt});
  REQUIRE_GRADCHECK([](L v) { return sigmoid(v[0]); }, TensorList{x});
  REQUIRE_GRADCHECK([](L v) { return tanh(v[0]); }, TensorList{x});
  REQUIRE_GRADCHECK([](L v) { return softplus(v[0]); }, TensorList{x});
  REQUIRE_GRADCHECK([](L v) { return softplus(v[0], 2.0, 3.0); }, TensorList{x});  // both branches
  // Casts: f64 -> f32 -> f64 loses precision, so check the f64 path through a no-op cast.
  REQUIRE_GRADCHECK([](L v) { return mul(cast(v[0], DType::F64), v[0]); }, TensorList{x});
}

// ---------------------------------------------------------------------------------------------
// Edge cases beyond the fixtures
// ---------------------------------------------------------------------------------------------
TEST_CASE("elementwise ops on empty and 0-dim tensors", "[elementwise]") {
  Tensor e = zeros({0, 3}).requires_grad_();
  Tensor y = sigmoid(mul(add(e, 1.0), from_vector<float>({1, 2, 3}, {3})));
  CHECK(y.shape() == Shape{0, 3});
  y.sum().backward();
  CHECK(e.grad().shape() == Shape{0, 3});
  Tensor s = scalar_tensor(2.0).requires_grad_();
  Tensor z = exp(s);
  CHECK(z.dim() == 0);
  z.backward();
  CHECK(s.grad().item() == Approx(std::exp(2.0)));
  CHECK_THROWS_WITH(gelu(s, "fast"), Catch::Contains("'none' or 'tanh'"));
  CHECK_THROWS_WITH(add(zeros({2, 3}), zeros({3, 2})), Catch::Contains("cannot be broadcast"));
}

TEST_CASE("in-place add_/mul_/fill_/zero_", "[elementwise][inplace]") {
  Generator gen(21);
  Tensor x = randn({3, 4}, gen);
  Tensor o = randn({4}, gen);
  Tensor want = add(x, o, -0.5);
  Tensor y = x.clone();
  uint64_t v0 = y.impl()->version;
  add_(y, o, -0.5);  // broadcast other
  CHECK(y.impl()->version > v0);
  CHECK_CLOSE(y, want, 0, 0);
  // Non-contiguous self: writes through the view into the base.
  Tensor base = x.clone();
  Tensor view = base.t();  // [4, 3]
  add_(view, o.unsqueeze(1), 2.0);
  CHECK_CLOSE(base, add(x, o.unsqueeze(1).t(), 2.0), 0, 0);
  // other of another dtype is cast to self's.
  Tensor d = x.clone();
  add_(d, o.to(DType::F64));
  CHECK(d.dtype() == DType::F32);
  CHECK_CLOSE(d, add(x, o), 0, 0);
  Tensor m = x.clone();
  mul_(m, 3.0);
  CHECK_CLOSE(m, mul(x, 3.0), 0, 0);
  mul_(m, o);
  CHECK_CLOSE(m, mul(mul(x, 3.0), o), 0, 0);
  Tensor sl = x.clone();
  Tensor cols = sl.slice(1, 0, 4, 2);  // every other column
  fill_(cols, 7.0);
  std::vector<float> v = sl.to_vector<float>(), xv = x.to_vector<float>();
  for (int i = 0; i < 12; ++i) CHECK(v[i] == (i % 2 == 0 ? 7.0f : xv[i]));
  zero_(sl);
  CHECK(sl.to_vector<float>() == std::vector<float>(12, 0.0f));
  Tensor iv = from_vector<int64_t>({1, 2}, {2});
  fill_(iv, 5);
  CHECK(iv.to_vector<int64_t>() == std::vector<int64_t>{5, 5});
  // In-place ops are never recorded, and self cannot be broadcast to other's shape.
  Tensor w = ones({2}).requires_grad_();
  {
    NoGradGuard ng;
    add_(w, ones({2}));
  }
  CHECK(w.is_leaf());
  CHECK(w.to_vector<float>() == std::vector<float>{2, 2});
  Tensor small = zeros({4});
  CHECK_THROWS_WITH(add_(small, ones({3, 4})), Catch::Contains("cannot be broadcast"));
  CHECK_THROWS_WITH(mul_(small, ones({2, 4})), Catch::Contains("cannot be broadcast"));
  Tensor expanded = zeros({1, 4}).expand({3, 4});
  CHECK_THROWS_WITH(add_(expanded, ones({3, 4})), Catch::Contains("expanded"));
  // Empty self is fine.
  Tensor e = zeros({0, 4});
  add_(e, ones({4}));
  mul_(e, 2.0);
  fill_(e, 1.0);
  CHECK(e.numel() == 0);
}

// ---------------------------------------------------------------------------------------------
// Thread-count independence: our kernels give bit-identical results at any OMP_NUM_THREADS.
// ---------------------------------------------------------------------------------------------
namespace {

// Runs a battery of elementwise forward/backward kernels on 1e6 elements (contiguous,
// transposed and broadcast layouts) and returns all results.
TensorList elementwise_battery() {
  Generator gen(99);
  Tensor x = randn({1000, 1000}, gen).requires_grad_();
  Tensor y = randn({1000, 1000}, gen);
  Tensor r = randn({1000}, gen);
  TensorList out;
  out.push_back(add(x, y, 0.3));
  out.push_back(mul(x.t(), y));
  out.push_back(div(x, add(abs(r), 0.5)));
  out.push_back(pow(abs(x), 1.7));
  out.push_back(maximum(x, y.t()));
  out.push_back(exp(x));
  out.push_back(log(abs(x)));
  out.push_back(sqrt(abs(y)));
  out.push_back(clamp(x, -0.5, 0.5));
  out.push_back(gelu(x));
  out.push_back(gelu(x, "tanh"));
  out.push_back(elu(x));
  out.push_back(softplus(x.t(), 2.0, 3.0));
  out.push_back(where(gt(y, 0.0), x, r));
  out.push_back(ge(x, y).to(DType::F32));
  Tensor s = tanh(sigmoid(x));
  s.backward(y);  // fused activation backward kernels
  out.push_back(s);
  out.push_back(x.grad());
  Tensor acc = x.detach().clone();
  add_(acc, y.t(), -2.0);
  out.push_back(acc);
  return out;
}

}  // namespace

TEST_CASE("elementwise results are bit-identical with 1 and 2 threads", "[elementwise][threads]") {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  TensorList one = elementwise_battery();
  omp_set_num_threads(2);
  TensorList two = elementwise_battery();
  omp_set_num_threads(saved);
  REQUIRE(one.size() == two.size());
  for (size_t i = 0; i < one.size(); ++i) {
    INFO("result " << i);
    Tensor a = one[i].contiguous(), b = two[i].contiguous();
    REQUIRE(a.numel() == 1000000);
    CHECK(std::memcmp(a.raw_data(), b.raw_data(), a.numel() * a.element_size()) == 0);
  }
}

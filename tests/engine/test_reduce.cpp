// Reductions and softmax: PyTorch fixtures (forward + input gradient, three memory layouts),
// float64 gradient checks, edge cases, and thread-count independence.
#include <omp.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "engine/ops.h"
#include "tests/support/fixtures.h"
#include "tests/support/gradcheck.h"

using namespace dl;
using dl::test::FixtureCase;

namespace {

constexpr double kRtol = 1e-5, kAtol = 1e-6;
// Note: var(x, {1}) would pick the all-elements overload var(x, correction = 1); spell dims out.
using Dims = std::vector<int64_t>;

// Each fixture input is fed contiguous, strided (every other element of a [..., 2] buffer) and
// transposed (dims 0 and -1 swapped; inputs with >= 2 dims).
enum class Layout { Contiguous, Strided, Transposed };

struct LaidOut {
  Tensor leaf;  // what requires grad
  Tensor view;  // what the op sees; equals the fixture tensor
};

LaidOut lay_out(const Tensor& x, Layout layout, bool grad) {
  LaidOut r;
  switch (layout) {
    case Layout::Contiguous: r.leaf = x.clone(); break;
    case Layout::Strided: r.leaf = stack({x, zeros_like(x)}, x.dim()); break;
    case Layout::Transposed: r.leaf = x.transpose(0, -1).contiguous(); break;
  }
  r.leaf = r.leaf.detach();
  if (grad && is_floating(x.dtype())) r.leaf.requires_grad_();
  switch (layout) {
    case Layout::Contiguous: r.view = r.leaf; break;
    case Layout::Strided: r.view = r.leaf.select(-1, 0); break;
    case Layout::Transposed: r.view = r.leaf.transpose(0, -1); break;
  }
  return r;
}

// Gradient of the fixture tensor from the leaf's gradient (zeros when none flowed).
Tensor grad_of(const LaidOut& in, Layout layout) {
  Tensor g = in.leaf.grad().defined() ? in.leaf.grad() : zeros_like(in.leaf);
  if (layout == Layout::Strided) {
    CHECK_CLOSE(g.select(-1, 1), zeros_like(g.select(-1, 1)), 0, 0);  // nothing leaks next door
    return g.select(-1, 0);
  }
  return layout == Layout::Transposed ? g.transpose(0, -1) : g;
}

struct Result {
  Tensor y, idx;
};

Result run_reduce(const FixtureCase& c, const Tensor& x) {
  const std::string& op = c.attr("op");
  auto keep = [&] { return c.attr_i("keepdim") != 0; };
  if (op == "sum") return {sum(x, c.attr_ints("dims"), keep()), {}};
  if (op == "mean") return {mean(x, c.attr_ints("dims"), keep()), {}};
  if (op == "max_dim" || op == "min_dim") {
    auto r = op == "max_dim" ? max(x, c.attr_i("dim"), keep()) : min(x, c.attr_i("dim"), keep());
    return {r.first, r.second};
  }
  if (op == "max_all") return {max(x), {}};
  if (op == "min_all") return {min(x), {}};
  if (op == "argmax") return {argmax(x, c.attr_i("dim"), keep()).to(DType::F32), {}};
  if (op == "argmin") return {argmin(x, c.attr_i("dim"), keep()).to(DType::F32), {}};
  if (op == "var") return {var(x, c.attr_ints("dims"), c.attr_i("correction"), keep()), {}};
  if (op == "std") return {dl::std(x, c.attr_ints("dims"), c.attr_i("correction"), keep()), {}};
  if (op == "var_all") return {var(x, c.attr_i("correction")), {}};
  if (op == "std_all") return {dl::std(x, c.attr_i("correction")), {}};
  if (op == "softmax") return {softmax(x, c.attr_i("dim")), {}};
  if (op == "log_softmax") return {log_softmax(x, c.attr_i("dim")), {}};
  FAIL("unknown op " << op);
  return {};
}

void check_case(const FixtureCase& c, Layout layout) {
  const Tensor& x = c.t("x");
  if (layout == Layout::Transposed && x.dim() < 2) return;
  INFO("case " << c.name << " layout " << static_cast<int>(layout));
  LaidOut in = lay_out(x, layout, c.has("gx"));
  Result r = run_reduce(c, in.view);
  CHECK_CLOSE(r.y, c.t("y"), kRtol, kAtol);
  if (c.has("idx")) {
    CHECK(r.idx.dtype() == DType::I64);
    CHECK_CLOSE(r.idx, c.t("idx"), 0, 0);
  }
  if (c.has("gx")) {
    REQUIRE(r.y.requires_grad());
    r.y.backward(c.t("gout"));
    CHECK_CLOSE(grad_of(in, layout), c.t("gx"), kRtol, kAtol);
  }
}

Tensor rand64(const Shape& s, Generator& gen) { return randn(s, gen, DType::F64).requires_grad_(); }

}  // namespace

TEST_CASE("reductions and softmax match PyTorch (forward, gradient, layouts)", "[reduce][fixtures]") {
  auto cases = dl::test::load_fixtures("reduce.txt");
  REQUIRE(cases.size() > 50);
  for (const auto& c : cases)
    for (Layout l : {Layout::Contiguous, Layout::Strided, Layout::Transposed}) check_case(c, l);
}

TEST_CASE("reduction gradients pass float64 gradcheck", "[reduce][gradcheck]") {
  Generator gen(21);
  Tensor x = rand64({3, 4, 5}, gen);
  Tensor x4 = rand64({2, 3, 2, 3}, gen);
  REQUIRE_GRADCHECK([](const TensorList& in) { return sum(in[0], {0, 2}, true); }, TensorList{x});
  REQUIRE_GRADCHECK([](const TensorList& in) { return mean(in[0].transpose(0, 2), {-1}); }, TensorList{x});
  REQUIRE_GRADCHECK([](const TensorList& in) { return max(in[0], 1).first; }, TensorList{x});
  REQUIRE_GRADCHECK([](const TensorList& in) { return min(in[0], -1, true).first; }, TensorList{x});
  REQUIRE_GRADCHECK([](const TensorList& in) { return max(in[0].transpose(0, 1), 0).first; }, TensorList{x});
  REQUIRE_GRADCHECK([](const TensorList& in) { return max(in[0]); }, TensorList{x});
  REQUIRE_GRADCHECK([](const TensorList& in) { return min(in[0]); }, TensorList{x});
  for (int64_t corr : {0, 1, 2}) {
    REQUIRE_GRADCHECK([corr](const TensorList& in) { return var(in[0], {1}, corr); }, TensorList{x});
    REQUIRE_GRADCHECK([corr](const TensorList& in) { return dl::std(in[0], {0, 2}, corr, true); }, TensorList{x});
    REQUIRE_GRADCHECK([corr](const TensorList& in) { return var(in[0], corr); }, TensorList{x});
    REQUIRE_GRADCHECK([corr](const TensorList& in) { return dl::std(in[0], corr); }, TensorList{x});
  }
  REQUIRE_GRADCHECK([](const TensorList& in) { return var(in[0], {1, 3}); }, TensorList{x4});
  for (int64_t dim : {0, 1, 2, -1}) {
    REQUIRE_GRADCHECK([dim](const TensorList& in) { return softmax(in[0], dim); }, TensorList{x});
    REQUIRE_GRADCHECK([dim](const TensorList& in) { return log_softmax(in[0], dim); }, TensorList{x});
  }
  REQUIRE_GRADCHECK([](const TensorList& in) { return softmax(in[0].permute({3, 1, 0, 2}), 1); }, TensorList{x4});
  REQUIRE_GRADCHECK([](const TensorList& in) { return log_softmax(in[0].transpose(1, 3), 2); }, TensorList{x4});
}

TEST_CASE("column (tiled) and row reduction paths agree", "[reduce]") {
  // dim 1 of [3, 70, 130] runs the tiled column kernels (inner = 130 > one tile); the same
  // reduction over the last dim of the transposed copy runs the row kernels.
  Generator gen(5);
  Tensor x = randn({3, 70, 130}, gen, DType::F64);
  Tensor xt = x.transpose(1, 2).contiguous();  // [3, 130, 70]
  CHECK_CLOSE(sum(x, {1}), sum(xt, {2}), 1e-12, 1e-12);
  CHECK_CLOSE(var(x, {1}, 1), var(xt, {2}, 1), 1e-12, 1e-12);
  CHECK_CLOSE(max(x, 1).first, max(xt, 2).first, 0, 0);
  CHECK_CLOSE(max(x, 1).second, max(xt, 2).second, 0, 0);
  CHECK_CLOSE(argmin(x, 1), argmin(xt, 2), 0, 0);
  CHECK_CLOSE(softmax(x, 1), softmax(xt, 2).transpose(1, 2), 1e-12, 1e-15);
  CHECK_CLOSE(log_softmax(x, 1), log_softmax(xt, 2).transpose(1, 2), 1e-12, 1e-12);
  // Single-output blocked path vs rows.
  Tensor big = randn({5, 10000}, gen, DType::F64);
  CHECK(sum(big).item() == Approx(sum(sum(big, {1})).item()).epsilon(1e-12));
  CHECK(var(big, 0).item() == Approx(var(big.reshape({-1}), {0}, 0).item()).epsilon(1e-12));
  // The blocked max finds the first occurrence across blocks.
  Tensor flat = zeros({20000});
  {
    NoGradGuard ng;
    flat.narrow(0, 9000, 1).copy_(full({1}, 3.0));
    flat.narrow(0, 15000, 1).copy_(full({1}, 3.0));
  }
  CHECK(argmax(flat, 0).item() == 9000);
  CHECK(max(flat, 0).second.item() == 9000);
  CHECK(max(flat).item() == 3.0);
}

TEST_CASE("max/min/argmax on integer and bool tensors with no grad for indices", "[reduce]") {
  Tensor l = from_vector<int64_t>({3, 7, 7, -2, 0, 5}, {2, 3});
  auto [v, i] = max(l, 1);
  CHECK(v.dtype() == DType::I64);
  CHECK(v.to_vector<int64_t>() == std::vector<int64_t>{7, 5});
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{1, 2});
  CHECK(argmin(l, 0).to_vector<int64_t>() == std::vector<int64_t>{1, 1, 1});
  CHECK(max(l).item() == 7);
  CHECK(min(l).item() == -2);
  Tensor b = from_vector<float>({0, 1, 1, 0}, {4}).to(DType::Bool);
  CHECK(argmax(b, 0).item() == 1);
  Tensor x = from_vector<float>({1, 2, 3}, {3}).requires_grad_();
  CHECK_FALSE(argmax(x, 0).requires_grad());
  CHECK_FALSE(max(x, 0).second.requires_grad());
  CHECK(max(x, 0).first.requires_grad());
}

TEST_CASE("reduction edge cases and errors", "[reduce]") {
  CHECK_THROWS_WITH(max(zeros({0})), Catch::Contains("numel() == 0"));
  CHECK_THROWS_WITH(max(zeros({2, 0}), 1), Catch::Contains("non-zero size"));
  CHECK(max(zeros({0, 3}), 1).first.shape() == Shape{0});
  CHECK_THROWS_AS(max(zeros({2, 3}), 2), std::exception);
  CHECK_THROWS_WITH(softmax(arange(4), 0), Catch::Contains("floating"));
  CHECK_THROWS_WITH(var(arange(4), 1), Catch::Contains("floating"));
  CHECK_THROWS_WITH(sum(zeros({2, 3}), {1, -1}), Catch::Contains("more than once"));
  // 0-dim inputs.
  Tensor s = scalar_tensor(2.5);
  CHECK(softmax(s, 0).item() == 1.0);
  CHECK(log_softmax(s, -1).item() == 0.0);
  CHECK(max(s, 0).first.item() == 2.5);
  CHECK(max(s, 0).second.item() == 0);
  CHECK(sum(s, {0}).item() == 2.5);
  CHECK(std::isnan(var(s, 1).item()));
  // var with too few elements: nan (0/0) or inf (x/0), like PyTorch.
  CHECK(std::isnan(var(from_vector<float>({1}, {1}), Dims{0}).item()));
  CHECK(std::isinf(var(from_vector<float>({1, 2}, {2}), {0}, 3).item()));
  CHECK(std::isnan(var(zeros({0})).item()));
  CHECK(var(zeros({3, 0}), Dims{1}).shape() == Shape{3});
  CHECK(std::isnan(var(zeros({3, 0}), Dims{1}).to_vector<float>()[0]));
  // softmax of -inf entries, and NaN rows.
  const float inf = std::numeric_limits<float>::infinity();
  Tensor m = from_vector<float>({0, -inf, 0, -inf}, {4});
  CHECK(softmax(m, 0).to_vector<float>() == std::vector<float>{0.5f, 0, 0.5f, 0});
  Tensor n = from_vector<float>({1, NAN, 2}, {3});
  for (float v : softmax(n, 0).to_vector<float>()) CHECK(std::isnan(v));
  // The std gradient is 0 (not NaN) where std == 0, like PyTorch.
  Tensor c = full({3}, 1.0).requires_grad_();
  dl::std(c, 1).backward();
  CHECK(c.grad().to_vector<float>() == std::vector<float>{0, 0, 0});
}

TEST_CASE("sum, mean, var, softmax, max and cross_entropy are bit-identical with 1 and 2 threads",
          "[reduce][determinism]") {
  Generator gen(99);
  Tensor x = randn({1000, 1000}, gen);  // 1e6 elements
  Tensor col = randn({64, 128, 129}, gen);
  Tensor logits = randn({4096, 10}, gen).requires_grad_();
  std::vector<int64_t> lv(4096);
  for (size_t i = 0; i < lv.size(); ++i) lv[i] = static_cast<int64_t>((i * 7 + 3) % 10);
  Tensor labels = from_vector(lv, {4096});
  auto run = [&] {
    TensorList r = {sum(x), mean(x), sum(x, {0}), sum(x, {1}), mean(col, {1}), sum(x.reshape({-1}), {0}),
                    var(x, 1), dl::std(x, Dims{0}), var(x, Dims{1}), var(col, {0, 2}),
                    softmax(x, 1), softmax(x, 0), log_softmax(col, 1), max(x), max(x, 0).first,
                    min(col, 1).second, argmax(x, 1)};
    logits.zero_grad();
    Tensor loss = cross_entropy(logits, labels, Tensor(), -100, Reduction::Mean, 0.1);
    loss.backward();
    r.push_back(loss);
    r.push_back(logits.grad());
    Tensor sx = x.detach().requires_grad_();
    Tensor y = softmax(sx, 0);
    y.backward(x);
    r.push_back(sx.grad());
    return r;
  };
  const int prev = omp_get_max_threads();
  omp_set_num_threads(1);
  TensorList one = run();
  omp_set_num_threads(2);
  TensorList two = run();
  omp_set_num_threads(prev);
  REQUIRE(one.size() == two.size());
  for (size_t k = 0; k < one.size(); ++k) {
    INFO("result " << k);
    CHECK_CLOSE(one[k], two[k], 0, 0);
  }
}

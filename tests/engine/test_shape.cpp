// cat, stack, index_select, one_hot and the tensor view ops (values and gradients) against
// PyTorch fixtures (tests/fixtures/shape.txt), f64 gradient checks and error messages.
#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <set>

#include "engine/ops.h"
#include "tests/support/fixtures.h"
#include "tests/support/gradcheck.h"

using namespace dl;
using dl::test::FixtureCase;

namespace dl::test {
// Defined in test_elementwise.cpp.
using OpFn = std::function<Tensor(const TensorList& inputs, const FixtureCase& c)>;
using OpTable = std::map<std::string, OpFn>;
int run_op_fixtures(const std::string& file, const OpTable& ops, double rtol, double atol,
                    const std::set<std::string>& only);
}  // namespace dl::test

namespace {

#define OP(expr) [](const TensorList& x, const FixtureCase& c) -> Tensor { (void)c; return expr; }

const dl::test::OpTable& shape_ops() {
  static const dl::test::OpTable ops = {
      {"cat", OP(cat(x, c.attr_i("dim")))},
      {"stack", OP(stack(x, c.attr_i("dim")))},
      {"index_select", OP(index_select(x[0], c.attr_i("dim"), x[1]))},
      {"one_hot", OP(one_hot(x[0], c.attr_i("classes")))},
      {"view", OP(x[0].view(c.attr_ints("shape")))},
      {"reshape", OP(x[0].reshape(c.attr_ints("shape")))},
      {"flatten", OP(x[0].flatten(c.attr_i("start"), c.attr_i("end")))},
      {"transpose", OP(x[0].transpose(c.attr_i("d0"), c.attr_i("d1")))},
      {"permute", OP(x[0].permute(c.attr_ints("dims")))},
      {"narrow", OP(x[0].narrow(c.attr_i("dim"), c.attr_i("start"), c.attr_i("length")))},
      {"slice", [](const TensorList& x, const FixtureCase& c) {
         std::vector<int64_t> a = c.attr_ints("args");  // dim start end step
         return x[0].slice(a[0], a[1], a[2], a[3]);
       }},
      {"select", OP(x[0].select(c.attr_i("dim"), c.attr_i("index")))},
      {"squeeze", OP(x[0].squeeze(c.attr_i("dim")))},
      {"squeeze_all", OP(x[0].squeeze())},
      {"unsqueeze", OP(x[0].unsqueeze(c.attr_i("dim")))},
      {"expand", OP(x[0].expand(c.attr_ints("shape")))},
      {"chain", OP(x[0].transpose(0, 2).reshape({4, 6}).slice(1, 1, 5, 2).unsqueeze(0).expand({3, 4, 2}))},
  };
  return ops;
}

int run(const std::set<std::string>& only) {
  // Pure data movement (and sums of a few gradients): tight tolerances.
  return dl::test::run_op_fixtures("shape.txt", shape_ops(), 1e-6, 1e-7, only);
}

}  // namespace

TEST_CASE("shape fixtures: every case names a known op", "[shape][fixtures]") {
  CHECK(run({}) == static_cast<int>(dl::test::load_fixtures("shape.txt").size()));
}

TEST_CASE("cat and stack match PyTorch (any dim, views, empty parts, partial grad)", "[shape][fixtures]") {
  CHECK(run({"cat", "stack"}) == 13);
}

TEST_CASE("index_select and one_hot match PyTorch (repeated indices accumulate)", "[shape][fixtures]") {
  CHECK(run({"index_select", "one_hot"}) == 8);
}

TEST_CASE("view ops match PyTorch and route gradients to the base", "[shape][fixtures][autograd]") {
  CHECK(run({"view", "reshape", "flatten", "transpose", "permute", "narrow", "slice", "select",
             "squeeze", "squeeze_all", "unsqueeze", "expand", "chain"}) >= 28);
}

TEST_CASE("shape ops pass gradcheck", "[shape][gradcheck]") {
  Generator gen(31);
  auto r = [&](const Shape& s) { return randn(s, gen, DType::F64).requires_grad_(); };
  using L = const TensorList&;
  Tensor a = r({2, 3}), b = r({2, 2}), c = r({1, 3});
  REQUIRE_GRADCHECK([](L x) { return cat({x[0], x[2], x[0]}, 0); }, (TensorList{a, b, c}));
  REQUIRE_GRADCHECK([](L x) { return cat({x[1].t(), x[0].t()}, 0); }, (TensorList{a, b}));
  REQUIRE_GRADCHECK([](L x) { return stack({x[0], x[1].slice(1, 0, 2).t().t(), x[0]}, -1); },
                    (TensorList{b, a}));
  REQUIRE_GRADCHECK([](L x) { return stack({x[0], x[0].t().t()}, 1); }, (TensorList{a}));
  Tensor idx = from_vector<int64_t>({2, 0, 2, 2}, {4});
  REQUIRE_GRADCHECK([idx](L x) { return index_select(x[0], 1, idx); }, (TensorList{a}));
  REQUIRE_GRADCHECK([idx](L x) { return index_select(x[0].t(), 0, idx); }, (TensorList{a}));
  Tensor x3 = r({2, 3, 4});
  REQUIRE_GRADCHECK([](L x) { return x[0].narrow(2, 1, 2).select(0, 1); }, (TensorList{x3}));
  REQUIRE_GRADCHECK([](L x) { return x[0].flatten(0, 1).slice(0, 1, 6, 3); }, (TensorList{x3}));
  REQUIRE_GRADCHECK([](L x) { return x[0].unsqueeze(1).squeeze(1).squeeze(); }, (TensorList{x3}));
  REQUIRE_GRADCHECK([](L x) { return x[0].permute({1, 2, 0}).reshape({-1}); }, (TensorList{x3}));
  REQUIRE_GRADCHECK([](L x) { return x[0].select(2, -1).unsqueeze(0).expand({2, 2, 3}); }, (TensorList{x3}));
  REQUIRE_GRADCHECK([](L x) { return x[0].view({4, 6}).t().reshape({6, 2, 2}); }, (TensorList{x3}));
}

TEST_CASE("shape ops reject bad arguments with clear errors", "[shape]") {
  Tensor a = zeros({2, 3});
  CHECK_THROWS_WITH(cat({a, zeros({2, 4})}, 0), Catch::Contains("sizes must match except in dim 0"));
  CHECK_THROWS_WITH(cat({a, zeros({2, 3, 1})}, 0), Catch::Contains("does not match tensor 0"));
  CHECK_THROWS_WITH(cat({}, 0), Catch::Contains("non-empty"));
  CHECK_THROWS_WITH(cat({a}, 2), Catch::Contains("out of range"));
  CHECK_THROWS_WITH(stack({a, zeros({3, 2})}, 0), Catch::Contains("same shape"));
  CHECK_THROWS_WITH(index_select(a, 0, from_vector<int64_t>({2}, {1})), Catch::Contains("out of range"));
  CHECK_THROWS_WITH(index_select(a, 0, from_vector<float>({0.f}, {1})), Catch::Contains("int64"));
  CHECK_THROWS_WITH(index_select(a, 0, zeros({1, 1}, DType::I64)), Catch::Contains("0-d or 1-d"));
  CHECK_THROWS_WITH(index_select(scalar_tensor(1.0), 0, zeros({1}, DType::I64)), Catch::Contains("at least 1 dim"));
  CHECK_THROWS_WITH(one_hot(from_vector<int64_t>({0, 3}, {2}), 3), Catch::Contains("out of range"));
  CHECK_THROWS_WITH(a.view({4, 2}), Catch::Contains("invalid for input of shape [2, 3]"));
  CHECK_THROWS_WITH(a.expand({3, 3}), Catch::Contains("cannot expand"));
  CHECK_THROWS_WITH(a.narrow(1, 2, 2), Catch::Contains("out of bounds"));
  CHECK_THROWS_WITH(a.permute({0, 0}), Catch::Contains("repeated dim"));
}

TEST_CASE("one_hot dtype and index_select on views", "[shape]") {
  Tensor l = from_vector<int64_t>({1, 0}, {2});
  CHECK(one_hot(l, 2).dtype() == DType::F32);
  CHECK(one_hot(l, 2, DType::I64).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 1, 0});
  // Indices given as a non-contiguous view.
  Tensor idx = from_vector<int64_t>({2, 9, 0, 9}, {4}).slice(0, 0, 4, 2);  // [2, 0]
  Tensor x = arange(6, DType::F32).reshape({3, 2});
  CHECK(index_select(x, 0, idx).to_vector<float>() == std::vector<float>{4, 5, 0, 1});
}

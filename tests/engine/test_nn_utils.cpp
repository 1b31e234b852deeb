// torch.nn.utils.parameters_to_vector / vector_to_parameters (engine/nn/utils.h), checked
// against values written out by hand.
#include <catch2/catch.hpp>

#include "engine/nn/utils.h"
#include "engine/ops.h"
#include "tests/support/fixtures.h"

using namespace dl;

TEST_CASE("parameters_to_vector concatenates the flattened parameters in order", "[nn][utils]") {
  Tensor w = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}).requires_grad_();
  Tensor b = from_vector<float>({7, 8}, {2}).requires_grad_();
  Tensor s = from_vector<float>({9}, {}).requires_grad_();
  Tensor v = nn::parameters_to_vector({w, b, s});
  CHECK(v.shape() == Shape{9});
  CHECK(v.to_vector<float>() == std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9});
  // A non-contiguous parameter is read in its logical (row-major) order: w^T = [[1, 4], [2, 5], [3, 6]].
  CHECK(nn::parameters_to_vector({w.t()}).to_vector<float>() == std::vector<float>{1, 4, 2, 5, 3, 6});
  // Differentiable like torch's (cat of views): d(sum(v * k))/dw = k's slice.
  Tensor k = from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {9});
  sum(mul(v, k)).backward();
  CHECK(w.grad().to_vector<float>() == std::vector<float>{1, 2, 3, 4, 5, 6});
  CHECK(b.grad().to_vector<float>() == std::vector<float>{7, 8});
  CHECK(s.grad().item() == 9);
  CHECK(nn::parameters_to_vector({}).numel() == 0);
  CHECK_THROWS_WITH(nn::parameters_to_vector({w, zeros({2}, DType::F64)}), Catch::Contains("different dtypes"));
}

TEST_CASE("vector_to_parameters copies slices into the parameters in place", "[nn][utils]") {
  Tensor w = zeros({2, 2}).requires_grad_();
  Tensor b = zeros({3}).requires_grad_();
  const void* w_data = w.raw_data();
  Tensor v = from_vector<double>({0.5, -1, 2, 3.25, 10, 20, 30}, {7});
  nn::vector_to_parameters(v, {w, b});
  CHECK(w.to_vector<float>() == std::vector<float>{0.5f, -1, 2, 3.25f});
  CHECK(b.to_vector<float>() == std::vector<float>{10, 20, 30});
  CHECK(w.raw_data() == w_data);  // same storage: the parameter keeps its identity
  CHECK(w.is_leaf());
  CHECK(w.requires_grad());
  // vec is not aliased: changing it later leaves the parameters alone.
  Tensor v2 = v.clone();
  nn::vector_to_parameters(v2, {w, b});
  fill_(v2, 0);
  CHECK(b.to_vector<float>() == std::vector<float>{10, 20, 30});
  // Round trip.
  CHECK(nn::parameters_to_vector({w, b}).to_vector<float>() ==
        std::vector<float>{0.5f, -1, 2, 3.25f, 10, 20, 30});
  CHECK_THROWS_WITH(nn::vector_to_parameters(zeros({6}), {w, b}),
                    Catch::Contains("the vector has 6 elements, the parameters hold 7"));
  CHECK_THROWS_WITH(nn::vector_to_parameters(zeros({7, 1}), {w, b}), Catch::Contains("expected a 1-d vector"));
  CHECK_THROWS_WITH(nn::vector_to_parameters(Tensor(), {w, b}), Catch::Contains("undefined"));
}

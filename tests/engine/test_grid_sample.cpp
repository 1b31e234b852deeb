// affine_grid and grid_sample (engine/ops/grid_sample.h): PyTorch parity for every mode x
// padding_mode x align_corners with grid points outside [-1, 1] (tests/fixtures/
// gen_grid_sample.py), f64 gradient checks of input, grid and theta, thread-count independence
// of the backward, and bad input.
#include <omp.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "engine/ops.h"
#include "tests/support/fixtures.h"
#include "tests/support/op_fixture.h"
#include "tests/support/gradcheck.h"

using namespace dl;
using dl::test::FixtureCase;

namespace {

constexpr double kRtol = 1e-5, kAtol = 1e-5;

using dl::test::leaf;

Tensor sample_of(const FixtureCase& c, const Tensor& x, const Tensor& grid) {
  return grid_sample(x, grid, c.attr("mode"), c.attr("padding_mode"), c.attr_i("align_corners") != 0);
}

// Random grid values in (-reach, reach) in f64.
Tensor random_grid(const Shape& shape, double reach, Generator& gen) {
  return (rand(shape, gen, DType::F64) * 2.0 - 1.0) * reach;
}

}  // namespace

TEST_CASE("grid_sample and affine_grid match PyTorch, forward and gradients", "[grid_sample]") {
  const auto cases = dl::test::load_fixtures("grid_sample.txt");
  REQUIRE(cases.size() >= 26);
  for (const FixtureCase& c : cases) {
    INFO(c.name);
    const std::string op = c.attr("op");
    const bool align = c.attr_i("align_corners") != 0;
    if (op == "grid_sample") {
      Tensor x = leaf(c.t("x")), grid = leaf(c.t("grid"));
      Tensor y = sample_of(c, x, grid);
      CHECK_CLOSE(y, c.t("y"), kRtol, kAtol);
      sum(y * c.t("gy")).backward();
      CHECK_CLOSE(x.grad(), c.t("gx"), kRtol, kAtol);
      CHECK_CLOSE(grid.grad(), c.t("ggrid"), kRtol, kAtol);
    } else if (op == "affine_grid") {
      Tensor theta = leaf(c.t("theta"));
      auto size = c.attr_ints("size");
      Tensor y = affine_grid(theta, Shape(size.begin(), size.end()), align);
      CHECK_CLOSE(y, c.t("y"), kRtol, kAtol);
      sum(y * c.t("gy")).backward();
      CHECK_CLOSE(theta.grad(), c.t("gtheta"), kRtol, kAtol);
    } else {  // stn: affine_grid -> grid_sample
      Tensor x = leaf(c.t("x")), theta = leaf(c.t("theta"));
      Tensor grid = affine_grid(theta, x.shape(), align);
      Tensor y = grid_sample(x, grid, "bilinear", c.attr("padding_mode"), align);
      CHECK_CLOSE(y, c.t("y"), kRtol, kAtol);
      sum(y * c.t("gy")).backward();
      CHECK_CLOSE(x.grad(), c.t("gx"), kRtol, kAtol);
      CHECK_CLOSE(theta.grad(), c.t("gtheta"), kRtol, 1e-4);  // a sum over every output pixel
    }
  }
}

TEST_CASE("grid_sample gradcheck in f64: input and grid, every padding mode", "[grid_sample][gradcheck]") {
  Generator gen(3);
  for (const char* padding : {"zeros", "border", "reflection"})
    for (bool align : {false, true}) {
      INFO(padding << (align ? " align_corners" : ""));
      Tensor x = randn({2, 2, 4, 3}, gen, DType::F64).requires_grad_();
      Tensor grid = random_grid({2, 3, 2, 2}, 2.5, gen).requires_grad_();
      REQUIRE_GRADCHECK([&](const TensorList& in) { return grid_sample(in[0], in[1], "bilinear", padding, align); },
                        (TensorList{x, grid}));
      // Nearest: linear in the input (the grid's gradient is zero, as torch).
      Tensor xn = randn({1, 2, 3, 4}, gen, DType::F64).requires_grad_();
      Tensor gn = random_grid({1, 2, 3, 2}, 1.5, gen);
      REQUIRE_GRADCHECK([&](const TensorList& in) { return grid_sample(in[0], gn, "nearest", padding, align); },
                        (TensorList{xn}));
    }
}

TEST_CASE("affine_grid gradcheck in f64, alone and into grid_sample", "[grid_sample][gradcheck]") {
  Generator gen(5);
  for (bool align : {false, true}) {
    INFO((align ? "align_corners" : "no align_corners"));
    Tensor theta = randn({2, 2, 3}, gen, DType::F64).requires_grad_();
    REQUIRE_GRADCHECK([&](const TensorList& in) { return affine_grid(in[0], {2, 1, 3, 4}, align); },
                      (TensorList{theta}));
    Tensor x = randn({2, 2, 5, 4}, gen, DType::F64).requires_grad_();
    Tensor near_identity = (randn({2, 2, 3}, gen, DType::F64) * 0.2 +
                            from_vector<double>({1, 0, 0, 0, 1, 0}, {1, 2, 3})).detach().requires_grad_();
    REQUIRE_GRADCHECK(
        [&](const TensorList& in) {
          return grid_sample(in[0], affine_grid(in[1], in[0].shape(), align), "bilinear", "reflection", align);
        },
        (TensorList{x, near_identity}));
  }
}

TEST_CASE("grid_sample: the identity transform reproduces the input, nearest picks pixels", "[grid_sample]") {
  Generator gen(7);
  Tensor x = randn({2, 3, 5, 6}, gen);
  Tensor theta = from_vector<float>({1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0}, {2, 2, 3});
  for (bool align : {false, true}) {
    Tensor grid = affine_grid(theta, x.shape(), align);
    CHECK_CLOSE(grid_sample(x, grid, "bilinear", "zeros", align), x, 1e-5, 1e-5);
    CHECK_CLOSE(grid_sample(x, grid, "nearest", "zeros", align), x, 0.0, 0.0);
  }
  // A point at a pixel's centre reads it exactly; one left of the input reads 0 / the edge.
  Tensor img = from_vector<float>({1, 2, 3, 4}, {1, 1, 2, 2});
  Tensor pts = from_vector<float>({1, -1, -3, 1}, {1, 1, 2, 2});  // (x, y): top-right, far left
  CHECK(grid_sample(img, pts, "bilinear", "zeros", true).to_vector<float>() == std::vector<float>{2, 0});
  CHECK(grid_sample(img, pts, "bilinear", "border", true).to_vector<float>() == std::vector<float>{2, 3});
}

TEST_CASE("grid_sample: backward is identical at any thread count", "[grid_sample]") {
  Generator gen(11);
  Tensor x0 = randn({5, 3, 9, 8}, gen), g0 = random_grid({5, 7, 6, 2}, 1.3, gen).to(DType::F32);
  Tensor gy = randn({5, 3, 7, 6}, gen);
  auto run = [&](int threads) {
    const int prev = omp_get_max_threads();
    omp_set_num_threads(threads);
    Tensor x = x0.clone().requires_grad_(), g = g0.clone().requires_grad_();
    Tensor y = grid_sample(x, g, "bilinear", "reflection", false);
    sum(y * gy).backward();
    omp_set_num_threads(prev);
    return std::make_pair(x.grad().to_vector<float>(), g.grad().to_vector<float>());
  };
  auto one = run(1), two = run(2), three = run(3);
  CHECK(one == two);
  CHECK(one == three);
}

TEST_CASE("grid_sample: huge, infinite and NaN grid values read nothing outside the input", "[grid_sample]") {
  // What torch 1.13 gives on the CPU: bilinear zeros-padding weights of an infinite or NaN point
  // are NaN (inf - inf); every other case reads 0 or an edge pixel.
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  Tensor x = ones({1, 1, 3, 3});
  Tensor grid = from_vector<float>({1e30f, 0, -1e30f, 0, inf, -inf, nan, 0, 0, nan, 3e9f, -3e9f}, {1, 2, 3, 2});
  for (const char* mode : {"bilinear", "nearest"})
    for (const char* padding : {"zeros", "border", "reflection"}) {
      INFO(mode << " " << padding);
      const bool zeros = std::string(padding) == "zeros", nan_points = zeros && std::string(mode) == "bilinear";
      Tensor g = grid.clone().requires_grad_(), xi = x.clone().requires_grad_();
      Tensor y = grid_sample(xi, g, mode, padding, false);
      const auto v = y.to_vector<float>();
      for (size_t i = 0; i < v.size(); ++i) {
        INFO("point " << i);
        if (nan_points && i >= 2 && i <= 4) CHECK(std::isnan(v[i]));
        else CHECK(v[i] == (zeros ? 0.0f : 1.0f));
      }
      sum(y).backward();  // no out-of-bounds accumulation either
      CHECK(xi.grad().shape() == x.shape());
    }
}

TEST_CASE("grid_sample and affine_grid refuse bad input with PyTorch's messages", "[grid_sample][errors]") {
  Tensor x = zeros({2, 3, 4, 5});
  auto grid = [](const Shape& s) { return zeros(s); };
  using Catch::Contains;
  CHECK_THROWS_WITH(grid_sample(x, grid({3, 4, 4, 2})), Contains("same batch size") && Contains("[2, 3, 4, 5]") &&
                                                            Contains("[3, 4, 4, 2]"));
  CHECK_THROWS_WITH(grid_sample(x, grid({2, 4, 4, 3})), Contains("size 2 in last dimension"));
  CHECK_THROWS_WITH(grid_sample(x, grid({2, 4, 2})), Contains("4-d grid") && Contains("[2, 4, 2]"));
  CHECK_THROWS_WITH(grid_sample(zeros({3, 4, 5}), grid({3, 4, 4, 2})), Contains("4-d input"));
  CHECK_THROWS_WITH(grid_sample(zeros({2, 3, 0, 5}), grid({2, 4, 4, 2})), Contains("non-empty spatial"));
  CHECK_THROWS_WITH(grid_sample(x, grid({2, 4, 4, 2}).to(DType::F64)), Contains("same dtype"));
  CHECK_THROWS_WITH(grid_sample(x, grid({2, 4, 4, 2}), "cubic", "zeros", false),
                    Contains("mode") && Contains("'cubic'"));
  CHECK_THROWS_WITH(grid_sample(x, grid({2, 4, 4, 2}), "bicubic", "zeros", false), Contains("not supported"));
  CHECK_THROWS_WITH(grid_sample(x, grid({2, 4, 4, 2}), "bilinear", "wrap", false),
                    Contains("padding_mode") && Contains("'wrap'"));
  CHECK_THROWS_AS(grid_sample(x, grid({3, 4, 4, 2})), std::invalid_argument);

  Tensor theta = zeros({2, 2, 3});
  CHECK_THROWS_WITH(affine_grid(zeros({2, 3, 3}), {2, 1, 4, 4}), Contains("Nx2x3") && Contains("[2, 3, 3]"));
  CHECK_THROWS_WITH(affine_grid(theta, {3, 1, 4, 4}), Contains("Nx2x3") && Contains("[3, 1, 4, 4]"));
  CHECK_THROWS_WITH(affine_grid(theta, {2, 1, 0, 4}), Contains("positive output size"));
  CHECK_THROWS_WITH(affine_grid(theta, {2, 1, 4}), Contains("[N, C, H, W]"));
  CHECK_THROWS_WITH(affine_grid(zeros({2, 2, 3}, DType::I64), {2, 1, 4, 4}), Contains("floating"));
}

// interpolate (engine/ops/interpolate.h) and nn::Upsample: PyTorch parity for every mode,
// align_corners both ways, size and scale_factor, up- and down-sampling
// (tests/fixtures/gen_interpolate.py), f64 gradient checks, thread-count independence, errors.
#include <omp.h>

#include <catch2/catch.hpp>
#include <sstream>

#include "engine/nn/nn.h"
#include "engine/ops.h"
#include "tests/support/fixtures.h"
#include "tests/support/gradcheck.h"

using namespace dl;
using dl::test::FixtureCase;

namespace {

// f32 sums (bicubic's four taps per dim, gradients gathering many outputs) carry rounding error
// proportional to the summands, not to the (possibly cancelled) result.
double scaled_atol(const Tensor& ref) { return 1e-6 * std::max(1.0, 2.0 * max(abs(ref)).item()); }

// The fixture case's call: size or scale_factor, align_corners when given.
Tensor interp_of(const FixtureCase& c, const Tensor& x) {
  std::optional<Pair> size;
  std::optional<std::array<double, 2>> scale;
  std::optional<bool> ac;
  if (c.has("size")) {
    auto v = c.attr_ints("size");
    size = Pair{v[0], v[1]};
  } else {
    std::istringstream in(c.attr("scale_factor"));
    std::array<double, 2> f{};
    in >> f[0] >> f[1];
    scale = f;
  }
  if (c.has("align_corners")) ac = c.attr_i("align_corners") != 0;
  return interpolate(x, size, scale, c.attr("mode"), ac);
}

}  // namespace

TEST_CASE("interpolate forward and backward match PyTorch", "[nn][interpolate]") {
  auto cases = dl::test::load_fixtures("interpolate.txt");
  REQUIRE(cases.size() >= 28);
  for (const FixtureCase& c : cases) {
    for (DType dtype : {DType::F32, DType::F64}) {
      INFO("case " << c.name << " dtype " << dtype_name(dtype));
      Tensor x = c.t("x").to(dtype).clone().detach().requires_grad_();
      Tensor y = interp_of(c, x);
      REQUIRE(y.shape() == c.t("y").shape());
      if (c.attr("mode") == "nearest" && dtype == DType::F32) CHECK_CLOSE(y, c.t("y"), 0, 0);  // a copy
      CHECK_CLOSE(y.to(DType::F32), c.t("y"), 1e-5, scaled_atol(c.t("y")));
      y.backward(c.t("gy").to(dtype));
      CHECK_CLOSE(x.grad().to(DType::F32), c.t("gx"), 1e-5, scaled_atol(c.t("gx")));
    }
  }
}

TEST_CASE("interpolate gradcheck in f64", "[nn][interpolate][gradcheck]") {
  Generator gen(31);
  struct Cfg { const char* mode; std::optional<Pair> size; std::optional<std::array<double, 2>> scale; std::optional<bool> ac; };
  const std::vector<Cfg> cfgs = {
      {"nearest", Pair{7, 3}, std::nullopt, std::nullopt},
      {"bilinear", Pair{7, 3}, std::nullopt, false},
      {"bilinear", std::nullopt, std::array<double, 2>{1.5, 0.6}, true},
      {"bicubic", Pair{6, 5}, std::nullopt, false},
      {"bicubic", std::nullopt, std::array<double, 2>{0.5, 2.5}, true},
  };
  for (const Cfg& k : cfgs) {
    INFO("mode " << k.mode);
    TensorList in{randn({2, 2, 4, 5}, gen, DType::F64).requires_grad_()};
    REQUIRE_GRADCHECK(([k](const TensorList& t) { return interpolate(t[0], k.size, k.scale, k.mode, k.ac); }), in);
  }
}

TEST_CASE("interpolate results do not depend on the thread count", "[nn][interpolate]") {
  Generator gen(32);
  Tensor x = randn({3, 5, 17, 19}, gen);
  for (const char* mode : {"nearest", "bilinear", "bicubic"}) {
    INFO(mode);
    auto run = [&](int threads) {
      const int prev = omp_get_max_threads();
      omp_set_num_threads(threads);
      Tensor xi = x.clone().detach().requires_grad_();
      Tensor y = interpolate(xi, Pair{40, 9}, std::nullopt, mode);
      y.backward(ones(y.shape()));
      omp_set_num_threads(prev);
      return std::make_pair(y, xi.grad());
    };
    auto [y1, g1] = run(1);
    auto [y2, g2] = run(2);
    CHECK_CLOSE(y1, y2, 0, 0);
    CHECK_CLOSE(g1, g2, 0, 0);
  }
}

TEST_CASE("interpolate refuses bad arguments with PyTorch's messages", "[nn][interpolate]") {
  Generator gen(33);
  Tensor x = randn({1, 2, 5, 5}, gen);
  CHECK_THROWS_WITH(interpolate(x, Pair{3, 3}, std::nullopt, "nearest", true),
                    Catch::Contains("align_corners option can only be set with the interpolating modes"));
  CHECK_THROWS_WITH(interpolate(x, std::nullopt, std::nullopt), Catch::Contains("either size or scale_factor"));
  CHECK_THROWS_WITH(interpolate(x, Pair{3, 3}, std::array<double, 2>{2.0, 2.0}),
                    Catch::Contains("only one of size or scale_factor"));
  CHECK_THROWS_WITH(interpolate(x, Pair{3, 3}, std::nullopt, "trilinear"), Catch::Contains("'trilinear'"));
  CHECK_THROWS_WITH(interpolate(x, Pair{0, 3}), Catch::Contains("output (H: 0, W: 3)"));
  CHECK_THROWS_WITH(interpolate(x, std::nullopt, std::array<double, 2>{0.1, 1.0}),
                    Catch::Contains("Input and output sizes should be greater than 0"));
  CHECK_THROWS_WITH(interpolate(x, std::nullopt, std::array<double, 2>{-1.0, 1.0}), Catch::Contains("positive"));
  CHECK_THROWS_WITH(interpolate(randn({2, 5, 5}, gen), Pair{3, 3}), Catch::Contains("expected a 4-d"));
  CHECK_THROWS_WITH(interpolate(zeros({1, 1, 2, 2}, DType::I64), Pair{3, 3}), Catch::Contains("floating"));
  CHECK(interpolate(zeros({0, 2, 5, 5}), Pair{3, 4}, std::nullopt, "bilinear").shape() == Shape{0, 2, 3, 4});
}

TEST_CASE("nn::Upsample is interpolate as a module", "[nn][interpolate][modules]") {
  Generator gen(34);
  Tensor x = randn({2, 3, 4, 5}, gen);
  nn::Upsample up(std::nullopt, std::array<double, 2>{2.0, 2.0}, "bilinear", true);
  NoGradGuard ng;
  CHECK_CLOSE(up.forward(x), interpolate(x, std::nullopt, std::array<double, 2>{2.0, 2.0}, "bilinear", true), 0, 0);
  CHECK(up.extra_repr() == "scale_factor=2.0, mode='bilinear'");
  CHECK(nn::Upsample(nn::Size2{8, 6}, std::nullopt).extra_repr() == "size=(8, 6), mode='nearest'");
  CHECK(nn::Upsample(std::nullopt, std::array<double, 2>{1.5, 2.0}).extra_repr() ==
        "scale_factor=(1.5, 2.0), mode='nearest'");
  CHECK(up.named_parameters().empty());
  CHECK_THROWS_WITH(nn::Upsample(std::nullopt, std::nullopt), Catch::Contains("exactly one of size and scale_factor"));
  CHECK_THROWS_WITH(nn::Upsample(nn::Size2{2}, std::nullopt, "nearest", false), Catch::Contains("align_corners"));
}

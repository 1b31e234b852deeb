// conv_transpose2d (engine/ops/conv_transpose.h) and nn::ConvTranspose2d: PyTorch parity
// (tests/fixtures/gen_conv_transpose.py), f64 gradient checks, oneDNN (f32) vs the f64
// reference loops, unbatched / non-contiguous / empty inputs, bad arguments, PyTorch's init.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "engine/nn/nn.h"
#include "engine/ops.h"
#include "tests/support/fixtures.h"
#include "tests/support/op_fixture.h"
#include "tests/support/gradcheck.h"

using namespace dl;
using dl::test::FixtureCase;
using dl::test::leaf;
using dl::test::pair_attr;

namespace {

constexpr double kRtol = 1e-5, kAtol = 1e-6;

double scaled_atol(const Tensor& ref) { return dl::test::scaled_atol(ref, kAtol); }

Tensor convt_of(const FixtureCase& c, const Tensor& x, const Tensor& w, const Tensor& b) {
  return conv_transpose2d(x, w, b, pair_attr(c, "stride"), pair_attr(c, "padding"), pair_attr(c, "output_padding"),
                          c.attr_i("groups"), pair_attr(c, "dilation"));
}

}  // namespace

TEST_CASE("conv_transpose2d forward and backward match PyTorch", "[nn][conv_transpose]") {
  auto cases = dl::test::load_fixtures("conv_transpose.txt");
  REQUIRE(cases.size() >= 9);
  for (const FixtureCase& c : cases)
    dl::test::check_xwb_case(
        c, [&](const Tensor& x, const Tensor& w, const Tensor& b) { return convt_of(c, x, w, b); }, kRtol, kAtol);
}

TEST_CASE("conv_transpose2d takes unbatched and non-contiguous input", "[nn][conv_transpose]") {
  auto cases = dl::test::load_fixtures("conv_transpose.txt");
  const FixtureCase& c = dl::test::find_case(cases, "stride2_pad1_outpad1");
  // x as an NCHW view of an NHWC tensor, the weight as a view of its [.., kw, kh] transpose
  Tensor x_nhwc = c.t("x").permute({0, 2, 3, 1}).contiguous().detach().requires_grad_();
  Tensor x = x_nhwc.permute({0, 3, 1, 2});
  Tensor w_t = c.t("w").transpose(2, 3).contiguous().detach().requires_grad_();
  Tensor w = w_t.transpose(2, 3);
  REQUIRE_FALSE(x.is_contiguous());
  REQUIRE_FALSE(w.is_contiguous());
  Tensor y = convt_of(c, x, w, c.t("b"));
  CHECK_CLOSE(y, c.t("y"), kRtol, scaled_atol(c.t("y")));
  y.backward(c.t("gy"));
  CHECK_CLOSE(x_nhwc.grad(), c.t("gx").permute({0, 2, 3, 1}), kRtol, scaled_atol(c.t("gx")));
  CHECK_CLOSE(w_t.grad(), c.t("gw").transpose(2, 3), kRtol, scaled_atol(c.t("gw")));

  Tensor x3 = leaf(c.t("x").narrow(0, 1, 1).squeeze(0));
  Tensor y3 = convt_of(c, x3, c.t("w"), c.t("b"));
  REQUIRE(y3.dim() == 3);
  CHECK_CLOSE(y3, c.t("y").narrow(0, 1, 1).squeeze(0), kRtol, scaled_atol(c.t("y")));
  y3.backward(c.t("gy").narrow(0, 1, 1).squeeze(0));
  CHECK_CLOSE(x3.grad(), c.t("gx").narrow(0, 1, 1).squeeze(0), kRtol, scaled_atol(c.t("gx")));
}

TEST_CASE("conv_transpose2d gradcheck in f64", "[nn][conv_transpose][gradcheck]") {
  Generator gen(21);
  struct Cfg { Shape x, w; bool bias; Pair stride, pad, outpad; int64_t groups; Pair dil; };
  const std::vector<Cfg> cfgs = {
      {{2, 2, 3, 4}, {2, 3, 3, 2}, true, {1, 1}, {0, 0}, {0, 0}, 1, {1, 1}},
      {{1, 2, 3, 3}, {2, 2, 3, 3}, true, {2, 2}, {1, 1}, {1, 1}, 1, {1, 1}},
      {{1, 4, 3, 2}, {4, 1, 2, 3}, false, {2, 1}, {0, 1}, {1, 0}, 2, {1, 2}},
      {{1, 1, 3, 3}, {1, 2, 2, 2}, true, {1, 1}, {0, 0}, {2, 1}, 1, {3, 2}},  // output_padding >= stride
  };
  for (const Cfg& k : cfgs) {
    INFO("x " << shape_str(k.x) << " w " << shape_str(k.w));
    TensorList in{randn(k.x, gen, DType::F64).requires_grad_(), randn(k.w, gen, DType::F64).requires_grad_()};
    if (k.bias) in.push_back(randn({k.w[1] * k.groups}, gen, DType::F64).requires_grad_());
    REQUIRE_GRADCHECK(([k](const TensorList& t) {
                        return conv_transpose2d(t[0], t[1], t.size() > 2 ? t[2] : Tensor(), k.stride, k.pad, k.outpad,
                                                k.groups, k.dil);
                      }),
                      in);
  }
}

TEST_CASE("conv_transpose2d oneDNN f32 path matches the f64 reference loops", "[nn][conv_transpose]") {
  Generator gen(22);
  struct Cfg { Shape x, w; Pair stride, pad, outpad; int64_t groups; };
  const std::vector<Cfg> cfgs = {
      {{8, 32, 7, 7}, {32, 16, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 1},  // autoencoder decoder
      {{8, 16, 14, 14}, {16, 1, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 1},
      {{4, 8, 5, 6}, {8, 3, 4, 4}, {2, 2}, {1, 1}, {0, 0}, 2},
  };
  for (const Cfg& k : cfgs) {
    INFO("x " << shape_str(k.x) << " w " << shape_str(k.w));
    Tensor x = randn(k.x, gen).requires_grad_(), w = randn(k.w, gen).requires_grad_();
    Tensor b = randn({k.w[1] * k.groups}, gen).requires_grad_();
    Tensor x64 = leaf(x, DType::F64), w64 = leaf(w, DType::F64), b64 = leaf(b, DType::F64);
    Tensor y = conv_transpose2d(x, w, b, k.stride, k.pad, k.outpad, k.groups);
    Tensor y64 = conv_transpose2d(x64, w64, b64, k.stride, k.pad, k.outpad, k.groups);
    CHECK_CLOSE(y, y64.to(DType::F32), 1e-5, 1e-4);
    Tensor gy = randn(y.shape(), gen);
    y.backward(gy);
    y64.backward(gy.to(DType::F64));
    CHECK_CLOSE(x.grad(), x64.grad().to(DType::F32), 1e-5, 1e-4);
    CHECK_CLOSE(w.grad(), w64.grad().to(DType::F32), 1e-5, 1e-3);
    CHECK_CLOSE(b.grad(), b64.grad().to(DType::F32), 1e-5, 1e-3);
  }
}

TEST_CASE("conv_transpose2d edge cases and bad arguments", "[nn][conv_transpose]") {
  Generator gen(23);
  Tensor w = randn({4, 3, 3, 3}, gen).requires_grad_();
  Tensor b = randn({3}, gen).requires_grad_();
  // empty batch: empty output, zero parameter gradients
  Tensor x0 = zeros({0, 4, 5, 5}).requires_grad_();
  Tensor y0 = conv_transpose2d(x0, w, b, {2, 2}, {1, 1}, {1, 1});
  CHECK(y0.shape() == Shape{0, 3, 10, 10});
  sum(y0).backward();
  CHECK(x0.grad().shape() == Shape{0, 4, 5, 5});
  CHECK(w.grad().to_vector<float>() == std::vector<float>(4 * 27, 0.0f));
  CHECK(b.grad().to_vector<float>() == std::vector<float>(3, 0.0f));
  CHECK(conv_transpose_out_size(7, 3, 1, 2, 1, 1) == 14);

  Tensor x = randn({1, 4, 5, 5}, gen);
  CHECK_THROWS_WITH(conv_transpose2d(x, w, Tensor(), {2, 2}, {0, 0}, {2, 2}),
                    Catch::Contains("output padding must be smaller than either stride or dilation") &&
                        Catch::Contains("output_padding_height: 2"));
  CHECK_THROWS_WITH(conv_transpose2d(x, w, Tensor(), {1, 1}, {0, 0}, {0, 1}),  // width: 1 >= stride 1, dilation 1
                    Catch::Contains("output padding must be smaller"));
  CHECK_THROWS_WITH(conv_transpose2d(x, w, Tensor(), {1, 1}, {0, 0}, {0, 0}, 3),
                    Catch::Contains("groups=3") && Catch::Contains("divisible by 3"));
  CHECK_THROWS_WITH(conv_transpose2d(x, w, randn({4}, gen)), Catch::Contains("expected bias to be 1-dimensional with 3"));
  CHECK_THROWS_WITH(conv_transpose2d(randn({1, 3, 5, 5}, gen), w), Catch::Contains("to have 4 channels, but got 3"));
  CHECK_THROWS_WITH(conv_transpose2d(randn({1, 4, 1, 1}, gen), w, Tensor(), {1, 1}, {2, 2}),
                    Catch::Contains("Output size is too small"));
  CHECK_THROWS_WITH(conv_transpose2d(randn({4, 5}, gen), w), Catch::Contains("expected a 3-d"));
  CHECK_THROWS_WITH(conv_transpose2d(x, randn({4, 3, 3}, gen)), Catch::Contains("weight must be 4-d"));
  CHECK_THROWS_WITH(conv_transpose2d(x, w, Tensor(), {0, 1}), Catch::Contains("must be positive"));
  CHECK_THROWS_WITH(conv_transpose2d(x.to(DType::F64), w), Catch::Contains("dtype"));
  CHECK_THROWS_WITH(conv_transpose2d(zeros({1, 4, 5, 5}, DType::I64), w), Catch::Contains("floating"));
}

TEST_CASE("nn::ConvTranspose2d: PyTorch's parameter shapes, init bounds and repr", "[nn][conv_transpose][modules]") {
  Generator gen(24);
  nn::ConvTranspose2d m(32, 16, 3, 2, 1, 1, 1, true, 1, gen);
  REQUIRE(m.weight.shape() == Shape{32, 16, 3, 3});
  REQUIRE(m.bias.shape() == Shape{16});
  // fan_in from weight dim 1 (16 * 3 * 3), as torch's _ConvNd.reset_parameters computes it
  const double bound = 1.0 / std::sqrt(16.0 * 9.0);
  const auto w = m.weight.to_vector<float>();
  const auto [mn, mx] = std::minmax_element(w.begin(), w.end());
  CHECK(*mx <= bound);
  CHECK(*mn >= -bound);
  CHECK(*mx > 0.95 * bound);
  CHECK(*mn < -0.95 * bound);
  for (float v : m.bias.to_vector<float>()) CHECK(std::fabs(v) <= bound);
  CHECK(m.forward(randn({2, 32, 7, 7}, gen)).shape() == Shape{2, 16, 14, 14});
  CHECK(m.extra_repr() == "32, 16, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), output_padding=(1, 1)");
  nn::ConvTranspose2d g(4, 6, 3, 2, 1, 1, 2, false, 2, gen);
  CHECK(g.weight.shape() == Shape{4, 3, 3, 3});
  CHECK(g.extra_repr() ==
        "4, 6, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(2, 2), output_padding=(1, 1), groups=2, "
        "bias=False");
  std::vector<std::string> keys;
  for (const auto& [k, t] : m.named_parameters()) keys.push_back(k);
  CHECK(keys == std::vector<std::string>{"weight", "bias"});
  CHECK_THROWS_WITH(nn::ConvTranspose2d(4, 6, 3, 1, 0, 0, 3), Catch::Contains("in_channels must be divisible by groups"));
  CHECK_THROWS_WITH(nn::ConvTranspose2d(4, 6, 3, 2, 0, 2), Catch::Contains("output padding"));
}

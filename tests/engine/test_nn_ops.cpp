// NCHW nn ops (engine/ops/nn.h): conv2d, max/avg/adaptive pooling, batch norm, dropout.
// PyTorch parity (tests/fixtures/gen_nn_ops.py), f64 gradient checks, oneDNN (f32) vs the f64
// reference kernels, non-contiguous / unbatched / empty inputs, and thread-count independence.
#include <omp.h>

#include <catch2/catch.hpp>
#include <cmath>

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

Tensor opt(const FixtureCase& c, const std::string& key) { return c.has(key) ? c.t(key) : Tensor(); }


// Runs `f` with `n` OpenMP threads and restores the previous count.
template <class F>
auto with_threads(int n, F&& f) {
  int prev = omp_get_max_threads();
  omp_set_num_threads(n);
  auto r = f();
  omp_set_num_threads(prev);
  return r;
}

struct ThreadRestore {
  int prev = omp_get_max_threads();
  ~ThreadRestore() { omp_set_num_threads(prev); }
};

// NCHW tensor stored as NHWC and returned as a non-contiguous NCHW view (a leaf behind it).
Tensor nchw_view_of(const Tensor& nchw, Tensor& nhwc_leaf) {
  nhwc_leaf = nchw.permute({0, 2, 3, 1}).contiguous().detach().requires_grad_();
  return nhwc_leaf.permute({0, 3, 1, 2});
}

Tensor conv_of(const FixtureCase& c, const Tensor& x, const Tensor& w, const Tensor& b) {
  return conv2d(x, w, b, pair_attr(c, "stride"), pair_attr(c, "padding"), pair_attr(c, "dilation"),
                c.attr_i("groups"));
}

Tensor pool_of(const FixtureCase& c, const Tensor& x) {
  Pair k = pair_attr(c, "kernel"), s = pair_attr(c, "stride"), p = pair_attr(c, "padding");
  bool ceil = c.attr_i("ceil_mode") != 0;
  if (c.attr("kind") == "max") return max_pool2d(x, k, s, p, ceil);
  return avg_pool2d(x, k, s, p, ceil, c.attr_i("count_include_pad") != 0);
}

}  // namespace

// ---- conv2d ----------------------------------------------------------------------------------

TEST_CASE("conv2d forward and backward match PyTorch", "[nn][conv]") {
  auto cases = dl::test::load_fixtures("nn_conv.txt");
  REQUIRE(cases.size() >= 8);
  for (const FixtureCase& c : cases)
    dl::test::check_xwb_case(
        c, [&](const Tensor& x, const Tensor& w, const Tensor& b) { return conv_of(c, x, w, b); }, kRtol, kAtol);
}

TEST_CASE("conv2d takes non-contiguous inputs and unbatched [C, H, W] input", "[nn][conv]") {
  auto cases = dl::test::load_fixtures("nn_conv.txt");
  for (const char* name : {"conv_groups2", "conv_stride2_pad1"}) {
    const FixtureCase& c = dl::test::find_case(cases, name);
    INFO("case " << c.name);
    Tensor x_nhwc;
    Tensor x = nchw_view_of(c.t("x"), x_nhwc);
    REQUIRE_FALSE(x.is_contiguous());
    // weight as a transposed view of its [O, C/g, kw, kh] transpose
    Tensor w_t = c.t("w").transpose(2, 3).contiguous().detach().requires_grad_();
    Tensor w = w_t.transpose(2, 3);
    REQUIRE_FALSE(w.is_contiguous());
    Tensor y = conv_of(c, x, w, opt(c, "b"));
    CHECK_CLOSE(y, c.t("y"), kRtol, scaled_atol(c.t("y")));
    y.backward(c.t("gy").permute({0, 2, 3, 1}).contiguous().permute({0, 3, 1, 2}));  // non-contiguous grad
    CHECK_CLOSE(x_nhwc.grad(), c.t("gx").permute({0, 2, 3, 1}), kRtol, scaled_atol(c.t("gx")));
    CHECK_CLOSE(w_t.grad(), c.t("gw").transpose(2, 3), kRtol, scaled_atol(c.t("gw")));
  }
  const FixtureCase& c = dl::test::find_case(cases, "conv_1x1_nobias_batch1");
  Tensor x3 = leaf(c.t("x").squeeze(0));
  Tensor y3 = conv_of(c, x3, c.t("w"), Tensor());
  REQUIRE(y3.shape() == Shape{3, 4, 4});
  CHECK_CLOSE(y3, c.t("y").squeeze(0), kRtol, scaled_atol(c.t("y")));
  y3.backward(c.t("gy").squeeze(0));
  CHECK_CLOSE(x3.grad(), c.t("gx").squeeze(0), kRtol, scaled_atol(c.t("gx")));
}

TEST_CASE("conv2d gradcheck in f64", "[nn][conv][gradcheck]") {
  Generator gen(11);
  struct Cfg { Shape x, w; bool bias; Pair stride, pad, dil; int64_t groups; };
  std::vector<Cfg> cfgs = {
      {{2, 2, 5, 4}, {3, 2, 3, 2}, true, {1, 1}, {0, 0}, {1, 1}, 1},
      {{1, 2, 6, 5}, {2, 2, 3, 3}, true, {2, 2}, {1, 1}, {1, 1}, 1},
      {{1, 1, 7, 7}, {2, 1, 3, 3}, false, {1, 2}, {2, 1}, {2, 2}, 1},
      {{2, 4, 4, 4}, {4, 2, 3, 3}, true, {1, 1}, {1, 1}, {1, 1}, 2},
      {{1, 3, 3, 3}, {2, 3, 1, 1}, false, {1, 1}, {0, 0}, {1, 1}, 1},
  };
  for (const Cfg& k : cfgs) {
    INFO("x " << shape_str(k.x) << " w " << shape_str(k.w));
    Tensor x = randn(k.x, gen, DType::F64).requires_grad_();
    Tensor w = randn(k.w, gen, DType::F64).requires_grad_();
    TensorList in{x, w};
    if (k.bias) in.push_back(randn({k.w[0]}, gen, DType::F64).requires_grad_());
    REQUIRE_GRADCHECK(([k](const TensorList& t) {
                        return conv2d(t[0], t[1], t.size() > 2 ? t[2] : Tensor(), k.stride, k.pad, k.dil, k.groups);
                      }),
                      in);
  }
}

TEST_CASE("conv2d oneDNN f32 path matches the f64 reference kernels", "[nn][conv]") {
  Generator gen(12);
  struct Cfg { Shape x, w; Pair stride, pad, dil; int64_t groups; };
  std::vector<Cfg> cfgs = {
      {{8, 1, 28, 28}, {6, 1, 5, 5}, {1, 1}, {2, 2}, {1, 1}, 1},    // LeNet conv1
      {{8, 6, 14, 14}, {16, 6, 5, 5}, {1, 1}, {0, 0}, {1, 1}, 1},   // LeNet conv2
      {{4, 16, 9, 9}, {32, 16, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 1},
      {{2, 8, 10, 10}, {8, 1, 3, 3}, {1, 1}, {2, 2}, {2, 2}, 8},   // depthwise, dilated
      {{3, 6, 7, 9}, {9, 2, 3, 1}, {1, 2}, {1, 0}, {1, 1}, 3},
  };
  for (const Cfg& k : cfgs) {
    INFO("x " << shape_str(k.x) << " w " << shape_str(k.w));
    Tensor x = randn(k.x, gen).requires_grad_(), w = randn(k.w, gen).requires_grad_();
    Tensor b = randn({k.w[0]}, gen).requires_grad_();
    Tensor x64 = leaf(x, DType::F64), w64 = leaf(w, DType::F64), b64 = leaf(b, DType::F64);
    Tensor y = conv2d(x, w, b, k.stride, k.pad, k.dil, k.groups);
    Tensor y64 = conv2d(x64, w64, b64, k.stride, k.pad, k.dil, k.groups);
    CHECK_CLOSE(y, y64.to(DType::F32), 1e-5, 1e-4);
    Tensor gy = randn(y.shape(), gen);
    y.backward(gy);
    y64.backward(gy.to(DType::F64));
    CHECK_CLOSE(x.grad(), x64.grad().to(DType::F32), 1e-5, 1e-4);
    CHECK_CLOSE(w.grad(), w64.grad().to(DType::F32), 1e-5, 1e-3);
    CHECK_CLOSE(b.grad(), b64.grad().to(DType::F32), 1e-5, 1e-3);
  }
}

TEST_CASE("conv2d edge cases: empty batch, shape errors, primitive reuse", "[nn][conv]") {
  Generator gen(13);
  Tensor w = randn({4, 3, 3, 3}, gen).requires_grad_();
  Tensor b = randn({4}, gen).requires_grad_();
  Tensor x0 = zeros({0, 3, 5, 5}).requires_grad_();
  Tensor y0 = conv2d(x0, w, b, {1, 1}, {1, 1});
  CHECK(y0.shape() == Shape{0, 4, 5, 5});
  sum(y0).backward();
  CHECK(x0.grad().shape() == Shape{0, 3, 5, 5});
  CHECK(w.grad().to_vector<float>() == std::vector<float>(4 * 27, 0.0f));
  CHECK(b.grad().to_vector<float>() == std::vector<float>(4, 0.0f));

  CHECK_THROWS_WITH(conv2d(randn({1, 2, 5, 5}, gen), w), Catch::Contains("does not match weight"));
  CHECK_THROWS_WITH(conv2d(randn({1, 3, 2, 2}, gen), w), Catch::Contains("smaller than the dilated kernel"));
  CHECK_THROWS_WITH(conv2d(randn({1, 3, 5, 5}, gen), w, randn({3}, gen)), Catch::Contains("bias"));
  CHECK_THROWS_WITH(conv2d(randn({3, 5}, gen), w), Catch::Contains("expected a 3-d"));
  CHECK_THROWS_WITH(conv2d(randn({1, 4, 5, 5}, gen), randn({4, 2, 3, 3}, gen), Tensor(), {1, 1}, {0, 0}, {1, 1}, 3),
                    Catch::Contains("groups=3"));
  CHECK_THROWS_WITH(conv2d(randn({1, 3, 5, 5}, gen, DType::F64), w), Catch::Contains("dtype"));

  // Same shape twice (cached primitive) gives identical results; a new batch size works too.
  Tensor x = randn({2, 3, 6, 6}, gen);
  NoGradGuard ng;
  CHECK_CLOSE(conv2d(x, w, b), conv2d(x, w, b), 0, 0);
  CHECK_CLOSE(conv2d(x.narrow(0, 0, 1), w, b), conv2d(x, w, b).narrow(0, 0, 1), 0, 0);
}

// ---- pooling ---------------------------------------------------------------------------------

TEST_CASE("max_pool2d and avg_pool2d match PyTorch", "[nn][pool]") {
  auto cases = dl::test::load_fixtures("nn_pool.txt");
  REQUIRE(cases.size() >= 12);
  for (const FixtureCase& c : cases) {
    if (!c.has("kernel")) continue;  // adaptive cases: below
    for (DType dtype : {DType::F32, DType::F64}) {
      INFO("case " << c.name << " dtype " << dtype_name(dtype));
      Tensor x = leaf(c.t("x"), dtype);
      Tensor y = pool_of(c, x);
      CHECK_CLOSE(y.to(DType::F32), c.t("y"), kRtol, 1e-6);
      y.backward(c.t("gy").to(dtype));
      CHECK_CLOSE(x.grad().to(DType::F32), c.t("gx"), kRtol, 1e-6);
    }
  }
}

TEST_CASE("pooling takes non-contiguous and unbatched inputs", "[nn][pool]") {
  auto cases = dl::test::load_fixtures("nn_pool.txt");
  for (const char* name : {"max_k3s2_pad1_ceil", "avg_ceil_exclude", "avg_ceil_include_pad1"}) {
    const FixtureCase& c = dl::test::find_case(cases, name);
    INFO("case " << c.name);
    Tensor x_nhwc;
    Tensor x = nchw_view_of(c.t("x"), x_nhwc);
    Tensor y = pool_of(c, x);
    CHECK_CLOSE(y, c.t("y"), kRtol, 1e-6);
    y.backward(c.t("gy"));
    CHECK_CLOSE(x_nhwc.grad(), c.t("gx").permute({0, 2, 3, 1}), kRtol, 1e-6);
    if (c.t("x").size(0) == 1) {
      Tensor x3 = leaf(c.t("x").squeeze(0));
      Tensor y3 = pool_of(c, x3);
      CHECK_CLOSE(y3, c.t("y").squeeze(0), kRtol, 1e-6);
    }
  }
}

TEST_CASE("pooling gradcheck in f64", "[nn][pool][gradcheck]") {
  Generator gen(21);
  Tensor x = randn({2, 2, 7, 6}, gen, DType::F64).requires_grad_();
  REQUIRE_GRADCHECK([](const TensorList& t) { return max_pool2d(t[0], {3, 3}, {2, 2}, {1, 1}, true); }, TensorList{x});
  REQUIRE_GRADCHECK([](const TensorList& t) { return max_pool2d(t[0], {2, 3}, {1, 2}); }, TensorList{x});
  REQUIRE_GRADCHECK([](const TensorList& t) { return avg_pool2d(t[0], {3, 3}, {2, 2}, {1, 1}, true, true); },
                    TensorList{x});
  REQUIRE_GRADCHECK([](const TensorList& t) { return avg_pool2d(t[0], {3, 2}, {2, 2}, {1, 1}, true, false); },
                    TensorList{x});
  REQUIRE_GRADCHECK([](const TensorList& t) { return avg_pool2d(t[0], {2, 2}, {2, 2}); }, TensorList{x});
  REQUIRE_GRADCHECK([](const TensorList& t) { return adaptive_avg_pool2d(t[0], {3, 4}); }, TensorList{x});
  REQUIRE_GRADCHECK([](const TensorList& t) { return adaptive_avg_pool2d(t[0], {8, 5}); }, TensorList{x});
}

TEST_CASE("pooling f32 (oneDNN and ours) matches the f64 kernels", "[nn][pool]") {
  Generator gen(22);
  struct Cfg { Shape x; Pair k, s, p; bool ceil; };
  std::vector<Cfg> cfgs = {
      {{8, 6, 28, 28}, {2, 2}, {2, 2}, {0, 0}, false},  // LeNet pool1
      {{4, 3, 13, 11}, {3, 3}, {2, 2}, {1, 1}, true},
      {{2, 4, 10, 9}, {3, 2}, {3, 2}, {1, 0}, true},
      {{2, 4, 5, 6}, {2, 2}, {2, 2}, {1, 1}, true},
  };
  for (const Cfg& k : cfgs) {
    for (int kind = 0; kind < 3; ++kind) {
      INFO("x " << shape_str(k.x) << " kind " << kind);
      auto run = [&](const Tensor& x) {
        if (kind == 0) return max_pool2d(x, k.k, k.s, k.p, k.ceil);
        return avg_pool2d(x, k.k, k.s, k.p, k.ceil, kind == 1);
      };
      Tensor x = randn(k.x, gen).requires_grad_();
      Tensor x64 = leaf(x, DType::F64);
      Tensor y = run(x), y64 = run(x64);
      CHECK_CLOSE(y, y64.to(DType::F32), 1e-6, 1e-6);
      {
        NoGradGuard ng;  // inference takes oneDNN for max pooling too
        CHECK_CLOSE(run(x), y64.to(DType::F32), 1e-6, 1e-6);
      }
      Tensor gy = randn(y.shape(), gen);
      y.backward(gy);
      y64.backward(gy.to(DType::F64));
      CHECK_CLOSE(x.grad(), x64.grad().to(DType::F32), 1e-6, 1e-6);
    }
  }
}

TEST_CASE("pooling output sizes and errors follow PyTorch", "[nn][pool]") {
  Generator gen(23);
  // ceil_mode: the last window must start inside the input or the left padding.
  CHECK(max_pool2d(randn({1, 1, 5, 5}, gen), {2, 2}, {2, 2}, {1, 1}, true).shape() == Shape{1, 1, 3, 3});
  CHECK(max_pool2d(randn({1, 1, 5, 5}, gen), {2, 2}, {2, 2}, {0, 0}, true).shape() == Shape{1, 1, 3, 3});
  CHECK(max_pool2d(randn({1, 1, 5, 5}, gen), {2, 2}, {2, 2}, {0, 0}, false).shape() == Shape{1, 1, 2, 2});
  CHECK(avg_pool2d(randn({2, 3, 6, 6}, gen), {3, 3}, {2, 2}, {0, 0}, true).shape() == Shape{2, 3, 3, 3});
  CHECK_THROWS_WITH(max_pool2d(randn({1, 1, 5, 5}, gen), {2, 2}, {2, 2}, {2, 2}), Catch::Contains("at most half"));
  CHECK_THROWS_WITH(max_pool2d(randn({1, 1, 2, 2}, gen), {3, 3}, {1, 1}), Catch::Contains("too small"));
  CHECK_THROWS_WITH(avg_pool2d(randn({1, 1, 4, 4}, gen), {2, 2}, {0, 2}), Catch::Contains("positive"));
  CHECK_THROWS_WITH(adaptive_avg_pool2d(randn({1, 1, 4, 4}, gen), {0, 2}), Catch::Contains("positive"));
  // Empty batch.
  Tensor e = zeros({0, 2, 4, 4}).requires_grad_();
  Tensor y = max_pool2d(e, {2, 2}, {2, 2});
  CHECK(y.shape() == Shape{0, 2, 2, 2});
  sum(y).backward();
  CHECK(e.grad().shape() == Shape{0, 2, 4, 4});
  CHECK(adaptive_avg_pool2d(zeros({0, 2, 4, 4}), {2, 2}).shape() == Shape{0, 2, 2, 2});
  // Inference (no grad) takes the workspace-free primitive and gives the same values.
  Tensor x = randn({2, 3, 8, 8}, gen);
  Tensor xg = x.clone().requires_grad_();
  CHECK_CLOSE(max_pool2d(x, {2, 2}, {2, 2}), max_pool2d(xg, {2, 2}, {2, 2}).detach(), 0, 0);
}

TEST_CASE("adaptive_avg_pool2d matches PyTorch", "[nn][pool]") {
  auto cases = dl::test::load_fixtures("nn_pool.txt");
  int n = 0;
  for (const FixtureCase& c : cases) {
    if (!c.has("output_size")) continue;
    ++n;
    for (DType dtype : {DType::F32, DType::F64}) {
      INFO("case " << c.name << " dtype " << dtype_name(dtype));
      Tensor x = leaf(c.t("x"), dtype);
      Tensor y = adaptive_avg_pool2d(x, pair_attr(c, "output_size"));
      CHECK_CLOSE(y.to(DType::F32), c.t("y"), kRtol, 1e-6);
      y.backward(c.t("gy").to(dtype));
      CHECK_CLOSE(x.grad().to(DType::F32), c.t("gx"), kRtol, 1e-6);
    }
  }
  CHECK(n == 4);
  const FixtureCase& c = dl::test::find_case(cases, "adaptive_5x7_to_3x2");
  Tensor x_nhwc;
  Tensor x = nchw_view_of(c.t("x"), x_nhwc);
  CHECK_CLOSE(adaptive_avg_pool2d(x, {3, 2}), c.t("y"), kRtol, 1e-6);
}

// ---- batch norm ------------------------------------------------------------------------------

TEST_CASE("batch_norm matches PyTorch in training and eval, 2-d and 4-d", "[nn][bn]") {
  auto cases = dl::test::load_fixtures("nn_norm.txt");
  REQUIRE(cases.size() >= 6);
  for (const FixtureCase& c : cases) {
    for (DType dtype : {DType::F32, DType::F64}) {
      INFO("case " << c.name << " dtype " << dtype_name(dtype));
      const bool training = c.attr_i("training") != 0;
      Tensor x = leaf(c.t("x"), dtype), w = leaf(opt(c, "w"), dtype), b = leaf(opt(c, "b"), dtype);
      Tensor rm = c.t("rm_in").clone(), rv = c.t("rv_in").clone();  // f32 buffers, like a module's
      Tensor y = batch_norm(x, w, b, rm, rv, training, c.attr_f("momentum"), c.attr_f("eps"));
      CHECK_CLOSE(y.to(DType::F32), c.t("y"), kRtol, scaled_atol(c.t("y")));
      CHECK_CLOSE(rm, c.t("rm_out"), kRtol, 1e-6);
      CHECK_CLOSE(rv, c.t("rv_out"), kRtol, 1e-6);
      y.backward(c.t("gy").to(dtype));
      CHECK_CLOSE(x.grad().to(DType::F32), c.t("gx"), kRtol, scaled_atol(c.t("gx")));
      if (w.defined()) {
        CHECK_CLOSE(w.grad().to(DType::F32), c.t("gw"), kRtol, scaled_atol(c.t("gw")));
        CHECK_CLOSE(b.grad().to(DType::F32), c.t("gb"), kRtol, scaled_atol(c.t("gb")));
      }
    }
  }
}

TEST_CASE("batch_norm takes non-contiguous input and undefined running stats in training", "[nn][bn]") {
  auto cases = dl::test::load_fixtures("nn_norm.txt");
  const FixtureCase& c = dl::test::find_case(cases, "bn4d_train");
  Tensor x_nhwc;
  Tensor x = nchw_view_of(c.t("x"), x_nhwc);
  Tensor y = batch_norm(x, c.t("w"), c.t("b"), Tensor(), Tensor(), true, 0.3, c.attr_f("eps"));
  CHECK_CLOSE(y, c.t("y"), kRtol, scaled_atol(c.t("y")));
  y.backward(c.t("gy"));
  CHECK_CLOSE(x_nhwc.grad(), c.t("gx").permute({0, 2, 3, 1}), kRtol, scaled_atol(c.t("gx")));

  Generator gen(31);
  CHECK_THROWS_WITH(batch_norm(randn({1, 3}, gen), Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5),
                    Catch::Contains("more than 1 value per channel"));
  CHECK_THROWS_WITH(batch_norm(randn({4, 3}, gen), Tensor(), Tensor(), Tensor(), Tensor(), false, 0.1, 1e-5),
                    Catch::Contains("eval mode"));
  CHECK_THROWS_WITH(batch_norm(randn({4, 3}, gen), randn({4}, gen), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5),
                    Catch::Contains("weight [4]"));
}

TEST_CASE("batch_norm gradcheck in f64", "[nn][bn][gradcheck]") {
  Generator gen(32);
  for (const Shape& shape : {Shape{5, 3}, Shape{2, 3, 3, 2}, Shape{3, 2, 4}}) {
    for (bool training : {true, false}) {
      for (bool affine : {true, false}) {
        INFO("shape " << shape_str(shape) << " training " << training << " affine " << affine);
        Tensor x = randn(shape, gen, DType::F64).requires_grad_();
        TensorList in{x};
        if (affine) {
          in.push_back(add(rand({shape[1]}, gen, DType::F64), 0.5).detach().requires_grad_());
          in.push_back(randn({shape[1]}, gen, DType::F64).requires_grad_());
        }
        Tensor rm = randn({shape[1]}, gen), rv = add(rand({shape[1]}, gen), 0.5);
        REQUIRE_GRADCHECK(([=](const TensorList& t) {
                            Tensor m = rm.clone(), v = rv.clone();
                            return batch_norm(t[0], t.size() > 1 ? t[1] : Tensor(), t.size() > 2 ? t[2] : Tensor(),
                                              m, v, training, 0.1, 1e-5);
                          }),
                          in);
      }
    }
  }
}

TEST_CASE("batch_norm is bit-identical with 1 and 2 threads", "[nn][bn]") {
  ThreadRestore restore;
  Generator gen(33);
  Tensor x = add(mul(randn({16, 8, 20, 20}, gen), 3.0), 5.0);
  Tensor w = rand({8}, gen), b = randn({8}, gen), gy = randn({16, 8, 20, 20}, gen);
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    Tensor xl = x.clone().requires_grad_(), wl = w.clone().requires_grad_();
    Tensor rm = zeros({8}), rv = ones({8});
    Tensor y = batch_norm(xl, wl, b, rm, rv, true, 0.1, 1e-5);
    y.backward(gy);
    return TensorList{y, xl.grad(), wl.grad(), rm, rv};
  };
  TensorList a = run(1), c = run(2);
  for (size_t i = 0; i < a.size(); ++i) CHECK_CLOSE(a[i], c[i], 0, 0);
}

// ---- dropout ---------------------------------------------------------------------------------

TEST_CASE("dropout zeroes about p, scales exactly, and is identity in eval", "[nn][dropout]") {
  Generator gen(41);
  Tensor x = add(rand({200, 500}, gen), 0.5);
  for (double p : {0.1, 0.5, 0.8}) {
    INFO("p " << p);
    Tensor y = dropout(x, p, true, gen);
    std::vector<float> xv = x.to_vector<float>(), yv = y.to_vector<float>();
    const float scale = static_cast<float>(1.0 / (1.0 - p));
    int64_t zeros_n = 0;
    bool exact = true;
    for (size_t i = 0; i < xv.size(); ++i) {
      if (yv[i] == 0.0f) ++zeros_n;
      else exact = exact && yv[i] == xv[i] * scale;
    }
    CHECK(exact);
    const double frac = static_cast<double>(zeros_n) / static_cast<double>(xv.size());
    CHECK(frac == Approx(p).margin(4.0 * std::sqrt(p * (1 - p) / xv.size())));
  }
  const uint64_t before = gen.offset();
  CHECK(dropout(x, 0.5, false, gen).same(x));  // eval: identity, no random draw
  CHECK(dropout(x, 0.0, true, gen).same(x));
  CHECK(gen.offset() == before);
  Tensor z = dropout(x, 1.0, true, gen);
  CHECK(z.to_vector<float>() == std::vector<float>(x.numel(), 0.0f));
  CHECK_THROWS_WITH(dropout(x, 1.5, true, gen), Catch::Contains("between 0 and 1"));
}

TEST_CASE("dropout mask is seedable and thread-count independent and grad uses the mask", "[nn][dropout]") {
  ThreadRestore restore;
  Generator gen(0);
  Tensor x = add(rand({64, 1000}, gen), 1.0);
  auto run = [&](int threads, uint64_t seed) {
    omp_set_num_threads(threads);
    Generator g(seed);
    return dropout(x, 0.3, true, g);
  };
  Tensor a = run(1, 7), b = run(2, 7), c = run(2, 8);
  CHECK_CLOSE(a, b, 0, 0);
  CHECK_FALSE(dl::test::allclose(a, c, 0, 0));
  // Two draws in a row from one generator differ; restoring its state repeats the mask.
  Generator g(9);
  auto state = g.get_state();
  Tensor m1 = dropout(x, 0.3, true, g), m2 = dropout(x, 0.3, true, g);
  CHECK_FALSE(dl::test::allclose(m1, m2, 0, 0));
  g.set_state(state);
  CHECK_CLOSE(dropout(x, 0.3, true, g), m1, 0, 0);

  // Backward: grad = upstream * mask (0 or 1 / (1 - p)), non-contiguous input.
  Tensor xt = x.clone().requires_grad_();
  Generator g2(3);
  Tensor y = dropout(xt.t(), 0.3, true, g2);
  sum(y).backward();
  Tensor mask = div(y.detach(), xt.detach().t());
  CHECK_CLOSE(xt.grad().t(), mask, 1e-6, 1e-6);

  Tensor xd = randn({3, 4}, gen, DType::F64).requires_grad_();
  REQUIRE_GRADCHECK([](const TensorList& t) {
    Generator gg(5);
    return dropout(t[0], 0.4, true, gg);
  }, TensorList{xd});
}

// Embedding, layer norm and dropout2d (engine/ops/embedding.h, layer_norm.h, nn.h): PyTorch
// parity (tests/fixtures/gen_embed_norm.py), f64 gradient checks, thread-count independence,
// bad input, the modules (engine/nn/embedding.h, layer_norm.h, activation.h) and the layer
// registrations' shape rules.
#include <omp.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <optional>

#include "engine/graph/layer_schema.h"
#include "engine/graph/model.h"
#include "engine/nn/nn.h"
#include "engine/ops.h"
#include "tests/support/fixtures.h"
#include "tests/support/op_fixture.h"
#include "tests/support/gradcheck.h"

using namespace dl;
using dl::test::FixtureCase;

namespace {

struct ThreadRestore {
  int prev = omp_get_max_threads();
  ~ThreadRestore() { omp_set_num_threads(prev); }
};

using dl::test::leaf;

bool bit_equal(const Tensor& a, const Tensor& b) { return dl::test::allclose(a, b, 0, 0); }

std::optional<int64_t> opt_int(const FixtureCase& c, const std::string& key) {
  return c.has(key) ? std::optional<int64_t>(c.attr_i(key)) : std::nullopt;
}
std::optional<double> opt_float(const FixtureCase& c, const std::string& key) {
  return c.has(key) ? std::optional<double>(c.attr_f(key)) : std::nullopt;
}

Shape shape_attr(const FixtureCase& c, const std::string& key) { return c.attr_ints(key); }

// A resolved single-layer spec reading the model input.
LayerSpec layer(const std::string& type, AttrMap attrs) {
  LayerSpec s{"x", type, {"input"}, std::move(attrs), {}};
  const auto problems = resolve_layer_attrs(s);
  for (const auto& p : problems) FAIL_CHECK(p);
  return s;
}

}  // namespace

// ---- embedding -------------------------------------------------------------------------------

TEST_CASE("embedding forward, max_norm renorm and weight gradient match PyTorch", "[embedding]") {
  const auto cases = dl::test::load_fixtures("embed_norm.txt");
  int seen = 0;
  for (const auto& c : cases) {
    if (c.name.rfind("embedding", 0) != 0) continue;
    INFO(c.name);
    ++seen;
    Tensor w = leaf(c.t("w"));
    Tensor y = embedding(c.t("idx"), w, opt_int(c, "padding_idx"), opt_float(c, "max_norm"), c.attr_f("norm_type"));
    CHECK_CLOSE(y, c.t("y"), 1e-6, 1e-6);
    if (c.has("w_after")) {  // the rows looked up were renormalised in place, the others kept
      CHECK_CLOSE(w.detach(), c.t("w_after"), 1e-6, 1e-6);
      CHECK_FALSE(dl::test::allclose(c.t("w"), c.t("w_after"), 1e-3, 1e-3));  // the case renorms something
    }
    y.backward(c.t("gy"));
    CHECK_CLOSE(w.grad(), c.t("gw"), 1e-5, 1e-6);
  }
  CHECK(seen == 6);
}

TEST_CASE("embedding: no gradient to padding_idx, repeated indices accumulate in order at any thread count",
          "[embedding]") {
  ThreadRestore restore;
  Generator gen(3);
  const int64_t V = 50, D = 37;
  Tensor idx = from_vector<int64_t>(std::vector<int64_t>(4000, 0), {40, 100});
  {
    int64_t* p = idx.data<int64_t>();
    for (int64_t k = 0; k < idx.numel(); ++k) p[k] = (k * 7919 + k / 3) % V;  // every row, many repeats
  }
  Tensor gy = randn({40, 100, D}, gen);
  Tensor w0 = randn({V, D}, gen);
  auto grad_at = [&](int threads, std::optional<int64_t> pad) {
    omp_set_num_threads(threads);
    Tensor w = w0.clone().requires_grad_();
    embedding(idx, w, pad).backward(gy);
    return w.grad();
  };
  Tensor g1 = grad_at(1, 7), g2 = grad_at(2, 7);
  CHECK(bit_equal(g1, g2));
  CHECK(max(abs(g1.select(0, 7))).item() == 0.0);
  // The naive oracle: grad_w[v] += gy[k] for every position k in order.
  std::vector<float> want(V * D, 0.0f);
  const auto iv = idx.to_vector<int64_t>();
  const auto gv = gy.to_vector<float>();
  for (size_t k = 0; k < iv.size(); ++k)
    if (iv[k] != 7)
      for (int64_t j = 0; j < D; ++j) want[iv[k] * D + j] += gv[k * D + j];
  CHECK(bit_equal(g1, from_vector(want, {V, D})));
  // Without padding the row gets its gradient too.
  CHECK(max(abs(grad_at(2, std::nullopt).select(0, 7))).item() > 0.0);
}

TEST_CASE("embedding: f64 gradient check of the weight", "[embedding]") {
  Generator gen(5);
  Tensor w = randn({6, 4}, gen, DType::F64).requires_grad_();
  Tensor idx = from_vector<int64_t>({0, 5, 2, 5, 3, 0, 5}, {7});
  REQUIRE_GRADCHECK([&](const TensorList& in) { return embedding(idx, in[0]); }, TensorList{w});
  // With padding_idx the lookup reads the padding row but gives it no gradient by definition, so
  // finite differences see it only through positions masked out here (the padding row itself is
  // checked by the tests above); every other row is checked with the padding in effect.
  Tensor idx2 = from_vector<int64_t>({1, 5, 2, 4, 1, 5}, {2, 3});
  Tensor keep = from_vector<double>({1, 0, 1, 1, 1, 0}, {2, 3, 1});
  REQUIRE_GRADCHECK([&](const TensorList& in) { return mul(embedding(idx2, in[0], -1), keep); }, TensorList{w});
}

TEST_CASE("embedding: shapes, empty and scalar indices, no grad to the indices", "[embedding]") {
  Generator gen(1);
  Tensor w = randn({5, 3}, gen).requires_grad_();
  CHECK(embedding(from_vector<int64_t>({4}, {}), w).shape() == Shape{3});
  Tensor e = embedding(zeros({2, 0}, DType::I64), w);
  CHECK(e.shape() == Shape{2, 0, 3});
  sum(e).backward();
  CHECK(max(abs(w.grad())).item() == 0.0);
  // A non-contiguous index view reads the right rows.
  Tensor idx = from_vector<int64_t>({0, 1, 2, 3, 4, 0}, {2, 3}).t();  // [3, 2]
  Tensor y = embedding(idx, w.detach());
  CHECK(bit_equal(y.select(0, 1).select(0, 0), w.detach().select(0, 1)));  // idx[1][0] = 1
  CHECK(bit_equal(y.select(0, 1).select(0, 1), w.detach().select(0, 4)));  // idx[1][1] = 4
}

TEST_CASE("embedding: bad input is a clear error, never an out-of-bounds read", "[embedding][errors]") {
  Generator gen(1);
  Tensor w = randn({10, 4}, gen);
  Tensor idx = from_vector<int64_t>({1, 2, 3, 4, 5, 6, 7, 8, 12, 0}, {2, 5});
  CHECK_THROWS_AS(embedding(idx, w), std::invalid_argument);
  CHECK_THROWS_WITH(embedding(idx, w), Catch::Contains("index 12 at position [1, 3]") &&
                                           Catch::Contains("num_embeddings 10") && Catch::Contains("0 to 9"));
  CHECK_THROWS_WITH(embedding(from_vector<int64_t>({0, -1}, {2}), w),
                    Catch::Contains("index -1 at position [1]") && Catch::Contains("out of range"));
  CHECK_THROWS_WITH(embedding(from_vector<int64_t>({0, 10}, {2}), w), Catch::Contains("index 10"));
  CHECK_THROWS_WITH(embedding(from_vector<float>({0.f, 1.f}, {2}), w), Catch::Contains("indices must be int64"));
  CHECK_THROWS_WITH(embedding(from_vector<int64_t>({0}, {1}), randn({10}, gen)), Catch::Contains("2-d"));
  CHECK_THROWS_WITH(embedding(from_vector<int64_t>({0}, {1}), zeros({3, 2}, DType::I64)),
                    Catch::Contains("floating"));
  CHECK_THROWS_WITH(embedding(from_vector<int64_t>({0}, {1}), w, 10), Catch::Contains("padding_idx 10") &&
                                                                          Catch::Contains("num_embeddings 10"));
  CHECK_THROWS_WITH(embedding(from_vector<int64_t>({0}, {1}), w, -11), Catch::Contains("padding_idx -11"));
  CHECK_THROWS_WITH(embedding(from_vector<int64_t>({0}, {1}), w, std::nullopt, 0.0), Catch::Contains("max_norm"));
  // A bad index leaves the weight alone even with max_norm (checked before the renorm).
  Tensor big = mul(ones({3, 2}), 10.0);
  CHECK_THROWS(embedding(from_vector<int64_t>({0, 3}, {2}), big, std::nullopt, 1.0));
  CHECK(bit_equal(big, mul(ones({3, 2}), 10.0)));
}

TEST_CASE("embedding_renorm_: only rows looked up and above max_norm change", "[embedding]") {
  Tensor w = from_vector<float>({3, 4, 0.3f, 0.4f, 6, 8, 1, 0}, {4, 2});  // norms 5, 0.5, 10, 1
  embedding_renorm_(w, from_vector<int64_t>({0, 1, 1, 3}, {4}), 2.0);
  const auto v = w.to_vector<float>();
  const float s = static_cast<float>(2.0 / (5.0 + 1e-7));
  CHECK(v[0] == 3 * s);
  CHECK(v[1] == 4 * s);
  CHECK(v[2] == 0.3f);  // below max_norm
  CHECK(v[4] == 6.f);   // not looked up
  CHECK(v[6] == 1.f);
  Tensor m = from_vector<float>({3, -4}, {1, 2});
  embedding_renorm_(m, from_vector<int64_t>({0}, {1}), 1.0, INFINITY);  // max-abs norm 4
  CHECK(m.to_vector<float>()[1] == Approx(-1.0).epsilon(1e-6));
}

TEST_CASE("nn::Embedding: init, padding row, negative padding_idx, repr, state_dict", "[embedding][modules]") {
  Generator gen(11);
  nn::Embedding e(1000, 8, -1, std::nullopt, 2.0, gen);
  REQUIRE(e.padding_idx);
  CHECK(*e.padding_idx == 999);
  CHECK(max(abs(e.weight.select(0, 999))).item() == 0.0);
  Tensor rest = e.weight.detach().narrow(0, 0, 999);
  CHECK(mean(rest).item() == Approx(0.0).margin(0.05));
  CHECK(dl::std(rest).item() == Approx(1.0).epsilon(0.05));
  CHECK(e.repr() == "Embedding(1000, 8, padding_idx=999)");
  auto sd = e.state_dict();
  REQUIRE(sd.size() == 1);
  CHECK(sd[0].first == "weight");
  CHECK(sd[0].second.shape() == Shape{1000, 8});
  nn::Embedding m(4, 3, std::nullopt, 0.5, 1.0, gen);
  CHECK(m.repr() == "Embedding(4, 3, max_norm=0.5, norm_type=1.0)");
  m.eval();  // torch renormalises in eval too
  m.forward(from_vector<int64_t>({2}, {1}));
  CHECK(sum(abs(m.weight.detach().select(0, 2))).item() <= 0.5 + 1e-6);
  CHECK_THROWS_WITH(nn::Embedding(4, 3, 4), Catch::Contains("padding_idx 4"));
  CHECK_THROWS_WITH(nn::Embedding(-1, 3), Catch::Contains("negative size"));
}

// ---- layer norm ------------------------------------------------------------------------------

TEST_CASE("layer_norm forward and gradients match PyTorch", "[layer_norm]") {
  const auto cases = dl::test::load_fixtures("embed_norm.txt");
  int seen = 0;
  for (const auto& c : cases) {
    if (c.name.rfind("layer_norm", 0) != 0) continue;
    INFO(c.name);
    ++seen;
    const bool affine = c.attr_i("affine") != 0;
    Tensor x = leaf(c.t("x"));
    Tensor w = affine ? leaf(c.t("w")) : Tensor(), b = affine ? leaf(c.t("b")) : Tensor();
    Tensor y = layer_norm(x, shape_attr(c, "normalized_shape"), w, b, c.attr_f("eps"));
    CHECK_CLOSE(y, c.t("y"), 1e-5, 1e-5);
    y.backward(c.t("gy"));
    CHECK_CLOSE(x.grad(), c.t("gx"), 1e-4, 1e-5);
    if (affine) {
      CHECK_CLOSE(w.grad(), c.t("gw"), 1e-4, 1e-5);
      CHECK_CLOSE(b.grad(), c.t("gb"), 1e-4, 1e-5);
    }
  }
  CHECK(seen == 5);
}

TEST_CASE("layer_norm: f64 gradient checks", "[layer_norm]") {
  Generator gen(2);
  Tensor x = randn({3, 4, 5}, gen, DType::F64).requires_grad_();
  Tensor w = randn({4, 5}, gen, DType::F64).requires_grad_(), b = randn({4, 5}, gen, DType::F64).requires_grad_();
  REQUIRE_GRADCHECK([](const TensorList& in) { return layer_norm(in[0], {4, 5}, in[1], in[2]); }, (TensorList{x, w, b}));
  REQUIRE_GRADCHECK([](const TensorList& in) { return layer_norm(in[0], {5}, Tensor(), Tensor(), 1e-3); },
                    TensorList{x});
  Tensor w5 = randn({5}, gen, DType::F64).requires_grad_();
  REQUIRE_GRADCHECK([](const TensorList& in) { return layer_norm(in[0], {5}, in[1]); }, (TensorList{x, w5}));
}

TEST_CASE("layer_norm: bit-identical at 1 and 2 threads, non-contiguous and empty inputs", "[layer_norm]") {
  ThreadRestore restore;
  Generator gen(8);
  Tensor x0 = randn({300, 600}, gen), gy = randn({300, 600}, gen);
  Tensor w0 = randn({600}, gen), b0 = randn({600}, gen);
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
    Tensor y = layer_norm(x, {600}, w, b);
    y.backward(gy);
    return TensorList{y.detach(), x.grad(), w.grad(), b.grad()};
  };
  const TensorList a = run(1), c = run(2);
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("output " << i);
    CHECK(bit_equal(a[i], c[i]));
  }
  // A transposed view normalises the same rows as its contiguous copy.
  Tensor xt = randn({6, 4}, gen).t();  // [4, 6], non-contiguous
  CHECK(bit_equal(layer_norm(xt, {6}), layer_norm(xt.contiguous(), {6})));
  Tensor e = zeros({0, 5}).requires_grad_();
  Tensor we = ones({5}).requires_grad_();
  Tensor ye = layer_norm(e, {5}, we);
  CHECK(ye.shape() == Shape{0, 5});
  sum(ye).backward();
  CHECK(max(abs(we.grad())).item() == 0.0);
  // Constant rows: zero variance, y = bias.
  Tensor yc = layer_norm(full({2, 3}, 4.0), {3}, Tensor(), full({3}, 0.5));
  CHECK(bit_equal(yc, full({2, 3}, 0.5)));
}

TEST_CASE("layer_norm: bad input is a clear error", "[layer_norm][errors]") {
  Generator gen(1);
  Tensor x = randn({2, 5}, gen);
  CHECK_THROWS_WITH(layer_norm(x, {4}), Catch::Contains("normalized_shape=[4]") &&
                                            Catch::Contains("[*, 4]") && Catch::Contains("[2, 5]"));
  CHECK_THROWS_WITH(layer_norm(x, {3, 2, 5}), Catch::Contains("expected input with shape [*, 3, 2, 5]"));
  CHECK_THROWS_WITH(layer_norm(x, {}), Catch::Contains("at least 1-dimensional"));
  CHECK_THROWS_WITH(layer_norm(x, {5}, ones({4})), Catch::Contains("weight of shape [4]"));
  CHECK_THROWS_WITH(layer_norm(x, {5}, ones({5}), ones({5}, DType::F64)), Catch::Contains("bias"));
  CHECK_THROWS_WITH(layer_norm(zeros({2, 5}, DType::I64), {5}), Catch::Contains("floating"));
}

TEST_CASE("nn::LayerNorm: parameters, repr", "[layer_norm][modules]") {
  nn::LayerNorm ln({10});
  CHECK(ln.repr() == "LayerNorm((10,), eps=1e-05, elementwise_affine=True)");
  auto sd = ln.state_dict();
  REQUIRE(sd.size() == 2);
  CHECK(sd[0].first == "weight");
  CHECK(sd[1].first == "bias");
  CHECK(bit_equal(ln.weight.detach(), ones({10})));
  CHECK(bit_equal(ln.bias.detach(), zeros({10})));
  nn::LayerNorm plain({4, 5}, 1e-3, false);
  CHECK(plain.repr() == "LayerNorm((4, 5), eps=0.001, elementwise_affine=False)");
  CHECK(plain.state_dict().empty());
  Generator gen(4);
  Tensor x = randn({2, 4, 5}, gen);
  CHECK(bit_equal(plain.forward(x), layer_norm(x, {4, 5}, Tensor(), Tensor(), 1e-3)));
}

// ---- dropout2d -------------------------------------------------------------------------------

TEST_CASE("dropout2d zeroes whole channels, scales the rest exactly, and is identity in eval", "[dropout2d]") {
  Generator gen(21);
  const int64_t N = 20, C = 50, H = 3, W = 4;
  Tensor x = add(rand({N, C, H, W}, gen), 0.5);
  for (double p : {0.2, 0.5}) {
    INFO("p " << p);
    Tensor y = dropout2d(x, p, true, gen);
    const auto xv = x.to_vector<float>(), yv = y.to_vector<float>();
    const float scale = static_cast<float>(1.0 / (1.0 - p));
    int64_t dropped = 0;
    bool whole = true;
    for (int64_t ch = 0; ch < N * C; ++ch) {
      const bool zero = yv[ch * H * W] == 0.0f;
      dropped += zero;
      for (int64_t i = ch * H * W; i < (ch + 1) * H * W; ++i) whole = whole && yv[i] == (zero ? 0.0f : xv[i] * scale);
    }
    CHECK(whole);
    const double frac = static_cast<double>(dropped) / static_cast<double>(N * C);
    CHECK(frac == Approx(p).margin(4.0 * std::sqrt(p * (1 - p) / (N * C))));
  }
  const uint64_t before = gen.offset();
  CHECK(dropout2d(x, 0.5, false, gen).same(x));  // eval: identity, no random draw
  CHECK(dropout2d(x, 0.0, true, gen).same(x));
  CHECK(gen.offset() == before);
  CHECK(max(abs(dropout2d(x, 1.0, true, gen))).item() == 0.0);
  CHECK_THROWS_WITH(dropout2d(x, 1.5, true, gen), Catch::Contains("between 0 and 1"));
  CHECK_THROWS_WITH(dropout2d(randn({4, 5}, gen), 0.5, true, gen), Catch::Contains("[C, H, W]"));
}

TEST_CASE("dropout2d mask: dropout's Philox draw per channel, seedable, thread-count independent, used by grad",
          "[dropout2d]") {
  ThreadRestore restore;
  Generator g0(0);
  Tensor x = add(rand({16, 64, 5, 5}, g0), 1.0);
  auto run = [&](int threads, uint64_t seed) {
    omp_set_num_threads(threads);
    Generator g(seed);
    return dropout2d(x, 0.3, true, g);
  };
  Tensor a = run(1, 7), b = run(2, 7), c = run(2, 8);
  CHECK(bit_equal(a, b));
  CHECK_FALSE(bit_equal(a, c));
  // The channel mask is what dropout draws for a [N, C] tensor of ones from the same state.
  Generator g1(7), g2(7);
  Tensor mask = dropout(ones({16, 64}), 0.3, true, g2);
  CHECK(bit_equal(dropout2d(x, 0.3, true, g1), mul(x, mask.view({16, 64, 1, 1}))));
  CHECK(g1.offset() == g2.offset());
  // Unbatched [C, H, W]: channels of dim 0; the gradient is the mask.
  Generator g3(9);
  Tensor xc = x.select(0, 0).clone().requires_grad_();
  Tensor y = dropout2d(xc, 0.5, true, g3);
  y.backward(ones_like(y));
  Generator g4(9);
  Tensor m = dropout(ones({1, 64}), 0.5, true, g4).view({64, 1, 1});
  CHECK(bit_equal(y, mul(xc.detach(), m)));
  CHECK(bit_equal(xc.grad(), mul(ones_like(y), m)));
}

TEST_CASE("nn::Dropout2d: repr, eval identity", "[dropout2d][modules]") {
  nn::Dropout2d d(0.25);
  CHECK(d.repr() == "Dropout2d(p=0.25, inplace=False)");
  Generator gen(1);
  Tensor x = randn({2, 3, 4, 4}, gen);
  d.eval();
  CHECK(d.forward(x).same(x));
  CHECK_THROWS_WITH(nn::Dropout2d(1.5), Catch::Contains("between 0 and 1"));
}

// ---- layers ----------------------------------------------------------------------------------

TEST_CASE("layers embedding, layer_norm, dropout2d: shape rules, attributes and modules", "[graph][embedding]") {
  LayerSpec e = layer("embedding", {{"num_embeddings", int64_t{100}}, {"embedding_dim", int64_t{16}},
                                    {"padding_idx", int64_t{-1}}, {"max_norm", 2.0}});
  const LayerShapes es = infer_layer_shapes(e, {{35}});
  CHECK(es.output == Shape{35, 16});
  CHECK(es.params == NamedShapes{{"weight", {100, 16}}});
  Generator gen(3);
  auto em = build_layer(e, {{35}}, gen);
  CHECK(em->repr() == "Embedding(100, 16, padding_idx=99, max_norm=2.0)");
  CHECK(em->forward(zeros({2, 35}, DType::I64)).shape() == Shape{2, 35, 16});
  CHECK_THROWS_WITH(em->forward(zeros({2, 35})), Catch::Contains("indices must be int64"));
  LayerSpec bad{"x", "embedding", {"input"}, {{"num_embeddings", int64_t{10}}, {"embedding_dim", int64_t{4}},
                                              {"padding_idx", int64_t{10}}}, {}};
  const auto problems = resolve_layer_attrs(bad);
  REQUIRE(problems.size() == 1);
  CHECK_THAT(problems[0], Catch::Contains("padding_idx (10) must be within num_embeddings"));

  LayerSpec ln = layer("layer_norm", {});
  CHECK(infer_layer_shapes(ln, {{7, 12}}).params == NamedShapes{{"weight", {12}}, {"bias", {12}}});
  LayerSpec ln2 = layer("layer_norm", {{"normalized_shape", std::vector<int64_t>{7, 12}}, {"elementwise_affine", false}});
  CHECK(infer_layer_shapes(ln2, {{7, 12}}).params.empty());
  CHECK(build_layer(ln2, {{7, 12}}, gen)->repr() == "LayerNorm((7, 12), eps=1e-05, elementwise_affine=False)");
  CHECK_THROWS_WITH(infer_layer_shapes(ln2, {{12, 7}}),
                    Catch::Contains("normalized_shape [7, 12] must be the trailing dims of the input [12, 7]"));

  LayerSpec d2 = layer("dropout2d", {{"p", 0.2}});
  CHECK(infer_layer_shapes(d2, {{3, 8, 8}}).output == Shape{3, 8, 8});
  CHECK_THROWS_AS(infer_layer_shapes(d2, {{64}}), GraphError);
  CHECK(build_layer(d2, {{3, 8, 8}}, gen)->repr() == "Dropout2d(p=0.2, inplace=False)");
}

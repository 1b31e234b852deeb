// The permute layer (engine/graph/layers/reshape.cpp, torch.Tensor.permute with the batch dim
// counted): values against index arithmetic, the gradient (the inverse permutation) in f64,
// and the shape rule's refusals.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "engine/graph/layer_schema.h"
#include "engine/graph/model.h"
#include "engine/ops.h"
#include "tests/support/gradcheck.h"

namespace {

using V = std::vector<int64_t>;

dl::LayerSpec permute_layer(V dims) {
  dl::LayerSpec s{"p", "permute", {"input"}, {{"dims", std::move(dims)}}, {}};
  const auto problems = dl::resolve_layer_attrs(s);
  for (const auto& p : problems) FAIL_CHECK(p);
  REQUIRE(problems.empty());
  return s;
}

dl::nn::ModulePtr build(const dl::LayerSpec& s, const dl::Shape& in) {
  dl::Generator gen(1);
  return dl::find_layer_schema("permute")->build(s, {in}, gen);
}

}  // namespace

TEST_CASE("permute layer: y[n, w, c, h] = x[n, c, h, w], the CRNN's [0, 3, 1, 2]", "[permute][graph]") {
  dl::ModelSpec m;
  m.nodes = {permute_layer({0, 3, 1, 2}), [] {
               dl::LayerSpec f{"f", "flatten", {"p"}, {{"start_dim", int64_t{2}}}, {}};
               REQUIRE(dl::resolve_layer_attrs(f).empty());
               return f;
             }()};
  m.sequential = false;
  dl::Generator gen(2);
  const int64_t N = 2, C = 3, H = 4, W = 5;
  dl::GraphModel model(m, dl::Shape{C, H, W}, gen);
  CHECK(model.summary()[0].output_shape == dl::Shape{W, C, H});
  CHECK(model.summary()[1].output_shape == dl::Shape{W, C * H});

  dl::Tensor x = dl::randn({N, C, H, W}, gen);
  const std::vector<float> xs = x.to_vector<float>();
  dl::Tensor y = model.forward(x);
  REQUIRE(y.shape() == dl::Shape{N, W, C * H});
  const std::vector<float> ys = y.contiguous().to_vector<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w)
          CHECK(ys[static_cast<size_t>(((n * W + w) * C + c) * H + h)] ==
                xs[static_cast<size_t>(((n * C + c) * H + h) * W + w)]);
}

TEST_CASE("permute layer: negative dims, gradient is the inverse permutation (f64 gradcheck)", "[permute][graph]") {
  const dl::LayerSpec s = permute_layer({0, -1, 1, 2});  // -1 is dim 3 of the batched input
  CHECK(dl::infer_layer_shapes(s, {{3, 4, 2}}).output == dl::Shape{2, 3, 4});
  auto module = build(s, {3, 4, 2});
  dl::Generator gen(4);
  dl::Tensor x = dl::randn({2, 3, 4, 2}, gen, dl::DType::F64).requires_grad_();
  REQUIRE_GRADCHECK([&](const dl::TensorList& in) { return module->forward(in[0]); }, (dl::TensorList{x}));
}

TEST_CASE("permute layer refuses dims that are not a permutation keeping the batch dim first",
          "[permute][graph][errors]") {
  auto rule = [](V dims, const dl::Shape& in) { return dl::infer_layer_shapes(permute_layer(std::move(dims)), {in}); };
  using Catch::Contains;
  CHECK(rule({0, 2, 1}, {3, 4}).output == dl::Shape{4, 3});
  CHECK_THROWS_WITH(rule({0, 1}, {3, 4}), Contains("has 2 entries, expected 3") && Contains("[3, 4]"));
  CHECK_THROWS_WITH(rule({0, 1, 1}, {3, 4}), Contains("not a permutation: dim 1 repeats"));
  CHECK_THROWS_WITH(rule({0, 1, 3}, {3, 4}), Contains("dim 3 is out of range [-3, 2]"));
  CHECK_THROWS_WITH(rule({1, 0, 2}, {3, 4}), Contains("dims[0] must be 0"));
  CHECK(rule({-3, 2, 1}, {3, 4}).output == dl::Shape{4, 3});  // -3 is the batch dim
}

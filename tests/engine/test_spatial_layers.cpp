// The spatial transformer layers (engine/graph/layers/spatial.cpp: affine_theta, affine_grid,
// grid_sample) and reshape as graph nodes: a small STN graph's shapes, identity start and
// gradients; the shape rules' refusals.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "engine/graph/layer_schema.h"
#include "engine/graph/model.h"
#include "engine/ops.h"
#include "tests/support/fixtures.h"

namespace {

using V = std::vector<int64_t>;

dl::LayerSpec layer(const std::string& name, const std::string& type, std::vector<std::string> inputs,
                    dl::AttrMap attrs = {}) {
  dl::LayerSpec s{name, type, std::move(inputs), std::move(attrs), {}};
  const auto problems = dl::resolve_layer_attrs(s);
  for (const auto& p : problems) FAIL_CHECK(p);
  REQUIRE(problems.empty());
  return s;
}

dl::ModelSpec nodes(std::vector<dl::LayerSpec> ls) {
  dl::ModelSpec m;
  m.nodes = std::move(ls);
  m.sequential = false;
  return m;
}

// input [1, 8, 8] -> localisation (flatten, linear, relu, affine_theta) -> affine_grid (size
// from the image) -> grid_sample of the image.
dl::ModelSpec stn(bool align_corners) {
  return nodes({layer("flat", "flatten", {"input"}), layer("fc", "linear", {"flat"}, {{"out_features", int64_t{4}}}),
                layer("act", "relu", {"fc"}), layer("theta", "affine_theta", {"act"}),
                layer("grid", "affine_grid", {"theta", "input"}, {{"align_corners", align_corners}}),
                layer("warp", "grid_sample", {"input", "grid"}, {{"align_corners", align_corners}})});
}

}  // namespace

TEST_CASE("spatial layers: an STN graph starts as the identity and trains theta", "[grid_sample][graph]") {
  dl::Generator gen(3);
  dl::GraphModel model(stn(true), dl::Shape{1, 8, 8}, gen);
  const auto& summary = model.summary();
  CHECK(summary[3].output_shape == dl::Shape{2, 3});
  CHECK(summary[4].output_shape == dl::Shape{8, 8, 2});
  CHECK(summary[5].output_shape == dl::Shape{1, 8, 8});
  // affine_theta: PyTorch's tutorial init, and state_dict keys of the Linear it stands for.
  const auto sd = model.state_dict();
  const dl::Tensor* w = dl::nn::find_tensor(sd, "theta.weight");
  const dl::Tensor* b = dl::nn::find_tensor(sd, "theta.bias");
  REQUIRE(w);
  REQUIRE(b);
  CHECK(w->shape() == dl::Shape{6, 4});
  for (float v : w->to_vector<float>()) CHECK(v == 0);
  CHECK(b->to_vector<float>() == std::vector<float>{1, 0, 0, 0, 1, 0});

  dl::Tensor x = dl::randn({3, 1, 8, 8}, gen);
  dl::Tensor y = model.forward(x);
  CHECK_CLOSE(y, x, 1e-5, 1e-5);  // the identity transform with align_corners samples pixel centres
  dl::sum(y * dl::randn(y.shape(), gen)).backward();
  REQUIRE(w->grad().defined());
  CHECK(dl::max(dl::abs(w->grad())).item() > 0);  // the localisation net learns through the sampler
}

TEST_CASE("spatial layers: affine_grid with a fixed size, reshape, nearest", "[grid_sample][graph]") {
  dl::Generator gen(4);
  // theta as 6 features reshaped to [2, 3]; grid of a fixed 3x5 output; nearest + border.
  auto m = nodes({layer("flat", "flatten", {"input"}), layer("fc", "linear", {"flat"}, {{"out_features", int64_t{6}}}),
                  layer("theta", "reshape", {"fc"}, {{"shape", V{2, -1}}}),
                  layer("grid", "affine_grid", {"theta"}, {{"size", V{3, 5}}}),
                  layer("warp", "grid_sample", {"input", "grid"}, {{"mode", std::string("nearest")},
                                                                   {"padding_mode", std::string("border")}})});
  dl::GraphModel model(m, dl::Shape{2, 4, 4}, gen);
  CHECK(model.summary()[2].output_shape == dl::Shape{2, 3});
  CHECK(model.output_shape() == dl::Shape{2, 3, 5});
  dl::Tensor y = model.forward(dl::randn({2, 2, 4, 4}, gen));
  CHECK(y.shape() == dl::Shape{2, 2, 3, 5});
}

TEST_CASE("spatial layers and reshape refuse inputs they cannot take", "[grid_sample][graph][errors]") {
  auto rule = [](const dl::LayerSpec& s, const std::vector<dl::Shape>& in) { return dl::infer_layer_shapes(s, in); };
  using Catch::Contains;
  const auto grid = layer("g", "affine_grid", {"t"});
  CHECK_THROWS_WITH(rule(grid, {{6}}), Contains("theta [2, 3]"));
  CHECK_THROWS_WITH(rule(grid, {{2, 3}}), Contains("needs the output size"));
  CHECK_THROWS_WITH(rule(layer("g", "affine_grid", {"t", "x"}, {{"size", V{4, 4}}}), {{2, 3}, {1, 4, 4}}),
                    Contains("not both"));
  CHECK_THROWS_WITH(rule(layer("g", "affine_grid", {"t", "x"}), {{2, 3}, {5}}), Contains("last two dims"));
  CHECK(rule(layer("g", "affine_grid", {"t", "x"}), {{2, 3}, {3, 7, 9}}).output == dl::Shape{7, 9, 2});

  const auto sample = layer("s", "grid_sample", {"x", "g"});
  CHECK_THROWS_WITH(rule(sample, {{3, 4, 4}, {4, 4, 3}}), Contains("[H_out, W_out, 2]"));
  CHECK_THROWS_WITH(rule(sample, {{4, 4}, {4, 4, 2}}), Contains("[C, H, W]"));
  CHECK(rule(sample, {{3, 4, 4}, {5, 6, 2}}).output == dl::Shape{3, 5, 6});
  dl::LayerSpec bad_mode{"s", "grid_sample", {"x", "g"}, {{"mode", std::string("bicubic")}}, {}};
  CHECK_FALSE(dl::resolve_layer_attrs(bad_mode).empty());

  CHECK_THROWS_WITH(rule(layer("t", "affine_theta", {"x"}), {{2, 5}}), Contains("flatten"));

  CHECK(rule(layer("r", "reshape", {"x"}, {{"shape", V{-1, 4}}}), {{2, 3, 4}}).output == dl::Shape{6, 4});
  CHECK_THROWS_WITH(rule(layer("r", "reshape", {"x"}, {{"shape", V{5, -1}}}), {{2, 3, 4}}),
                    Contains("invalid for an input of 24 elements"));
  CHECK_THROWS_WITH(rule(layer("r", "reshape", {"x"}, {{"shape", V{-1, -1}}}), {{2, 3, 4}}), Contains("only one"));
  CHECK_THROWS_WITH(rule(layer("r", "reshape", {"x"}, {{"shape", V{5, 5}}}), {{2, 3, 4}}), Contains("24 elements"));
  CHECK_THROWS_WITH(rule(layer("r", "reshape", {"x"}, {{"shape", V{-2, 12}}}), {{2, 3, 4}}), Contains("negative"));
}

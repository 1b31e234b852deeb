// Batch norm + ReLU fusion: the op (batch_norm_relu) and the graph pass (engine/graph/fuse.h)
// give bit-identical values and gradients to batch_norm then relu.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "engine/graph/fuse.h"
#include "engine/graph/model.h"
#include "engine/ops.h"
#include "tests/support/gradcheck.h"

using namespace dl;

namespace {

void check_identical(const Tensor& a, const Tensor& b) {
  REQUIRE(a.defined() == b.defined());
  if (!a.defined()) return;
  REQUIRE(a.shape() == b.shape());
  CHECK(a.to(DType::F64).to_vector<double>() == b.to(DType::F64).to_vector<double>());
}

LayerSpec layer(const std::string& name, const std::string& type, std::vector<std::string> inputs,
                AttrMap attrs = {}) {
  LayerSpec s{name, type, std::move(inputs), std::move(attrs), {}};
  auto problems = resolve_layer_attrs(s);
  INFO(type);
  REQUIRE(problems.empty());
  return s;
}

}  // namespace

TEST_CASE("batch_norm_relu equals relu(batch_norm) bit for bit, forward and backward", "[nn][bn][fuse]") {
  Generator gen(81);
  for (DType dtype : {DType::F32, DType::F64}) {
    for (const Shape& shape : {Shape{8, 3, 5, 5}, Shape{6, 4}, Shape{4, 2, 9}}) {
      for (bool training : {true, false}) {
        for (bool affine : {true, false}) {
          INFO(dtype_name(dtype) << " " << shape_str(shape) << " training " << training << " affine " << affine);
          const int64_t c = shape[1];
          Tensor x = randn(shape, gen, dtype), gy = randn(shape, gen, dtype);
          Tensor w = affine ? randn({c}, gen, dtype) : Tensor(), b = affine ? randn({c}, gen, dtype) : Tensor();
          Tensor rm = randn({c}, gen), rv = add(rand({c}, gen), 0.5);
          auto run = [&](bool fused) {
            Tensor xl = x.clone().requires_grad_();
            Tensor wl = affine ? w.clone().requires_grad_() : Tensor();
            Tensor bl = affine ? b.clone().requires_grad_() : Tensor();
            Tensor m = rm.clone(), v = rv.clone();
            Tensor y = fused ? batch_norm_relu(xl, wl, bl, m, v, training, 0.1, 1e-5)
                             : relu(batch_norm(xl, wl, bl, m, v, training, 0.1, 1e-5));
            y.backward(gy);
            return TensorList{y, xl.grad(), affine ? wl.grad() : Tensor(), affine ? bl.grad() : Tensor(), m, v};
          };
          TensorList fused = run(true), plain = run(false);
          for (size_t i = 0; i < fused.size(); ++i) {
            INFO("output " << i << " (y, gx, gw, gb, running_mean, running_var)");
            check_identical(fused[i], plain[i]);
          }
        }
      }
    }
  }
}

TEST_CASE("batch_norm_relu gradcheck in f64", "[nn][bn][fuse][gradcheck]") {
  Generator gen(82);
  for (bool training : {true, false}) {
    INFO("training " << training);
    Tensor x = randn({4, 3, 2, 3}, gen, DType::F64).requires_grad_();
    Tensor w = add(rand({3}, gen, DType::F64), 0.5).detach().requires_grad_();
    Tensor b = randn({3}, gen, DType::F64).requires_grad_();
    Tensor rm = randn({3}, gen), rv = add(rand({3}, gen), 0.5);
    REQUIRE_GRADCHECK(([=](const TensorList& t) {
                        Tensor m = rm.clone(), v = rv.clone();
                        return batch_norm_relu(t[0], t[1], t[2], m, v, training, 0.1, 1e-5);
                      }),
                      (TensorList{x, w, b}));
  }
}

TEST_CASE("graph: batch_norm2d -> relu runs fused, with the unfused values and gradients", "[graph][fuse]") {
  // bn1 -> r1 fuses; bn2 is read by r2 and add, so it does not.
  ModelSpec spec;
  spec.nodes.push_back(layer("c1", "conv2d", {"input"},
                             {{"out_channels", int64_t{4}}, {"kernel_size", int64_t{3}}, {"padding", int64_t{1}}}));
  spec.nodes.push_back(layer("bn1", "batch_norm2d", {"c1"}));
  spec.nodes.push_back(layer("r1", "relu", {"bn1"}));
  spec.nodes.push_back(layer("bn2", "batch_norm2d", {"r1"}));
  spec.nodes.push_back(layer("r2", "relu", {"bn2"}));
  spec.nodes.push_back(layer("add", "add", {"r2", "bn2"}));
  spec.nodes.push_back(layer("out", "relu", {"add"}));
  Generator g1(83), g2(83), gen(84);
  GraphModel fused(spec, {2, 6, 6}, g1), plain(spec, {2, 6, 6}, g2);
  CHECK(plan_bn_relu_fusion(fused.nodes(), fused.output()) == std::vector<int>{-1, 2, -1, -1, -1, -1, -1});

  Tensor x = randn({5, 2, 6, 6}, gen), gy = randn({5, 4, 6, 6}, gen);
  // plain: every node on its own, in order.
  std::vector<Tensor> values;
  for (const auto& n : plain.nodes()) {
    TensorList args;
    for (ValueRef v : n.inputs) args.push_back(v.node < 0 ? x : values[v.node]);
    values.push_back(n.module->forward(args));
  }
  Tensor y_fused = fused.forward(x);
  check_identical(y_fused, values.back());
  y_fused.backward(gy);
  values.back().backward(gy);
  auto pf = fused.named_parameters(), pp = plain.named_parameters();
  REQUIRE(pf.size() == pp.size());
  for (size_t i = 0; i < pf.size(); ++i) {
    INFO(pf[i].first);
    check_identical(pf[i].second.grad(), pp[i].second.grad());
  }
  auto bf = fused.state_dict(), bp = plain.state_dict();  // running statistics updated alike
  REQUIRE(bf.size() == bp.size());
  for (size_t i = 0; i < bf.size(); ++i) {
    INFO(bf[i].first);
    CHECK(bf[i].first == bp[i].first);
    check_identical(bf[i].second, bp[i].second);
  }

  // The batch norm's own value when asked for: the model runs it unfused.
  std::vector<Tensor> both = fused.forward_nodes(x, {"bn1", "r1"});
  CHECK(both[1].grad_fn()->name == "ReluBackward");
  CHECK(min(both[0]).item() < 0.0);
  CHECK(fused.forward_nodes(x, {"r1"})[0].grad_fn()->name == "BatchNormReluBackward");
}

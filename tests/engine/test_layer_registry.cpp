// The layer registry walk: every registered layer type is documented, builds from its example,
// agrees with its own shape rule, trains (gradients reach its inputs and parameters) and has an
// ONNX mapping that writes a well-formed subgraph (or is listed as unexportable below).
// tests/app/test_export.cpp exports the same examples for real ("[export][registry]").
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/graph/layer_schema.h"
#include "engine/graph/model.h"
#include "engine/graph/onnx_emit.h"
#include "engine/ops.h"

namespace {

// Layer types that deliberately have no ONNX mapping (export refuses them by name).
const std::set<std::string> kUnexportable = {};

dl::NamedShapes shapes_of(const dl::nn::NamedTensors& ts) {
  dl::NamedShapes out;
  for (const auto& [name, t] : ts) out.push_back({name, t.shape()});
  return out;
}

dl::Shape batched(int64_t n, const dl::Shape& per_sample) {
  dl::Shape s{n};
  s.insert(s.end(), per_sample.begin(), per_sample.end());
  return s;
}

// The example as a resolved single-node spec reading the model input once per input.
dl::LayerSpec example_spec(const dl::LayerSchema& s) {
  dl::LayerSpec spec{"x", s.type, std::vector<std::string>(s.example.inputs.size(), "input"), s.example.attrs, {}};
  const auto problems = dl::resolve_layer_attrs(spec);
  for (const auto& p : problems) FAIL_CHECK(p);
  REQUIRE(problems.empty());
  return spec;
}

// An OnnxGraph that records what a mapping writes and checks that it is a well-formed subgraph:
// every value read is a layer input, an initializer or written before, no name is defined twice.
class RecordingGraph final : public dl::OnnxGraph {
 public:
  explicit RecordingGraph(const std::vector<std::string>& inputs) : defined_(inputs.begin(), inputs.end()) {}

  void node(const std::string& op, const std::vector<std::string>& inputs, const std::string& output,
            const std::string& name, const std::vector<dl::OnnxAttr>& attrs) override {
    INFO(op << " " << name);
    CHECK_FALSE(op.empty());
    CHECK_FALSE(name.empty());
    for (const auto& i : inputs) CHECK(defined_.count(i));
    CHECK(defined_.insert(output).second);
    std::set<std::string> attr_names;
    for (const auto& a : attrs) CHECK(attr_names.insert(a.name).second);
    outputs.push_back(output);
  }

  void node(const std::string& op, const std::vector<std::string>& inputs, const std::vector<std::string>& outs,
            const std::string& name, const std::vector<dl::OnnxAttr>& attrs) override {
    REQUIRE_FALSE(outs.empty());
    node(op, inputs, outs[0], name, attrs);
    for (size_t i = 1; i < outs.size(); ++i) CHECK((outs[i].empty() || defined_.insert(outs[i]).second));
  }

  std::string initializer(const std::string& name, const dl::Tensor& t) override {
    CHECK(defined_.insert(name).second);
    CHECK((t.dtype() == dl::DType::F32 || t.dtype() == dl::DType::I64));
    initializers[name] = t.shape();
    return name;
  }

  std::vector<std::string> outputs;                // node outputs, in order
  std::map<std::string, dl::Shape> initializers;  // name -> shape

 private:
  std::set<std::string> defined_;
};

}  // namespace

TEST_CASE("layer registry: every layer type is documented, builds, matches its shape rule and exports",
          "[graph][registry]") {
  REQUIRE_FALSE(dl::layer_schemas().empty());
  for (const dl::LayerSchema& s : dl::layer_schemas()) {
    INFO("layer type " << s.type);
    CHECK_FALSE(s.doc.empty());
    CHECK(s.doc.find('\n') == std::string::npos);
    for (const auto& a : s.attrs) {
      INFO("attribute " << a.name);
      CHECK_FALSE(a.doc.empty());
    }
    CHECK(s.family != dl::LayerFamily::Other);  // a built-in type says where it is listed
    CHECK((s.saved_copies >= 0 && s.saved_copies <= 2));
    REQUIRE(s.shapes);
    REQUIRE(s.build);
    CHECK(dl::has_layer_builder(s.type));

    // The example: inputs of one shape (the registry walks feed one model input to each).
    const auto& in = s.example.inputs;
    REQUIRE_FALSE(in.empty());
    for (const auto& x : in) CHECK(x == in[0]);
    const dl::LayerSpec spec = example_spec(s);

    // Shape rule vs the module: parameters, buffers (names, order, shapes) and the output of a
    // batch of 3 in training and in eval mode.
    const dl::LayerShapes rule = dl::infer_layer_shapes(spec, in);
    dl::Generator gen(1);
    auto module = dl::build_layer(spec, in, gen);
    REQUIRE(module);
    CHECK(shapes_of(module->named_parameters(false)) == rule.params);
    CHECK(shapes_of(module->named_buffers(false)) == rule.buffers);
    dl::TensorList xs;
    const bool float_input = dl::is_floating(s.example.input_dtype);  // else indices: zeros, no gradient
    for (const auto& x : in)
      xs.push_back(float_input ? dl::randn(batched(3, x), gen).requires_grad_()
                               : dl::zeros(batched(3, x), s.example.input_dtype));
    auto run = [&] { return xs.size() == 1 ? module->forward(xs[0]) : module->forward(xs); };
    for (bool training : {true, false}) {
      INFO((training ? "training" : "eval"));
      module->train(training);
      dl::Tensor y = run();
      CHECK(y.shape() == batched(3, rule.output));
      if (training) {  // trainable: backward reaches every input and parameter
        dl::sum(y).backward();
        for (const auto& x : xs) {
          if (!x.requires_grad()) continue;  // integer indices
          REQUIRE(x.grad().defined());
          CHECK(x.grad().shape() == x.shape());
        }
        for (const auto& [name, p] : module->named_parameters(false)) {
          INFO("parameter " << name);
          REQUIRE(p.grad().defined());
          CHECK(p.grad().shape() == p.shape());
        }
      }
    }

    // ONNX: the mapping writes a subgraph whose last node produces the layer's output.
    if (kUnexportable.count(s.type)) {
      CHECK_FALSE(s.onnx);
      continue;
    }
    REQUIRE(s.onnx);
    module->eval();
    std::vector<std::string> names;
    for (size_t i = 0; i < in.size(); ++i) names.push_back("in" + std::to_string(i));
    dl::OnnxLayer io{spec, *module, names, in, rule.output, "y", 17};
    RecordingGraph g(names);
    s.onnx(g, io);
    REQUIRE_FALSE(g.outputs.empty());
    CHECK(g.outputs.back() == "y");
    for (const auto& [name, t] : module->named_parameters(false)) {
      INFO("parameter " << name);  // every parameter reaches the graph, as its state_dict key
      CHECK(g.initializers.count("x." + name));
    }
  }
  for (const auto& type : kUnexportable) CHECK(dl::find_layer_schema(type));  // no stale entries
}

TEST_CASE("layer registry: types are listed by family, then in registration order", "[graph][registry]") {
  const auto names = dl::layer_type_names();
  CHECK(std::set<std::string>(names.begin(), names.end()).size() == names.size());
  const auto& all = dl::layer_schemas();
  for (size_t i = 1; i < all.size(); ++i) {
    INFO(all[i - 1].type << " before " << all[i].type);
    CHECK(all[i - 1].family <= all[i].family);
  }
  // configs/README.md lists them in this order (a change there regenerates the reference).
  CHECK(names == std::vector<std::string>{"linear", "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d",
                                          "adaptive_avg_pool2d", "upsample",
                                          "batch_norm1d", "batch_norm2d", "layer_norm", "dropout", "dropout2d",
                                          "embedding", "flatten", "reshape", "permute", "relu",
                                          "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softplus", "softmax",
                                          "log_softmax", "identity", "add", "concat", "lstm", "gru", "rnn",
                                          "last_step", "affine_theta", "affine_grid", "grid_sample"});

  // A type registered later joins the end of its family; one without a family comes last.
  dl::register_layer_schema({.type = "test_pool", .doc = "a pooling layer only this test knows",
                             .family = dl::LayerFamily::Pool});
  dl::register_layer_schema({"test_other", "a layer type only this test knows", {}});
  CHECK_THROWS_AS(dl::register_layer_schema({"test_other", "again", {}}), std::invalid_argument);
  auto with = dl::layer_type_names();
  auto at = [&](const std::string& t) { return std::find(with.begin(), with.end(), t) - with.begin(); };
  CHECK(at("test_pool") == at("upsample") + 1);  // the last of the Pool family
  CHECK(with.back() == "test_other");
  CHECK_FALSE(dl::has_layer_builder("test_other"));  // a schema alone: configs know it, the graph refuses it
  dl::LayerSpec spec{"t", "test_other", {"input"}, {}, {}};
  dl::Generator gen(0);
  CHECK_THROWS_WITH(dl::build_layer(spec, {{2}}, gen), Catch::Contains("no builder for this layer type"));
  CHECK(dl::unregister_layer_schema("test_pool"));
  CHECK(dl::unregister_layer_schema("test_other"));
  CHECK(dl::layer_type_names() == names);
}

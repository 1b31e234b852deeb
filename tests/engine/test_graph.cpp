// The model graph's layer registry: every YAML layer type the schema knows can be built, and
// its shape rule (used alone by validate and the memory estimate) agrees with its module.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/graph/layer_schema.h"
#include "engine/graph/memory_estimate.h"
#include "engine/graph/model.h"
#include "engine/ops.h"
#include "engine/optim/sgd.h"

TEST_CASE("graph: every registered layer type has a builder", "[graph]") {
  for (const std::string& type : dl::layer_type_names()) {
    INFO(type);
    CHECK(dl::has_layer_builder(type));
  }
  CHECK_FALSE(dl::has_layer_builder("no_such_layer"));
  dl::LayerSpec spec{"x", "no_such_layer", {"input"}, {}, {}};
  dl::Generator gen(0);
  CHECK_THROWS_AS(dl::build_layer(spec, {{1, 2, 2}}, gen), dl::GraphError);
}

// ---- shape rules: validate and the memory estimate rely on them alone -----------------------

namespace {

dl::LayerSpec layer(const std::string& name, const std::string& type, std::vector<std::string> inputs,
                    dl::AttrMap attrs = {}) {
  dl::LayerSpec s{name, type, std::move(inputs), std::move(attrs), {}};
  auto problems = dl::resolve_layer_attrs(s);
  INFO(type);
  REQUIRE(problems.empty());
  return s;
}

dl::ModelSpec one_node(dl::LayerSpec s) {
  dl::ModelSpec m;
  m.nodes.push_back(std::move(s));
  return m;
}

using V = std::vector<int64_t>;

}  // namespace

TEST_CASE("graph: every layer type's shape rule agrees with its module", "[graph]") {
  // GraphModel checks each module it builds (parameters, buffers, probed output) against the
  // rule and throws std::logic_error on any difference; these variants exercise every rule.
  const dl::Shape image{4, 9, 7}, vec{6}, seq{3, 5};
  struct Case {
    dl::LayerSpec spec;
    dl::Shape input;
    dl::DType dtype = dl::DType::F32;  // the model input's (token indices: I64)
  };
  std::vector<Case> cases = {
      {layer("l", "linear", {"input"}, {{"out_features", int64_t{5}}}), seq},
      {layer("l", "linear", {"input"}, {{"out_features", int64_t{5}}, {"bias", false}}), vec},
      {layer("c", "conv2d", {"input"}, {{"out_channels", int64_t{6}}, {"kernel_size", V{3, 2}}}), image},
      {layer("c", "conv2d", {"input"},
             {{"out_channels", int64_t{4}}, {"kernel_size", int64_t{3}}, {"stride", V{2, 3}}, {"padding", V{1, 2}},
              {"dilation", int64_t{2}}, {"groups", int64_t{2}}, {"bias", false}}),
       image},
      {layer("p", "max_pool2d", {"input"}, {{"kernel_size", int64_t{2}}}), image},
      {layer("p", "max_pool2d", {"input"}, {{"kernel_size", int64_t{3}}, {"stride", int64_t{2}}, {"padding", int64_t{1}},
                                            {"ceil_mode", true}}),
       image},
      {layer("p", "avg_pool2d", {"input"}, {{"kernel_size", V{2, 3}}, {"ceil_mode", true}}), image},
      {layer("p", "adaptive_avg_pool2d", {"input"}, {{"output_size", V{2, 3}}}), image},
      {layer("t", "conv_transpose2d", {"input"}, {{"out_channels", int64_t{6}}, {"kernel_size", V{3, 2}}}), image},
      {layer("t", "conv_transpose2d", {"input"},
             {{"out_channels", int64_t{4}}, {"kernel_size", int64_t{3}}, {"stride", V{2, 3}}, {"padding", V{1, 2}},
              {"output_padding", V{1, 0}}, {"groups", int64_t{2}}, {"bias", false}, {"dilation", int64_t{2}}}),
       image},
      {layer("u", "upsample", {"input"},
             {{"scale_factor", std::vector<double>{2.0, 1.5}}, {"mode", std::string("bilinear")}}),
       image},
      {layer("u", "upsample", {"input"}, {{"size", V{5, 3}}}), image},
      {layer("b", "batch_norm1d", {"input"}), vec},
      {layer("b", "batch_norm1d", {"input"}, {{"affine", false}}), seq},
      {layer("b", "batch_norm2d", {"input"}, {{"track_running_stats", false}}), image},
      {layer("d", "dropout", {"input"}), image},
      {layer("f", "flatten", {"input"}), image},
      {layer("f", "flatten", {"input"}, {{"start_dim", int64_t{2}}}), image},
      {layer("f", "flatten", {"input"}, {{"start_dim", int64_t{0}}}), image},
      {layer("s", "softmax", {"input"}, {{"dim", int64_t{-1}}}), image},
      {layer("s", "log_softmax", {"input"}), vec},
      {layer("a", "add", {"input", "input"}), image},
      {layer("k", "concat", {"input", "input", "input"}, {{"dim", int64_t{2}}}), image},
      {layer("k", "concat", {"input", "input"}, {{"dim", int64_t{-1}}}), image},
      {layer("r", "reshape", {"input"}, {{"shape", V{-1, 7}}}), image},
      {layer("t", "affine_theta", {"input"}), vec},
      {layer("g", "affine_grid", {"input"}, {{"size", V{4, 5}}, {"align_corners", true}}), dl::Shape{2, 3}},
      {layer("g", "affine_grid", {"input", "input"}), dl::Shape{2, 3}},  // the size from the second: 2x3
      {layer("s", "grid_sample", {"input", "input"}), dl::Shape{2, 3, 2}},  // input [2, 3, 2], grid [2, 3, 2]
      {layer("s", "grid_sample", {"input", "input"},
             {{"mode", std::string("nearest")}, {"padding_mode", std::string("reflection")}}),
       dl::Shape{2, 3, 2}},
  };
  cases.push_back({layer("n", "layer_norm", {"input"}), image});
  cases.push_back({layer("n", "layer_norm", {"input"}, {{"normalized_shape", V{9, 7}}, {"elementwise_affine", false}}), image});
  cases.push_back({layer("d", "dropout2d", {"input"}), image});
  cases.push_back({layer("m", "embedding", {"input"}, {{"num_embeddings", int64_t{11}}, {"embedding_dim", int64_t{4}},
                                                       {"padding_idx", int64_t{0}}}),
                   seq, dl::DType::I64});
  for (const char* t : {"lstm", "gru", "rnn"}) {
    cases.push_back({layer("r", t, {"input"}, {{"hidden_size", int64_t{4}}, {"batch_first", true}}), seq});
    cases.push_back({layer("r", t, {"input"},
                           {{"hidden_size", int64_t{3}}, {"num_layers", int64_t{2}}, {"bidirectional", true},
                            {"batch_first", true}}),
                     seq});
  }
  cases.push_back({layer("l", "last_step", {"input"}), seq});
  cases.push_back({layer("p", "permute", {"input"}, {{"dims", V{0, 3, 1, 2}}}), image});
  for (const char* t : {"relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softplus", "identity"})
    cases.push_back({layer("e", t, {"input"}), image});
  std::vector<std::string> covered;
  for (const Case& c : cases) {
    INFO(c.spec.type << " on " << dl::shape_str(c.input));
    dl::Generator gen(0);
    dl::ModelSpec m = one_node(c.spec);
    const std::vector<dl::ModelInput> inputs = {{"input", c.input, c.dtype}};
    std::vector<dl::NodeSummary> inferred = dl::infer_model_shapes_of_inputs(m, inputs);
    dl::GraphModel model(m, gen, inputs);  // throws when a module disagrees with its rule
    REQUIRE(model.summary().size() == 1);
    CHECK(model.summary()[0].output_shape == inferred[0].output_shape);
    CHECK(model.summary()[0].num_params == model.num_parameters());
    covered.push_back(c.spec.type);
  }
  for (const std::string& type : dl::layer_type_names()) {
    INFO(type << " has no case here: add one");
    CHECK(std::find(covered.begin(), covered.end(), type) != covered.end());
  }
}

TEST_CASE("graph: shape inference allocates nothing, whatever the model's size", "[graph]") {
  dl::ModelSpec m;
  m.nodes.push_back(layer("f", "flatten", {"input"}));
  m.nodes.push_back(layer("fc", "linear", {"f"}, {{"out_features", int64_t{2000000000}}}));
  dl::Allocator& cpu = dl::allocator_for(dl::DeviceType::CPU);
  const size_t before = cpu.stats().in_use;
  cpu.reset_peak();
  std::vector<dl::NodeSummary> nodes = dl::infer_model_shapes(m, {1, 28, 28});
  CHECK(cpu.stats().peak == before);
  REQUIRE(nodes.size() == 2);
  CHECK(nodes[1].output_shape == dl::Shape{2000000000});
  CHECK(nodes[1].num_params == int64_t{2000000000} * 784 + 2000000000);
  CHECK(nodes[1].params == dl::NamedShapes{{"weight", {2000000000, 784}}, {"bias", {2000000000}}});
}

TEST_CASE("graph: sizes that overflow int64 are reported, not wrapped", "[graph]") {
  CHECK(dl::checked_numel({3, 4}) == 12);
  CHECK_THROWS_AS(dl::checked_numel({int64_t{1} << 32, int64_t{1} << 32}), dl::ShapeOverflowError);
  CHECK_THROWS_AS(dl::checked_mul(INT64_MAX, 2), dl::ShapeOverflowError);
  CHECK_THROWS_AS(dl::checked_add(INT64_MAX, 1), dl::ShapeOverflowError);
  CHECK_THROWS_AS(dl::empty({int64_t{1} << 62, 4}), dl::ShapeOverflowError);
  CHECK_THROWS_AS(dl::conv_out_size(28, 3, INT64_MAX / 2, 1, 1), dl::ShapeOverflowError);

  // 2^62 x 4 weights: the element count overflows.
  dl::ModelSpec wide = one_node(layer("fc", "linear", {"input"}, {{"out_features", int64_t{1} << 62}}));
  CHECK_THROWS_WITH(dl::infer_model_shapes(wide, {4}),
                    Catch::Contains("layer 'fc' (linear)") && Catch::Contains("overflows int64"));
  // Padding so large that the padded input size overflows.
  dl::ModelSpec pad = one_node(layer("c", "conv2d", {"input"},
                                     {{"out_channels", int64_t{2}}, {"kernel_size", int64_t{3}},
                                      {"padding", int64_t{1} << 62}}));
  CHECK_THROWS_WITH(dl::infer_model_shapes(pad, {1, 8, 8}),
                    Catch::Contains("layer 'c' (conv2d)") && Catch::Contains("the padded input size overflows int64"));
  // Two layers of 2^62 parameters each: the model's total overflows.
  dl::ModelSpec twice;
  twice.nodes.push_back(layer("a", "linear", {"input"}, {{"out_features", int64_t{1} << 60}, {"bias", false}}));
  twice.nodes.push_back(layer("b", "linear", {"input"}, {{"out_features", int64_t{1} << 60}, {"bias", false}}));
  twice.output = "b";
  CHECK_THROWS_WITH(dl::infer_model_shapes(twice, {4}),
                    Catch::Contains("layer 'b' (linear)") && Catch::Contains("parameter count overflows int64"));
}

TEST_CASE("graph: a failed allocation names the tensor and the layer", "[graph]") {
  // 2^40 x 2^20 float32 (4 EiB) is beyond any address space: the allocation fails at once.
  try {
    dl::empty({int64_t{1} << 40, int64_t{1} << 20});
    FAIL("expected OutOfMemoryError");
  } catch (const dl::OutOfMemoryError& e) {
    CHECK_THAT(e.what(), Catch::Contains("tensor [1099511627776, 1048576] float32 (4.0 EiB)") &&
                             Catch::Contains("cannot allocate 4.0 EiB on cpu"));
  }
  dl::ModelSpec m = one_node(layer("fc", "linear", {"input"}, {{"out_features", int64_t{1} << 40}}));
  dl::Generator gen(0);
  CHECK_THROWS_WITH(dl::GraphModel(m, {int64_t{1} << 20}, gen),
                    Catch::Contains("layer 'fc' (linear): tensor [1099511627776, 1048576] float32"));
}

TEST_CASE("graph: the training memory estimate bounds the real peak within a small factor", "[graph][memory]") {
  // A small CNN with the layers that keep extra tensors for backward; batch 32, SGD momentum.
  dl::ModelSpec m;
  m.nodes.push_back(layer("conv1", "conv2d", {"input"}, {{"out_channels", int64_t{8}}, {"kernel_size", int64_t{3}},
                                                         {"padding", int64_t{1}}}));
  m.nodes.push_back(layer("bn1", "batch_norm2d", {"conv1"}));
  m.nodes.push_back(layer("r1", "relu", {"bn1"}));
  m.nodes.push_back(layer("p1", "max_pool2d", {"r1"}, {{"kernel_size", int64_t{2}}}));
  m.nodes.push_back(layer("f", "flatten", {"p1"}));
  m.nodes.push_back(layer("d", "dropout", {"f"}));
  m.nodes.push_back(layer("fc", "linear", {"d"}, {{"out_features", int64_t{10}}}));
  const dl::Shape sample{1, 28, 28};
  const int64_t batch = 32;
  dl::MemoryEstimateOptions o;
  o.batch_size = batch;
  o.eval_batch_size = batch;
  o.optimizer_slots = 1;
  dl::MemoryEstimate e = dl::estimate_training_memory(dl::infer_model_shapes(m, sample), sample, o);

  dl::Allocator& cpu = dl::allocator_for(dl::DeviceType::CPU);
  const size_t base = cpu.stats().in_use;
  cpu.reset_peak();
  {
    dl::Generator gen(1);
    dl::GraphModel model(m, sample, gen);
    dl::optim::SGDOptions so;
    so.lr = 0.01;
    so.momentum = 0.9;
    dl::optim::SGD opt(model.named_parameters(), so);
    dl::Tensor x = dl::randn({batch, 1, 28, 28}, gen);
    dl::Tensor y = dl::zeros({batch}, dl::DType::I64);
    for (int step = 0; step < 2; ++step) {
      opt.zero_grad();
      dl::cross_entropy(model.forward(x), y).backward();
      opt.step();
    }
  }
  const double peak = static_cast<double>(cpu.stats().peak - base);
  INFO("estimate " << e.total() << " bytes (" << dl::describe_parts(e) << "), measured peak " << peak);
  CHECK(e.num_params == 8 * 9 + 8 + 16 + 8 * 14 * 14 * 10 + 10);
  CHECK(e.total() >= peak);
  CHECK(e.total() <= 4 * peak);
  REQUIRE(!e.layers.empty());
  CHECK(e.layers.front().node == "bn1");  // its output and normalised copy dominate at batch 32
}

TEST_CASE("graph: forward_nodes returns named intermediate values from one pass", "[graph]") {
  dl::ModelSpec m;
  m.sequential = false;
  m.nodes = {layer("flat", "flatten", {"input"}), layer("emb", "linear", {"flat"}, {{"out_features", int64_t{4}}}),
             layer("act", "relu", {"emb"}), layer("head", "linear", {"act"}, {{"out_features", int64_t{3}}})};
  m.output = "head";
  dl::Generator gen(2);
  dl::GraphModel model(m, {1, 2, 2}, gen);
  dl::Tensor x = dl::randn({5, 1, 2, 2}, gen);
  std::vector<dl::Tensor> v = model.forward_nodes(x, {"emb", "", "act"});
  REQUIRE(v.size() == 3);
  CHECK(v[0].shape() == dl::Shape{5, 4});
  CHECK(v[1].to_vector<float>() == model.forward(x).to_vector<float>());
  CHECK(v[2].to_vector<float>() == dl::relu(v[0]).to_vector<float>());
  CHECK_THROWS_WITH(model.forward_nodes(x, {"nope"}), Catch::Contains("no node 'nope'"));
}

namespace {

// A tuple-valued test layer: {x, -x, sum of x over its last dim}.
class SplitSigns final : public dl::nn::Module {
 public:
  dl::Tensor forward(const dl::Tensor& x) override { return x; }
  dl::TensorList forward_tuple(const dl::TensorList& xs) override {
    return {xs[0], dl::neg(xs[0]), dl::sum(xs[0], std::vector<int64_t>{-1})};
  }
  std::string type_name() const override { return "SplitSigns"; }
};

// Registers "test_split_signs" for one test case.
struct SplitSignsLayer {
  SplitSignsLayer() {
    dl::LayerSchema s;
    s.type = "test_split_signs";
    s.doc = "test: {x, -x, x.sum(-1)}";
    s.shapes = [](const dl::LayerSpec&, const std::vector<dl::Shape>& in) {
      dl::LayerShapes r{in[0], {}, {}};
      r.extra_outputs = {in[0], dl::Shape(in[0].begin(), in[0].end() - 1)};
      return r;
    };
    s.build = [](const dl::LayerSpec&, const std::vector<dl::Shape>&, dl::Generator&) {
      return std::make_shared<SplitSigns>();
    };
    dl::register_layer_schema(s);
  }
  ~SplitSignsLayer() { dl::unregister_layer_schema("test_split_signs"); }
};

}  // namespace

TEST_CASE("graph: tuple-valued nodes, node.k reads element k, forward and backward", "[graph]") {
  SplitSignsLayer registered;
  dl::ModelSpec m;
  m.sequential = false;
  m.nodes = {layer("fc", "linear", {"input"}, {{"out_features", int64_t{3}}}), layer("split", "test_split_signs", {"fc"}),
             layer("neg", "relu", {"split.1"}), layer("both", "add", {"split", "neg"})};
  m.output = "both";
  dl::Generator gen(3);
  dl::GraphModel model(m, {4}, gen);
  REQUIRE(model.summary()[1].extra_outputs.size() == 2);
  CHECK(model.summary()[1].extra_outputs[1] == dl::Shape{});
  dl::Tensor x = dl::randn({5, 4}, gen);
  std::vector<dl::Tensor> v = model.forward_nodes(x, {"fc", "split.1", "split.2", ""});
  CHECK(v[1].to_vector<float>() == dl::neg(v[0]).to_vector<float>());
  CHECK(v[2].shape() == dl::Shape{5});
  // both = fc + relu(-fc) = relu(fc): fc where fc > 0, else fc + (-fc) = 0.
  CHECK(v[3].to_vector<float>() == dl::relu(v[0]).to_vector<float>());
  // Gradients flow through both elements: d/dfc (fc + relu(-fc)) = 1 - [fc < 0].
  model.forward(x).sum().backward();
  const auto params = model.named_parameters();  // find_tensor points into this list
  const dl::Tensor* bias = dl::nn::find_tensor(params, "fc.bias");
  REQUIRE(bias);
  std::vector<float> g = bias->grad().to_vector<float>(), fc = v[0].to_vector<float>();
  for (int j = 0; j < 3; ++j) {
    float expect = 0;
    for (int n = 0; n < 5; ++n) expect += fc[n * 3 + j] > 0 ? 1.f : 0.f;
    CHECK(g[j] == expect);
  }
  // The model's output may be a tuple element too.
  m.output = "split.2";
  dl::GraphModel summed(m, {4}, gen);
  CHECK(summed.output_shape() == dl::Shape{});
  // An element the node does not have is a GraphError naming the range.
  m.nodes[2].inputs = {"split.3"};
  CHECK_THROWS_WITH(dl::GraphModel(m, {4}, gen), Catch::Contains("'split.3': node 'split' (test_split_signs) has 3 values (split.0 to split.2)"));
  m.nodes[2].inputs = {"fc.1"};
  CHECK_THROWS_WITH(dl::GraphModel(m, {4}, gen), Catch::Contains("node 'fc' (linear) has one value (fc)"));
}

TEST_CASE("graph: dotted node names nest modules as PyTorch submodules", "[graph]") {
  dl::ModelSpec m;
  m.sequential = false;
  m.nodes = {layer("flat", "flatten", {"input"}), layer("layer1.0.fc", "linear", {"flat"}, {{"out_features", int64_t{3}}}),
             layer("layer1.1.fc", "linear", {"layer1.0.fc"}, {{"out_features", int64_t{2}}})};
  dl::Generator gen(1);
  dl::GraphModel model(m, {2, 2}, gen);
  std::vector<std::string> keys;
  for (const auto& [k, t] : model.state_dict()) keys.push_back(k);
  CHECK(keys == std::vector<std::string>{"layer1.0.fc.weight", "layer1.0.fc.bias", "layer1.1.fc.weight", "layer1.1.fc.bias"});
  REQUIRE(model.named_children().size() == 2);  // flat, layer1
  CHECK(model.child("layer1")->child("1")->child("fc")->type_name() == "Linear");
  // A layer cannot also hold nodes.
  m.nodes.push_back(layer("flat.x", "relu", {"layer1.1.fc"}));
  CHECK_THROWS_WITH(dl::GraphModel(m, {2, 2}, gen), Catch::Contains("'flat' is a layer"));
}

TEST_CASE("graph: model inputs by name, the ones no node reads are dropped", "[graph]") {
  dl::ModelSpec m;
  m.sequential = false;
  m.nodes = {layer("fc", "linear", {"input"}, {{"out_features", int64_t{2}}})};
  dl::Generator gen(1);
  std::vector<dl::ModelInput> inputs = {{"input", {3}, dl::DType::F32}, {"input_lengths", {}, dl::DType::I64}};
  dl::GraphModel model(m, gen, inputs);
  REQUIRE(model.model_inputs().size() == 1);
  CHECK_THROWS_WITH(model.forward(dl::TensorList{dl::zeros({2, 3}), dl::ones({2}, dl::DType::I64)}),
                    Catch::Contains("takes 1 input(s) (input), got 2"));
  m.nodes[0].inputs = {"lengths"};
  CHECK_THROWS_WITH(dl::GraphModel(m, gen, inputs),
                    Catch::Contains("input 'lengths' is not an earlier node nor a model input (input, input_lengths)"));
}

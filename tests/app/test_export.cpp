// dltool export (ONNX): the exported files run in ONNX Runtime with dltool's numbers, pass
// Debian's python3-onnx checker, and fail clearly where a layer has no mapping.
#include <catch2/catch.hpp>

#include <onnx/onnx_pb.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "configs/config.h"
#include "engine/graph/layer_schema.h"
#include "engine/graph/model.h"
#include "engine/ops.h"
#include "exporters/checkpoint.h"
#include "exporters/onnx_export.h"
#include "tests/support/fixtures.h"
#include "tests/support/onnxruntime.h"
#include "tests/support/process.h"
#include "tests/support/tempdir.h"

namespace {

using dl::Config;
using dl::GraphModel;
using dl::Shape;
using dl::Tensor;
using dl::test::TempDir;
namespace ox = dl::onnx_export;


Config config_of(const std::string& yaml) { return dl::load_config_string(yaml, "export_test.yaml"); }

// A model with its weights, in eval mode, on the given model inputs ("input" first). BatchNorm
// running statistics get random values (fresh ones are 0 and 1, which would hide a mean/var mix-up).
std::shared_ptr<GraphModel> build_on(const Config& cfg, const std::vector<dl::ModelInput>& inputs, uint64_t seed = 7) {
  dl::Generator gen(seed);
  auto m = std::make_shared<GraphModel>(cfg.model, gen, inputs);
  for (auto& [name, t] : m->named_buffers()) {
    if (t.dtype() != dl::DType::F32) continue;
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) {
      const double u = dl::rand({}, gen).item();
      p[i] = name.find("running_var") != std::string::npos ? static_cast<float>(0.5 + u) : static_cast<float>(u - 0.5);
    }
  }
  m->eval();
  return m;
}

// The same on the one input `input` of per-sample shape `sample`.
std::shared_ptr<GraphModel> build(const Config& cfg, const Shape& sample, uint64_t seed = 7,
                                  dl::DType input_dtype = dl::DType::F32) {
  return build_on(cfg, {{"input", sample, input_dtype}}, seed);
}

Tensor batch_of(const Shape& sample, int64_t n, uint64_t seed) {
  dl::Generator gen(seed);
  Shape s{n};
  s.insert(s.end(), sample.begin(), sample.end());
  return dl::randn(s, gen);
}

Tensor forward(GraphModel& m, const Tensor& x) {
  dl::NoGradGuard no_grad;
  return m.forward(x).contiguous();
}

Tensor forward(GraphModel& m, const dl::TensorList& inputs) {
  dl::NoGradGuard no_grad;
  return m.forward(inputs).contiguous();
}

// |a - b| <= atol + rtol |b| everywhere (the issue's tolerance: rtol 1e-4, atol 1e-5), on finite
// values (allclose lets NaN match NaN; an export must not produce one).
void check_close(const Tensor& got, const Tensor& want, const std::string& what) {
  INFO(what);
  std::string report;
  const bool close = dl::test::allclose(got, want, 1e-4, 1e-5, &report);
  INFO(report);
  CHECK(close);
  for (float v : want.to_vector<float>()) REQUIRE(std::isfinite(v));
}

onnx::ModelProto parse(const std::string& bytes) {
  onnx::ModelProto m;
  REQUIRE(m.ParseFromString(bytes));
  return m;
}

// Exports `cfg`'s model, checks it with python3-onnx, runs it in ONNX Runtime at batch sizes
// 1 and 7 and compares with dltool.
void check_model_in_ort(const std::string& label, const Config& cfg, const Shape& sample, int64_t opset = 17) {
  INFO(label << " at opset " << opset);
  auto model = build(cfg, sample);
  ox::Options o;
  o.opset = opset;
  const std::string bytes = ox::export_onnx(cfg.model, *model, o);
  TempDir d;
  const std::string path = d.file(label + ".onnx", bytes);
  CHECK(dl::test::python_onnx_check(path) == "");
  for (int64_t n : {1, 7}) {
    Tensor x = batch_of(sample, n, 100 + n);
    check_close(dl::test::ort_run(path, x), forward(*model, x), label + " batch " + std::to_string(n));
  }
}

// Saves `model`'s weights with `cfg`'s YAML as a checkpoint (what `dltool train` writes).
std::string save(const TempDir& d, const std::string& name, const GraphModel& model, const std::string& yaml) {
  dl::Checkpoint c;
  c.config_yaml = yaml;
  c.model = model.state_dict();
  const std::string p = d.file(name);
  dl::save_checkpoint(p, c);
  return p;
}

dl::test::ProcessResult dltool(std::vector<std::string> args) {
  args.insert(args.begin(), DLTOOL_BINARY);
  return dl::test::run_process(args);
}

// `dltool export CKPT -o OUT --input-shape 1,28,28 FLAGS...` (the shape given: no data needed).
dl::test::ProcessResult export_cli(const std::string& ckpt, const std::string& out,
                                   const std::vector<std::string>& flags = {}) {
  std::vector<std::string> args = {"export", ckpt, "-o", out, "--input-shape", "1,28,28"};
  args.insert(args.end(), flags.begin(), flags.end());
  return dltool(args);
}

// `cfg`'s model (weights from build()) and its checkpoint `name` in `d`.
struct Saved {
  std::shared_ptr<GraphModel> model;
  std::string ckpt;
};
Saved checkpoint_of(const TempDir& d, const Config& cfg, const std::string& name = "last.h5") {
  Saved s{build(cfg, {1, 28, 28}), ""};
  s.ckpt = save(d, name, *s.model, cfg.resolved_yaml);
  return s;
}

// A residual block, a concatenation and global pooling (the `nodes:` form).
const char* kResidualYaml = R"(
model:
  nodes:
    - {name: stem, type: conv2d, out_channels: 8, kernel_size: 3, padding: 1, bias: false}
    - {name: stem_bn, type: batch_norm2d}
    - {name: stem_act, type: relu}
    - {name: c1, type: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
    - {name: c1_act, type: relu}
    - {name: c2, type: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
    - {name: res, type: add, inputs: [c2, stem_act]}
    - {name: side, type: conv2d, out_channels: 4, kernel_size: 1, inputs: [stem_act]}
    - {name: sum3, type: add, inputs: [res, stem_act, c2]}
    - {name: cat, type: concat, inputs: [sum3, side]}
    - {name: pool, type: adaptive_avg_pool2d, output_size: 1}
    - {name: flat, type: flatten}
    - {name: fc, type: linear, out_features: 10}
    - {name: out, type: log_softmax}
data: {dataset: fashion_mnist}
)";

// Every activation, including the ones ONNX (opset < 20) has no single operator for.
const char* kActivationsYaml = R"(
model:
  layers:
    - flatten
    - {type: linear, out_features: 32}
    - {type: leaky_relu, negative_slope: 0.2}
    - {type: linear, out_features: 32, bias: false}
    - {type: elu, alpha: 0.7}
    - gelu
    - {type: gelu, approximate: tanh}
    - {type: linear, out_features: 24}
    - {type: softplus, beta: 2.0, threshold: 1.0}
    - softplus
    - sigmoid
    - {type: linear, out_features: 16}
    - tanh
    - {type: dropout, p: 0.3}
    - identity
    - {type: linear, out_features: 5}
    - {type: softmax, dim: -1}
data: {dataset: fashion_mnist}
)";

// Norm and pooling variants: groups/stride/dilation, affine off, batch statistics, ceil_mode,
// count_include_pad, divisible adaptive pooling, partial flatten, BatchNorm1d over [C, L] and
// [C], and a Linear over the last dim of a 3-d input (MatMul).
const char* kVariantsYaml = R"(
model:
  layers:
    - {type: conv2d, out_channels: 6, kernel_size: 3, stride: [2, 1], padding: 2, dilation: 2, groups: 3}
    - {type: batch_norm2d, affine: false}
    - {type: max_pool2d, kernel_size: 3, stride: 2, padding: 1, ceil_mode: true}
    - {type: batch_norm2d, track_running_stats: false, eps: 0.001}
    - {type: avg_pool2d, kernel_size: 2, stride: 1, padding: 1, count_include_pad: false, ceil_mode: true}
    - {type: avg_pool2d, kernel_size: [2, 1], stride: 1, padding: [1, 0]}
    - {type: adaptive_avg_pool2d, output_size: [3, 4]}
    - {type: flatten, start_dim: 2}
    - batch_norm1d
    - {type: linear, out_features: 4}
    - {type: batch_norm1d, track_running_stats: false, affine: false}
    - flatten
    - {type: batch_norm1d, momentum: 0.3}
    - {type: linear, out_features: 3, bias: false}
data: {dataset: fashion_mnist}
)";

const Shape kVariantsSample = {3, 13, 12};

}  // namespace

TEST_CASE("export: every layer type the configs know has an ONNX mapping", "[export]") {
  for (const std::string& type : dl::layer_type_names()) {
    INFO(type);
    CHECK(ox::has_mapping(type));
  }
  CHECK_FALSE(ox::has_mapping("no_such_layer"));
}

namespace {

// Every exportable layer type alone on its registered example (layer_schema.h: every input
// reads the model input), with build()'s weights.
struct LayerExampleModel {
  std::string type;
  Config cfg;
  Shape sample;
  dl::DType dtype;  // the example's input dtype (embedding: int64 indices)
};
std::vector<LayerExampleModel> layer_example_models() {
  std::vector<LayerExampleModel> r;
  for (const dl::LayerSchema& s : dl::layer_schemas()) {
    if (!s.onnx) continue;  // tests/engine/test_layer_registry.cpp lists the unexportable ones
    dl::LayerSpec spec{s.type, s.type, std::vector<std::string>(s.example.inputs.size(), "input"), s.example.attrs, {}};
    INFO(s.type);
    REQUIRE(dl::resolve_layer_attrs(spec).empty());
    Config cfg;
    cfg.model.nodes.push_back(spec);
    r.push_back({s.type, cfg, s.example.inputs.at(0), s.example.input_dtype});
  }
  return r;
}

}  // namespace

TEST_CASE("export: every registered layer type's example passes the checker and shape inference at every opset",
          "[export][registry]") {
  for (const auto& m : layer_example_models()) {
    auto model = build(m.cfg, m.sample, 7, m.dtype);
    for (int64_t opset = ox::kMinOpset; opset <= ox::kMaxOpset; ++opset) {
      INFO(m.type << " at opset " << opset);
      ox::Options o;
      o.opset = opset;
      std::string bytes;
      try {
        bytes = ox::export_onnx(m.cfg.model, *model, o);  // self-checked
      } catch (const ox::ExportError& e) {
        // A layer whose ONNX operator came in a later opset refuses the earlier ones, saying so
        // (grid_sample: GridSample, opset 16); the default opset exports every type.
        CHECK(opset < ox::kDefaultOpset);
        CHECK_THAT(e.what(), Catch::Contains("needs ONNX opset"));
        continue;
      }
      CHECK(parse(bytes).graph().node_size() >= 1);
    }
  }
}

TEST_CASE("export: every registered layer type's example matches ONNX Runtime", "[export][onnxruntime][registry]") {
  DLTOOL_REQUIRE_ORT();
  for (const auto& m : layer_example_models()) {
    auto model = build(m.cfg, m.sample, 7, m.dtype);
    TempDir d;
    const std::string path = d.file(m.type + ".onnx", ox::export_onnx(m.cfg.model, *model, {}));
    // Indices: 0..2 (every example table has at least 3 rows).
    Tensor x = batch_of(m.sample, 3, 5);
    if (!is_floating(m.dtype)) {
      std::vector<int64_t> idx(static_cast<size_t>(x.numel()));
      for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>((i * 7) % 3);
      x = dl::from_vector(idx, x.shape());
    }
    check_close(dl::test::ort_run(path, x), forward(*model, x), m.type);
  }
}

TEST_CASE("export: the graph's shapes are what ONNX shape inference derives", "[export]") {
  // export_onnx runs the checker and strict shape inference and compares every node's shape;
  // a disagreement would throw std::logic_error here.
  auto cfg = config_of(kVariantsYaml);
  auto model = build(cfg, kVariantsSample);
  REQUIRE_NOTHROW(ox::export_onnx(cfg.model, *model, {}));
  auto m = parse(ox::export_onnx(cfg.model, *model, {}));
  CHECK(m.ir_version() == 8);
  CHECK(m.producer_name() == "dltool");
  REQUIRE(m.opset_import_size() == 1);
  CHECK(m.opset_import(0).version() == 17);
  // Initializers are the state_dict tensors under their keys (num_batches_tracked excepted).
  std::set<std::string> inits;
  for (const auto& t : m.graph().initializer()) inits.insert(t.name());
  for (const auto& [key, t] : model->state_dict())
    if (key.find("num_batches_tracked") == std::string::npos) CHECK(inits.count(key) == 1);
}

TEST_CASE("export: recipe models run in ONNX Runtime with dltool's numbers", "[export][onnxruntime]") {
  DLTOOL_REQUIRE_ORT();
  for (const char* recipe : {"mlp", "lenet", "cnn_bn"}) {
    INFO(recipe);
    const std::string cfg_path = dl::test::source_path(std::string("recipes/fashion_mnist/") + recipe + ".yaml");
    Config cfg = dl::load_config(cfg_path);
    TempDir d;
    auto [model, ckpt] = checkpoint_of(d, cfg);
    const std::string out = d.file(std::string(recipe) + ".onnx");
    auto r = export_cli(ckpt, out);
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("[batch, 1, 28, 28]") != std::string::npos);
    CHECK(dl::test::python_onnx_check(out) == "");
    for (int64_t n : {1, 7}) {
      Tensor x = batch_of({1, 28, 28}, n, 11 + n);
      check_close(dl::test::ort_run(out, x), forward(*model, x), std::string(recipe) + " batch " + std::to_string(n));
    }
  }
}

TEST_CASE("export: PyTorch weights written with h5py export with --config", "[export][onnxruntime]") {
  DLTOOL_REQUIRE_ORT();
  // A weights-only file (a torch state_dict dumped by tests/fixtures/gen_parity.py): no /config.
  const std::string weights = dl::test::source_path("tests/fixtures/parity_lenet_final.h5");
  const std::string recipe = dl::test::source_path("recipes/fashion_mnist/lenet.yaml");
  TempDir d;
  const std::string out = d.file("torch_lenet.onnx");
  auto without = export_cli(weights, out);
  CHECK(without.exit_code == 1);
  CHECK(without.err.find("pass --config RECIPE") != std::string::npos);
  auto r = export_cli(weights, out, {"--config", recipe});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  Config cfg = dl::load_config(recipe);
  auto model = build(cfg, {1, 28, 28});
  model->load_state_dict(dl::load_checkpoint(weights, /*weights_only=*/true).model);
  Tensor x = batch_of({1, 28, 28}, 7, 9);
  check_close(dl::test::ort_run(out, x), forward(*model, x), "torch lenet weights");
}

TEST_CASE("export: residual adds, concatenation and every layer variant match ONNX Runtime", "[export][onnxruntime]") {
  DLTOOL_REQUIRE_ORT();
  check_model_in_ort("residual", config_of(kResidualYaml), {1, 28, 28});
  check_model_in_ort("activations", config_of(kActivationsYaml), {2, 5, 6});
  check_model_in_ort("variants", config_of(kVariantsYaml), kVariantsSample);
}

TEST_CASE("export: layer_norm (1 to 3 trailing dims, affine off, every opset) and dropout2d run in ONNX Runtime",
          "[export][onnxruntime]") {
  DLTOOL_REQUIRE_ORT();
  const Config cfg = config_of(R"(
model:
  layers:
    - layer_norm
    - {type: dropout2d, p: 0.3}
    - {type: layer_norm, normalized_shape: [5, 6], elementwise_affine: false, eps: 0.001}
    - {type: layer_norm, normalized_shape: [2, 5, 6]}
    - flatten
    - {type: linear, out_features: 4}
    - {type: layer_norm, eps: 0.1}
data: {dataset: fashion_mnist}
)");
  const Shape sample = {2, 5, 6};
  auto model = build(cfg, sample);
  {  // LayerNorm starts at weight 1, bias 0: random values catch a weight/bias mix-up
    dl::NoGradGuard no_grad;
    dl::Generator gen(3);
    for (auto& [name, p] : model->named_parameters()) p.copy_(dl::randn(p.shape(), gen));
  }
  for (int64_t opset = ox::kMinOpset; opset <= ox::kMaxOpset; ++opset) {
    INFO("opset " << opset);
    ox::Options o;
    o.opset = opset;
    const std::string bytes = ox::export_onnx(cfg.model, *model, o);
    const onnx::ModelProto proto = parse(bytes);
    std::multiset<std::string> ops;
    for (const auto& n : proto.graph().node()) ops.insert(n.op_type());
    CHECK(ops.count("LayerNormalization") == (opset >= 17 ? 4u : 0u));  // written out below 17
    TempDir d;
    const std::string path = d.file("layer_norm.onnx", bytes);
    CHECK(dl::test::python_onnx_check(path) == "");
    for (int64_t n : {1, 7}) {
      Tensor x = batch_of(sample, n, 100 + n);
      check_close(dl::test::ort_run(path, x), forward(*model, x), "layer_norm batch " + std::to_string(n));
    }
  }
}

TEST_CASE("export: every supported opset passes the checker and runs", "[export][onnxruntime]") {
  DLTOOL_REQUIRE_ORT();
  for (int64_t opset = ox::kMinOpset; opset <= ox::kMaxOpset; ++opset) {
    check_model_in_ort("activations", config_of(kActivationsYaml), {2, 5, 6}, opset);
    check_model_in_ort("variants", config_of(kVariantsYaml), kVariantsSample, opset);
    auto cfg = config_of(kActivationsYaml);
    ox::Options o;
    o.opset = opset;
    CHECK(parse(ox::export_onnx(cfg.model, *build(cfg, {2, 5, 6}), o)).ir_version() == (opset <= 14 ? 7 : 8));
  }
  auto cfg = config_of(kActivationsYaml);
  ox::Options o;
  o.opset = 12;
  CHECK_THROWS_AS(ox::export_onnx(cfg.model, *build(cfg, {2, 5, 6}), o), ox::ExportError);
  o.opset = 18;
  CHECK_THROWS_WITH(ox::export_onnx(cfg.model, *build(cfg, {2, 5, 6}), o),
                    Catch::Contains("opset 18 is not supported") && Catch::Contains("13 to 17"));
}

TEST_CASE("export: --static-batch fixes the batch dimension", "[export][onnxruntime]") {
  DLTOOL_REQUIRE_ORT();
  Config cfg = dl::load_config(dl::test::source_path("recipes/fashion_mnist/lenet.yaml"));
  TempDir d;
  auto [model, ckpt] = checkpoint_of(d, cfg);
  const std::string out = d.file("static.onnx");
  auto r = export_cli(ckpt, out, {"--static-batch", "--batch-size", "3"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  auto m = parse(dl::test::read_file(out));
  const auto& in = m.graph().input(0).type().tensor_type().shape();
  REQUIRE(in.dim_size() == 4);
  CHECK(in.dim(0).dim_value() == 3);
  CHECK(m.graph().output(0).type().tensor_type().shape().dim(0).dim_value() == 3);
  Tensor x = batch_of({1, 28, 28}, 3, 5);
  check_close(dl::test::ort_run(out, x), forward(*model, x), "static batch 3");
  // The dynamic default names the axis.
  const std::string dyn = d.file("dynamic.onnx");
  REQUIRE(export_cli(ckpt, dyn).exit_code == 0);
  CHECK(parse(dl::test::read_file(dyn)).graph().input(0).type().tensor_type().shape().dim(0).dim_param() == "batch");
}

TEST_CASE("export: input/output names, producer and the training config in the metadata", "[export][onnxruntime]") {
  DLTOOL_REQUIRE_ORT();
  Config cfg = dl::load_config(dl::test::source_path("recipes/fashion_mnist/mlp.yaml"));
  TempDir d;
  auto [model, ckpt] = checkpoint_of(d, cfg);
  const std::string out = d.file("named.onnx");
  auto r = export_cli(ckpt, out, {"--input-names", "images", "--output-names", "logits"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  dl::test::OrtRunInfo info;
  Tensor x = batch_of({1, 28, 28}, 2, 3);
  check_close(dl::test::ort_run(out, x, &info), forward(*model, x), "named");
  CHECK(info.input_name == "images");
  CHECK(info.output_name == "logits");
  auto m = parse(dl::test::read_file(out));
  CHECK(m.producer_name() == "dltool");
  CHECK(m.producer_version() == DLTOOL_VERSION);
  CHECK(m.graph().name() == "mlp");
  std::string config;
  for (const auto& p : m.metadata_props())
    if (p.key() == "dltool.config") config = p.value();
  // The config reads back as the same model; where it ran (device, threads) is left out.
  REQUIRE_FALSE(config.empty());
  CHECK(dl::load_config_string(config, "metadata.yaml").model == cfg.model);
  CHECK(config.find("device:") == std::string::npos);
  CHECK(config.find("threads:") == std::string::npos);

  SECTION("a name that clashes with a node is refused before anything is written") {
    const std::string clash = d.file("clash.onnx");
    auto c = export_cli(ckpt, clash, {"--output-names", "1"});
    CHECK(c.exit_code == 2);
    CHECK(c.err.find("'1' is used twice") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(clash));
    auto two = export_cli(ckpt, clash, {"--input-names", "a,b"});
    CHECK(two.exit_code == 2);
    CHECK(two.err.find("exactly one name") != std::string::npos);
  }
}

TEST_CASE("export: a layer without an ONNX mapping names the node, type and opset, and nothing is written",
          "[export]") {
  TempDir d;
  SECTION("adaptive pooling to a size that does not divide the input") {
    Config cfg = config_of(
        "model:\n  layers:\n    - {type: conv2d, out_channels: 2, kernel_size: 3}\n"
        "    - {type: adaptive_avg_pool2d, output_size: 3, name: squeeze}\n    - flatten\n"
        "    - {type: linear, out_features: 10}\ndata: {dataset: fashion_mnist}\n");
    auto model = build(cfg, {1, 28, 28});
    CHECK_THROWS_WITH(ox::export_onnx(cfg.model, *model, {}),
                      Catch::Contains("node 'squeeze'") && Catch::Contains("type adaptive_avg_pool2d") &&
                          Catch::Contains("opset 17") && Catch::Contains("must divide the input size (26, 26)"));
    // Through the CLI: exit 2, and an existing file at the output path is left as it was.
    const std::string ckpt = save(d, "last.h5", *model, cfg.resolved_yaml);
    const std::string out = d.file("model.onnx", "previous contents");
    auto r = export_cli(ckpt, out, {"--opset", "15"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("node 'squeeze' (type adaptive_avg_pool2d) at ONNX opset 15") != std::string::npos);
    CHECK(dl::test::read_file(out) == "previous contents");
    CHECK_FALSE(std::filesystem::exists(out + ".tmp"));
  }
  SECTION("average pooling whose ceil_mode window PyTorch divides by less than its padding") {
    Config cfg = config_of(
        "model:\n  layers:\n    - {type: avg_pool2d, kernel_size: 3, stride: 2, padding: 1, ceil_mode: true, name: p}\n"
        "data: {dataset: fashion_mnist}\n");
    auto model = build(cfg, {1, 6, 6});
    CHECK_THROWS_WITH(ox::export_onnx(cfg.model, *model, {}),
                      Catch::Contains("node 'p'") && Catch::Contains("count_include_pad: false"));
  }
  SECTION("a flatten that merges the batch dimension") {
    Config cfg = config_of("model:\n  layers:\n    - {type: flatten, start_dim: 0, name: f}\n"
                           "data: {dataset: fashion_mnist}\n");
    auto model = build(cfg, {1, 4, 4});
    CHECK_THROWS_WITH(ox::export_onnx(cfg.model, *model, {}), Catch::Contains("node 'f'") && Catch::Contains("batch"));
  }
  SECTION("a layer type registered without a mapping") {
    dl::LayerSchema s{"test_unmapped", "a layer type only this test knows", {}};
    dl::register_layer_schema(s);
    dl::ModelSpec spec;
    spec.nodes.push_back({"x", "test_unmapped", {"input"}, {}, {}});
    dl::Generator gen(0);
    dl::ModelSpec ok;
    ok.nodes.push_back({"x", "relu", {"input"}, {}, {}});
    GraphModel model(ok, {1, 2, 2}, gen);
    CHECK_THROWS_WITH(ox::export_onnx(spec, model, {}),
                      Catch::Contains("node 'x' (type test_unmapped) at ONNX opset 17") &&
                          Catch::Contains("no ONNX mapping"));
    dl::unregister_layer_schema("test_unmapped");
  }
}

TEST_CASE("export: the same weights export to the same bytes, whichever device trained them", "[export]") {
  Config cfg = dl::load_config(dl::test::source_path("recipes/fashion_mnist/cnn_bn.yaml"));
  auto model = build(cfg, {1, 28, 28});
  TempDir d;
  const std::string cpu = save(d, "cpu.h5", *model, cfg.resolved_yaml);
  // The same weights from a CUDA run: its config says so (the tensors in the file carry no device).
  Config cuda_cfg = dl::load_config(dl::test::source_path("recipes/fashion_mnist/cnn_bn.yaml"),
                                    {"train.device=cuda:0", "train.threads=2"});
  REQUIRE(cuda_cfg.resolved_yaml != cfg.resolved_yaml);
  const std::string cuda = save(d, "cuda.h5", *model, cuda_cfg.resolved_yaml);
  auto a = export_cli(cpu, d.file("a.onnx"));
  auto b = export_cli(cuda, d.file("b.onnx"));
  auto c = export_cli(cpu, d.file("c.onnx"));
  INFO(a.err << b.err << c.err);
  REQUIRE(a.exit_code == 0);
  REQUIRE(b.exit_code == 0);
  REQUIRE(c.exit_code == 0);
  const std::string bytes = dl::test::read_file(d.file("a.onnx"));
  CHECK(bytes.size() > 3000000);
  CHECK(dl::test::read_file(d.file("b.onnx")) == bytes);
  CHECK(dl::test::read_file(d.file("c.onnx")) == bytes);
}

TEST_CASE("export --verify runs the file in OpenCV DNN and compares", "[export]") {
  Config cfg = dl::load_config(dl::test::source_path("recipes/fashion_mnist/cnn_bn.yaml"));
  TempDir d;
  auto [model, ckpt] = checkpoint_of(d, cfg);
  auto r = export_cli(ckpt, d.file("m.onnx"), {"--verify"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("verify: OpenCV DNN") != std::string::npos);
  CHECK(r.out.find(": ok") != std::string::npos);
  // Zero tolerance: OpenCV's convolution sums in another order than oneDNN's.
  auto strict = export_cli(ckpt, d.file("m.onnx"), {"--verify", "--rtol", "0", "--atol", "0"});
  INFO(strict.out << strict.err);
  CHECK(strict.exit_code == 1);
  CHECK(strict.out.find("FAILED") != std::string::npos);
}

TEST_CASE("export --verify says so where OpenCV DNN cannot run the model or needs batch 1", "[export]") {
  TempDir d;
  SECTION("an operator OpenCV 4.6 does not have (Where, from softplus)") {
    Config cfg = config_of("model:\n  layers: [flatten, {type: linear, out_features: 4}, softplus]\n"
                           "data: {dataset: fashion_mnist}\n");
    auto [model, ckpt] = checkpoint_of(d, cfg);
    auto r = export_cli(ckpt, d.file("m.onnx"), {"--verify"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("NOT verified") != std::string::npos);
    CHECK(r.err.find("Where") != std::string::npos);
    CHECK(r.out.find(": ok") == std::string::npos);
    CHECK(std::filesystem::exists(d.file("m.onnx")));  // the export itself succeeded
  }
  SECTION("batch statistics (OpenCV reduces over the batch per sample): compared at batch 1") {
    Config cfg = config_of(
        "model:\n  layers: [{type: conv2d, out_channels: 3, kernel_size: 3}, "
        "{type: batch_norm2d, track_running_stats: false, name: bn}, flatten, {type: linear, out_features: 4}]\n"
        "data: {dataset: fashion_mnist}\n");
    auto [model, ckpt] = checkpoint_of(d, cfg);
    auto r = export_cli(ckpt, d.file("m.onnx"), {"--verify"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("node 'bn/mean', a mean over the batch") != std::string::npos);
    CHECK(r.out.find("batch size 1): max abs diff") != std::string::npos);
  }
}

TEST_CASE("export: bad input gets a clear error", "[export]") {
  TempDir d;
  auto missing = dltool({"export", d.file("nope.h5"), "-o", d.file("m.onnx")});
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find("nope.h5") != std::string::npos);
  auto opset = dltool({"export", d.file("nope.h5"), "-o", d.file("m.onnx"), "--opset", "9"});
  CHECK(opset.exit_code == 2);
  auto no_out = dltool({"export", d.file("nope.h5")});
  CHECK(no_out.exit_code == 2);
  CHECK(no_out.err.find("--output") != std::string::npos);

  // An unwritable output: the error names the file and the reason, and nothing is left behind.
  Config cfg = dl::load_config(dl::test::source_path("recipes/fashion_mnist/mlp.yaml"));
  auto [model, ckpt] = checkpoint_of(d, cfg);
  const std::string bad = d.file("no_such_dir/m.onnx");
  auto nodir = export_cli(ckpt, bad);
  CHECK(nodir.exit_code == 1);
  CHECK(nodir.err.find("cannot write '" + bad + "'") != std::string::npos);
  CHECK(nodir.err.find("No such file or directory") != std::string::npos);
  std::filesystem::create_directory(d.file("a_dir"));
  auto isdir = export_cli(ckpt, d.file("a_dir"));
  CHECK(isdir.exit_code == 1);
  CHECK(isdir.err.find("Is a directory") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(d.file("a_dir") + ".tmp"));
  // A checkpoint whose weights do not fit the config's model: strict loading names the keys.
  auto other =
      export_cli(ckpt, d.file("m.onnx"), {"--config", dl::test::source_path("recipes/fashion_mnist/lenet.yaml")});
  CHECK(other.exit_code == 1);
  CHECK(other.err.find(ckpt + ": its weights do not fit the model of") != std::string::npos);
  CHECK(other.err.find("\"conv1.weight\"") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(d.file("m.onnx")));
}

TEST_CASE("export: conv_transpose2d and upsample (every mode) run in ONNX Runtime with dltool's numbers",
          "[export][onnxruntime]") {
  DLTOOL_REQUIRE_ORT();
  // A decoder: transposed convolutions with stride, padding, output_padding, groups, dilation
  // and no bias, on [4, 7, 7] -> [1, 28, 28].
  check_model_in_ort("conv_transpose2d", config_of(R"(
model:
  layers:
    - {type: conv_transpose2d, out_channels: 8, kernel_size: 3, stride: 2, padding: 1, output_padding: 1}
    - relu
    - {type: conv_transpose2d, out_channels: 4, kernel_size: [3, 2], stride: [1, 2], padding: [2, 0],
       output_padding: [0, 1], groups: 2, dilation: [2, 1], bias: false}
    - {type: conv_transpose2d, out_channels: 1, kernel_size: 4, stride: 2, padding: [3, 2]}
data: {dataset: fashion_mnist}
)"), {4, 7, 7});
  // Every mode, align_corners both ways, size and scale_factor, up and down, output size 1,
  // and the scale factors torch treats specially (out == in, out == 2 * in, inexact products).
  const std::vector<std::string> layers = {
      "{type: upsample, scale_factor: 2}",
      "{type: upsample, size: [9, 13], mode: nearest}",
      "{type: upsample, scale_factor: [0.7, 1.1], mode: nearest}",
      "{type: upsample, scale_factor: [2.1, 1.5], mode: bilinear}",
      "{type: upsample, size: [4, 3], mode: bilinear, align_corners: true}",
      "{type: upsample, size: [1, 12], mode: bilinear}",
      "{type: upsample, scale_factor: [1.1, 0.7], mode: bilinear, align_corners: false}",
      "{type: upsample, size: [11, 4], mode: bicubic}",
      "{type: upsample, scale_factor: [1.5, 0.5], mode: bicubic, align_corners: true}",
      "{type: upsample, scale_factor: [1.1, 0.9], mode: bicubic}",
      "{type: upsample, size: [1, 1], mode: bicubic}",
  };
  for (const std::string& layer : layers)
    check_model_in_ort("upsample", config_of("model:\n  layers:\n    - " + layer + "\ndata: {dataset: fashion_mnist}\n"),
                       {2, 5, 6});
  // upsample inside a graph, at every opset from 14 (13 is refused, see below)
  for (int64_t opset = 14; opset <= ox::kMaxOpset; ++opset)
    check_model_in_ort("upsample_opset", config_of(R"(
model:
  layers:
    - {type: upsample, scale_factor: 2, mode: bicubic}
    - {type: conv_transpose2d, out_channels: 2, kernel_size: 3, stride: 2}
data: {dataset: fashion_mnist}
)"), {1, 4, 4}, opset);
}

TEST_CASE("export: lstm, gru and rnn (stacked, bidirectional, h_n/c_n as the output) run in ONNX Runtime "
          "with dltool's numbers",
          "[export][onnxruntime][rnn]") {
  DLTOOL_REQUIRE_ORT();
  // [N, T = 6, I = 5] sequences; PyTorch's gate orders are converted to ONNX's in the export.
  const std::vector<std::string> models = {
      "layers:\n    - {type: lstm, hidden_size: 8, num_layers: 2, bidirectional: true, batch_first: true}\n"
      "    - last_step\n    - {type: linear, out_features: 3}",
      "layers:\n    - {type: gru, hidden_size: 7, num_layers: 2, bidirectional: true, batch_first: true}\n"
      "    - flatten",
      "layers:\n    - {type: rnn, hidden_size: 6, nonlinearity: relu, num_layers: 2, bidirectional: true,"
      " batch_first: true}",
      "layers:\n    - {type: rnn, hidden_size: 4, bias: false, batch_first: true}\n    - last_step",
      "layers:\n    - {type: lstm, hidden_size: 5, bias: false, batch_first: true, num_layers: 3}",
      // h_n and c_n ([N, L*D, H]) as the values a recipe reads
      "nodes:\n    - {name: rnn, type: lstm, hidden_size: 4, num_layers: 2, bidirectional: true, batch_first: true}\n"
      "    - {name: h, type: flatten, inputs: [rnn.1]}\n"
      "    - {name: c, type: flatten, inputs: [rnn.2]}\n"
      "    - {name: out, type: concat, inputs: [h, c]}",
      "nodes:\n    - {name: rnn, type: gru, hidden_size: 4, batch_first: true}\n"
      "    - {name: out, type: flatten, inputs: [rnn.1]}",
  };
  for (const std::string& m : models)
    check_model_in_ort("rnn", config_of("model:\n  " + m + "\ndata: {dataset: fashion_mnist}\n"), {6, 5});
  for (int64_t opset = ox::kMinOpset; opset <= ox::kMaxOpset; ++opset)
    check_model_in_ort("rnn_opset", config_of("model:\n  " + models[0] + "\ndata: {dataset: fashion_mnist}\n"), {6, 5},
                       opset);
}

namespace {

// Exports `cfg`'s model, which reads padded sequences `input` [N, T, I] (sample = [T, I]) and
// `input_lengths` i64 [N], checks the second graph input (int64 [batch], or [7] with a static
// batch) and python3-onnx, and runs it in ONNX Runtime at batch 1 and 7 on unsorted lengths (T
// and 1 among them; the padding holds random values, which neither side may read), comparing
// with dltool's forward.
void check_lengths_model_in_ort(const std::string& label, const Config& cfg, const Shape& sample) {
  INFO(label);
  const int64_t T = sample.at(0);
  REQUIRE(T == 6);
  auto model = build_on(cfg, {{"input", sample, dl::DType::F32}, {std::string(dl::kInputLengths), {}, dl::DType::I64}});
  REQUIRE(model->model_inputs().size() == 2);
  const std::vector<std::vector<int64_t>> batches = {{3}, {4, 6, 1, 5, 2, 6, 3}};
  for (bool dynamic : {true, false}) {
    INFO((dynamic ? "dynamic batch" : "static batch 7"));
    ox::Options o;
    o.dynamic_batch = dynamic;
    o.batch_size = 7;
    const std::string bytes = ox::export_onnx(cfg.model, *model, o);
    const onnx::ModelProto m = parse(bytes);
    REQUIRE(m.graph().input_size() == 2);
    const onnx::ValueInfoProto& lens_in = m.graph().input(1);
    CHECK(lens_in.name() == "input_lengths");
    CHECK(lens_in.type().tensor_type().elem_type() == onnx::TensorProto::INT64);
    REQUIRE(lens_in.type().tensor_type().shape().dim_size() == 1);
    const auto& dim = lens_in.type().tensor_type().shape().dim(0);
    if (dynamic) {
      CHECK(dim.dim_param() == "batch");
      CHECK(m.graph().input(0).type().tensor_type().shape().dim(0).dim_param() == "batch");
    } else {
      CHECK(dim.dim_value() == 7);
    }
    TempDir d;
    const std::string path = d.file(label + ".onnx", bytes);
    CHECK(dl::test::python_onnx_check(path) == "");
    for (const std::vector<int64_t>& lens : batches) {
      const int64_t n = static_cast<int64_t>(lens.size());
      if (!dynamic && n != 7) continue;
      Tensor x = batch_of(sample, n, 200 + n);
      Tensor l = dl::from_vector(lens, {n});
      const Tensor want = forward(*model, dl::TensorList{x, l});
      check_close(dl::test::ort_run(path, {{"input", x}, {"input_lengths", l}}), want,
                  label + " batch " + std::to_string(n));
      // The lengths matter: the same batch read to its full length gives other numbers.
      const Tensor full = forward(*model, dl::TensorList{x, dl::full({n}, static_cast<double>(T), dl::DType::I64)});
      CHECK_FALSE(dl::test::allclose(full, want, 1e-4, 1e-5));
    }
  }
}

}  // namespace

TEST_CASE("export: lstm and gru on input_lengths (unsorted lengths) and last_step run in ONNX Runtime "
          "with dltool's numbers",
          "[export][onnxruntime][rnn]") {
  DLTOOL_REQUIRE_ORT();
  // [N, T = 6, I = 5] padded sequences and their lengths, as collate feeds a recipe.
  const std::vector<std::string> models = {
      "nodes:\n    - {name: rnn, type: lstm, hidden_size: 8, num_layers: 2, bidirectional: true, batch_first: true,"
      " inputs: [input, input_lengths]}\n"
      "    - {name: last, type: last_step, inputs: [rnn.0, input_lengths]}\n"
      "    - {name: fc, type: linear, out_features: 3}",
      // the padded output (zeros after each length), h_n of both directions
      "nodes:\n    - {name: rnn, type: gru, hidden_size: 7, num_layers: 2, bidirectional: true, batch_first: true,"
      " inputs: [input, input_lengths]}\n"
      "    - {name: y, type: flatten, inputs: [rnn]}\n"
      "    - {name: h, type: flatten, inputs: [rnn.1]}\n"
      "    - {name: out, type: concat, inputs: [y, h]}",
  };
  for (size_t i = 0; i < models.size(); ++i)
    check_lengths_model_in_ort("rnn_lengths" + std::to_string(i),
                               config_of("model:\n  " + models[i] + "\ndata: {dataset: fashion_mnist}\n"), {6, 5});
}

TEST_CASE("export: a second model input other than input_lengths is refused by name", "[export]") {
  // Recipes cannot name one (the config reader knows input and input_lengths only); a model built
  // through the API can.
  Config cfg = config_of("model:\n  nodes:\n    - {name: sum, type: add, inputs: [input, input_lengths]}\n"
                         "data: {dataset: fashion_mnist}\n");
  cfg.model.nodes.at(0).inputs.at(1) = "offset";
  auto model = build_on(cfg, {{"input", {4}, dl::DType::F32}, {"offset", {4}, dl::DType::F32}});
  REQUIRE(model->model_inputs().size() == 2);
  CHECK_THROWS_MATCHES(ox::export_onnx(cfg.model, *model, ox::Options{}), ox::ExportError,
                       Catch::Matchers::Message("cannot export a model with several inputs (offset): dltool exports "
                                                "models of one input, plus input_lengths for padded sequences"));
}

namespace {

// A spatial transformer on [2, 9, 8]: pooled features -> affine_theta -> affine_grid (size from
// the image) -> grid_sample, or (fixed_size) linear -> reshape [2, 3] -> affine_grid of a 5x7
// output. `theta`'s weights are drawn at random: fresh ones are the identity transform, and
// these move points off the pixel centres and outside the image.
std::pair<Config, std::shared_ptr<GraphModel>> stn_model(const std::string& mode, const std::string& padding,
                                                         bool align, bool fixed_size) {
  const std::string ac = align ? "true" : "false";
  const std::string theta = fixed_size ? "    - {name: fc6, type: linear, out_features: 6}\n"
                                         "    - {name: theta, type: reshape, shape: [2, -1]}\n"
                                         "    - {name: grid, type: affine_grid, size: [5, 7], align_corners: " + ac + "}\n"
                                       : "    - {name: theta, type: affine_theta}\n"
                                         "    - {name: grid, type: affine_grid, inputs: [theta, input], align_corners: " +
                                             ac + "}\n";
  Config cfg = config_of("model:\n  nodes:\n"
                         "    - {name: pool, type: avg_pool2d, kernel_size: 3, inputs: [input]}\n"
                         "    - {name: flat, type: flatten}\n"
                         "    - {name: fc, type: linear, out_features: 8}\n"
                         "    - {name: act, type: tanh}\n" + theta +
                         "    - {name: warp, type: grid_sample, inputs: [input, grid], mode: " + mode +
                         ", padding_mode: " + padding + ", align_corners: " + ac + "}\n"
                         "data: {dataset: fashion_mnist}\n");
  auto model = build(cfg, {2, 9, 8});
  dl::Generator gen(21);
  for (auto& [name, p] : model->named_parameters())
    if (name == "theta.weight" || name == "fc6.weight") {
      dl::NoGradGuard no_grad;
      p.copy_(dl::randn(p.shape(), gen) * 0.6);
    }
  return {cfg, model};
}

}  // namespace

TEST_CASE("export: affine_grid and grid_sample (every mode, padding, align_corners) run in ONNX Runtime "
          "with dltool's numbers",
          "[export][onnxruntime][grid_sample]") {
  DLTOOL_REQUIRE_ORT();
  for (const char* mode : {"bilinear", "nearest"})
    for (const char* padding : {"zeros", "border", "reflection"})
      for (bool align : {false, true})
        for (bool fixed_size : {false, true}) {
          const int64_t opset = fixed_size ? 16 : 17;  // GridSample came in opset 16
          INFO(mode << " " << padding << (align ? " align_corners" : "") << (fixed_size ? " size 5x7" : "")
                    << " opset " << opset);
          auto [cfg, model] = stn_model(mode, padding, align, fixed_size);
          ox::Options o;
          o.opset = opset;
          TempDir d;
          const std::string path = d.file("stn.onnx", ox::export_onnx(cfg.model, *model, o));
          CHECK(dl::test::python_onnx_check(path) == "");
          for (int64_t n : {1, 7}) {
            Tensor x = batch_of({2, 9, 8}, n, 40 + n);
            check_close(dl::test::ort_run(path, x), forward(*model, x), "batch " + std::to_string(n));
          }
        }
}

TEST_CASE("export: grid_sample below opset 16 is refused by name", "[export][grid_sample]") {
  auto [cfg, model] = stn_model("bilinear", "zeros", false, false);
  ox::Options o;
  o.opset = 15;
  CHECK_THROWS_WITH(ox::export_onnx(cfg.model, *model, o),
                    Catch::Contains("cannot export node 'warp' (type grid_sample) at ONNX opset 15") &&
                        Catch::Contains("GridSample needs ONNX opset 16"));
  o.opset = 16;
  CHECK_NOTHROW(ox::export_onnx(cfg.model, *model, o));
}

TEST_CASE("export: upsample refuses opset 13 and a bicubic scale_factor that keeps the size, saying why",
          "[export]") {
  auto refused = [](const std::string& layer, int64_t opset) -> std::string {
    Config cfg = config_of("model:\n  layers:\n    - " + layer + "\ndata: {dataset: fashion_mnist}\n");
    auto model = build(cfg, {2, 5, 6});
    ox::Options o;
    o.opset = opset;
    try {
      ox::export_onnx(cfg.model, *model, o);
    } catch (const ox::ExportError& e) {
      return e.what();
    }
    return "";
  };
  CHECK_THAT(refused("{type: upsample, scale_factor: 2}", 13), Catch::Contains("needs ONNX opset 14"));
  CHECK_THAT(refused("{type: upsample, scale_factor: [1.1, 1], mode: bicubic}", 17),
             Catch::Contains("ONNX Runtime copies the input"));
  CHECK(refused("{type: upsample, scale_factor: [1.1, 1], mode: bilinear}", 17).empty());  // both copy
}

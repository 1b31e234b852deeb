#include "exporters/onnx_export.h"

#include <cmath>
#include <functional>
#include <map>
#include <set>

#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include "engine/ops.h"

namespace dl::onnx_export {
namespace {

// ---- Graph building -------------------------------------------------------------------------

// Everything a layer mapping sees: its spec, module (weights), input value names and shapes.
struct LayerIO {
  const LayerSpec& spec;
  const nn::Module& module;
  std::vector<std::string> inputs;  // ONNX value names
  std::vector<Shape> in_shapes;     // per sample (no batch dim)
  Shape out_shape;                  // per sample
  std::string output;               // the ONNX value name this layer must produce
  int64_t opset;

  std::string sub(const std::string& step) const { return spec.name + "/" + step; }
  int64_t rank() const { return 1 + static_cast<int64_t>(in_shapes.at(0).size()); }  // with batch
};

[[noreturn]] void unmapped(const LayerIO& io, const std::string& why) {
  throw ExportError("cannot export node '" + io.spec.name + "' (type " + io.spec.type + ") at ONNX opset " +
                    std::to_string(io.opset) + ": " + why);
}

class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto& g) : g_(g) {}

  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::string& output, const std::string& name) {
    claim(output);
    onnx::NodeProto* n = g_.add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& i : inputs) n->add_input(i);
    n->add_output(output);
    return *n;
  }

  // A state_dict tensor as an initializer named by its key (float32, little-endian raw data).
  std::string weight(const LayerIO& io, const std::string& key) {
    for (const auto& [k, t] : io.module.state_dict())
      if (k == key) return tensor(io.spec.name + "." + key, t.detach().to(DType::F32).cpu().contiguous());
    throw std::logic_error("ONNX export: node '" + io.spec.name + "' has no tensor '" + key + "'");
  }

  std::string floats(const std::string& name, const std::vector<float>& v, const Shape& shape) {
    return tensor(name, from_vector(v, shape));
  }
  std::string ints(const std::string& name, const std::vector<int64_t>& v) {
    return tensor(name, from_vector(v, {static_cast<int64_t>(v.size())}));
  }
  std::string scalar(const std::string& name, float v) { return floats(name, {v}, {}); }

  void claim(const std::string& name) {
    if (!names_.insert(name).second)
      throw ExportError("the ONNX value name '" + name + "' is used twice (a node name, an initializer or "
                        "--input-names/--output-names clash); rename one of them");
  }

 private:
  std::string tensor(const std::string& name, const Tensor& t) {
    claim(name);
    onnx::TensorProto* p = g_.add_initializer();
    p->set_name(name);
    for (int64_t d : t.shape()) p->add_dims(d);
    if (t.dtype() == DType::F32) {
      p->set_data_type(onnx::TensorProto::FLOAT);
    } else if (t.dtype() == DType::I64) {
      p->set_data_type(onnx::TensorProto::INT64);
    } else {
      throw std::logic_error("ONNX export: unexpected dtype for initializer '" + name + "'");
    }
    static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "ONNX raw_data is little-endian");
    p->set_raw_data(std::string(static_cast<const char*>(t.raw_data()), t.numel() * t.element_size()));
    return name;
  }

  onnx::GraphProto& g_;
  std::set<std::string> names_;
};

void attr(onnx::NodeProto& n, const std::string& name, int64_t v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
void attr(onnx::NodeProto& n, const std::string& name, float v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
void attr(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

// A single-operator layer: op(inputs...) -> output.
void simple(GraphBuilder& b, const LayerIO& io, const std::string& op) {
  b.node(op, io.inputs, io.output, io.spec.name);
}

int64_t normalize_dim(const LayerIO& io, int64_t d, int64_t rank) {
  int64_t n = d < 0 ? d + rank : d;
  if (n < 0 || n >= rank) unmapped(io, "dim " + std::to_string(d) + " is out of range for rank " + std::to_string(rank));
  return n;
}

// ---- Layer mappings --------------------------------------------------------------------------

void map_linear(GraphBuilder& b, const LayerIO& io) {
  const bool bias = io.spec.get_bool("bias");
  const std::string w = b.weight(io, "weight");
  if (io.rank() == 2) {  // Gemm: Y = X W^T + b, W stays in PyTorch's [out, in] layout
    std::vector<std::string> in = {io.inputs[0], w};
    if (bias) in.push_back(b.weight(io, "bias"));
    attr(b.node("Gemm", in, io.output, io.spec.name), "transB", int64_t{1});
    return;
  }
  // Over the last dim of a higher-rank input: MatMul(X, W^T) (+ b).
  const std::string wt = io.sub("weight_t");
  attr(b.node("Transpose", {w}, wt, wt), "perm", std::vector<int64_t>{1, 0});
  if (!bias) {
    b.node("MatMul", {io.inputs[0], wt}, io.output, io.spec.name);
    return;
  }
  const std::string mm = io.sub("matmul");
  b.node("MatMul", {io.inputs[0], wt}, mm, mm);
  b.node("Add", {mm, b.weight(io, "bias")}, io.output, io.spec.name);
}

void map_conv2d(GraphBuilder& b, const LayerIO& io) {
  const auto& s = io.spec;
  std::vector<std::string> in = {io.inputs[0], b.weight(io, "weight")};
  if (s.get_bool("bias")) in.push_back(b.weight(io, "bias"));
  auto& n = b.node("Conv", in, io.output, s.name);
  auto k = s.get_pair("kernel_size"), st = s.get_pair("stride"), p = s.get_pair("padding"), d = s.get_pair("dilation");
  attr(n, "kernel_shape", std::vector<int64_t>{k[0], k[1]});
  attr(n, "strides", std::vector<int64_t>{st[0], st[1]});
  attr(n, "pads", std::vector<int64_t>{p[0], p[1], p[0], p[1]});
  attr(n, "dilations", std::vector<int64_t>{d[0], d[1]});
  attr(n, "group", s.get_int("groups"));
}

// PyTorch's ceil_mode lets the last window hang over the end (if it starts inside the input or
// the left padding); ONNX's ceil_mode rule differs between runtimes. Exported exactly instead:
// floor mode with the end padding that yields PyTorch's output size.
void map_pool(GraphBuilder& b, const LayerIO& io, bool is_max) {
  const auto& s = io.spec;
  auto k = s.get_pair("kernel_size"), st = s.get_pair("stride"), p = s.get_pair("padding");
  const Shape& x = io.in_shapes[0];
  std::vector<int64_t> pads = {p[0], p[1], p[0], p[1]};
  for (int i = 0; i < 2; ++i) {
    const int64_t in = x[1 + i], out = io.out_shape[1 + i];
    const int64_t end = std::max<int64_t>(0, (out - 1) * st[i] + k[i] - in - p[i]);
    if ((in + p[i] + end - k[i]) / st[i] + 1 != out)
      throw std::logic_error("ONNX export: pooling size arithmetic disagrees for node '" + s.name + "'");
    if (!is_max && s.get_bool("count_include_pad") && end > p[i])
      unmapped(io, "ceil_mode with count_include_pad averages its last window over fewer cells than "
                   "its padding, which ONNX AveragePool cannot express; set count_include_pad: false "
                   "or ceil_mode: false");
    pads[2 + i] = end;
  }
  auto& n = b.node(is_max ? "MaxPool" : "AveragePool", {io.inputs[0]}, io.output, s.name);
  attr(n, "kernel_shape", std::vector<int64_t>{k[0], k[1]});
  attr(n, "strides", std::vector<int64_t>{st[0], st[1]});
  attr(n, "pads", pads);
  if (!is_max) attr(n, "count_include_pad", int64_t{s.get_bool("count_include_pad") ? 1 : 0});
}

void map_adaptive_avg_pool2d(GraphBuilder& b, const LayerIO& io) {
  const Shape& x = io.in_shapes[0];
  auto o = io.spec.get_pair("output_size");
  if (o[0] == 1 && o[1] == 1) {
    simple(b, io, "GlobalAveragePool");
    return;
  }
  if (x[1] % o[0] != 0 || x[2] % o[1] != 0)
    unmapped(io, "ONNX has no adaptive pooling; output_size (" + std::to_string(o[0]) + ", " +
                     std::to_string(o[1]) + ") must divide the input size (" + std::to_string(x[1]) + ", " +
                     std::to_string(x[2]) + ") to become an AveragePool (or be (1, 1): GlobalAveragePool)");
  auto& n = b.node("AveragePool", {io.inputs[0]}, io.output, io.spec.name);
  std::vector<int64_t> k = {x[1] / o[0], x[2] / o[1]};
  attr(n, "kernel_shape", k);
  attr(n, "strides", k);
}

void map_batch_norm(GraphBuilder& b, const LayerIO& io) {
  const auto& s = io.spec;
  const int64_t C = io.in_shapes[0].at(0);
  const bool affine = s.get_bool("affine");
  const float eps = static_cast<float>(s.get_float("eps"));
  if (s.get_bool("track_running_stats")) {
    std::string scale = affine ? b.weight(io, "weight") : b.floats(io.sub("scale"), std::vector<float>(C, 1.f), {C});
    std::string bias = affine ? b.weight(io, "bias") : b.floats(io.sub("bias"), std::vector<float>(C, 0.f), {C});
    auto& n = b.node("BatchNormalization",
                     {io.inputs[0], scale, bias, b.weight(io, "running_mean"), b.weight(io, "running_var")},
                     io.output, s.name);
    attr(n, "epsilon", eps);
    return;
  }
  // Without running statistics PyTorch normalises with the batch's own statistics in eval mode
  // too: (x - mean) / sqrt(var + eps) over every axis but the channel one (biased variance).
  std::vector<int64_t> axes = {0};
  for (int64_t a = 2; a < io.rank(); ++a) axes.push_back(a);
  Shape bshape = {C};  // a per-channel tensor broadcast against [N, C, ...]
  for (int64_t a = 2; a < io.rank(); ++a) bshape.push_back(1);
  const std::string mean = io.sub("mean"), diff = io.sub("centered"), sq = io.sub("squared"), var = io.sub("var"),
                    vare = io.sub("var_eps"), sd = io.sub("std");
  attr(b.node("ReduceMean", {io.inputs[0]}, mean, mean), "axes", axes);
  b.node("Sub", {io.inputs[0], mean}, diff, diff);
  b.node("Mul", {diff, diff}, sq, sq);
  attr(b.node("ReduceMean", {sq}, var, var), "axes", axes);
  b.node("Add", {var, b.scalar(io.sub("eps"), eps)}, vare, vare);
  b.node("Sqrt", {vare}, sd, sd);
  if (!affine) {
    b.node("Div", {diff, sd}, io.output, s.name);
    return;
  }
  const std::string norm = io.sub("normalized"), scaled = io.sub("scaled"), shape = b.ints(io.sub("shape"), bshape);
  const std::string w = io.sub("weight_c"), bi = io.sub("bias_c");
  b.node("Div", {diff, sd}, norm, norm);
  b.node("Reshape", {b.weight(io, "weight"), shape}, w, w);
  b.node("Reshape", {b.weight(io, "bias"), shape}, bi, bi);
  b.node("Mul", {norm, w}, scaled, scaled);
  b.node("Add", {scaled, bi}, io.output, s.name);
}

void map_flatten(GraphBuilder& b, const LayerIO& io) {
  const int64_t r = io.rank();
  const int64_t start = normalize_dim(io, io.spec.get_int("start_dim"), r);
  const int64_t end = normalize_dim(io, io.spec.get_int("end_dim"), r);
  if (start == 0)
    unmapped(io, "start_dim 0 merges the batch dimension into the features; an exported model keeps "
                 "dim 0 as the batch (use start_dim: 1)");
  if (start == 1 && end == r - 1) {
    attr(b.node("Flatten", {io.inputs[0]}, io.output, io.spec.name), "axis", int64_t{1});
    return;
  }
  std::vector<int64_t> shape = {0};  // 0: copy the (possibly dynamic) batch dim
  shape.insert(shape.end(), io.out_shape.begin(), io.out_shape.end());
  b.node("Reshape", {io.inputs[0], b.ints(io.sub("shape"), shape)}, io.output, io.spec.name);
}

void map_gelu(GraphBuilder& b, const LayerIO& io) {
  const std::string& x = io.inputs[0];
  const std::string one = b.scalar(io.sub("one"), 1.f), half = b.scalar(io.sub("half"), 0.5f);
  const std::string inner = io.sub("inner"), act = io.sub("activation"), plus = io.sub("one_plus"),
                    hx = io.sub("half_x");
  if (io.spec.get_string("approximate") == "tanh") {  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    const std::string x2 = io.sub("x2"), x3 = io.sub("x3"), cx3 = io.sub("c_x3"), sum = io.sub("x_plus");
    b.node("Mul", {x, x}, x2, x2);
    b.node("Mul", {x2, x}, x3, x3);
    b.node("Mul", {x3, b.scalar(io.sub("c"), 0.044715f)}, cx3, cx3);
    b.node("Add", {x, cx3}, sum, sum);
    b.node("Mul", {sum, b.scalar(io.sub("sqrt_2_over_pi"), static_cast<float>(std::sqrt(2.0 / M_PI)))}, inner, inner);
    b.node("Tanh", {inner}, act, act);
  } else {  // 0.5 x (1 + erf(x / sqrt(2)))
    b.node("Mul", {x, b.scalar(io.sub("rsqrt2"), static_cast<float>(M_SQRT1_2))}, inner, inner);
    b.node("Erf", {inner}, act, act);
  }
  b.node("Add", {act, one}, plus, plus);
  b.node("Mul", {x, half}, hx, hx);
  b.node("Mul", {hx, plus}, io.output, io.spec.name);
}

// torch.nn.Softplus: x where beta*x > threshold, else log(1 + exp(beta*x)) / beta.
void map_softplus(GraphBuilder& b, const LayerIO& io) {
  const std::string& x = io.inputs[0];
  const float beta = static_cast<float>(io.spec.get_float("beta"));
  const float threshold = static_cast<float>(io.spec.get_float("threshold"));
  std::string bx = x, sp = io.sub("softplus");
  if (beta != 1.f) {
    bx = io.sub("beta_x");
    b.node("Mul", {x, b.scalar(io.sub("beta"), beta)}, bx, bx);
  }
  b.node("Softplus", {bx}, sp, sp);
  if (beta != 1.f) {
    const std::string d = io.sub("softplus_over_beta");
    b.node("Div", {sp, b.scalar(io.sub("beta_div"), beta)}, d, d);
    sp = d;
  }
  const std::string over = io.sub("over_threshold");
  b.node("Greater", {bx, b.scalar(io.sub("threshold"), threshold)}, over, over);
  b.node("Where", {over, x, sp}, io.output, io.spec.name);
}

void map_softmax(GraphBuilder& b, const LayerIO& io, const char* op) {
  normalize_dim(io, io.spec.get_int("dim"), io.rank());
  attr(b.node(op, io.inputs, io.output, io.spec.name), "axis", io.spec.get_int("dim"));
}

using Mapping = std::function<void(GraphBuilder&, const LayerIO&)>;

// YAML layer type -> ONNX mapping. A new layer type is one entry here (a test checks that every
// registered type has one).
const std::map<std::string, Mapping>& mappings() {
  static const std::map<std::string, Mapping> table = {
      {"linear", map_linear},
      {"conv2d", map_conv2d},
      {"max_pool2d", [](GraphBuilder& b, const LayerIO& io) { map_pool(b, io, true); }},
      {"avg_pool2d", [](GraphBuilder& b, const LayerIO& io) { map_pool(b, io, false); }},
      {"adaptive_avg_pool2d", map_adaptive_avg_pool2d},
      {"batch_norm1d", map_batch_norm},
      {"batch_norm2d", map_batch_norm},
      {"dropout", [](GraphBuilder& b, const LayerIO& io) { simple(b, io, "Identity"); }},  // inference
      {"flatten", map_flatten},
      {"relu", [](GraphBuilder& b, const LayerIO& io) { simple(b, io, "Relu"); }},
      {"leaky_relu", [](GraphBuilder& b, const LayerIO& io) {
         attr(b.node("LeakyRelu", io.inputs, io.output, io.spec.name), "alpha",
              static_cast<float>(io.spec.get_float("negative_slope")));
       }},
      {"elu", [](GraphBuilder& b, const LayerIO& io) {
         attr(b.node("Elu", io.inputs, io.output, io.spec.name), "alpha", static_cast<float>(io.spec.get_float("alpha")));
       }},
      {"gelu", map_gelu},
      {"sigmoid", [](GraphBuilder& b, const LayerIO& io) { simple(b, io, "Sigmoid"); }},
      {"tanh", [](GraphBuilder& b, const LayerIO& io) { simple(b, io, "Tanh"); }},
      {"softplus", map_softplus},
      {"softmax", [](GraphBuilder& b, const LayerIO& io) { map_softmax(b, io, "Softmax"); }},
      {"log_softmax", [](GraphBuilder& b, const LayerIO& io) { map_softmax(b, io, "LogSoftmax"); }},
      {"identity", [](GraphBuilder& b, const LayerIO& io) { simple(b, io, "Identity"); }},
      {"add", [](GraphBuilder& b, const LayerIO& io) { simple(b, io, io.inputs.size() == 2 ? "Add" : "Sum"); }},
      {"concat", [](GraphBuilder& b, const LayerIO& io) {
         normalize_dim(io, io.spec.get_int("dim"), io.rank());
         attr(b.node("Concat", io.inputs, io.output, io.spec.name), "axis", io.spec.get_int("dim"));
       }},
  };
  return table;
}

// ---- Value infos and the self-check ----------------------------------------------------------

void set_type(onnx::ValueInfoProto& v, const std::string& name, const Shape& per_sample, const Options& o) {
  v.set_name(name);
  auto* t = v.mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = t->mutable_shape();
  auto* batch = shape->add_dim();
  if (o.dynamic_batch) {
    batch->set_dim_param("batch");
  } else {
    batch->set_dim_value(o.batch_size);
  }
  for (int64_t d : per_sample) shape->add_dim()->set_dim_value(d);
}

std::string dims_str(const onnx::TensorShapeProto& s) {
  std::string out = "[";
  for (int i = 0; i < s.dim_size(); ++i) {
    if (i) out += ", ";
    const auto& d = s.dim(i);
    out += d.has_dim_value() ? std::to_string(d.dim_value()) : d.has_dim_param() ? d.dim_param() : "?";
  }
  return out + "]";
}

// Runs ONNX's checker and strict shape inference, then compares every inferred shape of a
// layer's output with the shape the graph computed.
void self_check(const onnx::ModelProto& model, const std::map<std::string, Shape>& expected, const Options& o) {
  try {
    onnx::checker::check_model(model);
    onnx::ModelProto inferred = model;
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(/*check_type=*/true, /*error_mode=*/1,
                                                                   /*data_propagation=*/true));
    std::map<std::string, const onnx::TypeProto*> types;
    for (const auto& v : inferred.graph().value_info()) types[v.name()] = &v.type();
    for (const auto& v : inferred.graph().output()) types[v.name()] = &v.type();
    for (const auto& [name, shape] : expected) {
      auto it = types.find(name);
      if (it == types.end() || !it->second->tensor_type().has_shape())
        throw std::runtime_error("shape inference gave no shape for '" + name + "'");
      onnx::ValueInfoProto want;
      set_type(want, name, shape, o);
      const auto& got = it->second->tensor_type().shape();
      if (dims_str(got) != dims_str(want.type().tensor_type().shape()))
        throw std::runtime_error("'" + name + "': ONNX infers " + dims_str(got) + ", dltool computed " +
                                 dims_str(want.type().tensor_type().shape()));
    }
  } catch (const std::exception& e) {
    throw std::logic_error(std::string("internal error: the exported ONNX model failed its own check (a bug in "
                                       "dltool's exporter; please report it with the config): ") + e.what());
  }
}

}  // namespace

int64_t ir_version_for_opset(int64_t opset) { return opset <= 14 ? 7 : 8; }

bool has_mapping(const std::string& layer_type) { return mappings().count(layer_type) != 0; }

std::string export_onnx(const ModelSpec& spec, const GraphModel& model, const Options& o) {
  if (o.opset < kMinOpset || o.opset > kMaxOpset)
    throw ExportError("ONNX opset " + std::to_string(o.opset) + " is not supported: dltool exports opsets " +
                      std::to_string(kMinOpset) + " to " + std::to_string(kMaxOpset));
  if (!o.dynamic_batch && o.batch_size < 1)
    throw ExportError("a static batch size must be >= 1, got " + std::to_string(o.batch_size));
  const auto& nodes = model.nodes();
  if (nodes.size() != spec.nodes.size())
    throw std::logic_error("ONNX export: the model was not built from this spec");
  // Before building anything: every node's type has a mapping.
  for (const auto& ls : spec.nodes)
    if (!has_mapping(ls.type))
      throw ExportError("cannot export node '" + ls.name + "' (type " + ls.type + ") at ONNX opset " +
                        std::to_string(o.opset) + ": dltool has no ONNX mapping for this layer type");

  onnx::ModelProto m;
  m.set_ir_version(ir_version_for_opset(o.opset));
  m.set_producer_name("dltool");
  m.set_producer_version(DLTOOL_VERSION);
  auto* imp = m.add_opset_import();
  imp->set_domain("");
  imp->set_version(o.opset);
  for (const auto& [k, v] : o.metadata) {
    auto* p = m.add_metadata_props();
    p->set_key(k);
    p->set_value(v);
  }
  onnx::GraphProto& g = *m.mutable_graph();
  g.set_name(o.graph_name);
  GraphBuilder b(g);
  b.claim(o.input_name);
  set_type(*g.add_input(), o.input_name, model.sample_shape(), o);

  const int out_index = model.output_index();
  std::vector<std::string> value_names(nodes.size());
  std::map<std::string, Shape> expected;  // value name -> per-sample shape, for the self-check
  const auto& summary = model.summary();
  for (size_t i = 0; i < nodes.size(); ++i) {
    const LayerSpec& ls = spec.nodes[i];
    if (ls.name != nodes[i].name) throw std::logic_error("ONNX export: the model was not built from this spec");
    LayerIO io{ls, *nodes[i].module, {}, {}, summary[i].output_shape,
               static_cast<int>(i) == out_index ? o.output_name : ls.name, o.opset};
    for (int j : nodes[i].inputs) {
      io.inputs.push_back(j < 0 ? o.input_name : value_names[j]);
      io.in_shapes.push_back(j < 0 ? model.sample_shape() : summary[j].output_shape);
    }
    mappings().at(ls.type)(b, io);
    value_names[i] = io.output;
    expected[io.output] = io.out_shape;
  }
  set_type(*g.add_output(), o.output_name, model.output_shape(), o);
  self_check(m, expected, o);
  std::string bytes;
  if (!m.SerializeToString(&bytes)) throw std::runtime_error("ONNX export: protobuf serialization failed");
  return bytes;
}

ModelInfo describe(const std::string& bytes) {
  onnx::ModelProto m;
  if (!m.ParseFromString(bytes)) throw std::runtime_error("not an ONNX model (protobuf parse failed)");
  ModelInfo info;
  info.ir_version = m.ir_version();
  for (const auto& op : m.opset_import())
    if (op.domain().empty()) info.opset = op.version();
  info.nodes = static_cast<size_t>(m.graph().node_size());
  info.initializers = static_cast<size_t>(m.graph().initializer_size());
  for (const auto& t : m.graph().initializer()) {
    int64_t n = 1;
    for (int64_t d : t.dims()) n *= d;
    info.parameters += n;
  }
  auto dims = [](const onnx::ValueInfoProto& v) {
    std::vector<std::string> out;
    for (const auto& d : v.type().tensor_type().shape().dim())
      out.push_back(d.has_dim_value() ? std::to_string(d.dim_value()) : d.dim_param());
    return out;
  };
  if (m.graph().input_size() > 0) {
    info.input_name = m.graph().input(0).name();
    info.input_dims = dims(m.graph().input(0));
  }
  if (m.graph().output_size() > 0) {
    info.output_name = m.graph().output(0).name();
    info.output_dims = dims(m.graph().output(0));
  }
  return info;
}

}  // namespace dl::onnx_export

#include "exporters/onnx_export.h"

#include <map>
#include <set>
#include <variant>

#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include "engine/graph/layer_schema.h"
#include "engine/graph/onnx_emit.h"
#include "engine/ops.h"

namespace dl::onnx_export {
namespace {

// ---- Graph building -------------------------------------------------------------------------

// The ONNX graph the layers' mappings (engine/graph/onnx_emit.h) write into.
class GraphBuilder final : public OnnxGraph {
 public:
  explicit GraphBuilder(onnx::GraphProto& g) : g_(g) {}

  void node(const std::string& op, const std::vector<std::string>& inputs, const std::string& output,
            const std::string& name, const std::vector<OnnxAttr>& attrs) override {
    node(op, inputs, std::vector<std::string>{output}, name, attrs);
  }

  void node(const std::string& op, const std::vector<std::string>& inputs, const std::vector<std::string>& outputs,
            const std::string& name, const std::vector<OnnxAttr>& attrs) override {
    for (const auto& o : outputs)
      if (!o.empty()) claim(o);
    onnx::NodeProto* n = g_.add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& i : inputs) n->add_input(i);
    for (const auto& o : outputs) n->add_output(o);
    for (const OnnxAttr& a : attrs) {
      auto* p = n->add_attribute();
      p->set_name(a.name);
      if (const auto* i = std::get_if<int64_t>(&a.value)) {
        p->set_type(onnx::AttributeProto::INT);
        p->set_i(*i);
      } else if (const auto* f = std::get_if<float>(&a.value)) {
        p->set_type(onnx::AttributeProto::FLOAT);
        p->set_f(*f);
      } else if (const auto* str = std::get_if<std::string>(&a.value)) {
        p->set_type(onnx::AttributeProto::STRING);
        p->set_s(*str);
      } else if (const auto* strs = std::get_if<std::vector<std::string>>(&a.value)) {
        p->set_type(onnx::AttributeProto::STRINGS);
        for (const auto& x : *strs) p->add_strings(x);
      } else {
        p->set_type(onnx::AttributeProto::INTS);
        for (int64_t x : std::get<std::vector<int64_t>>(a.value)) p->add_ints(x);
      }
    }
  }

  std::string initializer(const std::string& name, const Tensor& t) override {
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

  void claim(const std::string& name) {
    if (!names_.insert(name).second)
      throw ExportError("the ONNX value name '" + name + "' is used twice (a node name, an initializer or "
                        "--input-names/--output-names clash); rename one of them");
  }

 private:
  onnx::GraphProto& g_;
  std::set<std::string> names_;
};

// ---- Value infos and the self-check ----------------------------------------------------------

void set_type(onnx::ValueInfoProto& v, const std::string& name, const Shape& per_sample, const Options& o,
              DType dtype = DType::F32) {
  v.set_name(name);
  auto* t = v.mutable_type()->mutable_tensor_type();
  t->set_elem_type(is_floating(dtype) ? onnx::TensorProto::FLOAT : onnx::TensorProto::INT64);
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

bool has_mapping(const std::string& layer_type) {
  const LayerSchema* s = find_layer_schema(layer_type);
  return s && s->onnx;
}

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
  // Graph inputs, one per model input: the sample (named o.input_name) and, for padded
  // sequences, `input_lengths` int64 [batch]. ValueRef{-1, k} reads input_names[k].
  const auto& model_inputs = model.model_inputs();
  for (size_t k = 1; k < model_inputs.size(); ++k)
    if (model_inputs[k].name != kInputLengths)
      throw ExportError("cannot export a model with several inputs (" + model_inputs[k].name +
                        "): dltool exports models of one input, plus input_lengths for padded sequences");
  std::vector<std::string> input_names;
  for (size_t k = 0; k < model_inputs.size(); ++k) {
    input_names.push_back(k == 0 ? o.input_name : model_inputs[k].name);
    b.claim(input_names.back());
    set_type(*g.add_input(), input_names.back(), model_inputs[k].shape, o, model_inputs[k].dtype);
  }
  const ValueRef out_ref = model.output();
  std::vector<std::vector<std::string>> value_names(nodes.size());  // per node, per tuple element
  std::map<std::string, Shape> expected;  // value name -> per-sample shape, for the self-check
  const auto& summary = model.summary();
  for (size_t i = 0; i < nodes.size(); ++i) {
    const LayerSpec& ls = spec.nodes[i];
    if (ls.name != nodes[i].name) throw std::logic_error("ONNX export: the model was not built from this spec");
    // The model's output value is named o.output_name, whichever tuple element it is.
    auto element_name = [&](int k) {
      if (static_cast<int>(i) == out_ref.node && k == out_ref.index) return o.output_name;
      return k == 0 ? ls.name : ls.name + "." + std::to_string(k);
    };
    OnnxLayer io{ls, *nodes[i].module, {}, {}, summary[i].output_shape, element_name(0), o.opset};
    for (size_t k = 0; k < summary[i].extra_outputs.size(); ++k)
      io.extra_outputs.push_back(element_name(static_cast<int>(k) + 1));
    for (ValueRef v : nodes[i].inputs) {
      io.inputs.push_back(v.node < 0 ? input_names.at(v.index) : value_names[v.node][v.index]);
      io.in_shapes.push_back(model.value_shape(v));
    }
    try {
      find_layer_schema(ls.type)->onnx(b, io);
    } catch (const OnnxUnmappable& e) {
      throw ExportError(e.what());
    }
    value_names[i] = {io.output};
    expected[io.output] = io.out_shape;
    for (size_t k = 0; k < io.extra_outputs.size(); ++k) {
      value_names[i].push_back(io.extra_outputs[k]);
      expected[io.extra_outputs[k]] = summary[i].extra_outputs[k];
    }
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

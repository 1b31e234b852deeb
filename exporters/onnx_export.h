// ONNX export: the trained model graph as an ONNX ModelProto (ONNX's own protobuf schema from
// Debian's libonnx-dev), written the way torch.onnx.export writes it — no tracing: each node of
// the same GraphModel that trains is mapped to ONNX operators by its layer type's registration
// (engine/graph/layer_schema.h, `onnx`; this file implements the OnnxGraph it writes into).
//
//   dl::onnx_export::Options opt;                         // opset 17, dynamic batch axis
//   std::string bytes = dl::onnx_export::export_onnx(cfg.model, *model, opt);  // checked
//   dl::write_file_atomic("model.onnx", bytes);                  // exporters/atomic_file.h
//
// What the file holds:
//   - graph input `input` [batch, C, H, W] and output `output` [batch, ...] (float32); `batch`
//     is a symbolic dim (dim_param) unless Options::dynamic_batch is false;
//   - for a model that reads `input_lengths` (padded sequences into lstm/gru/rnn, last_step), a
//     second graph input `input_lengths` int64 [batch] (same `batch` dim); any other second
//     model input is refused (ExportError);
//   - every state_dict tensor the graph reads as an initializer under its state_dict key
//     ("conv1.weight", "bn1.running_mean"); num_batches_tracked is not exported;
//   - one ONNX node per layer where ONNX has the operator (node name = the layer's name, output
//     value name = the layer's name), a few nodes named "<layer>/<step>" where it has not
//     (GELU and Softplus at opsets < 20, BatchNorm without running stats);
//   - BatchNorm in inference form (running statistics), Dropout as Identity;
//   - producer "dltool" + version, opset_import {"": opset}, the matching IR version, and
//     Options::metadata as metadata_props.
// The bytes depend only on the spec, the weights and the options (no time, path or device), so
// the same weights always export to the same file.
//
// Before anything is returned the ONNX checker and strict shape inference run on the model,
// and every inferred node shape is compared with the graph's own shapes: a failure there is a
// bug in the exporter (std::logic_error), not a file.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "engine/graph/model.h"
#include "engine/graph/spec.h"

namespace dl::onnx_export {

inline constexpr int64_t kMinOpset = 13;      // Softmax/Split/ReduceSum took their modern form
inline constexpr int64_t kMaxOpset = 17;      // the newest opset Debian 12's ONNX 1.12 checks
inline constexpr int64_t kDefaultOpset = 17;

struct Options {
  int64_t opset = kDefaultOpset;
  bool dynamic_batch = true;  // false: the batch dim is fixed to batch_size
  int64_t batch_size = 1;
  std::string input_name = "input";
  std::string output_name = "output";
  std::string graph_name = "dltool";
  std::vector<std::pair<std::string, std::string>> metadata;  // metadata_props, in order
};

// The model cannot be exported as asked: a layer with no ONNX mapping at the opset (the message
// names the node, its type, the opset and why), an unsupported opset, or a name clash between
// --input-names/--output-names and the graph. Thrown before anything is written.
class ExportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// IR version that goes with an opset (13-14: 7, 15-17: 8), as torch.onnx writes it.
int64_t ir_version_for_opset(int64_t opset);

// True when the layer type is registered with an ONNX mapping (for some attribute values; a
// mapping may still refuse a particular configuration, e.g. adaptive_avg_pool2d to a size that
// does not divide its input).
bool has_mapping(const std::string& layer_type);

// `model` must have been built from `spec` (same nodes, same order) and hold the weights to
// export. The model is not modified and not run.
std::string export_onnx(const ModelSpec& spec, const GraphModel& model, const Options& options);

struct ModelInfo {
  int64_t opset = 0, ir_version = 0;
  std::size_t nodes = 0, initializers = 0;
  int64_t parameters = 0;  // elements in all initializers
  std::string input_name, output_name;
  std::vector<std::string> input_dims, output_dims;  // "batch" or a number
};
// Reads back the facts the CLI prints about serialized model bytes.
ModelInfo describe(const std::string& bytes);

}  // namespace dl::onnx_export

// The layer registry: every YAML layer type is ONE registration, in the file of its family
// under engine/graph/layers/, holding everything dltool knows about it: attributes (kind,
// default, range, doc), input count, cross-attribute rule, shape rule, module builder, ONNX
// mapping and an example. configs/ validates `model:` against it and generates configs/
// README.md's layer reference from it, engine/graph infers shapes and builds modules from it,
// exporters/onnx_export.cpp writes ONNX through it, and tests/engine/test_layer_registry.cpp
// walks it (documented, buildable, shape-consistent, exportable). engine/graph/README.md says
// how to add a layer type.
//
//   const RegisterLayer dropout({                    // layers/dropout.cpp
//       .type = "dropout",
//       .doc = "torch.nn.Dropout: zero elements with probability p while training",
//       .attrs = {A::floating("p", 0.5).range(0, 1, /*hi_open=*/true)
//                     .describe("probability of an element to be zeroed")},
//       .family = LayerFamily::Dropout,
//       .shapes = same_shape,                          // helpers: layers/common.h
//       .build = from_attrs([](const LayerSpec& s) { return make<nn::Dropout>(s.get_float("p")); }),
//       .onnx = onnx_op("Identity"),                   // inference
//       .saved_copies = 2,
//       .example = {{{5}}, {}},
//   });
//
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/graph/attr_schema.h"
#include "engine/graph/onnx_emit.h"
#include "engine/graph/spec.h"
#include "engine/nn/module.h"
#include "engine/ops/random.h"

namespace dl {

// Tensors a layer owns, by state_dict-relative name and shape: {"weight", [10, 84]}.
using NamedShapes = std::vector<std::pair<std::string, Shape>>;

// What a layer type's shape rule computes from its input shapes, allocating nothing.
struct LayerShapes {
  Shape output;         // without the batch dim
  NamedShapes params;   // in the module's registration order
  NamedShapes buffers;  // persistent and not
  // Elements 1.. of a tuple-valued layer (nn::Module::forward_tuple), per sample and batch
  // first like every graph value (an LSTM's h_n is [N, layers * directions, H] in the graph,
  // not PyTorch's [layers * directions, N, H]); recipes pick one as `inputs: [lstm.1]`.
  std::vector<Shape> extra_outputs = {};
};

// Where a layer type is listed (configs/README.md, layer_type_names()): by family in this
// order, then in the order its family's file registers it.
enum class LayerFamily {
  Linear,      // layers/linear.cpp
  Conv,        // layers/conv.cpp
  Pool,        // layers/pool.cpp
  Norm,        // layers/norm.cpp
  Dropout,     // layers/dropout.cpp
  Embedding,   // layers/embedding.cpp: lookup tables (torch's sparse layers)
  Reshape,     // layers/reshape.cpp
  Activation,  // layers/activation.cpp (and identity)
  Merge,       // layers/merge.cpp: layers of several inputs
  Recurrent,   // layers/recurrent.cpp: lstm, gru, rnn and sequence utilities
  Spatial,     // layers/spatial.cpp: affine_grid, grid_sample (spatial transformers)
  Other,       // registered at run time (tests, plugins)
};

// Input shapes (per sample, without the batch dim) and the attributes a layer type is built
// with by the registry walk: minimal valid attributes; every input of the same shape (the walk
// feeds one model input to each). input_dtype: what the input holds; the walks feed random
// normal values to floating inputs and zeros (a valid index for any table) to integer ones
// (embedding's token indices).
struct LayerExample {
  std::vector<Shape> inputs;
  AttrMap attrs;
  DType input_dtype = DType::F32;
};

// One YAML layer type. The functions receive a resolved spec (every attribute present, of its
// kind; the rule holds) and the input shapes per sample.
struct LayerSchema {
  static constexpr int kUnbounded = -1;
  // Output, parameter and buffer shapes; checks the input shapes (the builder may rely on them)
  // and throws GraphError (layers/common.h: fail) for ones the layer cannot take. Allocates
  // nothing: `dltool validate` and the memory estimate use it alone, and every built module is
  // checked against it.
  using ShapeRule = std::function<LayerShapes(const LayerSpec&, const std::vector<Shape>&)>;
  // The module, its parameters initialised from `gen` as PyTorch's defaults.
  using Builder = std::function<nn::ModulePtr(const LayerSpec&, const std::vector<Shape>&, Generator&)>;

  std::string type = {};               // YAML name, snake_case of the PyTorch module: "max_pool2d"
  std::string doc = {};                // "torch.nn.MaxPool2d: ..." (one line)
  std::vector<AttrSchema> attrs = {};  // in PyTorch's argument order
  int min_inputs = 1;
  int max_inputs = 1;                  // kUnbounded: any number >= min_inputs
  // Cross-attribute rule (e.g. groups divides out_channels); "" when fine, else the problem.
  std::function<std::string(const AttrMap&)> rule = nullptr;
  LayerFamily family = LayerFamily::Other;
  ShapeRule shapes = nullptr;
  Builder build = nullptr;
  // Writes the layer's ONNX nodes (onnx_emit.h); empty: export refuses the layer type.
  OnnxMapping onnx = nullptr;
  // Tensors of the output's size a training step keeps per layer (the memory estimate): none
  // for views of the input, two where a mask, indices or a normalised copy is kept for
  // backward, else one.
  int saved_copies = 1;
  LayerExample example = {};

  const AttrSchema* find_attr(std::string_view attr_name) const;
};

// ---- Registry -------------------------------------------------------------------------------
// Registers a layer type at static-initialisation time (dlengine is an OBJECT library, so every
// file's registrations run): `const RegisterLayer reg({...});` in its family's file.
struct RegisterLayer {
  explicit RegisterLayer(LayerSchema schema);
};

const std::vector<LayerSchema>& layer_schemas();            // by family, then registration
const LayerSchema* find_layer_schema(std::string_view type);  // nullptr when unknown
std::vector<std::string> layer_type_names();
// Adds a type at run time (plugins, tests), before schemas are looked up: it may move the
// table, invalidating pointers from find_layer_schema. Throws std::invalid_argument when the
// type exists. unregister_layer_schema removes one (tests); false when it was not there.
void register_layer_schema(LayerSchema schema);
bool unregister_layer_schema(std::string_view type);

// ---- Layer attributes ------------------------------------------------------------------------
// "" when `n` inputs suit the layer type, else "add takes at least 2 inputs, got 1".
std::string check_input_count(const LayerSchema& schema, std::size_t n);
// For specs built in code: checks layer.type and layer.attrs against the registry, coerces
// values, fills defaults and checks the number of inputs and the layer's rule. Returns one
// line per problem ("kernel_size: required attribute is missing"); empty when the spec is fine.
std::vector<std::string> resolve_layer_attrs(LayerSpec& layer);

}  // namespace dl

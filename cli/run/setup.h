// From a validated Config to the objects a run needs: data splits, the model graph, the
// loss, the optimizer with its param groups and the LR scheduler. Shared by train, eval,
// validate and bench, so every subcommand builds exactly the same thing.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "configs/config.h"
#include "datasets/dataset.h"
#include "datasets/format.h"
#include "datasets/transforms.h"
#include "engine/graph/memory_estimate.h"
#include "engine/graph/model.h"
#include "engine/nn/loss_registry.h"
#include "engine/optim/optimizer.h"
#include "engine/sched/sched.h"

namespace dl::train {

// A ConfigError (exit code 2) about `path` of the config's file, for problems found after
// loading (the schema could not see them): a data option, a sampler, a transform's size.
ConfigError config_error(const Config& cfg, std::string path, std::string message, std::string hint = "");

// The config's data section as the format registry's arguments.
data::FormatArgs format_args(const Config& cfg);
// Opens the config's splits through its format (data.format) and carves val/test.
data::Splits open_data(const Config& cfg);
// What the training samples look like, from a header or the first sample only (cheap:
// `dltool validate`, `export` and `bench` use it without loading the data).
data::DatasetInfo peek_data(const Config& cfg);

// The pipeline a split's samples go through: data.augment (training only) + data.transforms.
data::TransformPipeline build_transforms(const DataSpec& data, bool training);
// The model's per-sample input shape: `raw` (a dataset's input_shape) through the transforms.
// An image shape that the training and evaluation pipelines map differently is a ConfigError
// (the model sees one shape). Shapes that are not images ([F], [T]) pass unchanged.
Shape model_input_shape(const Config& cfg, const Shape& raw);

// What a model is built for, from the data: its input "input" (the per-sample shape after the
// transforms, model_input_shape; I64 for token ids, else F32 as the transforms make images and
// features) and the data's number of classes, which `num_classes` in a layer's attributes
// stands for (a text corpus's vocabulary size; 0 = unknown).
// Data whose inputs vary in length (DatasetInfo::variable_length: token sequences) also offer
// "input_lengths" (i64 per sample) as a second model input; a model that does not read it is
// built without it (GraphModel drops unread inputs).
struct ModelData {
  ModelInput input;
  int64_t num_classes = 0;
  bool input_lengths = false;
  std::vector<ModelInput> inputs() const;  // input, then input_lengths when offered
};
ModelData model_data(const Config& cfg, const data::DatasetInfo& info);
// The same from peek_data (no full load where the format can peek).
ModelData peek_model_data(const Config& cfg);
// The tensors of `batch` that `model` reads, in the order of its model_inputs(), on `device`:
// the batch's "input", and "input_lengths" (collate's, or the padded length for every sample
// when the batch's sequences all have one length and collate added none).
TensorList batch_model_inputs(const GraphModel& model, const data::Batch& batch, Device device);
// The same for a padded input batch x [N, T, ...] with `lengths` i64 [N] (undefined = T each).
TensorList model_inputs_of(const GraphModel& model, const Tensor& x, const Tensor& lengths);

// The config's model with every `num_classes` attribute (out_features: num_classes) replaced
// by `num_classes`; a ConfigError naming the node and key when the model uses it and
// num_classes is 0 (the data does not say how many classes it has).
ModelSpec resolve_model_spec(const Config& cfg, int64_t num_classes);

// A model that reads input_lengths from data without them (fixed-length inputs): ConfigError
// naming the node and the fix (GraphModel would only say the name is unknown).
void check_model_inputs(const Config& cfg, const ModelSpec& spec, const ModelData& data);
// Builds the model for `data`, initialised from `seed` (PyTorch-style default init), after its
// shape pass and check_memory_fits: nothing is allocated for a model that cannot fit.
std::shared_ptr<GraphModel> build_model(const Config& cfg, const ModelData& data, uint64_t seed);
// A float input of `sample_shape` and no known number of classes.
std::shared_ptr<GraphModel> build_model(const Config& cfg, const Shape& sample_shape, uint64_t seed);

// The training memory estimate of the config's model (memory_estimate.h) at the config's batch
// sizes and optimizer, from the shape pass `nodes` (infer_model_shapes).
MemoryEstimate estimate_memory(const Config& cfg, const std::vector<NodeSummary>& nodes, const Shape& sample_shape);
// Throws ConfigError (exit 2) when the estimate exceeds the memory available on the config's
// device (available_memory): the bytes by part, the largest layers and the fix.
void check_memory_fits(const Config& cfg, const MemoryEstimate& estimate);

// loss(model output [N, C], batch target) -> 0-dim tensor: the registered loss
// (engine/nn/loss_registry.h). Class-index targets (i64 [N]) become its target as its
// ClassTarget says; float targets (regression, multi-hot) are passed as they are.
// A loss with roles {anchor, positive, negative} and no `loss.inputs` trains on in-batch
// triplets (mine_triplets) of the output rows, the output being embeddings [N, D].
// `outputs` are the values of loss_nodes(spec) from one forward pass: [0] the model's output,
// then the nodes `loss.inputs` names, which feed the loss's non-target roles in order.
// A sequence loss (LossDef::sequence_target, ctc_loss) takes the output [N, T, C] batch first
// as the model makes it, time-major [T, N, C] as log_probs, the padded targets [N, S] with
// their `lengths` and input lengths T for every sample.
struct LossLabels {
  Tensor labels;   // the batch's target, or its input (loss.target: input)
  Tensor lengths;  // i64 [N] of a padded sequence target (collate's target_lengths); else undefined
  LossLabels(Tensor labels, Tensor lengths = Tensor())  // NOLINT: implicit, a plain target converts
      : labels(std::move(labels)), lengths(std::move(lengths)) {}
  LossLabels to(Device d) const { return {labels.to(d), lengths.defined() ? lengths.to(d) : lengths}; }
};
using LossFn = std::function<Tensor(const std::vector<Tensor>& outputs, const LossLabels& labels)>;
LossFn build_loss(const LossSpec& spec);
// The nodes a batch's forward pass must return for the loss: "" (the output), then loss.inputs.
std::vector<std::string> loss_nodes(const LossSpec& spec);
// What a batch gives the loss as its labels: the batch's target (with its target_lengths when
// collate padded it), or its input (loss.target: input).
LossLabels loss_labels(const data::Batch& batch, bool target_is_input);
LossLabels loss_labels(const LossSpec& spec, const data::Batch& batch);
// Random padded label sequences for a sequence loss on outputs [T, C] per sample (dltool bench):
// `batch` sequences of T / 2 (at least 1) labels in [0, C), none the loss's blank; no lengths.
LossLabels random_sequence_labels(const LossSpec& spec, const Shape& output, int64_t batch, Generator& gen);
// A sequence loss needs data whose targets are sequences (TargetKind::sequence): ConfigError
// naming the loss, the data format and the fix otherwise.
void check_loss_data(const Config& cfg, const data::DatasetInfo& info);

// "In-batch triplets": for each sample i of a batch with class `labels`, the positive is the
// next sample after i (cyclically) with i's label and the negative the next sample after i
// with another label; an anchor without either is skipped. Deterministic (batch order only).
struct Triplets {
  std::vector<int64_t> anchor, positive, negative;  // row indices into the batch, same length
};
Triplets mine_triplets(const std::vector<int64_t>& labels);

// The loss target of `kind` for class `labels` and the model `output` [N, C]; float `labels`
// (a regression or multi-hot target) are returned as they are, in the output's dtype.
Tensor class_target(nn::ClassTarget kind, const Tensor& output, const Tensor& labels);

// Param groups from the config's globs over state_dict names (first match wins; the rest
// form the default group). A glob matching no parameter is a ConfigError naming it.
std::unique_ptr<optim::Optimizer> build_optimizer(const Config& cfg, nn::Module& model);

// `total_steps`: scheduler steps in the whole run (for T_max: auto).
std::unique_ptr<sched::LRScheduler> build_scheduler(const Config& cfg, optim::Optimizer& opt,
                                                    int64_t total_steps);

// Glob match with `*` (any run of characters, dots included) and `?`.
bool glob_match(const std::string& pattern, const std::string& text);

}  // namespace dl::train

#include "cli/run/setup.h"

#include <filesystem>
#include <optional>

#include "engine/autograd/autograd.h"
#include "engine/ops.h"
#include "engine/optim/registry.h"
#include "engine/sched/registry.h"
#include "cli/run/trainer.h"

namespace dl::train {
namespace {


}  // namespace

bool glob_match(const std::string& p, const std::string& t) {
  // Iterative wildcard match with backtracking to the last '*'.
  size_t pi = 0, ti = 0, star = std::string::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == t[ti])) {
      ++pi;
      ++ti;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (star != std::string::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

ConfigError config_error(const Config& cfg, std::string path, std::string message, std::string hint) {
  Diagnostic d;
  d.loc.file = cfg.source_path;
  d.path = std::move(path);
  d.message = std::move(message);
  d.hint = std::move(hint);
  return ConfigError({d});
}

data::FormatArgs format_args(const Config& cfg) {
  const DataSpec& d = cfg.data;
  data::FormatArgs a;
  a.root = d.root;
  a.options = d.options;
  a.splits = d.splits;
  a.in_memory = d.in_memory;
  a.config_file = cfg.source_path;
  return a;
}

namespace {
data::SplitOptions split_options(const DataSpec& d) {
  return {d.val_size, d.val_fraction, d.test_fraction, static_cast<uint64_t>(d.split_seed)};
}
}  // namespace

data::Splits open_data(const Config& cfg) {
  try {
    data::Splits splits = data::open_splits(data::format_def(cfg.data.format), format_args(cfg), split_options(cfg.data));
    check_loss_data(cfg, splits.train->info());
    return splits;
  } catch (const std::invalid_argument& e) {
    // An option the schema could not check (a column that is not in the file, a split asked
    // for twice): a config problem, exit code 2.
    throw config_error(cfg, "data", e.what());
  }
}

data::DatasetInfo peek_data(const Config& cfg) {
  const data::FormatDef& f = data::format_def(cfg.data.format);
  data::DatasetInfo info = f.peek ? f.peek(format_args(cfg)) : f.open(format_args(cfg)).train->info();
  check_loss_data(cfg, info);
  return info;
}

data::TransformPipeline build_transforms(const DataSpec& d, bool training) {
  data::TransformPipeline t;
  if (training)
    for (const TransformSpec& ts : d.augment) t.add(ts.type, ts.attrs);
  for (const TransformSpec& ts : d.transforms) t.add(ts.type, ts.attrs);
  return t;
}

Shape model_input_shape(const Config& cfg, const Shape& raw) {
  if (raw.size() != 3) return raw;
  auto through = [&](bool training, const char* key) {
    try {
      return build_transforms(cfg.data, training).out_shape(raw);
    } catch (const std::invalid_argument& e) {
      throw config_error(cfg, key, std::string(e.what()) + " (the samples are " + shape_str(raw) + ")",
                         "fix the transform's size, or add a resize before it");
    }
  };
  const Shape train = through(true, "data.augment"), eval = through(false, "data.transforms");
  if (train != eval) {
    throw config_error(cfg, "data.augment",
                       "the training transforms make samples of shape " + shape_str(train) +
                           " but the evaluation transforms make " + shape_str(eval) + " (one model sees both)",
                       "give data.transforms a resize/center_crop to the training size");
  }
  return train;
}

ModelData model_data(const Config& cfg, const data::DatasetInfo& info) {
  ModelData d;
  d.input.shape = model_input_shape(cfg, info.input_shape);
  // Token ids stay i64 (no transform makes floats of them); images and features reach the
  // model as f32 (the transforms' to_float).
  if (info.input_dtype == DType::I64 && build_transforms(cfg.data, false).out_dtype(DType::I64) == DType::I64)
    d.input.dtype = DType::I64;
  d.num_classes = info.num_classes;
  d.input_lengths = info.variable_length;
  return d;
}

std::vector<ModelInput> ModelData::inputs() const {
  std::vector<ModelInput> v{input};
  if (input_lengths) v.push_back({std::string(kInputLengths), {}, DType::I64});
  return v;
}

TensorList model_inputs_of(const GraphModel& model, const Tensor& x, const Tensor& lengths) {
  TensorList out;
  for (const ModelInput& mi : model.model_inputs()) {
    if (mi.name == kModelInput) {
      out.push_back(x);
    } else if (mi.name == kInputLengths) {
      if (x.dim() < 2)
        throw std::invalid_argument("the model reads input_lengths but its input " + shape_str(x.shape()) +
                                    " has no sequence dimension");
      out.push_back(lengths.defined() ? lengths.to(x.device())
                                      : full({x.size(0)}, static_cast<double>(x.size(1)),
                                             TensorOptions{}.with_dtype(DType::I64).with_device(x.device())));
    } else {
      throw std::logic_error("model input '" + mi.name + "' has no source in a batch");
    }
  }
  return out;
}

TensorList batch_model_inputs(const GraphModel& model, const data::Batch& batch, Device device) {
  const Tensor* lengths = batch.tensors.find(kInputLengths);
  return model_inputs_of(model, batch.input().to(device), lengths ? *lengths : Tensor());
}

ModelData peek_model_data(const Config& cfg) { return model_data(cfg, peek_data(cfg)); }

ModelSpec resolve_model_spec(const Config& cfg, int64_t num_classes) {
  ModelSpec spec = cfg.model;
  for (LayerSpec& node : spec.nodes) {
    bool changed = false;
    for (auto& [key, value] : node.attrs) {
      int64_t* v = std::get_if<int64_t>(&value);
      if (!v || *v != kNumClassesAttr) continue;
      if (num_classes <= 0)
        throw config_error(cfg, "model", "node '" + node.name + "' (" + node.type + ", " + node.loc.str() + "): " + key +
                                             ": num_classes, but the data does not say how many classes it has",
                           "write the number");
      *v = num_classes;
      changed = true;
    }
    const LayerSchema* schema = changed ? find_layer_schema(node.type) : nullptr;
    if (schema && schema->rule)
      if (std::string problem = schema->rule(node.attrs); !problem.empty())
        throw config_error(cfg, "model", "node '" + node.name + "' (" + node.type + ") with num_classes = " +
                                             std::to_string(num_classes) + ": " + problem);
  }
  return spec;
}

void check_model_inputs(const Config& cfg, const ModelSpec& spec, const ModelData& data) {
  if (data.input_lengths) return;
  for (const LayerSpec& node : spec.nodes)
    for (const std::string& in : node.inputs)
      if (in == kInputLengths)
        throw config_error(cfg, "model",
                           "node '" + node.name + "' (" + node.type + ", " + node.loc.str() +
                               ") reads input_lengths, but data.format '" + cfg.data.format +
                               "' gives inputs of one length: its batches have no input_lengths",
                           "use data of variable-length sequences (data.format: text_classification), or "
                           "drop input_lengths from the node's inputs");
}

std::shared_ptr<GraphModel> build_model(const Config& cfg, const ModelData& data, uint64_t seed) {
  const ModelSpec spec = resolve_model_spec(cfg, data.num_classes);
  check_model_inputs(cfg, spec, data);
  check_memory_fits(cfg, estimate_memory(cfg, infer_model_shapes_of_inputs(spec, data.inputs()), data.input.shape));
  Generator gen(seed);
  return std::make_shared<GraphModel>(spec, gen, data.inputs());
}

std::shared_ptr<GraphModel> build_model(const Config& cfg, const Shape& sample_shape, uint64_t seed) {
  ModelData d;
  d.input.shape = sample_shape;
  return build_model(cfg, d, seed);
}

MemoryEstimate estimate_memory(const Config& cfg, const std::vector<NodeSummary>& nodes, const Shape& sample_shape) {
  MemoryEstimateOptions o;
  o.batch_size = cfg.data.loader.batch_size;
  o.eval_batch_size = loader_options(cfg, /*training=*/false).batch_size;
  o.optimizer_slots = optim::optimizer_def(cfg.optimizer.type).max_state_tensors;
  return estimate_training_memory(nodes, sample_shape, o);
}

void check_memory_fits(const Config& cfg, const MemoryEstimate& e) {
  std::optional<AvailableMemory> avail = available_memory(Device::parse(cfg.train.device));
  if (!avail || e.total() <= avail->bytes) return;
  std::string largest;
  for (size_t i = 0; i < e.layers.size() && i < 3; ++i)
    largest += (i ? ", " : "") + ("'" + e.layers[i].node + "' (" + e.layers[i].type + ") " + format_bytes(e.layers[i].bytes));
  Diagnostic d;
  d.loc.file = cfg.source_path;
  if (!e.layers.empty())
    if (const LayerSpec* node = cfg.model.find(e.layers.front().node); node && node->loc.line > 0) d.loc = node->loc;
  d.path = "model";
  d.message = "training this model needs about " + format_bytes(e.total()) + " (" + describe_parts(e) + "; " +
              std::to_string(e.num_params) + " parameters) but only " + format_bytes(avail->bytes) +
              " is available (" + avail->source + "); the largest layers: " + largest;
  d.hint = "make the largest layers smaller (out_features, out_channels, padding) or lower data.loader.batch_size; "
           "DLTOOL_MEMORY_LIMIT=none skips this check";
  throw ConfigError({d});
}

Tensor class_target(nn::ClassTarget kind, const Tensor& output, const Tensor& labels) {
  if (is_floating(labels.dtype())) return labels.dtype() == output.dtype() ? labels : labels.to(output.dtype());
  switch (kind) {
    case nn::ClassTarget::index:
      return labels;
    case nn::ClassTarget::one_hot:
      return one_hot(labels, output.size(1), output.dtype());
    case nn::ClassTarget::signed_one_hot:
      return add(mul(one_hot(labels, output.size(1), output.dtype()), 2.0), -1.0);
    case nn::ClassTarget::multilabel_index: {
      const int64_t n = labels.numel(), c = output.size(1);
      std::vector<int64_t> v(static_cast<size_t>(n * c), -1);
      std::vector<int64_t> lab = labels.to_vector<int64_t>();
      for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i * c)] = lab[static_cast<size_t>(i)];
      return from_vector(v, {n, c}).to(output.device());
    }
    case nn::ClassTarget::none:
      break;
  }
  throw std::invalid_argument("this loss takes no target made from class labels");
}

Triplets mine_triplets(const std::vector<int64_t>& labels) {
  Triplets t;
  const size_t n = labels.size();
  for (size_t i = 0; i < n; ++i) {
    std::optional<size_t> pos, neg;
    for (size_t k = 1; k < n && !(pos && neg); ++k) {
      const size_t j = (i + k) % n;
      if (labels[j] == labels[i]) {
        if (!pos) pos = j;
      } else if (!neg) {
        neg = j;
      }
    }
    if (!pos || !neg) continue;
    t.anchor.push_back(static_cast<int64_t>(i));
    t.positive.push_back(static_cast<int64_t>(*pos));
    t.negative.push_back(static_cast<int64_t>(*neg));
  }
  return t;
}

namespace {

// The loss on in-batch triplets of the output rows (flattened to embeddings [N, D]).
LossFn triplet_loss_fn(nn::LossFn fn, const std::string& name) {
  return [fn, name](const std::vector<Tensor>& outs, const LossLabels& y) {
    const Tensor& out = outs.front();
    const Tensor& labels = y.labels;
    const Triplets t = mine_triplets(labels.to(Device::cpu()).to_vector<int64_t>());
    // Evaluation's last batch may be too small to hold a triplet: it adds nothing to the loss.
    if (t.anchor.empty() && !grad_mode_enabled()) return zeros({}, out.options());
    if (t.anchor.empty())
      throw std::invalid_argument(name + " with in-batch triplets: the batch of " + std::to_string(labels.numel()) +
                                  " samples has no triplet (it needs two samples of one class and one of "
                                  "another); raise data.loader.batch_size (or set data.loader.drop_last "
                                  "if it is an epoch's short last batch)");
    const Tensor emb = out.dim() == 2 ? out : out.flatten(1);
    const int64_t m = static_cast<int64_t>(t.anchor.size());
    auto rows = [&](const std::vector<int64_t>& idx) {
      return index_select(emb, 0, from_vector(idx, {m}).to(out.device()));
    };
    return fn({rows(t.anchor), rows(t.positive), rows(t.negative)});
  };
}

// A sequence loss (ctc_loss) on the model's output [N, T, C] and the batch's padded targets.
LossFn sequence_loss_fn(nn::LossFn fn, const std::string& name) {
  return [fn, name](const std::vector<Tensor>& outs, const LossLabels& y) {
    const Tensor& out = outs.front();
    if (out.dim() != 3)
      throw std::invalid_argument(name + ": the model's output must be [N, T, C] log-probabilities (batch, time, "
                                  "classes; end the model with log_softmax over dim -1), got " +
                                  shape_str(out.shape()));
    const Tensor& targets = y.labels;
    if (targets.dtype() != DType::I64 || targets.dim() != 2 || targets.size(0) != out.size(0))
      throw std::invalid_argument(name + ": the batch's target must be padded label sequences i64 [N, S] with N = " +
                                  std::to_string(out.size(0)) + ", got " + dtype_name(targets.dtype()) + " " +
                                  shape_str(targets.shape()) + " (use data whose targets are sequences, e.g. "
                                  "data.format: fashion_strips)");
    const TensorOptions lengths_opt = TensorOptions{}.with_dtype(DType::I64).with_device(out.device());
    // collate adds target_lengths only when a batch's sequences differ in length.
    const Tensor target_lengths =
        y.lengths.defined() ? y.lengths : full({out.size(0)}, static_cast<double>(targets.size(1)), lengths_opt);
    const Tensor input_lengths = full({out.size(0)}, static_cast<double>(out.size(1)), lengths_opt);
    return fn({out.transpose(0, 1), targets, input_lengths, target_lengths});
  };
}

}  // namespace

LossLabels random_sequence_labels(const LossSpec& spec, const Shape& output, int64_t batch, Generator& gen) {
  const int64_t steps = output.size() == 2 ? output[0] : 1, classes = output.empty() ? 1 : output.back();
  const int64_t blank = attr_int(spec.attrs, "blank"), len = std::max<int64_t>(1, steps / 2);
  if (classes < 2)
    throw std::invalid_argument("loss '" + spec.type + "' needs outputs of at least 2 classes (blank + labels), got " +
                                shape_str(output));
  std::vector<int64_t> v(static_cast<size_t>(batch * len));
  for (auto& l : v) {
    l = static_cast<int64_t>(gen.next_u64() % static_cast<uint64_t>(classes - 1));
    l += l >= blank ? 1 : 0;  // skip the blank
  }
  return from_vector(v, {batch, len});
}

void check_loss_data(const Config& cfg, const data::DatasetInfo& info) {
  const nn::LossDef* def = nn::find_loss_def(cfg.loss.type);
  if (!def || !def->sequence_target || info.target_kind == data::TargetKind::sequence) return;
  throw config_error(cfg, "loss.type",
                     "loss '" + def->name + "' needs label sequences with their target_lengths, but data.format '" +
                         cfg.data.format + "' gives " + data::target_kind_name(info.target_kind) + " targets",
                     "use a data format with sequence targets (data.format: fashion_strips), or a classification "
                     "loss (cross_entropy)");
}

std::vector<std::string> loss_nodes(const LossSpec& spec) {
  std::vector<std::string> nodes = {""};
  nodes.insert(nodes.end(), spec.inputs.begin(), spec.inputs.end());
  return nodes;
}

LossLabels loss_labels(const data::Batch& batch, bool target_is_input) {
  if (target_is_input) return batch.input();
  const auto lengths = batch.tensors.find(std::string(data::kTarget) + "_lengths");
  return {batch.target(), lengths ? *lengths : Tensor()};
}

LossLabels loss_labels(const LossSpec& spec, const data::Batch& batch) {
  return loss_labels(batch, spec.target == "input");
}

LossFn build_loss(const LossSpec& spec) {
  const nn::LossDef& def = nn::loss_def(spec.type);
  nn::LossFn fn = nn::make_loss(def.name, spec.attrs);
  if (spec.inputs.empty() && def.inputs == std::vector<std::string>{"anchor", "positive", "negative"})
    return triplet_loss_fn(std::move(fn), def.name);
  if (def.sequence_target) {
    if (spec.inputs.size() > 1)
      throw std::invalid_argument("loss '" + def.name + "' takes 1 model output (log-probabilities [N, T, C]), "
                                  "loss.inputs names " + std::to_string(spec.inputs.size()));
    LossFn seq = sequence_loss_fn(std::move(fn), def.name);
    if (spec.inputs.empty()) return seq;
    return [seq](const std::vector<Tensor>& outs, const LossLabels& y) { return seq({outs.at(1)}, y); };
  }
  std::vector<bool> is_target;
  for (const std::string& r : def.inputs) is_target.push_back(r == "target");
  const size_t roles = static_cast<size_t>(std::count(is_target.begin(), is_target.end(), false));
  if (spec.inputs.empty() && roles != 1)
    throw std::invalid_argument("loss '" + def.name + "' takes " + std::to_string(roles) +
                                " model outputs; name the nodes in loss.inputs");
  if (!spec.inputs.empty() && spec.inputs.size() != roles)
    throw std::invalid_argument("loss '" + def.name + "' takes " + std::to_string(roles) + " model outputs, loss.inputs names " +
                                std::to_string(spec.inputs.size()));
  const nn::ClassTarget kind = def.class_target;
  const size_t first = spec.inputs.empty() ? 0 : 1;  // outputs[0] is the model's output
  return [fn, is_target, kind, first](const std::vector<Tensor>& outs, const LossLabels& y) {
    std::vector<Tensor> args;
    size_t next = first;
    for (bool t : is_target) args.push_back(t ? class_target(kind, outs[first], y.labels) : outs.at(next++));
    return fn(args);
  };
}

std::unique_ptr<optim::Optimizer> build_optimizer(const Config& cfg, nn::Module& model) {
  const OptimizerSpec& spec = cfg.optimizer;
  auto named = model.named_parameters();
  std::vector<optim::ParamGroup> groups(spec.param_groups.size());
  optim::ParamGroup rest;
  std::vector<bool> used(spec.param_groups.size(), false);
  for (auto& [name, p] : named) {
    bool placed = false;
    for (size_t g = 0; g < spec.param_groups.size() && !placed; ++g)
      for (const std::string& pat : spec.param_groups[g].params)
        if (glob_match(pat, name)) {
          groups[g].names.push_back(name);
          groups[g].params.push_back(p);
          used[g] = placed = true;
          break;
        }
    if (!placed) {
      rest.names.push_back(name);
      rest.params.push_back(p);
    }
  }
  const optim::OptimizerDef& def = optim::optimizer_def(spec.type);
  std::vector<Diagnostic> problems;
  for (size_t g = 0; g < groups.size(); ++g) {
    if (!used[g]) {
      std::string pats;
      for (const auto& p : spec.param_groups[g].params) pats += (pats.empty() ? "" : ", ") + p;
      Diagnostic d;
      d.loc.file = cfg.source_path;
      d.path = "optimizer.param_groups[" + std::to_string(g) + "].params";
      d.message = "no parameter matches [" + pats + "]";
      d.hint = "parameter names look like '" + (named.empty() ? std::string("0.weight") : named[0].first) + "'";
      problems.push_back(d);
    }
    groups[g].options = optim::to_options(def.hyper, spec.param_groups[g].hyper);
  }
  if (!problems.empty()) throw ConfigError(problems);
  // The default group goes first, like torch.optim built from model.parameters() + extra groups.
  const optim::Options defaults = optim::to_options(def.hyper, spec.hyper);
  std::vector<optim::ParamGroup> all;
  if (!rest.params.empty()) {
    rest.options = defaults;
    all.push_back(std::move(rest));
  }
  for (auto& g : groups) all.push_back(std::move(g));
  return def.make(std::move(all), defaults);
}

}  // namespace dl::train

namespace dl::train {

std::unique_ptr<sched::LRScheduler> build_scheduler(const Config& cfg, optim::Optimizer& opt,
                                                    int64_t total_steps) {
  return sched::make_scheduler(opt, cfg.scheduler, {std::max<int64_t>(total_steps, 1)});
}

}  // namespace dl::train

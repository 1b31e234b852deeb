#include "engine/train/setup.h"

#include <filesystem>

#include "datasets/idx.h"
#include "engine/ops.h"
#include "engine/train/trainer.h"

namespace dl::train {
namespace {

std::string join(const std::string& root, const std::string& file) {
  if (file.empty() || root.empty() || file.front() == '/') return file;
  return (std::filesystem::path(root) / file).string();
}

optim::Options hyper_options(const std::string& type, const OptimizerHyper& h) {
  optim::Options o{{"lr", h.lr}, {"weight_decay", h.weight_decay}};
  if (type == "sgd") {
    o["momentum"] = h.momentum;
    o["dampening"] = h.dampening;
    o["nesterov"] = h.nesterov ? 1.0 : 0.0;
  } else {
    if (h.betas.size() == 2) {
      o["beta1"] = h.betas[0];
      o["beta2"] = h.betas[1];
    }
    o["eps"] = h.eps;
    o["amsgrad"] = h.amsgrad ? 1.0 : 0.0;
  }
  return o;
}

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

data::IdxSplitSpec idx_spec(const DataSpec& d) {
  data::IdxSplitSpec s;
  s.train = {join(d.root, d.train.images), join(d.root, d.train.labels)};
  if (!d.test.images.empty()) s.test = {join(d.root, d.test.images), join(d.root, d.test.labels)};
  s.val_size = d.val_size;
  return s;
}

Shape sample_shape_from_headers(const DataSpec& d) {
  data::IdxSplitSpec s = idx_spec(d);
  data::IdxHeader h = data::read_idx_header(s.train.images, "training images");
  if (h.dims.size() == 3) return {1, h.dims[1], h.dims[2]};
  throw DataError(s.train.images + ": expected images of rank 3 [N, H, W], got rank " +
                  std::to_string(h.dims.size()));
}

data::TransformPipeline build_transforms(const DataSpec& d) {
  data::TransformPipeline t;
  for (const TransformSpec& ts : d.transforms) {
    if (ts.type == "to_float") {
      t.to_float(std::get<double>(ts.attrs.at("scale")));
    } else if (ts.type == "normalize") {
      t.normalize(std::get<std::vector<double>>(ts.attrs.at("mean")),
                  std::get<std::vector<double>>(ts.attrs.at("std")));
    } else {
      throw std::invalid_argument("unknown transform '" + ts.type + "'");
    }
  }
  return t;
}

std::shared_ptr<GraphModel> build_model(const Config& cfg, const Shape& sample_shape, uint64_t seed) {
  check_memory_fits(cfg, estimate_memory(cfg, infer_model_shapes(cfg.model, sample_shape), sample_shape));
  Generator gen(seed);
  return std::make_shared<GraphModel>(cfg.model, sample_shape, gen);
}

MemoryEstimate estimate_memory(const Config& cfg, const std::vector<NodeSummary>& nodes, const Shape& sample_shape) {
  MemoryEstimateOptions o;
  o.batch_size = cfg.data.loader.batch_size;
  o.eval_batch_size = loader_options(cfg, /*training=*/false).batch_size;
  const OptimizerSpec& opt = cfg.optimizer;
  if (opt.type == "sgd") {
    bool momentum = opt.momentum != 0;
    for (const ParamGroupSpec& g : opt.param_groups) momentum |= g.hyper.momentum != 0;
    o.optimizer_slots = momentum ? 1 : 0;
  } else {  // adam, adamw: exp_avg, exp_avg_sq (+ max_exp_avg_sq)
    bool amsgrad = opt.amsgrad;
    for (const ParamGroupSpec& g : opt.param_groups) amsgrad |= g.hyper.amsgrad;
    o.optimizer_slots = amsgrad ? 3 : 2;
  }
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

LossFn build_loss(const LossSpec& spec) {
  Reduction red = parse_reduction(spec.reduction);
  const std::string& t = spec.type;
  if (t == "cross_entropy") {
    double ls = spec.label_smoothing;
    int64_t ii = spec.ignore_index;
    return [=](const Tensor& x, const Tensor& y) { return cross_entropy(x, y, Tensor(), ii, red, ls); };
  }
  if (t == "nll_loss") {
    int64_t ii = spec.ignore_index;
    return [=](const Tensor& x, const Tensor& y) { return nll_loss(x, y, Tensor(), ii, red); };
  }
  // Regression / binary losses compare against one-hot targets of the logits' shape.
  auto onehot = [](const Tensor& x, const Tensor& y) { return one_hot(y, x.size(1), x.dtype()); };
  if (t == "mse_loss") return [=](const Tensor& x, const Tensor& y) { return mse_loss(x, onehot(x, y), red); };
  if (t == "l1_loss") return [=](const Tensor& x, const Tensor& y) { return l1_loss(x, onehot(x, y), red); };
  if (t == "smooth_l1_loss") {
    double beta = spec.beta;
    return [=](const Tensor& x, const Tensor& y) { return smooth_l1_loss(x, onehot(x, y), red, beta); };
  }
  if (t == "binary_cross_entropy")
    return [=](const Tensor& x, const Tensor& y) { return binary_cross_entropy(x, onehot(x, y), Tensor(), red); };
  if (t == "binary_cross_entropy_with_logits")
    return [=](const Tensor& x, const Tensor& y) {
      return binary_cross_entropy_with_logits(x, onehot(x, y), Tensor(), Tensor(), red);
    };
  throw std::invalid_argument("unknown loss type '" + t + "'");
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
    groups[g].options = hyper_options(spec.type, spec.param_groups[g].hyper);
  }
  if (!problems.empty()) throw ConfigError(problems);
  // The default group goes first, like torch.optim built from model.parameters() + extra groups.
  std::vector<optim::ParamGroup> all;
  if (!rest.params.empty()) {
    rest.options = hyper_options(spec.type, spec);
    all.push_back(std::move(rest));
  }
  for (auto& g : groups) all.push_back(std::move(g));
  std::string type = spec.type == "sgd" ? "SGD" : spec.type == "adam" ? "Adam" : "AdamW";
  return optim::make_optimizer(type, std::move(all), hyper_options(spec.type, spec));
}

}  // namespace dl::train

namespace dl::train {

std::unique_ptr<sched::LRScheduler> build_scheduler(const Config& cfg, optim::Optimizer& opt,
                                                    int64_t total_steps) {
  const SchedulerSpec& s = cfg.scheduler;
  if (s.type == "none" || s.type.empty()) return nullptr;
  if (s.type == "step") return std::make_unique<sched::StepLR>(opt, s.step_size, s.gamma);
  if (s.type == "multi_step") return std::make_unique<sched::MultiStepLR>(opt, s.milestones, s.gamma);
  if (s.type == "exponential") return std::make_unique<sched::ExponentialLR>(opt, s.gamma);
  if (s.type == "cosine_annealing") {
    int64_t t_max = s.T_max == SchedulerSpec::kAuto ? std::max<int64_t>(total_steps, 1) : s.T_max;
    return std::make_unique<sched::CosineAnnealingLR>(opt, t_max, s.eta_min);
  }
  if (s.type == "linear")
    return std::make_unique<sched::LinearLR>(opt, s.start_factor, s.end_factor, s.total_iters);
  if (s.type == "reduce_on_plateau") {
    sched::PlateauOptions p;
    p.mode = s.mode;
    p.factor = s.factor;
    p.patience = s.patience;
    p.threshold = s.threshold;
    p.threshold_mode = s.threshold_mode;
    p.cooldown = s.cooldown;
    p.min_lr = s.min_lr;
    return std::make_unique<sched::ReduceLROnPlateau>(opt, p);
  }
  throw std::invalid_argument("unknown scheduler type '" + s.type + "'");
}

}  // namespace dl::train

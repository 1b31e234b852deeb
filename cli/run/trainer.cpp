#include "cli/run/trainer.h"

#include <omp.h>

#include <csignal>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>

#include "datasets/data_error.h"
#include "engine/ops.h"
#include "engine/tensor/host_reads.h"
#include "cli/run/data_parallel.h"
#include "cli/run/restore_check.h"
#include "cli/run/signals.h"
#include "exporters/atomic_file.h"

namespace dl::train {
namespace {

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

std::string fmt(double v, int prec = 4) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(prec);
  os << v;
  return os.str();
}

// Optimizer steps of the whole run: epochs x batches, capped by max_steps. The product
// saturates at the int64 maximum (train.epochs may be that large; it wrapped to a negative
// total, and the run "finished" after 0 steps).
int64_t total_steps(const TrainSpec& ts, int64_t per_epoch) {
  const int64_t all = per_epoch > 0 && ts.epochs > std::numeric_limits<int64_t>::max() / per_epoch
                          ? std::numeric_limits<int64_t>::max()
                          : per_epoch * ts.epochs;
  return ts.max_steps > 0 ? std::min(ts.max_steps, all) : all;
}

// An epoch without a batch would train or evaluate nothing and still exit 0. Refused at setup:
// the train split with drop_last and fewer samples than batch_size is a config problem (exit
// code 2, with the fix), an empty test file a data problem (exit code 1, naming the file).
void check_epochs_have_batches(const Config& cfg, const data::Splits& splits, int64_t train_batches) {
  const LoaderSpec& l = cfg.data.loader;
  if (train_batches == 0) {
    const std::string n = std::to_string(splits.train->size()), bs = std::to_string(l.batch_size);
    throw ConfigError({{{cfg.source_path, 0, 0},
                        "data.loader",
                        "the train split has " + n + " samples, fewer than batch_size " + bs +
                            ", and drop_last: true drops that one incomplete batch, so an epoch "
                            "has no batches",
                        "lower data.loader.batch_size to at most " + n +
                            ", or set data.loader.drop_last: false"}});
  }
  for (const auto* split : {&splits.val, &splits.test})
    if (*split && (*split)->size() == 0)
      throw DataError("data." + (*split)->name() + " (" + cfg.data.format + " under '" + cfg.data.root +
                      "'): the " + (*split)->name() + " split has no samples, so evaluating it would average "
                      "over nothing (give it samples, or leave the split out)");
}

// Class indices the model has no output for would make the loss read out of bounds (or train a
// class that can never be predicted): refused before the first step. A loss whose target is the
// input (an autoencoder) reads no labels.
void check_classes_fit(const Config& cfg, const data::DatasetInfo& info, const Shape& output) {
  const nn::LossDef& loss = nn::loss_def(cfg.loss.type);
  const bool reads_classes = cfg.loss.target != "input" && loss.class_target != nn::ClassTarget::none &&
                             std::count(loss.inputs.begin(), loss.inputs.end(), "target") == 1;
  if (!reads_classes || info.target_kind != data::TargetKind::class_index || output.empty() ||
      info.num_classes <= output[0])
    return;
  throw DataError("the data has " + std::to_string(info.num_classes) + " classes (labels 0.." +
                  std::to_string(info.num_classes - 1) + ") but the model's output has " + std::to_string(output[0]) +
                  " values per sample (" + shape_str(output) + "); make the last layer of '" + cfg.source_path +
                  "' output " + std::to_string(info.num_classes) + " (out_features)");
}

// What the run's data looks like, written when the run directory is set up: classes.txt (the
// training split's class names, one per line in index order, as class_name_text escapes them;
// `eval` and `export` read them from the checkpoint) and, on a fresh run, the first training
// batch after the transforms as a TensorBoard image grid "data/train_batch" (what the model
// sees; images of 1 or 3 channels).
void log_data_outputs(const Config& cfg, const data::Splits& splits, const std::string& run_dir,
                      exporters::TensorBoardWriter& tb, bool resumed) {
  const data::DatasetInfo& info = splits.train->info();
  if (!info.class_names.empty()) {
    std::string text;
    for (const std::string& name : info.class_names) text += class_name_text(name) + "\n";
    write_file_atomic(run_dir + "/classes.txt", text);
  }
  if (resumed || info.input_shape.size() != 3) return;
  data::LoaderOptions lo = loader_options(cfg, /*training=*/true);
  lo.workers = 0;  // one batch: decoded here, in epoch 0's order with its augmentation
  lo.batch_size = std::min<int64_t>(lo.batch_size, 64);  // the grid shows at most 64: decode no more
  lo.drop_last = false;
  lo.sampler = build_sampler(cfg, *splits.train);
  data::DataLoader loader(splits.train, std::move(lo));
  loader.start_epoch(0);
  if (std::optional<data::Batch> b = loader.next(); b && b->input().dim() == 4 && (b->input().size(1) == 1 || b->input().size(1) == 3))
    tb.add_image_grid("data/train_batch", b->input(), 0);
}

}  // namespace

void set_num_threads(int64_t threads) {
  // The config bounds train.threads by kMaxThreads; "all cores" obeys the same bound.
  const int max = static_cast<int>(TrainSpec::kMaxThreads);
  if (threads < 0 || threads > max)
    throw std::invalid_argument("train.threads must be in [0, " + std::to_string(max) + "], got " +
                                std::to_string(threads));
  const int n = threads > 0 ? static_cast<int>(threads) : std::min(omp_get_num_procs(), max);
  omp_set_num_threads(n);
  // Start the OpenMP pool (which oneDNN shares) with the stop signals blocked, so they are only
  // ever delivered to the main thread, whose handler runs on an alternate stack (signals.h).
  block_stop_signals_in_new_threads([n] {
#pragma omp parallel num_threads(n)
    { (void)0; }
  });
}

int64_t threads_per_rank(int64_t threads, const dist::DistEnv& env) {
  if (threads > 0 || !env.distributed()) return threads;
  if (env.cpus_per_task > 0) return std::min<int64_t>(env.cpus_per_task, TrainSpec::kMaxThreads);
  return std::max(1, omp_get_num_procs() / std::max(1, env.local_world_size));
}

namespace {
// data.loader.pin_memory: "true" on a cpu device is a config error; auto = on for cuda. Only
// where a GPU is usable (commands such as export read a cuda config's data on a cpu machine).
bool pin_batches(const Config& cfg) {
  const std::string& pin = cfg.data.loader.pin_memory;
  const bool cuda = Device::parse(cfg.train.device).is_cuda();
  if (pin == "true" && !cuda)
    throw config_error(cfg, "data.loader.pin_memory",
                       "pinned memory only speeds up copies to a GPU, and train.device is '" + cfg.train.device + "'",
                       "set data.loader.pin_memory: auto (or false), or train.device: cuda");
  return pin != "false" && cuda && cuda_available();
}
}  // namespace

data::LoaderOptions loader_options(const Config& cfg, bool training) {
  data::LoaderOptions o;
  if (pin_batches(cfg))  // on the worker thread: the training loop's .to(cuda) is then asynchronous
    o.batch_hook = [](data::Batch& b) {
      for (auto& [name, t] : b.tensors.items()) t = t.pin_memory();
    };
  const LoaderSpec& l = cfg.data.loader;
  o.batch_size = training ? l.batch_size : std::max<int64_t>(l.batch_size, 500);
  o.shuffle = training && l.shuffle;
  o.drop_last = training && l.drop_last;
  o.seed = static_cast<uint64_t>(cfg.train.seed);
  o.workers = l.workers;
  o.prefetch = l.prefetch;
  o.transform = build_transforms(cfg.data, training);
  return o;
}

data::SamplerPtr build_sampler(const Config& cfg, const data::Dataset& train) {
  const SamplerSpec& s = cfg.data.loader.sampler;
  if (s.type.empty()) return nullptr;
  try {
    return data::make_sampler(s.type, s.attrs, train);
  } catch (const std::invalid_argument& e) {
    throw config_error(cfg, "data.loader.sampler", e.what());
  }
}

Trainer::Trainer(Config cfg, RunOptions options) : cfg_(std::move(cfg)), opt_(std::move(options)) {
  group_ = opt_.group ? opt_.group : dist::single_process_group();
  rank_ = group_->rank();
  world_ = group_->world_size();
  set_num_threads(threads_per_rank(cfg_.train.threads, opt_.dist_env));
  // One GPU per process: `cuda` (no index) on a data-parallel rank is the rank's local GPU.
  try {
    device_ = resolve_device(cfg_.train.device, world_ > 1 ? opt_.dist_env.local_rank : 0, cuda_device_count());
  } catch (const std::invalid_argument& e) {
    throw config_error(cfg_, "train.device", e.what());
  }
  if (device_.is_cuda() && !cuda_available())
    throw std::runtime_error("train.device is '" + cfg_.train.device +
                             "' but no CUDA device is available (set train.device=cpu)");
  manual_seed(static_cast<uint64_t>(cfg_.train.seed));
  splits_ = open_data(cfg_);
  model_ = build_model(cfg_, model_data(cfg_, splits_.train->info()), static_cast<uint64_t>(cfg_.train.seed));
  check_classes_fit(cfg_, splits_.train->info(), model_->output_shape());
  model_->to(device_);
  progress_ = std::make_unique<exporters::ProgressReporter>(main_rank() ? opt_.mode : exporters::ProgressReporter::Mode::quiet,
                                                            opt_.tty && main_rank(), main_rank() ? std::cout : null_stream());
  if (world_ > 1) setup_data_parallel_model();
  loss_fn_ = build_loss(cfg_.loss);
  loss_nodes_ = loss_nodes(cfg_.loss);
  optimizer_ = build_optimizer(cfg_, *model_);
  data::LoaderOptions lo = loader_options(cfg_, true);
  lo.sampler = build_sampler(cfg_, *splits_.train);
  if (world_ > 1) {
    // DistributedSampler: this rank's share of the epoch order the sampler (or shuffle) gives.
    const int64_t n = splits_.train->size();
    if (!lo.sampler) lo.sampler = lo.shuffle ? data::random_sampler(n) : data::sequential_sampler(n);
    lo.sampler = data::shard_sampler(lo.sampler, {rank_, world_});
  }
  train_loader_ = std::make_unique<data::DataLoader>(splits_.train, std::move(lo));
  check_epochs_have_batches(cfg_, splits_, train_loader_->batches_per_epoch());
  const TrainSpec& ts = cfg_.train;
  precision_ = amp::parse_precision(ts.precision);  // the schema allows only valid names
  amp::set_allow_tf32(precision_ == amp::Precision::TF32);
  try {
    step_fn_ = std::make_unique<TrainStep>(
        *optimizer_, StepOptions{ts.accumulate_steps, ts.clip_grad_norm, ts.clip_norm_type, ts.clip_grad_value,
                                 amp::autocast_dtype(precision_), opt_.defer_host_reads.value_or(device_.is_cuda())});
  } catch (const std::invalid_argument& e) {
    throw config_error(cfg_, "train", e.what());
  }
  const bool scale =
      ts.scaler_enabled == "true" || (ts.scaler_enabled == "auto" && precision_ == amp::Precision::FP16);
  if (scale) {
    try {
      scaler_ = std::make_unique<amp::GradScaler>(amp::GradScalerOptions{
          ts.scaler_init_scale, ts.scaler_growth_factor, ts.scaler_backoff_factor, ts.scaler_growth_interval, true});
      step_fn_->set_grad_scaler(scaler_.get());
    } catch (const std::invalid_argument& e) {
      throw config_error(cfg_, "train.grad_scaler", e.what());
    }
  }
  if (world_ > 1)  // first: the later before_update hooks see the averaged gradients
    ddp_ = attach_ddp(group_, *model_, *step_fn_, cfg_.train.bucket_cap_mb);
  if (ts.histogram_every > 0) {
    // Gradients are complete (accumulated, not yet clipped) just before the update.
    step_fn_->add_before_update([this] {
      if (!tensorboard_ || (step_ + 1) % cfg_.train.histogram_every != 0) return;
      for (auto& [name, p] : model_->named_parameters())
        if (p.grad().defined()) tensorboard_->add_histogram("grad/" + name, p.grad().detach(), step_ + 1);
    });
  }
  if (ts.ema_decay > 0) {
    ema_ = std::make_unique<optim::ExponentialMovingAverage>(*model_, ts.ema_decay);
    step_fn_->add_after_update([this] { ema_->update(*model_); });
  }
  const int64_t per_epoch = steps_per_epoch();
  const int64_t total = total_steps(cfg_.train, per_epoch);
  int64_t sched_total =  // epochs, rounded up without overflowing at the int64 maximum
      cfg_.scheduler.interval == "step" ? total : total / per_epoch + (total % per_epoch != 0);
  scheduler_ = build_scheduler(cfg_, *optimizer_, sched_total);
  if (opt_.write_outputs) run_dir_ = opt_.run_dir.empty() ? "runs/" + cfg_.name : opt_.run_dir;
  if (opt_.write_outputs && main_rank()) {
    std::filesystem::create_directories(run_dir_);
    write_file_atomic(run_dir_ + "/config.yaml", cfg_.resolved_yaml);
    checkpoints_ = std::make_unique<CheckpointManager>(run_dir_, cfg_.checkpoint);
    if (auto stale = checkpoints_->remove_stale_temps(); !stale.empty()) {
      std::string names;
      for (const auto& n : stale) names += (names.empty() ? "" : ", ") + n;
      progress_->message("removed " + std::to_string(stale.size()) + " temporary file(s) left in " +
                         checkpoints_->dir() + " by an interrupted save: " + names);
    }
  }
  pos_.best_metric = cfg_.checkpoint.best.metric;
  if (opt_.init_weights) {
    nn::LoadResult lr = apply_weights(*model_, *opt_.init_weights, opt_.strict, opt_.init_path, cfg_.source_path);
    std::ostringstream os;
    os << "initialised weights from " << opt_.init_path;
    if (!lr.missing_keys.empty()) {
      os << "; missing keys (kept their initialisation):";
      for (const auto& k : lr.missing_keys) os << " " << k;
    }
    if (!lr.unexpected_keys.empty()) {
      os << "; unexpected keys (ignored):";
      for (const auto& k : lr.unexpected_keys) os << " " << k;
    }
    progress_->message(os.str());
  }
  if (opt_.resume_from) restore(*opt_.resume_from, opt_.resume_path);
  if (opt_.write_outputs && main_rank()) {
    const std::string mpath = run_dir_ + "/" + exporters::MetricsWriter::kFileName;
    if (resumed_) truncate_metrics(mpath, step_);
    metrics_ = std::make_unique<exporters::MetricsWriter>(mpath);
    tensorboard_ = std::make_unique<exporters::TensorBoardWriter>(run_dir_);
    if (resumed_) tensorboard_->add_session_start(step_);
    log_data_outputs(cfg_, splits_, run_dir_, *tensorboard_, resumed_);
  }
}

int64_t Trainer::steps_per_epoch() const {
  const int64_t batches = train_loader_->batches_per_epoch(), acc = cfg_.train.accumulate_steps;
  return batches / acc + (batches % acc != 0);
}

bool Trainer::scheduler_per_step() const {
  return scheduler_ && cfg_.scheduler.interval == "step" && !scheduler_->needs_metric();
}

void Trainer::restore(const Checkpoint& c, const std::string& path) {
  const int64_t saved_world = check_world_size(c, path);
  // Everything is checked before anything is applied; what the engine still refuses (and does
  // not know the file of) is reported as a problem of this file.
  RestoreTarget target{cfg_, *optimizer_, scheduler_.get(), scheduler_per_step(), train_loader_->batches_per_epoch(),
                       cfg_.train.accumulate_steps};
  target.world_size_changed = saved_world != world_;
  RestoredState checked = check_restored_state(c, path, target);
  if (main_rank())
    for (const std::string& w : checked.warnings) std::cerr << "warning: " << w << "\n";
  apply_weights(*model_, c.model, /*strict=*/true, path, cfg_.source_path);
  try {
    optimizer_->load_state_dict(*c.optimizer);
    if (ema_) {
      if (c.ema.empty() || !checked.position.ema_updates)
        throw std::invalid_argument("train.ema_decay is set but the checkpoint holds no /ema weights (and "
                                    "/trainer ema_updates) to continue the average from");
      ema_->load_state_dict(c.ema, *checked.position.ema_updates);
    }
    if (scaler_) {
      // A checkpoint of a run without loss scaling starts the scale afresh (init_scale).
      if (checked.position.grad_scale)
        scaler_->load_state(static_cast<float>(*checked.position.grad_scale), *checked.position.grad_scaler_growth_tracker);
      else if (main_rank())
        std::cerr << "warning: " << path << " holds no loss-scaler state (/trainer grad_scaler.*): the scale starts at "
                  << scaler_->scale() << "\n";
    }
    if (scheduler_) scheduler_->load_state_dict(*c.scheduler);
    // Each rank continues its own stream; ranks a smaller run did not have continue rank 0's.
    restore_rng(rank_rng(c.rng, rank_ < saved_world ? rank_ : 0));
  } catch (const std::exception& e) {
    throw CheckpointError(path, "cannot resume from '" + path + "': " + e.what());
  }
  pos_ = checked.position;
  if (pos_.best_metric != cfg_.checkpoint.best.metric) {
    pos_.best_metric = cfg_.checkpoint.best.metric;
    pos_.best_value.reset();
  }
  if (saved_world != world_) {
    // Other shards and another global batch: continue at the same point of the epoch's order,
    // rounded up to a whole optimizer step.
    const LoaderSpec& l = cfg_.data.loader;
    const int64_t old_rank_batch = l.global_batch_size > 0 ? l.global_batch_size / saved_world : l.batch_size;
    const double seen = static_cast<double>(pos_.batch_in_epoch) * static_cast<double>(old_rank_batch * saved_world);
    const int64_t acc = cfg_.train.accumulate_steps;
    int64_t b = static_cast<int64_t>(std::ceil(seen / static_cast<double>(l.batch_size * world_)));
    b = (b + acc - 1) / acc * acc;
    pos_.batch_in_epoch = std::min(b, train_loader_->batches_per_epoch());
  }
  step_ = pos_.global_step;
  epoch_ = pos_.epoch;
  window_loss_ = pos_.window_loss;
  window_steps_ = pos_.window_steps;
  window_samples_ = pos_.window_samples;
  resumed_ = true;
  progress_->message("resumed from " + path + " at step " + std::to_string(step_) + " (epoch " +
                     std::to_string(epoch_ + 1) + ", batch " + std::to_string(pos_.batch_in_epoch) + ")");
}

namespace {

constexpr size_t kMaxPendingLosses = 1024;  // read at least this often, also without logging

std::string non_finite_loss(double loss, int64_t step, int64_t epoch) {
  std::ostringstream os;
  os << "loss is " << (std::isnan(loss) ? "NaN" : "infinite") << " at step " << step << " (epoch " << epoch
     << "): training stopped. Try a lower optimizer.lr, gradient clipping (train.clip_grad_norm), or check the data.";
  return os.str();
}

}  // namespace

void Trainer::read_pending_losses() {
  if (pending_losses_.empty()) return;
  std::vector<PendingLoss> pending;
  pending.swap(pending_losses_);
  std::vector<Tensor> values;
  values.reserve(pending.size());
  for (const PendingLoss& p : pending) values.push_back(p.value.reshape({1}).to(pending.front().value.dtype()));
  const std::vector<double> v = cat(values, 0).to_vector<double>();  // one read for all of them
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i]))
      throw NonFiniteLossError(non_finite_loss(v[i], pending[i].step, pending[i].epoch) + " (On " + device_.str() +
                               " the loss is read every train.log_every steps, so the steps up to " +
                               std::to_string(step_) + " ran after it.)");
    losses_.push_back(v[i]);
    window_loss_ += v[i];
  }
}

Checkpoint Trainer::make_checkpoint(bool finished) {
  read_pending_losses();  // the window's loss sum is saved
  Checkpoint c;
  c.config_yaml = cfg_.resolved_yaml;
  c.model = model_->state_dict();
  c.class_names = splits_.train->info().class_names;
  c.optimizer = optimizer_->state_dict();
  if (ema_) c.ema = ema_->state_dict();
  if (scheduler_) c.scheduler = scheduler_->state_dict();
  TrainerPosition p = pos_;
  p.epoch = epoch_;
  p.global_step = step_;
  data::LoaderState ls = train_loader_->state();
  p.batch_in_epoch = ls.epoch == epoch_ ? ls.batch_in_epoch : 0;
  p.loader_seed = ls.seed;
  p.window_loss = window_loss_;
  p.window_steps = window_steps_;
  p.window_samples = window_samples_;
  p.finished = finished;
  if (ema_) p.ema_updates = ema_->num_updates();
  if (scaler_) {
    p.grad_scale = scaler_->scale();
    p.grad_scaler_growth_tracker = scaler_->growth_tracker();
  }
  c.rng = capture_rng();
  if (world_ > 1) {
    // Every rank's loader position and RNG streams (rank 0's are the plain ones above).
    p.world_size = world_;
    const std::vector<RankState> all = gather_rank_states(*group_, {ls, c.rng});
    for (int r = 1; r < world_; ++r) {
      const RankState& st = all[static_cast<size_t>(r)];
      p.other_ranks.push_back({st.loader.epoch == epoch_ ? st.loader.batch_in_epoch : 0, st.loader.seed});
      for (const auto& [stream, bytes] : st.rng) c.rng["rank" + std::to_string(r) + "." + stream] = bytes;
    }
  }
  c.trainer = position_to_attrs(p);
  return c;
}

void Trainer::save_checkpoint_now(bool numbered, bool finished) {
  if (!opt_.write_outputs) return;  // (every rank: rank 0 has checkpoints_)
  Checkpoint c = make_checkpoint(finished);  // every rank: a collective when data-parallel
  std::string path;
  rank0_then_share(*group_, [&] { path = checkpoints_->save(c, step_, numbered); });
  progress_->message("checkpoint " + path + " (step " + std::to_string(step_) + ")");
}

void Trainer::update_best(const EvalResult& r) {
  // Every rank decides the same (the evaluation is reduced over the ranks).
  if (!opt_.write_outputs || pos_.best_metric.empty()) return;
  const std::string& m = pos_.best_metric;
  if (m.rfind(r.split + "/", 0) != 0) return;
  std::string name = m.substr(r.split.size() + 1);
  const std::optional<double> value = metric_value(r, name);
  if (!value) return;
  const double v = *value;
  if (std::isnan(v)) return;  // never "best" (and a resume refuses a NaN best_value)
  std::string mode = cfg_.checkpoint.best.mode;
  if (mode == "auto") mode = lower_is_better(name) ? "min" : "max";
  bool better = !pos_.best_value || (mode == "min" ? v < *pos_.best_value : v > *pos_.best_value);
  if (!better) return;
  pos_.best_value = v;
  Checkpoint c = make_checkpoint(false);
  rank0_then_share(*group_, [&] { checkpoints_->save_best(c); });
  progress_->message("best " + m + " " + fmt(v) + ": " + run_dir_ + "/checkpoints/best.h5");
}

Trainer::~Trainer() = default;

void Trainer::log_reconstructions(const std::string& split, const std::shared_ptr<const data::Dataset>& ds) {
  if (!tensorboard_ || cfg_.loss.target != "input") return;
  data::LoaderOptions lo = loader_options(cfg_, /*training=*/false);
  lo.workers = 0;
  lo.batch_size = std::min<int64_t>(lo.batch_size, 16);
  data::DataLoader loader(ds, std::move(lo));
  loader.start_epoch(0);
  std::optional<data::Batch> b = loader.next();
  auto is_images = [](const Tensor& t) { return t.dim() == 4 && (t.size(1) == 1 || t.size(1) == 3); };
  if (!b || !is_images(b->input())) return;
  Tensor out;
  {
    NoGradGuard no_grad;
    const bool was_training = model_->is_training();
    model_->eval();
    out = model_->forward(b->input().to(device_)).to(Device::cpu());
    model_->train(was_training);
  }
  if (!is_images(out)) return;
  tensorboard_->add_image_grid(split + "/inputs", b->input(), step_);
  tensorboard_->add_image_grid(split + "/reconstructions", out, step_);
}

EvalResult Trainer::evaluate(const std::string& split) {
  read_pending_losses();  // a NaN loss stops training before its model is evaluated
  auto ds = splits_.get(split);
  if (!ds) throw std::invalid_argument("the config has no " + split + " split");
  if (main_rank()) log_reconstructions(split, ds);
  EvalOptions eo = eval_options(cfg_, split, ds->info().num_classes);
  eo.group = group_.get();  // sharded over the ranks, reduced
  eo.device = device_;      // a data-parallel rank's own GPU
  eo.autocast = amp::autocast_dtype(precision_);
  eo.defer_host_reads = step_fn_->options().defer_host_reads;
  if (!ema_ || ema_->num_updates() == 0) return train::evaluate(*model_, loss_fn_, loss_nodes_, ds, eo);
  // The averaged weights are what a run with train.ema_decay evaluates (and what best.h5 ranks).
  ema_->apply_to(*model_);
  try {
    EvalResult r = train::evaluate(*model_, loss_fn_, loss_nodes_, ds, eo);
    ema_->restore(*model_);
    return r;
  } catch (...) {
    ema_->restore(*model_);
    throw;
  }
}

void Trainer::log_eval(const EvalResult& r, bool final) {
  exporters::EvalInfo e;
  e.split = r.split;
  e.step = step_;
  e.epoch = std::min<int64_t>(epoch_ + 1, cfg_.train.epochs);
  e.loss = r.loss;
  if (!r.regression && !r.sequence) e.accuracy = r.accuracy;
  if (r.sequence_accuracy) e.extra.emplace_back("sequence_accuracy", *r.sequence_accuracy);
  for (const auto& [name, v] : {std::pair{"mae", r.mae}, {"rmse", r.rmse}, {"r2", r.r2}})
    if (v) e.extra.emplace_back(name, *v);
  if (r.top_k_accuracy) {
    e.top_k = r.top_k;
    e.top_k_accuracy = r.top_k_accuracy;
  }
  if (r.knn_accuracy) e.extra.emplace_back("knn_accuracy", *r.knn_accuracy);
  if (r.bits_per_token) e.extra.emplace_back("bits_per_token", *r.bits_per_token);
  e.elapsed_s = now_s() - start_time_;
  e.final = final;
  progress_->log_eval(e);
  if (metrics_) metrics_->write(e);
  if (tensorboard_) {
    tensorboard_->add_scalar(r.split + "/loss", r.loss, step_);
    if (!r.regression && !r.sequence) tensorboard_->add_scalar(r.split + "/accuracy", r.accuracy, step_);
    for (const auto& [name, v] : e.extra) tensorboard_->add_scalar(r.split + "/" + name, v, step_);
    if (r.top_k_accuracy) tensorboard_->add_scalar(r.split + "/top" + std::to_string(r.top_k) + "_accuracy", *r.top_k_accuracy, step_);
  }
}

RunResult Trainer::run() {
  RunResult result;
  const TrainSpec& ts = cfg_.train;
  const int64_t batches = train_loader_->batches_per_epoch();
  const int64_t per_epoch = steps_per_epoch();
  const int64_t total = total_steps(ts, per_epoch);
  const int64_t epochs = ts.epochs;
  const bool step_sched = scheduler_per_step();
  std::optional<SignalGuard> signals;
  if (opt_.handle_signals) signals.emplace();
  start_time_ = now_s();
  progress_->begin(total, epochs);
  std::ostringstream hello;
  hello << "training " << cfg_.name << ": " << model_->num_parameters() << " parameters, "
        << splits_.train->size() << " training samples, " << per_epoch << " steps/epoch";
  if (ts.accumulate_steps > 1) hello << " (" << ts.accumulate_steps << " batches each)";
  hello << ", " << omp_get_max_threads() << " thread(s)" << (world_ > 1 ? " per rank" : "") << ", " << device_.str();
  hello << ", precision " << amp::precision_name(precision_);
  if (precision_ == amp::Precision::TF32 && !device_.is_cuda()) hello << " (= fp32 on the CPU)";
  if (auto low = amp::autocast_dtype(precision_)) hello << " (autocast " << dtype_name(*low) << ", f32 weights)";
  if (scaler_) hello << ", loss scale " << scaler_->scale();
  if (!run_dir_.empty()) hello << ", run dir " << run_dir_;
  progress_->message(hello.str());

  double window_time = 0;
  int64_t total_samples = 0;
  bool done = step_ >= total;
  bool first_epoch = true;
  double t_last = now_s();
  model_->train();
  // A GPU run reads the losses every log_every steps (read_pending_losses), and the loss ops
  // defer their target checks to those reads.
  const bool deferred = step_fn_->options().defer_host_reads;
  DeferChecksGuard defer_checks(deferred);

  // After every optimizer step: scheduler, logging, evaluation, checkpoints, signals. Returns
  // false when a signal stopped the run (result filled in).
  auto after_step = [&]() -> bool {
    if (step_sched) scheduler_->step();
    ++step_;
    if (ts.log_every > 0 && (step_ % ts.log_every == 0 || step_ == total)) {
      read_pending_losses();
      exporters::StepInfo s;
      s.step = step_;
      s.epoch = epoch_ + 1;
      // The mean over every rank's batches (each rank's window has the same number of batches).
      s.loss = window_steps_ > 0 ? mean_over_ranks(*group_, window_loss_) / static_cast<double>(window_steps_) : 0.0;
      s.lr = optimizer_->param_groups()[0].get("lr");
      s.samples_per_s = window_time > 0 ? static_cast<double>(window_samples_ * world_) / window_time : 0;
      s.elapsed_s = now_s() - start_time_;
      progress_->log_step(s);
      if (metrics_) metrics_->write(s);
      if (tensorboard_) {
        tensorboard_->add_scalar("train/loss", s.loss, step_);
        const auto& groups = optimizer_->param_groups();
        tensorboard_->add_scalar("train/lr", s.lr, step_);
        for (size_t g = 1; g < groups.size(); ++g)
          tensorboard_->add_scalar("train/lr_group" + std::to_string(g), groups[g].get("lr"), step_);
        if (const Tensor& norm = step_fn_->last_grad_norm(); norm.defined())
          tensorboard_->add_scalar("train/grad_norm", norm.item(), step_);
      }
      window_loss_ = window_time = 0;
      window_steps_ = window_samples_ = 0;
    }
    if (tensorboard_ && ts.histogram_every > 0 && step_ % ts.histogram_every == 0)
      for (auto& [name, p] : model_->named_parameters()) tensorboard_->add_histogram("weight/" + name, p.detach(), step_);
    if (ts.eval_every > 0 && step_ % ts.eval_every == 0 && splits_.val) {
      result.val = evaluate("val");
      log_eval(*result.val, false);
      update_best(*result.val);
      step_metric_scheduler(*result.val);
      t_last = now_s();
    }
    if (step_ >= total) done = true;
    if (!done && cfg_.checkpoint.every_steps > 0 && step_ % cfg_.checkpoint.every_steps == 0) {
      save_checkpoint_now(/*numbered=*/true, false);
      t_last = now_s();
    }
    if (opt_.on_step) opt_.on_step(step_);
    // Ranks stop after the same step: the first signal any rank received (max over ranks).
    if (int sig = agreed_signal(*group_, SignalGuard::pending()); sig != 0 && !done) {
      // Finish here: the step is complete, write last.h5 and tell the scheduler to requeue.
      progress_->message(signal_name(sig) + " received at step " + std::to_string(step_));
      save_checkpoint_now(false, false);
      if (sig == SIGUSR1 && (opt_.requeue || cfg_.train.requeue) && world_ > 1) {
        // A requeue kills the job step while the ranks are still leaving MPI; slurmstepd was
        // seen to hang in PMIx_server_finalize then, and the requeued job could not start.
        progress_->message("requeue: not from inside a data-parallel job step (SLURM would kill the ranks while they "
                           "exit); requeue from the batch script after srun returns, as "
                           "recipes/slurm/train_ddp.sbatch does");
      } else if (sig == SIGUSR1 && (opt_.requeue || cfg_.train.requeue)) {
        std::string id = slurm_requeue_id();
        if (id.empty()) {
          progress_->message("requeue requested but SLURM_JOB_ID is not set: not requeued");
        } else {
          bool ok = false;
          progress_->message(slurm_requeue(id, &ok));
        }
      }
      progress_->end();
      if (tensorboard_) tensorboard_->flush();
      read_pending_losses();  // also without a run directory (no checkpoint read them)
      result.losses = losses_;
      result.steps = step_;
      result.exit_code = 75;
      result.stop_signal = sig;
      return false;
    }
    return true;
  };

  for (; epoch_ < epochs && !done; ++epoch_) {
    if (resumed_ && first_epoch) {
      train_loader_->set_state({epoch_, pos_.batch_in_epoch, pos_.loader_seed});
    } else {
      train_loader_->start_epoch(epoch_);
    }
    first_epoch = false;
    t_last = now_s();
    while (!done) {
      auto batch = train_loader_->next();
      if (!batch) break;
      const TensorList x = batch_model_inputs(*model_, *batch, device_);
      const LossLabels y = loss_labels(cfg_.loss, *batch).to(device_);
      StepResult r;
      try {
        r = step_fn_->run([&] { return loss_fn_(model_->forward_nodes(x, loss_nodes_), y); });
      } catch (const OutOfMemoryError& e) {  // the batch size is what a user changes first
        throw e.with_context("training step " + std::to_string(step_ + 1) + ", a batch of " +
                             std::to_string(batch->size()) + " samples (data.loader.batch_size " +
                             std::to_string(cfg_.data.loader.batch_size) + ")");
      }
      if (deferred) {
        pending_losses_.push_back({r.loss_value, step_ + 1, epoch_ + 1});
        if (pending_losses_.size() >= kMaxPendingLosses) read_pending_losses();
      } else {
        if (!std::isfinite(r.loss)) throw NonFiniteLossError(non_finite_loss(r.loss, step_ + 1, epoch_ + 1));
        losses_.push_back(r.loss);
        window_loss_ += r.loss;
      }
      const int64_t bs = batch->size();
      double t_now = now_s();
      double dt = t_now - t_last;
      t_last = t_now;
      result.train_seconds += dt;
      window_time += dt;
      ++window_steps_;
      window_samples_ += bs;
      total_samples += bs;
      const bool last_batch = train_loader_->state().batch_in_epoch >= batches;
      bool updated = r.updated;
      if (!updated && last_batch) updated = step_fn_->flush();  // a short window ends the epoch
      if (updated && step_fn_->last_update_skipped()) {  // fp16 loss scaling: the scheduler still steps (PyTorch)
        std::ostringstream os;
        os << "step " << step_ + 1 << ": inf/NaN gradients, optimizer step skipped; loss scale now " << scaler_->scale();
        progress_->message(os.str());
      }
      if (updated && !after_step()) return result;
    }
    const bool epoch_complete = train_loader_->state().batch_in_epoch >= batches;
    if (!epoch_complete) break;  // stopped by max_steps inside this epoch
    if (ts.eval_every == TrainSpec::kEveryEpoch && splits_.val) {
      result.val = evaluate("val");
      log_eval(*result.val, false);
      update_best(*result.val);
      step_metric_scheduler(*result.val);
    }
    if (scheduler_ && !step_sched && !scheduler_->needs_metric()) scheduler_->step();
    result.epochs_done = epoch_ + 1;
    if (cfg_.checkpoint.every_epoch && epoch_ + 1 < epochs && !done) {
      ++epoch_;  // the checkpoint resumes at the start of the next epoch
      save_checkpoint_now(false, false);
      --epoch_;
    }
  }
  read_pending_losses();
  result.losses = losses_;
  result.steps = step_;
  result.samples_per_s = result.train_seconds > 0 ? static_cast<double>(total_samples * world_) / result.train_seconds : 0;
  save_checkpoint_now(false, /*finished=*/true);
  if (splits_.test && opt_.final_test) {
    result.test = evaluate("test");
    log_eval(*result.test, true);
  }
  if (tensorboard_) log_hparams(result);  // rank 0's writers only
  std::ostringstream bye;
  bye << "done: " << step_ << " steps in " << fmt(result.train_seconds, 1) << " s ("
      << fmt(result.samples_per_s, 0) << " samples/s)";
  if (result.test && result.test->regression)
    bye << ", test mae " << fmt(*result.test->mae) << " r2 " << fmt(*result.test->r2);
  else if (result.test && result.test->sequence_accuracy)
    bye << ", test sequence_accuracy " << fmt(*result.test->sequence_accuracy);
  else if (result.test)
    bye << ", test accuracy " << fmt(result.test->accuracy);
  progress_->message(bye.str());
  progress_->end();
  if (tensorboard_) tensorboard_->flush();
  return result;
}

void Trainer::log_hparams(const RunResult& r) {
  // TensorBoard's HParams tab: this run's settings beside its final metrics.
  exporters::HParams h;
  h.emplace_back("optimizer", cfg_.optimizer.type);
  for (const auto& [k, v] : cfg_.optimizer.hyper) {
    if (const double* d = std::get_if<double>(&v)) h.emplace_back("optimizer." + k, *d);
    else if (const int64_t* i = std::get_if<int64_t>(&v)) h.emplace_back("optimizer." + k, static_cast<double>(*i));
    else if (const bool* b = std::get_if<bool>(&v)) h.emplace_back("optimizer." + k, *b);
    else if (const std::string* str = std::get_if<std::string>(&v)) h.emplace_back("optimizer." + k, *str);
  }
  h.emplace_back("scheduler", cfg_.scheduler.type);
  h.emplace_back("loss", cfg_.loss.type);
  h.emplace_back("batch_size", static_cast<double>(cfg_.data.loader.batch_size));
  h.emplace_back("epochs", static_cast<double>(cfg_.train.epochs));
  h.emplace_back("accumulate_steps", static_cast<double>(cfg_.train.accumulate_steps));
  h.emplace_back("seed", static_cast<double>(cfg_.train.seed));
  std::vector<std::pair<std::string, double>> m;
  for (const auto* e : {&r.val, &r.test})
    if (*e) {
      m.emplace_back((*e)->split + "/loss", (*e)->loss);
      if ((*e)->regression)
        m.emplace_back((*e)->split + "/r2", *(*e)->r2);
      else if ((*e)->sequence_accuracy)
        m.emplace_back((*e)->split + "/sequence_accuracy", *(*e)->sequence_accuracy);
      else
        m.emplace_back((*e)->split + "/accuracy", (*e)->accuracy);
    }
  try {
    tensorboard_->add_hparams(h, m, step_);
  } catch (const std::exception& e) {
    progress_->message(std::string("TensorBoard hparams not written: ") + e.what());
  }
}

void Trainer::step_metric_scheduler(const EvalResult& val) {
  // Metric-driven schedulers (ReduceLROnPlateau) step after every validation, whatever the
  // interval: with eval_every N steps that is every N steps, with `epoch` once per epoch.
  if (!scheduler_ || !scheduler_->needs_metric()) return;
  const std::string& m = attr_string(cfg_.scheduler.attrs, "metric");
  scheduler_->step(m == "val/accuracy" ? val.accuracy : val.loss);
}

}  // namespace dl::train

#include "cli/run/restore_check.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "engine/graph/layer_schema.h"
#include "engine/optim/registry.h"
#include "engine/ops/random.h"

namespace dl::train {
namespace {

constexpr const char* kFix =
    " (the file is damaged or was edited: resume from another checkpoint, e.g. a step-N.h5 beside it, or start "
    "a new run from its weights with `dltool train CONFIG --init-from FILE`)";

std::string join(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none" : out;
}

template <class Map>
std::set<std::string> keys_of(const Map& m) {
  std::set<std::string> out;
  for (const auto& kv : m) out.insert(kv.first);
  return out;
}

bool is_int64(double v) { return v == std::trunc(v) && std::abs(v) < 9.2e18; }

std::string attr_where(const std::string& key, const std::string& group) {
  return "attribute '" + key + "' of " + group;
}

class Checker {
 public:
  explicit Checker(const std::string& path) : path_(path) {}

  [[noreturn]] void fail(const std::string& where, const std::string& problem) const {
    throw CheckpointError(path_, "cannot resume from '" + path_ + "': " + where + " " + problem + kFix);
  }

  // `v` against a config rule. A stored value is a number: booleans are 0/1, integers must be
  // integral, keywords (T_max: auto) do not apply, and for a list the rule of one element is used.
  void value(const std::string& where, double v, AttrSchema rule) const {
    rule.keywords.clear();
    rule.min_len = 0;
    rule.max_len = std::numeric_limits<size_t>::max();
    AttrValue av;
    if (rule.kind == AttrKind::Bool) {
      if (v != 0.0 && v != 1.0) fail(where, "is " + format_double(v) + ", expected 0 or 1 (false or true)");
      return;
    }
    if (rule.kind == AttrKind::Int || rule.kind == AttrKind::IntList || rule.kind == AttrKind::IntPair) {
      rule.kind = AttrKind::Int;
      if (!is_int64(v)) fail(where, "is " + format_double(v) + ", expected " + describe_expected(rule));
      av = static_cast<int64_t>(v);
    } else {
      rule.kind = AttrKind::Float;
      if (!std::isfinite(v)) fail(where, "is " + format_double(v) + ", expected " + describe_expected(rule) + ", finite");
      av = v;
    }
    if (!check_attr(rule, av).empty()) fail(where, "is " + format_attr(av) + ", expected " + describe_expected(rule));
  }

  // An integer counter in [lo, hi], stored as int64 or as an integral float64.
  int64_t integer(const std::string& where, const AttrScalar& a, int64_t lo, int64_t hi) const {
    int64_t v = 0;
    if (const auto* i = std::get_if<int64_t>(&a)) {
      v = *i;
    } else if (const auto* d = std::get_if<double>(&a)) {
      if (!is_int64(*d)) fail(where, "is " + format_double(*d) + ", expected " + range_text(lo, hi));
      v = static_cast<int64_t>(*d);
    } else {
      fail(where, "is a string, expected " + range_text(lo, hi));
    }
    if (v < lo || v > hi) fail(where, "is " + std::to_string(v) + ", expected " + range_text(lo, hi));
    return v;
  }
  int64_t integer(const std::string& where, double d, int64_t lo, int64_t hi) const {
    return integer(where, AttrScalar(d), lo, hi);
  }

  // A number stored as float64 or int64; NaN is always refused, infinity unless `allow_inf`.
  double number(const std::string& where, const AttrScalar& a, bool allow_inf) const {
    if (const auto* s = std::get_if<std::string>(&a)) fail(where, "is the string '" + *s + "', expected a number");
    const double v = std::holds_alternative<double>(a) ? std::get<double>(a) : static_cast<double>(std::get<int64_t>(a));
    if (std::isnan(v) || (!allow_inf && std::isinf(v)))
      fail(where, "is " + format_double(v) + (allow_inf ? ", expected a number or +-inf" : ", expected a finite number"));
    return v;
  }

  // Exactly the keys `want` (required ones all present, nothing unknown).
  void same_keys(const std::string& group, const std::set<std::string>& got, const std::set<std::string>& want,
                 const std::set<std::string>& optional = {}) const {
    for (const auto& k : want)
      if (!got.count(k) && !optional.count(k)) fail(group, "has no attribute '" + k + "'");
    for (const auto& k : got)
      if (!want.count(k)) fail(attr_where(k, group), "is unknown here (expected: " + join(want) + ")");
  }

 private:
  static std::string range_text(int64_t lo, int64_t hi) {
    if (hi == std::numeric_limits<int64_t>::max()) return "an integer >= " + std::to_string(lo);
    if (lo == hi) return std::to_string(lo);
    return "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  }
  std::string path_;
};

constexpr int64_t kMaxI64 = std::numeric_limits<int64_t>::max();

// The config rule for a stored optimizer option, or a plain "finite number" for one the config
// does not spell the same way.
AttrSchema optimizer_rule(const std::string& cfg_type, const std::string& key) {
  const std::string k = key == "initial_lr" ? "lr" : key;
  if (const optim::OptimizerDef* def = optim::find_optimizer_def(cfg_type))
    for (const AttrSchema& a : def->hyper)  // a list kept as scalars (betas -> beta1, beta2): its bounds
      if (a.name == k || std::find(a.components.begin(), a.components.end(), k) != a.components.end()) return a;
  return AttrSchema::floating(key);
}

AttrSchema scheduler_rule(const std::string& cfg_type, const std::string& key) {
  std::string k = key == "min_lrs" ? "min_lr" : key;
  if (const AttrSchema* s = find_hyper_schema("scheduler", cfg_type, k)) return *s;
  if (key == "eps") return AttrSchema::floating(key).at_least(0);  // ReduceLROnPlateau's, not in the config
  return AttrSchema::floating(key);
}

// ---- /trainer --------------------------------------------------------------------------------
// world_size and every other rank's loader position: ranks step in lockstep, so each rank<r>
// sits at rank 0's batch_in_epoch; nothing else of that form is accepted.
void check_ranks(const Checker& ck, const std::map<std::string, AttrScalar>& a, TrainerPosition& p) {
  const std::string g = "/trainer";
  auto it = a.find("world_size");
  p.world_size = it == a.end() ? 1 : ck.integer(attr_where("world_size", g), it->second, 1, 1 << 20);
  std::set<std::string> want;
  for (int64_t r = 1; r < p.world_size; ++r)
    for (const char* k : {"batch_in_epoch", "loader_seed"}) want.insert("rank" + std::to_string(r) + "." + k);
  for (const auto& [k, v] : a)
    if (k.rfind("rank", 0) == 0 && !want.count(k))
      ck.fail(attr_where(k, g), "is unknown here (a checkpoint of " + std::to_string(p.world_size) +
                                    " rank(s) has rank<r>.batch_in_epoch and rank<r>.loader_seed for r in 1.." +
                                    std::to_string(p.world_size - 1) + ")");
  for (int64_t r = 1; r < p.world_size; ++r) {
    const std::string pre = "rank" + std::to_string(r) + ".";
    for (const char* k : {"batch_in_epoch", "loader_seed"})
      if (!a.count(pre + k)) ck.fail(attr_where(pre + k, g), "is missing (every rank's loader position is stored)");
    TrainerPosition::RankPosition rp;
    rp.batch_in_epoch = ck.integer(attr_where(pre + "batch_in_epoch", g), a.at(pre + "batch_in_epoch"), 0, kMaxI64);
    if (rp.batch_in_epoch != p.batch_in_epoch)
      ck.fail(attr_where(pre + "batch_in_epoch", g), "is " + std::to_string(rp.batch_in_epoch) + " but rank 0's is " +
                                                         std::to_string(p.batch_in_epoch) + " (ranks step together)");
    rp.loader_seed = static_cast<uint64_t>(ck.integer(attr_where(pre + "loader_seed", g), a.at(pre + "loader_seed"),
                                                      std::numeric_limits<int64_t>::min(), kMaxI64));
    p.other_ranks.push_back(rp);
  }
}

TrainerPosition check_trainer(const Checker& ck, const std::map<std::string, AttrScalar>& a, const RestoreTarget& t) {
  const std::string g = "/trainer";
  TrainerPosition sample;
  sample.best_value = 0.0;
  sample.ema_updates = 0;
  sample.grad_scale = 1.0;
  sample.grad_scaler_growth_tracker = 0;
  // A data-parallel run's attributes (world_size, rank<r>.*) are checked by check_ranks.
  std::map<std::string, AttrScalar> plain;
  for (const auto& [k, v] : a)
    if (k != "world_size" && k.rfind("rank", 0) != 0) plain.emplace(k, v);
  ck.same_keys(g, keys_of(plain), keys_of(position_to_attrs(sample)), {"best_metric", "best_value", "ema_updates", "grad_scaler.scale", "grad_scaler.growth_tracker"});
  auto at = [&](const char* k) -> const AttrScalar& { return a.at(k); };
  auto where = [&](const char* k) { return attr_where(k, g); };
  TrainerPosition p;
  // After a change of the number of ranks the epoch had another number of batches.
  const int64_t per_epoch = t.world_size_changed ? kMaxI64 : t.batches_per_epoch;
  p.epoch = ck.integer(where("epoch"), at("epoch"), 0, kMaxI64);
  p.batch_in_epoch = ck.integer(where("batch_in_epoch"), at("batch_in_epoch"), 0, per_epoch);
  p.global_step = ck.integer(where("global_step"), at("global_step"), 0, kMaxI64);
  const int64_t acc = std::max<int64_t>(t.accumulate_steps, 1);
  const int64_t steps_per_epoch = per_epoch / acc + (per_epoch % acc != 0);
  const int64_t steps_in_epoch = p.batch_in_epoch / acc + (p.batch_in_epoch % acc != 0);
  if (p.batch_in_epoch % acc != 0 && p.batch_in_epoch != per_epoch)
    ck.fail(where("batch_in_epoch"), "is " + std::to_string(p.batch_in_epoch) + ", inside an accumulation window of " +
                                         std::to_string(acc) + " batches (train.accumulate_steps); checkpoints are "
                                         "written after optimizer steps only");
  const __int128 expect = static_cast<__int128>(p.epoch) * steps_per_epoch + steps_in_epoch;
  if (expect != p.global_step && !t.world_size_changed)
    ck.fail(where("global_step"),
            "is " + std::to_string(p.global_step) + ", but epoch " + std::to_string(p.epoch) + " and batch_in_epoch " +
                std::to_string(p.batch_in_epoch) + " at " + std::to_string(per_epoch) + " batches per epoch" +
                (acc > 1 ? " and " + std::to_string(acc) + " batches per step" : std::string()) +
                " make it " + std::to_string(static_cast<int64_t>(std::min<__int128>(expect, kMaxI64))) +
                " (a changed data set, data.loader or train.accumulate_steps also breaks this)");
  p.loader_seed = static_cast<uint64_t>(ck.integer(where("loader_seed"), at("loader_seed"),
                                                   std::numeric_limits<int64_t>::min(), kMaxI64));
  // window_steps counts batches (micro-batches when accumulating) since the last log line.
  p.window_steps = ck.integer(where("window_steps"), at("window_steps"), 0,
                              static_cast<int64_t>(std::min<__int128>(static_cast<__int128>(p.global_step) * acc, kMaxI64)));
  const __int128 max_samples = static_cast<__int128>(p.window_steps) * t.cfg.data.loader.batch_size;
  p.window_samples = ck.integer(where("window_samples"), at("window_samples"), 0,
                                static_cast<int64_t>(std::min<__int128>(max_samples, kMaxI64)));
  p.window_loss = ck.number(where("window_loss"), at("window_loss"), /*allow_inf=*/false);
  p.finished = ck.integer(where("finished"), at("finished"), 0, 1) != 0;
  if (auto it = a.find("best_metric"); it != a.end()) {
    if (!std::holds_alternative<std::string>(it->second)) ck.fail(where("best_metric"), "should be a string");
    p.best_metric = std::get<std::string>(it->second);
  }
  // An evaluation loss may overflow to infinity; update_best never records NaN.
  if (auto it = a.find("best_value"); it != a.end()) p.best_value = ck.number(where("best_value"), it->second, true);
  if (auto it = a.find("ema_updates"); it != a.end())
    p.ema_updates = ck.integer(where("ema_updates"), it->second, 0, p.global_step);
  // The loss scaler's state: both or neither; the value ranges GradScaler::load_state accepts.
  const bool has_scale = a.count("grad_scaler.scale") != 0, has_tracker = a.count("grad_scaler.growth_tracker") != 0;
  if (has_scale != has_tracker)
    ck.fail(where(has_scale ? "grad_scaler.growth_tracker" : "grad_scaler.scale"),
            "is missing (grad_scaler.scale and grad_scaler.growth_tracker are stored together)");
  if (has_scale) {
    p.grad_scale = ck.number(where("grad_scaler.scale"), at("grad_scaler.scale"), /*allow_inf=*/false);
    if (!(*p.grad_scale > 0)) ck.fail(where("grad_scaler.scale"), "must be > 0, got " + std::to_string(*p.grad_scale));
    p.grad_scaler_growth_tracker = ck.integer(where("grad_scaler.growth_tracker"), at("grad_scaler.growth_tracker"), 0,
                                              std::max<int64_t>(t.cfg.train.scaler_growth_interval - 1, 0));
  }
  check_ranks(ck, a, p);
  return p;
}

// ---- /optimizer ------------------------------------------------------------------------------
void check_options(const Checker& ck, const std::string& group, const std::map<std::string, double>& got,
                   const optim::Options& want, const std::string& cfg_type) {
  ck.same_keys(group, keys_of(got), keys_of(want));
  for (const auto& [k, v] : got) ck.value(attr_where(k, group), v, optimizer_rule(cfg_type, k));
}

// An optimizer slot: floating point, the parameter's shape, finite (a NaN momentum would only
// surface steps later as a NaN loss that names no file).
void check_slot(const Checker& ck, const std::string& where, const Tensor& t, const Shape& param_shape) {
  if (!is_floating(t.dtype())) ck.fail(where, std::string("is ") + dtype_name(t.dtype()) + ", expected a floating-point tensor");
  if (t.shape() != param_shape)
    ck.fail(where, "has shape " + shape_str(t.shape()) + ", the parameter has " + shape_str(param_shape));
  const int64_t n = t.dtype() == DType::F32 || t.dtype() == DType::F64 ? t.numel() : 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = t.dtype() == DType::F32 ? static_cast<const float*>(t.raw_data())[i]
                                             : static_cast<const double*>(t.raw_data())[i];
    if (!std::isfinite(v))
      ck.fail(where, "holds " + format_double(v) + " at flat index " + std::to_string(i) + ", expected finite values");
  }
}

void check_optimizer(const Checker& ck, const std::optional<OptimizerState>& o, const RestoreTarget& t) {
  if (!o) ck.fail("/optimizer", "is missing: a resume needs the optimizer state");
  const optim::OptimizerState live = t.optimizer.state_dict();
  const std::string& cfg_type = t.cfg.optimizer.type;
  if (o->type != live.type)
    ck.fail(attr_where("type", "/optimizer"), "is '" + o->type + "', but the config's optimizer is " + live.type);
  check_options(ck, "/optimizer", o->defaults, live.defaults, cfg_type);
  if (o->param_groups.size() != live.param_groups.size())
    ck.fail("/optimizer/param_groups", "holds " + std::to_string(o->param_groups.size()) +
                                           " group(s), the config's optimizer has " +
                                           std::to_string(live.param_groups.size()) +
                                           " (optimizer.param_groups + the default group)");
  std::map<std::string, std::pair<size_t, Shape>> params;  // name -> (group, shape)
  const auto& live_groups = t.optimizer.param_groups();
  for (size_t gi = 0; gi < o->param_groups.size(); ++gi) {
    const std::string g = "/optimizer/param_groups/" + std::to_string(gi);
    const auto& want = live.param_groups[gi].names;
    const auto& got = o->param_groups[gi].names;
    if (got != want) {
      size_t i = 0;
      while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
      std::string detail =
          i < got.size() && i < want.size()
              ? "entry " + std::to_string(i) + " is '" + got[i] + "', the model's is '" + want[i] + "'"
              : std::to_string(got.size()) + " parameter(s), the model's group has " + std::to_string(want.size());
      ck.fail(attr_where("params", g), "does not list the model's parameters: " + detail);
    }
    check_options(ck, g, o->param_groups[gi].options, live.param_groups[gi].options, cfg_type);
    for (size_t i = 0; i < want.size(); ++i) params[want[i]] = {gi, live_groups[gi].params[i].shape()};
  }
  for (const auto& [name, st] : o->state) {
    const std::string g = "/optimizer/state/" + name;
    auto it = params.find(name);
    if (it == params.end()) ck.fail(g, "is the state of '" + name + "', which is not a parameter of the model");
    if (st.step < 0) ck.fail(attr_where("step", g), "is " + std::to_string(st.step) + ", expected an integer >= 0");
    std::vector<std::string> slots = t.optimizer.slot_names(o->param_groups[it->second.first].options);
    std::set<std::string> want(slots.begin(), slots.end());
    if (keys_of(st.slots) != want)
      ck.fail(g, "holds [" + join(keys_of(st.slots)) + "], " + live.type + " with these settings keeps [" +
                     join(want) + "]");
    for (const auto& [slot, tensor] : st.slots) check_slot(ck, g + "/" + slot, tensor, it->second.second);
  }
}

// ---- /scheduler ------------------------------------------------------------------------------
void check_scheduler(const Checker& ck, const std::optional<SchedulerState>& s, const RestoreTarget& t,
                     const TrainerPosition& pos) {
  if (!t.scheduler) {
    if (s) ck.fail("/scheduler", "holds a " + s->type + " state, but the config has no scheduler");
    return;
  }
  if (!s) ck.fail("/scheduler", "is missing, but the config has a scheduler (" + t.cfg.scheduler.type + ")");
  const sched::SchedulerState live = t.scheduler->state_dict();
  const std::string g = "/scheduler", cfg_type = t.cfg.scheduler.type;
  if (s->type != live.type)
    ck.fail(attr_where("type", g), "is '" + s->type + "', but the config's scheduler is " + live.type);
  std::set<std::string> got = keys_of(s->scalars), want = keys_of(live.scalars);
  for (const auto& k : keys_of(s->lists)) got.insert(k);
  for (const auto& k : keys_of(live.lists)) want.insert(k);
  ck.same_keys(g, got, want);
  for (const auto& k : keys_of(live.scalars))
    if (!s->scalars.count(k)) ck.fail(attr_where(k, g), "is a list, expected a single number");
  for (const auto& k : keys_of(live.lists))
    if (!s->lists.count(k)) ck.fail(attr_where(k, g), "is a single number, expected a list");

  // The counters, then every hyper-parameter with the config's rule.
  const double last = s->scalars.at("last_epoch");
  // Metric-driven schedulers step after every validation: once per epoch, or every eval_every steps.
  const bool per_eval = t.scheduler && t.scheduler->needs_metric() && t.cfg.train.eval_every != TrainSpec::kEveryEpoch;
  const int64_t stepped = per_eval ? pos.global_step / t.cfg.train.eval_every
                                   : t.scheduler_per_step ? pos.global_step : pos.epoch;
  if (!is_int64(last) || static_cast<int64_t>(last) != stepped)
    ck.fail(attr_where("last_epoch", g),
            "is " + format_double(last) + ", expected " + std::to_string(stepped) + ": the scheduler steps once per " +
                (t.scheduler_per_step ? "optimizer step and /trainer global_step is " : "epoch and /trainer epoch is ") +
                std::to_string(stepped));
  for (const auto& [k, v] : s->scalars) {
    const std::string w = attr_where(k, g);
    if (k == "last_epoch") continue;
    if (k == "_step_count") {
      ck.integer(w, v, 0, stepped + 1);
    } else if (k == "num_bad_epochs") {
      ck.integer(w, v, 0, kMaxI64);
    } else if (k == "cooldown_counter") {  // ReduceLROnPlateau: counts down from `cooldown`
      const double cooldown = s->scalars.count("cooldown") ? s->scalars.at("cooldown") : 0.0;
      ck.integer(w, v, 0, ck.integer(attr_where("cooldown", g), cooldown, 0, kMaxI64));
    } else if (k == "best") {  // ReduceLROnPlateau: +-inf until the first evaluation
      ck.number(w, v, /*allow_inf=*/true);
    } else {
      ck.value(w, v, scheduler_rule(cfg_type, k));
    }
  }
  const size_t groups = t.optimizer.param_groups().size();
  for (const auto& [k, list] : s->lists) {
    const std::string w = attr_where(k, g);
    const bool per_group = k == "base_lrs" || k == "_last_lr" || k == "min_lrs";
    if (per_group && list.size() != groups)
      ck.fail(w, "has " + std::to_string(list.size()) + " entries, expected one per param group (" +
                     std::to_string(groups) + ")");
    // base_lrs and _last_lr are learning rates: the optimizer's lr rule.
    AttrSchema rule = k == "base_lrs" || k == "_last_lr" ? optimizer_rule(t.cfg.optimizer.type, "lr")
                                                         : scheduler_rule(cfg_type, k);
    if (!per_group && (list.size() < rule.min_len || list.size() > rule.max_len))
      ck.fail(w, "has " + std::to_string(list.size()) + " entries, expected " + describe_expected(rule));
    for (size_t i = 0; i < list.size(); ++i) ck.value(w + " entry " + std::to_string(i), list[i], rule);
  }
}

// ---- /rng ------------------------------------------------------------------------------------
void check_rng(const Checker& ck, const std::map<std::string, std::vector<uint8_t>>& rng, const std::string& path,
               std::vector<std::string>& warnings) {
  if (!rng.count("cpu"))
    warnings.push_back(path + " has no /rng/cpu (random number generator state): dropout masks and other random "
                       "draws restart from train.seed, so this resume is not bit-identical to an uninterrupted run");
  const size_t state_bytes = default_generator(Device::cpu()).get_state().size();
  for (const auto& [name, bytes] : rng) {
    const std::string w = "/rng/" + name;
    // rank<r>.<device>: rank r's stream of a data-parallel run.
    std::string device = name;
    if (name.rfind("rank", 0) == 0 && name.find('.') != std::string::npos) device = name.substr(name.find('.') + 1);
    try {
      Device::parse(device);
    } catch (const std::exception&) {
      ck.fail(w, "is not named after a device (expected cpu, cuda:N or rank<r>.cpu)");
    }
    if (bytes.size() != state_bytes)
      ck.fail(w, "holds " + std::to_string(bytes.size()) + " bytes, expected " + std::to_string(state_bytes) +
                     " (a generator's seed and offset)");
  }
}

}  // namespace

RestoredState check_restored_state(const Checkpoint& c, const std::string& path, const RestoreTarget& t) {
  Checker ck(path);
  RestoredState out;
  if (c.trainer.empty()) ck.fail("/trainer", "is missing: a resume needs the training position");
  out.position = check_trainer(ck, c.trainer, t);
  check_optimizer(ck, c.optimizer, t);
  check_scheduler(ck, c.scheduler, t, out.position);
  check_rng(ck, c.rng, path, out.warnings);
  return out;
}

}  // namespace dl::train

#include "cli/run/checkpointing.h"

#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/ops/random.h"
#include "exporters/atomic_file.h"

namespace fs = std::filesystem;

namespace dl::train {

// ---- /trainer ----------------------------------------------------------------------------
std::map<std::string, AttrScalar> position_to_attrs(const TrainerPosition& p) {
  std::map<std::string, AttrScalar> a;
  a["epoch"] = p.epoch;
  a["global_step"] = p.global_step;
  a["batch_in_epoch"] = p.batch_in_epoch;
  a["loader_seed"] = static_cast<int64_t>(p.loader_seed);
  a["window_loss"] = p.window_loss;
  a["window_steps"] = p.window_steps;
  a["window_samples"] = p.window_samples;
  a["best_metric"] = p.best_metric;
  if (p.best_value) a["best_value"] = *p.best_value;
  a["finished"] = static_cast<int64_t>(p.finished);
  if (p.ema_updates) a["ema_updates"] = *p.ema_updates;
  if (p.grad_scale) a["grad_scaler.scale"] = *p.grad_scale;
  if (p.grad_scaler_growth_tracker) a["grad_scaler.growth_tracker"] = *p.grad_scaler_growth_tracker;
  if (p.world_size > 1) {
    a["world_size"] = p.world_size;
    for (size_t i = 0; i < p.other_ranks.size(); ++i) {
      const std::string r = "rank" + std::to_string(i + 1) + ".";
      a[r + "batch_in_epoch"] = p.other_ranks[i].batch_in_epoch;
      a[r + "loader_seed"] = static_cast<int64_t>(p.other_ranks[i].loader_seed);
    }
  }
  return a;
}

std::map<std::string, std::vector<uint8_t>> rank_rng(const std::map<std::string, std::vector<uint8_t>>& rng, int rank) {
  std::map<std::string, std::vector<uint8_t>> out;
  const std::string prefix = "rank" + std::to_string(rank) + ".";
  for (const auto& [name, bytes] : rng) {
    const bool ranked = name.rfind("rank", 0) == 0;
    if (rank == 0 && !ranked) out[name] = bytes;
    if (rank > 0 && name.rfind(prefix, 0) == 0) out[name.substr(prefix.size())] = bytes;
  }
  return out;
}

nn::LoadResult apply_weights(nn::Module& model, const StateDict& weights, bool strict, const std::string& path,
                             const std::string& config_path) {
  try {
    return model.load_state_dict(weights, strict);
  } catch (const std::exception& e) {
    throw CheckpointError(path, "cannot load the weights of '" + path + "' into the model of " + config_path + ": " +
                                    e.what() + "\n(use the config the checkpoint was trained with — eval and export use "
                                    "the checkpoint's own config when no --config is given — or, for train --init-from, "
                                    "--no-strict to load only the keys that match)");
  }
}

// ---- /rng ------------------------------------------------------------------------------------
std::map<std::string, std::vector<uint8_t>> capture_rng() {
  std::map<std::string, std::vector<uint8_t>> rng;
  rng["cpu"] = default_generator(Device::cpu()).get_state();
  for (int i = 0; i < cuda_device_count(); ++i) rng[Device::cuda(i).str()] = default_generator(Device::cuda(i)).get_state();
  return rng;
}

void restore_rng(const std::map<std::string, std::vector<uint8_t>>& rng) {
  for (const auto& [name, state] : rng) {
    Device d = Device::parse(name);
    if (d.is_cuda() && d.index >= cuda_device_count()) {
      // Saved on a GPU machine, resumed without that GPU: the CUDA stream is unused here.
      continue;
    }
    default_generator(d).set_state(state);
  }
}

// ---- config comparison on resume -------------------------------------------------------------
namespace {

void flatten(const YAML::Node& n, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (n.IsMap()) {
    for (const auto& kv : n) flatten(kv.second, prefix.empty() ? kv.first.as<std::string>() : prefix + "." + kv.first.as<std::string>(), out);
  } else if (n.IsSequence()) {
    if (n.size() == 0) out[prefix] = "[]";
    for (size_t i = 0; i < n.size(); ++i) flatten(n[i], prefix + "[" + std::to_string(i) + "]", out);
  } else if (n.IsScalar()) {
    out[prefix] = n.Scalar();
  } else {
    out[prefix] = "~";
  }
}

bool applied_on_resume(const std::string& key) {
  static const char* kApplied[] = {"name", "train.epochs", "train.max_steps", "train.log_every", "train.eval_every",
                                   "train.threads", "train.device", "train.requeue", "train.dist_backend", "train.dist_timeout",
                                   "train.bucket_cap_mb", "checkpoint", "metrics",
                                   "data.loader.prefetch", "data.loader.workers", "data.in_memory"};
  for (const char* p : kApplied) {
    std::string s(p);
    if (key == s || key.rfind(s + ".", 0) == 0 || key.rfind(s + "[", 0) == 0) return true;
  }
  return false;
}

}  // namespace

std::vector<std::string> compare_resume_configs(const std::string& saved_yaml, const std::string& new_yaml,
                                                std::vector<std::string>& applied) {
  std::map<std::string, std::string> a, b;
  flatten(YAML::Load(saved_yaml), "", a);
  flatten(YAML::Load(new_yaml), "", b);
  std::vector<std::string> refused;
  std::vector<std::string> keys;
  for (const auto& [k, v] : a) keys.push_back(k);
  for (const auto& [k, v] : b)
    if (!a.count(k)) keys.push_back(k);
  for (const std::string& k : keys) {
    auto ia = a.find(k), ib = b.find(k);
    std::string va = ia == a.end() ? "(absent)" : ia->second, vb = ib == b.end() ? "(absent)" : ib->second;
    if (va == vb) continue;
    std::string line = k + ": checkpoint " + va + ", now " + vb;
    (applied_on_resume(k) ? applied : refused).push_back(line);
  }
  return refused;
}

// ---- files -----------------------------------------------------------------------------------
CheckpointManager::CheckpointManager(std::string run_dir, CheckpointSpec spec)
    : dir_(std::move(run_dir) + "/checkpoints"), spec_(std::move(spec)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw CheckpointError(dir_, "cannot create the checkpoint directory: " + ec.message());
}

std::string CheckpointManager::save(const Checkpoint& ckpt, int64_t step, bool numbered) {
  const std::string last = last_path();
  if (!numbered) {
    save_checkpoint(last, ckpt);
    return last;
  }
  const std::string path = dir_ + "/step-" + std::to_string(step) + ".h5";
  save_checkpoint(path, ckpt);
  // last.h5 becomes a second name of the same (complete) file: link + atomic rename.
  const std::string tmp = last + ".link.tmp";
  ::unlink(tmp.c_str());
  if (::link(path.c_str(), tmp.c_str()) == 0 && ::rename(tmp.c_str(), last.c_str()) == 0) {
    sync_directory(dir_);
  } else {
    ::unlink(tmp.c_str());
    save_checkpoint(last, ckpt);
  }
  if (spec_.keep_last > 0) {
    std::vector<std::pair<int64_t, fs::path>> steps;
    for (const auto& e : fs::directory_iterator(dir_)) {
      std::string n = e.path().filename().string();
      if (n.rfind("step-", 0) == 0 && n.size() > 8 && n.substr(n.size() - 3) == ".h5") {
        try {
          steps.emplace_back(std::stoll(n.substr(5, n.size() - 8)), e.path());
        } catch (const std::exception&) {
        }
      }
    }
    std::sort(steps.begin(), steps.end());
    for (size_t i = 0; i + static_cast<size_t>(spec_.keep_last) < steps.size(); ++i) fs::remove(steps[i].second);
  }
  return path;
}

void CheckpointManager::save_best(const Checkpoint& ckpt) { save_checkpoint(best_path(), ckpt); }

namespace {
// "step-<digits>.h5" (what save() names numbered checkpoints).
bool is_step_name(const std::string& n) {
  return n.size() > 8 && n.rfind("step-", 0) == 0 && n.compare(n.size() - 3, 3, ".h5") == 0 &&
         std::all_of(n.begin() + 5, n.end() - 3, [](unsigned char c) { return std::isdigit(c); });
}
}  // namespace

std::vector<std::string> CheckpointManager::remove_stale_temps() const {
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string n = e.path().filename().string();
    const std::string base = n.size() > 4 && n.compare(n.size() - 4, 4, ".tmp") == 0 ? n.substr(0, n.size() - 4) : "";
    const bool ours = base == "last.h5" || base == "best.h5" || base == "last.h5.link" || is_step_name(base);
    std::error_code rm;
    if (ours && e.is_regular_file(rm) && fs::remove(e.path(), rm)) removed.push_back(n);
  }
  std::sort(removed.begin(), removed.end());
  return removed;
}

std::string resolve_checkpoint_path(const std::string& p) {
  std::error_code ec;
  if (fs::is_directory(p, ec)) {
    for (const std::string& cand : {p + "/checkpoints/last.h5", p + "/last.h5"})
      if (fs::exists(cand)) return cand;
    throw CheckpointError(p, "no checkpoint found: expected " + p + "/checkpoints/last.h5");
  }
  if (!fs::exists(p, ec)) throw CheckpointError(p, "no such file or directory");
  return p;
}

void truncate_metrics(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::ostringstream kept;
  std::string line;
  bool dropped = false;
  while (std::getline(in, line)) {
    size_t k = line.find("\"step\":");
    if (k != std::string::npos) {
      long long s = std::atoll(line.c_str() + k + 7);
      if (s > step) {
        dropped = true;
        continue;
      }
    }
    if (!line.empty()) kept << line << "\n";
  }
  in.close();
  if (!dropped) return;
  write_file_atomic(path, kept.str());
}

}  // namespace dl::train

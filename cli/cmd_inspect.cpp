// dltool inspect FILE.h5 [--json] [--stats] [--diff OTHER.h5]: what a checkpoint holds, in
// state_dict order, without building the model ("conv1.weight  [6, 1, 5, 5]  float32  150").
#include <cmath>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>

#include "cli/command.h"
#include "exporters/checkpoint.h"
#include "exporters/json.h"

namespace dl::cli {
namespace {

struct InspectArgs {
  std::string file;
  std::string diff;
  bool json = false;
  bool stats = false;
  bool show_config = false;
};

struct Stats {
  double min = 0, max = 0, mean = 0, std = 0;
  int64_t nan = 0;
};

Stats tensor_stats(const Tensor& t) {
  std::vector<double> v = t.to_vector<double>();
  Stats s;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0, sq = 0;
  int64_t n = 0;
  for (double x : v) {
    if (std::isnan(x)) {
      ++s.nan;
      continue;
    }
    lo = std::min(lo, x);
    hi = std::max(hi, x);
    sum += x;
    ++n;
  }
  if (n == 0) return s;
  s.mean = sum / static_cast<double>(n);
  for (double x : v)
    if (!std::isnan(x)) sq += (x - s.mean) * (x - s.mean);
  s.min = lo;
  s.max = hi;
  s.std = n > 1 ? std::sqrt(sq / static_cast<double>(n - 1)) : 0.0;
  return s;
}

bool is_buffer(const std::string& key) {
  for (const char* suffix : {"running_mean", "running_var", "num_batches_tracked"}) {
    std::string s(suffix);
    if (key.size() >= s.size() && key.compare(key.size() - s.size(), s.size(), s) == 0) return true;
  }
  return false;
}

std::string attr_str(const AttrScalar& v) {
  std::ostringstream os;
  std::visit([&](const auto& x) { os << x; }, v);
  return os.str();
}

int run_diff(const InspectArgs& a, const Checkpoint& x) {
  Checkpoint y = load_checkpoint(a.diff, /*weights_only=*/true);
  std::map<std::string, const Tensor*> ym;
  for (const auto& [k, t] : y.model) ym[k] = &t;
  json::Array rows;
  std::ostringstream text;
  int64_t differing = 0;
  std::map<std::string, bool> seen;
  for (const auto& [k, t] : x.model) {
    seen[k] = true;
    auto it = ym.find(k);
    if (it == ym.end()) {
      text << "- " << k << "  " << shape_str(t.shape()) << "  (only in " << a.file << ")\n";
      rows.push(json::Object().add("key", k).add("status", "removed"));
      ++differing;
      continue;
    }
    const Tensor& u = *it->second;
    if (t.shape() != u.shape()) {
      text << "! " << k << "  shape " << shape_str(t.shape()) << " vs " << shape_str(u.shape()) << "\n";
      rows.push(json::Object().add("key", k).add("status", "shape_mismatch"));
      ++differing;
      continue;
    }
    std::vector<double> p = t.to_vector<double>(), q = u.to_vector<double>();
    double m = 0;
    for (size_t i = 0; i < p.size(); ++i) m = std::max(m, std::fabs(p[i] - q[i]));
    differing += m > 0;
    text << (m > 0 ? "~ " : "= ") << std::left << std::setw(40) << k << " max_abs_diff " << std::setprecision(6) << m << "\n";
    rows.push(json::Object().add("key", k).add("status", m > 0 ? "changed" : "equal").add("max_abs_diff", m));
  }
  for (const auto& [k, t] : y.model)
    if (!seen.count(k)) {
      text << "+ " << k << "  " << shape_str(t.shape()) << "  (only in " << a.diff << ")\n";
      rows.push(json::Object().add("key", k).add("status", "added"));
      ++differing;
    }
  if (a.json) {
    std::cout << json::Object().add("a", a.file).add("b", a.diff).add("differing_keys", differing).add("keys", rows).str() << "\n";
  } else {
    std::cout << "diff " << a.file << " -> " << a.diff << "\n" << text.str() << differing << " key(s) differ\n";
  }
  return kExitOk;
}

std::function<int()> setup_inspect(CLI::App& sub) {
  auto a = std::make_shared<InspectArgs>();
  sub.add_option("file", a->file, "checkpoint or weights file (.h5)")->required();
  sub.add_flag("--json", a->json, "print one JSON object");
  sub.add_flag("--stats", a->stats, "add min/max/mean/std/NaN count per tensor");
  sub.add_option("--diff", a->diff, "compare the weights with another .h5: added/removed keys, max abs difference");
  sub.add_flag("--config", a->show_config, "print the embedded config in full");
  return [a]() -> int {
    Checkpoint c = load_checkpoint(a->file, /*weights_only=*/true);
    if (!a->diff.empty()) return run_diff(*a, c);
    Checkpoint full = c;
    bool complete = c.format_version > 0;
    if (complete) {
      try {
        full = load_checkpoint(a->file, false);
      } catch (const CheckpointError&) {
        complete = false;  // weights-only dltool file: /model and /config only
      }
    }
    int64_t params = 0, buffers = 0;
    for (const auto& [k, t] : c.model) (is_buffer(k) ? buffers : params) += t.numel();
    if (a->json) {
      json::Array keys;
      for (const auto& [k, t] : c.model) {
        json::Array shape;
        for (int64_t d : t.shape()) shape.push(d);
        json::Object o;
        o.add("key", k).add("shape", shape).add("dtype", dtype_name(t.dtype())).add("numel", t.numel());
        if (a->stats) {
          Stats s = tensor_stats(t);
          o.add("min", s.min).add("max", s.max).add("mean", s.mean).add("std", s.std).add("nan", s.nan);
        }
        keys.push(o);
      }
      json::Object out;
      out.add("file", a->file).add("format_version", c.format_version).add("dltool_version", c.dltool_version)
          .add("created_utc", c.created_utc).add("model", keys).add("total_parameters", params)
          .add("total_buffer_elements", buffers);
      if (full.optimizer) {
        json::Object hyper;
        for (const auto& [k, v] : full.optimizer->defaults) hyper.add(k, v);
        std::map<std::string, bool> slots;
        for (const auto& [k, st] : full.optimizer->state)
          for (const auto& [slot, t] : st.slots) slots[slot] = true;
        json::Array sl;
        for (const auto& [s, b] : slots) sl.push(s);
        out.add("optimizer", json::Object().add("type", full.optimizer->type).add("defaults", hyper)
                                 .add("param_groups", static_cast<int64_t>(full.optimizer->param_groups.size())).add("slots", sl));
      }
      if (full.scheduler) {
        json::Object sc;
        sc.add("type", full.scheduler->type);
        for (const auto& [k, v] : full.scheduler->scalars) sc.add(k, v);
        for (const auto& [k, v] : full.scheduler->strings) sc.add(k, v);
        out.add("scheduler", sc);
      }
      if (!full.trainer.empty()) {
        json::Object tr;
        for (const auto& [k, v] : full.trainer) {
          const std::string& key = k;  // clang 14 (the fuzz build) cannot capture a structured binding
          std::visit([&](const auto& x) { tr.add(key, x); }, v);
        }
        out.add("trainer", tr);
      }
      json::Array classes;
      for (const std::string& name : c.class_names) classes.push(name);
      out.add("classes", classes).add("config", c.config_yaml);
      std::cout << out.str() << "\n";
      return kExitOk;
    }
    std::cout << a->file << ": " << (c.format_version > 0 ? "dltool checkpoint v" + std::to_string(c.format_version) : std::string("weights-only file (no dltool root attributes)"));
    if (!c.dltool_version.empty()) std::cout << ", dltool " << c.dltool_version << ", " << c.created_utc;
    std::cout << "\n\nmodel (state_dict order):\n";
    size_t w = 10;
    for (const auto& [k, t] : c.model) w = std::max(w, k.size());
    for (const auto& [k, t] : c.model) {
      std::cout << "  " << std::left << std::setw(static_cast<int>(w) + 2) << k << std::setw(18) << shape_str(t.shape())
                << std::setw(9) << dtype_name(t.dtype()) << std::right << std::setw(10) << t.numel();
      if (a->stats) {
        Stats s = tensor_stats(t);
        std::cout << std::setprecision(4) << "  min " << s.min << " max " << s.max << " mean " << s.mean << " std " << s.std
                  << " nan " << s.nan;
      }
      std::cout << "\n";
    }
    std::cout << "total parameters: " << params;
    if (buffers) std::cout << " (+ " << buffers << " buffer elements)";
    std::cout << "\n";
    if (full.optimizer) {
      std::cout << "\noptimizer: " << full.optimizer->type;
      for (const auto& [k, v] : full.optimizer->defaults) std::cout << " " << k << "=" << v;
      std::map<std::string, bool> slots;
      for (const auto& [k, st] : full.optimizer->state)
        for (const auto& [slot, t] : st.slots) slots[slot] = true;
      std::cout << "\n  " << full.optimizer->param_groups.size() << " param group(s); state slots:";
      for (const auto& [s, b] : slots) std::cout << " " << s;
      std::cout << " (" << full.optimizer->state.size() << " parameters)\n";
    }
    if (full.scheduler) {
      std::cout << "scheduler: " << full.scheduler->type;
      for (const auto& [k, v] : full.scheduler->scalars) std::cout << " " << k << "=" << v;
      for (const auto& [k, v] : full.scheduler->strings) std::cout << " " << k << "=" << v;
      std::cout << "\n";
    }
    if (!full.trainer.empty()) {
      std::cout << "trainer:";
      for (const auto& [k, v] : full.trainer) std::cout << " " << k << "=" << attr_str(v);
      std::cout << "\n";
    }
    if (!full.rng.empty()) {
      std::cout << "rng streams:";
      for (const auto& [k, v] : full.rng) std::cout << " " << k;
      std::cout << "\n";
    }
    if (!c.class_names.empty()) {
      std::cout << "classes (" << c.class_names.size() << "):";
      for (size_t i = 0; i < c.class_names.size(); ++i) std::cout << " " << i << "=" << class_name_text(c.class_names[i]);
      std::cout << "\n";
    }
    if (!c.config_yaml.empty()) {
      if (a->show_config) {
        std::cout << "\nconfig:\n" << c.config_yaml;
      } else {
        std::cout << "config: embedded (" << std::count(c.config_yaml.begin(), c.config_yaml.end(), '\n')
                  << " lines; --config prints it)\n";
      }
    }
    return kExitOk;
  };
}

}  // namespace

DL_REGISTER_COMMAND(inspect, "inspect", "List a checkpoint's state_dict, optimizer, scheduler and trainer state",
                    setup_inspect);

}  // namespace dl::cli

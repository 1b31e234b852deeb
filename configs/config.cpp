// Public entry points: load_config, load_config_string, to_yaml.
#include <yaml-cpp/yaml.h>

#include <filesystem>

#include "configs/detail.h"
#include "datasets/format.h"
#include "datasets/sampler.h"
#include "datasets/transforms.h"

namespace dl {

using namespace config_detail;

bool Config::operator==(const Config& o) const {
  return name == o.name && model == o.model && data == o.data && loss == o.loss &&
         optimizer == o.optimizer && scheduler == o.scheduler && train == o.train &&
         metrics == o.metrics && checkpoint == o.checkpoint;
}

Config load_config_string(const std::string& yaml, const std::string& virtual_filename,
                          const std::vector<std::string>& overrides) {
  YNode root = load_tree(yaml, virtual_filename);
  Ctx ctx;
  for (size_t i = 0; i < overrides.size(); ++i)
    apply_override(ctx, root, overrides[i], static_cast<int>(i + 1));
  Config c = read_config(ctx, root, std::filesystem::path(virtual_filename).stem().string());
  if (!ctx.diags.empty()) throw ConfigError(std::move(ctx.diags));
  c.source_path = virtual_filename;
  c.resolved_yaml = to_yaml(c);
  return c;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::string error;
  std::string text = read_text_file(path, error);
  if (!error.empty()) {
    Diagnostic d;
    d.loc.file = path;
    d.message = "cannot read config file: " + error;
    throw ConfigError({d});
  }
  return load_config_string(text, path, overrides);
}

// ---- Resolved YAML -------------------------------------------------------------------------

namespace {

struct EmitVisitor {
  YAML::Emitter& out;
  void operator()(bool b) const { out << b; }
  void operator()(int64_t i) const { out << i; }
  void operator()(double d) const { out << format_double(d); }  // exact round trip
  void operator()(const std::string& s) const { out << s; }
  void operator()(const std::vector<int64_t>& l) const { list(l); }
  void operator()(const std::vector<double>& l) const { list(l); }
  void operator()(const std::vector<std::string>& l) const { list(l); }
  template <class L>
  void list(const L& l) const {
    out << YAML::Flow << YAML::BeginSeq;
    for (const auto& x : l) (*this)(x);
    out << YAML::EndSeq;
  }
};

void emit_value(YAML::Emitter& out, const AttrSchema& a, const AttrValue& v) {
  if (const int64_t* i = std::get_if<int64_t>(&v))
    for (const auto& [word, value] : a.keywords)
      if (value == *i) {
        out << word;
        return;
      }
  std::visit(EmitVisitor{out}, v);
}

void emit_attrs(YAML::Emitter& out, const std::vector<AttrSchema>& schema, const AttrMap& m) {
  for (const auto& a : schema)
    if (auto it = m.find(a.name); it != m.end()) {
      out << YAML::Key << a.name << YAML::Value;
      emit_value(out, a, it->second);
    }
}

template <class T>
void emit_fields(YAML::Emitter& out, const std::vector<Field<T>>& fields, const T& t) {
  for (const auto& f : fields) {
    out << YAML::Key << f.attr.name << YAML::Value;
    emit_value(out, f.attr, f.get(t));
  }
}

template <class T>
void emit_section(YAML::Emitter& out, const char* key, const std::vector<Field<T>>& fields,
                  const T& t) {
  out << YAML::Key << key << YAML::Value << YAML::BeginMap;
  emit_fields(out, fields, t);
  out << YAML::EndMap;
}

void emit_model(YAML::Emitter& out, const ModelSpec& m) {
  out << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << (m.sequential ? "layers" : "nodes") << YAML::Value << YAML::BeginSeq;
  for (size_t i = 0; i < m.nodes.size(); ++i) {
    const LayerSpec& n = m.nodes[i];
    out << YAML::Flow << YAML::BeginMap;  // one line per layer reads like the model
    if (!m.sequential || n.name != std::to_string(i))
      out << YAML::Key << "name" << YAML::Value << n.name;
    out << YAML::Key << "type" << YAML::Value << n.type;
    if (!m.sequential) out << YAML::Key << "inputs" << YAML::Value << YAML::Flow << n.inputs;
    if (const LayerSchema* s = find_layer_schema(n.type)) emit_attrs(out, s->attrs, n.attrs);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  if (!m.sequential) out << YAML::Key << "output" << YAML::Value << m.output;
  out << YAML::EndMap;
}

void emit_transforms(YAML::Emitter& out, const char* key, const std::vector<TransformSpec>& list) {
  out << YAML::Key << key << YAML::Value << YAML::BeginSeq;
  for (const auto& t : list) {
    out << YAML::Flow << YAML::BeginMap << YAML::Key << "type" << YAML::Value << t.type;
    if (const auto* def = data::find_transform_def(t.type)) emit_attrs(out, def->attrs, t.attrs);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
}

void emit_data(YAML::Emitter& out, const DataSpec& d) {
  out << YAML::Key << "data" << YAML::Value << YAML::BeginMap;
  emit_fields(out, data_fields(), d);
  const data::FormatDef* fmt = data::find_format_def(d.format);
  if (fmt) emit_attrs(out, fmt->attrs, d.options);
  for (const auto& [split, attrs] : d.splits) {
    out << YAML::Key << split << YAML::Value << YAML::BeginMap;
    if (fmt) emit_attrs(out, fmt->split_attrs, attrs);
    out << YAML::EndMap;
  }
  emit_transforms(out, "augment", d.augment);
  emit_transforms(out, "transforms", d.transforms);
  out << YAML::Key << "loader" << YAML::Value << YAML::BeginMap;
  emit_fields(out, loader_fields(), d.loader);
  if (!d.loader.sampler.type.empty()) {
    out << YAML::Key << "sampler" << YAML::Value << YAML::Flow << YAML::BeginMap << YAML::Key << "type"
        << YAML::Value << d.loader.sampler.type;
    if (const auto* def = data::find_sampler_def(d.loader.sampler.type)) emit_attrs(out, def->attrs, d.loader.sampler.attrs);
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
  out << YAML::EndMap;
}

// loss / optimizer / scheduler: `type:` then the attributes of that type's registration.
const std::vector<AttrSchema>& attrs_of_type(const std::vector<AttrTypeEntry>& types, const std::string& type) {
  static const std::vector<AttrSchema> none;
  const AttrTypeEntry* e = find_type(types, type);
  return e ? e->attrs : none;
}

void emit_loss(YAML::Emitter& out, const LossSpec& l) {
  out << YAML::Key << "loss" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "type" << YAML::Value << l.type;
  emit_attrs(out, attrs_of_type(loss_types(), l.type), l.attrs);
  if (!l.inputs.empty()) out << YAML::Key << "inputs" << YAML::Value << YAML::Flow << l.inputs;
  if (l.target != "target") out << YAML::Key << "target" << YAML::Value << l.target;
  out << YAML::EndMap;
}

void emit_optimizer(YAML::Emitter& out, const OptimizerSpec& o) {
  const auto& attrs = attrs_of_type(optimizer_types(), o.type);
  out << YAML::Key << "optimizer" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "type" << YAML::Value << o.type;
  emit_attrs(out, attrs, o.hyper);
  if (!o.param_groups.empty()) {
    out << YAML::Key << "param_groups" << YAML::Value << YAML::BeginSeq;
    for (const auto& g : o.param_groups) {
      out << YAML::Flow << YAML::BeginMap << YAML::Key << "params" << YAML::Value << YAML::Flow
          << g.params;
      emit_attrs(out, attrs, g.overrides);  // only what the group overrides
      out << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
}

void emit_scheduler(YAML::Emitter& out, const sched::SchedulerConfig& s, const std::string* interval) {
  out << YAML::BeginMap;
  out << YAML::Key << "type" << YAML::Value << s.type;
  emit_attrs(out, attrs_of_type(scheduler_types(), s.type), s.attrs);
  if (interval) out << YAML::Key << "interval" << YAML::Value << *interval;
  if (!s.children.empty()) {
    out << YAML::Key << "schedulers" << YAML::Value << YAML::BeginSeq;
    for (const auto& child : s.children) emit_scheduler(out, child, nullptr);
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
}

}  // namespace

std::string to_yaml(const Config& c) {
  YAML::Emitter out;
  out.SetIndent(2);
  out << YAML::BeginMap;
  emit_fields(out, top_fields(), c);
  emit_model(out, c.model);
  emit_data(out, c.data);
  emit_loss(out, c.loss);
  emit_optimizer(out, c.optimizer);
  out << YAML::Key << "scheduler" << YAML::Value;
  emit_scheduler(out, c.scheduler, &c.scheduler.interval);
  out << YAML::Key << "train" << YAML::Value << YAML::BeginMap;
  emit_fields(out, train_fields(), c.train);
  emit_section(out, "grad_scaler", grad_scaler_fields(), c.train);
  out << YAML::EndMap;
  out << YAML::Key << "metrics" << YAML::Value << YAML::BeginSeq;
  for (const auto& m : c.metrics) {
    out << YAML::Flow << YAML::BeginMap << YAML::Key << "type" << YAML::Value << m.type;
    if (const auto* e = find_type(metric_types(), m.type)) emit_fields(out, e->fields, m);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::Key << "checkpoint" << YAML::Value << YAML::BeginMap;
  emit_fields(out, checkpoint_fields(), c.checkpoint);
  emit_section(out, "best", best_fields(), c.checkpoint.best);
  out << YAML::EndMap;
  out << YAML::EndMap;
  return "# dltool resolved config: every key, defaults filled in\n" + std::string(out.c_str()) +
         "\n";
}

}  // namespace dl

// Schema-driven validation: merged YNode tree -> Config. Every problem is reported to the Ctx
// (file:line:col, dotted path, expectation, suggestion) and reading goes on, so one run of
// `dltool validate` lists all of them.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>

#include "configs/detail.h"
#include "datasets/format.h"
#include "datasets/sampler.h"
#include "datasets/transforms.h"
#include "engine/nn/loss_registry.h"
#include "engine/optim/registry.h"
#include "engine/sched/registry.h"

namespace dl::config_detail {


namespace {

const YNode& empty_map() {
  static const YNode m{YNode::Kind::Map, "", false, {}, {}, {}};
  return m;
}

std::string join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}
std::string index(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

// ---- Scalars (YAML 1.2 core schema; quoted scalars are always strings) ----------------------

bool parse_int(const std::string& s, int64_t& out) {
  const char* b = s.data() + (!s.empty() && s[0] == '+');
  const char* e = s.data() + s.size();
  auto r = std::from_chars(b, e, out);
  return b != e && r.ec == std::errc() && r.ptr == e;
}

bool parse_float(const std::string& s, double& out) {
  static const std::pair<const char*, double> special[] = {
      {".inf", INFINITY}, {"+.inf", INFINITY}, {"-.inf", -INFINITY}, {".nan", NAN},
      {".Inf", INFINITY}, {"+.Inf", INFINITY}, {"-.Inf", -INFINITY}, {".NaN", NAN}};
  for (const auto& [text, v] : special)
    if (s == text) return out = v, true;
  const char* b = s.data() + (!s.empty() && s[0] == '+');
  const char* e = s.data() + s.size();
  if (b == e || std::isalpha(static_cast<unsigned char>(*b)) ||
      (*b == '-' && e - b > 1 && std::isalpha(static_cast<unsigned char>(b[1]))))
    return false;  // from_chars also takes "inf"/"nan", which YAML spells .inf/.nan
  auto r = std::from_chars(b, e, out);
  return r.ec == std::errc() && r.ptr == e;
}

bool parse_bool(const std::string& s, bool& out) {
  if (s == "true" || s == "True" || s == "TRUE") return out = true, true;
  if (s == "false" || s == "False" || s == "FALSE") return out = false, true;
  return false;
}

}  // namespace

// How a node reads in an error message: -3, 'abc', a list, a map, nothing.
std::string got(const YNode& n) {
  int64_t i;
  double d;
  bool b;
  switch (n.kind) {
    case YNode::Kind::Null:
      return "nothing (null)";
    case YNode::Kind::Seq: {  // [0.9] when short and flat
      std::string s;
      for (const auto& item : n.items) {
        if (!item.is_scalar() || s.size() > 60) return "a list";
        s += (s.empty() ? "" : ", ") + got(item);
      }
      return "[" + s + "]";
    }
    case YNode::Kind::Map:
      return "a map";
    case YNode::Kind::Scalar:
      if (!n.quoted && (parse_int(n.text, i) || parse_float(n.text, d) || parse_bool(n.text, b)))
        return n.text;
      return "'" + printable(n.text) + "'";
  }
  return "";
}

namespace {

// One scalar as a number/bool/string of the wanted element kind; nullopt on a mismatch.
std::optional<AttrValue> scalar_as(const YNode& n, AttrKind k) {
  if (!n.is_scalar()) return std::nullopt;
  if (k == AttrKind::String) return AttrValue(n.text);
  if (n.quoted) return std::nullopt;
  int64_t i;
  double d;
  bool b;
  if (k == AttrKind::Bool && parse_bool(n.text, b)) return AttrValue(b);
  if ((k == AttrKind::Int || k == AttrKind::Float) && parse_int(n.text, i)) return AttrValue(i);
  if (k == AttrKind::Float && parse_float(n.text, d)) return AttrValue(d);
  return std::nullopt;
}

// ---- Values and maps of values ----------------------------------------------------------------

std::optional<AttrValue> read_value(Ctx& ctx, const YNode& n, const std::string& path,
                                    const AttrSchema& a) {
  std::optional<AttrValue> v;
  bool keyword = false;
  switch (a.kind) {
    case AttrKind::Bool:
    case AttrKind::Float:
    case AttrKind::String:
      v = scalar_as(n, a.kind);
      break;
    case AttrKind::Int:
      for (const auto& [word, value] : a.keywords)
        if (n.is_scalar() && n.text == word) v = AttrValue(value), keyword = true;
      if (!keyword) v = scalar_as(n, AttrKind::Int);
      break;
    case AttrKind::StringList:
      if (n.is_scalar()) {
        v = scalar_as(n, AttrKind::String);
      } else if (n.is_seq()) {
        std::vector<std::string> strs;
        bool ok = true;
        for (const auto& item : n.items) {
          auto x = item.is_scalar() ? scalar_as(item, AttrKind::String) : std::nullopt;
          if (!(ok = ok && x)) break;
          strs.push_back(std::get<std::string>(*x));
        }
        if (ok) v = AttrValue(std::move(strs));
      }
      break;
    case AttrKind::IntPair:
      if (n.is_scalar()) {
        v = scalar_as(n, AttrKind::Int);
        break;
      }
      [[fallthrough]];
    case AttrKind::IntList:
    case AttrKind::FloatList: {
      if (n.is_scalar() && a.kind != AttrKind::IntPair) {  // a number: a list of one
        v = scalar_as(n, a.kind == AttrKind::FloatList ? AttrKind::Float : AttrKind::Int);
        break;
      }
      if (!n.is_seq()) break;
      AttrKind elem = a.kind == AttrKind::FloatList ? AttrKind::Float : AttrKind::Int;
      std::vector<int64_t> ints;
      std::vector<double> doubles;
      bool ok = true;
      for (const auto& item : n.items) {
        auto x = scalar_as(item, elem);
        ok = ok && x;
        if (!ok) break;
        if (auto* i = std::get_if<int64_t>(&*x))
          doubles.push_back(static_cast<double>(*i)), ints.push_back(*i);
        else
          doubles.push_back(std::get<double>(*x));
      }
      if (ok) v = elem == AttrKind::Int ? AttrValue(ints) : AttrValue(doubles);
      break;
    }
  }
  if (!v || !coerce_attr(a, *v)) {
    ctx.error(n.loc, path, "expected " + describe_expected(a) + ", got " + got(n));
    return std::nullopt;
  }
  bool bad = false;
  if (!keyword && !a.keywords.empty()) {  // a number typed by the user meets the bounds
    AttrSchema numeric = a;
    numeric.keywords.clear();
    bad = !check_attr(numeric, *v).empty();
  } else if (!keyword) {
    bad = !check_attr(a, *v).empty();
  }
  if (bad) {  // report the value as written (5, not the coerced [5, 5])
    std::string hint = a.rule ? a.rule(*v) : "";  // what the rule found (column of a bad expression)
    if (!a.choices.empty() && n.is_scalar()) {
      std::string m = did_you_mean(n.text, a.choices);
      if (!m.empty()) hint = "did you mean '" + m + "'?";
    }
    ctx.error(n.loc, path, "expected " + describe_expected(a) + ", got " + got(n), hint);
    return std::nullopt;
  }
  return v;
}

// Reads the keys of `map` described by `schema` into `out`; keys in `reserved` are the
// caller's. Unknown keys, bad values and missing required keys are reported. Returns false
// when anything was wrong. `owner` ("for optimizer 'adam'") qualifies unknown-key messages.
bool read_attrs(Ctx& ctx, const YNode& node, const std::string& path,
                const std::vector<AttrSchema>& schema, const std::vector<std::string>& reserved,
                const std::string& owner, AttrMap& out, bool fill_defaults = true) {
  const size_t errors_before = ctx.diags.size();
  const YNode& map = node.is_null() ? empty_map() : node;
  if (!map.is_map()) {
    ctx.error(node.loc, path, "expected a map of keys, got " + got(node));
    return false;
  }
  std::vector<std::string> known = reserved;
  for (const auto& a : schema) known.push_back(a.name);
  for (const auto& e : map.entries) {
    if (std::find(reserved.begin(), reserved.end(), e.key) != reserved.end()) continue;
    auto a = std::find_if(schema.begin(), schema.end(),
                          [&](const AttrSchema& s) { return s.name == e.key; });
    if (a == schema.end()) {
      ctx.error(e.key_loc, join(path, e.key), "unknown key" + (owner.empty() ? "" : " " + owner),
                suggest(e.key, known, "keys"));
    } else if (auto v = read_value(ctx, e.value, join(path, e.key), *a)) {
      out[e.key] = std::move(*v);
    }
  }
  if (fill_defaults) {
    for (const auto& a : schema)
      if (a.required && !map.find(a.name))
        ctx.error(node.loc, join(path, a.name),
                  "required key is missing" + (owner.empty() ? "" : " " + owner));
    fill_attr_defaults(schema, out);
  }
  return ctx.diags.size() == errors_before;
}

// The same for a struct section: values land in the members the fields are bound to.
template <class T>
bool read_fields(Ctx& ctx, const YNode* node, const std::string& path,
                 const std::vector<Field<T>>& fields, T& out,
                 const std::vector<std::string>& reserved = {}, const std::string& owner = "",
                 bool fill_defaults = true, AttrMap* present = nullptr) {
  AttrMap values;
  bool ok = read_attrs(ctx, node ? *node : empty_map(), path, attrs_of(fields), reserved, owner,
                       values, fill_defaults);
  for (const auto& f : fields)
    if (auto it = values.find(f.attr.name); it != values.end()) f.set(out, it->second);
  if (present) *present = std::move(values);
  return ok;
}

// A typed section after reading its `type:`: `loss: mse_loss` (shorthand) or
// `loss: {type: mse_loss, ...}`. `keys` is the map holding the other keys — for the shorthand
// or an absent section an empty map located there (`where`), so "required key is missing"
// still points at the right line.
struct Typed {
  std::string type;
  YNode keys;
};

std::optional<Typed> read_type(Ctx& ctx, const YNode* node, const std::string& path,
                               const std::string& default_type,
                               const std::vector<std::string>& names, const std::string& what,
                               const SourceLoc& where) {
  Typed t{default_type, empty_map()};
  t.keys.loc = node ? node->loc : where;
  if (!node || node->is_null()) {
    if (!default_type.empty()) return t;
    ctx.error(t.keys.loc, path, "required " + what + " is missing");
    return std::nullopt;
  }
  const YNode* type_node = node;
  std::string type_path = path;
  if (node->is_map()) {
    t.keys = *node;
    type_node = node->get("type");
    type_path = join(path, "type");
    if (!type_node) {
      if (!default_type.empty()) return t;
      ctx.error(node->loc, type_path, "required key is missing (the " + what + " type)",
                suggest("", names, "types"));
      return std::nullopt;
    }
  }
  if (!type_node->is_scalar()) {
    ctx.error(
        type_node->loc, type_path,
        "expected a " + what + " type name or a map with a type: key, got " + got(*type_node));
    return std::nullopt;
  }
  if (std::find(names.begin(), names.end(), type_node->text) == names.end()) {
    ctx.error(type_node->loc, type_path, "unknown " + what + " type '" + type_node->text + "'",
              suggest(type_node->text, names, "types"));
    return std::nullopt;
  }
  t.type = type_node->text;
  return t;
}

// Where `key` of `map` was written; else where the map was; else `fallback` (no section).
SourceLoc loc_in(const YNode* map, const std::string& key, const SourceLoc& fallback) {
  if (!map || !map->is_map()) return fallback;
  if (const YNode* v = map->get(key)) return v->loc;
  return map->loc.file.empty() ? fallback : map->loc;
}

// ---- model ------------------------------------------------------------------------------------

// Letters, digits and '_', in parts joined by '.' (the nodes of an expanded block:
// "layer1.0.conv1"); not a model input's name.
bool valid_node_name(const std::string& s) {
  if (s.empty() || s == kModelInput || s == kInputLengths) return false;
  bool part_empty = true;
  for (char c : s) {
    if (c == '.') {
      if (part_empty) return false;
      part_empty = true;
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') {
      part_empty = false;
    } else {
      return false;
    }
  }
  return !part_empty;
}

// A value a node can read: an earlier node, element k of one ("lstm.1"), or a model input.
bool names_value(const std::vector<std::string>& defined, const std::string& ref) {
  if (ref == kInputLengths || std::find(defined.begin(), defined.end(), ref) != defined.end()) return true;
  size_t dot = ref.rfind('.');
  if (dot == std::string::npos || dot + 1 == ref.size() ||
      ref.find_first_not_of("0123456789", dot + 1) != std::string::npos)
    return false;
  return std::find(defined.begin(), defined.end(), ref.substr(0, dot)) != defined.end();
}

struct NodeRead {
  LayerSpec spec;
  SourceLoc name_loc, inputs_loc;
  std::vector<SourceLoc> input_locs;
  bool explicit_inputs = false;
};

std::optional<NodeRead> read_node(Ctx& ctx, const YNode& item, const std::string& path,
                                  bool sequential, size_t i) {
  NodeRead r;
  r.spec.loc = r.name_loc = r.inputs_loc = item.loc;
  r.spec.name = std::to_string(i);  // nn.Sequential names its children 0, 1, 2, ...
  auto typed = read_type(ctx, &item, path, "", layer_type_names(), "layer", item.loc);
  if (!typed) return std::nullopt;
  const YNode* map = &typed->keys;
  const std::string& type = typed->type;
  r.spec.type = type;
  const LayerSchema& schema = *find_layer_schema(type);

  if (const YEntry* e = map->find("name")) {
    r.name_loc = e->value.loc;
    if (!e->value.is_scalar() || !valid_node_name(e->value.text))
      ctx.error(
          e->value.loc, join(path, "name"),
          "expected a node name of letters, digits and '_' (not 'input' or 'input_lengths'), got " + got(e->value));
    else
      r.spec.name = e->value.text;
  } else if (!sequential) {
    ctx.error(item.loc, join(path, "name"), "required key is missing (every node has a name)");
  }
  if (const YEntry* e = map->find("inputs")) {
    r.inputs_loc = e->value.loc;
    r.explicit_inputs = true;
    if (sequential) {
      ctx.error(e->key_loc, join(path, "inputs"),
                "inputs: is only allowed in model.nodes (layers: run in sequence)");
    } else if (e->value.is_scalar()) {
      r.spec.inputs.push_back(e->value.text);
      r.input_locs.push_back(e->value.loc);
    } else if (e->value.is_seq() && !e->value.items.empty()) {
      for (size_t k = 0; k < e->value.items.size(); ++k) {
        const YNode& in = e->value.items[k];
        if (!in.is_scalar())
          ctx.error(in.loc, index(join(path, "inputs"), k), "expected a node name, got " + got(in));
        r.spec.inputs.push_back(in.text);
        r.input_locs.push_back(in.loc);
      }
    } else {
      ctx.error(e->value.loc, join(path, "inputs"),
                "expected a node name or a list of node names, got " + got(e->value));
    }
  }
  bool ok = read_attrs(ctx, *map, path, schema.attrs, {"type", "name", "inputs"},
                       "for layer type '" + type + "'", r.spec.attrs);
  if (ok && schema.rule) {
    std::string err = schema.rule(r.spec.attrs);
    if (!err.empty()) ctx.error(item.loc, path, err);
  }
  return r;
}

void read_model(Ctx& ctx, const YNode* node, const SourceLoc& root_loc, ModelSpec& model) {
  if (!node || node->is_null() || !node->is_map()) {
    ctx.error(node ? node->loc : root_loc, "model",
              node ? "expected a map with layers: or nodes:, got " + got(*node)
                   : "required section is missing");
    return;
  }
  AttrMap none;
  read_attrs(ctx, *node, "model", {}, {"layers", "nodes", "output", "blocks"}, "", none);
  const YEntry* layers = node->find("layers");
  const YEntry* nodes = node->find("nodes");
  if (layers && layers->value.is_null()) layers = nullptr;  // `layers: null` drops a base's list
  if (nodes && nodes->value.is_null()) nodes = nullptr;
  if (layers && nodes) {
    ctx.error(nodes->key_loc, "model.nodes",
              "give either layers: (a sequence) or nodes: (a graph), not both",
              "a recipe that extends one form can drop the other with `layers: null`");
    return;
  }
  if (!layers && !nodes) {
    ctx.error(node->loc, "model", "needs layers: (a sequence of layers) or nodes: (a graph)");
    return;
  }
  model.sequential = layers != nullptr;
  const YEntry* written = layers ? layers : nodes;
  const std::string path = "model." + written->key;
  if (!written->value.is_seq() || written->value.items.empty()) {
    ctx.error(written->value.loc, path, "expected a non-empty list of layers, got " + got(written->value));
    return;
  }
  const YEntry* output = node->find("output");
  if (output && model.sequential)
    ctx.error(output->key_loc, "model.output", "output: is only used with model.nodes");
  // Blocks expand into nodes with names and inputs: the model is then a graph (nodes:).
  YEntry expanded{"nodes", written->key_loc, {}};
  std::string expanded_output = output && output->value.is_scalar() ? output->value.text : "";
  const size_t errors_before = ctx.diags.size();
  const bool blocks_used = expand_blocks(ctx, *node, *written, expanded.value, expanded_output);
  if (ctx.diags.size() != errors_before) return;
  if (blocks_used) model.sequential = false;
  const YEntry& list = blocks_used ? expanded : *written;

  std::vector<NodeRead> read;
  for (size_t i = 0; i < list.value.items.size(); ++i) {
    auto r = read_node(ctx, list.value.items[i], index(path, i), model.sequential, i);
    if (!r) continue;
    for (const auto& prev : read)
      if (prev.spec.name == r->spec.name)
        ctx.error(r->name_loc, join(index(path, i), "name"),
                  "duplicate node name '" + r->spec.name + "' (first used at line " +
                      std::to_string(prev.name_loc.line) + ")");
    read.push_back(std::move(*r));
  }
  if (read.size() != list.value.items.size()) return;

  std::vector<std::string> names = {std::string(kModelInput)};  // defined so far, in order
  for (size_t i = 0; i < read.size(); ++i) {
    NodeRead& r = read[i];
    const std::string p = join(index(path, i), "inputs");
    if (!r.explicit_inputs) r.spec.inputs = {names.back()};  // the previous node, or input
    for (size_t k = 0; k < r.input_locs.size(); ++k) {
      const std::string& in = r.spec.inputs[k];
      if (names_value(names, in)) continue;
      auto later = std::find_if(read.begin() + i, read.end(),
                                [&](const NodeRead& x) { return x.spec.name == in; });
      if (later == read.begin() + i)
        ctx.error(r.input_locs[k], index(p, k), "a node cannot be its own input");
      else if (later != read.end())
        ctx.error(r.input_locs[k], index(p, k),
                  "node '" + in + "' is defined later (line " +
                      std::to_string(later->name_loc.line) + "); list nodes in the order they run");
      else
        ctx.error(r.input_locs[k], index(p, k), "undefined node '" + in + "'",
                  suggest(in, names, "nodes"));
    }
    std::string err = check_input_count(*find_layer_schema(r.spec.type), r.spec.inputs.size());
    if (!err.empty()) ctx.error(r.inputs_loc, p, err);
    names.push_back(r.spec.name);
    model.nodes.push_back(std::move(r.spec));
  }
  model.output = model.nodes.back().name;
  if (blocks_used) {
    if (!expanded_output.empty()) model.output = expanded_output;
  } else if (output && !model.sequential) {
    if (!output->value.is_scalar() || !names_value({names.begin() + 1, names.end()}, output->value.text) ||
        output->value.text == kInputLengths)
      ctx.error(output->value.loc, "model.output", "undefined node " + got(output->value),
                suggest(output->value.text, {names.begin() + 1, names.end()}, "nodes"));
    else
      model.output = output->value.text;
  }
}

// ---- data ---------------------------------------------------------------------------------------

void report_rule(Ctx& ctx, const std::string& problem, const YNode* map, const std::string& path,
                 const SourceLoc& where, const std::vector<AttrSchema>& attrs);

// data.transforms (every split: no random transforms) or data.augment (training only).
void read_transforms(Ctx& ctx, const YNode* node, const std::string& path, bool random_allowed,
                     std::vector<TransformSpec> defaults, std::vector<TransformSpec>& out) {
  if (!node || node->is_null()) {
    out = std::move(defaults);
    return;
  }
  if (!node->is_seq()) {
    ctx.error(node->loc, path, "expected a list of transforms, got " + got(*node));
    return;
  }
  for (size_t i = 0; i < node->items.size(); ++i) {
    const std::string item = index(path, i);
    auto typed = read_type(ctx, &node->items[i], item, "", type_names(transform_types()), "transform", node->loc);
    if (!typed) continue;
    const data::TransformDef& def = data::transform_def(typed->type);
    TransformSpec t{def.name, {}};
    if (!read_attrs(ctx, typed->keys, item, def.attrs, {"type"}, "for transform '" + t.type + "'", t.attrs))
      continue;
    if (def.rule)
      if (std::string problem = def.rule(t.attrs); !problem.empty()) {
        report_rule(ctx, problem, &typed->keys, item, node->items[i].loc, def.attrs);
        continue;
      }
    if (def.random && !random_allowed)
      ctx.error(node->items[i].loc, item,
                "'" + t.type + "' is random: it belongs in data.augment (applied to the training split only)",
                "move it to data.augment; data.transforms runs on every split, val and test included");
    out.push_back(std::move(t));
  }
}

void read_sampler(Ctx& ctx, const YNode* node, const SourceLoc& where, SamplerSpec& out) {
  if (!node || node->is_null()) return;  // by data.loader.shuffle
  auto typed = read_type(ctx, node, "data.loader.sampler", "", type_names(sampler_types()), "sampler", where);
  if (!typed) return;
  const data::SamplerDef& def = data::sampler_def(typed->type);
  out.type = def.name;
  if (!read_attrs(ctx, typed->keys, "data.loader.sampler", def.attrs, {"type"}, "for sampler '" + out.type + "'",
                  out.attrs))
    return;
  if (def.rule)
    if (std::string problem = def.rule(out.attrs); !problem.empty())
      report_rule(ctx, problem, &typed->keys, "data.loader.sampler", node->loc, def.attrs);
}

// Whether the config yields a validation split: carved by the generic splitter, given as
// data.val, or made by the format itself (FormatDef::makes_val, e.g. text's `holdout`).
bool has_val_split(const DataSpec& d) {
  if (d.val_size > 0 || d.val_fraction > 0 || d.splits.count("val")) return true;
  const data::FormatDef* f = data::find_format_def(d.format);
  return f && f->makes_val && f->makes_val(d.options);
}

const char* const kDataSections[] = {"train", "val", "test", "loader", "transforms", "augment"};

void read_data(Ctx& ctx, const YNode* node, const SourceLoc& root_loc, DataSpec& d) {
  if (!node) {
    ctx.error(root_loc, "data", "required section is missing");
    return;
  }
  const YNode* data = node->is_map() ? node : &empty_map();
  const DatasetPreset* preset = nullptr;
  std::vector<std::string> preset_names;
  const YNode* dataset_node = data->get("dataset");
  for (const auto& p : dataset_presets()) {
    preset_names.push_back(p.name);
    if (dataset_node && dataset_node->is_scalar() && p.name == dataset_node->text) preset = &p;
  }
  // The format decides which other keys data: has; an unknown one is reported by the reader.
  std::string format = preset ? preset->format : "idx";
  if (const YNode* f = data->get("format"); f && f->is_scalar())
    if (const data::FormatDef* def = data::find_format_def(f->text)) format = def->name;
  const data::FormatDef& fmt = data::format_def(format);

  std::vector<std::string> reserved(std::begin(kDataSections), std::end(kDataSections));
  for (const AttrSchema& a : fmt.attrs) reserved.push_back(a.name);
  AttrMap present;
  read_fields(ctx, node, "data", data_fields(), d, reserved, "", true, &present);
  if (!present.count("format")) d.format = format;
  std::vector<std::string> own = {std::begin(kDataSections), std::end(kDataSections)};
  for (const auto& f : data_fields()) own.push_back(f.attr.name);
  read_attrs(ctx, *data, "data", fmt.attrs, own, "", d.options);

  for (const char* split : {"train", "val", "test"}) {
    const YNode* s = data->get(split);
    if (!s) continue;
    read_attrs(ctx, *s, std::string("data.") + split, fmt.split_attrs, {}, "for format '" + fmt.name + "'",
               d.splits[split]);
  }
  read_fields(ctx, data->get("loader"), "data.loader", loader_fields(), d.loader, {"sampler"});
  if (const YNode* l = data->get("loader"); l && l->is_map())
    read_sampler(ctx, l->get("sampler"), l->loc, d.loader.sampler);
  read_transforms(ctx, data->get("transforms"), "data.transforms", false,
                  fmt.images ? default_transforms() : std::vector<TransformSpec>{}, d.transforms);
  read_transforms(ctx, data->get("augment"), "data.augment", true, {}, d.augment);
  if (fmt.name != "idx") return;

  // An IDX preset fills data.root and the four file names; without one they must be written.
  if (preset && preset->format != fmt.name) preset = nullptr;
  std::vector<std::string> missing;
  auto fill = [&](const char* split, const char* key, const std::string& from_preset) {
    const std::string path = std::string("data.") + split + "." + key;
    AttrMap& m = d.splits[split];
    if (!m.count(key) && preset) m[key] = from_preset;
    if (!m.count(key)) missing.push_back(path);
  };
  if (d.root.empty() && preset) d.root = preset->root;
  if (d.root.empty()) missing.push_back("data.root");
  fill("train", "images", preset ? preset->train.images : "");
  fill("train", "labels", preset ? preset->train.labels : "");
  fill("test", "images", preset ? preset->test.images : "");
  fill("test", "labels", preset ? preset->test.labels : "");
  if (d.splits.count("val")) {
    fill("val", "images", "");
    fill("val", "labels", "");
  }
  auto& classes = d.options["classes"];
  if (preset && std::get<std::vector<std::string>>(classes).empty()) classes = preset->classes;
  if (!missing.empty()) {
    std::string keys;
    for (const auto& m : missing) keys += (keys.empty() ? "" : ", ") + m;
    ctx.error(loc_in(data, "dataset", node->loc), "data.dataset",
              (d.dataset.empty() ? std::string("no dataset preset is named")
                                 : "dataset '" + d.dataset + "' has no preset") +
                  ", so " + keys + " must be given",
              d.dataset.empty() ? "presets: fashion_mnist, mnist" : suggest(d.dataset, preset_names, "presets"));
  }
}

void check_metric_ref(Ctx& ctx, const std::string& ref, const SourceLoc& loc,
                      const std::string& path, const std::vector<MetricSpec>& metrics,
                      bool has_val);

// ---- loss, optimizer, scheduler (engine registries) --------------------------------------------

// A registration's cross-attribute rule failed with `problem`. A problem that starts with one of
// the section's keys ("nesterov: ...") is reported at that key; else at the section.
void report_rule(Ctx& ctx, const std::string& problem, const YNode* map, const std::string& path,
                 const SourceLoc& where, const std::vector<AttrSchema>& attrs) {
  for (const AttrSchema& a : attrs) {
    const std::string prefix = a.name + ": ";
    if (problem.rfind(prefix, 0) == 0) {
      ctx.error(loc_in(map, a.name, where), join(path, a.name), problem.substr(prefix.size()));
      return;
    }
  }
  ctx.error(map && !map->loc.file.empty() ? map->loc : where, path, problem);
}

void read_loss(Ctx& ctx, const YNode* node, const SourceLoc& where, LossSpec& l) {
  auto typed = read_type(ctx, node, "loss", kDefaultLoss, type_names(loss_types()), "loss", where);
  if (!typed) return;
  const nn::LossDef& def = nn::loss_def(typed->type);
  l.type = def.name;
  const YNode* map = &typed->keys;
  if (!read_attrs(ctx, *map, "loss", def.attrs, {"type", "inputs", "target"}, "for loss '" + l.type + "'", l.attrs))
    return;
  if (const YNode* t = map->get("target"); t && !t->is_null()) {
    if (!t->is_scalar() || (t->text != "target" && t->text != "input"))
      ctx.error(t->loc, "loss.target", "expected target (the batch's target) or input (the model's input), got " + got(*t));
    else if (std::find(def.inputs.begin(), def.inputs.end(), "target") == def.inputs.end())
      ctx.error(t->loc, "loss.target", "'" + l.type + "' has no target role");
    else
      l.target = t->text;
  }
  if (def.rule)
    if (std::string p = def.rule(l.attrs); !p.empty()) report_rule(ctx, p, map, "loss", where, def.attrs);
  if (auto r = l.attrs.find("reduction"); r != l.attrs.end() && std::get<std::string>(r->second) == "none")
    ctx.error(loc_in(map, "reduction", where), "loss.reduction",
              "'none' gives one loss per element, but training needs one number",
              "use mean or sum");
  if (const YNode* in = map->get("inputs"); in && !in->is_null()) {
    size_t roles = 0;
    for (const std::string& r : def.inputs) roles += r != "target";
    std::vector<const YNode*> names;
    if (in->is_scalar()) names.push_back(in);
    for (const auto& item : in->items) names.push_back(&item);
    bool ok = !names.empty();
    for (const YNode* n : names) ok = ok && n->is_scalar() && !n->text.empty();
    std::string role_list;
    for (const std::string& r : def.inputs)
      if (r != "target") role_list += (role_list.empty() ? "" : ", ") + r;
    if (def.sequence_target) {  // ctc_loss: one node's log-probabilities; the batch gives the rest
      roles = 1;
      role_list = def.inputs.front();
    }
    if (!ok || names.size() != roles) {
      ctx.error(in->loc, "loss.inputs",
                "expected " + std::to_string(roles) + " model node name(s) for " + l.type + "'s " + role_list +
                    ", got " + got(*in));
      return;
    }
    for (const YNode* n : names) l.inputs.push_back(n->text);
  }
}

void read_optimizer(Ctx& ctx, const YNode* node, const SourceLoc& where, OptimizerSpec& o) {
  auto typed = read_type(ctx, node, "optimizer", kDefaultOptimizer, type_names(optimizer_types()),
                         "optimizer", where);
  if (!typed) return;
  const YNode* map = &typed->keys;
  const optim::OptimizerDef& def = optim::optimizer_def(typed->type);
  o.type = def.name;
  const std::string owner = "for optimizer '" + o.type + "'";
  if (!read_attrs(ctx, *map, "optimizer", def.hyper, {"type", "param_groups"}, owner, o.hyper)) return;
  if (def.rule)
    if (std::string p = def.rule(o.hyper); !p.empty()) report_rule(ctx, p, map, "optimizer", where, def.hyper);

  const YNode* groups = map->get("param_groups");
  if (!groups || groups->is_null()) return;
  if (!groups->is_seq()) {
    ctx.error(groups->loc, "optimizer.param_groups",
              "expected a list of groups, got " + got(*groups));
    return;
  }
  for (size_t i = 0; i < groups->items.size(); ++i) {
    const YNode& g = groups->items[i];
    const std::string path = index("optimizer.param_groups", i);
    ParamGroupSpec group;
    const YNode* params = g.is_map() ? g.get("params") : nullptr;
    if (g.is_map() && !params) ctx.error(g.loc, join(path, "params"), "required key is missing");
    if (params) {
      std::vector<const YNode*> globs;
      if (params->is_scalar()) globs.push_back(params);
      for (const auto& p : params->items) globs.push_back(&p);
      bool ok = !globs.empty();
      for (const YNode* p : globs) ok = ok && p->is_scalar() && !p->text.empty();
      if (!ok)
        ctx.error(params->loc, join(path, "params"),
                  "expected a glob or a non-empty list of globs over state_dict names "
                  "(\"*.bias\"), got " +
                      got(*params));
      for (const YNode* p : globs) group.params.push_back(p->text);
    }
    if (read_attrs(ctx, g, path, def.hyper, {"params"}, owner, group.overrides, /*fill_defaults=*/false)) {
      group.hyper = o.hyper;
      for (const auto& [k, v] : group.overrides) group.hyper[k] = v;
      if (def.rule && !group.overrides.empty())
        if (std::string p = def.rule(group.hyper); !p.empty()) report_rule(ctx, p, &g, path, g.loc, def.hyper);
    }
    o.param_groups.push_back(std::move(group));
  }
}

// loss.inputs name model nodes; a loss whose target cannot be made from class labels is refused
// (the data gives class indices).
void check_loss_inputs(Ctx& ctx, const YNode* node, const SourceLoc& where, const Config& c) {
  const nn::LossDef* def = nn::find_loss_def(c.loss.type);
  if (!def) return;
  const YNode* map = node && node->is_map() ? node : nullptr;
  for (const std::string& n : c.loss.inputs)
    if (!c.model.find(n)) {
      std::vector<std::string> names;
      for (const auto& l : c.model.nodes) names.push_back(l.name);
      ctx.error(loc_in(map, "inputs", where), "loss.inputs", "'" + n + "' is not a node of the model",
                suggest(n, names, "nodes"));
    }
  const bool has_target = std::find(def->inputs.begin(), def->inputs.end(), "target") != def->inputs.end();
  if (has_target && def->class_target == nn::ClassTarget::none && c.loss.target != "input")
    ctx.error(loc_in(map, "type", where), "loss.type",
              "'" + c.loss.type + "' needs a target that class labels cannot give (e.g. +1/-1 per pair)",
              "use a loss without a target role (triplet_margin_loss) or a classification loss");
}

// `scheduler:` (and, recursively, the `schedulers:` of sequential/chained). `top` reads the
// generic `interval` key too.
void read_scheduler(Ctx& ctx, const YNode* node, const std::string& path, const SourceLoc& where,
                    sched::SchedulerConfig& s, std::string* interval, const Config& c, int depth) {
  auto typed = read_type(ctx, node, path, interval ? kDefaultScheduler : "", type_names(scheduler_types()),
                         "scheduler", where);
  if (!typed) return;
  const sched::SchedulerDef& def = sched::scheduler_def(typed->type);
  s.type = def.name;
  const YNode* map = &typed->keys;
  std::vector<std::string> reserved = {"type"};
  if (def.takes_children) reserved.push_back("schedulers");
  std::vector<AttrSchema> attrs = def.attrs;
  if (interval) attrs.push_back(interval_attr());
  AttrMap values;
  if (!read_attrs(ctx, *map, path, attrs, reserved, "for scheduler '" + s.type + "'", values)) return;
  if (interval) {
    *interval = std::get<std::string>(values.at("interval"));
    values.erase("interval");
  }
  s.attrs = std::move(values);
  if (def.rule)
    if (std::string p = def.rule(s.attrs); !p.empty()) report_rule(ctx, p, map, path, where, def.attrs);
  if (def.metric_driven)
    if (auto m = s.attrs.find("metric"); m != s.attrs.end()) {
      const std::string& ref = std::get<std::string>(m->second);
      const size_t errors = ctx.diags.size();
      check_metric_ref(ctx, ref, loc_in(map, "metric", where), join(path, "metric"), c.metrics, has_val_split(c.data));
      if (ctx.diags.size() == errors && ref != "val/loss" && ref != "val/accuracy")
        ctx.error(loc_in(map, "metric", where), join(path, "metric"),
                  "'" + ref + "' is not computed at every validation; the scheduler steps on val/loss or val/accuracy");
    }
  if (!def.takes_children) return;
  const YNode* kids = map->get("schedulers");
  if (!kids || !kids->is_seq() || kids->items.empty()) {
    ctx.error(kids ? kids->loc : loc_in(map, "type", where), join(path, "schedulers"),
              kids ? "expected a non-empty list of schedulers, got " + got(*kids) : "required key is missing",
              "e.g. schedulers: [{type: linear, total_iters: 5}, {type: cosine_annealing}]");
    return;
  }
  if (depth >= 8) {
    ctx.error(kids->loc, join(path, "schedulers"), "schedulers nested more than 8 deep");
    return;
  }
  for (size_t i = 0; i < kids->items.size(); ++i) {
    sched::SchedulerConfig child;
    read_scheduler(ctx, &kids->items[i], index(join(path, "schedulers"), i), kids->items[i].loc, child, nullptr, c,
                   depth + 1);
    s.children.push_back(std::move(child));
  }
  // SequentialLR switches at each milestone: one fewer milestone than schedulers.
  if (auto m = s.attrs.find("milestones"); m != s.attrs.end()) {
    const size_t n = std::get<std::vector<int64_t>>(m->second).size();
    if (n + 1 != s.children.size())
      ctx.error(loc_in(map, "milestones", where), join(path, "milestones"),
                std::to_string(n) + " milestone(s) for " + std::to_string(s.children.size()) +
                    " schedulers; " + s.type + " switches at each milestone, so it needs one fewer milestone than schedulers");
  }
}

// ---- metric references ("val/accuracy")
// -----------------------------------------------------------

void check_metric_ref(Ctx& ctx, const std::string& ref, const SourceLoc& loc,
                      const std::string& path, const std::vector<MetricSpec>& metrics,
                      bool has_val) {
  std::vector<std::string> names = {"loss"};
  for (const auto& m : metrics) names.push_back(m.name());
  size_t slash = ref.find('/');
  std::string split = ref.substr(0, slash);
  std::string name = slash == std::string::npos ? "" : ref.substr(slash + 1);
  if (slash == std::string::npos ||
      std::find(kSplits.begin(), kSplits.end(), split) == kSplits.end()) {
    ctx.error(loc, path,
              "expected split/metric with split one of train, val, test, got '" + ref + "'",
              suggest(split, kSplits, "splits"));
  } else if (std::find(names.begin(), names.end(), name) == names.end()) {
    ctx.error(loc, path, "metric '" + name + "' is not computed (add it to metrics:)",
              suggest(name, names, "metrics"));
  } else if (split == "val" && !has_val) {
    ctx.error(loc, path, "'" + ref + "' needs a validation split, but the data has none",
              "set data.val_size or data.val_fraction (or give data.val), or watch test/" + name);
  }
}

void read_metrics(Ctx& ctx, const YNode* node, std::vector<MetricSpec>& out) {
  if (!node || node->is_null()) {
    out = default_metrics();
    return;
  }
  if (!node->is_seq()) {
    ctx.error(node->loc, "metrics", "expected a list of metrics, got " + got(*node));
    return;
  }
  for (size_t i = 0; i < node->items.size(); ++i) {
    const YNode& item = node->items[i];
    const std::string path = index("metrics", i);
    MetricSpec m;
    int64_t k = 0;
    if (item.is_scalar() && item.text.rfind("top", 0) == 0 && parse_int(item.text.substr(3), k) &&
        k >= 1 && k <= std::numeric_limits<int>::max()) {  // `top5` shorthand
      m.type = "accuracy";
      m.top_k = static_cast<int>(k);
    } else {
      auto typed = read_type(ctx, &item, path, "", type_names(metric_types()), "metric", item.loc);
      if (!typed) continue;
      m.type = typed->type;
      if (!read_fields(ctx, &typed->keys, path, find_type(metric_types(), m.type)->fields, m,
                       {"type"}, "for metric '" + m.type + "'"))
        continue;
    }
    for (const auto& prev : out)
      if (prev.name() == m.name())
        ctx.error(item.loc, path, "metric '" + m.name() + "' is listed twice");
    out.push_back(m);
  }
}

}  // namespace

Config read_config(Ctx& ctx, const YNode& root, const std::string& default_name) {
  Config c;
  if (!root.is_map() && !root.is_null()) {
    ctx.error(root.loc, "",
              "expected a map of sections (model:, data:, optimizer:, ...), got " + got(root));
    return c;
  }
  const YNode& r = root.is_null() ? empty_map() : root;
  const std::vector<std::string> sections = {"model",     "data",  "loss",    "optimizer",
                                             "scheduler", "train", "metrics", "checkpoint"};
  read_fields(ctx, &r, "", top_fields(), c, sections);
  if (!r.find("name")) {
    c.name = default_name;
    if (std::string why = run_name_problem(c.name); !why.empty())
      ctx.error(root.loc, "name",
                "the run name defaults to the file's stem '" + printable(c.name) + "', which " + why,
                "set name: in the recipe");
  }

  read_model(ctx, r.get("model"), root.loc, c.model);
  read_data(ctx, r.get("data"), root.loc, c.data);

  read_loss(ctx, r.get("loss"), root.loc, c.loss);
  read_optimizer(ctx, r.get("optimizer"), root.loc, c.optimizer);
  const YNode* tr = r.get("train");
  read_fields(ctx, tr, "train", train_fields(), c.train, {"grad_scaler"});
  read_fields(ctx, tr && tr->is_map() ? tr->get("grad_scaler") : nullptr, "train.grad_scaler", grad_scaler_fields(),
              c.train);
  read_metrics(ctx, r.get("metrics"), c.metrics);

  read_scheduler(ctx, r.get("scheduler"), "scheduler", root.loc, c.scheduler, &c.scheduler.interval, c, 0);
  check_loss_inputs(ctx, r.get("loss"), root.loc, c);

  const YNode* ck = r.get("checkpoint");
  read_fields(ctx, ck, "checkpoint", checkpoint_fields(), c.checkpoint, {"best"});
  const YNode* best = ck && ck->is_map() ? ck->get("best") : nullptr;
  if (read_fields(ctx, best, "checkpoint.best", best_fields(), c.checkpoint.best) &&
      !c.checkpoint.best.metric.empty())
    check_metric_ref(ctx, c.checkpoint.best.metric, loc_in(best, "metric", ck ? ck->loc : root.loc),
                     "checkpoint.best.metric", c.metrics, has_val_split(c.data));
  return c;
}

}  // namespace dl::config_detail

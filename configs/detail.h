// Internals of configs/ shared by its .cpp files (not for use outside configs/).
//
// Pipeline:  text --parse_yaml--> YNode tree (every node knows its file:line:col)
//            --load_tree: extends: + merge_into--> one tree --apply_override--> tree
//            --read_config (schema-driven, collects Diagnostics)--> Config --to_yaml--> text
//
// The schema is a set of tables (schema.cpp). A plain section is a list of Field<T>: an
// AttrSchema (key, kind, default, range, doc) bound to a member of the spec struct, so one
// entry drives parsing, defaults, the resolved-YAML writer and the generated reference.
// A typed section (loss, optimizer, scheduler, metrics) picks its field list by `type:`.
#pragma once
#include <cstddef>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "configs/config.h"
#include "engine/graph/layer_schema.h"

namespace dl::config_detail {

// ---- YAML tree with source locations ------------------------------------------------------

struct YEntry;

struct YNode {
  enum class Kind { Null, Scalar, Seq, Map };
  Kind kind = Kind::Null;
  std::string text;             // Scalar: the text as written (without quotes)
  bool quoted = false;          // Scalar: quoted or tagged !!str, so never a number or bool
  std::vector<YNode> items;     // Seq
  std::vector<YEntry> entries;  // Map, in file order, keys unique
  SourceLoc loc;                // where the node starts

  bool is_null() const { return kind == Kind::Null; }
  bool is_scalar() const { return kind == Kind::Scalar; }
  bool is_seq() const { return kind == Kind::Seq; }
  bool is_map() const { return kind == Kind::Map; }
  const YEntry* find(std::string_view key) const;
  YEntry* find(std::string_view key);
  const YNode* get(std::string_view key) const;  // the value, or nullptr when absent
  void erase(std::string_view key);
};

struct YEntry {
  std::string key;
  SourceLoc key_loc;
  YNode value;
};

// The whole file; on failure returns "" and sets `error` (strerror text).
std::string read_text_file(const std::string& path, std::string& error);

// Limits on what YAML may expand to (stated in configs/README.md): far above any real recipe,
// they stop a recursive alias, a "billion laughs" file of nested aliases, brackets nested
// 100000 deep and an `extends:` fan-out with a ConfigError instead of a crash or gigabytes.
inline constexpr size_t kMaxYamlDepth = 64;       // lists/maps inside each other (a key path too)
inline constexpr size_t kMaxYamlNodes = 100000;   // nodes after alias expansion, all files
inline constexpr size_t kMaxExtendsFiles = 64;    // base files read through extends:, repeats too

// Parses one YAML document. Syntax errors, duplicate keys, non-string keys and the limits
// above throw ConfigError naming `file`:line:col. `nodes` (when given) accumulates the node
// count over several files, the limit applying to the total.
YNode parse_yaml(const std::string& text, const std::string& file, size_t* nodes = nullptr);

// Parses `text` (named `file`) and resolves its `extends:` chain; base paths are relative to
// the directory of the file that names them. Throws ConfigError (unreadable base, cycle, ...).
YNode load_tree(const std::string& text, const std::string& file);

// Deep merge: maps merge key by key (child wins), anything else is replaced by the child's
// value. A map whose `type:` differs from the base's replaces it whole (switching optimizer
// from sgd to adam must not inherit sgd's momentum).
void merge_into(YNode& base, const YNode& child);

// ---- Diagnostics collection --------------------------------------------------------------------

// `s` with control characters (NUL, newline, ESC, ...) written as \xNN, for messages.
std::string printable(const std::string& s);

struct Ctx {
  std::vector<Diagnostic> diags;
  void error(const SourceLoc& loc, std::string path, std::string message, std::string hint = "") {
    diags.push_back({loc, std::move(path), std::move(message), std::move(hint)});
  }
};

// Applies one "a.b[0].c=value" override to the tree (value parsed as YAML, located at
// "<override N: text>"). Path problems are reported to ctx.
void apply_override(Ctx& ctx, YNode& root, const std::string& text, int number);

// How a node reads in an error message: -3, 'abc', a list, a map, nothing.
std::string got(const YNode& n);

// model.blocks (configs/blocks.cpp): when an item of `list` (model.layers or model.nodes) uses
// a block, writes the model's nodes with every block expanded into `expanded` (maps with
// name, inputs and the layer's keys, in order), sets `output` to the full name of the model's
// output (in: the output: written, or "") and returns true. Problems go to ctx (still true).
// False when no item uses a block.
bool expand_blocks(Ctx& ctx, const YNode& model, const YEntry& list, YNode& expanded, std::string& output);

// "did you mean 'x'?" or "valid keys: a, b" (what = "keys", "types", ...); "" when empty.
std::string suggest(const std::string& word, const std::vector<std::string>& candidates,
                    const std::string& what);

// ---- Schema tables ------------------------------------------------------------------------------

template <class T>
struct Field {
  AttrSchema attr;
  std::function<void(T&, const AttrValue&)> set;
  std::function<AttrValue(const T&)> get;
};

// Binds a schema entry to a struct member whose type is the kind's AttrValue alternative, or
// for an Int kind any narrower integer type: the member type's range then joins the schema's
// bounds, so a value that does not fit (top_k: 4294967297 into an int) is a config error at
// its file:line:col instead of a silent wrap-around where the member is assigned.
template <class T, class M>
Field<T> field(M T::*member, AttrSchema attr) {
  if constexpr (std::is_integral_v<M> && !std::is_same_v<M, bool> &&
                !std::is_same_v<M, int64_t>) {
    static_assert(sizeof(M) < sizeof(int64_t), "an integer member wider than int64_t");
    const double lo = static_cast<double>(std::numeric_limits<M>::min());
    const double hi = static_cast<double>(std::numeric_limits<M>::max());
    if (!attr.min || *attr.min < lo) attr.at_least(lo);
    if (!attr.max || *attr.max > hi) attr.at_most(hi);
    return {std::move(attr),
            [member](T& t, const AttrValue& v) {
              t.*member = static_cast<M>(std::get<int64_t>(v));
            },
            [member](const T& t) { return AttrValue(static_cast<int64_t>(t.*member)); }};
  } else {
    return {std::move(attr), [member](T& t, const AttrValue& v) { t.*member = std::get<M>(v); },
            [member](const T& t) { return AttrValue(t.*member); }};
  }
}

template <class T>
std::vector<AttrSchema> attrs_of(const std::vector<Field<T>>& fields) {
  std::vector<AttrSchema> out;
  for (const auto& f : fields) out.push_back(f.attr);
  return out;
}

// One `type:` of a typed section bound to struct fields (loss, optimizer, scheduler, metric).
template <class T>
struct TypeEntry {
  std::string type;
  std::string doc;
  std::vector<Field<T>> fields;
};

// One `type:` whose attributes stay a map (transforms, like layers).
struct AttrTypeEntry {
  std::string type;
  std::string doc;
  std::vector<AttrSchema> attrs;
};

template <class E>
std::vector<std::string> type_names(const std::vector<E>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.type);
  return out;
}
template <class E>
const E* find_type(const std::vector<E>& entries, std::string_view type) {
  for (const auto& e : entries)
    if (e.type == type) return &e;
  return nullptr;
}

// Known datasets: `dataset: fashion_mnist` alone is enough (format idx: images + labels files).
struct DatasetPreset {
  struct Files {
    std::string images, labels;
  };
  std::string name, format, root;
  Files train, test;
  std::vector<std::string> classes;  // class names in label order ({} = none)
};

const std::vector<Field<Config>>& top_fields();  // name
const std::vector<Field<DataSpec>>& data_fields();
const std::vector<Field<LoaderSpec>>& loader_fields();
const std::vector<AttrTypeEntry>& transform_types();  // datasets/transforms.h's registry
const std::vector<AttrTypeEntry>& sampler_types();    // datasets/sampler.h's registry
// The loss, optimizer and scheduler types come from the engine's registries
// (engine/nn/loss_registry.h, engine/optim/registry.h, engine/sched/registry.h): the schema of
// each type is its registration's. Scheduler entries also list the generic `interval` key.
const std::vector<AttrTypeEntry>& loss_types();
const std::vector<AttrTypeEntry>& optimizer_types();
const std::vector<AttrTypeEntry>& scheduler_types();
AttrSchema interval_attr();
const std::vector<Field<TrainSpec>>& train_fields();
const std::vector<Field<TrainSpec>>& grad_scaler_fields();  // train.grad_scaler's keys
const std::vector<TypeEntry<MetricSpec>>& metric_types();
const std::vector<Field<CheckpointSpec>>& checkpoint_fields();
const std::vector<Field<BestCheckpointSpec>>& best_fields();
const std::vector<DatasetPreset>& dataset_presets();

// `name` (the run directory runs/<name>/, also when it defaults to the file's stem): "" when
// usable, else what is wrong ("contains '/'"); kRunNameExpected describes what is accepted.
std::string run_name_problem(const std::string& name);
extern const char* const kRunNameExpected;

// Defaults of whole sections (documented with the tables).
extern const char* const kDefaultLoss;            // "cross_entropy"
extern const char* const kDefaultOptimizer;       // "sgd"
extern const char* const kDefaultScheduler;       // "none"
std::vector<TransformSpec> default_transforms();  // [to_float]
std::vector<MetricSpec> default_metrics();        // []

// Metric references ("val/accuracy") are checked against these splits.
inline const std::vector<std::string> kSplits = {"train", "val", "test"};

// ---- Reading and writing ------------------------------------------------------------------------

// Validates the merged tree into a Config (errors go to ctx; the Config is then partial).
Config read_config(Ctx& ctx, const YNode& root, const std::string& default_name);

}  // namespace dl::config_detail

// Typed attributes: the vocabulary of every schema in dltool. A layer's attributes
// (layer_schema.h), an optimizer's hyper-parameters (engine/optim/registry.h), a scheduler's or
// a loss's options and the rest of the config (configs/schema.cpp) are all lists of AttrSchema:
// one description of "an integer >= 1 or 'auto'" serves parsing, error messages and docs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/graph/spec.h"

namespace dl {

// What an attribute holds. The AttrValue alternative in brackets.
enum class AttrKind {
  Bool,       // true/false                        [bool]
  Int,        // 3                                 [int64_t]
  Float,      // 0.5, 1e-3; an integer is accepted [double]
  String,     // relu, val/accuracy                [std::string]
  IntList,    // [30, 60]; 30 = [30]               [std::vector<int64_t>]
  FloatList,  // [0.9, 0.999]; integers accepted; 0.5 = [0.5]   [std::vector<double>]
  IntPair,    // 5, [5] or [5, 3] -> (h, w)        [std::vector<int64_t> of size 2]
  StringList, // [a.txt, b.txt]; a single string is accepted as a list of one [std::vector<std::string>]
};

struct AttrSchema {
  std::string name;
  AttrKind kind = AttrKind::Int;
  bool required = false;
  std::optional<AttrValue> default_value;  // used when absent (and not required)
  std::string default_from;                // absent -> copy this attribute (pool stride)
  // Numeric bounds; for lists and pairs they apply to every element.
  std::optional<double> min, max;
  bool min_open = false, max_open = false;  // exclusive bounds: (0, 1) instead of [0, 1]
  std::vector<std::string> choices;         // String: the allowed values
  // Int: symbolic spellings of special values, e.g. {"auto", 0}: `T_max: auto` stores 0 and
  // the resolved YAML writes `auto` back. Bounds apply to numbers written by the user only.
  std::vector<std::pair<std::string, int64_t>> keywords;
  std::size_t min_len = 0, max_len = std::numeric_limits<std::size_t>::max();  // lists
  // An extra rule: returns "" when the value is fine, else what was expected ("'cpu', 'cuda'
  // or 'cuda:N'"). `expected` then replaces the generated description in messages and docs.
  std::function<std::string(const AttrValue&)> rule;
  std::string expected;
  std::string doc;  // one line for the generated reference
  // A fixed-length list kept as scalars under these names where values must be numbers (an
  // optimizer's param-group options): Adam's `betas: [0.9, 0.999]` is options beta1, beta2.
  std::vector<std::string> components;

  // Builders: AttrSchema::integer("out_features").req().at_least(1).describe("...")
  static AttrSchema boolean(std::string name, bool def);
  static AttrSchema integer(std::string name);
  static AttrSchema integer(std::string name, int64_t def);
  static AttrSchema floating(std::string name);
  static AttrSchema floating(std::string name, double def);
  static AttrSchema string(std::string name);
  static AttrSchema string(std::string name, std::string def);
  static AttrSchema choice(std::string name, std::vector<std::string> choices, std::string def);
  static AttrSchema int_list(std::string name);
  static AttrSchema float_list(std::string name);
  static AttrSchema string_list(std::string name);  // required unless given a default
  static AttrSchema pair(std::string name);              // required unless given a default
  static AttrSchema pair(std::string name, int64_t def);  // default (def, def)

  AttrSchema& req() { required = true; default_value.reset(); return *this; }
  // Neither required nor defaulted: the reader decides (e.g. data.root from a dataset preset).
  AttrSchema& optional() { required = false; default_value.reset(); return *this; }
  AttrSchema& def(AttrValue v) { required = false; default_value = std::move(v); return *this; }
  AttrSchema& defaults_to(std::string other) {
    required = false; default_from = std::move(other); return *this;
  }
  AttrSchema& at_least(double v) { min = v; min_open = false; return *this; }
  AttrSchema& above(double v) { min = v; min_open = true; return *this; }
  AttrSchema& at_most(double v) { max = v; max_open = false; return *this; }
  AttrSchema& below(double v) { max = v; max_open = true; return *this; }
  AttrSchema& range(double lo, double hi, bool hi_open = false) {
    min = lo; min_open = false; max = hi; max_open = hi_open; return *this;
  }
  AttrSchema& keyword(std::string word, int64_t value) {
    keywords.emplace_back(std::move(word), value); return *this;
  }
  AttrSchema& length(std::size_t lo, std::size_t hi) { min_len = lo; max_len = hi; return *this; }
  AttrSchema& check(std::function<std::string(const AttrValue&)> f, std::string what) {
    rule = std::move(f); expected = std::move(what); return *this;
  }
  AttrSchema& describe(std::string text) { doc = std::move(text); return *this; }
  AttrSchema& stored_as(std::vector<std::string> names) {
    min_len = max_len = names.size(); components = std::move(names); return *this;
  }
};

// ---- Attribute values -----------------------------------------------------------------------
// Converts a value to the schema's kind where that loses nothing: an integer for a Float
// attribute becomes a double, an integer for a pair becomes (v, v), an integer list for a
// float list becomes doubles. Returns false when the value is of another kind altogether.
bool coerce_attr(const AttrSchema& schema, AttrValue& value);
// After coerce_attr: "" when the value satisfies the schema's bounds, choices, length and
// rule, else the message "expected <describe_expected>, got <value>".
std::string check_attr(const AttrSchema& schema, const AttrValue& value);
// "an integer >= 1", "a number in [0, 1)", "one of 'none', 'tanh'", "'auto' or an integer >= 1"
std::string describe_expected(const AttrSchema& schema);
// As written in YAML: 5, 0.5, true, relu, [5, 5], [0.9, 0.999]. Doubles print the shortest
// text that reads back to the same double, with a ".0" when they would look like an integer.
std::string format_attr(const AttrValue& value);
std::string format_double(double v);
// Fills every absent attribute that has a default (or a default_from attribute) in place.
void fill_attr_defaults(const std::vector<AttrSchema>& schema, AttrMap& attrs);

// Typed read of a resolved attribute, for registries' builders: throws std::logic_error naming
// the key when it is missing or holds another kind (a schema/builder mismatch, i.e. a bug).
template <class T>
const T& attr_get(const AttrMap& m, const std::string& key) {
  auto it = m.find(key);
  if (it == m.end()) throw std::logic_error("attribute '" + key + "' is missing");
  if (const T* v = std::get_if<T>(&it->second)) return *v;
  throw std::logic_error("attribute '" + key + "' holds another kind of value");
}
inline double attr_float(const AttrMap& m, const std::string& key) { return attr_get<double>(m, key); }
inline int64_t attr_int(const AttrMap& m, const std::string& key) { return attr_get<int64_t>(m, key); }
inline bool attr_bool(const AttrMap& m, const std::string& key) { return attr_get<bool>(m, key); }
inline const std::string& attr_string(const AttrMap& m, const std::string& key) {
  return attr_get<std::string>(m, key);
}
inline const std::vector<double>& attr_floats(const AttrMap& m, const std::string& key) {
  return attr_get<std::vector<double>>(m, key);
}
inline const std::vector<int64_t>& attr_ints(const AttrMap& m, const std::string& key) {
  return attr_get<std::vector<int64_t>>(m, key);
}
inline const std::vector<std::string>& attr_strings(const AttrMap& m, const std::string& key) {
  return attr_get<std::vector<std::string>>(m, key);
}

// For attributes built in code rather than read from YAML (make_loss, make_scheduler): refuses
// keys `schema` lacks ("unknown <word> 'k'"), fills defaults, then checks that required ones are
// there and each value's kind (coerced in place), bounds and rule (with what the rule found),
// then `rule` over the whole map. Returns the first problem, "" when all is fine.
std::string resolve_attrs(const std::vector<AttrSchema>& schema, AttrMap& attrs, const std::string& word,
                          const std::function<std::string(const AttrMap&)>& rule = nullptr);

// The schema named `name` in `schemas`, or nullptr.
const AttrSchema* find_attr(const std::vector<AttrSchema>& schemas, std::string_view name);

}  // namespace dl

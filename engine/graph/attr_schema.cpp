#include "engine/graph/attr_schema.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace dl {

// ---- Builders -----------------------------------------------------------------------------

namespace {
AttrSchema make(std::string name, AttrKind kind) {
  AttrSchema a;
  a.name = std::move(name);
  a.kind = kind;
  return a;
}
}  // namespace

AttrSchema AttrSchema::boolean(std::string name, bool def) {
  return make(std::move(name), AttrKind::Bool).def(def);
}
AttrSchema AttrSchema::integer(std::string name) {
  return make(std::move(name), AttrKind::Int).req();
}
AttrSchema AttrSchema::integer(std::string name, int64_t def) {
  return make(std::move(name), AttrKind::Int).def(def);
}
AttrSchema AttrSchema::floating(std::string name) {
  return make(std::move(name), AttrKind::Float).req();
}
AttrSchema AttrSchema::floating(std::string name, double def) {
  return make(std::move(name), AttrKind::Float).def(def);
}
AttrSchema AttrSchema::string(std::string name) {
  return make(std::move(name), AttrKind::String).req();
}
AttrSchema AttrSchema::string(std::string name, std::string def) {
  return make(std::move(name), AttrKind::String).def(std::move(def));
}
AttrSchema AttrSchema::choice(std::string name, std::vector<std::string> choices,
                              std::string def) {
  AttrSchema a = make(std::move(name), AttrKind::String).def(std::move(def));
  a.choices = std::move(choices);
  return a;
}
AttrSchema AttrSchema::int_list(std::string name) {
  return make(std::move(name), AttrKind::IntList).req();
}
AttrSchema AttrSchema::float_list(std::string name) {
  return make(std::move(name), AttrKind::FloatList).req();
}
AttrSchema AttrSchema::string_list(std::string name) {
  return make(std::move(name), AttrKind::StringList).req();
}
AttrSchema AttrSchema::pair(std::string name) {
  return make(std::move(name), AttrKind::IntPair).req();
}
AttrSchema AttrSchema::pair(std::string name, int64_t def) {
  return make(std::move(name), AttrKind::IntPair).def(std::vector<int64_t>{def, def});
}

namespace {
const char* kind_noun(AttrKind k, bool plural) {
  switch (k) {
    case AttrKind::Bool: return plural ? "booleans" : "a boolean";
    case AttrKind::Int: case AttrKind::IntList: case AttrKind::IntPair:
      return plural ? "integers" : "an integer";
    case AttrKind::Float: case AttrKind::FloatList: return plural ? "numbers" : "a number";
    case AttrKind::String: case AttrKind::StringList: return plural ? "strings" : "a string";
  }
  return "";
}

std::string bound_text(const AttrSchema& a) {
  auto num = [](double v) {  // compact: 0, 1, 1e-05, 0.5
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
  };
  if (a.min && a.max)
    return std::string("in ") + (a.min_open ? "(" : "[") + num(*a.min) + ", " + num(*a.max) +
           (a.max_open ? ")" : "]");
  if (a.min) return std::string(a.min_open ? "> " : ">= ") + num(*a.min);
  if (a.max) return std::string(a.max_open ? "< " : "<= ") + num(*a.max);
  return "";
}

bool in_bounds(const AttrSchema& a, double v) {
  if (std::isnan(v)) return !a.min && !a.max;
  if (a.min && (a.min_open ? v <= *a.min : v < *a.min)) return false;
  if (a.max && (a.max_open ? v >= *a.max : v > *a.max)) return false;
  return true;
}

std::string quoted(const std::string& s) { return "'" + s + "'"; }
}  // namespace

// ---- Values ---------------------------------------------------------------------------------

bool coerce_attr(const AttrSchema& a, AttrValue& v) {
  switch (a.kind) {
    case AttrKind::Bool: return std::holds_alternative<bool>(v);
    case AttrKind::Int: return std::holds_alternative<int64_t>(v);
    case AttrKind::String: return std::holds_alternative<std::string>(v);
    case AttrKind::IntList:
      if (auto* i = std::get_if<int64_t>(&v)) v = std::vector<int64_t>{*i};
      return std::holds_alternative<std::vector<int64_t>>(v);
    case AttrKind::Float:
      if (auto* i = std::get_if<int64_t>(&v)) v = static_cast<double>(*i);
      return std::holds_alternative<double>(v);
    case AttrKind::FloatList:
      if (auto* i = std::get_if<int64_t>(&v)) v = std::vector<double>{static_cast<double>(*i)};
      if (auto* d = std::get_if<double>(&v)) v = std::vector<double>{*d};
      if (auto* l = std::get_if<std::vector<int64_t>>(&v))
        v = std::vector<double>(l->begin(), l->end());
      return std::holds_alternative<std::vector<double>>(v);
    case AttrKind::IntPair:
      if (auto* i = std::get_if<int64_t>(&v)) v = std::vector<int64_t>{*i, *i};
      if (auto* l = std::get_if<std::vector<int64_t>>(&v); l && l->size() == 1) v = std::vector<int64_t>{(*l)[0], (*l)[0]};
      return std::holds_alternative<std::vector<int64_t>>(v);
    case AttrKind::StringList:
      if (auto* s = std::get_if<std::string>(&v)) v = std::vector<std::string>{*s};
      return std::holds_alternative<std::vector<std::string>>(v);
  }
  return false;
}

std::string describe_expected(const AttrSchema& a) {
  if (!a.expected.empty()) return a.expected;
  std::string b = bound_text(a);
  std::string sp = b.empty() ? "" : " " + b;
  switch (a.kind) {
    case AttrKind::Bool: return "a boolean (true or false)";
    case AttrKind::Int: {
      std::string s = std::string(kind_noun(a.kind, false)) + sp;
      for (auto it = a.keywords.rbegin(); it != a.keywords.rend(); ++it)
        s = quoted(it->first) + " or " + s;
      return s;
    }
    case AttrKind::Float: return kind_noun(a.kind, false) + sp;
    case AttrKind::String: {
      if (a.choices.empty()) return "a string";
      std::string s = "one of ";
      for (size_t i = 0; i < a.choices.size(); ++i) s += (i ? ", " : "") + quoted(a.choices[i]);
      return s;
    }
    case AttrKind::IntList: case AttrKind::FloatList: case AttrKind::StringList: {
      std::string s = "a list of ";
      if (a.min_len == a.max_len) s += std::to_string(a.min_len) + " ";
      else if (a.min_len > 0) s = "a non-empty list of ";
      s += kind_noun(a.kind, true);
      return b.empty() ? s : s + " (each " + b + ")";
    }
    case AttrKind::IntPair:
      return "an integer" + sp + " or a list of 2 such integers";
  }
  return "";
}

std::string check_attr(const AttrSchema& a, const AttrValue& v) {
  auto fail = [&] { return "expected " + describe_expected(a) + ", got " + format_attr(v); };
  auto check_list = [&](const auto& list) {
    if (list.size() < a.min_len || list.size() > a.max_len) return false;
    for (auto x : list)
      if (!in_bounds(a, static_cast<double>(x))) return false;
    return true;
  };
  bool ok = true;
  if (auto* i = std::get_if<int64_t>(&v)) {
    bool keyword = false;
    for (const auto& kw : a.keywords) keyword |= kw.second == *i;
    ok = keyword || in_bounds(a, static_cast<double>(*i));
  } else if (auto* d = std::get_if<double>(&v)) {
    ok = in_bounds(a, *d);
  } else if (auto* s = std::get_if<std::string>(&v)) {
    ok = a.choices.empty();
    for (const auto& c : a.choices) ok |= c == *s;
  } else if (auto* il = std::get_if<std::vector<int64_t>>(&v)) {
    ok = a.kind == AttrKind::IntPair ? il->size() == 2 && check_list(*il) : check_list(*il);
  } else if (auto* dl = std::get_if<std::vector<double>>(&v)) {
    ok = check_list(*dl);
  } else if (auto* sl = std::get_if<std::vector<std::string>>(&v)) {
    ok = sl->size() >= a.min_len && sl->size() <= a.max_len;
    for (const auto& x : *sl)
      if (!a.choices.empty()) ok = ok && std::find(a.choices.begin(), a.choices.end(), x) != a.choices.end();
  }
  if (ok && a.rule) ok = a.rule(v).empty();
  return ok ? "" : fail();
}

std::string format_double(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back exactly
  std::string s(buf, r.ptr);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string format_attr(const AttrValue& v) {
  struct {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return format_double(d); }
    std::string operator()(const std::string& s) const { return s; }
    std::string operator()(const std::vector<int64_t>& l) const { return list(l); }
    std::string operator()(const std::vector<double>& l) const { return list(l); }
    std::string operator()(const std::vector<std::string>& l) const {
      std::string s = "[";
      for (size_t i = 0; i < l.size(); ++i) s += (i ? ", " : "") + l[i];
      return s + "]";
    }
    std::string list(const std::vector<int64_t>& l) const {
      std::string s = "[";
      for (size_t i = 0; i < l.size(); ++i) s += (i ? ", " : "") + (*this)(l[i]);
      return s + "]";
    }
    std::string list(const std::vector<double>& l) const {
      std::string s = "[";
      for (size_t i = 0; i < l.size(); ++i) s += (i ? ", " : "") + (*this)(l[i]);
      return s + "]";
    }
  } fmt;
  return std::visit(fmt, v);
}

void fill_attr_defaults(const std::vector<AttrSchema>& schema, AttrMap& attrs) {
  for (const auto& a : schema)
    if (!attrs.count(a.name) && a.default_value) attrs[a.name] = *a.default_value;
  for (const auto& a : schema)  // second pass: a default_from source may itself be a default
    if (!attrs.count(a.name) && !a.default_from.empty() && attrs.count(a.default_from))
      attrs[a.name] = attrs.at(a.default_from);
}

const AttrSchema* find_attr(const std::vector<AttrSchema>& schemas, std::string_view name) {
  for (const AttrSchema& a : schemas)
    if (a.name == name) return &a;
  return nullptr;
}

std::string resolve_attrs(const std::vector<AttrSchema>& schema, AttrMap& attrs, const std::string& word,
                          const std::function<std::string(const AttrMap&)>& rule) {
  for (const auto& kv : attrs)
    if (!find_attr(schema, kv.first)) return "unknown " + word + " '" + kv.first + "'";
  fill_attr_defaults(schema, attrs);
  for (const AttrSchema& a : schema) {
    auto it = attrs.find(a.name);
    if (it == attrs.end()) {
      if (a.required) return a.name + " is required";
      continue;
    }
    if (!coerce_attr(a, it->second)) return a.name + " has the wrong kind of value";
    if (std::string p = check_attr(a, it->second); !p.empty()) {
      if (std::string why = a.rule ? a.rule(it->second) : ""; !why.empty()) p += " (" + why + ")";
      return a.name + ": " + p;
    }
  }
  return rule ? rule(attrs) : "";
}

}  // namespace dl

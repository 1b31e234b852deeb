// YAML text -> YNode tree with locations; `extends:` chains; `key=value` overrides.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "configs/detail.h"

namespace dl::config_detail {

namespace fs = std::filesystem;

const YEntry* YNode::find(std::string_view key) const {
  for (const auto& e : entries)
    if (e.key == key) return &e;
  return nullptr;
}
YEntry* YNode::find(std::string_view key) {
  for (auto& e : entries)
    if (e.key == key) return &e;
  return nullptr;
}
const YNode* YNode::get(std::string_view key) const {
  const YEntry* e = find(key);
  return e ? &e->value : nullptr;
}
void YNode::erase(std::string_view key) {
  entries.erase(
      std::remove_if(entries.begin(), entries.end(), [&](const YEntry& e) { return e.key == key; }),
      entries.end());
}

namespace {

SourceLoc loc_of(const YAML::Mark& m, const std::string& file) {
  if (m.line < 0) return {file, 0, 0};
  return {file, m.line + 1, m.column + 1};
}

YNode convert(const YAML::Node& n, const std::string& file, const std::string& path,
              std::vector<Diagnostic>& errs) {
  YNode out;
  out.loc = loc_of(n.Mark(), file);
  switch (n.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      out.kind = YNode::Kind::Null;
      break;
    case YAML::NodeType::Scalar: {
      out.kind = YNode::Kind::Scalar;
      out.text = n.Scalar();
      const std::string& tag = n.Tag();  // "?" plain, "!" quoted, or an explicit tag
      out.quoted = tag == "!" || tag == "tag:yaml.org,2002:str";
      break;
    }
    case YAML::NodeType::Sequence:
      out.kind = YNode::Kind::Seq;
      for (const auto& item : n)
        out.items.push_back(
            convert(item, file, path + "[" + std::to_string(out.items.size()) + "]", errs));
      break;
    case YAML::NodeType::Map:
      out.kind = YNode::Kind::Map;
      for (const auto& kv : n) {
        SourceLoc key_loc = loc_of(kv.first.Mark(), file);
        if (!kv.first.IsScalar()) {
          errs.push_back({key_loc, path, "keys must be plain names, not lists or maps", ""});
          continue;
        }
        std::string key = kv.first.Scalar();
        std::string key_path = path.empty() ? key : path + "." + key;
        if (const YEntry* first = out.find(key)) {
          errs.push_back(
              {key_loc, key_path,
               "duplicate key (first written at line " + std::to_string(first->key_loc.line) + ")",
               ""});
          continue;
        }
        YNode value = convert(kv.second, file, key_path, errs);
        if (value.is_null() || value.loc.line == 0) value.loc = key_loc;  // `key:` with no value
        out.entries.push_back({std::move(key), key_loc, std::move(value)});
      }
      break;
  }
  return out;
}

bool type_changed(const YNode& base, const YNode& child) {
  const YNode* a = base.get("type");
  const YNode* b = child.get("type");
  return a && b && a->is_scalar() && b->is_scalar() && a->text != b->text;
}

void clear_positions(YNode& n) {  // an override's value has no useful line/col
  n.loc.line = n.loc.col = 0;
  for (auto& i : n.items) clear_positions(i);
  for (auto& e : n.entries) {
    e.key_loc.line = e.key_loc.col = 0;
    clear_positions(e.value);
  }
}

YNode load_tree_rec(const std::string& text, const std::string& file,
                    std::vector<std::string>& chain) {
  YNode root = parse_yaml(text, file);
  const YEntry* ext = root.is_map() ? root.find("extends") : nullptr;
  if (!ext) return root;

  std::vector<const YNode*> names;
  if (ext->value.is_scalar()) names.push_back(&ext->value);
  for (const auto& item : ext->value.items) names.push_back(&item);
  bool ok = !names.empty();
  for (const YNode* n : names) ok = ok && n->is_scalar();
  if (!ok)
    throw ConfigError(
        {{ext->value.loc, "extends", "expected a file name or a list of file names", ""}});

  YNode merged;
  merged.kind = YNode::Kind::Map;
  merged.loc = root.loc;
  for (const YNode* n : names) {
    fs::path base = fs::path(n->text);
    if (base.is_relative()) base = fs::path(file).parent_path() / base;
    base = base.lexically_normal();
    std::string canonical = fs::weakly_canonical(base).string();
    if (std::find(chain.begin(), chain.end(), canonical) != chain.end()) {
      std::string cycle;
      for (const auto& c : chain) cycle += fs::path(c).filename().string() + " -> ";
      throw ConfigError(
          {{n->loc, "extends", "cycle: " + cycle + fs::path(canonical).filename().string(), ""}});
    }
    std::string error;
    std::string base_text = read_text_file(base.string(), error);
    if (!error.empty())
      throw ConfigError(
          {{n->loc, "extends", "cannot read base config '" + base.string() + "': " + error, ""}});
    chain.push_back(canonical);
    YNode base_tree = load_tree_rec(base_text, base.string(), chain);
    chain.pop_back();
    base_tree.erase("name");  // a run's name is its own file's, never inherited
    merge_into(merged, base_tree);
  }
  root.erase("extends");
  merge_into(merged, root);
  return merged;
}

// "model.layers[0].out_channels" -> {("model",{}), ("layers",{0}), ("out_channels",{})}
struct Segment {
  std::string name;
  std::vector<size_t> indices;
};
bool parse_key_path(const std::string& key, std::vector<Segment>& out) {
  size_t i = 0;
  while (i < key.size()) {
    Segment s;
    while (i < key.size() && (std::isalnum(static_cast<unsigned char>(key[i])) || key[i] == '_'))
      s.name += key[i++];
    if (s.name.empty()) return false;
    while (i < key.size() && key[i] == '[') {
      size_t close = key.find(']', i);
      if (close == std::string::npos || close == i + 1) return false;
      std::string digits = key.substr(i + 1, close - i - 1);
      if (!std::all_of(digits.begin(), digits.end(), ::isdigit) || digits.size() > 9) return false;
      s.indices.push_back(std::stoul(digits));
      i = close + 1;
    }
    out.push_back(std::move(s));
    if (i < key.size() && key[i++] != '.') return false;
    if (i == key.size() && key.back() == '.') return false;
  }
  return !out.empty();
}

}  // namespace

std::string read_text_file(const std::string& path, std::string& error) {
  if (fs::is_directory(path)) {
    error = "is a directory";
    return "";
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = std::strerror(errno);
    return "";
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

YNode parse_yaml(const std::string& text, const std::string& file) {
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError({{loc_of(e.mark, file), "", "YAML syntax error: " + e.msg, ""}});
  }
  std::vector<Diagnostic> errs;
  YNode root = convert(doc, file, "", errs);
  if (!errs.empty()) throw ConfigError(std::move(errs));
  if (root.loc.line == 0) root.loc = {file, 1, 1};
  return root;
}

YNode load_tree(const std::string& text, const std::string& file) {
  std::vector<std::string> chain = {fs::weakly_canonical(fs::path(file)).string()};
  return load_tree_rec(text, file, chain);
}

void merge_into(YNode& base, const YNode& child) {
  if (!base.is_map() || !child.is_map() || type_changed(base, child)) {
    base = child;
    return;
  }
  for (const auto& e : child.entries) {
    if (YEntry* b = base.find(e.key)) {
      merge_into(b->value, e.value);
      b->key_loc = e.key_loc;
    } else {
      base.entries.push_back(e);
    }
  }
}

void apply_override(Ctx& ctx, YNode& root, const std::string& text, int number) {
  const std::string label = "<override " + std::to_string(number) + ": " + text + ">";
  const SourceLoc here{label, 0, 0};
  size_t eq = text.find('=');
  std::vector<Segment> path;
  if (eq == std::string::npos || !parse_key_path(text.substr(0, eq), path)) {
    ctx.error(here, "",
              "expected key=value with a dotted key such as optimizer.lr=0.05 or "
              "model.layers[0].out_channels=8");
    return;
  }
  const std::string key = text.substr(0, eq);
  if (path[0].name == "extends") {
    ctx.error(here, key, "extends cannot be overridden; write a recipe that extends instead");
    return;
  }
  YNode value;
  try {
    value = parse_yaml(text.substr(eq + 1), label);
  } catch (const ConfigError& e) {
    ctx.error(here, key, e.diagnostics().front().message);
    return;
  }
  clear_positions(value);

  YNode* cur = &root;
  std::string walked;
  for (const auto& seg : path) {
    if (cur->is_scalar()) {  // `loss: mse_loss` shorthand -> {type: mse_loss}
      YNode type = *cur;
      *cur = YNode{};
      cur->kind = YNode::Kind::Map;
      cur->loc = type.loc;
      cur->entries.push_back({"type", type.loc, type});
    }
    if (cur->is_null()) cur->kind = YNode::Kind::Map;
    if (!cur->is_map()) {
      ctx.error(here, key, "'" + walked + "' is a list; index it as " + walked + "[i]");
      return;
    }
    walked += (walked.empty() ? "" : ".") + seg.name;
    YEntry* e = cur->find(seg.name);
    if (!e) {
      cur->entries.push_back({seg.name, here, YNode{YNode::Kind::Null, "", false, {}, {}, here}});
      e = &cur->entries.back();
    }
    cur = &e->value;
    for (size_t index : seg.indices) {
      if (!cur->is_seq() || index >= cur->items.size()) {
        ctx.error(here, key,
                  cur->is_seq()
                      ? "index " + std::to_string(index) + " is out of range ('" + walked +
                            "' has " + std::to_string(cur->items.size()) + " items)"
                      : "'" + walked + "' is not a list");
        return;
      }
      walked += "[" + std::to_string(index) + "]";
      cur = &cur->items[index];
    }
  }
  value.loc = here;
  *cur = std::move(value);
}

}  // namespace dl::config_detail

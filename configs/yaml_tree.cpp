// YAML text -> YNode tree with locations; `extends:` chains; `key=value` overrides.
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
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

std::string slot(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

size_t count_nodes(const YNode& n) {
  size_t c = 1;
  for (const auto& i : n.items) c += count_nodes(i);
  for (const auto& e : n.entries) c += count_nodes(e.value);
  return c;
}
// Levels of lists/maps: 0 for a scalar, 1 for a flat list or map.
size_t nesting(const YNode& n) {
  size_t h = 0;
  for (const auto& i : n.items) h = std::max(h, nesting(i));
  for (const auto& e : n.entries) h = std::max(h, nesting(e.value));
  return n.is_seq() || n.is_map() ? h + 1 : 0;
}

// Builds the YNode tree straight from yaml-cpp's parser events (no YAML::Node graph), so
// limits hold while parsing: nesting deeper than kMaxYamlDepth stops yaml-cpp's recursive
// descent at once, an alias inside the node it names (`a: &r [*r]`, a cycle in yaml-cpp's
// graph) is refused instead of expanded forever, and aliases are expanded by copying with the
// nodes counted against kMaxYamlNodes (a "billion laughs" file stops at the first copy that
// would pass it). Key problems (duplicates, non-scalar keys) are collected; limits throw.
class TreeBuilder final : public YAML::EventHandler {
 public:
  TreeBuilder(std::string file, size_t& nodes) : file_(std::move(file)), nodes_(nodes) {}

  YNode root;  // Null (line 0) for an empty document
  std::vector<Diagnostic> errs;

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnAnchor(const YAML::Mark& mark, const std::string& name) override {
    pending_anchor_ = {name, loc_of(mark, file_)};
  }
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    YNode n;
    n.loc = loc_of(mark, file_);
    add(std::move(n), anchor);
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    YNode n;
    n.kind = YNode::Kind::Scalar;
    n.loc = loc_of(mark, file_);
    n.text = value;
    n.quoted = tag == "!" || tag == "tag:yaml.org,2002:str";  // "?" = plain
    add(std::move(n), anchor);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(YNode::Kind::Seq, mark, anchor);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(YNode::Kind::Map, mark, anchor);
  }
  void OnMapEnd() override { close(); }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    const SourceLoc here = loc_of(mark, file_);
    const Anchor& a = anchors_.at(anchor);  // yaml-cpp rejects undefined anchors itself
    const std::string name = "alias '*" + a.name + "' (anchor at line " +
                             std::to_string(a.loc.line) + ":" + std::to_string(a.loc.col) + ")";
    if (!a.complete)
      fail(here, name + " is inside the node it names: a recursive alias",
           "an alias may only repeat a node written before it");
    if (stack_.size() + a.levels > kMaxYamlDepth)
      fail(here, name + " nests lists and maps deeper than " + std::to_string(kMaxYamlDepth) +
                     " levels",
           "flatten the structure; no recipe needs that depth");
    charge(a.nodes, here, " (" + name + " adds " + std::to_string(a.nodes) + ")");
    add(YNode(a.node), YAML::NullAnchor, /*counted=*/true);
  }

 private:
  struct Frame {
    YNode node;
    YAML::anchor_t anchor = YAML::NullAnchor;
    bool have_key = false;  // Map: the next node is the value of `key`
    bool skip = false;      // Map: the key was bad; drop its value
    std::string key;
    SourceLoc key_loc;
  };
  struct Anchor {
    std::string name;
    SourceLoc loc;
    bool complete = false;  // false while its own content is being parsed
    YNode node;
    size_t nodes = 0, levels = 0;
  };

  // The dotted path of the node being added below the first `levels` open frames.
  std::string path(size_t levels) const {
    std::string p;
    for (size_t i = 0; i < levels && i < stack_.size(); ++i) {
      const Frame& f = stack_[i];
      if (f.node.is_seq()) p += "[" + std::to_string(f.node.items.size()) + "]";
      else if (f.have_key && !f.skip) p = slot(p, f.key);
    }
    return p;
  }
  [[noreturn]] void fail(const SourceLoc& loc, const std::string& what, const std::string& fix) {
    std::string p = path(stack_.size());
    if (p.size() > 80) p = p.substr(0, 40) + "..." + p.substr(p.size() - 30);  // 64 levels deep
    throw ConfigError({{loc, std::move(p), what, fix}});
  }
  void charge(size_t n, const SourceLoc& loc, const std::string& detail) {
    nodes_ += n;
    if (nodes_ > kMaxYamlNodes)
      fail(loc, "the config expands to more than " + std::to_string(kMaxYamlNodes) +
                    " YAML nodes" + detail,
           "a recipe needs a few hundred; aliases of aliases multiply (a \"billion laughs\" "
           "file)");
  }
  void open(YNode::Kind kind, const YAML::Mark& mark, YAML::anchor_t anchor) {
    const SourceLoc here = loc_of(mark, file_);
    if (stack_.size() >= kMaxYamlDepth)
      fail(here, "lists and maps nested deeper than " + std::to_string(kMaxYamlDepth) + " levels",
           "flatten the structure, or close the brackets left open");
    charge(1, here, "");
    begin_anchor(anchor);
    Frame f;
    f.anchor = anchor;
    f.node.kind = kind;
    f.node.loc = here;
    stack_.push_back(std::move(f));
  }
  void close() {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    add(std::move(f.node), f.anchor, /*counted=*/true);
  }
  void begin_anchor(YAML::anchor_t anchor) {
    if (anchor == YAML::NullAnchor) return;
    Anchor& a = anchors_[anchor];
    a = Anchor{};
    a.name = pending_anchor_.first;
    a.loc = pending_anchor_.second;
  }
  // A finished node: remembered under its anchor (its copy counts against the node limit
  // too, so nested anchors cannot hoard memory) and attached to the open list or map.
  void add(YNode n, YAML::anchor_t anchor, bool counted = false) {
    if (!counted) {  // a scalar or null (lists and maps were counted when opened)
      charge(1, n.loc, "");
      begin_anchor(anchor);
    }
    if (anchor != YAML::NullAnchor) {
      Anchor& a = anchors_.at(anchor);
      a.nodes = count_nodes(n);
      a.levels = nesting(n);
      charge(a.nodes, n.loc, "");
      a.node = n;
      a.complete = true;
    }
    if (stack_.empty()) {
      root = std::move(n);
      return;
    }
    Frame& f = stack_.back();
    if (f.node.is_seq()) {
      f.node.items.push_back(std::move(n));
    } else if (!f.have_key) {  // n is a key
      f.have_key = true;
      f.skip = false;
      f.key_loc = n.loc;
      const std::string map_path = path(stack_.size() - 1);
      if (!n.is_scalar()) {
        errs.push_back({n.loc, map_path, "keys must be plain names, not lists or maps", ""});
        f.skip = true;
      } else if (const YEntry* first = f.node.find(n.text)) {
        errs.push_back({n.loc, slot(map_path, n.text),
                        "duplicate key (first written at line " +
                            std::to_string(first->key_loc.line) + ")",
                        ""});
        f.skip = true;
      } else {
        f.key = std::move(n.text);
      }
    } else {  // n is the value of f.key
      f.have_key = false;
      if (f.skip) return;
      if (n.is_null() || n.loc.line == 0) n.loc = f.key_loc;  // `key:` with no value
      f.node.entries.push_back({std::move(f.key), f.key_loc, std::move(n)});
    }
  }

  std::string file_;
  size_t& nodes_;
  std::vector<Frame> stack_;
  std::map<YAML::anchor_t, Anchor> anchors_;
  std::pair<std::string, SourceLoc> pending_anchor_;
};

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

// What one load_tree has read so far: the `extends:` chain to the current file (for cycles),
// and the base files and YAML nodes of all files together (kMaxExtendsFiles, kMaxYamlNodes:
// a file that extends the same base nine times, each extending another nine, ... would
// otherwise be read 9^k times).
struct LoadState {
  std::vector<std::string> chain;
  size_t files = 0;
  size_t nodes = 0;
};

YNode load_tree_rec(const std::string& text, const std::string& file, LoadState& state) {
  YNode root = parse_yaml(text, file, &state.nodes);
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
    std::vector<std::string>& chain = state.chain;
    if (std::find(chain.begin(), chain.end(), canonical) != chain.end()) {
      std::string cycle;
      for (const auto& c : chain) cycle += fs::path(c).filename().string() + " -> ";
      throw ConfigError(
          {{n->loc, "extends", "cycle: " + cycle + fs::path(canonical).filename().string(), ""}});
    }
    if (++state.files > kMaxExtendsFiles)
      throw ConfigError({{n->loc, "extends",
                          "more than " + std::to_string(kMaxExtendsFiles) +
                              " base files read through extends: (counting repeats)",
                          "extend each base once; a recipe needs a few"}});
    std::string error;
    std::string base_text = read_text_file(base.string(), error);
    if (!error.empty())
      throw ConfigError(
          {{n->loc, "extends", "cannot read base config '" + base.string() + "': " + error, ""}});
    chain.push_back(canonical);
    YNode base_tree = load_tree_rec(base_text, base.string(), state);
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

namespace {

// Offset of the first byte that is not part of well-formed UTF-8 (no overlong forms, no
// surrogates, nothing above U+10FFFF), or npos. YAML text is Unicode: yaml-cpp would take
// such bytes into a string and write them back as something else.
size_t invalid_utf8_offset(const std::string& text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (len == 0 || i + len > n) return i;
    unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return i;
    i += len;
  }
  return std::string::npos;
}

}  // namespace

YNode parse_yaml(const std::string& text, const std::string& file, size_t* nodes) {
  if (size_t bad = invalid_utf8_offset(text); bad != std::string::npos) {
    int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(bad), '\n'));
    size_t bol = text.rfind('\n', bad == 0 ? 0 : bad - 1);
    int col = 1 + static_cast<int>(bad - (bol == std::string::npos || bad == 0 ? 0 : bol + 1));
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned char>(text[bad]));
    throw ConfigError({{{file, line, col}, "", std::string("byte ") + hex + " is not valid UTF-8 text",
                        "save the file as UTF-8 (YAML text is Unicode)"}});
  }
  size_t local = 0;
  TreeBuilder builder(file, nodes ? *nodes : local);
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    parser.HandleNextDocument(builder);
  } catch (const YAML::Exception& e) {
    throw ConfigError({{loc_of(e.mark, file), "", "YAML syntax error: " + e.msg, ""}});
  }
  if (!builder.errs.empty()) throw ConfigError(std::move(builder.errs));
  YNode root = std::move(builder.root);
  if (root.loc.line == 0) root.loc = {file, 1, 1};
  return root;
}

YNode load_tree(const std::string& text, const std::string& file) {
  LoadState state;
  state.chain = {fs::weakly_canonical(fs::path(file)).string()};
  return load_tree_rec(text, file, state);
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
  // Every node of the value carries this label as its file: a long override is shortened, or
  // a 100 kB argument of many items would copy 100 kB per item.
  const std::string shown = text.size() <= 80 ? text : text.substr(0, 60) + "...";
  const std::string label = "<override " + std::to_string(number) + ": " + shown + ">";
  const SourceLoc here{label, 0, 0};
  size_t eq = text.find('=');
  std::vector<Segment> path;
  // Every segment and index is a level of the tree the override creates.
  const auto levels = std::count_if(text.begin(), text.begin() + std::min(eq, text.size()),
                                    [](char c) { return c == '.' || c == '['; });
  if (static_cast<size_t>(levels) >= kMaxYamlDepth) {
    ctx.error(here, "",
              "the key path nests deeper than " + std::to_string(kMaxYamlDepth) + " levels");
    return;
  }
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

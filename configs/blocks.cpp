// model.blocks: reusable, parameterised groups of layers (configs/README.md, "Blocks").
//
//   model:
//     blocks:
//       basic_block:                     # torchvision's BasicBlock
//         params: {channels: null, stride: 1, shortcut: no_shortcut}   # null: required
//         nodes:
//           - {name: conv1, type: conv2d, inputs: [input], out_channels: $channels, stride: $stride, ...}
//           ...
//           - {name: downsample, type: $shortcut, inputs: [input], channels: $channels, stride: $stride}
//           - {name: add, type: add, inputs: [bn2, downsample]}
//     nodes:
//       - {name: layer2, type: basic_block, channels: 32, stride: 2, shortcut: conv_bn,
//          repeat: {count: 3, then: {stride: 1, shortcut: no_shortcut}}}
//
// A node whose type is a block is replaced by the block's nodes, named "<node>.<local>"
// ("layer2.0.conv1" with repeat: the instances are numbered like nn.Sequential's children), so
// state_dict keys read like a PyTorch model's; `input` inside a block is the node's input, and
// other nodes read the block through its name (its output: the last node, or the block's
// output:). `$param` anywhere in a block's node (a whole scalar) is the instance's value.
// Expansion happens on the YAML tree, before validation: each expanded node is checked like a
// written one, at the line where the block writes it.
#include <map>

#include "configs/detail.h"
#include "engine/graph/layer_schema.h"

namespace dl::config_detail {
namespace {

constexpr int kMaxBlockDepth = 8;          // blocks inside blocks
constexpr size_t kMaxExpandedNodes = 20000;  // a repeat: of repeats cannot blow up

struct BlockDef {
  const YEntry* entry = nullptr;
  const YNode* params = nullptr;  // map: name -> default (null: required)
  const YEntry* body = nullptr;   // layers: or nodes:
  std::string output;             // "" = the last node
};

using Params = std::map<std::string, YNode>;

struct Expander {
  Ctx& ctx;
  std::map<std::string, BlockDef> blocks;
  std::vector<YNode> out;  // flat node maps with name and inputs
  bool failed = false;

  void error(const SourceLoc& loc, const std::string& path, const std::string& msg, const std::string& hint = "") {
    ctx.error(loc, path, msg, hint);
    failed = true;
  }

  static YNode scalar(const std::string& text, const SourceLoc& loc) {
    YNode n;
    n.kind = YNode::Kind::Scalar;
    n.text = text;
    n.quoted = true;
    n.loc = loc;
    return n;
  }

  // `v` with every unquoted "$name" scalar replaced by the parameter's value.
  YNode substitute(const YNode& v, const Params& params, const std::string& path) {
    if (v.is_scalar() && !v.quoted && v.text.size() > 1 && v.text[0] == '$') {
      auto it = params.find(v.text.substr(1));
      if (it != params.end()) return it->second;
      std::vector<std::string> names;
      for (const auto& [k, _] : params) names.push_back(k);
      error(v.loc, path, "unknown block parameter '" + v.text + "'", suggest(v.text.substr(1), names, "parameters"));
      return v;
    }
    YNode r = v;
    for (size_t i = 0; i < r.items.size(); ++i) r.items[i] = substitute(v.items[i], params, path);
    for (size_t i = 0; i < r.entries.size(); ++i) r.entries[i].value = substitute(v.entries[i].value, params, path);
    return r;
  }

  // A reference inside a scope: a local node ("conv1", "lstm.1"), the scope's input, or a
  // name from outside (model inputs such as input_lengths), kept as written.
  static std::string rename(const std::string& ref, const std::map<std::string, std::string>& local,
                            const std::string& scope_input) {
    if (ref == kModelInput) return scope_input;
    if (auto it = local.find(ref); it != local.end()) return it->second;
    size_t dot = ref.rfind('.');
    if (dot != std::string::npos)
      if (auto it = local.find(ref.substr(0, dot)); it != local.end()) return it->second + ref.substr(dot);
    return ref;
  }

  // Expands one list (the model's, or a block's body) into `out`; returns the full name of its
  // output value.
  std::string expand_list(const YEntry& list, bool sequential, const std::string& prefix, const std::string& scope_input,
                          const Params& params, const std::string& output, int depth, const std::string& path) {
    std::map<std::string, std::string> local;  // local node name -> full value name
    std::string previous = scope_input;
    if (!list.value.is_seq() || list.value.items.empty()) {
      error(list.value.loc, path, "expected a non-empty list of layers, got " + got(list.value));
      return previous;
    }
    for (size_t i = 0; i < list.value.items.size(); ++i) {
      const std::string item_path = path + "[" + std::to_string(i) + "]";
      YNode item = substitute(list.value.items[i], params, item_path);
      if (item.is_scalar()) {  // `- relu`
        YNode m;
        m.kind = YNode::Kind::Map;
        m.loc = item.loc;
        m.entries.push_back({"type", item.loc, item});
        item = m;
      }
      if (!item.is_map()) {
        error(item.loc, item_path, "expected a layer (a type name or a map with type:), got " + got(item));
        continue;
      }
      const YNode* type = item.get("type");
      const YNode* name = item.get("name");
      std::string local_name = name && name->is_scalar() ? name->text : std::to_string(i);
      if (!sequential && !name) local_name.clear();  // read_node reports the missing name
      // Inputs: written ones (renamed into this scope), else the previous value.
      std::vector<YNode> inputs;
      if (const YEntry* e = item.find("inputs"); e && !sequential) {
        if (e->value.is_scalar()) inputs.push_back(e->value);
        for (const YNode& in : e->value.items) inputs.push_back(in);
        for (YNode& in : inputs)
          if (in.is_scalar()) in.text = rename(in.text, local, scope_input);
      } else {
        inputs.push_back(scalar(previous, item.loc));
      }
      auto b = type && type->is_scalar() ? blocks.find(type->text) : blocks.end();
      if (b == blocks.end()) {  // a layer: named into the scope, inputs explicit
        const std::string type_text = type && type->is_scalar() ? type->text : "?";  // before item changes
        item.erase("name");
        item.erase("inputs");
        item.erase("repeat");
        YNode in_list;
        in_list.kind = YNode::Kind::Seq;
        in_list.loc = item.loc;
        in_list.items = inputs;
        item.entries.insert(item.entries.begin(), {"inputs", item.loc, in_list});
        item.entries.insert(item.entries.begin(), {"name", item.loc, scalar(prefix + local_name, item.loc)});
        if (const YEntry* r = list.value.items[i].find("repeat"))
          error(r->key_loc, item_path + ".repeat", "repeat: is for blocks (model.blocks); '" +
                                                       type_text + "' is a layer");
        out.push_back(std::move(item));
        if (out.size() > kMaxExpandedNodes) {
          error(item.loc, item_path, "the model expands to more than " + std::to_string(kMaxExpandedNodes) + " nodes");
          return previous;
        }
        previous = prefix + local_name;
        local[local_name] = previous;
        continue;
      }
      if (local_name.empty()) {
        error(item.loc, item_path + ".name", "required key is missing (every node has a name)");
        continue;
      }
      if (depth >= kMaxBlockDepth) {
        error(item.loc, item_path, "blocks nested more than " + std::to_string(kMaxBlockDepth) + " deep (a block that uses itself?)");
        return previous;
      }
      if (inputs.size() != 1 || !inputs[0].is_scalar()) {
        error(item.loc, item_path + ".inputs", "a block takes one input");
        continue;
      }
      previous = expand_instance(b->second, item, prefix + local_name, inputs[0].text, depth, item_path);
      local[local_name] = previous;
    }
    if (output.empty()) return previous;
    const std::string renamed = rename(output, local, scope_input);
    if (renamed != output || local.count(output)) return renamed;
    error(list.value.loc, path, "output '" + output + "' is not one of the nodes");
    return previous;
  }

  // One use of a block (with its repeats); returns the full name of the last instance's output.
  std::string expand_instance(const BlockDef& def, const YNode& use, const std::string& full_name, std::string input,
                              int depth, const std::string& path) {
    int64_t count = 1;
    const YNode* then = nullptr;
    bool numbered = false;
    if (const YEntry* r = use.find("repeat")) {
      numbered = true;
      const YNode* c = r->value.is_map() ? r->value.get("count") : &r->value;
      if (r->value.is_map()) {
        then = r->value.get("then");
        for (const auto& e : r->value.entries)
          if (e.key != "count" && e.key != "then")
            error(e.key_loc, path + ".repeat." + e.key, "unknown key", "repeat: takes count: and then:");
        if (then && !then->is_map()) error(then->loc, path + ".repeat.then", "expected a map of parameters, got " + got(*then));
      }
      int64_t n = 0;
      if (!c || !c->is_scalar() || !parse_int_text(c->text, n) || n < 1 || n > 1000) {
        error(r->value.loc, path + ".repeat", "expected a count from 1 to 1000 (or {count: N, then: {...}}), got " +
                                                  (c ? got(*c) : std::string("no count")));
        return input;
      }
      count = n;
    }
    for (int64_t k = 0; k < count; ++k) {
      Params params;
      std::vector<std::string> names;
      if (def.params)
        for (const auto& p : def.params->entries) {
          params[p.key] = p.value;
          names.push_back(p.key);
        }
      auto set = [&](const YNode& map, const std::string& where) {
        for (const auto& e : map.entries) {
          if (e.key == "type" || e.key == "name" || e.key == "inputs" || e.key == "repeat") continue;
          if (!params.count(e.key)) {
            error(e.key_loc, where + "." + e.key, "block '" + def.entry->key + "' has no parameter '" + e.key + "'",
                  suggest(e.key, names, "parameters"));
            continue;
          }
          params[e.key] = e.value;
        }
      };
      set(use, path);
      if (k > 0 && then && then->is_map()) set(*then, path + ".repeat.then");
      for (const auto& [p, v] : params)
        if (v.is_null())
          error(use.loc, path + "." + p, "block '" + def.entry->key + "' needs parameter '" + p + "'",
                "add " + p + ": to the node");
      if (failed) return input;
      const std::string prefix = full_name + (numbered ? "." + std::to_string(k) : "") + ".";
      const bool sequential = def.body->key == "layers";
      input = expand_list(*def.body, sequential, prefix, input, params, def.output, depth + 1,
                          "model.blocks." + def.entry->key + "." + def.body->key);
    }
    return input;
  }

  static bool parse_int_text(const std::string& s, int64_t& out) {
    if (s.empty() || s.size() > 6) return false;
    out = 0;
    for (char ch : s) {
      if (ch < '0' || ch > '9') return false;
      out = out * 10 + (ch - '0');
    }
    return true;
  }
};

}  // namespace

bool expand_blocks(Ctx& ctx, const YNode& model, const YEntry& list, YNode& expanded, std::string& output) {
  const YEntry* blocks = model.find("blocks");
  if (!blocks || blocks->value.is_null()) return false;
  Expander x{ctx, {}, {}, false};
  if (!blocks->value.is_map()) {
    x.error(blocks->value.loc, "model.blocks", "expected a map of block name -> {params:, layers: or nodes:}, got " +
                                                   got(blocks->value));
    return false;
  }
  for (const auto& e : blocks->value.entries) {
    const std::string path = "model.blocks." + e.key;
    if (find_layer_schema(e.key)) {
      x.error(e.key_loc, path, "'" + e.key + "' is a layer type; give the block another name");
      continue;
    }
    if (!e.value.is_map()) {
      x.error(e.value.loc, path, "expected a map with params:, and layers: or nodes:, got " + got(e.value));
      continue;
    }
    BlockDef def;
    def.entry = &e;
    for (const auto& k : e.value.entries) {
      if (k.key == "params") {
        if (k.value.is_map())
          def.params = &k.value;
        else if (!k.value.is_null())
          x.error(k.value.loc, path + ".params", "expected a map of parameter -> default (null: required), got " +
                                                     got(k.value));
      } else if (k.key == "layers" || k.key == "nodes") {
        if (def.body) x.error(k.key_loc, path + "." + k.key, "give either layers: or nodes:, not both");
        def.body = &k;
      } else if (k.key == "output") {
        def.output = k.value.is_scalar() ? k.value.text : "";
      } else {
        x.error(k.key_loc, path + "." + k.key, "unknown key", "a block has params:, layers: or nodes:, and output:");
      }
    }
    if (!def.body) {
      x.error(e.value.loc, path, "needs layers: (a sequence) or nodes: (a graph)");
      continue;
    }
    x.blocks[e.key] = def;
  }
  if (x.failed) return true;
  bool uses_block = false;
  for (const YNode& item : list.value.items) {
    const YNode* t = item.is_map() ? item.get("type") : &item;
    uses_block = uses_block || (t && t->is_scalar() && x.blocks.count(t->text));
  }
  if (!uses_block) return false;
  output = x.expand_list(list, list.key == "layers", "", std::string(kModelInput), {}, output, 0, "model." + list.key);
  expanded.kind = YNode::Kind::Seq;
  expanded.loc = list.value.loc;
  expanded.items = std::move(x.out);
  return true;
}

}  // namespace dl::config_detail

// config_reference_markdown(): the key reference in configs/README.md, generated from the
// schema tables so the documented defaults are the ones the validator fills in.
#include <sstream>

#include "configs/detail.h"
#include "datasets/format.h"

namespace dl {

using namespace config_detail;

namespace {

std::string default_text(const AttrSchema& a) {
  if (a.required) return "**required**";
  if (!a.default_from.empty()) return "= `" + a.default_from + "`";
  if (!a.default_value) return "—";  // optional: the meaning column says what happens
  const AttrValue& v = *a.default_value;
  if (const int64_t* i = std::get_if<int64_t>(&v))
    for (const auto& [word, value] : a.keywords)
      if (value == *i) return "`" + word + "`";
  if (const std::string* s = std::get_if<std::string>(&v); s && s->empty()) return "`\"\"`";
  return "`" + format_attr(v) + "`";
}

void table(std::ostringstream& md, const std::vector<AttrSchema>& attrs) {
  if (attrs.empty()) {
    md << "No keys.\n\n";
    return;
  }
  md << "| key | accepts | default | meaning |\n|---|---|---|---|\n";
  for (const auto& a : attrs)
    md << "| `" << a.name << "` | " << describe_expected(a) << " | " << default_text(a) << " | "
       << a.doc << " |\n";
  md << "\n";
}

template <class T>
void section(std::ostringstream& md, const std::string& title, const std::string& text,
             const std::vector<Field<T>>& fields) {
  md << "### `" << title << "`\n\n";
  if (!text.empty()) md << text << "\n\n";
  table(md, attrs_of(fields));
}

template <class E, class F>
void typed(std::ostringstream& md, const std::string& key, const std::string& text,
           const std::vector<E>& types, F attrs_of_entry) {
  md << "### `" << key << "`\n\n" << text << "\n\n";
  for (const auto& e : types) {
    md << "#### `" << key << "` type `" << e.type << "` — " << e.doc << "\n\n";
    table(md, attrs_of_entry(e));
  }
}

}  // namespace

std::string config_reference_markdown() {
  std::ostringstream md;
  auto field_attrs = [](const auto& e) { return attrs_of(e.fields); };
  auto plain_attrs = [](const auto& e) { return e.attrs; };

  md << "### Top level\n\n"
        "Sections: `model` and `data` are required; every other section may be left out and "
        "takes the defaults below. `extends: FILE` (or a list of files) names base recipes, "
        "relative to this file: maps are merged key by key (this file wins), lists and scalars "
        "are replaced, a section whose `type:` differs from the base's replaces it whole, and "
        "`name` is never inherited.\n\n";
  table(md, attrs_of(top_fields()));

  md << "### `model`\n\n"
        "Exactly one of `layers:` (a list run in sequence, like `nn.Sequential`: state_dict "
        "keys `0.weight`, `3.bias`, or the layer's `name:`) or `nodes:` (a graph: every node "
        "has a `name:` and `inputs:` — a name or a list of names of earlier nodes, or "
        "`input`; default: the previous node). `output:` (nodes only) names the node the model "
        "returns; default: the last node. A layer is a map with `type:` and its attributes, or "
        "just the type name (`- relu`). Pair attributes accept `5` or `[5, 3]` (height, width). "
        "Input sizes (`in_features`, `in_channels`, `num_features`) are inferred. Every value is "
        "batch-first. A tuple-valued layer (lstm: output, h_n, c_n) is read as `lstm` (element 0) "
        "or `lstm.1`, `lstm.2`; `input_lengths` (the lengths collate adds to padded sequences) is "
        "a model input beside `input`.\n\n"
        "`blocks:` defines reusable groups of layers: `NAME: {params: {P: DEFAULT, ...}, layers: "
        "[...]}` (or `nodes:` and `output:`); a `null` default makes the parameter required. A node "
        "of `type: NAME` is replaced by the block's layers, where `$P` (a whole value, also a "
        "`type:`) is the node's value of P; inside, `input` is the node's input. `repeat: N` chains N "
        "instances (`{count: N, then: {P: V}}`: the instances after the first take `then:`'s values). Nodes are "
        "named `NODE.LOCAL` (`NODE.I.LOCAL` with repeat), so state_dict keys read like PyTorch's "
        "submodules (`layer2.0.conv1.weight`); other nodes read the block by its node name. "
        "recipes/fashion_mnist/resnet20.yaml is an example; the resolved YAML lists the expanded "
        "nodes.\n\n";
  for (const auto& s : layer_schemas()) {
    std::string inputs = s.min_inputs == s.max_inputs ? std::to_string(s.min_inputs)
                                                      : std::to_string(s.min_inputs) + " or more";
    md << "#### layer `" << s.type << "` — " << s.doc << " (inputs: " << inputs << ")\n\n";
    table(md, s.attrs);
  }

  section(md, "data",
          "`dataset:` names the data; a preset fills `format`, `root` and the "
          "file names (see the preset table). `format:` picks a data format (below), whose own "
          "keys sit beside these and whose per-split keys go under `data.train`, `data.val` and "
          "`data.test`. Splits a format does not provide are carved from the training split by "
          "`val_size` (the last N samples) or `val_fraction` / `test_fraction` (seeded random).",
          data_fields());
  for (const data::FormatDef& f : data::format_defs()) {
    md << "#### format `" << f.name << "` — " << f.doc
       << (f.torch_name.empty() ? std::string() : " (`" + f.torch_name + "`)") << "\n\n";
    if (!f.attrs.empty()) {
      md << "Keys under `data:`\n\n";
      table(md, f.attrs);
    }
    md << "Keys under `data.train` / `data.val` / `data.test`\n\n";
    table(md, f.split_attrs);
    if (!f.example.empty()) md << "Example:\n\n```yaml\n" << f.example << "\n```\n\n";
  }
  section(md, "data.loader",
          "`sampler:` (training split only) is a sampler name or `{type: NAME, ...}`; without one "
          "the order is random with `shuffle: true`, else sequential.",
          loader_fields());
  typed(md, "data.loader.sampler", "torch.utils.data samplers.", sampler_types(), plain_attrs);
  typed(md, "data.transforms",
        "A list applied in order to every sample of every split (no random transforms). Default: "
        "`[{type: to_float}]` for image formats, none for features and tokens (csv, hdf5, text); `[]` for none. `data.augment` (same vocabulary, default `[]`) runs "
        "before it on the training split only and may hold the random ones.",
        transform_types(), plain_attrs);
  md << "#### Dataset presets\n\n| dataset | format | root | train | test "
        "|\n|---|---|---|---|---|\n";
  for (const auto& p : dataset_presets())
    md << "| `" << p.name << "` | " << p.format << " | `" << p.root << "` | `" << p.train.images
       << "`, `" << p.train.labels << "` | `" << p.test.images << "`, `" << p.test.labels
       << "` |\n";
  md << "\n";

  typed(md, "loss",
        std::string("`loss: NAME` or `{type: NAME, ...}`. Default type: `") + kDefaultLoss + "`.",
        loss_types(), plain_attrs);
  md << "Losses whose arguments are not (output, target) read model nodes: `inputs: [a, p, n]` names "
        "the nodes for the roles in order (triplet_margin_loss: anchor, positive, negative). Without "
        "`inputs:`, triplet_margin_loss trains on in-batch triplets of the model's output rows "
        "(embeddings): for each sample, the positive is the next sample of its class in the batch "
        "(cyclically) and the negative the next sample of another class; samples without either are "
        "skipped, and a batch without any triplet is an error (raise the batch size). With class "
        "labels, losses that compare with a float target get one-hot (or +1/-1) targets. `target: input` "
        "makes the model's input the target (autoencoders: `{type: mse_loss, target: input}`).\n\n";
  typed(md, "optimizer",
        std::string("Default type: `") + kDefaultOptimizer +
            "`. `param_groups:` is a list of `{params: GLOBS, KEY: VALUE...}`: parameters whose "
            "state_dict name matches a glob (`*` matches anything, dots included) use the "
            "group's values for the keys it gives; a parameter joins the first group it "
            "matches; the rest use the optimizer's values.",
        optimizer_types(), plain_attrs);
  typed(md, "scheduler",
        std::string("Default type: `") + kDefaultScheduler +
            "`. `sequential` and `chained` take `schedulers:`, a list of schedulers (each a map "
            "with `type:`), e.g. a linear warm-up then cosine annealing.",
        scheduler_types(), plain_attrs);
  section(md, "train", "", train_fields());
  section(md, "train.grad_scaler", "", grad_scaler_fields());
  typed(md, "metrics",
        "A list of metrics computed on every evaluated split, beside `loss`. Default: `[]`. "
        "Metrics are referred to as `split/name` (`val/accuracy`, `test/top5`, `val/loss`) "
        "with split one of `train`, `val` (needs `data.val_size` > 0), `test`.",
        metric_types(), field_attrs);
  section(md, "checkpoint", "", checkpoint_fields());
  section(md, "checkpoint.best", "", best_fields());
  return md.str();
}

}  // namespace dl

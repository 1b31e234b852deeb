// The data-format registry: `data.format` in a recipe names one registration here, which says
// which keys it reads (with docs, defaults and ranges, like every other schema in dltool) and
// opens the splits. Adding a format = one .cpp file in datasets/formats/ with one
// RegisterFormat (see datasets/README.md).
//
//   data:
//     format: csv                  # the registration
//     root: /data/wine             # shared by every format: relative paths are under it
//     target: Class                # format keys (FormatDef::attrs), checked against its schema
//     train: {file: train.csv}     # per-split keys (FormatDef::split_attrs)
//     test:  {file: test.csv}
//
// The generic part (datasets/splits.cpp) then carves what the format did not provide:
// data.val_size (the last N training samples, as before), data.val_fraction and
// data.test_fraction (a seeded random subset of the training samples, data.split_seed).
#pragma once
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/dataset.h"
#include "engine/graph/attr_schema.h"

namespace dl::data {

// What a format's open() receives: everything from the config, resolved (defaults filled,
// values checked against the schemas). Paths are as written; resolve() joins them to root.
struct FormatArgs {
  std::string root;                       // data.root ("" = current directory)
  AttrMap options;                        // data.<key> for the format's attrs
  std::map<std::string, AttrMap> splits;  // "train" / "val" / "test" -> that split's keys; a split
                                          // the config does not give is absent
  bool in_memory = false;                 // data.in_memory: load everything up front
  std::string config_file;                // the recipe, for messages

  std::string resolve(const std::string& path) const;  // root / path unless absolute or root empty
  const AttrMap* split(const std::string& name) const;  // nullptr when absent
};

struct FormatDef {
  std::string name;                      // data.format
  std::string torch_name;                // the torch/torchvision counterpart, "" when none
  std::string doc;                       // one line for the reference
  std::vector<AttrSchema> attrs;         // keys under data:
  std::vector<AttrSchema> split_attrs;   // keys under data.train / data.val / data.test
  std::vector<std::string> required_splits = {"train"};
  // Opens the splits the config gives (train at least). Indexing is cheap; decoding may be
  // lazy (get()) unless args.in_memory. Throws DataError naming the file for data problems,
  // std::invalid_argument for option problems the schema cannot express.
  std::function<Splits(const FormatArgs&)> open;
  // The training split's DatasetInfo without reading the samples (a header, the first row,
  // the first image): `dltool validate` and `export` use it. Null = open() and read info().
  std::function<DatasetInfo(const FormatArgs&)> peek;
  // The samples' input is a u8 image [C, H, W]: data.transforms then defaults to [to_float].
  // Formats of features or tokens (csv, hdf5 floats, text) default to no transform.
  bool images = true;
  std::string example;  // a YAML data: section using the format, for docs and the registry test
  // Whether open() makes a validation split itself with these (resolved) format options
  // (text: `holdout` > 0): configs accept val/ metric references then. Null = never. Called
  // while a config is read, so an option may be missing (the config has errors).
  std::function<bool(const AttrMap& options)> makes_val = nullptr;
};

struct RegisterFormat {
  explicit RegisterFormat(FormatDef def);  // std::logic_error on a duplicate name
};

const std::vector<FormatDef>& format_defs();  // sorted by name
const FormatDef* find_format_def(std::string_view name);
const FormatDef& format_def(std::string_view name);  // std::invalid_argument listing the valid names
std::vector<std::string> format_names();

// How the generic splitter carves splits the format did not provide.
struct SplitOptions {
  int64_t val_size = 0;        // the last N training samples become val (IDX recipes' convention)
  double val_fraction = 0;     // a seeded random fraction of the training samples becomes val
  double test_fraction = 0;    // the same for test (taken first, then val from the rest)
  uint64_t split_seed = 0;     // the permutation of the random splits
};

// format.open(args), then the carving. A split asked for twice (data.val and val_size) or a
// carving that leaves no training sample is a DataError/invalid_argument naming the keys.
Splits open_splits(const FormatDef& format, const FormatArgs& args, const SplitOptions& split);

}  // namespace dl::data

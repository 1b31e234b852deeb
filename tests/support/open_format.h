// Opens a data format in tests the way a recipe does (configs/ fills the defaults, then the
// generic open_splits): the format's and each split's attribute defaults filled first.
#pragma once
#include <map>
#include <string>

#include "datasets/format.h"

namespace dl::test {

inline data::Splits open_format(const std::string& format, const std::string& root, AttrMap options,
                                std::map<std::string, AttrMap> splits, const data::SplitOptions& split = {},
                                bool in_memory = false) {
  const data::FormatDef& def = data::format_def(format);
  data::FormatArgs args;
  args.root = root;
  args.options = std::move(options);
  args.splits = std::move(splits);
  args.in_memory = in_memory;
  fill_attr_defaults(def.attrs, args.options);
  for (auto& [name, keys] : args.splits) fill_attr_defaults(def.split_attrs, keys);
  return data::open_splits(def, args, split);
}

}  // namespace dl::test

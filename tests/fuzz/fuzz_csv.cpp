// libFuzzer target: data.format csv (datasets/formats/csv.cpp) through the format registry, as
// `dltool train` opens it, then every sample and its description.
//
// Input: two option bytes, then the CSV file's bytes; with bit 5 of byte 0 set, the bytes after
// the first NUL are a separate target file (data.train.target_file).
//   byte 0: bit 0 header, bits 1-2 delimiter (',' ';' ' ' '\t'), bits 3-4 target_kind (class,
//           regression, multi_hot, class), bit 5 target_file, bit 6 data.classes [a, b, c],
//           bit 7 gzip the data file (raw gzip bytes also arrive through the seeds)
//   byte 1: bits 0-1 skip_rows 0..3, bits 2-3 target ("-1", "0", "0:2", "b"), bits 4-5 features
//           (default, "0:-1", "1", "a"), bit 6 data.test_fraction 0.5
// DataError and std::invalid_argument are the only acceptable failures.
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/format.h"
#include "tests/fuzz/fuzz_util.h"

namespace {
using Strings = std::vector<std::string>;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t f0 = data[0], f1 = data[1];
  std::string_view rest(reinterpret_cast<const char*>(data + 2), size - 2);
  std::string_view targets;
  if (f0 & 0x20) {
    const size_t nul = rest.find('\0');
    if (nul != std::string_view::npos) {
      targets = rest.substr(nul + 1);
      rest = rest.substr(0, nul);
    }
  }
  using namespace dl::data;
  const FormatDef& def = format_def("csv");
  FormatArgs args;
  static const char* kDelims[] = {",", ";", " ", "\t"};
  static const char* kKinds[] = {"class", "regression", "multi_hot", "class"};
  static const char* kTargets[] = {"-1", "0", "0:2", "b"};
  args.options = {{"header", (f0 & 1) != 0},
                  {"delimiter", std::string(kDelims[(f0 >> 1) & 3])},
                  {"target_kind", std::string(kKinds[(f0 >> 3) & 3])},
                  {"skip_rows", int64_t(f1 & 3)}};
  if (!(f0 & 0x20) || ((f1 >> 2) & 3) != 1) args.options["target"] = Strings{kTargets[(f1 >> 2) & 3]};
  if (f0 & 0x40) args.options["classes"] = Strings{"a", "b", "c"};
  static const char* kFeatures[] = {"", "0:-1", "1", "a"};
  if ((f1 >> 4) & 3) args.options["features"] = Strings{kFeatures[(f1 >> 4) & 3]};
  dl::AttrMap train{{"file", dl::fuzz::write_scratch("data.csv", (f0 & 0x80) ? dl::fuzz::gzip(rest) : std::string(rest))}};
  if (f0 & 0x20) train["target_file"] = dl::fuzz::write_scratch("target.csv", targets);
  fill_attr_defaults(def.attrs, args.options);
  fill_attr_defaults(def.split_attrs, train);
  args.splits["train"] = train;
  SplitOptions carve;
  if (f1 & 0x40) carve.test_fraction = 0.5;
  dl::fuzz::open_and_read_every_sample(def, args, carve);
  return 0;
}

// libFuzzer target: the text formats (datasets/formats/text.cpp, text_classes.cpp) through the
// format registry, as `dltool train` opens them, then every sample and its description.
//
// Input: one option byte, then two files' bytes split at the first 0xFF byte (text is UTF-8 or
// raw bytes, so the separator also lands inside files when the fuzzer wants it there).
//   bit 0: format text (the first file as the corpus) or text_classification (a class per file)
//   text:                bit 1 level byte, bits 2-3 seq_len 1..4, bit 4 holdout 0.3
//   text_classification: bit 1 separator '%' (else one record per line), bits 2-3 max_len
//                        1, 3, 8, 256, bit 4 min_len 2, bit 5 data.test_fraction 0.5
// DataError and std::invalid_argument are the only acceptable failures.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/format.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t f = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string_view second;
  if (const size_t cut = rest.find('\xFF'); cut != std::string_view::npos) {
    second = rest.substr(cut + 1);
    rest = rest.substr(0, cut);
  }
  using namespace dl::data;
  const bool classes = (f & 1) != 0;
  const FormatDef& def = format_def(classes ? "text_classification" : "text");
  FormatArgs args;
  const std::string a = dl::fuzz::write_scratch("a.txt", std::string(rest));
  const std::string b = dl::fuzz::write_scratch("b.txt", std::string(second));
  dl::AttrMap train;
  SplitOptions carve;
  if (classes) {
    static const int64_t kMaxLen[] = {1, 3, 8, 256};
    args.options = {{"separator", std::string((f & 2) ? "%" : "")},
                    {"max_len", kMaxLen[(f >> 2) & 3]},
                    {"min_len", int64_t((f & 0x10) ? 2 : 1)}};
    train = {{"files", std::vector<std::string>{a, b}}};
    if (f & 0x20) carve.test_fraction = 0.5;
  } else {
    args.options = {{"level", std::string((f & 2) ? "byte" : "char")},
                    {"seq_len", int64_t(1 + ((f >> 2) & 3))},
                    {"holdout", (f & 0x10) ? 0.3 : 0.0}};
    train = {{"file", a}};
  }
  fill_attr_defaults(def.attrs, args.options);
  fill_attr_defaults(def.split_attrs, train);
  args.splits["train"] = train;
  dl::fuzz::open_and_read_every_sample(def, args, carve);
  return 0;
}

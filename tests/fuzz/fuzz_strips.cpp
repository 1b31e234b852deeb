// libFuzzer target: data.format fashion_strips (datasets/formats/strips.*): its options and
// plans over fuzzed IDX files, through the same calls as a recipe's data setup.
//
// Input: four option bytes, then an images file followed by a labels file (split at the first
// labels magic 00 00 08 01 after the images magic, as fuzz_idx does; the natural seed is the
// two files concatenated). Options: byte 0 = max_len (1 + b % 8) and bit 7 num_classes 0 (else
// 10); byte 1 = seed; byte 2 = the train split's num_strips (0..255; 0 = one per image);
// byte 3 = val_size (b & 7), whether a test split reads the same files (bit 3), data.holdout
// ((b >> 4) & 7 images) and data.holdout_strips (bit 7: 3, else one per held-out image).
// Then: plan_strips with those numbers, peek (the format's peek), open_splits and, for every
// split, get() of its first 64 strips and collate of them (the batch pads the targets and adds
// target_lengths). DataError and std::invalid_argument (an option the data cannot satisfy:
// open_data reports it as a config error) are the only acceptable failures.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/dataset.h"
#include "datasets/format.h"
#include "datasets/formats/strips.h"
#include "datasets/sample.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

void read_split(const dl::data::DatasetPtr& d) {
  if (!d) return;
  std::vector<dl::data::Sample> samples;
  for (int64_t i = 0; i < d->size() && i < 64; ++i) samples.push_back(d->get(i));
  if (!samples.empty()) dl::data::collate(samples);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const int64_t max_len = 1 + data[0] % 8, num_classes = (data[0] & 0x80) ? 0 : 10;
  const int64_t seed = data[1], num_strips = data[2], val_size = data[3] & 7;
  const bool test_split = (data[3] & 8) != 0;
  std::string_view rest(reinterpret_cast<const char*>(data + 4), size - 4);
  constexpr std::string_view kLabelsMagic("\0\0\x08\x01", 4);
  const size_t cut = rest.size() > 4 ? rest.find(kLabelsMagic, 4) : std::string_view::npos;
  const std::string_view images = rest.substr(0, cut);
  const std::string_view labels = cut == std::string_view::npos ? std::string_view() : rest.substr(cut);
  dl::fuzz::write_scratch("images.idx", images);
  dl::fuzz::write_scratch("labels.idx", labels);

  try {
    dl::data::plan_strips(static_cast<int64_t>(images.size() % 512), num_strips, max_len,
                          static_cast<uint64_t>(seed), data[3] % 3);
  } catch (const std::invalid_argument&) {
  }

  const dl::data::FormatDef& def = dl::data::format_def("fashion_strips");
  dl::data::FormatArgs args;
  args.root = dl::fuzz::scratch_dir().string();
  args.options = {{"max_len", max_len},
                  {"seed", seed},
                  {"num_classes", num_classes},
                  {"holdout", int64_t{(data[3] >> 4) & 7}},
                  {"holdout_strips", int64_t{(data[3] & 0x80) ? 3 : 0}}};
  dl::fill_attr_defaults(def.attrs, args.options);
  for (const char* split : {"train", "test"}) {
    if (std::string(split) == "test" && !test_split) continue;
    dl::AttrMap keys = {{"images", std::string("images.idx")}, {"labels", std::string("labels.idx")},
                        {"num_strips", num_strips}};
    dl::fill_attr_defaults(def.split_attrs, keys);
    args.splits[split] = std::move(keys);
  }
  try {
    def.peek(args);
  } catch (const dl::DataError&) {
  } catch (const std::invalid_argument&) {
  }
  try {
    dl::data::SplitOptions split_options;
    split_options.val_size = val_size;
    const dl::data::Splits s = dl::data::open_splits(def, args, split_options);
    read_split(s.train);
    read_split(s.val);
    read_split(s.test);
  } catch (const dl::DataError&) {
  } catch (const std::invalid_argument&) {
  }
  return 0;
}

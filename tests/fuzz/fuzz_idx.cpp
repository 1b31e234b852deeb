// libFuzzer target: the IDX reader (datasets/idx.*), raw and gzip, through the functions the
// DataLoader's setup calls.
//
// Input: one flags byte, then an images file followed by a labels file; the labels file
// starts at the first labels magic (00 00 08 01) after the images magic, so the natural seed
// is the two files concatenated. Flags: bit 0 gzips the images, bit 1 the labels (so the
// fuzzer explores IDX contents behind a valid gzip stream too; raw gzip bytes arrive through
// the seeds), bit 2 infers num_classes instead of using 10, bits 3-4 pick val_size 0..3.
// Then: read_idx_header and read_idx_u8 on both, load_idx_dataset and load_idx_splits on the
// pair. DataError is the only acceptable failure.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "datasets/dataset.h"
#include "datasets/idx.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  constexpr std::string_view kLabelsMagic("\0\0\x08\x01", 4);
  size_t cut = rest.size() > 4 ? rest.find(kLabelsMagic, 4) : std::string_view::npos;
  std::string_view images = rest.substr(0, cut);
  std::string_view labels = cut == std::string_view::npos ? std::string_view() : rest.substr(cut);

  dl::data::IdxFiles files{
      dl::fuzz::write_scratch("images.idx", (flags & 1) ? dl::fuzz::gzip(images) : std::string(images)),
      dl::fuzz::write_scratch("labels.idx", (flags & 2) ? dl::fuzz::gzip(labels) : std::string(labels))};
  for (const std::string& path : {files.images, files.labels}) {
    try {
      dl::data::read_idx_header(path, "images");
      dl::data::read_idx_u8(path);
    } catch (const dl::DataError&) {
    }
  }
  try {
    dl::data::load_idx_dataset(files, (flags & 4) ? 0 : 10, "train");
  } catch (const dl::DataError&) {
  }
  try {
    dl::data::IdxSplitSpec spec{files, files, (flags >> 3) & 3, (flags & 4) ? 0 : 10};
    dl::data::load_idx_splits(spec);
  } catch (const dl::DataError&) {
  }
  return 0;
}

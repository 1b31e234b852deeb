// libFuzzer target: the image decoder of data.format image_folder (decode_image in
// datasets/formats/image_folder.h: OpenCV's PNG/JPEG/BMP/PPM/TIFF/WebP readers plus the JPEG
// signature and end-marker checks and the BGR(A)/gray -> planar RGB/gray conversion).
//
// Input: one flags byte, then the file's bytes. Flags: bit 0 decodes as gray (1 channel)
// instead of rgb. A decoded image must have the shape [C, H, W] with C = 1 or 3 and H, W >= 1;
// DataError is the only acceptable failure. Run with OPENCV_IO_MAX_IMAGE_PIXELS set low
// (scripts/fuzz.sh does), or a header claiming a gigapixel image makes OpenCV allocate it.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "datasets/data_error.h"
#include "datasets/formats/image_folder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto color = (data[0] & 1) ? dl::data::ImageColor::gray : dl::data::ImageColor::rgb;
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    const dl::Tensor t = dl::data::decode_image(bytes, color, "fuzz-input");
    const int64_t c = color == dl::data::ImageColor::gray ? 1 : 3;
    if (t.dim() != 3 || t.size(0) != c || t.size(1) < 1 || t.size(2) < 1 || t.dtype() != dl::DType::U8) std::abort();
  } catch (const dl::DataError&) {
  }
  return 0;
}

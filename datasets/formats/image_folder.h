// data.format: image_folder (torchvision.datasets.ImageFolder): root/<class>/<image>, decoded
// with OpenCV. The format registers itself (image_folder.cpp); this header declares the decoder
// it shares with its fuzz target (tests/fuzz/fuzz_image.cpp).
//
//   data:
//     format: image_folder
//     root: /data/fashion-png
//     color: gray                  # rgb (default, ImageFolder's convert("RGB")) or gray (1 channel)
//     train: {dir: train}          # root/train/<class>/<image>; classes = sorted folder names
//     test: {dir: test}            # must hold the same class folders as train
//
// Images may differ in size: get() returns each as stored, and info().input_shape is the first
// image's. A batch needs equal shapes, so such folders need a resize or crop in data.transforms
// (collate's error says so, naming the two shapes).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "engine/tensor/tensor.h"

namespace dl::data {

enum class ImageColor { gray, rgb };

// torchvision's IMG_EXTENSIONS, lower case (a file matches case-insensitively): every one of
// them decodes with this OpenCV build (PNG, JPEG, BMP, PPM/PGM, TIFF, WebP).
const std::vector<std::string>& image_extensions();

// Decodes one image file's bytes to u8 [C, H, W] (C = 1 for gray, 3 for rgb; channels in R, G,
// B order), as PIL's Image.open(f).convert("RGB" / "L") does: EXIF orientation ignored, alpha
// dropped, gray -> RGB replicated, RGB -> gray with PIL's ITU-R 601-2 weights and rounding
// ((R*19595 + G*38470 + B*7471 + 0x8000) >> 16). Throws DataError naming `source` for bytes that
// are empty, do not start with the signature of one of those formats (OpenCV's other decoders,
// JPEG 2000, OpenEXR, ..., are never reached), or are corrupt or truncated (a JPEG without its
// end-of-image marker included: libjpeg would pad it with gray, PIL refuses it). Thread-safe.
Tensor decode_image(std::string_view bytes, ImageColor color, const std::string& source);

}  // namespace dl::data

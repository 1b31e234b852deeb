// IDX files (the MNIST / Fashion-MNIST container format), raw or gzip-compressed.
//
//   Tensor images = dl::data::read_idx_u8("train-images-idx3-ubyte.gz", 3, "images");
//   // u8 [60000, 28, 28]
//
// Layout: magic = 0x00 0x00 <type code> <ndim>, then ndim big-endian u32 dims, then the
// elements in row-major order. Only type code 0x08 (unsigned byte) is supported. Gzip is
// detected by the 1f 8b magic, never by the file name.
//
// Everything is validated; any problem throws dl::DataError "<path>: <problem>" (with expected
// vs actual byte counts for truncation). The header's dims are never trusted for allocation:
// a raw file must hold exactly the declared bytes before anything is allocated, and a gzip
// file can declare at most what its compressed size could possibly expand to (deflate's
// 1032:1 limit); whatever lies beyond the declared data is an error too.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/data_error.h"
#include "engine/tensor/tensor.h"

namespace dl::data {

// The header of an IDX file, as read by read_idx_header.
struct IdxHeader {
  uint8_t type_code = 0;      // 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64
  Shape dims;                 // as declared
  bool gzip = false;          // the file is gzip-compressed
  int64_t header_bytes = 0;   // 4 + 4 * ndim
};

// "unsigned byte" for 0x08, ..., "invalid" for an unknown code.
const char* idx_type_name(uint8_t type_code);

// Reads and validates only the header (magic, type code, dims). `what` ("images", "labels")
// only enriches error messages.
IdxHeader read_idx_header(const std::string& path, const std::string& what = "");

// Reads a whole u8 IDX file into a contiguous u8 tensor shaped like the file's dims.
// `expected_ndim` > 0 makes any other rank an error.
Tensor read_idx_u8(const std::string& path, int expected_ndim = 0, const std::string& what = "");

// The bytes of an IDX u8 file: header + data (data: shape_numel(dims) bytes).
std::vector<uint8_t> encode_idx_u8(const Shape& dims, const uint8_t* data);
// Writes an IDX u8 file, gzip-compressed when `gzip` (for tests and small tools).
void write_idx_u8(const std::string& path, const Shape& dims, const uint8_t* data, bool gzip);

}  // namespace dl::data

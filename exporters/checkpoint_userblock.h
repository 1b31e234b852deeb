// Internal to exporters/checkpoint*.cpp: the 512-byte dltool header in the HDF5 user block.
//
// Why: HDF5 1.10 checksums most of its own metadata (we write the 1.8 object format), but not
// the global heap that holds variable-length strings, nor raw data, and it can crash on a
// corrupt global heap. So every checkpoint dltool writes starts with a small text header in
// the HDF5 user block (bytes HDF5 reserves for applications and ignores; h5py and h5dump read
// such files unchanged) that records the size and a CRC-32C of everything after it. The loader
// verifies it before HDF5 sees a byte, so a damaged file of ours is always reported, never
// crashes the reader, and flipped weight bits are caught too. `head -c 200 last.h5` shows:
//
//   dltool.checkpoint user block 1
//   payload_bytes 123456
//   payload_crc32c 0x1a2b3c4d
//   (then a comment line and NUL padding to 512 bytes; the HDF5 superblock follows)
//
// Files without the header (e.g. written by h5py) are read unverified, with HDF5's own checks.
// Editing a checkpoint in place with h5py leaves the header stale, so the loader rejects it;
// blanking the header (dd if=/dev/zero of=FILE bs=512 count=1 conv=notrunc) accepts the edit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace dl::ckpt_detail {

inline constexpr size_t kUserBlockBytes = 512;
inline constexpr const char* kUserBlockMagic = "dltool.checkpoint user block ";
inline constexpr int kUserBlockVersion = 1;

// CRC-32C (Castagnoli), standard pre/post inversion; `crc` continues a previous result.
// Uses the SSE4.2 instruction when the CPU has it. crc32c("123456789") == 0xE3069283.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);

// The header text, NUL-padded to kUserBlockBytes.
std::string user_block(uint64_t payload_bytes, uint32_t payload_crc);

struct UserBlock {
  bool present = false;  // starts with kUserBlockMagic
  bool valid = false;    // and parses
  int version = 0;
  uint64_t payload_bytes = 0;
  uint32_t payload_crc = 0;
};
UserBlock parse_user_block(const char* data, size_t n);

// CRC-32C of bytes [offset, EOF) of `fd` and their count. Returns 0 or an errno.
int crc_of_file(int fd, uint64_t offset, uint32_t& crc, uint64_t& nbytes);

}  // namespace dl::ckpt_detail

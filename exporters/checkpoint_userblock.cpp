#include "exporters/checkpoint_userblock.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <vector>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace dl::ckpt_detail {
namespace {

std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}

uint32_t crc32c_sw(const unsigned char* p, size_t n, uint32_t crc) {
  static const std::array<uint32_t, 256> table = make_table();
  uint32_t c = ~crc;
  while (n--) c = table[(c ^ *p++) & 0xFF] ^ (c >> 8);
  return ~c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t crc32c_hw(const unsigned char* p, size_t n, uint32_t crc) {
  uint64_t c = ~crc;
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<uint32_t>(c);
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return ~c32;
}
#endif

}  // namespace

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
#if defined(__x86_64__)
  static const bool hw = __builtin_cpu_supports("sse4.2");
  if (hw) return crc32c_hw(p, n, crc);
#endif
  return crc32c_sw(p, n, crc);
}

std::string user_block(uint64_t payload_bytes, uint32_t payload_crc) {
  char buf[kUserBlockBytes] = {};
  std::snprintf(buf, sizeof buf,
                "%s%d\npayload_bytes %" PRIu64 "\npayload_crc32c 0x%08" PRIx32
                "\n# HDF5 file follows at byte %zu; the numbers cover bytes %zu..end\n",
                kUserBlockMagic, kUserBlockVersion, payload_bytes, payload_crc, kUserBlockBytes,
                kUserBlockBytes);
  return std::string(buf, sizeof buf);
}

UserBlock parse_user_block(const char* data, size_t n) {
  UserBlock ub;
  const size_t mlen = std::strlen(kUserBlockMagic);
  if (n < mlen || std::memcmp(data, kUserBlockMagic, mlen) != 0) return ub;
  ub.present = true;
  std::istringstream in(std::string(data + mlen, strnlen(data + mlen, n - mlen)));
  bool have_bytes = false, have_crc = false;
  if (!(in >> ub.version)) return ub;
  std::string key;
  while (in >> key) {
    if (key == "payload_bytes") {
      have_bytes = static_cast<bool>(in >> ub.payload_bytes);
    } else if (key == "payload_crc32c") {
      std::string hex;
      if (in >> hex) {
        char* end = nullptr;
        unsigned long v = std::strtoul(hex.c_str(), &end, 16);
        have_crc = end && *end == '\0' && v <= 0xFFFFFFFFul;
        ub.payload_crc = static_cast<uint32_t>(v);
      }
    } else {
      std::string rest;
      std::getline(in, rest);  // comments and unknown fields
    }
  }
  ub.valid = have_bytes && have_crc;
  return ub;
}

int crc_of_file(int fd, uint64_t offset, uint32_t& crc, uint64_t& nbytes) {
  std::vector<unsigned char> buf(size_t{1} << 20);
  crc = 0;
  nbytes = 0;
  for (;;) {
    ssize_t got = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(offset + nbytes));
    if (got < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (got == 0) return 0;
    crc = crc32c(buf.data(), static_cast<size_t>(got), crc);
    nbytes += static_cast<uint64_t>(got);
  }
}

}  // namespace dl::ckpt_detail

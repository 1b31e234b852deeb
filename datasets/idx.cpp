#include "datasets/idx.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>

namespace dl::data {
namespace {

// Deflate cannot expand by more than 1032:1 (RFC 1951 max run encoding), so a gzip file of
// S bytes never decompresses to more than this. Used to refuse headers that declare more data
// than the file could possibly hold, before allocating anything.
constexpr uint64_t kMaxDeflateRatio = 1032;
constexpr size_t kInputChunk = size_t(256) << 10;
constexpr int kMaxDims = 16;  // IDX allows 255; nothing real needs more than a few

std::string label_of(const std::string& path, const std::string& what) {
  return what.empty() ? "'" + path + "'" : "'" + path + "' (" + what + ")";
}

[[noreturn]] void fail(const std::string& who, const std::string& problem) {
  throw DataError(who + ": " + problem);
}

std::string hex_bytes(const uint8_t* p, size_t n) {
  std::string s;
  char buf[4];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", p[i]);
    if (i) s += ' ';
    s += buf;
  }
  return s;
}

std::string dims_str(const Shape& d) { return shape_str(d); }

// A byte stream over a regular file, transparently inflating gzip (sniffed by magic 1f 8b).
// read() returns fewer bytes than asked only at the end of the data; I/O errors and corrupt
// compressed data throw DataError.
class Source {
 public:
  Source(const std::string& path, std::string who) : who_(std::move(who)) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      int e = errno;
      fail(who_, e == ENOENT ? "file not found" : std::string("cannot access: ") + std::strerror(e));
    }
    if (S_ISDIR(st.st_mode)) fail(who_, "is a directory, not a file");
    if (!S_ISREG(st.st_mode)) fail(who_, "is not a regular file");
    f_.reset(std::fopen(path.c_str(), "rb"));
    if (!f_) fail(who_, std::string("cannot open: ") + std::strerror(errno));
    file_size_ = static_cast<uint64_t>(st.st_size);
    uint8_t sniff[2] = {0, 0};
    size_t n = std::fread(sniff, 1, 2, f_.get());
    check_io();
    gzip_ = n == 2 && sniff[0] == 0x1f && sniff[1] == 0x8b;
    if (std::fseek(f_.get(), 0, SEEK_SET) != 0) fail(who_, std::string("cannot seek: ") + std::strerror(errno));
    if (gzip_) {
      in_.resize(kInputChunk);
      std::memset(&zs_, 0, sizeof zs_);
      if (inflateInit2(&zs_, 15 + 16) != Z_OK) throw std::bad_alloc();  // 16: gzip wrapper only
      z_open_ = true;
    }
  }
  ~Source() {
    if (z_open_) inflateEnd(&zs_);
  }
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;

  bool gzip() const { return gzip_; }
  uint64_t file_size() const { return file_size_; }
  // gzip: the input ended inside a member (the compressed stream is cut short).
  bool cut_short() const { return cut_short_; }

  size_t read(uint8_t* dst, size_t n) {
    if (!gzip_) {
      size_t got = std::fread(dst, 1, n, f_.get());
      check_io();
      return got;
    }
    size_t total = 0;
    while (total < n && !done_) {
      // zlib counts in uInt: feed at most 1 GiB of output space per call.
      size_t want = std::min(n - total, size_t(1) << 30);
      zs_.next_out = dst + total;
      zs_.avail_out = static_cast<uInt>(want);
      inflate_some();
      total += want - zs_.avail_out;
    }
    return total;
  }

 private:
  void check_io() {
    if (std::ferror(f_.get())) fail(who_, std::string("read error: ") + std::strerror(errno));
  }

  void refill() {
    size_t got = std::fread(in_.data(), 1, in_.size(), f_.get());
    check_io();
    if (got < in_.size()) in_eof_ = true;
    zs_.next_in = in_.data();
    zs_.avail_in = static_cast<uInt>(got);
  }

  // Inflates until the output space is full or the data ends.
  void inflate_some() {
    while (zs_.avail_out > 0) {
      if (zs_.avail_in == 0 && !in_eof_) refill();
      if (zs_.avail_in == 0 && in_eof_) {
        // End of the file: clean only right after a complete member.
        if (!member_ended_) cut_short_ = true;
        done_ = true;
        return;
      }
      if (member_ended_) {
        // More input after a complete member: only another gzip member may follow
        // (concatenated .gz files are valid gzip).
        if (zs_.next_in[0] != 0x1f) fail(who_, "unexpected trailing bytes after the gzip stream");
        if (inflateReset(&zs_) != Z_OK) fail(who_, "corrupt gzip data (cannot reset inflater)");
        member_ended_ = false;
      }
      uInt in_before = zs_.avail_in, out_before = zs_.avail_out;
      int ret = inflate(&zs_, Z_NO_FLUSH);
      if (ret == Z_STREAM_END) {
        member_ended_ = true;
        continue;
      }
      if (ret == Z_OK) continue;
      if (ret == Z_BUF_ERROR) {
        // No progress was possible: needs more input (handled above on the next turn). If it
        // had input and output space, zlib is stuck: treat as corrupt rather than loop.
        if (zs_.avail_in == in_before && zs_.avail_out == out_before && zs_.avail_in > 0)
          fail(who_, "corrupt gzip data (inflate made no progress)");
        continue;
      }
      if (ret == Z_MEM_ERROR) throw std::bad_alloc();
      fail(who_, std::string("corrupt gzip data (zlib: ") + (zs_.msg ? zs_.msg : "error " + std::to_string(ret)) + ")");
    }
  }

  std::string who_;
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Closer> f_;
  uint64_t file_size_ = 0;
  bool gzip_ = false;
  z_stream zs_{};
  bool z_open_ = false;
  std::vector<uint8_t> in_;
  bool in_eof_ = false, member_ended_ = false, done_ = false, cut_short_ = false;
};

// Reads and validates the header from `src`; leaves `src` at the first data byte.
IdxHeader parse_header(Source& src, const std::string& who) {
  IdxHeader h;
  h.gzip = src.gzip();
  const char* gz = src.gzip() ? " (after gzip decompression)" : "";
  uint8_t magic[4];
  size_t got = src.read(magic, 4);
  if (got < 4)
    fail(who, "truncated IDX header: expected at least 4 bytes, got " + std::to_string(got) + gz);
  if (magic[0] != 0 || magic[1] != 0)
    fail(who, "not an IDX file: wrong magic number " + hex_bytes(magic, 4) +
                  " (an IDX file starts with 00 00 <type code> <ndim>)");
  h.type_code = magic[2];
  if (h.type_code != 0x08) {
    char code[8];
    std::snprintf(code, sizeof code, "0x%02x", h.type_code);
    std::string name = idx_type_name(h.type_code);
    fail(who, std::string(name == "invalid" ? "invalid IDX type code " : "unsupported IDX type code ") +
                  code + " (" + name + "); only 0x08 (unsigned byte) is supported");
  }
  int ndim = magic[3];
  if (ndim == 0) fail(who, "IDX header declares 0 dimensions");
  if (ndim > kMaxDims)
    fail(who, "IDX header declares " + std::to_string(ndim) + " dimensions (at most " +
                  std::to_string(kMaxDims) + " supported)");
  h.header_bytes = 4 + 4 * int64_t(ndim);
  uint8_t dimbuf[4 * kMaxDims];
  got = src.read(dimbuf, 4 * size_t(ndim));
  if (got < 4 * size_t(ndim))
    fail(who, "truncated IDX header: expected " + std::to_string(h.header_bytes) + " bytes for " +
                  std::to_string(ndim) + " dimensions, got " + std::to_string(4 + got) + gz);
  for (int i = 0; i < ndim; ++i) {
    const uint8_t* p = dimbuf + 4 * i;
    h.dims.push_back(int64_t(p[0]) << 24 | int64_t(p[1]) << 16 | int64_t(p[2]) << 8 | int64_t(p[3]));
  }
  return h;
}

// Number of data bytes the dims declare; throws when the dims are impossibly large. A zero
// dim declares no data, but the other dims still shape (and stride) the tensor, so their
// product is bounded too: [0, 2^31, 2^31, 2^31] must not reach the tensor's int64 strides.
uint64_t declared_bytes(const IdxHeader& h, const std::string& who) {
  unsigned __int128 total = 1;
  bool empty = false;
  for (int64_t d : h.dims) {
    empty = empty || d == 0;
    total *= static_cast<uint64_t>(std::max<int64_t>(d, 1));
    if (total > (uint64_t(1) << 62)) fail(who, "IDX dims " + dims_str(h.dims) + " are impossibly large");
  }
  return empty ? 0 : static_cast<uint64_t>(total);
}

// Counts the bytes left in `src` (for error messages), reading at most `limit`.
uint64_t count_rest(Source& src, uint64_t limit) {
  std::vector<uint8_t> scratch(size_t(1) << 20);
  uint64_t total = 0;
  while (total < limit) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(scratch.size(), limit - total));
    size_t got = src.read(scratch.data(), want);
    total += got;
    if (got < want) break;
  }
  return total;
}

[[noreturn]] void fail_truncated(const std::string& who, const IdxHeader& h, uint64_t expected,
                                 uint64_t actual, bool gzip, bool cut_short) {
  std::string msg = "truncated IDX data: dims " + dims_str(h.dims) + " need " + std::to_string(expected) +
                    " data bytes after the " + std::to_string(h.header_bytes) + "-byte header, but only " +
                    std::to_string(actual) + " follow it";
  if (gzip) msg += cut_short ? " (after gzip decompression; the gzip stream is cut short)" : " (after gzip decompression)";
  fail(who, msg);
}

}  // namespace

const char* idx_type_name(uint8_t type_code) {
  switch (type_code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return "invalid";
  }
}

IdxHeader read_idx_header(const std::string& path, const std::string& what) {
  std::string who = label_of(path, what);
  Source src(path, who);
  return parse_header(src, who);
}

Tensor read_idx_u8(const std::string& path, int expected_ndim, const std::string& what) {
  const std::string who = label_of(path, what);
  Source src(path, who);
  IdxHeader h = parse_header(src, who);
  if (expected_ndim > 0 && static_cast<int>(h.dims.size()) != expected_ndim)
    fail(who, "expected " + std::to_string(expected_ndim) + " dimension" + (expected_ndim == 1 ? "" : "s") +
                  ", the IDX header declares " + std::to_string(h.dims.size()) + " " + dims_str(h.dims));
  const uint64_t expected = declared_bytes(h, who);

  if (!src.gzip()) {
    // Raw: the file size settles it before any allocation.
    uint64_t actual = src.file_size() - static_cast<uint64_t>(h.header_bytes);
    if (actual < expected) fail_truncated(who, h, expected, actual, false, false);
    if (actual > expected)
      fail(who, std::to_string(actual - expected) + " unexpected bytes after the data: dims " + dims_str(h.dims) +
                    " need " + std::to_string(expected) + " bytes after the " + std::to_string(h.header_bytes) +
                    "-byte header, the file has " + std::to_string(actual));
  } else {
    // Gzip: refuse declarations the compressed size cannot possibly hold; the count in the
    // message comes from actually decompressing (bounded by the same limit).
    uint64_t bound = src.file_size() * kMaxDeflateRatio + 4096;
    if (expected > bound) {
      uint64_t actual = count_rest(src, bound + 1);
      fail_truncated(who, h, expected, actual, true, src.cut_short());
    }
  }

  Tensor t;
  try {
    t = empty(h.dims, DType::U8);
  } catch (const OutOfMemoryError& e) {
    throw e.with_context(who);
  }
  uint8_t* dst = expected ? t.data<uint8_t>() : nullptr;
  uint64_t got = expected ? src.read(dst, static_cast<size_t>(expected)) : 0;
  if (got < expected) fail_truncated(who, h, expected, got, src.gzip(), src.cut_short());
  uint8_t extra;
  if (src.read(&extra, 1) != 0) {
    // Raw files were checked by size; this is decompressed data beyond the declared dims.
    uint64_t more = 1 + count_rest(src, uint64_t(1) << 30);
    fail(who, "unexpected data after the " + std::to_string(expected) + " bytes that dims " + dims_str(h.dims) +
                  " declare: " + std::to_string(more) + (more > (uint64_t(1) << 30) ? "+" : "") +
                  " more bytes after decompression");
  }
  if (src.cut_short())
    fail(who, "the gzip stream is cut short after the data (missing end of stream / checksum)");
  return t;
}

std::vector<uint8_t> encode_idx_u8(const Shape& dims, const uint8_t* data) {
  if (dims.empty() || dims.size() > size_t(kMaxDims))
    throw std::invalid_argument("encode_idx_u8: rank must be 1.." + std::to_string(kMaxDims));
  std::vector<uint8_t> out = {0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  for (int64_t d : dims) {
    if (d < 0 || d > int64_t(UINT32_MAX)) throw std::invalid_argument("encode_idx_u8: bad dim " + std::to_string(d));
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(uint64_t(d) >> s));
  }
  int64_t n = shape_numel(dims);
  out.insert(out.end(), data, data + n);
  return out;
}

void write_idx_u8(const std::string& path, const Shape& dims, const uint8_t* data, bool gzip) {
  std::vector<uint8_t> bytes = encode_idx_u8(dims, data);
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    if (!f) throw DataError("'" + path + "': cannot create: " + std::strerror(errno));
    size_t off = 0;
    bool ok = true;
    while (ok && off < bytes.size()) {
      unsigned chunk = static_cast<unsigned>(std::min<size_t>(bytes.size() - off, size_t(1) << 30));
      ok = gzwrite(f, bytes.data() + off, chunk) == static_cast<int>(chunk);
      off += chunk;
    }
    if (gzclose(f) != Z_OK || !ok) throw DataError("'" + path + "': write error");
    return;
  }
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw DataError("'" + path + "': cannot create: " + std::strerror(errno));
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  if (std::fclose(f) != 0 || !ok) throw DataError("'" + path + "': write error");
}

}  // namespace dl::data

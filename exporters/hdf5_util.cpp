#include "exporters/hdf5_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <new>

namespace dl::h5 {

QuietErrors::QuietErrors() {
  H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

QuietErrors::~QuietErrors() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }

std::string errno_text(int err_no) {
  char buf[256];
  // GNU strerror_r returns the message (possibly not in buf).
  std::string s = strerror_r(err_no, buf, sizeof buf);
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

std::string Error::plain() const {
  if (err_no != 0) return errno_text(err_no);
  return text.empty() ? std::string("unknown HDF5 error") : text;
}

namespace {

herr_t collect_error(unsigned /*n*/, const H5E_error2_t* e, void* data) {
  auto* out = static_cast<std::vector<std::string>*>(data);
  out->push_back(e->desc ? e->desc : "");
  return 0;
}

// The sec2 driver writes "... errno = 28, error message = 'No space left on device' ...".
int find_errno(const std::string& s) {
  size_t p = s.find("errno = ");
  if (p == std::string::npos) return 0;
  return std::atoi(s.c_str() + p + 8);
}

}  // namespace

Error last_error() {
  std::vector<std::string> descs;  // outermost (API call) first, innermost last
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_error, &descs);
  H5Eclear2(H5E_DEFAULT);
  Error err;
  for (const auto& d : descs)
    if (int e = find_errno(d)) err.err_no = e;
  // The innermost message is the most specific one ("truncated file: eof = ..."), but a few
  // innermost frames are bare ("addr overflow"); keep the outer context after it.
  for (auto it = descs.rbegin(); it != descs.rend(); ++it) {
    if (it->empty()) continue;
    if (err.text.empty()) {
      err.text = *it;
    } else if (err.text.size() < 60 && err.text.find(*it) == std::string::npos) {
      err.text += "; " + *it;
      break;
    } else {
      break;
    }
  }
  return err;
}

namespace {

struct RawLink {
  Link link;
  bool corder_valid;
  int64_t corder;
};

herr_t collect_link(hid_t, const char* name, const H5L_info_t* info, void* data) {
  static_cast<std::vector<RawLink>*>(data)->push_back(
      RawLink{Link{name, info->type == H5L_TYPE_HARD}, info->corder_valid > 0, info->corder});
  return 0;
}

herr_t collect_attr(hid_t, const char* name, const H5A_info_t*, void* data) {
  static_cast<std::vector<std::string>*>(data)->push_back(name);
  return 0;
}

}  // namespace

hid_t file_access_plist(bool for_write) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0) return fapl;
  // Writing: H5Fclose closes everything still open, so the file is complete when it returns.
  // Reading keeps the default degree: a file already open elsewhere in the process (with
  // default properties) can only be opened again with matching ones.
  bool ok = !for_write || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) >= 0;
#if H5_VERSION_GE(1, 10, 7)
  // Lock as HDF5 does by default (a file opened twice in one process must agree on it), but
  // carry on where the file system has no locks (Lustre, some NFS): ignore_when_disabled.
  ok = ok && H5Pset_file_locking(fapl, true, true) >= 0;
#endif
  if (for_write) ok = ok && H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) >= 0;
  if (!ok) {
    H5Pclose(fapl);
    return -1;
  }
  return fapl;
}

// ---------------------------------------------------------------------------
// The write driver behind write_access_plist: POSIX I/O like HDF5's sec2 driver, but a failed
// write is recorded instead of reported (see hdf5_util.h for why).
// ---------------------------------------------------------------------------
namespace {

struct DriverInfo {  // the driver's file-access property: where to report the first errno
  int* io_errno;
};

struct DriverFile {
  H5FD_t pub{};  // first member: HDF5 sees a DriverFile* as an H5FD_t* (zeroed, as sec2 does)
  int fd = -1;
  haddr_t eoa = 0, eof = 0;
  int* io_errno = nullptr;
  int err = 0;  // the first I/O error; later writes are skipped

  void record(int e) {
    if (err == 0) err = e;
    if (io_errno && *io_errno == 0) *io_errno = e;
  }
};

DriverFile* as_file(H5FD_t* f) { return reinterpret_cast<DriverFile*>(f); }
const DriverFile* as_file(const H5FD_t* f) { return reinterpret_cast<const DriverFile*>(f); }

H5FD_t* driver_open(const char* name, unsigned flags, hid_t fapl, haddr_t /*maxaddr*/) {
  const auto* info = static_cast<const DriverInfo*>(H5Pget_driver_info(fapl));
  int oflags = (flags & H5F_ACC_RDWR) ? O_RDWR : O_RDONLY;
  if (flags & H5F_ACC_TRUNC) oflags |= O_TRUNC;
  if (flags & H5F_ACC_CREAT) oflags |= O_CREAT;
  if (flags & H5F_ACC_EXCL) oflags |= O_EXCL;
  const int fd = ::open(name, oflags | O_CLOEXEC, 0666);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0) {
    if (info && info->io_errno && *info->io_errno == 0) *info->io_errno = errno;
    if (fd >= 0) ::close(fd);
    return nullptr;  // HDF5 reports "unable to open file"; the errno is in *io_errno
  }
  auto* f = new (std::nothrow) DriverFile;
  if (!f) {
    ::close(fd);
    return nullptr;
  }
  f->fd = fd;
  f->eof = static_cast<haddr_t>(st.st_size);
  f->io_errno = info ? info->io_errno : nullptr;
  return &f->pub;
}

herr_t driver_close(H5FD_t* file) {
  DriverFile* f = as_file(file);
  if (::close(f->fd) != 0) f->record(errno);  // NFS may report a failed write only here
  delete f;
  return 0;
}

herr_t driver_query(const H5FD_t*, unsigned long* flags) {
  // What sec2 declares: HDF5 may aggregate and cache small writes.
  if (flags)
    *flags = H5FD_FEAT_AGGREGATE_METADATA | H5FD_FEAT_ACCUMULATE_METADATA | H5FD_FEAT_DATA_SIEVE |
             H5FD_FEAT_AGGREGATE_SMALLDATA;
  return 0;
}

haddr_t driver_get_eoa(const H5FD_t* file, H5FD_mem_t) { return as_file(file)->eoa; }
herr_t driver_set_eoa(H5FD_t* file, H5FD_mem_t, haddr_t addr) {
  as_file(file)->eoa = addr;
  return 0;
}
haddr_t driver_get_eof(const H5FD_t* file, H5FD_mem_t) { return as_file(file)->eof; }

herr_t driver_read(H5FD_t* file, H5FD_mem_t, hid_t, haddr_t addr, size_t size, void* buf) {
  DriverFile* f = as_file(file);
  auto* p = static_cast<char*>(buf);
  while (size > 0) {
    const ssize_t n = ::pread(f->fd, p, size, static_cast<off_t>(addr));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;  // HDF5 reports a read error (nothing is left half-done)
    if (n == 0) {          // past the end of the file: zeros, as sec2 does
      std::memset(p, 0, size);
      break;
    }
    p += n;
    addr += static_cast<haddr_t>(n);
    size -= static_cast<size_t>(n);
  }
  return 0;
}

herr_t driver_write(H5FD_t* file, H5FD_mem_t, hid_t, haddr_t addr, size_t size, const void* buf) {
  DriverFile* f = as_file(file);
  if (f->err) return 0;  // the file is lost already: skip, and let HDF5 finish cleanly
  const auto* p = static_cast<const char*>(buf);
  const haddr_t end = addr + size;
  while (size > 0) {
    const ssize_t n = ::pwrite(f->fd, p, size, static_cast<off_t>(addr));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      f->record(n < 0 ? errno : EIO);
      return 0;
    }
    p += n;
    addr += static_cast<haddr_t>(n);
    size -= static_cast<size_t>(n);
  }
  f->eof = std::max(f->eof, end);
  return 0;
}

herr_t driver_truncate(H5FD_t* file, hid_t, hbool_t) {
  DriverFile* f = as_file(file);
  if (f->err || f->eoa == f->eof) return 0;
  if (::ftruncate(f->fd, static_cast<off_t>(f->eoa)) != 0) {
    f->record(errno);
    return 0;
  }
  f->eof = f->eoa;
  return 0;
}

hid_t register_write_driver() {
  H5FD_class_t cls{};
  cls.name = "dltool_write";
  cls.maxaddr = static_cast<haddr_t>(std::numeric_limits<off_t>::max());
  cls.fc_degree = H5F_CLOSE_WEAK;
  cls.fapl_size = sizeof(DriverInfo);
  cls.open = driver_open;
  cls.close = driver_close;
  cls.query = driver_query;
  cls.get_eoa = driver_get_eoa;
  cls.set_eoa = driver_set_eoa;
  cls.get_eof = driver_get_eof;
  cls.read = driver_read;
  cls.write = driver_write;
  cls.truncate = driver_truncate;
  const H5FD_mem_t map[] = H5FD_FLMAP_DICHOTOMY;
  std::copy(std::begin(map), std::end(map), cls.fl_map);
  return H5FDregister(&cls);  // HDF5 keeps its own copy of `cls`
}

// Registered once; H5close (at exit) unregisters it with every other driver.
hid_t write_driver() {
  static const hid_t id = register_write_driver();
  return id;
}

}  // namespace

hid_t write_access_plist(int* io_errno) {
  hid_t fapl = file_access_plist(true);
  if (fapl < 0) return fapl;
  const DriverInfo info{io_errno};
  const hid_t driver = write_driver();
  if (driver < 0 || H5Pset_driver(fapl, driver, &info) < 0) {
    H5Pclose(fapl);
    return -1;
  }
  return fapl;
}

bool list_links(hid_t group, std::vector<Link>& links) {
  links.clear();
  unsigned crt_flags = 0;
  {
    Handle gcpl(H5Gget_create_plist(group), H5Pclose);
    if (!gcpl) return false;
    if (H5Pget_link_creation_order(gcpl.id(), &crt_flags) < 0) return false;
  }
  // Native order, sorted here: asking HDF5 for a sorted iteration makes it build a link table,
  // and HDF5 1.10.8 frees uninitialised table entries when a damaged group fails half-way
  // (found by fuzzing h5py-written files under ASan).
  std::vector<RawLink> raw;
  hsize_t idx = 0;
  if (H5Literate(group, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, collect_link, &raw) < 0) return false;
  bool by_corder = (crt_flags & H5P_CRT_ORDER_TRACKED) != 0;
  for (const auto& r : raw) by_corder = by_corder && r.corder_valid;
  if (by_corder)
    std::stable_sort(raw.begin(), raw.end(), [](const RawLink& a, const RawLink& b) { return a.corder < b.corder; });
  else
    std::sort(raw.begin(), raw.end(), [](const RawLink& a, const RawLink& b) { return a.link.name < b.link.name; });
  links.reserve(raw.size());
  for (auto& r : raw) links.push_back(std::move(r.link));
  return true;
}

bool attr_names(hid_t obj, std::vector<std::string>& names) {
  names.clear();
  hsize_t idx = 0;  // native order + our own sort, for the reason given in list_links
  if (H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, collect_attr, &names) < 0) return false;
  std::sort(names.begin(), names.end());
  return true;
}

hid_t vlen_str_type() {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0) return t;
  if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
    H5Tclose(t);
    return -1;
  }
  return t;
}

namespace {

// A little-endian 2-byte float with sign bit 15, `esize` exponent bits at bit `epos` (biased
// by `ebias`) and the mantissa below them.
hid_t float16_type(size_t epos, size_t esize, size_t ebias) {
  hid_t t = H5Tcopy(H5T_IEEE_F32LE);
  if (t < 0) return t;
  if (H5Tset_fields(t, 15, epos, esize, 0, epos) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, ebias) < 0) {
    H5Tclose(t);
    return -1;
  }
  return t;
}

}  // namespace

// Exactly how h5py defines '<f2', so h5py reads it back as numpy float16.
hid_t f16_le_type() { return float16_type(10, 5, 15); }

hid_t bf16_le_type() { return float16_type(7, 8, 127); }

bool same_float_layout(hid_t type, hid_t expected) {
  size_t f[5], g[5];
  if (H5Tget_class(type) != H5T_FLOAT || H5Tget_size(type) != H5Tget_size(expected) ||
      H5Tget_fields(type, &f[0], &f[1], &f[2], &f[3], &f[4]) < 0 ||
      H5Tget_fields(expected, &g[0], &g[1], &g[2], &g[3], &g[4]) < 0)
    return false;
  return std::equal(f, f + 5, g) && H5Tget_ebias(type) == H5Tget_ebias(expected);
}

hid_t h5py_bool_type() {
  hid_t t = H5Tenum_create(H5T_STD_I8LE);
  if (t < 0) return t;
  int8_t f = 0, tr = 1;
  if (H5Tenum_insert(t, "FALSE", &f) < 0 || H5Tenum_insert(t, "TRUE", &tr) < 0) {
    H5Tclose(t);
    return -1;
  }
  return t;
}

std::string describe_type(hid_t type) {
  H5T_class_t cls = H5Tget_class(type);
  size_t size = H5Tget_size(type);
  std::string bits = std::to_string(size * 8);
  switch (cls) {
    case H5T_INTEGER: {
      std::string s = (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + bits;
      return H5Tget_order(type) == H5T_ORDER_BE ? "big-endian " + s : s;
    }
    case H5T_FLOAT: {
      std::string s = "float" + bits;
      return H5Tget_order(type) == H5T_ORDER_BE ? "big-endian " + s : s;
    }
    case H5T_STRING: return H5Tis_variable_str(type) > 0 ? "variable-length string" : "string";
    case H5T_COMPOUND: return "compound";
    case H5T_OPAQUE: return "opaque";
    case H5T_BITFIELD: return "bitfield";
    case H5T_TIME: return "time";
    case H5T_REFERENCE: return "reference";
    case H5T_ENUM: return "enum";
    case H5T_VLEN: return "variable-length sequence";
    case H5T_ARRAY: return "array";
    default: return "unknown type";
  }
}

}  // namespace dl::h5

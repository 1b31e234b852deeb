#include "exporters/hdf5_util.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>

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

hid_t f16_le_type() {
  // Exactly how h5py defines '<f2', so h5py reads it back as numpy float16.
  hid_t t = H5Tcopy(H5T_IEEE_F32LE);
  if (t < 0) return t;
  if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
    H5Tclose(t);
    return -1;
  }
  return t;
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

#include "exporters/json.h"

#include <charconv>
#include <cmath>
#include <system_error>

namespace dl::json {

void append_quoted(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.reserve(out.size() + s.size() + 2);
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

std::string quote(std::string_view s) {
  std::string out;
  append_quoted(out, s);
  return out;
}

namespace {
template <class T>
std::string to_text(T v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
  if (r.ec != std::errc()) return "null";                  // cannot happen with 64 bytes
  return std::string(buf, r.ptr);
}
}  // namespace

std::string number(double v) { return std::isfinite(v) ? to_text(v) : "null"; }
std::string number(float v) { return std::isfinite(v) ? to_text(v) : "null"; }
std::string number(std::int64_t v) { return to_text(v); }
std::string number(std::uint64_t v) { return to_text(v); }

namespace detail {
void put(std::string& out, std::nullptr_t) { out += "null"; }
void put(std::string& out, bool v) { out += v ? "true" : "false"; }
void put(std::string& out, std::int64_t v) { out += number(v); }
void put(std::string& out, std::uint64_t v) { out += number(v); }
void put(std::string& out, double v) { out += number(v); }
void put(std::string& out, float v) { out += number(v); }
void put(std::string& out, std::string_view v) { append_quoted(out, v); }
void put(std::string& out, const Object& v) { v.append_to(out); }
void put(std::string& out, const Array& v) { v.append_to(out); }
}  // namespace detail

void Object::key_(std::string_view key) {
  if (!body_.empty()) body_ += ',';
  append_quoted(body_, key);
  body_ += ':';
}

Object& Object::add_raw(std::string_view key, std::string_view raw_json) {
  key_(key);
  body_ += raw_json;
  return *this;
}

void Object::append_to(std::string& out) const {
  out += '{';
  out += body_;
  out += '}';
}

Array& Array::push_raw(std::string_view raw_json) {
  if (!body_.empty()) body_ += ',';
  body_ += raw_json;
  return *this;
}

void Array::append_to(std::string& out) const {
  out += '[';
  out += body_;
  out += ']';
}

}  // namespace dl::json

// Minimal JSON *writer* (no parser): builds one object/array as text, keys in insertion
// order. Used for metrics.jsonl, the `--json` progress mode and the CLI's `--json` outputs.
//
//   dl::json::Object o;
//   o.add("step", 5).add("loss", 0.3).add("split", "train");
//   std::string s = o.str();   // {"step":5,"loss":0.3,"split":"train"}
//
// Numbers: integers exactly; doubles in the shortest form that round-trips (std::to_chars),
// floats in the shortest form that round-trips *as a float* (0.1f -> 0.1); NaN and +-Inf,
// which JSON cannot represent, are written as null. Strings are escaped per RFC 8259
// (", \, control characters; bytes >= 0x80 pass through, so UTF-8 stays UTF-8).
// Duplicate keys are not detected: the caller owns the key set.
#pragma once

#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dl::json {

// `s` as a JSON string literal, quotes included.
std::string quote(std::string_view s);
// Appends quote(s) to `out`.
void append_quoted(std::string& out, std::string_view s);

// Number text as described above ("null" for non-finite values).
std::string number(double v);
std::string number(float v);
std::string number(std::int64_t v);
std::string number(std::uint64_t v);

class Object;
class Array;

namespace detail {
// Shared by Object and Array: renders one value into `out`.
void put(std::string& out, std::nullptr_t);
void put(std::string& out, bool v);
void put(std::string& out, std::int64_t v);
void put(std::string& out, std::uint64_t v);
void put(std::string& out, double v);
void put(std::string& out, float v);
void put(std::string& out, std::string_view v);
void put(std::string& out, const Object& v);
void put(std::string& out, const Array& v);

template <class T>
void put_any(std::string& out, const T& v) {
  if constexpr (std::same_as<T, bool>) {
    put(out, v);
  } else if constexpr (std::signed_integral<T>) {
    put(out, static_cast<std::int64_t>(v));
  } else if constexpr (std::unsigned_integral<T>) {
    put(out, static_cast<std::uint64_t>(v));
  } else if constexpr (std::same_as<T, float>) {
    put(out, v);
  } else if constexpr (std::floating_point<T>) {
    put(out, static_cast<double>(v));
  } else if constexpr (std::same_as<T, std::nullptr_t>) {
    put(out, nullptr);
  } else if constexpr (std::convertible_to<const T&, std::string_view>) {
    put(out, std::string_view(v));
  } else {
    put(out, v);  // Object, Array
  }
}
}  // namespace detail

// A JSON object under construction. add() returns *this for chaining.
class Object {
 public:
  template <class T>
  Object& add(std::string_view key, const T& value) {
    key_(key);
    detail::put_any(body_, value);
    return *this;
  }
  // std::optional: an empty optional writes null.
  template <class T>
  Object& add(std::string_view key, const std::optional<T>& value) {
    if (value) return add(key, *value);
    return add(key, nullptr);
  }
  // Inserts `raw_json` verbatim as the value (must already be valid JSON).
  Object& add_raw(std::string_view key, std::string_view raw_json);

  bool empty() const { return body_.empty(); }
  std::string str() const { return "{" + body_ + "}"; }
  void append_to(std::string& out) const;

 private:
  void key_(std::string_view key);
  std::string body_;  // members without the braces
};

// A JSON array under construction. push() returns *this for chaining.
class Array {
 public:
  template <class T>
  Array& push(const T& value) {
    if (!body_.empty()) body_ += ',';
    detail::put_any(body_, value);
    return *this;
  }
  template <class T>
  Array& push(const std::optional<T>& value) {
    if (value) return push(*value);
    return push(nullptr);
  }
  Array& push_raw(std::string_view raw_json);

  // Every element of `values`, in order: Array::of(shape), Array::of(class_names).
  template <class T>
  static Array of(const std::vector<T>& values) {
    Array a;
    for (const T& v : values) a.push(v);
    return a;
  }

  bool empty() const { return body_.empty(); }
  std::string str() const { return "[" + body_ + "]"; }
  void append_to(std::string& out) const;

 private:
  std::string body_;
};

}  // namespace dl::json

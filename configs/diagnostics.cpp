// Diagnostics: formatting, ConfigError, and "did you mean" suggestions.
#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "configs/detail.h"

namespace dl {

std::string config_detail::printable(const std::string& s) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u != 0x7f) out += c;
    else out += std::string("\\x") + hex[u >> 4] + hex[u & 15];
  }
  return out;
}

// Keys, values and file names come from the user: control characters (a NUL, an ESC that
// recolours the terminal) are shown escaped, so each diagnostic stays one readable line.
std::string Diagnostic::str() const {
  std::string s = loc.str() + ": error: ";
  if (!path.empty()) s += path + ": ";
  s += message;
  if (!hint.empty()) s += " (" + hint + ")";
  return config_detail::printable(s);
}

namespace {
// Files in order of first mention, then overrides by number ("<override 2: ...>"), each by
// position, so the message reads top to bottom.
std::vector<Diagnostic> in_reading_order(std::vector<Diagnostic> d) {
  std::vector<std::string> files;
  for (const auto& x : d)
    if (std::find(files.begin(), files.end(), x.loc.file) == files.end())
      files.push_back(x.loc.file);
  auto rank = [&](const Diagnostic& x) -> std::pair<long, long> {
    const std::string& f = x.loc.file;
    if (f.rfind("<override ", 0) == 0) return {1, std::atol(f.c_str() + 10)};
    return {0, std::find(files.begin(), files.end(), f) - files.begin()};
  };
  std::stable_sort(d.begin(), d.end(), [&](const Diagnostic& a, const Diagnostic& b) {
    auto ra = rank(a), rb = rank(b);
    if (ra != rb) return ra < rb;
    if (a.loc.line != b.loc.line) return a.loc.line < b.loc.line;
    return a.loc.col < b.loc.col;
  });
  return d;
}

std::string join_lines(const std::vector<Diagnostic>& d) {
  std::string s;
  for (const auto& x : d) s += (s.empty() ? "" : "\n") + x.str();
  return s;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Optimal-string-alignment (restricted Damerau-Levenshtein) distance: insertions, deletions,
// substitutions and swaps of adjacent characters each cost 1.
size_t edit_distance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i)
    for (size_t j = 1; j <= m; ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[n][m];
}
}  // namespace

ConfigError::ConfigError(std::vector<Diagnostic> diagnostics)
    : std::runtime_error(join_lines(in_reading_order(diagnostics))),
      diagnostics_(in_reading_order(std::move(diagnostics))) {}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string w = lower(word);
  std::string best;
  size_t best_d = 3;
  for (const auto& c : candidates) {
    size_t d = edit_distance(w, lower(c));
    // A distance as long as the word itself is no evidence ("p" is 1 edit from "lr"...).
    if (d < best_d && d < w.size()) best = c, best_d = d;
  }
  if (!best.empty() || w.size() < 2) return best;
  for (const auto& c : candidates)  // a prefix: "batch" -> "batch_size"; shortest wins
    if (lower(c).rfind(w, 0) == 0 && (best.empty() || c.size() < best.size())) best = c;
  return best;
}

namespace config_detail {
std::string suggest(const std::string& word, const std::vector<std::string>& candidates,
                    const std::string& what) {
  std::string m = did_you_mean(word, candidates);
  if (!m.empty()) return "did you mean '" + m + "'?";
  if (candidates.empty()) return "";
  std::string s = "valid " + what + ": ";
  for (size_t i = 0; i < candidates.size(); ++i) s += (i ? ", " : "") + candidates[i];
  return s;
}
}  // namespace config_detail

}  // namespace dl

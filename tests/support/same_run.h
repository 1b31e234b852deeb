// "Run B ended exactly where run A ended": the checks of the interrupt-and-resume tests
// (tests/app/test_slurm.cpp with a fake scontrol, tests/app/test_slurm_cluster.cpp on a real
// SLURM cluster). Both runs wrote <run dir>/metrics.jsonl and <run dir>/checkpoints/last.h5.
//
//   require_same_run(a_dir, b_dir, max_steps);
#pragma once
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "exporters/checkpoint.h"

namespace dl::test {

// The value after `"key":` in a one-line JSON object, as written (exact text).
inline std::string json_field(const std::string& line, const std::string& key) {
  const std::string k = "\"" + key + "\":";
  size_t at = line.find(k);
  if (at == std::string::npos) return "";
  at += k.size();
  size_t end = line.find_first_of(",}", at);
  return line.substr(at, end - at);
}

// "step loss lr" of every training record, and "split step loss accuracy" of every eval record.
struct Records {
  std::vector<std::string> train, eval;
  std::vector<int64_t> steps;
};

inline Records records(const std::string& metrics) {
  std::ifstream in(metrics);
  Records r;
  std::string line;
  while (std::getline(in, line)) {
    const std::string split = json_field(line, "split");
    if (split == "\"train\"") {
      r.train.push_back(json_field(line, "step") + " " + json_field(line, "loss") + " " + json_field(line, "lr"));
      r.steps.push_back(std::stoll(json_field(line, "step")));
    } else {
      r.eval.push_back(split + " " + json_field(line, "step") + " " + json_field(line, "loss") + " " +
                       json_field(line, "accuracy"));
    }
  }
  return r;
}

inline bool bit_equal(const dl::Tensor& a, const dl::Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  dl::Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.raw_data(), cb.raw_data(), static_cast<size_t>(ca.numel()) * ca.element_size()) == 0;
}

// Run B must end exactly where run A ended: every step 1..max_steps logged once (log_every 1)
// with identical loss and lr text, identical evaluation records, and bit-identical weights,
// optimizer slots and RNG state in checkpoints/last.h5.
inline void require_same_run(const std::string& a_dir, const std::string& b_dir, int64_t max_steps) {
  const Records ra = records(a_dir + "/metrics.jsonl"), rb = records(b_dir + "/metrics.jsonl");
  std::vector<int64_t> expected_steps;
  for (int64_t s = 1; s <= max_steps; ++s) expected_steps.push_back(s);
  CHECK(ra.steps == expected_steps);
  CHECK(rb.steps == expected_steps);  // every step logged once: the resumed run dropped nothing
  REQUIRE(ra.train.size() == rb.train.size());
  for (size_t i = 0; i < ra.train.size(); ++i) {
    INFO("training record " << i);
    REQUIRE(ra.train[i] == rb.train[i]);
  }
  CHECK(ra.eval == rb.eval);  // the final test evaluation of identical models

  const dl::Checkpoint a = dl::load_checkpoint(a_dir + "/checkpoints/last.h5");
  const dl::Checkpoint b = dl::load_checkpoint(b_dir + "/checkpoints/last.h5");
  REQUIRE(a.model.size() == b.model.size());
  REQUIRE(!a.model.empty());
  for (size_t i = 0; i < a.model.size(); ++i) {
    INFO("/model/" << a.model[i].first);
    CHECK(a.model[i].first == b.model[i].first);
    CHECK(bit_equal(a.model[i].second, b.model[i].second));
  }
  REQUIRE(a.optimizer);
  REQUIRE(b.optimizer);
  REQUIRE(a.optimizer->state.size() == b.optimizer->state.size());
  for (const auto& [key, st] : a.optimizer->state) {
    INFO("/optimizer/state/" << key);
    REQUIRE(b.optimizer->state.count(key));
    const auto& sb = b.optimizer->state.at(key);
    CHECK(st.step == sb.step);
    REQUIRE(st.slots.size() == sb.slots.size());
    for (const auto& [slot, t] : st.slots) {
      INFO(slot);
      REQUIRE(sb.slots.count(slot));
      CHECK(bit_equal(t, sb.slots.at(slot)));
    }
  }
  CHECK(a.rng == b.rng);
}

}  // namespace dl::test

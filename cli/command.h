// Subcommand registry (like Caffe's RegisterBrewFunction). Each cli/cmd_*.cpp registers one
// subcommand with DL_REGISTER_COMMAND; main() builds the CLI11 app from the registry, so a
// wrong subcommand lists the valid ones.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace dl::cli {

// Process exit codes (see DESIGN.md "CLI contract").
enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,   // runtime failure: I/O, data, NaN loss, corrupt checkpoint
  kExitUsage = 2,     // bad flag, bad config
  kExitTempFail = 75, // stopped by a signal after a checkpoint: safe to requeue (EX_TEMPFAIL)
};

struct Command {
  std::string name;
  std::string help;
  // Declares options on `sub`; returns the function that runs the command after parsing.
  std::function<std::function<int()>(CLI::App& sub)> setup;
};

std::vector<Command>& registry();

struct Registrar {
  explicit Registrar(Command c) { registry().push_back(std::move(c)); }
};

#define DL_REGISTER_COMMAND(ident, ...) static const ::dl::cli::Registrar ident##_registrar{::dl::cli::Command{__VA_ARGS__}}

// Closest name within edit distance 2 (or a prefix match), or "" (for "did you mean").
std::string closest_name(const std::string& word, const std::vector<std::string>& names);

}  // namespace dl::cli

// Maps exceptions to exit codes and one clear message on stderr (never a crash).
#pragma once
#include <functional>

namespace dl::cli {

// Runs `fn`, translating exceptions: config/usage errors -> 2, everything else -> 1.
int run_guarded(const std::function<int()>& fn);

}  // namespace dl::cli

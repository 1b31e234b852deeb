// A small, safe arithmetic language for scheduler lambdas (LambdaLR, MultiplicativeLR):
//
//   sched::Expr f("0.95 ** epoch");          // parsed once; std::invalid_argument on errors
//   double factor = f.eval(/*epoch=*/10);    // evaluated many times
//
// Grammar and semantics are Python's for the subset a `lambda epoch: ...` would use, with
// Python's int/float distinction (epoch and literals like 3 are ints; /, pi, exp, ... give
// floats), so results match torch's lambdas to the bit, the sign of a zero included; ints are
// held as doubles, exact below 2**53:
//   numbers      3, 0.5, .5, 1e-3
//   variables    epoch, step (the same value: the scheduler's last_epoch), constant pi
//   operators    + - * / // % ** and parentheses; ** is right-associative and binds tighter
//                than a unary minus on its left (-2 ** 2 == -4) but not on its right
//                (2 ** -1 == 0.5); // and % are Python's floor division and modulo
//   functions    min(a, b, ...) max(a, b, ...) exp log(x [, base]) sqrt cos sin floor ceil abs
// Where Python raises (division by zero, log of a non-positive number, a negative number to a
// fractional power, an overflowing result), eval() throws std::invalid_argument naming the
// column and the value of epoch, so a schedule never silently trains with a NaN or inf lr.
//
// Input comes from users: expressions longer than kMaxLength characters or nested deeper
// than kMaxDepth (parentheses, calls, unary signs, ** chains) are refused, and evaluation is
// iterative (the expression is compiled to postfix), so no input can exhaust the stack.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/graph/spec.h"

namespace dl::sched {

class Expr {
 public:
  static constexpr size_t kMaxLength = 1000;
  static constexpr int kMaxDepth = 64;

  Expr() = default;  // the constant 0 (an empty, unparsed expression)
  // Parses `source`; throws std::invalid_argument("unknown name 'epcoh' at column 9 (valid:
  // epoch, step, pi, min, ...)"), "expected ')' at column 12 ...", ...
  explicit Expr(std::string source);

  double eval(double epoch) const;
  const std::string& source() const { return source_; }

  // One instruction of the postfix program.
  struct Op {
    enum Kind : uint8_t { Num, Var, Neg, Add, Sub, Mul, Div, FloorDiv, Mod, Pow, Call } kind;
    uint8_t fn = 0;     // Call: index into the function table
    uint8_t argc = 0;   // Call: number of arguments
    int column = 0;     // 1-based, for error messages
    double value = 0;   // Num
    bool integer = false;  // Num: written without '.' or exponent (a Python int)
  };

 private:
  std::string source_;
  std::vector<Op> program_;
  size_t max_stack_ = 0;
};

// "" when `source` parses, else the parse error (column and what was expected). Usable as an
// AttrSchema rule on a String attribute: expression_rule below.
std::string expression_problem(const std::string& source);
std::string expression_rule(const AttrValue& value);
// The names an expression may use, for docs and messages: "epoch, step, pi, min, max, ...".
std::string expression_names();

}  // namespace dl::sched

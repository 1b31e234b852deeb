#include "engine/sched/expr.h"

#include <charconv>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string_view>

#include "engine/graph/attr_schema.h"

namespace dl::sched {
namespace {

using Op = Expr::Op;

struct Function {
  const char* name;
  int min_args, max_args;
};
constexpr Function kFunctions[] = {{"min", 2, 255}, {"max", 2, 255}, {"exp", 1, 1},   {"log", 1, 2},
                                   {"sqrt", 1, 1},  {"cos", 1, 1},   {"sin", 1, 1},   {"floor", 1, 1},
                                   {"ceil", 1, 1},  {"abs", 1, 1}};
constexpr const char* kVariables[] = {"epoch", "step"};

enum class Tok { Number, Name, Symbol, End };

struct Token {
  Tok kind = Tok::End;
  std::string_view text;
  int column = 0;  // 1-based
  double value = 0;
};

bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

std::string describe(const Token& t) {
  return t.kind == Tok::End ? "end of expression" : "'" + std::string(t.text) + "'";
}

// "<what> at column N[ <after>]" (no space before an `after` starting with a comma)
[[noreturn]] void fail(const std::string& what, int column, const std::string& after = "") {
  const std::string sep = after.empty() || after[0] == ',' ? "" : " ";
  throw std::invalid_argument(what + " at column " + std::to_string(column) + sep + after);
}

// Recursive-descent parser emitting postfix code; Python's precedence, lowest first:
//   expr  := term (('+' | '-') term)*
//   term  := unary (('*' | '/' | '//' | '%') unary)*
//   unary := ('+' | '-') unary | power
//   power := primary ('**' unary)?
//   primary := number | name | name '(' args ')' | '(' expr ')'
class Parser {
 public:
  Parser(std::string_view src, std::vector<Op>& out) : src_(src), out_(out) {}

  size_t parse() {
    if (src_.size() > Expr::kMaxLength)
      throw std::invalid_argument("expression is " + std::to_string(src_.size()) + " characters long (at most " +
                                  std::to_string(Expr::kMaxLength) + ")");
    advance();
    if (tok_.kind == Tok::End) throw std::invalid_argument("empty expression (expected e.g. \"0.95 ** epoch\")");
    expr();
    if (tok_.kind != Tok::End)
      fail("unexpected " + describe(tok_), tok_.column, "(expected an operator or the end of the expression)");
    return max_stack_;
  }

 private:
  struct Nest {  // bounds the recursion: parentheses, calls, unary signs, ** operands
    explicit Nest(Parser& p) : p_(p) {
      if (++p_.depth_ > Expr::kMaxDepth)
        fail("expression nested too deeply", p_.tok_.column,
             "(more than " + std::to_string(Expr::kMaxDepth) + " levels of parentheses, calls, signs or **)");
    }
    ~Nest() { --p_.depth_; }
    Parser& p_;
  };

  void advance() {
    while (pos_ < src_.size() && std::isspace(static_cast<unsigned char>(src_[pos_]))) ++pos_;
    tok_ = Token{};
    tok_.column = static_cast<int>(pos_) + 1;
    if (pos_ >= src_.size()) return;
    const size_t start = pos_;
    const char c = src_[pos_];
    if (std::isdigit(static_cast<unsigned char>(c)) || (c == '.' && pos_ + 1 < src_.size() &&
                                                         std::isdigit(static_cast<unsigned char>(src_[pos_ + 1])))) {
      number(start);
      return;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      while (pos_ < src_.size() && is_name_char(src_[pos_])) ++pos_;
      tok_.kind = Tok::Name;
    } else if (src_.substr(pos_, 2) == "**" || src_.substr(pos_, 2) == "//") {
      pos_ += 2;
      tok_.kind = Tok::Symbol;
    } else if (std::string_view("+-*/%(),").find(c) != std::string_view::npos) {
      ++pos_;
      tok_.kind = Tok::Symbol;
    } else {
      fail("unexpected character '" + std::string(1, c) + "'", tok_.column, c == '^' ? "(use ** for powers)" : "");
    }
    tok_.text = src_.substr(start, pos_ - start);
  }

  void number(size_t start) {
    auto digits = [&] {
      while (pos_ < src_.size() && std::isdigit(static_cast<unsigned char>(src_[pos_]))) ++pos_;
    };
    digits();
    if (pos_ < src_.size() && src_[pos_] == '.') {
      ++pos_;
      digits();
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t e = pos_ + 1;
      if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
      if (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) {
        pos_ = e;
        digits();
      }
    }
    tok_.kind = Tok::Number;
    tok_.text = src_.substr(start, pos_ - start);
    if (pos_ < src_.size() && (is_name_char(src_[pos_]) || src_[pos_] == '.'))
      fail("invalid number '" + std::string(src_.substr(start, pos_ - start + 1)) + "'", tok_.column);
    auto [end, ec] = std::from_chars(tok_.text.data(), tok_.text.data() + tok_.text.size(), tok_.value);
    if (ec != std::errc() || end != tok_.text.data() + tok_.text.size() || !std::isfinite(tok_.value))
      fail("number " + std::string(tok_.text), tok_.column, "is out of range");
  }

  bool at(std::string_view sym) const { return tok_.kind == Tok::Symbol && tok_.text == sym; }

  void emit(Op op, int stack_change) {
    out_.push_back(op);
    stack_ = static_cast<size_t>(static_cast<long>(stack_) + stack_change);
    if (stack_ > max_stack_) max_stack_ = stack_;
  }
  void emit_binary(Op::Kind k, int column) { emit(Op{k, 0, 0, column, 0}, -1); }

  void expect_close(int open_column) {
    if (!at(")"))
      fail("expected ')'", tok_.column,
           "to close the '(' at column " + std::to_string(open_column) + ", got " + describe(tok_));
    advance();
  }

  void expr() {
    term();
    while (at("+") || at("-")) {
      const Op::Kind k = tok_.text == "+" ? Op::Add : Op::Sub;
      const int col = tok_.column;
      advance();
      term();
      emit_binary(k, col);
    }
  }

  void term() {
    unary();
    while (at("*") || at("/") || at("//") || at("%")) {
      const Op::Kind k = tok_.text == "*" ? Op::Mul : tok_.text == "/" ? Op::Div : tok_.text == "//" ? Op::FloorDiv : Op::Mod;
      const int col = tok_.column;
      advance();
      unary();
      emit_binary(k, col);
    }
  }

  void unary() {
    if (at("+") || at("-")) {
      Nest nest(*this);
      const bool neg = tok_.text == "-";
      const int col = tok_.column;
      advance();
      unary();
      if (neg) emit(Op{Op::Neg, 0, 0, col, 0}, 0);
      return;
    }
    power();
  }

  void power() {
    primary();
    if (at("**")) {
      const int col = tok_.column;
      Nest nest(*this);
      advance();
      unary();
      emit_binary(Op::Pow, col);
    }
  }

  void primary() {
    const Token t = tok_;
    if (t.kind == Tok::Number) {
      emit(Op{Op::Num, 0, 0, t.column, t.value, t.text.find_first_of(".eE") == std::string_view::npos}, 1);
      advance();
      return;
    }
    if (at("(")) {
      Nest nest(*this);
      advance();
      expr();
      expect_close(t.column);
      return;
    }
    if (t.kind != Tok::Name)
      fail("expected a number, a name or '('", t.column, ", got " + describe(t));
    advance();
    if (at("(")) {
      call(t);
      return;
    }
    for (const char* v : kVariables)
      if (t.text == v) return emit(Op{Op::Var, 0, 0, t.column, 0}, 1);
    if (t.text == "pi") return emit(Op{Op::Num, 0, 0, t.column, std::numbers::pi}, 1);
    for (const Function& f : kFunctions)
      if (t.text == f.name) fail("'" + std::string(t.text) + "'", t.column, "is a function: call it as " + std::string(f.name) + "(...)");
    fail("unknown name '" + std::string(t.text) + "'", t.column, "(valid: " + expression_names() + ")");
  }

  void call(const Token& name) {
    uint8_t fn = 0;
    while (fn < std::size(kFunctions) && name.text != kFunctions[fn].name) ++fn;
    if (fn == std::size(kFunctions)) {
      const bool var = name.text == "pi" || name.text == "epoch" || name.text == "step";
      if (var) fail("'" + std::string(name.text) + "'", name.column, "is not a function");
      fail("unknown function '" + std::string(name.text) + "'", name.column, "(valid: " + expression_names() + ")");
    }
    const Token open = tok_;
    Nest nest(*this);
    advance();
    int argc = 0;
    if (!at(")")) {
      for (;;) {
        expr();
        ++argc;
        if (!at(",")) break;
        advance();
      }
    }
    expect_close(open.column);
    const Function& f = kFunctions[fn];
    if (argc < f.min_args || argc > f.max_args) {
      std::string want = f.min_args == f.max_args ? std::to_string(f.min_args)
                         : f.max_args == 255      ? "at least " + std::to_string(f.min_args)
                                                  : std::to_string(f.min_args) + " or " + std::to_string(f.max_args);
      fail(std::string(f.name) + "()", name.column,
           "takes " + want + " argument" + (want == "1" ? "" : "s") + ", got " + std::to_string(argc));
    }
    emit(Op{Op::Call, fn, static_cast<uint8_t>(argc), name.column, 0}, 1 - argc);
  }

  std::string_view src_;
  std::vector<Op>& out_;
  size_t pos_ = 0;
  Token tok_;
  int depth_ = 0;
  size_t stack_ = 0, max_stack_ = 0;
};

// Python's float floor division and modulo (Objects/floatobject.c float_divmod).
void py_divmod(double vx, double wx, double& floordiv, double& mod) {
  mod = std::fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod != 0) {
    if ((wx < 0) != (mod < 0)) {
      mod += wx;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, wx);
  }
  if (div != 0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, vx / wx);
  }
}

std::string epoch_text(double epoch) {
  if (epoch == std::trunc(epoch) && std::abs(epoch) < 1e15) return std::to_string(static_cast<int64_t>(epoch));
  return format_double(epoch);
}

}  // namespace

Expr::Expr(std::string source) : source_(std::move(source)) {
  max_stack_ = Parser(source_, program_).parse();
}

double Expr::eval(double epoch) const {
  if (program_.empty()) return 0.0;
  // A value and whether Python would hold it as an int: ints never carry a negative zero
  // (-epoch at epoch 0 is 0, not -0.0), and min/max/abs keep their argument's type.
  struct Value {
    double v;
    bool integer;
  };
  std::vector<Value> stack;
  stack.reserve(max_stack_);
  auto error = [&](const std::string& what, int column) {
    throw std::invalid_argument("expression '" + source_ + "': " + what + " at column " + std::to_string(column) +
                                " (epoch = " + epoch_text(epoch) + ")");
  };
  for (const Op& op : program_) {
    Value r{0, false};
    switch (op.kind) {
      case Op::Num: r = {op.value, op.integer}; break;
      case Op::Var: r = {epoch, true}; break;
      case Op::Neg:
        r = {-stack.back().v, stack.back().integer};
        stack.pop_back();
        break;
      case Op::Call: {
        const Value* a = stack.data() + stack.size() - op.argc;
        const std::string_view name = kFunctions[op.fn].name;
        const double x = a[0].v;
        if (name == "min" || name == "max") {  // Python: the first extreme argument, as it is
          r = a[0];
          for (int i = 1; i < op.argc; ++i)
            if (name == "min" ? a[i].v < r.v : a[i].v > r.v) r = a[i];
        } else if (name == "log") {
          if (x <= 0 || (op.argc == 2 && (a[1].v <= 0 || a[1].v == 1)))
            error("log(" + format_double(x) + (op.argc == 2 ? ", " + format_double(a[1].v) : "") +
                      ") is undefined (math domain error)",
                  op.column);
          r.v = op.argc == 2 ? std::log(x) / std::log(a[1].v) : std::log(x);
        } else if (name == "sqrt") {
          if (x < 0) error("sqrt of the negative number " + format_double(x) + " (math domain error)", op.column);
          r.v = std::sqrt(x);
        } else if (name == "exp") {
          r.v = std::exp(x);
        } else if (name == "cos") {
          r.v = std::cos(x);
        } else if (name == "sin") {
          r.v = std::sin(x);
        } else if (name == "floor" || name == "ceil") {  // Python returns an int
          r = {name == "floor" ? std::floor(x) : std::ceil(x), true};
        } else {  // abs
          r = {std::abs(x), a[0].integer};
        }
        stack.resize(stack.size() - op.argc);
        break;
      }
      default: {
        const Value b = stack.back();
        stack.pop_back();
        const Value a = stack.back();
        stack.pop_back();
        r.integer = a.integer && b.integer;
        switch (op.kind) {
          case Op::Add: r.v = a.v + b.v; break;
          case Op::Sub: r.v = a.v - b.v; break;
          case Op::Mul: r.v = a.v * b.v; break;
          case Op::Div:
            if (b.v == 0) error("division by zero", op.column);
            r = {a.v / b.v, false};
            break;
          case Op::FloorDiv:
          case Op::Mod: {
            if (b.v == 0) error("division by zero", op.column);
            double q, m;
            py_divmod(a.v, b.v, q, m);
            r.v = op.kind == Op::Mod ? m : q;
            break;
          }
          default:  // Pow; an int to a negative int power is a float in Python
            if (a.v == 0 && b.v < 0) error("0 cannot be raised to a negative power", op.column);
            if (a.v < 0 && b.v != std::trunc(b.v))
              error("a negative number (" + format_double(a.v) + ") raised to a fractional power", op.column);
            r.v = std::pow(a.v, b.v);
            r.integer = r.integer && b.v >= 0;
        }
      }
    }
    if (!std::isfinite(r.v)) error("the result is too large (overflow)", op.column);
    if (r.integer) r.v += 0.0;  // -0.0 -> 0.0
    stack.push_back(r);
  }
  return stack.back().v;
}

std::string expression_problem(const std::string& source) {
  try {
    Expr e(source);
  } catch (const std::invalid_argument& ex) {
    return ex.what();
  }
  return "";
}

std::string expression_rule(const AttrValue& value) {
  if (const auto* s = std::get_if<std::string>(&value)) return expression_problem(*s);
  return "expected an expression string";
}

std::string expression_names() {
  std::string s;
  for (const char* v : kVariables) s += std::string(s.empty() ? "" : ", ") + v;
  s += ", pi";
  for (const Function& f : kFunctions) s += std::string(", ") + f.name;
  return s;
}

}  // namespace dl::sched

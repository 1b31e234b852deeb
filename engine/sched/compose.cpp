#include "engine/sched/compose.h"

#include <algorithm>
#include <stdexcept>

#include "engine/sched/registry.h"

namespace dl::sched {
namespace {

using Children = std::vector<std::unique_ptr<LRScheduler>>;

void check_children(optim::Optimizer& opt, const Children& children, const std::string& who) {
  if (children.empty()) throw std::invalid_argument(who + " expects at least one scheduler");
  for (size_t i = 0; i < children.size(); ++i) {
    const std::string at = "scheduler at index " + std::to_string(i);
    if (!children[i]) throw std::invalid_argument(who + ": the " + at + " is null");
    if (&children[i]->optimizer() != &opt)
      throw std::invalid_argument(who + " expects all schedulers to belong to the same optimizer, but got the " + at +
                                  " to be different than the optimizer passed in.");
    if (children[i]->needs_metric())
      throw std::invalid_argument(who + ": the " + at + " (" + children[i]->type() +
                                  ") is stepped with a metric and can't be composed");
  }
}

optim::Optimizer& first_optimizer(const Children& children) {
  if (children.empty() || !children[0]) throw std::invalid_argument("ChainedScheduler expects at least one scheduler");
  return children[0]->optimizer();
}

// Child i's state lives in the parent's maps under the prefix "i." (its type as "i.type").
void save_children(SchedulerState& s, const Children& children) {
  for (size_t i = 0; i < children.size(); ++i) {
    const SchedulerState c = children[i]->state_dict();
    const std::string p = std::to_string(i) + ".";
    s.strings[p + "type"] = c.type;
    for (const auto& [k, v] : c.scalars) s.scalars[p + k] = v;
    for (const auto& [k, v] : c.lists) s.lists[p + k] = v;
    for (const auto& [k, v] : c.strings) s.strings[p + k] = v;
  }
}

template <class M>
M with_prefix_removed(const M& m, const std::string& prefix) {
  M out;
  for (const auto& [k, v] : m)
    if (k.size() > prefix.size() && k.compare(0, prefix.size(), prefix) == 0) out[k.substr(prefix.size())] = v;
  return out;
}

void load_children(const SchedulerState& s, const Children& children) {
  size_t stored = 0;  // keys "<index>.type" (a grandchild's are "<index>.<index>.type")
  for (const auto& [k, v] : s.strings) {
    (void)v;
    const size_t dot = k.find('.');
    stored += dot > 0 && dot != std::string::npos && k.compare(dot, std::string::npos, ".type") == 0 &&
              k.find_first_not_of("0123456789") == dot;
  }
  if (stored != children.size())
    throw std::invalid_argument(s.type + " state holds " + std::to_string(stored) + " schedulers, this one has " +
                                std::to_string(children.size()));
  for (size_t i = 0; i < children.size(); ++i) {
    const std::string p = std::to_string(i) + ".";
    auto type = s.strings.find(p + "type");
    if (type == s.strings.end())
      throw std::invalid_argument(s.type + " state has no scheduler at index " + std::to_string(i));
    SchedulerState c;
    c.type = type->second;
    c.scalars = with_prefix_removed(s.scalars, p);
    c.lists = with_prefix_removed(s.lists, p);
    c.strings = with_prefix_removed(s.strings, p);
    c.strings.erase("type");
    children[i]->load_state_dict(c);
  }
}

}  // namespace

ComposedScheduler::ComposedScheduler(optim::Optimizer& opt, Children&& schedulers, bool epoch_based)
    : LRScheduler(opt, /*last_epoch=*/epoch_based ? -1 : 0, epoch_based), schedulers_(std::move(schedulers)) {}

void ComposedScheduler::step_to(int64_t) {
  throw std::logic_error(type() + " can't be stepped to an epoch (torch's " + type() + ".step() takes none)");
}

void ComposedScheduler::save_extra(SchedulerState& s) const { save_children(s, schedulers_); }
void ComposedScheduler::load_extra(const SchedulerState& s) { load_children(s, schedulers_); }

// ---------------------------------------------------------------------------
// SequentialLR
// ---------------------------------------------------------------------------
SequentialLR::SequentialLR(optim::Optimizer& opt, Children schedulers, std::vector<int64_t> milestones)
    : ComposedScheduler(opt, std::move(schedulers), /*epoch_based=*/true), milestones_(std::move(milestones)) {
  check_children(opt_, schedulers_, type());
  if (milestones_.size() != schedulers_.size() - 1)
    throw std::invalid_argument(
        "Sequential Schedulers expects number of schedulers provided to be one more than the number of milestone "
        "points, but got number of schedulers " + std::to_string(schedulers_.size()) +
        " and the number of milestones to be equal to " + std::to_string(milestones_.size()));
  if (!std::is_sorted(milestones_.begin(), milestones_.end()))
    throw std::invalid_argument("SequentialLR: milestones must be in increasing order");
  // What torch 1.13 can't run either: rewinding a ChainedScheduler (it has no last_epoch)
  // and step(0) on a SequentialLR at its milestone.
  for (size_t i = 0; i < schedulers_.size(); ++i) {
    if (dynamic_cast<const ChainedScheduler*>(schedulers_[i].get()))
      throw std::invalid_argument("SequentialLR can't rewind a ChainedScheduler (index " + std::to_string(i) +
                                  "; torch's has no last_epoch)");
    if (i > 0 && dynamic_cast<const SequentialLR*>(schedulers_[i].get()))
      throw std::invalid_argument("SequentialLR: a SequentialLR at index " + std::to_string(i) +
                                  " can't be restarted with step(0) at its milestone (only the first scheduler may be one)");
  }
  // torch: reset the lr to initial_lr, undo the step every child performed when it was
  // built, and perform the initial step of the first child only.
  last_epoch_ = 0;
  for (auto& g : opt_.param_groups()) g.options["lr"] = g.get("initial_lr");
  for (auto& s : schedulers_) --s->last_epoch_;
  schedulers_[0]->initial_step();
  last_lr_ = schedulers_[0]->get_last_lr();
}

void SequentialLR::step() {
  ++step_count_;
  ++last_epoch_;
  const size_t idx = static_cast<size_t>(std::upper_bound(milestones_.begin(), milestones_.end(), last_epoch_) -
                                         milestones_.begin());
  LRScheduler& s = *schedulers_[idx];
  if (idx > 0 && milestones_[idx - 1] == last_epoch_) s.step_to(0);
  else s.step();
  last_lr_ = s.get_last_lr();
}

void SequentialLR::save_extra(SchedulerState& s) const {
  s.lists["milestones"] = std::vector<double>(milestones_.begin(), milestones_.end());
  ComposedScheduler::save_extra(s);
}

void SequentialLR::load_extra(const SchedulerState& s) {
  if (auto it = s.lists.find("milestones"); it != s.lists.end()) {
    std::vector<int64_t> m;
    for (double v : it->second) m.push_back(state_int(s, "milestones", v));
    if (m.size() != schedulers_.size() - 1 || !std::is_sorted(m.begin(), m.end()))
      throw std::invalid_argument("SequentialLR state: milestones do not fit " + std::to_string(schedulers_.size()) +
                                  " schedulers in increasing order");
    milestones_ = std::move(m);
  }
  ComposedScheduler::load_extra(s);
}

// ---------------------------------------------------------------------------
// ChainedScheduler
// ---------------------------------------------------------------------------
ChainedScheduler::ChainedScheduler(Children schedulers)
    : ComposedScheduler(first_optimizer(schedulers), std::move(schedulers), /*epoch_based=*/false) {
  check_children(opt_, schedulers_, type());
}

void ChainedScheduler::step() {
  for (auto& s : schedulers_) s->step();
  ++step_count_;
  ++last_epoch_;  // dltool's count of steps (torch's ChainedScheduler has no last_epoch)
  last_lr_ = group_lrs();
}

// ---- registrations --------------------------------------------------------------------------
namespace {
using A = AttrSchema;
using Ptr = std::unique_ptr<LRScheduler>;

Children build_children(optim::Optimizer& o, const SchedulerConfig& c, const SchedulerContext& ctx) {
  if (c.children.empty()) throw std::invalid_argument(c.type + ": `schedulers:` needs at least one scheduler");
  Children out;
  for (size_t i = 0; i < c.children.size(); ++i) {
    Ptr s = make_scheduler(o, c.children[i], ctx);  // builds (and steps) it now, like Python
    if (!s)
      throw std::invalid_argument(c.type + ": scheduler " + std::to_string(i) +
                                  " is 'none'; for a constant stretch use type constant with factor 1.0");
    out.push_back(std::move(s));
  }
  return out;
}

const RegisterScheduler kSequential({
    "sequential", "SequentialLR",
    "torch.optim.lr_scheduler.SequentialLR: the `schedulers:` one after another, switching at milestones",
    {A::int_list("milestones").req().length(0, 100000).at_least(1)
         .describe("strictly increasing steps where the next scheduler takes over (one fewer than schedulers)")},
    [](const AttrMap& m) { return strictly_increasing(m, "milestones"); },
    [](optim::Optimizer& o, const SchedulerConfig& c, const SchedulerContext& ctx) -> Ptr {
      return std::make_unique<SequentialLR>(o, build_children(o, c, ctx), attr_ints(c.attrs, "milestones"));
    },
    /*takes_children=*/true, /*metric_driven=*/false, /*example=*/{{"milestones", std::vector<int64_t>{5}}}});
const RegisterScheduler kChained({
    "chained", "ChainedScheduler",
    "torch.optim.lr_scheduler.ChainedScheduler: every scheduler of `schedulers:` at each step", {}, nullptr,
    [](optim::Optimizer& o, const SchedulerConfig& c, const SchedulerContext& ctx) -> Ptr {
      return std::make_unique<ChainedScheduler>(build_children(o, c, ctx));
    },
    /*takes_children=*/true});
}  // namespace

}  // namespace dl::sched

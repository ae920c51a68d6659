// Canaries: how the "canary" promotion policy publishes a version that
// passed its gate. Instead of moving live, the job starts an experiment
// with two arms, "control" on live's version and "canary" on the new one
// with the policy's share of the requests with an entity, and the
// supervisor judges it on joined outcomes (ml/live_metrics.h) once each
// side's come from the policy's number of entities: it goes live unless
// its primary metric is worse than live's by more than max_loss (the 95%
// interval of the difference lies wholly past that loss). It is judged
// once, at that size, not at every look (each look would be another chance
// of a wrong call). The experiment's row keeps the canary as JSON.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "ml/definition.h"
#include "ml/live_metrics.h"
#include "store/time_util.h"

namespace kennel::ml {

inline constexpr const char* canary_arm = "canary";
// The newest predictions a look reads (control's and canary's together):
// a canary's share of them must be able to hold its entities.
inline constexpr std::int64_t canary_max_predictions = 50000;
inline constexpr const char* control_arm = "control";

struct canary_state {
    std::int64_t version = 0;  // the canary's
    std::int64_t against = 0;  // live's when it began
    std::int64_t job = 0;      // the job that trained it
    // The definition's revision it is judged under: its version's, or a
    // later one it went on under (canary_goes_on); 0 in a canary kept before
    // this was, which is its version's.
    std::int64_t revision = 0;
    canary_policy policy;
    micros deadline = 0;  // undecided by then: not published
    // Live's marks when it began (store/registry.h live_marks): the newest
    // move of live and event of its version. A move or a disable after
    // them ends the canary, even when undone before the supervisor looked.
    std::int64_t live_move_mark = 0;
    std::int64_t live_event_mark = 0;
    // Null while undecided; then "promoted", "failed", "expired",
    // "taken_out" (its version disabled), "live_moved" (a person moved
    // live, or live was taken out of service), "definition_changed" (a new
    // revision: another policy, other features), "handed_over" (a person
    // changed its arms), "ended" (a person ended it, or its model was
    // archived).
    std::optional<std::string> outcome;
};

std::string canary_json(const canary_state& s);
// Null for anything that is not a canary's JSON.
std::optional<canary_state> parse_canary(const std::string& text);
// Whether an experiment's canary JSON (null: a person's experiment) is a
// canary still to be decided.
bool undecided_canary(const std::optional<std::string>& canary);
// The experiment's arms (as the experiments table holds them).
std::string canary_arms(const canary_state& s);

// Whether a canary begun under one revision of a definition goes on under
// another (both canonical JSON): they differ only in how the model is served,
// supervised and retrained, and in the canary's entities, max_loss and
// max_seconds. A change to what made or gated the version, to the canary's
// share (its arms), or to another promotion mode ends it.
bool canary_goes_on(const std::string& before, const std::string& after);

// The canary under revision `revision`, whose policy is `p`: its entities,
// max_loss and max_seconds (the deadline counted from its start as before).
canary_state canary_under(canary_state s, std::int64_t revision, const canary_policy& p);

struct canary_verdict {
    enum class kind { wait, promote, fail };
    kind what = kind::wait;
    // Why, with the numbers: the difference, its interval, the entities.
    std::string reason;
};

// One look at the canary arm against the control arm in a live report over
// the experiment's time (its reference the version live was at its start).
// A canary arm whose answers were mostly fallbacks (more than
// max_fallback_share of at least min_requests: its version throws or misses
// its deadline) fails at once, whether or not supervision would act.
canary_verdict judge_canary(const live_report& report, const canary_state& s,
                            double max_fallback_share = 0.5, std::int64_t min_requests = 20);

}  // namespace kennel::ml

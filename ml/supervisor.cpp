#include "ml/supervisor.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "ml/canary.h"
#include "ml/decision.h"
#include "ml/definition_json.h"
#include "ml/live_metrics.h"
#include "store/log.h"
#include "store/registry.h"

namespace kennel::ml {
namespace {

using steady = std::chrono::steady_clock;

std::string pct(double share) {
    std::ostringstream s;
    s.precision(3);
    s << share * 100 << "%";
    return s.str();
}

// The live-metric groups over predictions made from `since` to `until`
// (the newest 10,000 of them: enough outcomes to judge, and a bounded cost
// every 10 s however busy the model is). A version a person enabled again
// after a disable is judged only on what it answered since: the evidence it
// was taken out for took it out again at every look, for a whole window,
// and no enable could stick.
std::optional<std::vector<live_group>> groups_to_judge(connection& c, const model_serving& m,
                                                       micros since, micros until) {
    auto groups = compute_live_metrics(c, m.name, m.definition, since, 10000, until);
    if (!groups) return std::nullopt;
    // By version: its groups since its enable, or none to judge it on the window.
    std::map<std::int64_t, std::optional<std::vector<live_group>>> since_enabled;
    for (live_group& g : *groups) {
        if (!g.version) continue;
        auto [it, fresh] = since_enabled.try_emplace(*g.version);
        if (fresh) {
            const auto enabled = last_enabled_at(c, m.name, *g.version);
            if (enabled && *enabled > since) {
                auto later = compute_live_metrics(c, m.name, m.definition, *enabled, 10000, until);
                it->second = later ? std::move(*later) : std::vector<live_group>{};
            }
        }
        if (!it->second) continue;
        live_group replaced;  // nothing answered since: nothing to judge
        replaced.version = g.version;
        replaced.arm = g.arm;
        replaced.shadow = g.shadow;
        for (const live_group& later : *it->second) {
            if (later.version == g.version && later.arm == g.arm && later.shadow == g.shadow)
                replaced = later;
        }
        g = std::move(replaced);
    }
    return std::move(*groups);
}

// How a canary ends: its outcome (ml/canary.h), why, and what it did.
struct canary_end {
    std::string outcome_name, reason, outcome;
};

// The revision a canary is judged under: its own, or (kept before canaries
// said so) its version's.
std::int64_t judged_under(const canary_state& cs, const version_row& v) {
    return cs.revision ? cs.revision : v.revision;
}

// The canary under the model's current revision, when that revision is not
// the one it is judged under and the canary goes on under it
// (canary_goes_on): a person lengthened it, asked for more entities, or
// changed how the model is served or supervised.
std::optional<canary_state> canary_taken_on(connection& c, const std::string& model,
                                            const canary_state& cs) {
    const auto row = get_version(c, model, cs.version, false);
    const auto now = get_model(c, model);
    if (!row || !now) return std::nullopt;
    const std::int64_t under = judged_under(cs, *row);
    if (under == now->current_revision) return std::nullopt;
    const auto before = get_revision(c, model, under);
    if (!before || !canary_goes_on(before->definition, now->definition)) return std::nullopt;
    const parsed_definition after = parse_definition(now->definition);
    if (!after.errors.empty()) return std::nullopt;
    return canary_under(cs, now->current_revision, after.definition.promotion.canary);
}

// Why a canary ends before it is judged, if it does: live moved or its
// version was disabled since it began (even if undone since: the marks, not
// the state now), a new revision of the definition, or its own version
// disabled or not servable (a version whose artifact fails to load is
// never watched, and its arm's requests were all live's fallbacks).
std::optional<canary_end> canary_stopped(connection& c, const model_serving& m,
                                         const experiment_row& e, const canary_state& cs) {
    const std::string v = "version " + std::to_string(cs.version);
    const std::string not_published = "canary ended; " + v + " not published (promote it by hand)";
    const auto version_name = [](std::optional<std::int64_t> x) {
        return x ? "version " + std::to_string(*x) : std::string("none");
    };
    const auto live = alias_version(c, m.name, "live");
    if (auto move = first_alias_move_after(c, m.name, "live", cs.live_move_mark)) {
        std::string reason = "live was moved by " + move->actor + " while the canary ran (" +
                             version_name(move->previous_version) + " -> " +
                             version_name(move->version) + ")";
        if (live != move->version) reason += "; it is on " + version_name(live) + " now";
        return canary_end{
            "live_moved", reason,
            live == cs.version ? "canary ended; " + v + " was published by hand" : not_published};
    }
    if (auto off = first_disable_after(c, m.name, cs.against, cs.live_event_mark)) {
        return canary_end{"live_moved",
                          "live version " + std::to_string(cs.against) + " was disabled by " +
                              off->actor + " while the canary ran: " + off->reason,
                          not_published};
    }
    const auto row = get_version(c, m.name, cs.version, false);
    const auto model = get_model(c, m.name);
    const std::int64_t under = row ? judged_under(cs, *row) : 0;
    if (row && model && under != model->current_revision) {
        // As a job's version is held back when its definition changes while
        // it trains: it was trained for a model that is no longer there. (A
        // revision it goes on under is taken on instead: both callers ask
        // canary_taken_on first, the decision in its own transaction.)
        return canary_end{"definition_changed",
                          "the definition changed while the canary ran (revision " +
                              std::to_string(under) + " -> " +
                              std::to_string(model->current_revision) + ")",
                          not_published};
    }
    const std::string stays =
        "canary ended; live stays on live version " + std::to_string(cs.against);
    if (auto off = first_disable_after(c, m.name, cs.version, 0))
        return canary_end{"taken_out", v + " was disabled by " + off->actor + ": " + off->reason,
                          stays};
    if (m.experiment == e.id) {
        for (const auto& arm : m.arms) {
            if (arm.name == canary_arm && !arm.version && !arm.problem.empty())
                return canary_end{"taken_out", v + " cannot be served (" + arm.problem + ")",
                                  stays};
        }
    }
    return std::nullopt;
}

}  // namespace

supervisor::supervisor(fact_writer& writer, reader_pool& readers, serving_registry& serving,
                       std::function<void(const std::string&)> refresh,
                       std::chrono::milliseconds interval, std::function<void()> on_tick)
    : writer_(writer), readers_(readers), serving_(serving), refresh_(std::move(refresh)),
      on_tick_(std::move(on_tick)), interval_(interval) {
    state_.state = "stopped";
}

supervisor::~supervisor() { stop(); }

void supervisor::start() {
    // What it did before the restart, as it said then (read at the first
    // start only: a start after a stop keeps what it holds).
    std::vector<supervisor_action> kept;
    if (!std::exchange(read_kept_actions_, true)) {
        try {
            auto conn = readers_.acquire();
            for (auto& r :
                 recent_supervisor_actions(*conn, static_cast<std::int64_t>(max_actions_shown))) {
                kept.push_back({r.time, std::move(r.kind), std::move(r.model), r.version,
                                std::move(r.reason), std::move(r.outcome)});
            }
        } catch (const std::exception& e) {
            log_warn("supervisor", std::string("could not read its earlier actions: ") + e.what());
        }
    }
    // A drift reported before the restart counts for its window: the
    // restart does not report it again at once.
    const auto steady_now = std::chrono::steady_clock::now();
    const micros wall_now = now_micros();
    for (const auto& a : kept) {
        if (a.kind != "drift") continue;
        const auto at =
            steady_now - std::chrono::microseconds(std::max<micros>(0, wall_now - a.time));
        auto [it, fresh] = drift_reported_.try_emplace({a.model, a.version}, at);
        if (!fresh) it->second = std::max(it->second, at);
    }
    {
        std::lock_guard lock(mu_);
        stopping_ = false;
        state_.state = "watching";
        state_.actions.insert(state_.actions.begin(), kept.begin(), kept.end());
    }
    thread_ = std::thread([this] {
        name_this_thread("kennel-superv");
        for (;;) {
            {
                std::unique_lock lock(mu_);
                if (cv_.wait_for(lock, interval_, [this] { return stopping_; })) return;
            }
            try {
                if (on_tick_) on_tick_();
                tick();
            } catch (const std::exception& e) {
                // A failed pass is logged and retried on the next tick.
                log_error("supervisor", e.what());
            }
        }
    });
}

void supervisor::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
        state_.state = "stopped";
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

supervisor_state supervisor::state() const {
    std::lock_guard lock(mu_);
    return state_;
}

void supervisor::tick() {
    const auto now = steady::now();
    // (>=: a look each interval when the interval is the tick's own second)
    const bool check_live = now - last_live_check_ >= live_interval_;
    if (check_live) {
        last_live_check_ = now;
        // An untrained model's prior, counted again once new labels came.
        std::vector<std::string> stale;
        {
            auto conn = readers_.acquire();
            stale = serving_.stale_priors(*conn);
        }
        for (const auto& name : stale) refresh_(name);
    }
    for (const auto& m : serving_.all()) {
        // The canary policy's decisions, whether or not supervision is on.
        if (check_live) watch_canary(*m);
        const supervision_policy& p = m->definition.supervision;
        std::vector<std::shared_ptr<const loaded_version>> watched;
        if (m->live) watched.push_back(m->live);
        for (const auto& arm : m->arms) {
            if (arm.version) watched.push_back(arm.version);
        }
        // Drift windows are kept even when supervision is off: the API reads them.
        const auto drift_window =
            std::chrono::seconds(static_cast<std::int64_t>(p.drift_window_seconds));
        for (const auto& v : watched) {
            if (v->drift) v->drift->mark(now, drift_window);
        }
        if (!p.enabled) continue;
        for (const auto& v : watched) {
            if (v->drift) check_drift(*m, *v, now);
            auto& h = history_[{m->name, v->version}];
            // The first time a version is watched, its counters started from
            // zero when it was loaded: errors before this first look count too.
            if (h.empty() && seen_.insert({m->name, v->version}).second) {
                h.push_back({v->counters.requests.load() ? now - std::chrono::milliseconds(1) : now, 0, 0, 0, 0});
            }
            const sample cur{now, v->counters.requests.load(), v->counters.errors.load(),
                             v->counters.deadline_misses.load(), v->counters.fallbacks.load()};
            // A version unloaded and loaded again between two ticks counts from
            // zero: differences with the old samples would wrap around.
            if (!h.empty() &&
                (cur.requests < h.back().requests || cur.errors < h.back().errors ||
                 cur.misses < h.back().misses || cur.fallbacks < h.back().fallbacks)) {
                h.clear();
            }
            h.push_back(cur);
            auto window = std::chrono::milliseconds(static_cast<std::int64_t>(p.window_seconds * 1000));
            while (h.size() > 2 && now - h.front().at > window) h.pop_front();
            const sample& a = h.front();
            const sample& b = h.back();
            double requests = static_cast<double>(b.requests - a.requests);
            if (requests >= static_cast<double>(p.min_requests)) {
                // Requests are counted on the request thread and errors later
                // in the pool, so a sample can hold more of the latter: clamp.
                double errors = std::min(1.0, static_cast<double>(b.errors - a.errors) / requests);
                double misses = std::min(1.0, static_cast<double>(b.misses - a.misses) / requests);
                double fallbacks = std::min(1.0, static_cast<double>(b.fallbacks - a.fallbacks) / requests);
                std::string reason;
                if (errors > p.max_error_rate) {
                    reason = "error rate " + pct(errors) + " over " + pct(p.max_error_rate);
                } else if (misses > p.max_deadline_miss_rate) {
                    reason = "deadline misses " + pct(misses) + " over " + pct(p.max_deadline_miss_rate);
                } else if (fallbacks > p.max_fallback_share) {
                    reason = "fallback share " + pct(fallbacks) + " over " + pct(p.max_fallback_share);
                }
                if (!reason.empty()) {
                    act(*m, v->version, reason + " in the last " + std::to_string(static_cast<std::int64_t>(requests)) +
                                            " requests");
                    history_.erase({m->name, v->version});
                    continue;
                }
            }
        }
        if (check_live && !p.live_thresholds.empty() && !watched.empty()) {
            std::optional<std::vector<live_group>> groups;
            {
                auto conn = readers_.acquire();
                const micros until =
                    now_micros() - static_cast<micros>(p.outcome_delay_seconds * 1e6);
                const micros since = until - static_cast<micros>(p.live_window_seconds * 1e6);
                groups = groups_to_judge(*conn, *m, since, until);
            }
            if (!groups) continue;
            // Every serving version is judged: live, experiment arms and
            // shadows (one group per arm it answered in; acted on once).
            std::set<std::int64_t> acted;
            for (const auto& g : *groups) {
                // Outcomes of as many entities: one label of an entity
                // asked about 30 times took live out of service.
                if (!g.version || !g.metrics ||
                    std::min(g.outcomes, g.outcome_entities) < p.min_outcomes ||
                    acted.count(*g.version))
                    continue;
                const bool serving =
                    std::any_of(watched.begin(), watched.end(),
                                [&](const auto& v) { return v->version == *g.version; });
                if (!serving) continue;
                for (const auto& [name, bound] : p.live_thresholds) {
                    double v = g.metrics->get(name);
                    // A decision's rate is judged on min_outcomes of the rows
                    // it counts: a precision of one answer said yes is no
                    // evidence (it took a version out of service).
                    // Nor are 30 outcomes of one entity asked about 30 times.
                    const auto rate = g.decision ? decision_rate_of(name) : std::nullopt;
                    if (rate && decision_evidence(g, name) < p.min_outcomes) continue;
                    // A calibration error is judged once the window's answers
                    // (their entities) are enough that a perfectly
                    // calibrated model's would be at most a third of the
                    // bound: on 30 outcomes it is about 0.17 by chance, and
                    // a bound of 0.1 took out versions for noise.
                    const double chance = name == "calibration_error" && !g.reliability.empty()
                                              ? calibration_error_by_chance(g.reliability)
                                              : std::nan("");
                    if (!calibration_bound_judged(bound, chance)) continue;
                    bool higher = metric_higher_is_better(name);
                    if (higher ? v < bound : v > bound) {
                        std::ostringstream r;
                        r << "live " << name << " " << v << (higher ? " below " : " above ")
                          << plain_number(bound) << " over ";
                        if (rate) {
                            // The rows the rate counts, not all the outcomes.
                            // (value_or: GCC 12 reads *rate as maybe uninitialized.)
                            const decision_rate dr = rate.value_or(decision_rate::precision);
                            const rate_measure counted = measure(*g.decision, dr);
                            const std::int64_t entities = decision_evidence(g, name);
                            r << counted.rows << " " << live_rows_words(dr) << " (from " << entities
                              << (entities == 1 ? " entity" : " entities") << "; 95% interval ["
                              << short_number(counted.lower) << ", " << short_number(counted.upper)
                              << "]) of ";
                        }
                        r << g.outcomes << " outcomes";
                        // (A rate says its entities above.)
                        if (!rate)
                            r << " (of " << g.outcome_entities
                              << (g.outcome_entities == 1 ? " entity)" : " entities)");
                        if (std::isfinite(chance))
                            r << " (a calibrated model's would be about " << short_number(chance)
                              << " by chance)";
                        r << " of predictions made " << p.outcome_delay_seconds << "-"
                          << p.outcome_delay_seconds + p.live_window_seconds << " s ago";
                        if (g.arm != "live") r << " (arm " << g.arm << ")";
                        act(*m, *g.version, r.str());
                        acted.insert(*g.version);
                        break;
                    }
                }
            }
        }
    }
    // Forget versions no longer loaded (retired, disabled, experiments
    // ended): months of versions would pile up here, and one loaded again
    // starts with fresh counters, to be watched as new.
    std::set<std::pair<std::string, std::int64_t>> loaded;
    for (const auto& v : serving_.loaded()) loaded.insert({v->model, v->version});
    const auto gone = [&](const auto& e) { return !loaded.count(e.first); };
    std::erase_if(history_, gone);
    std::erase_if(drift_reported_, gone);
    std::erase_if(seen_, [&](const auto& k) { return !loaded.count(k); });
    std::lock_guard lock(mu_);
    state_.last_tick = now_micros();
    ++state_.ticks;
}

void supervisor::act(const model_serving& m, std::int64_t version, const std::string& reason) {
    std::string outcome;
    const micros at = now_micros();
    // The disabling and the live move.
    const auto take_out = [&](connection& c) -> status {
        auto d = set_version_enabled(c, m.name, version, false, "supervisor", reason);
        if (!d) return d.error();
        outcome = *d ? "disabled" : "already disabled";
        auto live = alias_version(c, m.name, "live");
        if (live && *live == version) {
            // As a person's rollback: never to a version of another task.
            const earlier_live back = earlier_live_version(c, m.name, version);
            if (back.version) {
                status mv = move_alias(
                    c, m.name, "live", *back.version, "supervisor",
                    "version " + std::to_string(version) + " taken out of service: " + reason);
                if (!mv) return mv;
                outcome += "; live moved back to version " + std::to_string(*back.version);
                return status::ok();
            }
            outcome += "; no earlier usable version";
            if (back.passed_over_task) outcome += " of its task";
            outcome += ", answers come from the fallback chain";
        }
        return status::ok();
    };
    // Its record in the same transaction: a crash cannot keep the effects
    // and lose the supervisor's account of them.
    status s = writer_.run(
        [&](connection& c) {
            if (status done = take_out(c); !done) return done;
            add_supervisor_action(c, {at, "disable", m.name, version, reason, outcome});
            return status::ok();
        },
        std::chrono::seconds(10));
    if (!s) {
        log_error("supervisor", "could not disable " + m.name + " version " + std::to_string(version) + ": " + s.message());
        return;
    }
    log_warn("supervisor", m.name + " version " + std::to_string(version) + ": " + reason + " -> " + outcome);
    refresh_(m.name);
    record({at, "disable", m.name, version, reason, outcome}, true);
}

void supervisor::watch_canary(const model_serving& m) {
    std::optional<experiment_row> e;
    std::optional<canary_state> cs;
    std::optional<canary_end> stop;
    canary_verdict verdict;
    std::optional<std::string> results;
    const micros now = now_micros();
    {
        auto conn = readers_.acquire();
        e = active_experiment(*conn, m.name);
        if (!e || !e->canary) return;
        cs = parse_canary(*e->canary);
        if (!cs || cs->outcome) return;
        if (auto next = canary_taken_on(*conn, m.name, *cs)) {
            take_on(m, *e, *next, now);
            return;
        }
        stop = canary_stopped(*conn, m, *e, *cs);
        if (!stop) {
            live_uncertainty_options options;
            options.reference_version = cs->against;
            options.arm_order = {control_arm, canary_arm};
            // Over predictions old enough for their outcomes, as the live
            // bounds are judged: the newest 50,000 of a busy model's would
            // otherwise be those whose outcomes have yet to come, and a
            // canary of a model with outcomes a day later would never
            // gather its entities.
            const micros until =
                now - static_cast<micros>(m.definition.supervision.outcome_delay_seconds * 1e6);
            auto report = compute_live_report(*conn, m.name, m.definition, e->started_at, options,
                                              canary_max_predictions, until);
            if (!report) {
                log_warn("supervisor", m.name + ": canary experiment " + std::to_string(e->id) +
                                           " could not be judged: " + report.error().message());
                return;
            }
            const supervision_policy& sp = m.definition.supervision;
            verdict = judge_canary(*report, *cs, sp.max_fallback_share, sp.min_requests);
            if (verdict.what == canary_verdict::kind::wait && now < cs->deadline) return;
        }
        if (results_) results = results_(*conn, m.name, *e);
    }
    const std::string v = "version " + std::to_string(cs->version);
    const std::string stays =
        "canary ended; live stays on live version " + std::to_string(cs->against);
    const bool promote = !stop && verdict.what == canary_verdict::kind::promote;
    if (!stop) {
        if (promote) {
            stop = canary_end{"promoted", verdict.reason, "canary ended; live moved to " + v};
        } else if (verdict.what == canary_verdict::kind::fail) {
            stop = canary_end{"failed", verdict.reason, stays};
        } else {
            stop = canary_end{"expired",
                              "undecided after " + std::to_string(cs->policy.max_seconds) +
                                  " s: " + verdict.reason,
                              stays};
        }
    }
    const std::string words = "canary of " + v + " (experiment " + std::to_string(e->id) + "): ";
    const std::string reason = words + stop->reason;
    bool ended = false;
    status s = writer_.run(
        [&](connection& c) {
            // A person may have ended or changed it, or acted on live or
            // its version, since the look: then it is decided at the next.
            auto now_e = get_experiment(c, e->id);
            if (!now_e || now_e->ended_at || !undecided_canary(now_e->canary)) return status::ok();
            // A revision it goes on under, stored since the look, may have
            // changed its bounds: it is taken on and judged at the next.
            if (canary_taken_on(c, m.name, *cs)) return status::ok();
            if (promote && canary_stopped(c, m, *now_e, *cs)) return status::ok();
            if (status st =
                    end_experiment(c, e->id, "policy:canary", reason, results, stop->outcome_name);
                !st) {
                return st;
            }
            if (promote) {
                if (status st = move_alias(c, m.name, "live", cs->version, "policy:canary", reason);
                    !st) {
                    return st;
                }
            }
            add_supervisor_action(c, {now, "canary", m.name, cs->version, reason, stop->outcome});
            ended = true;
            return status::ok();
        },
        std::chrono::seconds(10));
    if (!s) {
        log_error("supervisor", m.name + ": " + words + "could not be ended: " + s.message());
        return;
    }
    if (!ended) return;
    (promote ? log_info : log_warn)("supervisor", m.name + ": " + reason + " -> " + stop->outcome);
    refresh_(m.name);
    record({now, "canary", m.name, cs->version, reason, stop->outcome}, true);
}

void supervisor::take_on(const model_serving& m, const experiment_row& e, const canary_state& after,
                         micros now) {
    const canary_policy& p = after.policy;
    const std::string reason =
        "canary of version " + std::to_string(after.version) + " (experiment " +
        std::to_string(e.id) + "): goes on under revision " + std::to_string(after.revision) +
        " of the definition, which changes neither the version nor its share";
    const std::string outcome = "canary judged on " + std::to_string(p.entities) +
                                " entities a side, max_loss " + plain_number(p.max_loss) +
                                ", deadline " + format_rfc3339(after.deadline);
    bool taken = false;
    status s = writer_.run(
        [&](connection& c) {
            // Unless it ended or changed since the look (decided at the next):
            // compared with the text read, which a canary kept by an older
            // release need not match once rewritten.
            taken = replace_experiment_canary(c, e.id, e.canary.value_or(""), canary_json(after),
                                              "policy:canary", reason + "; " + outcome);
            if (taken)
                add_supervisor_action(c, {now, "canary", m.name, after.version, reason, outcome});
            return status::ok();
        },
        std::chrono::seconds(10));
    if (!s) {
        log_error("supervisor",
                  m.name + ": " + reason + ", but it could not be kept: " + s.message());
        return;
    }
    if (!taken) return;
    log_info("supervisor", m.name + ": " + reason + " -> " + outcome);
    record({now, "canary", m.name, after.version, reason, outcome}, true);
}

void supervisor::record(supervisor_action a, bool kept) {
    // Kept across restarts: a drift report is written behind (it changed
    // nothing else).
    if (!kept) {
        supervisor_action_row row{a.time, a.kind, a.model, a.version, a.reason, a.outcome};
        auto queued = writer_.submit(
            [row](connection& c) {
                add_supervisor_action(c, row);
                return status::ok();
            },
            1, durability::relaxed);
        if (!queued) {
            log_warn("supervisor", "could not keep its action on " + a.model + " version " +
                                       std::to_string(a.version) + ": " + queued.error().message());
        }
    }
    std::lock_guard lock(mu_);
    ++state_.actions_total[a.kind];
    state_.actions.push_back(std::move(a));
    if (state_.actions.size() > max_actions_shown) state_.actions.erase(state_.actions.begin());
}

void supervisor::check_drift(const model_serving& m, const loaded_version& v,
                             steady::time_point now) {
    const supervision_policy& p = m.definition.supervision;
    const auto window = std::chrono::seconds(static_cast<std::int64_t>(p.drift_window_seconds));
    const auto key = std::make_pair(m.name, v.version);
    if (auto it = drift_reported_.find(key);
        it != drift_reported_.end() && now - it->second < window) {
        return;
    }
    auto recent = v.drift->recent();
    if (!recent || recent->counts.observed < static_cast<std::uint64_t>(p.min_drift_samples))
        return;
    drift_report r = compare_to_profile(v.drift->reference(), recent->counts);
    const drift_verdict verdict =
        judge_drift(r, p.max_feature_drift, static_cast<std::uint64_t>(p.min_drift_samples));
    const bool inputs = verdict.inputs, answers = verdict.answers;
    if (!verdict.drifted()) return;
    drift_reported_[key] = now;

    std::ostringstream reason;
    reason.precision(3);
    if (inputs && (!answers || r.worst_psi >= r.prediction->psi)) {
        reason << "feature drift: \"" << r.worst_field << "\" has a stability index of "
               << r.worst_psi << " (bound " << p.max_feature_drift << ") over the last "
               << recent->counts.observed << " requests";
    } else {
        reason << "prediction drift: the answers have a stability index of " << r.prediction->psi
               << " (bound " << p.max_feature_drift << ") over the last " << r.predicted
               << " answers";
    }
    std::string outcome = "reported";
    if (!m.definition.retrain.on_drift) {
        outcome += "; retrain.on_drift is off";
    } else {
        // One drift job a window per model at most: when the facts do not
        // hold the moved inputs, each new version drifts as its predecessor
        // did, and retraining at once would loop.
        bool active = false;
        std::optional<micros> last_job;
        // A canary being judged holds retraining back, as it holds the
        // scheduler's triggers: its version would only be held back.
        std::optional<experiment_row> judged;
        {
            auto conn = readers_.acquire();
            active = has_active_job(*conn, m.name);
            last_job = last_job_created_at(*conn, m.name, "drift");
            judged = active_experiment(*conn, m.name);
            if (judged && !undecided_canary(judged->canary)) judged.reset();
        }
        const auto window_micros = static_cast<micros>(p.drift_window_seconds * 1e6);
        const bool too_soon = last_job && now_micros() - *last_job < window_micros;
        std::int64_t job = 0;
        status s = status::ok();
        if (!active && !too_soon && !judged) {
            s = writer_.run(
                [&](connection& c) {
                    if (status st = refuse_if_archived(c, m.name, "retrain it"); !st) return st;
                    job = insert_job(c, m.name, "drift", "supervisor");
                    append_job_log(c, job, "info", "queued by the supervisor: " + reason.str());
                    return status::ok();
                },
                std::chrono::seconds(10));
        }
        if (active) {
            outcome += "; a training job is already queued or running";
        } else if (too_soon) {
            outcome += "; not retraining: the last drift job was queued " +
                       std::to_string((now_micros() - *last_job) / 1000000) +
                       " s ago, within the drift window";
        } else if (judged) {
            outcome += "; not retraining while canary experiment " + std::to_string(judged->id) +
                       " is judged (a later window's report retrains once it has ended)";
        } else if (!s) {
            outcome += "; could not queue a training job: " + s.message();
        } else {
            outcome += "; retraining queued as job " + std::to_string(job);
            if (job_queued_) job_queued_();
        }
    }
    log_warn("supervisor", m.name + " version " + std::to_string(v.version) + ": " + reason.str() +
                               " -> " + outcome);
    record({now_micros(), "drift", m.name, v.version, reason.str(), outcome});
}

}  // namespace kennel::ml

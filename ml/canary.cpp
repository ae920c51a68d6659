#include "ml/canary.h"

#include <cmath>
#include <sstream>

#include <nlohmann/json.hpp>

#include "ml/decision.h"
#include "ml/definition_json.h"

namespace kennel::ml {

using json = nlohmann::json;

std::string canary_json(const canary_state& s) {
    json j = {{"version", s.version},
              {"against", s.against},
              {"job", s.job},
              {"revision", s.revision},
              {"share", s.policy.share},
              {"entities", s.policy.entities},
              {"max_loss", s.policy.max_loss},
              {"max_seconds", s.policy.max_seconds},
              {"deadline", s.deadline},
              {"live_move_mark", s.live_move_mark},
              {"live_event_mark", s.live_event_mark},
              {"outcome", s.outcome ? json(*s.outcome) : json(nullptr)}};
    return j.dump();
}

std::optional<canary_state> parse_canary(const std::string& text) {
    const json j = json::parse(text, nullptr, false);
    if (!j.is_object()) return std::nullopt;
    canary_state s;
    try {
        s.version = j.at("version").get<std::int64_t>();
        s.against = j.at("against").get<std::int64_t>();
        s.job = j.value("job", std::int64_t{0});
        s.revision = j.value("revision", std::int64_t{0});
        s.policy.share = j.at("share").get<double>();
        s.policy.entities = j.at("entities").get<std::int64_t>();
        s.policy.max_loss = j.at("max_loss").get<double>();
        s.policy.max_seconds = j.value("max_seconds", s.policy.max_seconds);
        s.deadline = j.at("deadline").get<micros>();
        s.live_move_mark = j.at("live_move_mark").get<std::int64_t>();
        s.live_event_mark = j.at("live_event_mark").get<std::int64_t>();
        if (auto o = j.find("outcome"); o != j.end() && o->is_string())
            s.outcome = o->get<std::string>();
    } catch (const json::exception&) {
        return std::nullopt;
    }
    return s;
}

bool undecided_canary(const std::optional<std::string>& canary) {
    if (!canary) return false;
    const auto s = parse_canary(*canary);
    return s && !s->outcome;
}

bool canary_goes_on(const std::string& before, const std::string& after) {
    json a = json::parse(before, nullptr, false);
    json b = json::parse(after, nullptr, false);
    for (json* d : {&a, &b}) {
        if (!d->is_object()) return false;
        for (const char* k : operational_sections) d->erase(k);
        const auto p = d->find("promotion");
        if (p == d->end() || !p->is_object() || p->value("mode", "") != "canary") return false;
        if (auto c = p->find("canary"); c != p->end() && c->is_object()) {
            for (const char* k : {"entities", "max_loss", "max_seconds"}) c->erase(k);
        }
    }
    return a == b;
}

canary_state canary_under(canary_state s, std::int64_t revision, const canary_policy& p) {
    s.deadline += (p.max_seconds - s.policy.max_seconds) * 1000000;
    s.policy.entities = p.entities;
    s.policy.max_loss = p.max_loss;
    s.policy.max_seconds = p.max_seconds;
    s.revision = revision;
    return s;
}

std::string canary_arms(const canary_state& s) {
    const double share = s.policy.share;
    return json::array({{{"name", control_arm},
                         {"version", s.against},
                         {"weight", 1 - share},
                         {"shadow", false}},
                        {{"name", canary_arm},
                         {"version", s.version},
                         {"weight", share},
                         {"shadow", false}}})
        .dump();
}

canary_verdict judge_canary(const live_report& report, const canary_state& s,
                            double max_fallback_share, std::int64_t min_requests) {
    // Its arm's answers, whichever version gave them (a fallback is logged
    // under the arm with the version that answered).
    std::int64_t answered = 0, fallbacks = 0;
    for (const auto& g : report.groups) {
        if (g.arm != canary_arm || g.shadow) continue;
        answered += g.predictions;
        fallbacks += g.fallbacks;
    }
    if (answered >= min_requests &&
        static_cast<double>(fallbacks) > max_fallback_share * static_cast<double>(answered)) {
        std::ostringstream r;
        r << fallbacks << " of the canary arm's " << answered
          << " answers were fallbacks (over its share of " << plain_number(max_fallback_share)
          << "): version " << s.version << " fails or misses its deadline";
        return {canary_verdict::kind::fail, r.str()};
    }
    const live_comparison* cmp = nullptr;
    for (const auto& c : report.comparisons) {
        if (c.arm == canary_arm && c.version == s.version && !c.shadow) cmp = &c;
    }
    if (!cmp) {
        // The reference is the control arm once it has an answer of live's
        // version; the comparison appears once the canary has answered.
        return {canary_verdict::kind::wait,
                "no outcome of the canary arm against the control arm yet"};
    }
    std::ostringstream r;
    if (cmp->verdict == "not_comparable") {
        r << "the canary's " << cmp->metric
          << " cannot be compared with live's (another task or other classes)";
        return {canary_verdict::kind::fail, r.str()};
    }
    const std::int64_t need = s.policy.entities;
    if (cmp->entities < need || cmp->against_entities < need) {
        r << "outcomes from " << cmp->entities << " and " << cmp->against_entities
          << " entities of the " << need << " a side it is judged on (canary, control)";
        return {canary_verdict::kind::wait, r.str()};
    }
    r << cmp->metric << " " << (cmp->difference >= 0 ? "+" : "") << short_number(cmp->difference)
      << " against live's (95% interval [" << short_number(cmp->lower) << ", "
      << short_number(cmp->upper) << "]) over outcomes from " << cmp->entities << " and "
      << cmp->against_entities << " entities (canary, control)";
    if (!std::isfinite(cmp->lower) || !std::isfinite(cmp->upper)) {
        // Such as an ROC-AUC whose resamples often hold one class: more
        // outcomes may give it; the deadline ends the wait.
        return {canary_verdict::kind::wait,
                cmp->metric + "'s interval could not be computed over outcomes from " +
                    std::to_string(cmp->entities) + " and " +
                    std::to_string(cmp->against_entities) + " entities"};
    }
    // The loss, in the metric's direction, that the interval rules in at
    // the least: worse by more than max_loss only if even its best end is.
    const double least_loss = cmp->higher_is_better ? -cmp->upper : cmp->lower;
    if (least_loss > s.policy.max_loss) {
        r << ": worse than live by more than " << plain_number(s.policy.max_loss);
        return {canary_verdict::kind::fail, r.str()};
    }
    r << ": not shown worse than live by more than " << plain_number(s.policy.max_loss);
    return {canary_verdict::kind::promote, r.str()};
}

}  // namespace kennel::ml

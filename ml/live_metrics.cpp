#include "ml/live_metrics.h"

#include <algorithm>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string_view>
#include <unordered_map>

#include "ml/prediction_history.h"
#include "ml/raw_json.h"
#include "store/registry.h"

namespace kennel::ml {
namespace {

using json = nlohmann::json;

struct row {
    std::optional<std::int64_t> version;
    std::string arm;
    bool shadow = false;
    std::optional<double> value;  // none when nothing answered
    std::string label;
    std::vector<double> probabilities;
    bool fallback = false;
    double latency_ms = 0;
    raw_value truth;
    const version_scoring* scoring = nullptr;  // the answering version's task, label, classes
    // The probabilities' classes: those the entry names (an answer no
    // version gave: a baseline's, the prior's), else its version's.
    const std::vector<std::string>* classes = nullptr;
};

std::string label_name(const raw_value& v) {
    if (const auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
    if (const auto* s = std::get_if<std::string>(&v)) return *s;
    if (const auto* d = std::get_if<double>(&v)) {
        json j = *d;
        if (*d == static_cast<double>(static_cast<long long>(*d))) j = static_cast<long long>(*d);
        return j.dump();
    }
    return {};
}

}  // namespace

result<std::vector<live_group>> compute_live_metrics(connection& c, const std::string& model,
                                                     const model_definition& d, micros since,
                                                     std::int64_t max_predictions, micros until) {
    std::vector<row> rows;
    std::optional<outcome_joiner> joiner;  // outlives the rows: they point into it
    std::vector<logged_prediction> recent;  // so do these
    try {
        // One snapshot for the many lookups of outcomes below.
        read_snapshot snapshot(c);
        outcome_joiner& outcomes = joiner.emplace(c, model, d);
        // The newest predictions since `since`, at most max_predictions:
        // segments are read newest first until no older one can hold any.
        const auto limit = static_cast<std::size_t>(std::max<std::int64_t>(0, max_predictions));
        micros cutoff = since;  // once `limit` rows are held: the time of the oldest one kept
        if (limit) {
            for_each_log_segment(
                c, model, since, until,
                [&](micros last_time, std::int64_t) {
                    return recent.size() < limit || last_time >= cutoff;
                },
                [&](std::vector<logged_prediction>& entries, micros) {
                    for (auto& e : entries) recent.push_back(std::move(e));
                    if (recent.size() >= limit) {
                        std::sort(recent.begin(), recent.end(),
                                  [](const logged_prediction& a, const logged_prediction& b) {
                                      return a.time > b.time;
                                  });
                        recent.resize(limit);
                        cutoff = recent.back().time;
                    }
                });
        }
        // Each entity's earliest prediction here: one outcome lookup then
        // serves all of the entity's (a user asked about many times).
        std::unordered_map<std::string_view, micros> earliest;
        for (const logged_prediction& l : recent) {
            auto [it, fresh] = earliest.try_emplace(l.entity, l.time);
            if (!fresh) it->second = std::min(it->second, l.time);
        }
        for (const logged_prediction& l : recent) {
            row r;
            r.version = l.version;
            r.arm = l.arm;
            r.shadow = l.shadow;
            r.value = l.value;
            r.label = l.label;
            r.probabilities = l.probabilities;
            r.fallback = l.fallback;
            r.latency_ms = static_cast<double>(l.latency_us) / 1000.0;
            r.scoring = &outcomes.scoring(l);
            r.classes = l.classes.empty() ? &r.scoring->classes : &l.classes;
            if (auto o = outcomes.find(l, earliest.at(l.entity)))
                r.truth = raw_field_from_json(o->data, r.scoring->label.field);
            rows.push_back(std::move(r));
        }
    } catch (const db_error& e) {
        return status(error_kind::internal, std::string("live metrics: ") + e.what());
    }

    struct acc {
        live_group g;
        double latency_sum = 0;
        std::vector<double> truth, predicted;
        std::vector<std::vector<double>> probs;
        const version_scoring* scoring = nullptr;  // one version per group: one scoring
        // The classes scored rows share; a fallback group's rows may come
        // from versions of other classes, which cannot be scored together.
        const std::vector<std::string>* classes = nullptr;
    };
    std::map<std::tuple<std::int64_t, std::string, bool>, acc> groups;
    for (const auto& r : rows) {
        auto key = std::make_tuple(r.version.value_or(0), r.arm, r.shadow);
        acc& a = groups[key];
        a.g.version = r.version;
        a.g.arm = r.arm;
        a.g.shadow = r.shadow;
        a.scoring = r.scoring;
        ++a.g.predictions;
        a.g.fallbacks += r.fallback;
        a.latency_sum += r.latency_ms;
        if (std::holds_alternative<std::monostate>(r.truth)) continue;
        if (r.scoring->task == task_kind::regression) {
            double t;
            if (const auto* x = std::get_if<double>(&r.truth)) {
                t = *x;
            } else if (const auto* iv = std::get_if<interval>(&r.truth)) {
                t = iv->midpoint();
            } else {
                ++a.g.unscored_outcomes;
                continue;
            }
            // A row that answered nothing (a failed shadow) is not a 0.
            if (!r.value) continue;
            a.truth.push_back(t);
            a.predicted.push_back(*r.value);
        } else {
            // A constant fallback (a class, no probabilities) or an entry
            // from before the log named a fallback's classes cannot be
            // scored; nor a class the answer does not know.
            const auto& names = *r.classes;
            std::string want = label_name(r.truth);
            std::size_t k = names.size();
            for (std::size_t i = 0; i < names.size(); ++i) {
                if (names[i] == want) k = i;
            }
            if (k == names.size() || r.probabilities.size() != names.size() ||
                (a.classes && *a.classes != names)) {
                ++a.g.unscored_outcomes;
                continue;
            }
            a.classes = r.classes;
            a.truth.push_back(static_cast<double>(k));
            a.probs.push_back(r.probabilities);
        }
        ++a.g.outcomes;
    }
    std::vector<live_group> out;
    for (auto& [key, a] : groups) {
        a.g.mean_latency_ms =
            a.g.predictions ? a.latency_sum / static_cast<double>(a.g.predictions) : 0;
        if (!a.truth.empty()) {
            if (a.scoring->task == task_kind::regression) {
                auto m = evaluate_regression(a.truth, a.predicted);
                if (m) a.g.metrics = list_metrics(*m);
            } else {
                auto m = evaluate_classification(a.truth, a.probs, a.classes->size());
                if (m) a.g.metrics = list_metrics(*m);
            }
        }
        out.push_back(std::move(a.g));
    }
    return out;
}

}  // namespace kennel::ml

#include "ml/live_metrics.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "ml/raw_json.h"
#include "store/registry.h"

namespace kennel::ml {
namespace {

using json = nlohmann::json;

struct row {
    std::optional<std::int64_t> version;
    std::string arm;
    bool shadow = false;
    double value = 0;
    std::string label;
    std::vector<double> probabilities;
    bool fallback = false;
    double latency_ms = 0;
    raw_value truth;
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
                                                     std::int64_t max_predictions) {
    std::vector<row> rows;
    try {
        // The newest predictions since `since`, at most max_predictions:
        // segments are read newest first until no older one can hold any.
        struct logged {
            micros time = 0;
            std::string id, entity;
            row r;
        };
        std::vector<logged> recent;
        const auto limit = static_cast<std::size_t>(std::max<std::int64_t>(0, max_predictions));
        statement segments(
            c,
            "SELECT entries, last_time FROM prediction_segments"
            " WHERE model = ?1 AND last_time >= ?2 ORDER BY last_time DESC, id DESC");
        segments.bind(1, model).bind(2, since);
        micros cutoff = since;  // once `limit` rows are held: the time of the oldest one kept
        while (limit && segments.step()) {
            if (recent.size() >= limit && segments.column_int(1) < cutoff) break;
            json entries = json::parse(segments.column_text(0), nullptr, false);
            if (!entries.is_array()) continue;
            for (const json& e : entries) {
                if (!e.is_array() || e.size() != 13 || !e[5].is_number_integer()) continue;
                logged l;
                l.time = e[5].get<micros>();
                if (l.time < since) continue;
                l.id = e[0].is_string() ? e[0].get<std::string>() : "";
                l.entity = e[4].is_string() ? e[4].get<std::string>() : "";
                if (e[1].is_number_integer()) l.r.version = e[1].get<std::int64_t>();
                l.r.arm = e[2].is_string() ? e[2].get<std::string>() : "";
                l.r.shadow = e[3].is_number() && e[3].get<int>() != 0;
                l.r.value = e[6].is_number() ? e[6].get<double>() : 0.0;
                l.r.label = e[7].is_string() ? e[7].get<std::string>() : "";
                if (e[8].is_array()) {
                    for (const auto& x : e[8])
                        l.r.probabilities.push_back(x.is_number() ? x.get<double>() : 0.0);
                }
                l.r.fallback = e[9].is_number() && e[9].get<int>() != 0;
                l.r.latency_ms = e[11].is_number() ? e[11].get<double>() / 1000.0 : 0.0;
                recent.push_back(std::move(l));
            }
            if (recent.size() >= limit) {
                std::sort(recent.begin(), recent.end(),
                          [](const logged& a, const logged& b) { return a.time > b.time; });
                recent.resize(limit);
                cutoff = recent.back().time;
            }
        }
        // The outcome: a label fact naming the prediction, else the entity's
        // latest label fact at or after the prediction.
        statement by_id(
            c,
            "SELECT f.data FROM facts f WHERE json_extract(f.data, '$.prediction_id') = ?1"
            " AND json_type(f.data, '$.prediction_id') = 'text' AND f.stream = ?2"
            " ORDER BY f.id DESC LIMIT 1");
        statement by_entity(
            c,
            "SELECT f.data FROM facts f WHERE f.stream = ?2 AND f.entity = ?1"
            " AND f.event_time >= ?3 ORDER BY f.event_time DESC, f.id DESC LIMIT 1");
        for (logged& l : recent) {
            std::optional<std::string> outcome;
            by_id.reset();
            by_id.bind(1, l.id).bind(2, d.label.stream);
            if (by_id.step()) outcome = by_id.column_text(0);
            if (!outcome && !l.entity.empty()) {
                by_entity.reset();
                by_entity.bind(1, l.entity).bind(2, d.label.stream).bind(3, l.time);
                if (by_entity.step()) outcome = by_entity.column_text(0);
            }
            if (outcome) l.r.truth = raw_field_from_json(*outcome, d.label.field);
            rows.push_back(std::move(l.r));
        }
    } catch (const db_error& e) {
        return status(error_kind::internal, std::string("live metrics: ") + e.what());
    }

    // Class names per version, to map outcomes to the probabilities' order.
    std::map<std::int64_t, std::vector<std::string>> classes;
    if (is_classification(d.task)) {
        for (const auto& r : rows) {
            if (!r.version || classes.count(*r.version)) continue;
            auto v = get_version(c, model, *r.version, false);
            std::vector<std::string> names;
            if (v) {
                json f = json::parse(v->features, nullptr, false);
                if (f.is_object() && f.contains("classes")) {
                    for (const auto& n : f["classes"]) names.push_back(n.get<std::string>());
                }
            }
            classes[*r.version] = names;
        }
    }

    struct acc {
        live_group g;
        double latency_sum = 0;
        std::vector<double> truth, predicted;
        std::vector<std::vector<double>> probs;
    };
    std::map<std::tuple<std::int64_t, std::string, bool>, acc> groups;
    for (const auto& r : rows) {
        auto key = std::make_tuple(r.version.value_or(0), r.arm, r.shadow);
        acc& a = groups[key];
        a.g.version = r.version;
        a.g.arm = r.arm;
        a.g.shadow = r.shadow;
        ++a.g.predictions;
        a.g.fallbacks += r.fallback;
        a.latency_sum += r.latency_ms;
        if (std::holds_alternative<std::monostate>(r.truth)) continue;
        if (d.task == task_kind::regression) {
            double t;
            if (const auto* x = std::get_if<double>(&r.truth)) {
                t = *x;
            } else if (const auto* iv = std::get_if<interval>(&r.truth)) {
                t = iv->midpoint();
            } else {
                continue;
            }
            a.truth.push_back(t);
            a.predicted.push_back(r.value);
        } else {
            if (!r.version) continue;  // constant fallbacks have no class order to score
            const auto& names = classes[*r.version];
            std::string want = label_name(r.truth);
            std::size_t k = names.size();
            for (std::size_t i = 0; i < names.size(); ++i) {
                if (names[i] == want) k = i;
            }
            if (k == names.size() || r.probabilities.size() != names.size()) continue;
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
            if (d.task == task_kind::regression) {
                auto m = evaluate_regression(a.truth, a.predicted);
                if (m) a.g.metrics = list_metrics(*m);
            } else if (a.g.version) {
                auto m = evaluate_classification(a.truth, a.probs, classes[*a.g.version].size());
                if (m) a.g.metrics = list_metrics(*m);
            }
        }
        out.push_back(std::move(a.g));
    }
    return out;
}

}  // namespace kennel::ml

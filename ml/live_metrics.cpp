#include "ml/live_metrics.h"

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
        statement st(c,
                     "SELECT p.version, p.arm, p.shadow, p.value, p.label, p.probabilities, p.fallback,"
                     " p.latency_us, coalesce("
                     "  (SELECT f.data FROM facts f WHERE json_extract(f.data, '$.prediction_id') = p.id"
                     "     AND json_type(f.data, '$.prediction_id') = 'text' AND f.stream = ?2"
                     "   ORDER BY f.id DESC LIMIT 1),"
                     "  (SELECT f.data FROM facts f WHERE f.stream = ?2 AND f.entity = p.entity"
                     "     AND f.event_time >= p.time AND p.entity IS NOT NULL"
                     "   ORDER BY f.event_time DESC, f.id DESC LIMIT 1))"
                     " FROM (SELECT * FROM predictions WHERE model = ?1 AND time >= ?3"
                     "       ORDER BY time DESC LIMIT ?4) p");
        st.bind(1, model).bind(2, d.label.stream).bind(3, since).bind(4, max_predictions);
        while (st.step()) {
            row r;
            r.version = st.column_opt_int(0);
            r.arm = st.column_text(1);
            r.shadow = st.column_int(2) != 0;
            r.value = st.column_double(3);
            r.label = st.column_text(4);
            if (!st.is_null(5)) {
                json p = json::parse(st.column_text(5), nullptr, false);
                if (p.is_array()) {
                    for (const auto& x : p) r.probabilities.push_back(x.is_number() ? x.get<double>() : 0.0);
                }
            }
            r.fallback = st.column_int(6) != 0;
            r.latency_ms = static_cast<double>(st.column_int(7)) / 1000.0;
            if (!st.is_null(8)) r.truth = raw_field_from_json(st.column_text(8), d.label.field);
            rows.push_back(std::move(r));
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
        a.g.mean_latency_ms = a.g.predictions ? a.latency_sum / static_cast<double>(a.g.predictions) : 0;
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

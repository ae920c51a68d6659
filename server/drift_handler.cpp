// GET /v1/models/{name}/drift: how the inputs each serving version (live,
// experiment arms, shadows) was asked about compare with its training rows,
// field by field, and its answers with its answers on the holdout
// (ml/drift.h), over the model's drift window and since the version was
// loaded.
#include <nlohmann/json.hpp>

#include "ml/drift.h"
#include "ml/serving.h"
#include "server/app.h"
#include "server/drift_json.h"
#include "server/errors.h"
#include "server/handlers.h"
#include "server/json_body.h"
#include "store/registry.h"

namespace kennel {
namespace {

using json = nlohmann::json;

// The brief, then every field's bins, then the answers'.
json report_json(const ml::feature_profile& profile, const ml::drift_counts& counts,
                 const ml::supervision_policy& p) {
    const ml::drift_report r = ml::compare_to_profile(profile, counts);
    auto field_json = [](const ml::field_drift& f) {
        json bins = json::array();
        for (std::size_t k = 0; k < f.bins.size(); ++k) {
            // "kind" tells a category value named "other" or "missing"
            // from the bins of those names.
            bins.push_back({{"bin", f.bins[k]},
                            {"kind", f.kinds[k]},
                            {"expected", f.expected[k]},
                            {"observed", f.observed[k]}});
        }
        return json{{"field", f.field}, {"psi", f.psi}, {"bins", bins}};
    };
    json out = drift_brief(r, p);
    out["fields"] = json::array();
    for (const auto& f : r.fields) out["fields"].push_back(field_json(f));
    // The model's own answers against its answers on the holdout (null for
    // versions trained before these were kept).
    out["prediction"] = nullptr;
    if (r.prediction) {
        out["prediction"] = field_json(*r.prediction);
        out["prediction"]["answers"] = r.predicted;
        out["prediction"]["drifted"] =
            ml::judge_drift(r, p.max_feature_drift,
                            static_cast<std::uint64_t>(p.min_drift_samples))
                .answers;
    }
    return out;
}

}  // namespace

json drift_brief(const ml::drift_report& r, const ml::supervision_policy& p) {
    const ml::drift_verdict verdict = ml::judge_drift(
        r, p.max_feature_drift, static_cast<std::uint64_t>(p.min_drift_samples));
    return {{"requests", r.observed},
            {"enough_requests", verdict.enough_requests},
            {"drifted", verdict.drifted()},
            {"worst_field", r.worst_field.empty() ? json(nullptr) : json(r.worst_field)},
            {"worst_psi", r.worst_field.empty() ? json(nullptr) : json(r.worst_psi)}};
}

json drift_window_brief(const ml::model_serving& m, const ml::loaded_version& v) {
    if (!v.drift) return nullptr;
    auto window = v.drift->recent();
    if (!window) return nullptr;
    const ml::drift_report r = ml::compare_to_profile(v.drift->reference(), window->counts);
    json out = drift_brief(r, m.definition.supervision);
    out["prediction_psi"] = r.prediction && r.predicted ? json(r.prediction->psi) : json(nullptr);
    return out;
}

http_response get_model_drift(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    auto m = a.serving().get(name);
    if (!m) {
        // An archived model's record stays readable, as its versions and
        // jobs do: nothing serves it, so no version is watched.
        auto conn = a.readers().acquire();
        auto row = get_model(*conn, name);
        if (!row || !row->archived_at) return error_response(unserved_model(a, name));
        return json_response(dump_json({{"model", name},
                                        {"archived", archive_json(*conn, *row)},
                                        {"policy", nullptr},
                                        {"versions", json::array()}}));
    }
    const ml::supervision_policy& p = m->definition.supervision;
    const auto now = std::chrono::steady_clock::now();
    json versions = json::array();
    ml::for_each_served_version(*m, [&](const ml::loaded_version& v, const std::string& role) {
        // Earlier live versions answer only as fallbacks: nothing is counted for them.
        if (role == "previous") return;
        json out = {
            {"version", v.version}, {"role", role}, {"roles", ml::served_roles(*m, v.version)}};
        if (!v.drift) {
            out["profile"] = nullptr;
            out["problem"] =
                "trained before Kennel kept a feature profile: train again to watch drift";
            out["window"] = nullptr;
            out["since_loaded"] = nullptr;
            versions.push_back(std::move(out));
            return;
        }
        const ml::feature_profile& ref = v.drift->reference();
        json profiled = json::array();
        for (const auto& f : ref.fields) profiled.push_back(f.field);
        out["profile"] = {{"training_rows", ref.rows}, {"fields", profiled}};
        out["problem"] = nullptr;
        if (auto w = v.drift->recent()) {
            out["window"] = report_json(ref, w->counts, p);
            out["window"]["seconds"] = std::chrono::duration<double>(now - w->from).count();
        } else {
            out["window"] = nullptr;  // the supervisor has not looked yet
        }
        out["since_loaded"] = report_json(ref, v.drift->counts(), p);
        versions.push_back(std::move(out));
    });
    json out = {{"model", m->name},
                {"policy",
                 {{"max_feature_drift", p.max_feature_drift},
                  {"drift_window_seconds", p.drift_window_seconds},
                  {"min_drift_samples", p.min_drift_samples},
                  {"retrain_on_drift", m->definition.retrain.on_drift}}},
                {"archived", nullptr},
                {"versions", versions}};
    return json_response(dump_json(out));
}

}  // namespace kennel

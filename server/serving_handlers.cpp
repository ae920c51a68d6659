// Handlers for supervising serving: disabling and enabling versions,
// rollback, experiments, live metrics and the serving status.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>

#include "ml/canary.h"
#include "ml/definition_json.h"
#include "ml/live_metrics.h"
#include "ml/predict_pool.h"
#include "ml/predict_slots.h"
#include "ml/prediction_history.h"
#include "ml/prediction_log.h"
#include "ml/serving.h"
#include "ml/supervisor.h"
#include "ml/training_worker.h"
#include "server/answer_cache.h"
#include "server/app.h"
#include "server/drift_json.h"
#include "server/errors.h"
#include "server/fact_json.h"
#include "server/handlers.h"
#include "server/json_body.h"
#include "server/preconditions.h"
#include "store/json_writer.h"
#include "store/log.h"
#include "store/registry.h"

namespace kennel {
namespace {

using json = nlohmann::json;

// An undefined or uncomputed number (NaN) as null.
json finite_or_null(double x) {
    return std::isfinite(x) ? json(x) : json(nullptr);
}

// A JSON object body with a non-empty "reason" (every action is recorded with why).
bool model_exists(app& a, const std::string& name) {
    auto conn = a.readers().acquire();
    return get_model(*conn, name).has_value();
}

http_response set_enabled(app& a, const http_request& req, bool enabled) {
    const std::string& name = req.param("name");
    auto n = parse_id("version", req.param("version"));
    if (!n) return error_response(n.error());
    auto body = reasoned_body(req);
    if (!body) return error_response(body.error());
    if (!model_exists(a, name)) return error_response(no_model_named(name));
    std::string actor = actor_of(req);
    std::string reason = (*body)["reason"].get<std::string>();
    auto changed = write_change(
        a, [&](connection& c) { return set_version_enabled(c, name, *n, enabled, actor, reason); });
    if (!changed) return error_response(changed.error());
    a.refresh_model(name);
    auto m = a.serving().get(name);
    // Already in that state: 200 with it, and no event (actor and reason
    // are those of recorded changes only).
    json out = {{"model", name}, {"version", *n}, {"enabled", enabled}, {"changed", *changed}};
    if (*changed) {
        out["actor"] = actor;
        out["reason"] = reason;
    }
    if (m) out["serving_version"] = m->answering() ? json(m->answering()->version) : json(nullptr);
    return json_response(dump_json(out));
}

// The least share of traffic an arm that takes traffic may have.
constexpr double min_arm_share = 1e-6;

// Arms from a request: [{"name"?, "version", "weight"} | {"version", "shadow": true}].
// `changing`: the experiment whose arms these replace; its arms' versions
// may stay though disabled.
result<json> parse_arms(app& a, const std::string& model, const json& body,
                        std::optional<std::int64_t> changing = std::nullopt) {
    auto arms = body.find("arms");
    if (arms == body.end() || !arms->is_array() || arms->empty()) {
        return invalid("arms", "a non-empty array like [{\"version\": 2, \"weight\": 0.9}, {\"version\": 3, \"weight\": 0.1}]");
    }
    json out = json::array();
    double total = 0;
    std::set<std::string> names;
    auto conn = a.readers().acquire();
    const auto disabled = disabled_versions(*conn, model);
    std::set<std::int64_t> kept;
    if (changing) {
        if (auto e = get_experiment(*conn, *changing); e && e->model == model)
            kept = arm_versions(*conn, e->arms);
    }
    // An arm answers in live's shape: a version of another task (the
    // definition changed it since) answered a number where live answers a
    // class, and a class once its arm fell back to live. As the fallback
    // chain and rollbacks do, arms keep to live's task (with no live
    // version, the definition's: the constant steps answer in its shape).
    const auto live = alias_version(*conn, model, "live");
    std::optional<ml::task_kind> live_task =
        live ? ml::version_task(*conn, model, *live) : std::nullopt;
    const bool from_live = live_task.has_value();
    if (!live_task) {
        if (auto row = get_model(*conn, model)) {
            parsed_definition current = parse_definition(row->definition);
            if (current.errors.empty()) live_task = current.definition.task;
        }
    }
    ml::task_kind task = live_task.value_or(ml::task_kind::regression);
    bool have_task = live_task.has_value();
    for (std::size_t i = 0; i < arms->size(); ++i) {
        const json& arm = (*arms)[i];
        std::string path = "arms[" + std::to_string(i) + "]";
        if (!arm.is_object()) return invalid(path, "must be an object");
        if (status s = only_known_fields(arm, path, {"name", "version", "weight", "shadow"}); !s)
            return s;
        auto v = arm.find("version");
        if (v == arm.end() || !v->is_number_integer() || v->get<std::int64_t>() <= 0) {
            return invalid(path + ".version", "must be a version number");
        }
        std::int64_t version = v->get<std::int64_t>();
        if (status s = check_servable(*conn, model, version); !s) {
            return status(s.kind(), s.message(), path + ".version");
        }
        // As for live: an arm on a disabled version would only answer with
        // fallbacks.
        if (disabled.count(version) && !kept.count(version)) {
            return status(error_kind::conflict,
                          "version " + std::to_string(version) + " of model " + model +
                              " is disabled: enable it before giving it an arm",
                          path + ".version");
        }
        if (const auto t = ml::version_task(*conn, model, version)) {
            if (!have_task) {
                task = *t;
                have_task = true;
            }
            if (*t != task) {
                return status(error_kind::conflict,
                              "version " + std::to_string(version) + " of model " + model +
                                  " was trained for " + ml::task_kind_name(*t) + ", but " +
                                  (from_live   ? "the live version answers "
                                   : live_task ? "the definition's task is "
                                               : "the first arm answers ") +
                                  ml::task_kind_name(task) + ": an arm must answer as live does",
                              path + ".version");
            }
        }
        auto shadow_field = optional_bool(arm, "shadow", false, path + ".shadow");
        if (!shadow_field) return shadow_field.error();
        const bool shadow = *shadow_field;
        double weight = 0;
        // 0 (or null) is what GET writes for a shadow: sent back, it is one.
        const auto w_sent = arm.find("weight");
        const bool no_weight = w_sent == arm.end() || w_sent->is_null() ||
                               (w_sent->is_number() && w_sent->get<double>() == 0);
        if (shadow && !no_weight) {
            // Silently dropped, a weight meant for traffic would never get any.
            return invalid(path + ".weight",
                           "a shadow arm takes no traffic: leave out \"weight\" (or \"shadow\")");
        }
        if (!shadow) {
            auto w = arm.find("weight");
            if (w == arm.end() || !w->is_number() || !std::isfinite(w->get<double>()) || w->get<double>() <= 0) {
                return invalid(path + ".weight", "must be a positive number (or set \"shadow\": true)");
            }
            weight = w->get<double>();
            total += weight;
        }
        auto name_field = optional_string(
            arm, "name", (shadow ? "shadow-v" : "v") + std::to_string(version), path + ".name");
        if (!name_field) return name_field.error();
        const std::string name = std::move(*name_field);
        // Named like models and aliases; "live" and "fallback" are the arms
        // the prediction log and live metrics give answers outside experiments.
        if (!valid_name(name)) {
            return invalid(path + ".name", "an arm name is 1-64 letters, digits, '_', '-' or '.'");
        }
        if (name == "live" || name == "fallback") {
            return invalid(path + ".name",
                           "\"" + name + "\" is reserved for answers outside experiments");
        }
        if (!names.insert(name).second) {
            // A name the client never sent is the default from the version:
            // "must be unique" read as a complaint about names it did not give.
            if (auto sent = arm.find("name"); sent == arm.end() || sent->is_null()) {
                return invalid(path + ".name",
                               "this arm has no name, and its default name \"" + name +
                                   "\" (from its version) repeats an earlier arm's: name the "
                                   "arms, or pick different versions");
            }
            return invalid(path + ".name", "arm names must be unique");
        }
        out.push_back({{"name", name}, {"version", version}, {"weight", weight}, {"shadow", shadow}});
    }
    if (total <= 0) return invalid("arms", "at least one arm must take traffic (a weight > 0)");
    // 1e308 twice is finite in each arm but not in their sum, and would
    // normalise every weight to 0: an experiment stored but never routed.
    if (!std::isfinite(total)) return invalid("arms", "the weights must add up to a finite number");
    for (std::size_t i = 0; i < out.size(); ++i) {
        json& arm = out[i];
        if (arm["shadow"].get<bool>()) continue;
        const double share = arm["weight"].get<double>() / total;
        // 1e-320 beside 1e308 normalised to 0: an arm stored as taking
        // traffic that none would ever reach.
        if (share < min_arm_share) {
            return invalid("arms[" + std::to_string(i) + "].weight",
                           "its share of the traffic would be " + json(share).dump() +
                               ", below one in a million: an arm that takes traffic must get "
                               "some (a shadow arm scores every request without any)");
        }
        arm["weight"] = share;
    }
    return out;
}

// not_found unless experiment `id` exists and belongs to `model`.
status experiment_belongs(connection& c, const std::string& model, std::int64_t id) {
    auto e = get_experiment(c, id);
    if (!e || e->model != model) {
        return status(error_kind::not_found, "model " + model + " has no experiment " + std::to_string(id), "id");
    }
    return status::ok();
}

// With its history: a change's who, why and arms were stored and shown
// nowhere.
json experiment_json(connection& c, const experiment_row& e) {
    // The canary policy's (ml/canary.h): its deadline as a time.
    json canary = nullptr;
    if (e.canary) {
        if (auto cs = ml::parse_canary(*e.canary)) {
            // The revision it is judged under (a canary kept before it said
            // so is judged under its version's).
            std::int64_t revision = cs->revision;
            if (!revision) {
                if (auto v = get_version(c, e.model, cs->version, false)) revision = v->revision;
            }
            canary = {{"version", cs->version},
                      {"against", cs->against},
                      {"job", cs->job},
                      {"revision", revision},
                      {"share", cs->policy.share},
                      {"entities", cs->policy.entities},
                      {"max_loss", cs->policy.max_loss},
                      {"max_seconds", cs->policy.max_seconds},
                      {"deadline", format_rfc3339(cs->deadline)},
                      {"outcome", cs->outcome ? json(*cs->outcome) : json(nullptr)}};
        }
    }
    json history = json::array();
    for (const auto& h : list_experiment_events(c, e.id)) {
        history.push_back({{"time", format_rfc3339(h.time)},
                           {"event", h.event},
                           {"actor", h.actor},
                           {"reason", h.reason},
                           {"arms", json::parse(h.arms, nullptr, false)}});
    }
    return {{"id", e.id},
            {"model", e.model},
            {"arms", json::parse(e.arms, nullptr, false)},
            {"started_at", format_rfc3339(e.started_at)},
            {"started_by", e.started_by},
            {"reason", e.reason},
            {"ended_at", e.ended_at ? json(format_rfc3339(*e.ended_at)) : json(nullptr)},
            {"ended_by", e.ended_by ? json(*e.ended_by) : json(nullptr)},
            {"end_reason", e.end_reason ? json(*e.end_reason) : json(nullptr)},
            {"active", !e.ended_at},
            {"results", e.results ? json::parse(*e.results, nullptr, false) : json(nullptr)},
            {"canary", canary},
            {"history", history}};
}

// An experiment's ETag counts its recorded changes (its start the first):
// its history is append-only, so the count names one state.
std::string experiment_state_etag(connection& c, std::int64_t id) {
    return experiment_etag(static_cast<std::int64_t>(list_experiment_events(c, id).size()));
}

// The experiment as it is now, with its ETag (counted from the history the
// answer holds: the events are read once).
// `changed`: said only by an end, which is false for one ended already.
http_response experiment_answer(connection& c, std::int64_t id, int code = 200,
                                std::optional<bool> changed = std::nullopt) {
    json e = experiment_json(c, *get_experiment(c, id));
    if (changed) e["changed"] = *changed;
    http_response answer = json_response(dump_json(e), code);
    set_etag(answer, experiment_etag(static_cast<std::int64_t>(e["history"].size())));
    return answer;
}

json metrics_json(const ml::metric_listing& m) {
    json j = json::object();
    for (const auto& [k, v] : m.values) j[k] = v;
    if (!m.confusion.empty()) j["confusion"] = m.confusion;
    return j;
}

// One entry of the prediction log as GET /v1/models/{name}/predictions
// shows it: `names` are its version's classes, `outcome` what it was joined to.
json logged_entry_json(const ml::logged_prediction& e, const ml::version_scoring& sc,
                       const std::optional<ml::joined_outcome>& outcome) {
    json j = {{"id", e.id},
              {"time", format_rfc3339(e.time)},
              {"version", e.version ? json(*e.version) : json(nullptr)},
              {"arm", e.arm},
              {"shadow", e.shadow},
              {"entity", e.entity.empty() ? json(nullptr) : json(e.entity)}};
    if (sc.task == ml::task_kind::regression) {
        j["prediction"] = e.value ? json(*e.value) : json(nullptr);
    } else {
        j["prediction"] = e.label.empty() ? json(nullptr) : json(e.label);
        if (!e.probabilities.empty()) {
            json probs = json::object();
            const auto& names = e.classes.empty() ? sc.classes : e.classes;
            for (std::size_t k = 0; k < e.probabilities.size(); ++k)
                probs[k < names.size() ? names[k] : std::to_string(k)] = e.probabilities[k];
            j["probabilities"] = probs;
        }
        if (e.decision) j["decision"] = *e.decision;
    }
    j["fallback"] = e.fallback;
    j["reason"] = e.reason.empty() ? json(nullptr) : json(e.reason);
    j["latency_ms"] = static_cast<double>(e.latency_us) / 1000.0;
    j["features_hash"] = e.features_hash;
    j["outcome"] = nullptr;
    if (outcome) {
        json data = json::parse(outcome->data, nullptr, false);
        const std::string& field = sc.label.field;
        j["outcome"] = {
            {"fact", outcome->fact_id},
            {"value", data.is_object() && data.contains(field) ? data[field] : json(nullptr)},
            {"joined_by", outcome->by_prediction_id ? "prediction_id" : "entity"}};
    }
    return j;
}

}  // namespace

result<bool> write_change(app& a, const std::function<result<bool>(connection&)>& change) {
    bool changed = false;
    status s = a.writer().run(
        [&](connection& c) {
            auto r = change(c);
            if (!r) return r.error();
            changed = *r;
            return status::ok();
        },
        a.write_timeout());
    if (!s) return s;
    return changed;
}

http_response post_version_disable(app& a, const http_request& req) { return set_enabled(a, req, false); }
http_response post_version_enable(app& a, const http_request& req) { return set_enabled(a, req, true); }

http_response post_model_rollback(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    auto body = reasoned_body(req, {"to"});
    if (!body) return error_response(body.error());
    // "to": the version the caller expects live to go back to (what a
    // confirmation showed); If-Match: the live alias's ETag it expects now.
    std::optional<std::int64_t> expected_to;
    if (auto t = body->find("to"); t != body->end()) {
        if (!t->is_number_integer() || t->get<std::int64_t>() <= 0)
            return error_response(invalid("to", "must be the positive integer of a version"));
        expected_to = t->get<std::int64_t>();
    }
    auto pre = read_preconditions(req);
    if (!pre) return error_response(pre.error());
    if (!model_exists(a, name)) return error_response(no_model_named(name));
    std::string actor = actor_of(req);
    std::string reason = (*body)["reason"].get<std::string>();
    std::int64_t to = 0, from = 0;
    std::optional<std::string> etag_now;  // live's, when a condition failed
    status s = a.writer().run(
        [&](connection& c) {
            if (status st = refuse_if_archived(c, name, "roll it back"); !st) return st;
            auto live = alias_version(c, name, "live");
            if (status held = check_alias_preconditions(*pre, live, name, "live", etag_now); !held)
                return held;
            if (live) etag_now = alias_etag(*live);  // for a 412 on "to" too
            if (!live)
                return status(error_kind::conflict,
                              "model " + name + " has no live version to roll back");
            from = *live;
            const ml::earlier_live back = ml::earlier_live_version(c, name, *live);
            if (back.version && expected_to && *back.version != *expected_to) {
                return status(error_kind::stale,
                              "a rollback of " + name + " would now move live from v" +
                                  std::to_string(from) + " to v" + std::to_string(*back.version) +
                                  ", not to v" + std::to_string(*expected_to) + " (to)",
                              "to");
            }
            if (back.version) {
                to = *back.version;
                return move_alias(c, name, "live", to, actor, "rollback: " + reason);
            }
            const bool other_task = back.passed_over_task;
            std::string why;
            if (other_task) {
                why =
                    "earlier ones were trained for another task; promote one by its number "
                    "to serve it";
            }
            if (back.passed_over_removed) {
                why += std::string(why.empty() ? "" : "; ") +
                       "retention removed the artifacts of earlier ones (serve "
                       "--keep-versions: a larger value keeps more)";
            }
            return status(error_kind::conflict, "no earlier enabled live version to roll back to" +
                                                    (why.empty() ? "" : " (" + why + ")"));
        },
        a.write_timeout());
    if (!s) return with_etag(error_response(s), etag_now);
    a.refresh_model(name);
    http_response answer = json_response(dump_json(
        {{"model", name}, {"from", from}, {"to", to}, {"actor", actor}, {"reason", reason}}));
    set_etag(answer, alias_etag(to));  // live's, as GET …/aliases/live would say
    return answer;
}

http_response get_model_events(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    auto conn = a.readers().acquire();
    if (!get_model(*conn, name)) return error_response(no_model_named(name));
    auto asked = query_page(req, 500, 1000);
    if (!asked) return error_response(asked.error());
    auto events = list_version_events(*conn, name, *asked);
    json next = next_before(events, *asked, true, [](const version_event_row& e) { return e.id; });
    json out = json::array();
    for (const auto& e : events) {
        out.push_back({{"id", e.id}, {"version", e.version}, {"event", e.event}, {"time", format_rfc3339(e.time)},
                       {"actor", e.actor}, {"reason", e.reason}});
    }
    return json_response(dump_json({{"model", name}, {"events", out}, {"next_before", next}}));
}

http_response post_model_experiment(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    auto body = reasoned_body(req, {"arms"});
    if (!body) return error_response(body.error());
    if (!model_exists(a, name)) return error_response(no_model_named(name));
    auto arms = parse_arms(a, name, *body);
    if (!arms) return error_response(arms.error());
    std::string actor = actor_of(req);
    std::string reason = (*body)["reason"].get<std::string>();
    std::int64_t id = 0;
    status s = a.writer().run(
        [&](connection& c) {
            auto r = start_experiment(c, name, arms->dump(), actor, reason);
            if (!r) return r.error();
            id = *r;
            return status::ok();
        },
        a.write_timeout());
    if (!s) return error_response(s);
    a.refresh_model(name);
    auto conn = a.readers().acquire();
    http_response answer = experiment_answer(*conn, id, 201);
    answer.headers.emplace_back("Location",
                                "/v1/models/" + name + "/experiments/" + std::to_string(id));
    return answer;
}

http_response get_model_experiments(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    auto conn = a.readers().acquire();
    if (!get_model(*conn, name)) return error_response(no_model_named(name));
    auto asked = query_page(req, 100, 1000);
    if (!asked) return error_response(asked.error());
    auto experiments = list_experiments(*conn, name, *asked);
    json next =
        next_before(experiments, *asked, true, [](const experiment_row& e) { return e.id; });
    json out = json::array();
    for (const auto& e : experiments) out.push_back(experiment_json(*conn, e));
    return json_response(dump_json({{"model", name}, {"experiments", out}, {"next_before", next}}));
}

http_response get_model_experiment(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    auto id = parse_id("id", req.param("id"));
    if (!id) return error_response(id.error());
    auto conn = a.readers().acquire();
    if (!get_model(*conn, name)) return error_response(no_model_named(name));
    if (status owned = experiment_belongs(*conn, name, *id); !owned) return error_response(owned);
    return experiment_answer(*conn, *id);
}

namespace {

// Runs a change to one of the model's experiments through the writer, with
// who and why from the request, then answers with the experiment as it now is.
template <typename Change>
http_response act_on_experiment(app& a, const http_request& req, const std::string& name,
                                std::int64_t id, const json& body, Change change,
                                std::optional<bool>* changed = nullptr) {
    auto pre = read_preconditions(req);
    if (!pre) return error_response(pre.error());
    const std::string actor = actor_of(req);
    const std::string reason = body["reason"].get<std::string>();
    std::optional<std::string> etag_now;  // the experiment's, when a condition failed
    status s = a.writer().run(
        [&](connection& c) {
            if (status owned = experiment_belongs(c, name, id); !owned) return owned;
            if (!pre->empty()) {
                etag_now = experiment_state_etag(c, id);
                if (status held = check_preconditions(
                        *pre, etag_now, "experiment " + std::to_string(id) + " of model " + name);
                    !held)
                    return held;
            }
            return change(c, actor, reason);
        },
        a.write_timeout());
    if (!s) return with_etag(error_response(s), etag_now);
    a.refresh_model(name);
    auto conn = a.readers().acquire();
    return experiment_answer(*conn, id, 200, changed ? *changed : std::nullopt);
}

// The newest predictions live metrics read (shadow entries count).
constexpr std::int64_t live_metrics_max_predictions = 50000;

// What arms and shadows are compared with: the version live was when the
// window began (when it was not set then, the first it was set to after),
// so that a promotion during an experiment (or before its end is recorded)
// does not turn the comparison around; the version live is now when no
// window start is given.
std::optional<std::int64_t> reference_version(connection& c, const std::string& name,
                                              micros since) {
    if (since > 0) {
        if (auto then = alias_version_since(c, name, "live", since)) return *then;
    }
    return alias_version(c, name, "live");
}

// An experiment's arm names in the order it lists them (its stored arms).
std::vector<std::string> arm_names(const std::string& arms_json) {
    std::vector<std::string> names;
    const json arms = json::parse(arms_json, nullptr, false);
    if (!arms.is_array()) return names;
    for (const auto& arm : arms) {
        if (arm.is_object() && arm.contains("name") && arm["name"].is_string())
            names.push_back(arm["name"].get<std::string>());
    }
    return names;
}

// Live metrics as GET …/live-metrics answers them (and an experiment's end
// keeps them).
json live_report_json(const std::string& name, const ml::live_report& report,
                      const ml::live_uncertainty_options& options, micros started) {
    json out = json::array();
    for (const auto& g : report.groups) {
        json primary = nullptr;
        if (g.primary) {
            primary = {{"metric", g.primary->metric},
                       {"value", finite_or_null(g.primary->value)},
                       {"lower", finite_or_null(g.primary->lower)},
                       {"upper", finite_or_null(g.primary->upper)},
                       {"entities", g.primary->entities}};
        }
        json decision = nullptr;
        if (g.decision) {
            // What the decision_* metrics count over, with their intervals.
            const ml::operating_point& d = *g.decision;
            decision = {{"rows", d.rows},
                        {"answered_positive", d.predicted_positive()},
                        {"positives", d.positives},
                        {"negatives", d.rows - d.positives},
                        {"precision_interval", {d.precision_lower, d.precision_upper}},
                        {"recall_interval", {d.recall_lower, d.recall_upper}},
                        {"false_positive_rate_interval",
                         {d.false_positive_rate_lower, d.false_positive_rate_upper}}};
            if (g.decision_entities) {
                decision["entities"] = {
                    {"answered_positive", g.decision_entities->answered_positive},
                    {"positives", g.decision_entities->positives},
                    {"negatives", g.decision_entities->negatives}};
            }
        }
        out.push_back({{"version", g.version ? json(*g.version) : json(nullptr)},
                       {"arm", g.arm},
                       {"shadow", g.shadow},
                       {"predictions", g.predictions},
                       {"outcomes", g.outcomes},
                       {"unscored_outcomes", g.unscored_outcomes},
                       {"outcome_entities", g.outcome_entities},
                       {"fallbacks", g.fallbacks},
                       {"mean_latency_ms", g.mean_latency_ms},
                       {"metrics", g.metrics ? metrics_json(*g.metrics) : json(nullptr)},
                       {"decision", decision},
                       {"reliability", g.reliability.empty()
                                           ? json(nullptr)
                                           : json::parse(ml::reliability_json(g.reliability))},
                       {"calibration_error_by_chance",
                        g.reliability.empty()
                            ? json(nullptr)
                            : finite_or_null(ml::calibration_error_by_chance(g.reliability))},
                       {"primary", primary}});
    }
    json comparisons = json::array();
    for (const auto& cmp : report.comparisons) {
        comparisons.push_back(
            {{"version", cmp.version ? json(*cmp.version) : json(nullptr)},
             {"arm", cmp.arm},
             {"shadow", cmp.shadow},
             {"against",
              {{"arm", cmp.against_arm},
               {"version", cmp.against_version ? json(*cmp.against_version) : json(nullptr)}}},
             {"paired", cmp.paired},
             {"metric", cmp.metric},
             {"higher_is_better", cmp.higher_is_better},
             {"outcomes", cmp.outcomes},
             {"against_outcomes", cmp.against_outcomes},
             {"entities", cmp.entities},
             {"against_entities", cmp.against_entities},
             {"difference", finite_or_null(cmp.difference)},
             {"lower", finite_or_null(cmp.lower)},
             {"upper", finite_or_null(cmp.upper)},
             {"verdict", cmp.verdict}});
    }
    json reference = nullptr;
    if (report.reference)
        reference = {{"arm", report.reference->arm}, {"version", report.reference->version}};
    return {{"model", name},
            {"groups", out},
            {"reference", reference},
            {"comparisons", comparisons},
            {"uncertainty",
             {{"confidence", options.confidence},
              {"resamples", options.resamples},
              {"min_entities", options.min_entities},
              {"resampled", "entities"}}},
            {"max_predictions", live_metrics_max_predictions},
            {"truncated", report.truncated},
            {"computed_at", format_rfc3339(started)}};
}

}  // namespace

// What an experiment's arms showed from its start until now, kept with its
// end (its traffic is not kept apart afterwards): null when it cannot be
// computed, which does not keep the experiment from ending.
std::optional<std::string> experiment_results(connection& c, const std::string& name,
                                              const experiment_row& e) {
    auto m = get_model(c, name);
    if (!m) return std::nullopt;
    const micros started = now_micros();
    ml::live_uncertainty_options options;
    options.reference_version = reference_version(c, name, e.started_at);
    options.arm_order = arm_names(e.arms);
    auto report =
        ml::compute_live_report(c, name, parse_definition(m->definition).definition, e.started_at,
                                options, live_metrics_max_predictions, started);
    if (!report) {
        log_warn("experiments", "experiment " + std::to_string(e.id) + " of " + name +
                                    ": its results could not be kept: " + report.error().message());
        return std::nullopt;
    }
    json out = live_report_json(name, *report, options, started);
    out.erase("model");
    out["since"] = format_rfc3339(e.started_at);
    return dump_json(out);
}

http_response put_model_experiment(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    auto id = parse_id("id", req.param("id"));
    if (!id) return error_response(id.error());
    auto body = reasoned_body(req, {"arms"});
    if (!body) return error_response(body.error());
    if (!model_exists(a, name)) return error_response(no_model_named(name));
    auto arms = parse_arms(a, name, *body, *id);
    if (!arms) return error_response(arms.error());
    const std::string arms_json = arms->dump();
    // Arms as they are (a PUT sent again after its answer was lost):
    // "changed": false, nothing recorded, the ETag as it was.
    std::optional<bool> changed = true;
    return act_on_experiment(
        a, req, name, *id, *body,
        [&](connection& c, const std::string& actor, const std::string& reason) -> status {
            auto r = change_experiment(c, *id, arms_json, actor, reason);
            if (!r) return r.error();
            changed = *r;
            return status::ok();
        },
        &changed);
}

http_response post_model_experiment_end(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    auto id = parse_id("id", req.param("id"));
    if (!id) return error_response(id.error());
    auto body = reasoned_body(req);
    if (!body) return error_response(body.error());
    // An unknown model is named as such, as on every other route.
    if (!model_exists(a, name)) return error_response(no_model_named(name));
    // Computed on a reader before the write (the join takes up to a few
    // tenths of a second), for a running experiment of this model only.
    std::optional<std::string> results;
    {
        auto conn = a.readers().acquire();
        auto e = get_experiment(*conn, *id);
        // Not for a condition that fails already: the write answers it
        // (and checks it again), and the join would be wasted.
        auto pre = read_preconditions(req);
        const bool held =
            pre && (pre->empty() || check_preconditions(*pre, experiment_state_etag(*conn, *id),
                                                        "experiment " + std::to_string(*id)));
        if (e && e->model == name && !e->ended_at && held)
            results = experiment_results(*conn, name, *e);
    }
    // An end sent again (its answer lost) finds it ended: "changed": false,
    // as a removal of an alias removed already, not a 409.
    std::optional<bool> changed = true;
    return act_on_experiment(
        a, req, name, *id, *body,
        [&](connection& c, const std::string& actor, const std::string& reason) {
            if (auto e = get_experiment(c, *id); e && e->ended_at) {
                changed = false;
                return status::ok();
            }
            return end_experiment(c, *id, actor, reason, results);
        },
        &changed);
}

http_response get_model_live_metrics(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    micros since = 0;
    auto since_field = query_time(req, "since");
    if (!since_field) return error_response(since_field.error());
    if (*since_field) since = **since_field;
    // ?max_age=S: an answer computed up to S seconds ago will do (the admin
    // page's polls); one computed for another caller is shared.
    micros max_age = 0;
    if (auto text = req.query_value("max_age")) {
        auto seconds = parse_int("max_age", *text, 0, 3600);
        if (!seconds) return error_response(seconds.error());
        max_age = *seconds * 1'000'000;
    }
    std::optional<model_row> m;
    std::optional<std::int64_t> reference;
    // The arms of the experiment that started at `since`, else of the
    // running one (asked so, an ended experiment's comparisons are those
    // its end kept: without its arms' order an A/A test's reference became
    // the arm with the most outcomes, and every comparison changed sign).
    std::vector<std::string> arm_order;
    {
        auto conn = a.readers().acquire();
        m = get_model(*conn, name);
        if (!m) return error_response(no_model_named(name));
        reference = reference_version(*conn, name, since);
        auto e = since ? experiment_started_at(*conn, name, since) : std::nullopt;
        if (!e) e = active_experiment(*conn, name);
        if (e) arm_order = arm_names(e->arms);
    }
    // A definition change may change the label the outcomes are read from,
    // and a move of live or another experiment what is compared.
    std::string key = name + '\n' + std::to_string(m->current_revision) + '\n' +
                      std::to_string(since) + '\n' + (reference ? std::to_string(*reference) : "-");
    for (const auto& arm : arm_order) key += '\n' + arm;
    cached_answer answer = a.live_metrics_cache().get(key, max_age, [&]() -> cached_answer {
        // Taken here, not held while waiting for another caller's answer:
        // twenty waiting pollers held twenty of the pool's readers.
        auto conn = a.readers().acquire();
        const micros started = now_micros();
        parsed_definition p = parse_definition(m->definition);
        ml::live_uncertainty_options options;
        options.reference_version = reference;
        options.arm_order = arm_order;
        auto report = ml::compute_live_report(*conn, name, p.definition, since, options,
                                              live_metrics_max_predictions);
        if (!report) {
            http_response e = error_response(report.error());
            return {e.status, std::move(e.body)};
        }
        return {200, dump_json(live_report_json(name, *report, options, started))};
    });
    return json_response(std::move(answer.body), answer.status);
}

// GET /v1/models/{name}/predictions: the prediction log, newest first, each
// entry with the outcome it was joined to.
http_response get_model_predictions(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    std::size_t limit = 50;
    if (auto l = req.query_value("limit")) {
        auto n = parse_int("limit", *l, 1, 500);
        if (!n) return error_response(n.error());
        limit = static_cast<std::size_t>(*n);
    }
    const std::optional<std::string> entity = req.query_value("entity");
    // An entity no prediction can have is a mistake, not an empty log.
    if (entity) {
        if (auto problem = query_entity_problem(*entity); !problem.empty())
            return error_response(invalid("entity", problem));
    }
    // An id's first 14 hex digits are the answer's time in microseconds: the
    // segments to read are those around it.
    std::optional<std::string> id = req.query_value("id");
    micros since = 0, until = std::numeric_limits<micros>::max();
    // The id of a shadow arm's entry, "<id>-<arm>" as the log lists it, asks
    // for that entry alone.
    bool shadow_id = false;
    if (id) {
        // Ids are written in lower case; one copied in upper case is the same
        // id (an arm's name keeps its case).
        const auto hex_end =
            id->begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(id->size(), 32));
        std::transform(id->begin(), hex_end, id->begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        const bool hex = id->size() >= 32 && std::all_of(id->begin(), hex_end, [](char ch) {
                             return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
                         });
        shadow_id = id->size() > 32 && (*id)[32] == '-' && valid_name(id->substr(33));
        if (!hex || (id->size() > 32 && !shadow_id)) {
            return error_response(
                invalid("id",
                        "must be a prediction id (32 hex digits) or a shadow entry's id "
                        "(<prediction id>-<arm name>)"));
        }
        micros t = 0;
        std::from_chars(id->data(), id->data() + 14, t, 16);
        since = until = t;
    }
    // Page after this (time, id) in newest-first order: "<micros>.<id>",
    // tagged with the list that gave it (see cursor_position).
    const std::string list_tag =
        cursor_tag({"predictions", name, entity.value_or(""), id.value_or("")});
    std::optional<std::pair<micros, std::string>> after;
    if (auto cursor = req.query_value("cursor")) {
        auto position = cursor_position(*cursor, list_tag);
        if (!position) return error_response(position.error());
        const std::string* c = &*position;
        const auto dot = c->find('.');
        if (dot == std::string::npos) return error_response(invalid("cursor", "malformed cursor"));
        // The whole number, in range: a time past int64 once read as 0 and
        // answered an empty last page.
        auto t = parse_int("cursor", c->substr(0, dot), INT64_MIN, INT64_MAX);
        // Then a prediction id (32 hex digits, a shadow's with "-arm"), or
        // nothing (a page cut short continues before its time): any other
        // text read as an empty last page.
        const std::string after_id = c->substr(dot + 1);
        const bool id_ok =
            after_id.empty() ||
            (after_id.size() >= 32 && (after_id.size() == 32 || after_id[32] == '-') &&
             std::all_of(after_id.begin(), after_id.begin() + 32, [](char ch) {
                 return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
             }));
        if (!t || !id_ok) return error_response(invalid("cursor", "malformed cursor"));
        after.emplace(*t, after_id);
        until = std::min(until, *t);
    }
    auto conn = a.readers().acquire();
    auto m = get_model(*conn, name);
    if (!m) return error_response(no_model_named(name));
    parsed_definition p = parse_definition(m->definition);

    auto newer = [](const ml::logged_prediction& x, const ml::logged_prediction& y) {
        return x.time != y.time ? x.time > y.time : x.id > y.id;
    };
    // Bounded work per request: a rare entity must not make one request read
    // the whole log. Past 64 MB of the log's text, or 100,000 entries
    // decoded, the page ends early, and its cursor continues from where the
    // reading stopped. (A segment without the id or entity asked for is only
    // searched, not decoded; at 40k predictions/s the log grows by about
    // 5 MB/s.)
    constexpr std::int64_t max_bytes = 64 << 20;
    constexpr std::size_t max_decoded = 100000;
    std::int64_t bytes = 0;
    std::size_t decoded = 0;
    // The id or entity as the log writes it (JSON, opening quote included).
    std::string needle;
    if (id || entity) {
        json_writer w(needle);
        w.string(id ? *id : *entity);
        if (id && !shadow_id) needle.pop_back();  // a shadow entry's id goes on: "<id>-<arm>"
    }
    bool cut_short = false;
    micros oldest_read = until;
    std::vector<ml::logged_prediction> found;
    try {
        ml::for_each_log_segment(
            *conn, name, since, until,
            [&](micros last_time, std::int64_t segment_bytes) {
                if (found.size() > limit && last_time < found[limit].time) return false;
                if (bytes >= max_bytes || decoded >= max_decoded) {
                    cut_short = true;
                    return false;
                }
                bytes += segment_bytes;
                return true;
            },
            [&](std::vector<ml::logged_prediction>& entries, micros first_time) {
                oldest_read = std::min(oldest_read, first_time);
                decoded += entries.size();
                for (auto& e : entries) {
                    if (id && (shadow_id ? e.id : e.prediction_id()) != *id) continue;
                    if (entity && e.entity != *entity) continue;
                    if (after && (e.time > after->first ||
                                  (e.time == after->first && e.id >= after->second)))
                        continue;
                    found.push_back(std::move(e));
                }
                std::sort(found.begin(), found.end(), newer);
                if (found.size() > limit + 1) found.resize(limit + 1);
            },
            needle);
    } catch (const db_error& e) {
        return error_response(
            status(error_kind::internal, std::string("prediction log: ") + e.what()));
    }
    std::optional<std::string> next;
    if (found.size() > limit) {
        found.resize(limit);
        next = std::to_string(found.back().time) + "." + found.back().id + "~" + list_tag;
    } else if (cut_short) {
        // Whatever is older than the oldest segment read is still to come.
        next = std::to_string(oldest_read) + ".~" + list_tag;
    }

    ml::outcome_joiner outcomes(*conn, name, p.definition);
    json out = json::array();
    for (const auto& e : found)
        out.push_back(logged_entry_json(e, outcomes.scoring(e), outcomes.find(e)));
    return json_response(dump_json({{"model", name},
                                    {"predictions", out},
                                    {"next_cursor", next ? json(*next) : json(nullptr)}}));
}

http_response get_overview(app& a, const http_request&) {
    writer_stats w = a.writer().stats();
    rate_snapshot r = a.metrics().sample(w.facts_stored);
    ml::worker_state t = a.trainer().state();
    auto sup = a.supervisor_state();
    std::size_t loaded = a.serving().loaded().size();
    auto models = a.serving().all();
    auto when = [](std::int64_t micros_or_zero) {
        return micros_or_zero ? json(format_rfc3339(micros_or_zero)) : json(nullptr);
    };
    json out = {
        {"uptime_seconds", static_cast<double>(now_micros() - a.started_at()) / 1e6},
        {"components",
         {{"writer",
           {{"state", a.writer().running() ? "running" : "stopped"},
            {"last_activity", when(w.last_commit_micros)},
            {"queue", w.pending},
            {"queue_limit", a.options().writer_queue},
            {"commits", w.commits},
            {"failed_commits", w.failed_commits},
            {"refused_full", w.refused_full}}},
          {"trainer",
           {{"state", t.state},
            {"job", t.job ? json(*t.job) : json(nullptr)},
            {"last_activity", when(t.last_activity)},
            {"jobs_run", t.jobs_run},
            {"jobs_failed", t.jobs_failed},
            {"last_error", t.last_error.empty() ? json(nullptr) : json(t.last_error)}}},
          {"scheduler",
           {{"state", t.state == "stopped" ? "stopped" : "watching"},
            {"triggers_fired", t.triggers_fired},
            {"checks", t.trigger_checks},
            {"last_activity", when(t.last_activity)}}},
          {"supervisor",
           {{"state", sup.state},
            {"last_tick", when(sup.last_tick)},
            {"ticks", sup.ticks},
            {"actions",
             std::accumulate(sup.actions_total.begin(), sup.actions_total.end(), std::uint64_t{0},
                             [](std::uint64_t n, const auto& kv) { return n + kv.second; })}}},
          {"serving",
           {{"state", a.ready() ? "serving" : "starting"},
            {"models", models.size()},
            {"loaded_versions", loaded},
            {"pool_threads", a.predict_pool().threads()},
            {"pool_queue", a.predict_pool().queued()},
            {"refused", a.predict_pool().refused()},
            {"slots", a.predict_slots().slots()},
            {"waited_for_slot", a.predict_slots().waited()},
            {"log_dropped", a.prediction_log().stats().dropped}}},
          {"http",
           {{"state", a.ready() ? "serving" : "starting"},
            {"threads", a.options().http_threads},
            {"parked_connections", a.parked_connections()}}}}},
        {"rates",
         {{"facts_per_second", r.facts_per_second},
          {"predictions_per_second", r.predictions_per_second},
          {"predictions_total", r.predictions_total},
          {"p50_ms", r.predictions_total ? json(r.p50_ms) : json(nullptr)},
          {"p99_ms", r.predictions_total ? json(r.p99_ms) : json(nullptr)},
          {"fallback_share", r.predictions_total ? json(r.fallback_share) : json(nullptr)}}}};
    return json_response(dump_json(out));
}

http_response get_serving(app& a, const http_request& req) {
    // ?model=NAME: that model alone (a page about one model read every
    // model's, 536 KB a refresh at 1,253 models); none when nothing serves it.
    std::vector<std::shared_ptr<const ml::model_serving>> shown;
    if (auto only = req.query_value("model")) {
        if (!valid_name(*only))
            return error_response(invalid("model", model_name_problem().message()));
        if (auto m = a.serving().get(*only)) shown.push_back(std::move(m));
    } else {
        shown = a.serving().all();
    }
    json models = json::array();
    for (const auto& m : shown) {
        json versions = json::array();
        ml::for_each_served_version(*m, [&](const ml::loaded_version& v, const std::string& role) {
            versions.push_back({{"version", v.version},
                                {"role", role},
                                {"roles", ml::served_roles(*m, v.version)},
                                {"sha256", v.sha256},
                                {"requests", v.counters.requests.load()},
                                {"errors", v.counters.errors.load()},
                                {"deadline_misses", v.counters.deadline_misses.load()},
                                {"fallbacks", v.counters.fallbacks.load()},
                                {"drift", drift_window_brief(*m, v)}});
        });
        models.push_back(
            {{"model", m->name},
             {"revision", m->revision},
             {"live_alias", m->live_alias_version ? json(*m->live_alias_version) : json(nullptr)},
             {"serving_version", m->answering() ? json(m->answering()->version) : json(nullptr)},
             {"problem", m->live_problem.empty() ? json(nullptr) : json(m->live_problem)},
             {"disabled", m->disabled},
             {"experiment", m->experiment ? json(*m->experiment) : json(nullptr)},
             {"deadline_ms", m->definition.deadline_ms},
             {"versions", versions}});
    }
    auto log = a.prediction_log().stats();
    auto sup = a.supervisor_state();
    json actions = json::array();
    for (const auto& act : sup.actions) {
        actions.push_back({{"time", format_rfc3339(act.time)},
                           {"kind", act.kind},
                           {"model", act.model},
                           {"version", act.version},
                           {"reason", act.reason},
                           {"outcome", act.outcome}});
    }
    json out = {
        {"models", models},
        {"predict_pool",
         {{"threads", a.predict_pool().threads()},
          {"queued", a.predict_pool().queued()},
          {"refused", a.predict_pool().refused()},
          {"limit", a.options().predict_queue}}},
        {"predict_slots",
         {{"slots", a.predict_slots().slots()},
          {"waited", a.predict_slots().waited()},
          {"gave_up", a.predict_slots().gave_up()}}},
        {"explanations",
         {{"slots", a.explain_slots().slots()},
          {"given", a.metrics().explained()},
          {"unavailable", a.metrics().not_explained()},
          {"seconds", a.metrics().explanation_seconds()},
          {"refused", a.explain_slots().gave_up()}}},
        {"prediction_log",
         {{"logged", log.logged},
          {"dropped", log.dropped},
          {"queued", log.queued},
          {"expired", log.expired}}},
        {"supervisor",
         {{"state", sup.state},
          {"ticks", sup.ticks},
          {"last_tick", sup.last_tick ? json(format_rfc3339(sup.last_tick)) : json(nullptr)},
          {"actions", actions}}}};
    return json_response(dump_json(out));
}

}  // namespace kennel

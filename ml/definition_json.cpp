#include "ml/definition_json.h"

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "ml/canary.h"
#include "ml/dataset.h"
#include "ml/decision.h"
#include "ml/value.h"
#include "store/db.h"
#include "store/facts.h"
#include "store/json_input.h"

namespace kennel {
namespace {

// As many buckets as category values (top_n) at most.
constexpr std::size_t max_bucket_edges = 10000;

using json = nlohmann::json;

// Collects errors while reading typed values out of a JSON object.
class reader {
public:
    explicit reader(std::vector<field_error>& errors) : errors_(errors) {}

    void error(const std::string& field, const std::string& message) {
        errors_.push_back({field, message});
    }

    // Known keys only: a typo must not silently become a default.
    void only(const json& obj, const std::string& path, std::initializer_list<const char*> keys) {
        for (const auto& [k, v] : obj.items()) {
            (void)v;
            bool ok = false;
            for (const char* key : keys) ok = ok || k == key;
            if (!ok) error(join(path, k), "unknown field");
        }
    }

    bool number(const json& obj, const std::string& path, const char* key, double& out, double min,
                double max) {
        auto it = obj.find(key);
        if (it == obj.end() || it->is_null()) return false;
        if (!it->is_number()) {
            error(join(path, key), "must be a number");
            return false;
        }
        double v = it->get<double>();
        if (!std::isfinite(v) || v < min || v > max) {
            error(join(path, key), "must be between " + fmt(min) + " and " + fmt(max));
            return false;
        }
        out = v;
        return true;
    }

    template <class Int>
    bool integer(const json& obj, const std::string& path, const char* key, Int& out, double min,
                 double max) {
        auto it = obj.find(key);
        if (it == obj.end() || it->is_null()) return false;
        if (!it->is_number_integer()) {
            error(join(path, key), "must be an integer");
            return false;
        }
        auto v = it->get<std::int64_t>();
        if (static_cast<double>(v) < min || static_cast<double>(v) > max) {
            error(join(path, key), "must be between " + fmt(min) + " and " + fmt(max));
            return false;
        }
        out = static_cast<Int>(v);
        return true;
    }

    bool string(const json& obj, const std::string& path, const char* key, std::string& out,
                bool required) {
        auto it = obj.find(key);
        if (it == obj.end() || it->is_null()) {
            if (required) error(join(path, key), "missing");
            return false;
        }
        if (!it->is_string() || it->get<std::string>().empty()) {
            error(join(path, key), "must be a non-empty string");
            return false;
        }
        out = it->get<std::string>();
        return true;
    }

    bool boolean(const json& obj, const std::string& path, const char* key, bool& out) {
        auto it = obj.find(key);
        if (it == obj.end() || it->is_null()) return false;
        if (!it->is_boolean()) {
            error(join(path, key), "must be true or false");
            return false;
        }
        out = it->get<bool>();
        return true;
    }

    static std::string join(const std::string& path, const std::string& key) {
        return path.empty() ? key : path + "." + key;
    }
    static std::string fmt(double v) {
        json j = v;
        if (v == std::floor(v) && std::fabs(v) < 1e15) j = static_cast<std::int64_t>(v);
        return j.dump();
    }

private:
    std::vector<field_error>& errors_;
};

// A feature's "aggregate": {"stream", "op", "of"?, "window_seconds"?}.
std::optional<ml::aggregate_spec> parse_aggregate(reader& r, const json& a, const std::string& path,
                                                  const ml::feature_spec& spec) {
    if (!a.is_object()) {
        r.error(path, "must be an object like {\"stream\": \"logins\", \"op\": \"count\"}");
        return std::nullopt;
    }
    r.only(a, path, {"stream", "op", "of", "window_seconds"});
    ml::aggregate_spec out;
    out.field = spec.field;
    bool ok = r.string(a, path, "stream", out.stream, true);
    std::string op;
    if (r.string(a, path, "op", op, true)) {
        auto parsed = ml::parse_aggregate_op(op);
        if (parsed) {
            out.op = *parsed;
        } else {
            r.error(path + ".op", parsed.error().message());
            ok = false;
        }
    } else {
        ok = false;
    }
    if (r.string(a, path, "of", out.of, false)) {
        if (std::string why = unreadable_field_name(out.of); !why.empty()) {
            r.error(path + ".of", why);
            ok = false;
        }
    } else if (ok && out.op != ml::aggregate_op::count &&
               (!a.contains("of") || a.at("of").is_null())) {
        r.error(path + ".of",
                std::string("missing: ") + ml::aggregate_op_name(out.op) +
                    " needs the numeric field it aggregates, e.g. \"of\": \"amount\"");
        ok = false;
    }
    double window = 0;
    if (r.number(a, path, "window_seconds", window, 1, ml::max_aggregate_window_seconds)) {
        out.window_seconds = window;
    } else if (auto w = a.find("window_seconds"); w != a.end() && !w->is_null()) {
        ok = false;
    }
    // The value is a number: a transform for strings or booleans would
    // read nothing but its imputed value.
    using k = ml::transform_kind;
    if (spec.transform != k::numeric && spec.transform != k::log && spec.transform != k::binarize &&
        spec.transform != k::bucketize) {
        r.error(path, std::string("an aggregate is a number: its transform must be numeric, log, "
                                  "binarize or bucketize, not ") +
                          ml::transform_kind_name(spec.transform));
        ok = false;
    }
    if (!ok) return std::nullopt;
    return out;
}

void parse_feature(reader& r, const json& f, const std::string& path, ml::feature_spec& spec,
                   std::optional<ml::aggregate_spec>& aggregate) {
    if (!f.is_object()) {
        r.error(path, "a feature must be an object like {\"field\": \"length\"}");
        return;
    }
    r.only(f, path,
           {"field", "transform", "threshold", "edges", "top_n", "missing_slot", "buckets", "width",
            "aggregate"});
    r.string(f, path, "field", spec.field, true);
    if (std::string why = unreadable_field_name(spec.field); !why.empty())
        r.error(path + ".field", why);
    std::string transform = "numeric";
    r.string(f, path, "transform", transform, false);
    auto kind = ml::parse_transform_kind(transform);
    if (!kind) {
        r.error(path + ".transform", kind.error().message());
        return;
    }
    spec.transform = *kind;
    // A parameter of another transform would be dropped unseen: "edges"
    // without "transform": "bucketize" trained a plain number.
    static const std::pair<const char*, ml::transform_kind> owners[] = {
        {"threshold", ml::transform_kind::binarize}, {"edges", ml::transform_kind::bucketize},
        {"top_n", ml::transform_kind::category},     {"missing_slot", ml::transform_kind::category},
        {"buckets", ml::transform_kind::text},       {"width", ml::transform_kind::interval}};
    for (const auto& [key, owner] : owners) {
        if (f.contains(key) && owner != spec.transform) {
            r.error(path + "." + key, std::string("applies only to the ") +
                                          ml::transform_kind_name(owner) +
                                          " transform, and this feature's is " + transform);
        }
    }
    ml::transform_params& p = spec.params;
    r.number(f, path, "threshold", p.threshold, -1e300, 1e300);
    if (auto e = f.find("edges"); e != f.end()) {
        if (!e->is_array() || e->empty()) {
            r.error(path + ".edges", "must be a non-empty array of increasing numbers");
        } else if (e->size() > max_bucket_edges) {
            // Each edge is a column every prediction writes: a body's worth
            // of edges (millions) made each request allocate megabytes.
            r.error(path + ".edges", "at most " + std::to_string(max_bucket_edges) + " edges (" +
                                         std::to_string(e->size()) + " given)");
        } else {
            for (const auto& x : *e) {
                if (!x.is_number()) {
                    r.error(path + ".edges", "must hold only numbers");
                    p.edges.clear();
                    break;
                }
                p.edges.push_back(x.get<double>());
            }
        }
    } else if (spec.transform == ml::transform_kind::bucketize) {
        r.error(path + ".edges", "missing: bucketize needs edges, e.g. [50, 100, 200]");
    }
    r.integer(f, path, "top_n", p.top_n, 1, 10000);
    r.boolean(f, path, "missing_slot", p.missing_slot);
    r.integer(f, path, "buckets", p.buckets, 1, 1 << 16);
    r.boolean(f, path, "width", p.width);
    if (spec.transform == ml::transform_kind::binarize && !f.contains("threshold")) {
        r.error(path + ".threshold", "missing: binarize needs a threshold");
    }
    if (auto a = f.find("aggregate"); a != f.end() && !a->is_null() && !spec.field.empty()) {
        aggregate = parse_aggregate(r, *a, path + ".aggregate", spec);
        // One refused (said already) still marks its field as computed, or
        // the checks against the facts add "no fact holds it" beside the
        // real problem. A definition with errors is never stored, so the
        // placeholder (no stream) goes nowhere.
        if (!aggregate)
            aggregate = ml::aggregate_spec{spec.field, "", ml::aggregate_op::count, "", {}};
    }
}

json decision_json(const ml::decision_policy& p) {
    json j = {{"rule", ml::decision_rule_name(p.rule)}};
    switch (p.rule) {
        case ml::decision_rule::f1:
            break;
        case ml::decision_rule::fixed:
            j["threshold"] = p.threshold;
            break;
        case ml::decision_rule::min_precision:
        case ml::decision_rule::min_recall:
        case ml::decision_rule::max_false_positive_rate:
            j["target"] = p.target;
            break;
        case ml::decision_rule::min_cost:
            j["false_positive_cost"] = p.false_positive_cost;
            j["false_negative_cost"] = p.false_negative_cost;
            break;
    }
    return j;
}

json feature_json(const ml::feature_spec& s, const ml::aggregate_spec* aggregate) {
    json f = {{"field", s.field}, {"transform", ml::transform_kind_name(s.transform)}};
    if (aggregate) f["aggregate"] = json::parse(ml::aggregate_to_json(*aggregate));
    switch (s.transform) {
        case ml::transform_kind::binarize:
            f["threshold"] = s.params.threshold;
            break;
        case ml::transform_kind::bucketize:
            f["edges"] = s.params.edges;
            break;
        case ml::transform_kind::category:
            f["top_n"] = s.params.top_n;
            f["missing_slot"] = s.params.missing_slot;
            break;
        case ml::transform_kind::text:
            f["buckets"] = s.params.buckets;
            break;
        case ml::transform_kind::interval:
            f["width"] = s.params.width;
            break;
        default:
            break;
    }
    return f;
}

}  // namespace

namespace {

// {"rule": "min_precision", "target": 0.9} and the like (ml/decision.h).
void parse_decision(reader& r, const json& j, ml::model_definition& d) {
    if (!j.is_object()) {
        r.error("decision",
                "must be an object like {\"rule\": \"min_precision\", \"target\": 0.9}");
        return;
    }
    if (d.task != ml::task_kind::binary) {
        r.error("decision",
                "a decision rule applies to binary models only: a " +
                    std::string(ml::task_kind_name(d.task)) + " model answers its " +
                    (d.task == ml::task_kind::multiclass ? "most probable class" : "value"));
        return;
    }
    ml::decision_policy& p = d.decision;
    // A null is no value: read as the default, it stored a definition the
    // same request refuses when sent back (a target of 0).
    const auto given = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };
    std::string rule = "f1";
    if (!r.string(j, "decision", "rule", rule, true)) return;
    auto parsed = ml::parse_decision_rule(rule);
    if (!parsed) {
        r.error("decision.rule",
                "unknown rule \"" + rule +
                    "\": use f1, fixed (with threshold), min_precision, min_recall or "
                    "max_false_positive_rate (with target), or min_cost (with "
                    "false_positive_cost and false_negative_cost)");
        return;
    }
    p.rule = *parsed;
    switch (p.rule) {
        case ml::decision_rule::f1:
            r.only(j, "decision", {"rule"});
            break;
        case ml::decision_rule::fixed:
            r.only(j, "decision", {"rule", "threshold"});
            if (!given("threshold"))
                r.error("decision.threshold", "missing: a fixed rule needs a threshold in (0, 1]");
            r.number(j, "decision", "threshold", p.threshold, 0, 1);
            break;
        case ml::decision_rule::min_precision:
        case ml::decision_rule::min_recall:
        case ml::decision_rule::max_false_positive_rate: {
            r.only(j, "decision", {"rule", "target"});
            const bool rate = p.rule == ml::decision_rule::max_false_positive_rate;
            if (!given("target")) {
                r.error("decision.target",
                        "missing: " + rule + " needs a target in " + (rate ? "[0, 1)" : "(0, 1]"));
                break;
            }
            // A precision or recall of 0 is met by anything, and a false
            // positive rate of 1 too: a rule that chooses nothing.
            if (r.number(j, "decision", "target", p.target, 0, 1) &&
                (rate ? p.target >= 1 : p.target <= 0)) {
                r.error("decision.target", rule + " needs a target in " +
                                               (rate ? "[0, 1): 1 allows every false positive"
                                                     : "(0, 1]: 0 is met by any threshold"));
            }
            break;
        }
        case ml::decision_rule::min_cost:
            r.only(j, "decision", {"rule", "false_positive_cost", "false_negative_cost"});
            for (const char* key : {"false_positive_cost", "false_negative_cost"}) {
                if (!given(key))
                    r.error(std::string("decision.") + key,
                            "missing: min_cost needs false_positive_cost and false_negative_cost "
                            "(each >= 0, in one unit)");
            }
            r.number(j, "decision", "false_positive_cost", p.false_positive_cost, 0, 1e12);
            r.number(j, "decision", "false_negative_cost", p.false_negative_cost, 0, 1e12);
            if (p.false_positive_cost == 0 && p.false_negative_cost == 0)
                r.error(
                    "decision",
                    "min_cost needs a cost above 0: with both at 0 every threshold costs nothing");
            break;
    }
}

}  // namespace

parsed_definition parse_definition(const std::string& text) {
    parsed_definition out;
    reader r(out.errors);
    auto parsed = parse_json_input(text);
    if (!parsed) {
        r.error(parsed.error().field(), parsed.error().message());
        return out;
    }
    const json& j = *parsed;
    if (!j.is_object()) {
        r.error("", "a model definition must be a JSON object");
        return out;
    }
    out.object = true;
    ml::model_definition& d = out.definition;
    r.only(j, "",
           {"task", "features_from", "label", "features", "algorithm", "params", "search",
            "holdout", "max_classes", "retrain", "promotion", "decision", "calibration", "training",
            "serving", "supervision", "test_fault"});
    std::string task;
    bool task_known = false;
    if (r.string(j, "", "task", task, true)) {
        auto t = ml::parse_task_kind(task);
        if (t) {
            d.task = *t;
            task_known = true;
        } else {
            r.error("task", t.error().message());
        }
    }
    r.string(j, "", "features_from", d.features_from, true);
    if (auto l = j.find("label"); l == j.end()) {
        r.error("label", "missing: {\"stream\": ..., \"field\": ...}");
    } else if (!l->is_object()) {
        r.error("label", "must be an object {\"stream\": ..., \"field\": ...}");
    } else {
        r.only(*l, "label", {"stream", "field", "positive"});
        if (!r.string(*l, "label", "stream", d.label.stream, false))
            d.label.stream = d.features_from;
        r.string(*l, "label", "field", d.label.field, true);
        if (std::string why = unreadable_field_name(d.label.field); !why.empty())
            r.error("label.field", why);
        // A class as its name reads in answers: "true", "1", "fraud".
        if (std::string positive; r.string(*l, "label", "positive", positive, false)) {
            if (d.task != ml::task_kind::binary) {
                r.error("label.positive", "names the positive class of a binary task only");
            } else {
                d.label.positive = positive;
            }
        }
    }
    if (auto f = j.find("features"); f == j.end()) {
        r.error("features", "missing: a list like [{\"field\": \"length\"}]");
    } else if (!f->is_array() || f->empty()) {
        r.error("features", "must be a non-empty array");
    } else {
        for (std::size_t i = 0; i < f->size(); ++i) {
            ml::feature_spec spec;
            const std::string path = "features[" + std::to_string(i) + "]";
            std::optional<ml::aggregate_spec> aggregate;
            parse_feature(r, (*f)[i], path, spec, aggregate);
            // A field is one value: every feature reading it computes it
            // alike, or reads it from the fact alike.
            const ml::aggregate_spec* before = ml::aggregate_of(d, spec.field);
            bool read_before = false;
            for (const auto& other : d.features)
                read_before = read_before || other.field == spec.field;
            if (read_before &&
                (aggregate ? !before || !(*before == *aggregate) : before != nullptr)) {
                r.error(path + ".aggregate",
                        "\"" + spec.field +
                            "\" is read by an earlier feature with another aggregate (or none); "
                            "features reading one field share its aggregate");
            } else if (aggregate && !before) {
                d.aggregates.push_back(std::move(*aggregate));
            }
            d.features.push_back(std::move(spec));
        }
        if (out.errors.empty()) {
            for (const status& s : ml::spec_problems(d.features)) {
                // Report at the path the user wrote: parameters sit directly
                // on the feature object, not under "params".
                std::string field = s.field();
                if (auto at = field.find(".params."); at != std::string::npos) field.erase(at, 7);
                r.error(field, s.message());
            }
        }
    }
    r.string(j, "", "algorithm", d.algorithm, false);
    if (d.algorithm != "auto") {
        auto a = ml::parse_algorithm(d.algorithm);
        if (!a) r.error("algorithm", "must be auto, baseline, linear, kernel or forest");
    }
    if (auto p = j.find("params"); p != j.end()) {
        if (!p->is_object()) {
            r.error("params", "must be an object");
        } else {
            r.only(*p, "params",
                   {"c", "lambda", "gamma", "num_trees", "min_samples_per_leaf",
                    "feature_subsampling", "max_kernel_rows", "max_iterations"});
            ml::train_params& tp = d.params;
            r.number(*p, "params", "c", tp.c, 1e-9, 1e9);
            r.number(*p, "params", "lambda", tp.lambda, 0, 1e9);
            r.number(*p, "params", "gamma", tp.gamma, 0, 1e9);
            r.integer(*p, "params", "num_trees", tp.num_trees, 1, 5000);
            r.integer(*p, "params", "min_samples_per_leaf", tp.min_samples_per_leaf, 1, 100000);
            r.number(*p, "params", "feature_subsampling", tp.feature_subsampling, 0.01, 1);
            r.integer(*p, "params", "max_kernel_rows", tp.max_kernel_rows, 10, 50000);
            r.integer(*p, "params", "max_iterations", tp.max_iterations, 1, 100000);
        }
    }
    if (auto s = j.find("search"); s != j.end()) {
        if (!s->is_object()) {
            r.error("search", "must be an object like {\"budget_seconds\": 20}");
        } else {
            r.only(*s, "search", {"budget_seconds"});
            r.number(*s, "search", "budget_seconds", d.search_budget_seconds, 1, 86400);
        }
    }
    // A share (by entity), or {"share", "by": "entity" | "time"}.
    if (auto h = j.find("holdout"); h != j.end() && h->is_object()) {
        r.only(*h, "holdout", {"share", "by"});
        r.number(*h, "holdout", "share", d.holdout, 0.05, 0.9);
        std::string by;
        if (r.string(*h, "holdout", "by", by, false)) {
            if (by == "time") {
                d.holdout_by = ml::split_by::time;
            } else if (by != "entity") {
                r.error("holdout.by", "must be \"entity\" or \"time\"");
            }
        }
    } else if (h != j.end() && !h->is_null() && !h->is_number()) {
        r.error("holdout",
                "must be a number (a share like 0.2) or an object like {\"share\": 0.2, \"by\": "
                "\"time\"}");
    } else {
        r.number(j, "", "holdout", d.holdout, 0.05, 0.9);
    }
    r.integer(j, "", "max_classes", d.max_classes, 2, 1000);
    if (auto rt = j.find("retrain"); rt != j.end() && !rt->is_null()) {
        if (rt->is_string() && rt->get<std::string>() == "manual") {
            // manual: no trigger
        } else if (!rt->is_object()) {
            r.error("retrain", "must be \"manual\" or an object like {\"every_new_labels\": 500}");
        } else {
            r.only(*rt, "retrain", {"every_new_labels", "every_seconds", "on_drift"});
            r.boolean(*rt, "retrain", "on_drift", d.retrain.on_drift);
            std::int64_t n = 0;
            if (r.integer(*rt, "retrain", "every_new_labels", n, 1, 1e12))
                d.retrain.every_new_labels = n;
            if (r.integer(*rt, "retrain", "every_seconds", n, 10, 1e9)) d.retrain.every_seconds = n;
        }
    }
    if (auto pr = j.find("promotion"); pr != j.end()) {
        if (!pr->is_object()) {
            r.error("promotion", "must be an object like {\"mode\": \"auto\"}");
        } else {
            r.only(*pr, "promotion", {"mode", "min_improvement", "thresholds", "canary"});
            std::string mode = "auto";
            r.string(*pr, "promotion", "mode", mode, false);
            if (mode == "auto") {
                d.promotion.mode = ml::promotion_mode::automatic;
            } else if (mode == "manual") {
                d.promotion.mode = ml::promotion_mode::manual;
            } else if (mode == "canary") {
                d.promotion.mode = ml::promotion_mode::canary;
            } else {
                r.error("promotion.mode", "must be auto, manual or canary");
            }
            if (auto cn = pr->find("canary"); cn != pr->end() && !cn->is_null()) {
                if (d.promotion.mode != ml::promotion_mode::canary) {
                    r.error("promotion.canary", "is read only with \"mode\": \"canary\"");
                } else if (!cn->is_object()) {
                    r.error("promotion.canary",
                            "must be an object like {\"share\": 0.1, \"entities\": 200}");
                } else {
                    ml::canary_policy& cp = d.promotion.canary;
                    r.only(*cn, "promotion.canary",
                           {"share", "entities", "max_loss", "max_seconds"});
                    // A canary takes a minority of the traffic: past a half
                    // it is a switch with a fallback, not a canary.
                    r.number(*cn, "promotion.canary", "share", cp.share, 0.001, 0.5);
                    // Below 30 a side, live metrics give no interval to judge by.
                    r.integer(*cn, "promotion.canary", "entities", cp.entities, 30, 1e9);
                    r.number(*cn, "promotion.canary", "max_loss", cp.max_loss, 0, 1e12);
                    r.integer(*cn, "promotion.canary", "max_seconds", cp.max_seconds, 10, 1e9);
                    // Its share of the predictions a look reads caps the
                    // entities it can see: fewer, and it could only expire.
                    const double reach = cp.share * static_cast<double>(ml::canary_max_predictions);
                    if (reach < static_cast<double>(cp.entities)) {
                        r.error("promotion.canary.entities",
                                "a canary is judged on the newest " +
                                    std::to_string(ml::canary_max_predictions) +
                                    " predictions, of which a share of " +
                                    ml::plain_number(cp.share) + " is about " +
                                    ml::plain_number(std::floor(reach)) + ": too few for " +
                                    std::to_string(cp.entities) +
                                    " entities; raise share or lower entities");
                    }
                }
            }
            r.number(*pr, "promotion", "min_improvement", d.promotion.min_improvement, 0, 1e12);
            if (auto th = pr->find("thresholds"); th != pr->end()) {
                if (!th->is_object()) {
                    r.error("promotion.thresholds", "must be an object of metric: bound");
                } else {
                    for (const auto& [name, v] : th->items()) {
                        std::string path = "promotion.thresholds." + name;
                        if (!ml::known_metric(d.task, name)) {
                            r.error(path, "unknown metric for a " +
                                              std::string(ml::task_kind_name(d.task)) + " model");
                        } else if (!v.is_number() || !std::isfinite(v.get<double>())) {
                            r.error(path, "must be a number");
                        } else {
                            d.promotion.thresholds[name] = v.get<double>();
                        }
                    }
                }
            }
        }
    }
    if (auto dc = j.find("decision"); dc != j.end() && !dc->is_null() && task_known)
        parse_decision(r, *dc, d);
    // A null is no calibration, as an absent one (and "decision": null).
    if (auto cal = j.find("calibration"); cal != j.end() && !cal->is_null() && task_known) {
        if (!cal->is_string()) {
            r.error("calibration", "must be \"sigmoid\", \"isotonic\" or \"none\"");
        } else if (auto m = ml::parse_calibration_method(cal->get<std::string>()); !m) {
            r.error("calibration", m.error().message());
        } else if (*m != ml::calibration_method::none && d.task != ml::task_kind::binary) {
            r.error("calibration",
                    "applies to binary models only: a " + std::string(ml::task_kind_name(d.task)) +
                        " model's " +
                        (d.task == ml::task_kind::multiclass ? "probabilities are over its classes"
                                                             : "answer is a value"));
        } else if (*m != ml::calibration_method::none && d.algorithm == "baseline") {
            r.error("calibration",
                    "the baseline answers the label's prior for every row: there is nothing to "
                    "calibrate");
        } else {
            d.calibration = *m;
        }
    }
    if (auto sv = j.find("supervision"); sv != j.end()) {
        if (!sv->is_object()) {
            r.error("supervision", "must be an object like {\"max_error_rate\": 0.2}");
        } else {
            ml::supervision_policy& sp = d.supervision;
            r.only(*sv, "supervision",
                   {"enabled", "max_error_rate", "max_deadline_miss_rate", "max_fallback_share",
                    "min_requests", "window_seconds", "live_thresholds", "min_outcomes",
                    "live_window_seconds", "outcome_delay_seconds", "max_feature_drift",
                    "drift_window_seconds", "min_drift_samples"});
            r.boolean(*sv, "supervision", "enabled", sp.enabled);
            r.number(*sv, "supervision", "max_error_rate", sp.max_error_rate, 0, 1);
            r.number(*sv, "supervision", "max_deadline_miss_rate", sp.max_deadline_miss_rate, 0, 1);
            r.number(*sv, "supervision", "max_fallback_share", sp.max_fallback_share, 0, 1);
            r.integer(*sv, "supervision", "min_requests", sp.min_requests, 1, 1e9);
            r.number(*sv, "supervision", "window_seconds", sp.window_seconds, 1, 86400);
            r.integer(*sv, "supervision", "min_outcomes", sp.min_outcomes, 1, 1e9);
            r.number(*sv, "supervision", "live_window_seconds", sp.live_window_seconds, 1,
                     30 * 86400);
            r.number(*sv, "supervision", "outcome_delay_seconds", sp.outcome_delay_seconds, 0,
                     30 * 86400);
            r.number(*sv, "supervision", "max_feature_drift", sp.max_feature_drift, 0, 100);
            r.number(*sv, "supervision", "drift_window_seconds", sp.drift_window_seconds, 10,
                     7 * 86400);
            r.integer(*sv, "supervision", "min_drift_samples", sp.min_drift_samples, 1, 1e9);
            if (auto th = sv->find("live_thresholds"); th != sv->end()) {
                if (!th->is_object()) {
                    r.error("supervision.live_thresholds", "must be an object of metric: bound");
                } else {
                    for (const auto& [name, v] : th->items()) {
                        std::string path = "supervision.live_thresholds." + name;
                        if (!ml::known_metric(d.task, name)) {
                            r.error(path, "unknown metric for this task");
                        } else if (!v.is_number()) {
                            r.error(path, "must be a number");
                        } else {
                            sp.live_thresholds[name] = v.get<double>();
                        }
                    }
                }
            }
        }
    }
    if (auto t = j.find("training"); t != j.end()) {
        if (!t->is_object()) {
            r.error("training", "must be an object like {\"deadline_seconds\": 600}");
        } else {
            r.only(*t, "training", {"deadline_seconds", "memory_mb"});
            r.number(*t, "training", "deadline_seconds", d.training_deadline_seconds, 1, 86400);
            r.integer(*t, "training", "memory_mb", d.training_memory_mb, 64, 1 << 20);
        }
    }
    if (auto s = j.find("serving"); s != j.end()) {
        if (!s->is_object()) {
            r.error("serving", "must be an object like {\"deadline_ms\": 50}");
        } else {
            r.only(*s, "serving", {"deadline_ms", "fallback"});
            r.number(*s, "serving", "deadline_ms", d.deadline_ms, 1, 60000);
            if (auto fb = s->find("fallback"); fb != s->end() && !fb->is_null()) {
                if (d.task == ml::task_kind::regression) {
                    if (!fb->is_number() || !std::isfinite(fb->get<double>())) {
                        r.error("serving.fallback", "a regression fallback must be a number");
                    } else {
                        d.fallback_value = fb->get<double>();
                    }
                } else if (fb->is_string() && fb->get<std::string>().empty()) {
                    r.error("serving.fallback",
                            "a classification fallback must be a class name, "
                            "not empty");
                } else if (fb->is_string()) {
                    d.fallback_label = fb->get<std::string>();
                } else if (fb->is_boolean() || fb->is_number_integer()) {
                    d.fallback_label = fb->dump();
                } else {
                    r.error("serving.fallback", "a classification fallback must be a class name");
                }
            }
        }
    }
    if (auto tf = j.find("test_fault"); tf != j.end()) {
        r.string(j, "", "test_fault", d.test_fault, false);
        static const char* faults[] = {"throw",
                                       "crash",
                                       "sleep",
                                       "sleep_after_read",
                                       "oom",
                                       "oom_in_calibration",
                                       "serve_throw",
                                       "serve_sleep",
                                       "corrupt_artifact",
                                       "wait_for_live_move",
                                       "wait_for_live_move_and_back",
                                       "wait_for_new_revision",
                                       "hold_after_fit"};
        bool ok = false;
        std::string names;  // the list said from the one above, so it cannot miss one
        for (const char* f : faults) {
            ok = ok || d.test_fault == f;
            names += std::string(names.empty()                        ? ""
                                 : f == faults[std::size(faults) - 1] ? " or "
                                                                      : ", ") +
                     f;
        }
        if (!ok) r.error("test_fault", "must be " + names);
    }
    return out;
}

void check_new_definition(const ml::model_definition& d, std::vector<field_error>& errors) {
    // From the label's own stream, the label field as a feature is the answer
    // itself (the label fact is its own feature fact): a perfect holdout
    // score, and a model that cannot predict when it is absent.
    if (d.label.stream == d.features_from && !d.label.field.empty()) {
        for (std::size_t i = 0; i < d.features.size(); ++i) {
            if (d.features[i].field == d.label.field) {
                errors.push_back({"features[" + std::to_string(i) + "].field",
                                  "\"" + d.label.field + "\" is the label field of stream \"" +
                                      d.label.stream +
                                      "\": a model cannot learn from its own label"});
            }
        }
    }
    // The trainers' bound (ml::validate_params), tighter than the parser's:
    // a larger gamma was stored and every job of the definition failed.
    if (d.params.gamma > 1e6) errors.push_back({"params.gamma", "must be between 0 and 1000000"});
    // A bound outside the range of its metric ([0, 1]; at least 0 for a
    // loss or an error; at most 1 for r2) is never met (every candidate
    // rejected, every judged version disabled) or always is.
    const auto unit_bounds = [&](const std::map<std::string, double>& bounds,
                                 const std::string& path) {
        for (const auto& [name, v] : bounds) {
            if (ml::metric_in_unit_interval(name) && !(v >= 0 && v <= 1)) {
                errors.push_back(
                    {path + name, "must be between 0 and 1: " + name + " cannot leave [0, 1]"});
            } else if ((name == "log_loss" || name == "rmse" || name == "mae") && !(v >= 0)) {
                // Half-bounded: -1 disabled every version the supervisor judged.
                errors.push_back(
                    {path + name, "must be at least 0: " + name + " is never below 0"});
            } else if (name == "r2" && !(v <= 1)) {
                errors.push_back({path + name, "must be at most 1: r2 is never above 1"});
            }
        }
    };
    unit_bounds(d.promotion.thresholds, "promotion.thresholds.");
    if (d.decision.rule == ml::decision_rule::fixed && d.decision.threshold <= 0) {
        errors.push_back({"decision.threshold",
                          "a fixed rule needs a threshold in (0, 1]: at 0 every answer is yes"});
    }
    unit_bounds(d.supervision.live_thresholds, "supervision.live_thresholds.");
}

std::string decision_policy_json(const ml::decision_policy& p) {
    return decision_json(p).dump();
}

namespace {

json params_object(const ml::train_params& p) {
    return {{"c", p.c},
            {"lambda", p.lambda},
            {"gamma", p.gamma},
            {"num_trees", p.num_trees},
            {"min_samples_per_leaf", p.min_samples_per_leaf},
            {"feature_subsampling", p.feature_subsampling},
            {"max_kernel_rows", p.max_kernel_rows},
            {"max_iterations", p.max_iterations}};
}

}  // namespace

bool trains_alike(const std::string& before, const std::string& after) {
    json a = json::parse(before, nullptr, false);
    json b = json::parse(after, nullptr, false);
    if (!a.is_object() || !b.is_object()) return false;
    for (const char* k : operational_sections) {
        a.erase(k);
        b.erase(k);
    }
    return a == b;
}

std::string train_params_json(const ml::train_params& p) {
    return params_object(p).dump();
}

std::string canonical_definition_json(const ml::model_definition& d) {
    json features = json::array();
    for (const auto& f : d.features)
        features.push_back(feature_json(f, ml::aggregate_of(d, f.field)));
    json retrain = json::object();
    if (d.retrain.every_new_labels) retrain["every_new_labels"] = *d.retrain.every_new_labels;
    if (d.retrain.every_seconds) retrain["every_seconds"] = *d.retrain.every_seconds;
    if (d.retrain.on_drift) retrain["on_drift"] = true;
    json serving = {{"deadline_ms", d.deadline_ms}};
    if (d.fallback_value) serving["fallback"] = *d.fallback_value;
    if (d.fallback_label) serving["fallback"] = *d.fallback_label;
    json promotion = {{"mode", ml::promotion_mode_name(d.promotion.mode)},
                      {"min_improvement", d.promotion.min_improvement},
                      {"thresholds", d.promotion.thresholds}};
    if (d.promotion.mode == ml::promotion_mode::canary) {
        const ml::canary_policy& cp = d.promotion.canary;
        promotion["canary"] = {{"share", cp.share},
                               {"entities", cp.entities},
                               {"max_loss", cp.max_loss},
                               {"max_seconds", cp.max_seconds}};
    }
    json j = {
        {"task", ml::task_kind_name(d.task)},
        {"features_from", d.features_from},
        {"label", d.label.positive ? json{{"stream", d.label.stream},
                                          {"field", d.label.field},
                                          {"positive", *d.label.positive}}
                                   : json{{"stream", d.label.stream}, {"field", d.label.field}}},
        {"features", features},
        {"algorithm", d.algorithm},
        {"params", params_object(d.params)},
        {"search", {{"budget_seconds", d.search_budget_seconds}}},
        // A split by entity keeps its plain share: definitions written before
        // time splits read back as they were.
        {"holdout", d.holdout_by == ml::split_by::time ? json{{"share", d.holdout}, {"by", "time"}}
                                                       : json(d.holdout)},
        {"max_classes", d.max_classes},
        {"retrain", retrain.empty() ? json("manual") : retrain},
        {"promotion", promotion},
        {"training",
         {{"deadline_seconds", d.training_deadline_seconds}, {"memory_mb", d.training_memory_mb}}},
        {"serving", serving},
        {"supervision",
         {{"enabled", d.supervision.enabled},
          {"max_error_rate", d.supervision.max_error_rate},
          {"max_deadline_miss_rate", d.supervision.max_deadline_miss_rate},
          {"max_fallback_share", d.supervision.max_fallback_share},
          {"min_requests", d.supervision.min_requests},
          {"window_seconds", d.supervision.window_seconds},
          {"live_thresholds", d.supervision.live_thresholds},
          {"min_outcomes", d.supervision.min_outcomes},
          {"live_window_seconds", d.supervision.live_window_seconds},
          {"outcome_delay_seconds", d.supervision.outcome_delay_seconds},
          {"max_feature_drift", d.supervision.max_feature_drift},
          {"drift_window_seconds", d.supervision.drift_window_seconds},
          {"min_drift_samples", d.supervision.min_drift_samples}}},
    };
    // The default rule is left out: definitions written before rules read
    // back as they were.
    if (d.decision.rule != ml::decision_rule::f1) j["decision"] = decision_json(d.decision);
    if (d.calibration != ml::calibration_method::none)
        j["calibration"] = ml::calibration_method_name(d.calibration);
    if (!d.test_fault.empty()) j["test_fault"] = d.test_fault;
    return j.dump();
}

namespace {

// The classes of a binary label stream's newest standing facts (a corrected
// fact gives way to its correction), named as training names them
// (ml/dataset.cpp; a {"value": …} object is its value).
struct label_sample {
    std::set<std::string> classes;
    bool booleans = false, numbers = false, strings = false;
    std::optional<double> not_binary;  // a number neither 0 nor 1, if any
};

label_sample sample_labels(connection& c, const ml::model_definition& d) {
    statement st(c, "SELECT DISTINCT " + ml::label_type_sql("f.data", "?2") + ", " +
                        ml::label_value_sql("f.data", "?2") +
                        " FROM (SELECT g.data FROM facts g WHERE g.stream = ?1 AND " +
                        standing_fact_sql("g") +
                        " ORDER BY g.event_time DESC, g.id DESC LIMIT 5000) f");
    st.bind(1, d.label.stream).bind(2, "$.\"" + d.label.field + "\"");
    label_sample out;
    while (st.step()) {
        const std::string type = st.is_null(0) ? "" : st.column_text(0);
        if (type == "true" || type == "false") {
            out.booleans = true;
            out.classes.insert(type);
        } else if (type == "integer" || type == "real") {
            out.numbers = true;
            const double v = st.column_double(1);
            if (v != 0 && v != 1 && !out.not_binary) out.not_binary = v;
            if (ml::class_number(v)) out.classes.insert(std::to_string(static_cast<long long>(v)));
        } else if (type == "text") {
            out.strings = true;
            out.classes.insert(st.column_text(1));
        }
    }
    return out;
}

// Labels a binary model could never train on: numbers other than 0 and 1
// (accepted, such a definition only failed its first job), or more than two
// strings. Then the positive class against the classes: a name the labels'
// kind cannot give ("1" beside true and false) is a mistake however many
// classes there are; another name is one only beside two or more classes
// without it (misspelt): beside one, the positive class may be the rare one.
void check_binary_label(connection& c, const ml::model_definition& d,
                        std::vector<field_error>& errors) {
    const label_sample sample = sample_labels(c, d);
    const std::string where =
        "the labels of the newest 5,000 facts of stream \"" + d.label.stream + "\"";
    if (sample.not_binary) {
        errors.push_back({"label.field", where + " hold the number " +
                                             ml::format_number(*sample.not_binary) +
                                             "; a binary label's numbers are 0 or 1 (a "
                                             "regression task reads any number)"});
        return;
    }
    if (sample.strings && !sample.booleans && !sample.numbers && sample.classes.size() > 2) {
        errors.push_back({"label.field",
                          where + " hold " + std::to_string(sample.classes.size()) + " classes (" +
                              ml::quoted_classes({sample.classes.begin(), sample.classes.end()}) +
                              "); a binary label has two (a multiclass task reads more)"});
        return;
    }
    if (!d.label.positive) return;
    const std::string& positive = *d.label.positive;
    // Labels of one kind that fixes the two classes training names.
    const bool fixed = sample.booleans != sample.numbers && !sample.strings;
    const std::string one = sample.booleans ? "true" : "0", other = sample.booleans ? "false" : "1";
    if (fixed && positive != one && positive != other) {
        errors.push_back({"label.positive",
                          "the positive class \"" + positive + "\" cannot be a class of " + where +
                              (sample.booleans ? ": they are true or false"
                                               : ": they are numbers, and a binary label's "
                                                 "numbers are 0 or 1") +
                              ", the classes \"" + one + "\" and \"" + other + "\""});
        return;
    }
    if (sample.classes.size() < 2 || sample.classes.count(positive)) return;
    errors.push_back(
        {"label.positive", "the positive class \"" + positive + "\" is not among " + where + " (" +
                               ml::quoted_classes({sample.classes.begin(), sample.classes.end()}) +
                               ")"});
}

}  // namespace

void check_definition_against_data(connection& c, const ml::model_definition& d,
                                   std::vector<field_error>& errors) {
    auto stream_exists = [&c](const std::string& s) {
        statement st(c, "SELECT fact_count FROM stream_stats WHERE stream = ?");
        st.bind(1, s);
        return st.step() && st.column_int(0) > 0;
    };
    // Field presence and type over the stream's newest facts: bounded work
    // however long the log is. Newest by event time, in the stream's time
    // index's order: by id, SQLite read and sorted the whole stream (99 ms
    // a PUT at 100,000 facts, against 3).
    auto field_types = [&c](const std::string& stream, const std::string& field) {
        statement st(c,
                     "SELECT json_type(data, ?2), count(*) FROM (SELECT data FROM facts"
                     " WHERE stream = ?1 ORDER BY event_time DESC, id DESC LIMIT 5000) GROUP BY 1");
        st.bind(1, stream).bind(2, "$.\"" + field + "\"");
        std::map<std::string, std::int64_t> types;
        while (st.step()) {
            if (!st.is_null(0)) types[st.column_text(0)] = st.column_int(1);
        }
        return types;
    };
    // Each aggregate's stream has facts, and its "of" field numbers in them.
    for (const auto& a : d.aggregates) {
        if (a.stream.empty()) continue;  // refused as written
        std::size_t i = 0;
        while (i < d.features.size() && d.features[i].field != a.field) ++i;
        const std::string path = "features[" + std::to_string(i) + "].aggregate";
        if (!stream_exists(a.stream)) {
            errors.push_back({path + ".stream", "no facts in stream \"" + a.stream + "\""});
            continue;
        }
        if (a.of.empty()) continue;
        auto types = field_types(a.stream, a.of);
        if (types.empty()) {
            errors.push_back({path + ".of", "no fact in stream \"" + a.stream +
                                                "\" has a field \"" + a.of + "\""});
        } else if (!types.count("integer") && !types.count("real") && !types.count("object")) {
            errors.push_back({path + ".of", "\"" + a.of + "\" holds " + types.begin()->first +
                                                " values; an aggregate reads numbers"});
        }
    }
    if (d.features_from.empty()) return;  // already reported as missing
    bool features_stream = stream_exists(d.features_from);
    if (!features_stream) {
        errors.push_back({"features_from", "no facts in stream \"" + d.features_from + "\""});
    }
    bool label_stream = d.label.stream == d.features_from || d.label.stream.empty()
                            ? features_stream
                            : stream_exists(d.label.stream);
    if (!label_stream && d.label.stream != d.features_from) {
        errors.push_back({"label.stream", "no facts in stream \"" + d.label.stream + "\""});
    }
    // An unreadable name is reported as such already.
    if (label_stream && !d.label.field.empty() && unreadable_field_name(d.label.field).empty()) {
        auto types = field_types(d.label.stream, d.label.field);
        if (types.empty()) {
            errors.push_back({"label.field", "no fact in stream \"" + d.label.stream +
                                                 "\" has a field \"" + d.label.field + "\""});
        } else if (d.task == ml::task_kind::regression && !types.count("integer") &&
                   !types.count("real") && !types.count("object")) {
            errors.push_back({"label.field", "\"" + d.label.field + "\" holds " +
                                                 types.begin()->first +
                                                 " values; a regression label must be a number"});
        } else if (d.task == ml::task_kind::multiclass && !types.count("text") &&
                   !types.count("integer")) {
            // Accepted, it could never train, and its label prior (the
            // fallback of last resort) was gone with it.
            const std::string held =
                types.begin()->first == "true" || types.begin()->first == "false"
                    ? "true/false"
                    : types.begin()->first;
            errors.push_back({"label.field", "\"" + d.label.field + "\" holds " + held +
                                                 " values; a multiclass label must be a string or"
                                                 " an integer (a binary task reads true/false)"});
        } else if (d.task == ml::task_kind::binary) {
            check_binary_label(c, d, errors);
        }
    }
    if (features_stream && !d.features.empty()) {
        // The top-level field names of the same sample, each fact parsed
        // once: a json_type query a feature parsed the sample once per
        // feature (300 features of 5 KB facts: 52 s a PUT; 33,000 features
        // of 418 KB facts held a thread, and a stop, for many minutes).
        std::set<std::string> present;
        statement st(c,
                     "SELECT DISTINCT j.key FROM (SELECT data FROM facts WHERE stream = ?1"
                     " ORDER BY event_time DESC, id DESC LIMIT 5000) f, json_each(f.data) j");
        st.bind(1, d.features_from);
        while (st.step()) present.insert(st.column_text(0));
        for (std::size_t i = 0; i < d.features.size(); ++i) {
            if (d.features[i].field.empty() || !unreadable_field_name(d.features[i].field).empty())
                continue;
            if (ml::aggregate_of(d, d.features[i].field)) {
                // Computed, not read: a fact holding the name would be
                // read by an app sending its facts' fields, and win.
                if (present.count(d.features[i].field)) {
                    errors.push_back({"features[" + std::to_string(i) + "].field",
                                      "facts in stream \"" + d.features_from +
                                          "\" hold a field \"" + d.features[i].field +
                                          "\"; name the aggregate otherwise"});
                }
                continue;
            }
            if (!present.count(d.features[i].field)) {
                errors.push_back({"features[" + std::to_string(i) + "].field",
                                  "no fact in stream \"" + d.features_from + "\" has a field \"" +
                                      d.features[i].field + "\""});
            }
        }
    }
}

std::string field_errors_json(const std::vector<field_error>& errors) {
    json details = json::array();
    // A problem of the whole body (not an object, not JSON) has no field, as
    // in the one error shape, where "field" is there only when known.
    for (const auto& e : errors) {
        json d = {{"message", e.message}};
        if (!e.field.empty()) d["field"] = e.field;
        details.push_back(std::move(d));
    }
    json err = {
        {"code", "invalid_argument"},
        {"message", errors.size() == 1
                        ? (errors[0].field.empty() ? errors[0].message
                                                   : errors[0].field + ": " + errors[0].message)
                        : std::to_string(errors.size()) + " problems in the definition"},
        {"details", details}};
    if (!errors.empty() && !errors[0].field.empty()) err["field"] = errors[0].field;
    return json{{"error", err}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace kennel

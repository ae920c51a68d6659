#include "ml/serving.h"

#include <malloc.h>
#include <algorithm>
#include <cmath>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>
#include <utility>

#include "ml/decision.h"

#include "ml/dataset.h"
#include "ml/definition_json.h"
#include "ml/explain.h"
#include "ml/hash.h"
#include "store/facts.h"
#include "store/log.h"
#include "store/registry.h"

namespace kennel::ml {
namespace {

using json = nlohmann::json;

// Every binary answer with probabilities decides: a model's and its
// baseline's at the version's F1-best threshold, the prior's at 0.5.
std::optional<bool> binary_decision(task_kind task, const std::vector<double>& probabilities,
                                    double threshold) {
    if (task != task_kind::binary || probabilities.size() != 2) return std::nullopt;
    return probabilities[1] >= threshold;
}

answer to_answer(const loaded_version& v, const model_prediction& p) {
    answer a;
    a.value = p.value;
    a.label = p.label;
    a.probabilities = p.probabilities;
    a.classes = &v.artifact->classes;
    a.task = v.artifact->task;
    a.decision = binary_decision(a.task, a.probabilities, v.threshold);
    return a;
}

answer baseline_from_json(const std::string& text) {
    answer a;
    json j = json::parse(text, nullptr, false);
    if (!j.is_object()) return a;
    if (j.contains("value") && j["value"].is_number()) a.value = j["value"].get<double>();
    if (j.contains("label") && j["label"].is_string()) a.label = j["label"].get<std::string>();
    if (j.contains("probabilities") && j["probabilities"].is_array()) {
        for (const auto& p : j["probabilities"]) a.probabilities.push_back(p.is_number() ? p.get<double>() : 0.0);
    }
    // A class baseline has its shares; the caller sets the task exactly when
    // it has the version's artifact.
    if (!a.probabilities.empty())
        a.task = a.probabilities.size() == 2 ? task_kind::binary : task_kind::multiclass;
    return a;
}

// The label's prior from the facts: the mean (regression) or the class
// shares (classification), so an untrained model still answers sensibly.
// Only standing facts count (a corrected one was replaced).
std::optional<answer> label_prior(connection& c, const model_definition& d,
                                  std::vector<std::string>& classes) {
    const std::string standing = " FROM facts f WHERE f.stream = ?1 AND " + standing_fact_sql("f");
    std::string path = "$.\"" + d.label.field + "\"";
    if (d.task == task_kind::regression) {
        // As training reads a label (ml/raw_json.cpp): a number, an
        // interval's midpoint, or a {"value", "confidence"} object's value.
        // Averaged as shares of the largest magnitude: labels near the
        // largest double summed past it, and their finite mean read as
        // infinite (a null prediction claimed by the prior).
        statement st(
            c,
            std::string("WITH v(x) AS (SELECT CASE WHEN json_type(f.data, ?2) IN ('integer','real')"
                        " THEN json_extract(f.data, ?2) WHEN json_type(f.data, ?2) = 'object'"
                        " THEN coalesce(json_extract(f.data, ?2 || '.lower') / 2.0 +"
                        " json_extract(f.data, ?2 || '.upper') / 2.0,"
                        " CASE WHEN json_type(f.data, ?2 || '.value') IN ('integer','real')"
                        " THEN json_extract(f.data, ?2 || '.value') END)"
                        " END") +
                standing +
                "), m(s) AS (SELECT max(abs(x)) FROM v)"
                " SELECT CASE WHEN s = 0 THEN 0.0 ELSE (SELECT avg(CAST(x AS REAL) / s) FROM v) * "
                "s END"
                " FROM m");
        st.bind(1, d.label.stream).bind(2, path);
        if (!st.step() || st.is_null(0)) return std::nullopt;
        if (!std::isfinite(st.column_double(0))) return std::nullopt;
        answer a;
        a.value = st.column_double(0);
        a.task = d.task;
        return a;
    }
    // A {"value", "confidence"} object is its value, as training reads it.
    statement st(c, "SELECT t, v, count(*) FROM (SELECT " + label_type_sql("f.data", "?2") +
                        " AS t, " + label_value_sql("f.data", "?2") + " AS v" + standing +
                        ") WHERE t IN ('true','false','integer','real','text')"
                        " GROUP BY t, v LIMIT 100000");
    st.bind(1, d.label.stream).bind(2, path);
    // One label per distinct value, read as training reads it, and its count.
    std::vector<raw_value> labels;
    std::vector<double> label_counts;
    while (st.step()) {
        const std::string type = st.column_text(0);
        if (type == "text") {
            labels.emplace_back(st.column_text(1));
        } else if (type == "true" || type == "false") {
            labels.emplace_back(type == "true");
        } else {
            labels.emplace_back(st.column_double(1));
        }
        label_counts.push_back(static_cast<double>(st.column_int(2)));
    }
    // A label no class of the task can be (a binary model's 2, a multiclass
    // model's 2.5 or true), and one of another kind than most (a 1 among
    // true and false), is left out: one stray fact took the prior, the
    // fallback of last resort, from every answer. Of the rest, training's
    // rules name the classes, and what they refuse (a binary model's third
    // class, too many classes) gives no prior.
    const auto kind_of = [](const raw_value& v) { return v.index(); };
    const auto usable = [&](const raw_value& v) {
        const double* x = std::get_if<double>(&v);
        if (d.task == task_kind::binary) return !x || *x == 0 || *x == 1;
        if (std::holds_alternative<bool>(v)) return false;
        return !x || class_number(*x);
    };
    std::map<std::size_t, double> by_kind;
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (usable(labels[i])) by_kind[kind_of(labels[i])] += label_counts[i];
    }
    // The kind most labels have; none when two kinds tie ("1" and 1).
    std::optional<std::size_t> kind;
    double most = 0, runner_up = 0;
    for (const auto& [k, count] : by_kind) {
        if (count > most) {
            runner_up = most;
            most = count;
            kind = k;
        } else {
            runner_up = std::max(runner_up, count);
        }
    }
    if (!kind || runner_up == most) return std::nullopt;
    std::size_t kept = 0;
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (!usable(labels[i]) || kind_of(labels[i]) != *kind) continue;
        if (kept != i) labels[kept] = std::move(labels[i]);  // not onto itself
        label_counts[kept++] = label_counts[i];
    }
    labels.resize(kept);
    label_counts.resize(kept);
    auto encoded = encode_labels(d.task, labels, d.max_classes, {}, true, d.label.positive);
    if (!encoded) return std::nullopt;
    std::vector<double> counts(encoded->classes.size(), 0.0);
    double total = 0;
    for (std::size_t i = 0; i < labels.size(); ++i) {
        counts[static_cast<std::size_t>(encoded->y[i])] += label_counts[i];
        total += label_counts[i];
    }
    classes = std::move(encoded->classes);
    answer a;
    a.task = d.task;
    std::size_t best = 0;
    for (std::size_t i = 0; i < counts.size(); ++i) {
        a.probabilities.push_back(counts[i] / total);
        if (counts[i] > counts[best]) best = i;
    }
    // Binary: the positive class at an even split, as the answer's decision
    // (its share >= 0.5) says; the first class won the tie, and the answer
    // contradicted itself.
    if (d.task == task_kind::binary && counts.size() == 2) best = counts[1] >= counts[0] ? 1 : 0;
    a.value = static_cast<double>(best);
    a.label = classes[best];
    a.decision = binary_decision(a.task, a.probabilities, 0.5);  // no holdout found a threshold
    if (d.task == task_kind::binary && classes.size() == 1) {
        // One class so far, all of the share: the decision is whether it is
        // the positive one, when that is known without the other class (of
        // two strings, the later is positive unless one is named).
        if (d.label.positive) {
            a.decision = classes[0] == *d.label.positive;
        } else if (!std::holds_alternative<std::string>(labels[0])) {
            a.decision = classes[0] == "true" || classes[0] == "1";
        }
    }
    return a;
}

}  // namespace

std::optional<task_kind> version_task(connection& c, const std::string& model,
                                      std::int64_t version) {
    auto row = get_version(c, model, version, false);
    if (!row) return std::nullopt;
    auto rev = get_revision(c, model, row->revision);
    if (!rev) return std::nullopt;
    parsed_definition p = parse_definition(rev->definition);
    if (!p.errors.empty()) return std::nullopt;
    return p.definition.task;
}

earlier_live earlier_live_version(connection& c, const std::string& model, std::int64_t from) {
    earlier_live out;
    const auto disabled = disabled_versions(c, model);
    const auto removed = removed_artifact_versions(c, model);
    const auto from_task = version_task(c, model, from);
    for (std::int64_t v : live_history(c, model)) {
        if (v == from || disabled.count(v)) continue;
        if (removed.count(v)) {
            out.passed_over_removed = true;
            continue;
        }
        const auto task = version_task(c, model, v);
        if (from_task && task && *task != *from_task) {
            out.passed_over_task = true;
            continue;
        }
        out.version = v;
        return out;
    }
    return out;
}

// Requests are read by the feature specs of the versions that answer them,
// not by the current definition: a definition edited after training (a
// field dropped, a transform or the task changed) must not change what a
// trained version is given or how its answer reads. The version answering
// (live, else the first of the chain) gives the task and its specs; each
// experiment arm adds the specs it reads. An untrained model keeps the
// definition's.
void use_served_specs(model_serving& s) {
    const loaded_version* first = s.answering();
    if (!first) {
        s.fields = index_fields(s.definition.features);
        return;
    }
    s.definition.task = first->artifact->task;
    // Fields whose columns training dropped (always missing, constant) are
    // read by no version: ignored and listed as such, not "imputed".
    std::vector<feature_spec> specs = first->artifact->pipeline.used_specs();
    // A shadow arm's fields are as the chain's below: passed to it when they
    // fit, never refused (it answers no one).
    for (const auto& arm : s.arms) {
        if (!arm.version || arm.shadow) continue;
        for (const auto& spec : arm.version->artifact->pipeline.used_specs()) {
            bool have = false;
            for (const auto& h : specs)
                have = have || (h.field == spec.field && h.transform == spec.transform);
            if (!have) specs.push_back(spec);
        }
    }
    // The chain's earlier versions: their own fields reach them too (else
    // a fallback to a version trained on a field live dropped imputed it).
    std::vector<feature_spec> extra;
    std::vector<const loaded_version*> others;
    for (const auto& prev : s.previous) others.push_back(prev.get());
    for (const auto& arm : s.arms) {
        if (arm.version && arm.shadow) others.push_back(arm.version.get());
    }
    for (const loaded_version* prev : others) {
        for (const auto& spec : prev->artifact->pipeline.used_specs()) {
            bool read_by_served = false;
            for (const auto& h : specs) read_by_served = read_by_served || h.field == spec.field;
            bool have = false;
            for (const auto& h : extra)
                have = have || (h.field == spec.field && h.transform == spec.transform);
            if (!read_by_served && !have) extra.push_back(spec);
        }
    }
    s.definition.features = std::move(specs);
    // The aggregates computed with each request: live's (or, without it,
    // the chain's first's). Every other version that computes one
    // otherwise, or one live does not, is in own_aggregates: an experiment
    // arm's are read for the entities routed to it, a shadow's after the
    // answer, and a chain version needing them is passed over (its history
    // read on every request for a rare answer).
    s.definition.aggregates = first->aggregates;
    std::vector<const loaded_version*> by_rank{first};
    for (const auto& arm : s.arms) {
        if (!arm.shadow) by_rank.push_back(arm.version.get());
    }
    by_rank.insert(by_rank.end(), others.begin(), others.end());
    for (const loaded_version* v : by_rank) {
        if (!v || s.computes_own_aggregates(v->version)) continue;
        for (const auto& a : v->aggregates) {
            const aggregate_spec* served = aggregate_of(s.definition.aggregates, a.field);
            if (served && *served == a) continue;
            s.own_aggregates.push_back(v->version);
            break;
        }
    }
    s.fields = index_fields(s.definition.features);
    std::vector<std::string> served;
    for (const auto& f : s.fields) served.push_back(f.name);
    std::vector<const loaded_version*> all{s.live.get()};
    for (const auto& arm : s.arms) all.push_back(arm.version.get());
    for (const auto& prev : s.previous) all.push_back(prev.get());
    for (const loaded_version* v : all) {
        if (v && v->reads == served && !s.reads_served_fields(v->version))
            s.read_served_fields.push_back(v->version);
    }
    if (extra.empty()) return;
    for (auto f : index_fields(extra)) {
        f.fallback_only = true;
        s.fields.push_back(std::move(f));
    }
    std::sort(s.fields.begin(), s.fields.end(),
              [](const served_field& a, const served_field& b) { return a.name < b.name; });
    s.fallback_features = std::move(extra);
}

std::vector<served_field> index_fields(const std::vector<feature_spec>& specs) {
    std::map<std::string, std::uint32_t> by_name;
    for (const auto& spec : specs) by_name[spec.field] |= 1u << static_cast<unsigned>(spec.transform);
    std::vector<served_field> out;
    for (auto& [name, transforms] : by_name) out.push_back({name, transforms});
    return out;
}

void loaded_version::record_duration(double ns) const {
    // Racing updates may lose one another's step; it is an estimate.
    const double old = typical_ns.load(std::memory_order_relaxed);
    const double step = old == 0 ? ns : (std::min(ns, 2 * old) - old) / 32;
    typical_ns.store(old + step, std::memory_order_relaxed);
    timed.fetch_add(1, std::memory_order_relaxed);
}

answer predict_with(const loaded_version& v, const raw_record& record) {
    const auto t0 = std::chrono::steady_clock::now();
    struct timer {
        const loaded_version& v;
        std::chrono::steady_clock::time_point t0;
        ~timer() {
            // Recorded even when the model throws or sleeps: slowness counts.
            const double d =
                std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0)
                    .count();
            v.record_duration(d);
        }
    } record_time{v, t0};
    if (!v.fault.empty()) {
        // Test-only faults (the server must run with --test-faults).
        if (v.fault == "serve_throw") throw std::runtime_error("injected fault: the model threw");
        if (v.fault == "serve_sleep") std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    auto p = predict_raw(*v.artifact, record);
    if (!p) {
        if (p.error().kind() == error_kind::invalid_argument)
            throw input_out_of_range(p.error().message());
        throw std::runtime_error(p.error().message());
    }
    return to_answer(v, *p);
}

std::vector<std::string> classes_in_features(const std::string& features_json) {
    std::vector<std::string> names;
    json f = json::parse(features_json, nullptr, false);
    if (f.is_object() && f.contains("classes") && f["classes"].is_array()) {
        for (const auto& n : f["classes"]) {
            if (n.is_string()) names.push_back(n.get<std::string>());
        }
    }
    return names;
}

namespace {

// Each loaded version with its roles, in the order above.
std::vector<std::pair<const loaded_version*, std::vector<std::string>>> served_with_roles(
    const model_serving& m) {
    std::vector<std::pair<const loaded_version*, std::vector<std::string>>> out;
    const auto add = [&](const loaded_version& v, std::string role) {
        for (auto& [seen, roles] : out) {
            if (seen == &v) {
                roles.push_back(std::move(role));
                return;
            }
        }
        out.push_back({&v, {std::move(role)}});
    };
    // Arms before the chain: a version that answers an arm's share is watched
    // as one (drift, the supervisor), not passed over as a mere fallback.
    if (m.live) add(*m.live, "live");
    for (const auto& arm : m.arms) {
        if (arm.version) add(*arm.version, (arm.shadow ? "shadow:" : "arm:") + arm.name);
    }
    for (const auto& p : m.previous) add(*p, "previous");
    return out;
}

}  // namespace

void for_each_served_version(
    const model_serving& m,
    const std::function<void(const loaded_version& v, const std::string& role)>& visit) {
    for (const auto& [v, roles] : served_with_roles(m)) visit(*v, roles.front());
}

std::vector<std::string> served_roles(const model_serving& m, std::int64_t version) {
    for (auto& [v, roles] : served_with_roles(m)) {
        if (v->version == version) return std::move(roles);
    }
    return {};
}

const serving_arm* choose_arm(const model_serving& m, std::string_view entity) {
    // Salted so arm membership is independent of the holdout split, which
    // hashes the bare entity.
    std::string salted = "experiment-arm:";
    salted += m.arm_salt;
    salted += entity;
    double u = unit_hash(salted);
    double acc = 0;
    const serving_arm* last = nullptr;
    for (const serving_arm& a : m.arms) {
        if (a.shadow) continue;
        acc += a.weight;
        last = &a;
        if (u < acc) return &a;
    }
    return last;  // rounding: the top of [0,1) lands in the last arm
}

std::shared_ptr<const model_serving> serving_registry::get(std::string_view model) const {
    std::shared_lock lock(mu_);
    auto it = models_.find(model);
    return it == models_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const model_serving>> serving_registry::all() const {
    std::shared_lock lock(mu_);
    std::vector<std::shared_ptr<const model_serving>> out;
    for (const auto& [k, v] : models_) out.push_back(v);
    return out;
}

std::vector<std::shared_ptr<const loaded_version>> serving_registry::loaded() const {
    std::shared_lock lock(mu_);
    std::vector<std::shared_ptr<const loaded_version>> out;
    for (const auto& [k, v] : cache_) out.push_back(v);
    return out;
}

std::string serving_registry::fault_of(connection& c, const std::string& model,
                                       std::int64_t version) const {
    if (!options_.test_faults) return {};
    auto row = get_version(c, model, version, false);
    if (!row) return {};
    auto rev = get_revision(c, model, row->revision);
    if (!rev) return {};
    parsed_definition rp = parse_definition(rev->definition);
    return rp.definition.test_fault;
}

status serving_registry::preload(connection& c, const std::string& model, std::int64_t version) {
    const auto row = get_version(c, model, version, false);
    if (!row || row->artifact_removed_at) return status::ok();
    auto lv = load(c, model, version, fault_of(c, model, version));
    return lv ? status::ok() : lv.error();
}

result<std::shared_ptr<const loaded_version>> serving_registry::load(connection& c,
                                                                     const std::string& model,
                                                                     std::int64_t version,
                                                                     const std::string& fault) {
    {
        std::shared_lock lock(mu_);
        auto it = cache_.find({model, version});
        if (it != cache_.end()) return it->second;
    }
    auto row = get_version(c, model, version, true);
    if (!row) return status(error_kind::not_found, "version " + std::to_string(version) + " is missing");
    // Said as the API says it (read as an artifact, the empty bytes were
    // "not a Kennel model").
    if (row->artifact_removed_at) return check_servable(c, model, version);
    std::string& bytes = row->artifact;  // not copied: it can be 100 MB
    if (fault == "corrupt_artifact" && bytes.size() > 40) bytes[bytes.size() / 2] ^= 0x5a;
    auto art = load_artifact(bytes, load_use::predict);  // serving never writes it again
    std::string().swap(bytes);                           // returned before the rest is built
    if (!art) return art.error();
    auto v = std::make_shared<loaded_version>();
    v->model = model;
    v->version = version;
    v->sha256 = row->artifact_sha256;
    v->artifact = std::make_shared<const model_artifact>(std::move(*art));
    for (const auto& spec : v->artifact->pipeline.used_specs()) v->reads.push_back(spec.field);
    std::sort(v->reads.begin(), v->reads.end());
    v->reads.erase(std::unique(v->reads.begin(), v->reads.end()), v->reads.end());
    v->baseline = baseline_from_json(row->baseline);
    v->baseline.classes = &v->artifact->classes;
    v->baseline.task = v->artifact->task;
    v->threshold = decision_threshold_in_metrics(row->metrics);
    v->baseline.decision =
        binary_decision(v->baseline.task, v->baseline.probabilities, v->threshold);
    if (auto profile = profile_in_features(row->features)) {
        v->drift = std::make_unique<const drift_monitor>(std::move(*profile));
    }
    if (auto rows = background_in_features(row->features)) v->background = std::move(*rows);
    v->aggregates = aggregates_in_features(row->features);
    if (fault == "serve_throw" || fault == "serve_sleep") v->fault = fault;
    // Warm up: the first prediction touches every page of the function.
    try {
        if (v->fault.empty()) (void)predict_with(*v, raw_record{});
    } catch (const std::exception& e) {
        return status(error_kind::internal, std::string("warm-up prediction failed: ") + e.what());
    }
    std::shared_ptr<const loaded_version> out = v;
    std::lock_guard lock(mu_);
    cache_[{model, version}] = out;
    return out;
}

result<std::shared_ptr<const explainer>> loaded_version::explainer_for() const {
    std::call_once(explainer_once_, [&] {
        if (background.empty()) {
            explainer_problem_ =
                status(error_kind::failed_precondition,
                       "version " + std::to_string(version) +
                           " was trained before versions kept training rows to explain "
                           "answers against: train the model again to explain its answers");
            return;
        }
        try {
            auto built = explainer::build(artifact, background);
            if (built) {
                explainer_ = std::move(*built);
            } else {
                explainer_problem_ = built.error();
            }
        } catch (const std::exception& e) {
            explainer_problem_ =
                status(error_kind::internal, std::string("explainer failed: ") + e.what());
        }
    });
    if (explainer_) return explainer_;
    return explainer_problem_;
}

bool loaded_version::reads_field(std::string_view name) const {
    return std::binary_search(reads.begin(), reads.end(), name, std::less<>());
}

std::vector<std::shared_ptr<const loaded_version>> serving_registry::drop_unserved(
    const std::string& model, const model_serving* served) {
    // Every version a model ever served was kept loaded (artifact, drift
    // counters) for the life of the process: months of retraining grew the
    // heap by a model per version. Requests still holding an older snapshot
    // keep its versions alive until they finish.
    std::set<std::int64_t> keep;
    if (served) {
        for_each_served_version(
            *served, [&](const loaded_version& v, const std::string&) { keep.insert(v.version); });
    }
    std::vector<std::shared_ptr<const loaded_version>> dropped;
    for (auto it = cache_.begin(); it != cache_.end();) {
        if (it->first.first == model && !keep.count(it->first.second)) {
            dropped.push_back(std::move(it->second));
            it = cache_.erase(it);
        } else {
            ++it;
        }
    }
    return dropped;
}

std::optional<answer> serving_registry::cached_label_prior(connection& c, const model_definition& d,
                                                           std::vector<std::string>& classes,
                                                           std::int64_t& counted_at) {
    // The stream's newest fact id says whether it changed since (stream_stats:
    // one row). Each refresh of a model without a live version read the whole
    // label stream: with 190 such models on one stream of 100,000 labels,
    // start-up took 15 s.
    statement newest(c, "SELECT max_fact_id FROM stream_stats WHERE stream = ?");
    newest.bind(1, d.label.stream);
    const std::int64_t at = newest.step() ? newest.column_int(0) : 0;
    // The positive class too: it orders a binary prior's classes, and one
    // that is not a label gives no prior (two models on one label field
    // shared whichever prior was counted first).
    const prior_key key{d.label.stream, d.label.field, static_cast<int>(d.task), d.max_classes,
                        d.label.positive.value_or(std::string("\x1f"))};
    auto it = priors_.find(key);
    if (it == priors_.end() || it->second.at != at) {
        cached_prior fresh;
        fresh.at = at;
        fresh.prior = label_prior(c, d, fresh.classes);
        it = priors_.insert_or_assign(key, std::move(fresh)).first;
    }
    classes = it->second.classes;
    counted_at = it->second.at;
    return it->second.prior;
}

std::vector<std::string> serving_registry::stale_priors(connection& c) const {
    std::vector<std::pair<std::string, std::pair<std::string, std::int64_t>>> watched;
    {
        std::shared_lock lock(mu_);
        for (const auto& [name, m] : models_) {
            if (m && m->prior_at >= 0)
                watched.push_back({name, {m->definition.label.stream, m->prior_at}});
        }
    }
    std::vector<std::string> stale;
    statement newest(c, "SELECT max_fact_id FROM stream_stats WHERE stream = ?");
    for (const auto& [name, seen] : watched) {
        newest.reset();
        newest.bind(1, seen.first);
        const std::int64_t at = newest.step() ? newest.column_int(0) : 0;
        if (at != seen.second) stale.push_back(name);
    }
    return stale;
}

status serving_registry::refresh(connection& c, const std::string& model) {
    std::lock_guard refresh_lock(refresh_mu_);
    try {
        auto m = get_model(c, model);
        // An archived model is out of service: unloaded, as if it did not exist.
        if (!m || m->archived_at) {
            std::lock_guard lock(mu_);
            models_.erase(model);
            drop_unserved(model, nullptr);
            refresh_failed_.erase(model);
            return status::ok();
        }
        parsed_definition p = parse_definition(m->definition);
        if (!p.errors.empty()) {
            return status(error_kind::internal, "stored definition of " + model + " does not parse");
        }
        auto s = std::make_shared<model_serving>();
        s->name = model;
        s->definition = p.definition;
        s->revision = m->current_revision;
        s->disabled = disabled_versions(c, model);
        const auto removed = removed_artifact_versions(c, model);
        s->built_at = std::chrono::steady_clock::now();

        auto usable = [&](std::int64_t version, std::string& problem)
            -> std::shared_ptr<const loaded_version> {
            if (s->disabled.count(version)) {
                problem = "version_disabled";
                return nullptr;
            }
            // Retention took its bytes: expected, so nothing to warn of.
            if (removed.count(version)) {
                problem = "artifact_removed";
                return nullptr;
            }
            auto lv = load(c, model, version, fault_of(c, model, version));
            if (!lv) {
                problem = "artifact_load_failed";
                log_warn("serving", model + " version " + std::to_string(version) +
                                        " cannot be served: " + lv.error().message());
                return nullptr;
            }
            return *lv;
        };

        s->live_alias_version = alias_version(c, model, "live");
        if (s->live_alias_version) {
            if (auto row = get_version(c, model, *s->live_alias_version, false)) {
                s->baseline = baseline_from_json(row->baseline);
                s->baseline_classes = classes_in_features(row->features);
                s->baseline->classes = &s->baseline_classes;
                // Its version not loaded (that is why it answers): the
                // threshold its metrics record, as when it is loaded.
                s->baseline->decision =
                    binary_decision(s->baseline->task, s->baseline->probabilities,
                                    decision_threshold_in_metrics(row->metrics));
            }
            s->live = usable(*s->live_alias_version, s->live_problem);
        } else {
            // Versions are numbered from 1: a first one means the model was
            // trained, and only the alias is missing (never set, or removed).
            s->live_problem = get_version(c, model, 1, false) ? "no_live_version" : "not_trained";
        }
        // The chain answers as live would: a version of another task (the
        // definition changed from regression to multiclass, say) is no
        // stand-in, or a number would answer for a class.
        const task_kind serving_task = s->live ? s->live->artifact->task : s->definition.task;
        for (std::int64_t v : live_history(c, model)) {
            if (s->live_alias_version && v == *s->live_alias_version) continue;
            std::string ignored;
            auto lv = usable(v, ignored);
            if (lv && lv->artifact->task == serving_task) s->previous.push_back(lv);
            if (s->previous.size() >= 3) break;
        }
        if (auto e = active_experiment(c, model)) {
            json arms = json::parse(e->arms, nullptr, false);
            double total = 0;
            std::vector<serving_arm> list;
            for (const auto& a : arms) {
                serving_arm arm;
                arm.name = a.value("name", "");
                arm.weight = a.value("weight", 0.0);
                arm.shadow = a.value("shadow", false);
                arm.version = usable(a.value("version", std::int64_t{0}), arm.problem);
                // An arm of another task than live's (live moved to a version
                // of the definition's new task after the experiment began)
                // would answer in the other shape: live answers its traffic,
                // flagged, as for a disabled arm.
                if (arm.version && s->live &&
                    arm.version->artifact->task != s->live->artifact->task) {
                    arm.version = nullptr;
                    arm.problem = "version_of_another_task";
                }
                if (!arm.shadow) total += arm.weight;
                list.push_back(std::move(arm));
            }
            if (total > 0) {
                for (auto& a : list) {
                    if (!a.shadow) a.weight /= total;
                }
                s->arms = std::move(list);
                s->experiment = e->id;
                if (e->canary) s->arm_salt = "canary-" + std::to_string(e->id) + ":";
            }
        }
        for (const auto& spec : s->definition.features) {
            // An aggregate is computed, not held by the entity's facts.
            if (!aggregate_of(s->definition, spec.field)) s->declared_fields.push_back(spec.field);
        }
        use_served_specs(*s);  // also indexes the fields requests are read by
        if (!s->live) {
            s->prior = cached_label_prior(c, p.definition, s->prior_classes, s->prior_at);
            if (s->prior) s->prior->classes = &s->prior_classes;
        }
        std::shared_ptr<const model_serving> published = s;
        std::shared_ptr<const model_serving> replaced;
        std::vector<std::shared_ptr<const loaded_version>> unloaded;
        {
            std::lock_guard lock(mu_);
            if (auto old = models_.find(model); old != models_.end()) {
                s->traffic = old->second->traffic;
            }
            // The swap: readers holding the old snapshot finish with it.
            replaced = std::exchange(models_[model], published);
            unloaded = drop_unserved(model, published.get());
        }
        // The moment live traffic moves, which is later than the alias's
        // move by the version's load (seconds for a large forest). Not at
        // start, where every model is loaded for the first time.
        const auto live_of = [](const model_serving* snapshot) -> std::int64_t {
            return snapshot && snapshot->live ? snapshot->live->version : 0;
        };
        if (replaced && live_of(replaced.get()) != live_of(published.get()) && published->live) {
            const double took =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - s->built_at)
                    .count();
            char seconds[32];
            std::snprintf(seconds, sizeof seconds, "%.3f", took);
            const std::int64_t was = live_of(replaced.get());
            log_info("serving", model + ": version " + std::to_string(published->live->version) +
                                    " answers live traffic (before: " +
                                    (was ? "version " + std::to_string(was) : "no version") +
                                    "); loaded in " + seconds + " s");
        }
        if (!unloaded.empty()) {
            // Freed outside the lock every prediction takes (a large forest
            // takes a while), then handed back to the system: glibc kept the
            // pages in the arenas of the threads that had loaded the versions,
            // and resident memory still grew with every version trained.
            replaced.reset();
            unloaded.clear();
            ::malloc_trim(0);
        }
        {
            std::lock_guard lock(mu_);
            refresh_failed_.erase(model);
        }
        return status::ok();
    } catch (const db_error& e) {
        // Kept until a refresh succeeds: a damaged page (SQLite's "database
        // disk image is malformed") took the model out of serving with a
        // warning alone, and no problem series said so.
        std::lock_guard lock(mu_);
        refresh_failed_[model] = e.what();
        return status(error_kind::internal, std::string("refreshing ") + model + ": " + e.what());
    }
}

std::map<std::string, std::string> serving_registry::refresh_failures() const {
    std::shared_lock lock(mu_);
    return refresh_failed_;
}

status serving_registry::refresh_all(connection& c) {
    std::vector<std::string> names;
    for (const auto& m : list_models(c)) names.push_back(m.name);
    {
        // Models deleted from the database (not possible today) drop out too.
        std::lock_guard lock(mu_);
        for (auto it = models_.begin(); it != models_.end();) {
            bool keep = false;
            for (const auto& n : names) keep = keep || n == it->first;
            if (keep) {
                ++it;
                continue;
            }
            drop_unserved(it->first, nullptr);
            it = models_.erase(it);
        }
    }
    status first;
    for (const auto& n : names) {
        status s = refresh(c, n);
        if (!s && first.is_ok()) first = s;
    }
    return first;
}

}  // namespace kennel::ml

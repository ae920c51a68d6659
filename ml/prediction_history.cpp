#include "ml/prediction_history.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <tuple>

#include "ml/decision.h"
#include "ml/definition_json.h"
#include "ml/serving.h"
#include "store/facts.h"
#include "store/registry.h"

namespace kennel::ml {

namespace {

using json = nlohmann::json;

// An entry as add_prediction_entries (store/registry.cpp) writes it:
// [id, version, arm, shadow, entity, time, value, label, probabilities,
//  fallback, reason, latency_us, features_hash, decision] (entries written
// before decision rules end at features_hash).
std::optional<logged_prediction> decode(const json& e) {
    if (!e.is_array() || e.size() < 13 || e.size() > 14 || !e[5].is_number_integer())
        return std::nullopt;
    logged_prediction p;
    p.time = e[5].get<micros>();
    if (e[0].is_string()) p.id = e[0].get<std::string>();
    if (e[1].is_number_integer()) p.version = e[1].get<std::int64_t>();
    if (e[2].is_string()) p.arm = e[2].get<std::string>();
    p.shadow = e[3].is_number() && e[3].get<int>() != 0;
    if (e[4].is_string()) p.entity = e[4].get<std::string>();
    if (e[6].is_number()) p.value = e[6].get<double>();
    if (e[7].is_string()) p.label = e[7].get<std::string>();
    if (e[8].is_array()) {
        for (const auto& x : e[8]) p.probabilities.push_back(x.is_number() ? x.get<double>() : 0.0);
    } else if (e[8].is_object()) {
        for (const auto& [name, x] : e[8].items()) {
            p.classes.push_back(name);
            p.probabilities.push_back(x.is_number() ? x.get<double>() : 0.0);
        }
    }
    p.fallback = e[9].is_number() && e[9].get<int>() != 0;
    if (e[10].is_string()) p.reason = e[10].get<std::string>();
    if (e[11].is_number_integer()) p.latency_us = e[11].get<std::int64_t>();
    if (e[12].is_string()) p.features_hash = e[12].get<std::string>();
    if (e.size() > 13 && e[13].is_number()) p.decision = e[13].get<int>() != 0;
    return p;
}

}  // namespace

std::string logged_prediction::prediction_id() const {
    if (!shadow) return id;
    const auto dash = id.find('-');
    return dash == std::string::npos ? id : id.substr(0, dash);
}

void for_each_log_segment(
    connection& c, const std::string& model, micros since, micros until,
    const std::function<bool(micros last_time, std::int64_t bytes)>& more,
    const std::function<void(std::vector<logged_prediction>& entries, micros first_time)>& visit,
    std::string_view must_contain) {
    statement segments(c,
                       "SELECT entries, first_time, last_time, length(entries)"
                       " FROM prediction_segments"
                       " WHERE model = ?1 AND last_time >= ?2 AND first_time <= ?3"
                       " ORDER BY last_time DESC, id DESC");
    segments.bind(1, model).bind(2, since).bind(3, until);
    std::vector<logged_prediction> entries;
    while (segments.step()) {
        if (!more(segments.column_int(2), segments.column_int(3))) return;
        entries.clear();
        const std::string text = segments.column_text(0);
        json parsed;
        if (must_contain.empty() || text.find(must_contain) != std::string::npos)
            parsed = json::parse(text, nullptr, false);
        if (parsed.is_array()) {
            for (const json& e : parsed) {
                auto p = decode(e);
                if (p && p->time >= since && p->time <= until) entries.push_back(std::move(*p));
            }
        }
        visit(entries, segments.column_int(1));
    }
}

namespace {

// Orders the facts of chains newest first, as training orders them: the
// chain's time, then its origin, then the fact's own id.
std::string newest_chain_first(std::string_view alias) {
    return " ORDER BY " + origin_time_sql(alias) + " DESC, " + origin_id_sql(alias) + " DESC, " +
           std::string(alias) + ".id DESC LIMIT 1";
}

}  // namespace

std::string outcome_by_id_sql() {
    // "+f.stream": not the stream's index, which the planner took to save the
    // sort and then read the whole label stream for every prediction (28 ms
    // a lookup at 100,000 labels, against 0.05 on the prediction id's).
    return "SELECT " + origin_id_sql("f") +
           " FROM facts f WHERE json_extract(f.data, '$.prediction_id') = ?1"
           " AND json_type(f.data, '$.prediction_id') = 'text' AND +f.stream = ?2"
           " AND coalesce(json_type(f.data, ?3), 'null') != 'null'" +
           newest_chain_first("f");
}

// The entity's newest outcome is the newer of two lookups, each walking its
// index from the newest end and stopping at the first fact that holds the
// label and stands: the facts that correct nothing, by their own time, and
// the corrections, by their chain's (a correction of a label sent before
// the prediction is no outcome of it, whatever its own time). One query
// over both sorted every label fact of the entity since the prediction: a
// model whose traffic stopped while labels kept coming read more each day
// (2.6 s a call at 600,000 labels for 300 entities).
std::string outcome_by_entity_plain_sql() {
    return "SELECT g.id, g.data, g.event_time, g.id FROM facts g"
           " WHERE g.stream = ?2 AND g.entity = ?1 AND g.event_time >= ?3 AND g.event_time <= ?5"
           " AND NOT EXISTS (SELECT 1 FROM fact_origins x WHERE x.fact = g.id)"
           " AND coalesce(json_type(g.data, ?4), 'null') != 'null'"
           " AND NOT EXISTS (SELECT 1 FROM fact_origins newer WHERE newer.origin = g.id)"
           " ORDER BY g.event_time DESC, g.id DESC LIMIT 1";
}

std::string outcome_by_entity_corrected_sql() {
    return "SELECT h.id, h.data, o.origin_time, o.origin FROM fact_origins o"
           " JOIN facts h ON h.id = o.fact"
           " WHERE o.stream = ?2 AND o.origin_time >= ?3 AND o.origin_time <= ?5 AND h.entity = ?1"
           " AND coalesce(json_type(h.data, ?4), 'null') != 'null'"
           " AND NOT EXISTS (SELECT 1 FROM fact_origins newer WHERE newer.origin = o.origin"
           " AND newer.fact > h.id)"
           " ORDER BY o.origin_time DESC, o.origin DESC, h.id DESC LIMIT 1";
}

outcome_finder::outcome_finder(connection& c, std::string label_stream,
                               const std::string& label_field)
    // Only facts holding the label: a label stream may carry other facts
    // (another model's field, a note), and the newest of those would hide
    // the outcome, as training skips them too.
    : by_id_(c, outcome_by_id_sql()),
      by_entity_plain_(c, outcome_by_entity_plain_sql()),
      by_entity_corrected_(c, outcome_by_entity_corrected_sql()),
      chain_end_(c,
                 "SELECT f.id, f.data, coalesce(json_type(f.data, ?2), 'null') != 'null'"
                 " FROM facts f WHERE f.id = coalesce("
                 "(SELECT max(o.fact) FROM fact_origins o WHERE o.origin = ?1), ?1)"),
      stream_(std::move(label_stream)),
      label_path_("$.\"" + label_field + "\""),
      until_(now_micros()) {}

// The newest fact of the chain that began with `origin` stands for it (a
// correction takes the place of the fact it corrects, even when it does not
// repeat the prediction id); one without the label field withdraws the
// outcome.
std::optional<joined_outcome> outcome_finder::chain_end(std::int64_t origin, bool by_id) {
    chain_end_.reset();
    chain_end_.bind(1, origin).bind(2, label_path_);
    if (!chain_end_.step() || chain_end_.column_int(2) == 0) return std::nullopt;
    return joined_outcome{chain_end_.column_int(0), chain_end_.column_text(1), by_id};
}

std::optional<joined_outcome> outcome_finder::find(const logged_prediction& p,
                                                   std::optional<micros> earliest) {
    by_id_.reset();
    by_id_.bind(1, p.prediction_id()).bind(2, stream_).bind(3, label_path_);
    if (by_id_.step()) return chain_end(by_id_.column_int(0), true);
    if (p.entity.empty()) return std::nullopt;
    auto seen = by_entity_seen_.find(p.entity);
    if (seen == by_entity_seen_.end() || seen->second.asked > p.time) {
        // A lookup from the earliest time asked about covers the later ones.
        entity_outcome found;
        found.asked = std::min(p.time, earliest.value_or(p.time));
        // Newest by chain time, then origin, then the fact's own id, as
        // training orders facts.
        std::optional<std::tuple<micros, std::int64_t, std::int64_t>> best;
        for (statement* st : {&by_entity_plain_, &by_entity_corrected_}) {
            st->reset();
            st->bind(1, p.entity).bind(2, stream_).bind(3, found.asked).bind(4, label_path_);
            st->bind(5, until_);
            if (!st->step()) continue;
            auto key = std::make_tuple(st->column_int(2), st->column_int(3), st->column_int(0));
            if (best && key < *best) continue;
            best = key;
            found.outcome = joined_outcome{st->column_int(0), st->column_text(1), false};
            found.chain_time = st->column_int(2);
        }
        seen = by_entity_seen_.insert_or_assign(p.entity, std::move(found)).first;
    }
    const entity_outcome& e = seen->second;
    if (e.outcome && e.chain_time >= p.time) return e.outcome;
    return std::nullopt;
}

outcome_joiner::outcome_joiner(connection& c, std::string model, const model_definition& current)
    : c_(c), model_(std::move(model)) {
    current_.task = current.task;
    current_.label = current.label;
}

const version_scoring& outcome_joiner::scoring(const logged_prediction& p) {
    if (!p.version) return current_;
    auto it = versions_.find(*p.version);
    if (it != versions_.end()) return it->second;
    version_scoring sc = current_;
    if (auto v = get_version(c_, model_, *p.version, false)) {
        sc.classes = classes_in_features(v->features);
        sc.threshold = decision_threshold_in_metrics(v->metrics);
        if (auto r = get_revision(c_, model_, v->revision)) {
            parsed_definition d = parse_definition(r->definition);
            if (d.errors.empty()) {
                sc.task = d.definition.task;
                sc.label = d.definition.label;
            }
        }
    }
    return versions_.emplace(*p.version, std::move(sc)).first->second;
}

std::optional<joined_outcome> outcome_joiner::find(const logged_prediction& p,
                                                   std::optional<micros> earliest) {
    const label_spec& label = scoring(p).label;
    auto key = std::make_pair(label.stream, label.field);
    auto it = finders_.find(key);
    if (it == finders_.end())
        it = finders_
                 .emplace(key, std::make_unique<outcome_finder>(c_, label.stream, label.field))
                 .first;
    return it->second->find(p, earliest);
}

}  // namespace kennel::ml

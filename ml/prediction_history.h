// Reading the prediction log back: a model's logged predictions, newest
// segment first, and the outcome each one was joined to. Live metrics
// (ml/live_metrics.h) and GET /v1/models/{name}/predictions both read the
// log through here. Reader connection; one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ml/definition.h"
#include "store/db.h"
#include "store/time_util.h"

namespace kennel::ml {

// One entry of the log (migration 0008's columns).
struct logged_prediction {
    micros time = 0;
    std::string id;                       // a shadow arm's entry: "<prediction id>-<arm>"
    std::optional<std::int64_t> version;  // empty: a constant answered
    std::string arm;
    bool shadow = false;
    std::string entity;
    std::optional<double> value;  // regression value, or class index
    std::string label;
    std::vector<double> probabilities;
    // Their classes when the entry names them itself (an answer no version
    // gave); else the answering version's classes, in its order.
    std::vector<std::string> classes;
    bool fallback = false;
    std::string reason;
    std::int64_t latency_us = 0;
    std::string features_hash;
    std::optional<bool> decision;  // binary, as served; empty in entries from before rules

    // The id the answer carried (without a shadow row's "-<arm>").
    std::string prediction_id() const;
};

// Reads the model's log segments that hold entries in [since, until],
// newest segment (by its last entry) first. Before each, `more` is asked with
// the segment's latest time and its size in bytes (false: stop there); then
// `visit` gets its
// entries in [since, until], in logged order, and its earliest time.
// Segments overlap by the few milliseconds between an answer's time and its
// entry being queued: a reader wanting the newest N entries reads on until a
// segment ends before the oldest entry it kept. With `must_contain`, a
// segment whose text lacks it is not decoded (`visit` gets no entries): a
// search for one entity or id skips most segments at the cost of a substring
// search.
void for_each_log_segment(
    connection& c, const std::string& model, micros since, micros until,
    const std::function<bool(micros last_time, std::int64_t bytes)>& more,
    const std::function<void(std::vector<logged_prediction>& entries, micros first_time)>& visit,
    std::string_view must_contain = {});

// How a version's logged answers read and are scored: the task and label of
// the definition revision it was trained from (a later revision may change
// either), and its class names in its probabilities' order (empty for
// regression).
struct version_scoring {
    task_kind task = task_kind::regression;
    label_spec label;
    std::vector<std::string> classes;
    double threshold = 0.5;  // binary: where its answers' decision turns positive
};

// The outcome a prediction is joined to: a fact in the label stream holding
// the label field whose "prediction_id" names it, else the entity's newest
// such fact at or after the prediction; a corrected fact's correction in its
// place and at its time (store/facts.h: the chain's newest fact stands).
struct joined_outcome {
    std::int64_t fact_id = 0;
    std::string data;  // the fact's JSON data
    bool by_prediction_id = false;
};

// The SQL of outcome_finder's lookups (for tests of their query plans). By
// prediction id: binds ?1 prediction id, ?2 label stream, ?3 label path.
std::string outcome_by_id_sql();
// By entity, two lookups (the newer answer is the outcome): facts that
// correct nothing, and corrections; both bind ?1 entity, ?2 label stream,
// ?3 prediction time, ?4 label path, ?5 the latest time an outcome may
// have (now), and give the fact's id, data, chain time and chain origin.
std::string outcome_by_entity_plain_sql();
std::string outcome_by_entity_corrected_sql();

// It keeps what it found for an entity: one finder per read (one snapshot),
// since a fact stored after its first lookup of an entity goes unseen.
class outcome_finder {
public:
    outcome_finder(connection& c, std::string label_stream, const std::string& label_field);
    // `earliest`: the earliest time this caller will ask about for the
    // prediction's entity, when known (live metrics read all first): one
    // lookup then serves every prediction of the entity.
    std::optional<joined_outcome> find(const logged_prediction& p,
                                       std::optional<micros> earliest = std::nullopt);

private:
    // The fact standing for the chain of corrections that began with `origin`.
    std::optional<joined_outcome> chain_end(std::int64_t origin, bool by_id);

    statement by_id_;
    statement by_entity_plain_;
    statement by_entity_corrected_;
    statement chain_end_;
    std::string stream_;
    std::string label_path_;  // SQLite's JSON path to the label field
    // By entity, a label dated after this read has not happened yet: one
    // dated 2030 (a clock's mistake, a placeholder) was the newest, and the
    // outcome of every prediction of its entity until then.
    micros until_;
    // By entity: the newest outcome whose chain time is at or after `asked`,
    // and that time. The newest at or after any later time is the same fact
    // when its time is at or after that one, else there is none: a lookup
    // serves every prediction of the entity made at `asked` or later.
    struct entity_outcome {
        micros asked = 0;
        std::optional<joined_outcome> outcome;
        micros chain_time = 0;
    };
    std::unordered_map<std::string, entity_outcome> by_entity_seen_;
};

// Each logged prediction's scoring and outcome, by its own version's label:
// one outcome_finder per label stream and field, each version's scoring read
// once. An
// entry without a version (a constant answered), or whose version or
// revision is gone, goes by the current definition.
class outcome_joiner {
public:
    outcome_joiner(connection& c, std::string model, const model_definition& current);
    const version_scoring& scoring(const logged_prediction& p);
    std::optional<joined_outcome> find(const logged_prediction& p,
                                       std::optional<micros> earliest = std::nullopt);

private:
    connection& c_;
    std::string model_;
    version_scoring current_;
    std::map<std::int64_t, version_scoring> versions_;
    // By label stream and field.
    std::map<std::pair<std::string, std::string>, std::unique_ptr<outcome_finder>> finders_;
};

}  // namespace kennel::ml

// Point-in-time training sets: for each entity with a label, the features
// from the latest feature fact whose event time is not after the label's,
// among facts up to a watermark (the snapshot). A fact from the future never
// leaks into training, and later facts never change a snapshot.
//
// Uses a reader connection; one thread at a time, like the connection.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ml/definition.h"
#include "ml/value.h"
#include "store/db.h"
#include "store/status.h"
#include "store/time_util.h"

namespace kennel::ml {

struct training_example {
    std::string entity;
    raw_record features;
    raw_value label;
    micros label_time = 0;
    // A live version split by time: the time of the entity's label as that
    // version's training read it (none: it read none), which says whether
    // the entity was on its training side.
    std::optional<micros> live_label_time;
    std::int64_t label_fact_id = 0;
    std::int64_t feature_fact_id = 0;
    // The features the live version is scored on when it computes an
    // aggregate field otherwise than the definition (another window, or a
    // field the definition reads from facts); none: `features`.
    std::optional<raw_record> live_features;
};

struct training_set {
    std::vector<training_example> rows;
    std::int64_t max_fact_id = 0;          // the snapshot watermark
    std::int64_t labelled_entities = 0;    // entities with a label
    std::int64_t without_features = 0;     // of those, with no feature fact at or before the label
    // A label stream apart from the features': its facts after the newest
    // one holding the label field (none, or null there) and the first of
    // them. Many such facts look like a renamed field: the app's data moved
    // on, and training goes on with the labels from before.
    std::int64_t facts_after_last_label = 0;
    std::int64_t first_fact_after_last_label = 0;
    // Per feature field, the rows whose value Kennel cannot read (an array,
    // an object that is not an interval or a value with its confidence):
    // missing for training, as null is, but worth saying.
    struct unreadable_count {
        std::int64_t rows = 0;
        std::string example;  // "an array", ...
    };
    std::map<std::string, unreadable_count> unreadable;
};

// The largest magnitude of a regression label training takes (its square
// must stay finite for the holdout's metrics).
inline constexpr double max_regression_label = 1e150;

// Where a version's training read its labels: the stream, the field and
// its snapshot (facts with id <= max_fact_id).
struct label_source {
    std::string stream, field;
    std::int64_t max_fact_id = 0;
};

// Reads the set as of `watermark` (facts with id <= watermark). The latest
// label per entity is used; a fact corrected by a later fact (within the
// watermark) is replaced by its correction.
// `also_keep` names raw fields kept beyond the definition's (those the live
// version reads, to score it on what the app would send it), and
// `also_aggregate` the live version's aggregates: computed too (into
// `features` for a field the definition does not read, else into
// `live_features`). `live_labels`, for a live version split by time: each
// row's `live_label_time` from there.
result<training_set> build_training_set(connection& reader, const model_definition& d,
                                        std::int64_t watermark,
                                        const std::vector<std::string>& also_keep = {},
                                        const std::vector<aggregate_spec>& also_aggregate = {},
                                        const std::optional<label_source>& live_labels = {});

}  // namespace kennel::ml

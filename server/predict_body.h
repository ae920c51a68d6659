// Reading a prediction request's body into instances the model can score,
// and writing an answer's prediction (shared by the API and `kennel predict`).
//
// Two readers give the same result. The general one parses the body into a
// JSON document (nlohmann) and checks it; it produces every error message.
// The fast one reads the common shape — scalar feature values, plain ASCII
// strings, each key once — straight from the text without building a
// document, and gives up (returns nothing) on anything else, including
// every error, so that the general reader answers it. Serving a single
// prediction spent about a third of its request CPU building and walking
// the document. Pure functions: thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ml/serving.h"
#include "ml/value.h"
#include "store/facts.h"
#include "store/status.h"

namespace kennel {

class json_writer;

struct predict_instance {
    std::string entity;
    ml::raw_record record;
    std::vector<std::string> ignored;  // fields the model never saw, in key order
    std::vector<std::string> missing;  // fields it reads that were not sent
    // Sent fields (not null) that only earlier versions of the fallback
    // chain or shadow arms read, in key order: ignored in an answer whose
    // version does not get them (one that does not read them, or a value of
    // a wrong type for it, dropped).
    std::vector<std::string> fallback_only;
    // FNV-1a over the features' members in key order, each value by type and
    // content: equal features hash equally however they were written. With
    // stored features, over the features scored (sent and stored).
    std::uint64_t features_hash = 0;
    // "stored_features": true: where the fields not sent came from, the
    // entity's fact in the model's features_from stream (none: it has none).
    struct stored_source {
        std::string stream;
        std::optional<std::int64_t> fact;
        micros time = 0;                  // the fact's effective event time
        std::vector<std::string> fields;  // taken from it, in key order
    };
    std::optional<stored_source> stored;
    // The aggregate fields computed from the entity's history (ml/aggregate.h)
    // as of `as_of`: now, or the stored fact's time with stored features.
    // A field the app sent is not computed and not listed; a value of none
    // (no fact in the window for mean, min, max, latest) is imputed.
    struct aggregate_source {
        micros as_of = 0;
        std::vector<std::pair<std::string, std::optional<double>>> values;  // by field
        // False when the request's deadline passed before they were read:
        // its answers then come from the fallback chain's constant.
        bool complete = true;
    };
    std::optional<aggregate_source> aggregates;
    // The entity's experiment arm, when it was trained to compute an
    // aggregate otherwise than the snapshot (another window, or a field live
    // does not compute): scored on its own record, with its own values
    // (those it computes otherwise). A shadow reads its own after the
    // answer (read_own_values); the chain's are not read.
    struct version_values {
        std::int64_t version = 0;
        ml::raw_record record;
        std::vector<std::pair<std::string, std::optional<double>>> values;
    };
    std::vector<version_values> own;
    // The record `version` is scored on.
    const ml::raw_record& record_for(std::int64_t version) const {
        for (const auto& o : own) {
            if (o.version == version) return o.record;
        }
        return record;
    }
};

// Reads an entity's stored features for model `m`: its fact in the model's
// features_from stream as of now (store/facts.h fact_as_of); when the model
// reads its features from its label's own stream, only a fact holding one
// of its features, as training reads them. Subclasses say where the
// connection comes from, taken when a read is first needed (no allocation
// for requests that read nothing).
// The same reader computes the entity's aggregate fields (ml/aggregate.h).
class stored_feature_reader {
public:
    virtual ~stored_feature_reader() = default;
    result<std::optional<fact>> read(const ml::model_serving& m, const std::string& entity);
    // The aggregates' values for the entity at `moment`, in order (none: no
    // value). Once `until` has passed, none are read and `cut` is set.
    result<std::vector<std::optional<double>>> aggregates(
        const std::vector<ml::aggregate_spec>& specs, const std::string& entity, micros moment);

    // When the request arrived (the API's: its deadline then bounds reading
    // histories, set by the reader of the body); unset for `kennel predict`.
    std::optional<std::chrono::steady_clock::time_point> started;
    ml::steady_deadline until;
    bool cut = false;  // a history was not read within `until`
    double read_seconds = 0;  // spent reading histories

protected:
    virtual connection& conn() = 0;
};

struct predict_request {
    bool batch = false;                 // {"instances": [...]}
    std::optional<double> deadline_ms;  // the request's own deadline, if given
    bool explain = false;               // "explain": true: each answer's explanation
    std::vector<predict_instance> instances;
};

// At most this many instances in one request.
inline constexpr std::size_t max_predict_instances = 1000;
// At most this many in one asking for explanations (each costs up to a few
// thousand predictions).
inline constexpr std::size_t max_explain_instances = 100;

// The whole reader: the fast path, else the document. The body's media type
// is checked by the caller. On an error about one instance of a batch,
// error_instance is set to its index.
// `stored` reads stored features for instances that ask for them (null:
// such an instance is refused).
result<predict_request> parse_predict_body(const ml::model_serving& m, const std::string& body,
                                           std::optional<std::size_t>& error_instance,
                                           stored_feature_reader* stored = nullptr);

// The two readers on their own, for tests that compare them.
result<predict_request> parse_predict_document(const ml::model_serving& m, const std::string& body,
                                               std::optional<std::size_t>& error_instance,
                                               stored_feature_reader* stored = nullptr);
std::optional<predict_request> parse_predict_fast(const ml::model_serving& m,
                                                  std::string_view body);

// The prediction and, for classification, the probabilities per class and
// the binary decision, as members of the object `w` is writing. `none`: no
// answer at all (a null prediction).
void write_prediction(json_writer& w, const ml::answer& a, bool none);

// The member "stored_features": the stream, the fact (null: the entity has
// none), its effective time and the fields taken from it.
void write_stored_source(json_writer& w, const predict_instance::stored_source& s);

// The aggregates `v` computes otherwise than the snapshot `m` (empty: none).
std::vector<ml::aggregate_spec> own_aggregate_specs(const ml::model_serving& m,
                                                    const ml::loaded_version& v);
// Whether the field's aggregate was (or, for a field the snapshot does not
// compute, would be) computed for `in`: it has an entity and the app did
// not send the field. A field sent is the app's for every version.
bool computed_for(const std::vector<ml::aggregate_spec>& snapshot, const predict_instance& in,
                  const std::string& field);
// Whether `v` computes an aggregate otherwise for `in` and its values were
// not read with the request (a chain version: passed over).
bool needs_own_values(const ml::model_serving& m, const ml::loaded_version& v,
                      const predict_instance& in);
// `in`'s record for a version computing `specs` otherwise than `snapshot`
// (the snapshot's aggregates): their values read for its entity at its
// moment, for the fields computed_for it. None when nothing is to compute;
// `reader.cut` says when it ran out of time.
result<std::optional<predict_instance::version_values>> read_own_values(
    stored_feature_reader& reader, const std::vector<ml::aggregate_spec>& snapshot,
    const std::vector<ml::aggregate_spec>& specs, std::int64_t version, const predict_instance& in);

// The member "aggregates": the moment they were computed at and each
// computed field's value (null: none, imputed).
// `answering`: the version that answered (its values: its own where it
// computes otherwise, and only the fields it computes), for a constant the
// one the entity was routed to, or null (the values read for the
// request). Nothing when there is nothing to show and the read was whole.
void write_aggregate_source(json_writer& w, const predict_instance& in,
                            const ml::loaded_version* answering);

// What a request (or a line of `kennel predict`) has for explaining its
// answers, all together.
inline constexpr double explain_request_seconds = 2;
inline std::chrono::steady_clock::time_point explain_deadline() {
    return std::chrono::steady_clock::now() +
           std::chrono::duration_cast<std::chrono::steady_clock::duration>(
               std::chrono::duration<double>(explain_request_seconds));
}

// The member "explanation" of an answer (ml/explain.h): each field's share
// of `answering`'s output, or why there is none (`answering` null: the
// answer came from `source`, a constant). Runs the explainer on this
// thread, within `seconds` at most (`first`: no answer of the request was
// explained before it, which the reason for running out of time says).
// True when an explanation was given.
bool write_explanation(json_writer& w, const ml::loaded_version* answering, const ml::answer& ans,
                       const std::string& source, const predict_instance& in, double seconds,
                       bool first);

}  // namespace kennel

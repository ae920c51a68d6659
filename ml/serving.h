// Serving: the loaded, warmed-up model versions that answer predictions, and
// the fallback chain that answers when they cannot.
//
// Readers take an immutable snapshot per model (shared_ptr<const
// model_serving>) and work without a lock; refresh() builds a new snapshot
// from the database — loading and warming any version not yet loaded — and
// only then swaps the pointer, so a promotion or rollback never makes a
// request wait or fail. A loaded version is shared by every snapshot that
// uses it; its fitted function is documented thread-safe for concurrent
// predictions (ml/trainers.h).
//
// Threads: get() and predict() from any thread; refresh() from any thread
// (refreshes of one model are serialised).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "ml/artifact.h"
#include "ml/definition.h"
#include "ml/drift.h"
#include "store/db.h"
#include "store/latency_histogram.h"
#include "store/status.h"
#include "store/time_util.h"

namespace kennel::ml {

class explainer;

// A prediction's content, whatever produced it.
struct answer {
    double value = 0;                   // regression value, or class index
    std::string label;                  // class name (classification)
    std::vector<double> probabilities;  // per class (classification)
    std::optional<bool> decision;       // binary: probability of the positive class >= threshold
    // Class names for the probabilities; points into the answering version's
    // artifact (or the snapshot's prior), which outlives the answer's use.
    const std::vector<std::string>* classes = nullptr;
    // How it reads: the answering version's task, which in an experiment or
    // down the fallback chain may differ from the live version's (a
    // definition's task can change between versions).
    task_kind task = task_kind::regression;
};

// Rolling counters the supervisor reads; updated lock-free by predictions.
struct version_counters {
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> errors{0};
    std::atomic<std::uint64_t> deadline_misses{0};
    std::atomic<std::uint64_t> fallbacks{0};
};

struct loaded_version {
    std::string model;
    std::int64_t version = 0;
    std::string sha256;
    std::shared_ptr<const model_artifact> artifact;
    answer baseline;              // the baseline's constant answer
    double threshold = 0.5;       // binary: its operating point's (ml/decision.h)
    std::string fault;            // serving fault for tests: "serve_throw", "serve_sleep"
    // The fields its pipeline reads, sorted: a field sent that it does not
    // read is reported as ignored in its answers.
    std::vector<std::string> reads;
    bool reads_field(std::string_view name) const;
    mutable version_counters counters;
    // What requests sent this version, against its training rows; null for
    // versions trained before profiles were written.
    std::unique_ptr<const drift_monitor> drift;
    // How long one prediction typically takes, and how many were timed. The
    // predict path runs a version on the request thread only when this is far
    // below the deadline. An average, not a maximum: on a busy machine a
    // thread is often preempted mid-prediction, and a maximum of such wall
    // times sent every request of a 0.3 us model to the pool. One slow call
    // moves the average by at most 1/32 of it.
    mutable std::atomic<double> typical_ns{0};
    mutable std::atomic<std::uint64_t> timed{0};

    // Training rows to explain its answers against (ml/explain.h); empty
    // for versions trained before versions kept them.
    std::vector<raw_record> background;
    // How it computes its aggregate fields (ml/aggregate.h), as trained.
    std::vector<aggregate_spec> aggregates;
    // The explainer, built on the first request for an explanation (most
    // versions are never asked for one, and a wide pipeline's encoded
    // background is megabytes); failed_precondition without a background.
    result<std::shared_ptr<const explainer>> explainer_for() const;

    // Called with each prediction's wall time, even when it threw.
    void record_duration(double ns) const;

    // True when `instances` predictions are safely inside `deadline_ns`:
    // measured enough times and 10x below the deadline.
    bool fast_enough(std::size_t instances, std::int64_t deadline_ns) const {
        return fault.empty() && timed.load(std::memory_order_relaxed) >= 32 &&
               typical_ns.load(std::memory_order_relaxed) * static_cast<double>(instances) * 10 <
                   static_cast<double>(deadline_ns);
    }

private:
    mutable std::once_flag explainer_once_;
    mutable std::shared_ptr<const explainer> explainer_;
    mutable status explainer_problem_;
};

struct serving_arm {
    std::string name;
    std::shared_ptr<const loaded_version> version;  // null: not served (problem says why)
    double weight = 0;
    bool shadow = false;
    std::string problem;  // "version_disabled", "artifact_removed", "version_of_another_task", ...
};

// A field the definition reads, with a bit (1 << transform_kind) for each
// transform that reads it: a sent value is checked once per field.
struct served_field {
    std::string name;
    std::uint32_t transforms = 0;
    // Read only by earlier live versions in the fallback chain: passed to
    // them when it fits their transforms, never refused, imputed, or
    // reported as ignored.
    bool fallback_only = false;
};

// The fields of the specs, sorted by name, each once.
std::vector<served_field> index_fields(const std::vector<feature_spec>& specs);

// One model's serving state. Immutable once published.
// A model's predict requests over its snapshots.
struct model_traffic {
    latency_histogram latency;  // how long they took
    // When the last was answered (0: none since start): archiving asks
    // whether an app still calls the model, and the prediction log may not
    // hold that answer yet, or may have dropped it.
    std::atomic<micros> last_answered{0};
};

struct model_serving {
    std::string name;
    // The current revision, with the features and task of the versions served
    // (use_served_specs).
    model_definition definition;
    std::int64_t revision = 0;
    std::shared_ptr<const loaded_version> live;  // null when not trained, disabled or unloadable
    std::optional<std::int64_t> live_alias_version;  // what the alias says, even if unusable
    std::string live_problem;  // why live is null: not_trained, no_live_version, version_disabled,
                               // artifact_load_failed (artifact_removed: never
                               // live, which retention always keeps)
    // Earlier live versions, newest first, enabled and loaded: the fallback chain.
    std::vector<std::shared_ptr<const loaded_version>> previous;
    // The version answering live traffic: live, else the first of the chain
    // (null: none; the constant or the prior answers). Reported as
    // `serving_version`: live alone read "none" while an earlier version
    // answered every request.
    const loaded_version* answering() const {
        return live ? live.get() : previous.empty() ? nullptr : previous.front().get();
    }
    std::set<std::int64_t> disabled;
    std::optional<std::int64_t> experiment;
    // Put before the entity in its arm's hash: empty for a person's
    // experiment, "canary-<id>:" for a canary's, so that each canary's share
    // falls on other entities (the same ones would get every new version).
    std::string arm_salt;
    std::vector<serving_arm> arms;  // non-shadow weights sum to 1
    // The live alias version's baseline answer, kept even when that version
    // is disabled or cannot load: the chain's constant step.
    std::optional<answer> baseline;
    std::vector<std::string> baseline_classes;
    std::optional<answer> prior;    // the label's prior from the data, for untrained models
    std::vector<std::string> prior_classes;
    // The label stream's newest fact id when the prior was counted (-1: no
    // prior was asked for): a later fact makes it stale (stale_priors).
    std::int64_t prior_at = -1;
    std::vector<served_field> fields;  // fields the definition reads, by name
    // The fields the current definition declares (before use_served_specs):
    // which facts count as an entity's features, as training reads them.
    std::vector<std::string> declared_fields;
    // Versions (live, arms, the chain) that read exactly the fields of
    // `fields` not flagged fallback_only: an answer of theirs lists the
    // ignored and imputed fields as the request was read; another's are
    // worked out from what it reads.
    std::vector<std::int64_t> read_served_fields;
    bool reads_served_fields(std::int64_t version) const {
        return std::find(read_served_fields.begin(), read_served_fields.end(), version) !=
               read_served_fields.end();
    }
    // Versions trained to compute an aggregate otherwise than
    // `definition.aggregates` (another window, or a field it does not
    // compute: the chain's and shadows' own): scored on their own values
    // (server/predict_body.h predict_instance::own).
    std::vector<std::int64_t> own_aggregates;
    bool computes_own_aggregates(std::int64_t version) const {
        return std::find(own_aggregates.begin(), own_aggregates.end(), version) !=
               own_aggregates.end();
    }
    // Fields only earlier live versions read, with their transforms (in
    // `fields` too, flagged fallback_only).
    std::vector<feature_spec> fallback_features;
    std::chrono::steady_clock::time_point built_at;
    // What its predict requests leave: the model's, not a snapshot's (a
    // refresh, a promotion or a new definition, hands it on).
    std::shared_ptr<model_traffic> traffic = std::make_shared<model_traffic>();
};

// Sets `s.definition`'s features and task to what its loaded versions read
// (see serving.cpp; the definition's own for a model with none), and
// `s.fields` to their index.
void use_served_specs(model_serving& s);

struct serving_options {
    bool test_faults = false;
};

class serving_registry {
public:
    explicit serving_registry(serving_options options) : options_(options) {}

    std::shared_ptr<const model_serving> get(std::string_view model) const;
    std::vector<std::shared_ptr<const model_serving>> all() const;

    // Rebuilds one model's snapshot from the database (reader connection).
    // Loads and warms new versions before swapping. A model that no longer
    // exists is removed.
    status refresh(connection& reader, const std::string& model);
    status refresh_all(connection& reader);

    // Models answering from a label prior counted before their label stream's
    // newest fact: a refresh counts it again (new labels refresh nothing else
    // of a model that was never trained). Reader connection.
    std::vector<std::string> stale_priors(connection& reader) const;

    // One version of a model, loaded and warmed (or the one already loaded),
    // whatever its aliases or state: `kennel predict --version`.
    result<std::shared_ptr<const loaded_version>> version(connection& reader,
                                                          const std::string& model,
                                                          std::int64_t version) {
        return load(reader, model, version, {});
    }

    // Loads and warms a version with its artifact as serving would (its
    // test fault too), so that live moved to it swaps it in at once. The
    // error when its artifact cannot be read or its warm-up prediction
    // fails; ok for a version missing or without an artifact, which the
    // alias move itself refuses.
    status preload(connection& reader, const std::string& model, std::int64_t version);

    // Models whose last refresh failed reading the database, with SQLite's
    // words: they serve their last snapshot, or, failed from the start,
    // nothing (kennel_model_problem "refresh_failed").
    std::map<std::string, std::string> refresh_failures() const;

    // Loaded versions: those the models' snapshots serve (and any loaded
    // with version() since).
    std::vector<std::shared_ptr<const loaded_version>> loaded() const;

private:
    // A version's serving fault (--test-faults only): from the revision it
    // was trained on.
    std::string fault_of(connection& reader, const std::string& model, std::int64_t version) const;
    result<std::shared_ptr<const loaded_version>> load(connection& reader, const std::string& model,
                                                       std::int64_t version,
                                                       const std::string& fault);
    // Unloads the model's cached versions that `served` (null: none) does
    // not serve, and returns them, to be released without mu_ held. Called
    // with mu_ held.
    std::vector<std::shared_ptr<const loaded_version>> drop_unserved(const std::string& model,
                                                                     const model_serving* served);

    // The label's prior for a model without a live version (label_prior),
    // kept per label stream and field until the stream gets a new fact.
    // Under refresh_mu_.
    std::optional<answer> cached_label_prior(connection& c, const model_definition& d,
                                             std::vector<std::string>& classes,
                                             std::int64_t& counted_at);
    // Stream, field, task, max classes, positive class: all name the classes.
    using prior_key = std::tuple<std::string, std::string, int, std::size_t, std::string>;
    struct cached_prior {
        std::int64_t at = 0;  // the stream's newest fact id when computed
        std::optional<answer> prior;
        std::vector<std::string> classes;
    };
    std::map<prior_key, cached_prior> priors_;

    serving_options options_;
    // Guards the maps below; held only to copy or swap pointers. Every
    // prediction reads models_: readers share the lock.
    mutable std::shared_mutex mu_;
    std::map<std::string, std::shared_ptr<const model_serving>, std::less<>> models_;
    std::map<std::pair<std::string, std::int64_t>, std::shared_ptr<const loaded_version>> cache_;
    std::map<std::string, std::string> refresh_failed_;  // see refresh_failures()
    std::mutex refresh_mu_;  // one refresh at a time
};

// The class names a version row's features JSON lists, in the order of its
// probabilities (empty for regression or unreadable JSON).
std::vector<std::string> classes_in_features(const std::string& features_json);

// The task a version was trained for, from its revision's definition; none
// when that cannot be read (then it is not told apart from any).
std::optional<task_kind> version_task(connection& c, const std::string& model,
                                      std::int64_t version);

// Where live goes back to when `from` (live) is taken out of service: the
// newest earlier version on the path live came by (store/registry.h
// live_history) that is enabled and was trained for from's task; a version
// of another task (the definition changed it since) would answer in another
// shape. None when there is no such version; `passed_over_task` then says
// whether one of another task was passed over. In the caller's transaction.
struct earlier_live {
    std::optional<std::int64_t> version;
    bool passed_over_task = false;
    bool passed_over_removed = false;  // an earlier one's artifact was removed by retention
};
earlier_live earlier_live_version(connection& c, const std::string& model, std::int64_t from);

// Each loaded version a model's snapshot serves, once, with its first role:
// "live", "arm:<name>" or "shadow:<name>", "previous" (the fallback chain).
// Once: its counters are the version's, and live's version visited again as
// an arm was counted twice in every sum over a model.
void for_each_served_version(
    const model_serving& m,
    const std::function<void(const loaded_version& v, const std::string& role)>& visit);
// All the roles of a served version (for_each_served_version gives the first).
std::vector<std::string> served_roles(const model_serving& m, std::int64_t version);

// Thrown by predict_with when the request's inputs, not the version, made
// the prediction unusable (see predict_raw): not counted as the version's
// error.
class input_out_of_range : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Runs a loaded version on a raw record (with its test faults). Throws on a
// model error (input_out_of_range when the inputs are at fault), which the
// caller turns into a fallback.
answer predict_with(const loaded_version& v, const raw_record& record);

// The arm for an entity: a stable unsigned hash of the entity in [0,1)
// walked over the non-shadow arms' cumulative weights.
const serving_arm* choose_arm(const model_serving& m, std::string_view entity);

}  // namespace kennel::ml

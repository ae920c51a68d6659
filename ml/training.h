// One training run, start to finish, on a training set already read: split by
// entity hash, fit the feature pipeline on the training side, train the
// baseline and the candidate (or search with `auto`), evaluate both — and the
// live version, if any — on the same holdout rows, apply the publish gate,
// and produce the artifact, checked by loading it back and comparing its
// predictions on a probe set.
//
// Blocking and single-threaded apart from what the trainers use; meant for
// the training child process (see ml/training_worker.h). Pure with respect to
// the database: the caller stores the outcome.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ml/artifact.h"
#include "ml/decision.h"
#include "ml/definition.h"
#include "ml/drift.h"
#include "ml/metrics.h"
#include "ml/trainers.h"
#include "ml/training_data.h"

namespace kennel::ml {

struct live_reference {
    std::int64_t version = 0;
    std::shared_ptr<const model_artifact> artifact;
    // Its holdout, when known: rows on its training side are left out of
    // the comparison with it. By entity, its definition's share; by time,
    // the earliest label time of its holdout (entities whose label its
    // training read was before it were on its training side).
    std::optional<double> holdout;
    std::optional<std::int64_t> holdout_from;
    // Its labels were read again as its training read them (each row's
    // live_label_time): an entity it read none for was not on its side.
    bool labels_read = false;
    // The decision rule it was trained by, when another than the
    // candidate's and live was put live before the rule changed: the gate
    // then asks the candidate to match live, not beat it.
    std::optional<decision_policy> decision;
    // Its calibration, when another than the definition's and live was put
    // live before the definition's changed: the gate then compares the
    // candidate with live on the Brier score.
    std::optional<calibration_method> calibration;
};

// A definition whose calibration differs from live's: the candidate is
// compared with live on the Brier score (proper for probabilities), not
// the primary metric, which a monotone map leaves as it was (sigmoid) or
// lowers by its ties (isotonic).
struct calibration_shift {
    calibration_method live = calibration_method::none, candidate = calibration_method::none;
    // Live was put back after the definition's calibration changed (a
    // person's choice of the old one): the candidate must beat live on the
    // primary metric, both by their own rankings, before calibration, whose
    // metrics on the compared rows these are (isotonic's ties moved
    // roc_auc, and undid a rollback with the same model).
    const metric_listing* ranking = nullptr;
    const metric_listing* live_ranking =
        nullptr;  // live's, before its calibration; set with ranking
};

struct gate_decision {
    bool passed = false;
    std::string metric;  // the primary metric compared
    double candidate = 0, baseline = 0;
    std::optional<double> live;
    // The candidate on the holdout rows live answered, when live missed some.
    std::optional<double> candidate_on_live_rows;
    // Live decides by another rule than the candidate (binary): the
    // definition's rule changed. Its ranking as good as live's, the
    // candidate passes, so that the new rule serves; the words say both.
    std::optional<std::string> decision_rule_change;
    // Live is calibrated otherwise than the candidate: compared on "brier".
    std::optional<std::string> calibration_change;
    // The Brier scores compared, when calibration_change judged by them.
    struct brier_pair {
        double candidate = 0, live = 0;
    };
    std::optional<brier_pair> calibration_compared;
    // What the gate judged but the holdout cannot settle (a bound on a
    // decision's rate over a handful of rows): said even when it passed.
    std::vector<std::string> cautions;
    std::vector<std::string> reasons;  // why it failed; empty when passed
    std::string summary() const;
};

// The publish gate: beat the baseline on the primary metric, meet every
// threshold of the policy, and beat the live version (same rows) by the
// policy's min_improvement. When live could not answer every holdout row,
// `candidate_on_live_rows` holds the candidate's metrics on the rows it did,
// and that comparison uses them.
// A decision rule not met on the holdout (`decision`, binary) fails it too.
// When live decides by another rule (`live_decision`), the candidate need
// only match live on the primary metric: the change is the definition's.
// When live is calibrated otherwise (`calibration`), the candidate must be
// at least as good as live on the Brier score instead.
gate_decision evaluate_gate(task_kind task, const promotion_policy& policy,
                            const metric_listing& candidate, const metric_listing& baseline,
                            const metric_listing* live,
                            const metric_listing* candidate_on_live_rows = nullptr,
                            const operating_point* decision = nullptr,
                            const decision_policy* live_decision = nullptr,
                            const calibration_shift* calibration = nullptr);

// How much the candidate relies on one field: its primary metric on the
// holdout with the field's values shuffled among the rows, against the
// metric as evaluated. `drop` is in the metric's units, positive when the
// shuffle made it worse (the model uses the field), near 0 when the model
// ignores it.
struct field_importance {
    std::string field;
    double drop = 0;
    double shuffled = 0;  // the metric with the field shuffled
};

struct permutation_importance {
    std::string metric;  // the task's primary metric
    double evaluated = 0;                  // the unshuffled metric on the rows used
    std::size_t rows = 0;                  // holdout rows used (at most importance_max_rows)
    std::vector<field_importance> fields;  // largest drop first
    bool complete = true;                  // false when the time budget ran out before every field
};

inline constexpr std::size_t importance_max_rows = 2000;
inline constexpr double importance_budget_seconds = 30;

// A calibrated binary version: what was fitted, and the holdout's
// probabilities before it (the model's own) and after.
struct calibration_report {
    calibrator fitted;
    std::size_t rows = 0;  // out-of-fold training scores it was fitted on
    struct side {
        double brier = 0, calibration_error = 0, log_loss = 0, roc_auc = 0;
        std::vector<reliability_bin> bins;
    } before, after;
};

struct training_outcome {
    std::string artifact;  // serialize_artifact() bytes
    algorithm algo = algorithm::baseline;
    train_params params;
    std::optional<search_result> search;
    std::vector<std::string> classes;
    std::vector<std::string> feature_names;
    std::vector<std::string> warnings;
    // The training rows' distribution of each field: drift's reference.
    feature_profile profile;
    // Up to 100 training rows, the fields read: explanations' background.
    std::vector<raw_record> background;
    // The definition's aggregates among the fields read: how serving
    // computes them for this version.
    std::vector<aggregate_spec> aggregates;
    permutation_importance importance;
    metric_listing metrics;
    // Binary: the operating point the definition's decision rule chose on
    // the holdout (its precision, recall and false positive rate are also
    // in metrics, as decision_*); serving decides at its threshold.
    std::optional<operating_point> decision;
    // Binary: the holdout's reliability bins (of the probabilities served).
    std::vector<reliability_bin> reliability;
    std::optional<calibration_report> calibration;
    std::vector<std::string> gate_cautions;  // see gate_decision::cautions
    metric_listing baseline_metrics;
    // The baseline's answer (it is constant): the serving fallback.
    prediction baseline_answer;
    std::optional<metric_listing> live_metrics;
    std::optional<std::int64_t> live_version;
    std::optional<std::size_t> live_rows;  // holdout rows live answered, when not all
    // Why a live version that applies was not measured (every holdout row
    // on its training side): the gate cannot say the candidate is better,
    // so the auto policy leaves it to a person.
    std::optional<std::string> live_not_compared;
    // Holdout classes live never trained on (their rows left out of the
    // comparison), and how many rows: a candidate that learned a new class
    // is not credited for it, so a person should know.
    std::vector<std::string> live_unknown_classes;
    std::size_t live_unknown_rows = 0;
    // Of those, the ones the candidate trained on; and whether the gate
    // failed only against live (it passes the baseline and thresholds).
    std::vector<std::string> live_unknown_learned;
    bool fails_only_against_live = false;
    gate_decision gate;
    std::size_t train_rows = 0, test_rows = 0, probe_rows = 0;
    std::string split_rule;
    std::optional<std::int64_t> holdout_from;  // a split by time: its cut
    double fit_seconds = 0, evaluate_seconds = 0;
    double calibration_seconds = 0;  // the out-of-fold fits and the map (0: none)
};

struct training_hooks {
    train_control control;
    std::function<void(const std::string& level, const std::string& message)> log;
};

// Minimum rows on each side of the split for a run to mean anything.
inline constexpr std::size_t min_train_rows = 10;
inline constexpr std::size_t min_test_rows = 3;
// Holdout rows the live version must be compared on, unless it is compared
// on all of them: fewer say nothing of which is better.
inline constexpr std::size_t min_live_rows = 10;

// failed_precondition for data that cannot train the model (no labelled rows,
// one class, too few rows, nothing left after dropping constant features),
// conflict "cancelled" when cancelled, internal when the artifact does not
// reproduce its predictions.
result<training_outcome> train_model(const model_definition& d, const training_set& data,
                                     const live_reference* live, const training_hooks& hooks);

}  // namespace kennel::ml

// A model definition: what to learn, from which facts, how, and when a
// result may be published. Parsed from JSON at the edge
// (ml/definition_json.h); a plain value, copy freely between threads.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ml/aggregate.h"
#include "ml/calibration.h"
#include "ml/dataset.h"
#include "ml/decision.h"
#include "ml/features.h"
#include "ml/trainers.h"
#include "ml/value.h"

namespace kennel::ml {

struct label_spec {
    std::string stream;
    std::string field;
    // Binary only: the class whose probability, metrics (precision, recall,
    // f1, the operating point) and "decision" are reported. Unset: true,
    // 1, or of two strings the later in byte order.
    std::optional<std::string> positive;
};

// When the scheduler queues a job by itself. Neither set: manual only.
struct retrain_policy {
    std::optional<std::int64_t> every_new_labels;
    std::optional<std::int64_t> every_seconds;
    // The supervisor queues a job when a serving version's inputs drift past
    // supervision.max_feature_drift.
    bool on_drift = false;
};

// How a canary judges a version that passed its gate on live traffic
// (ml/canary.h): `share` of the requests with an entity go to it until each
// side's outcomes come from `entities` entities; it goes live unless its
// primary metric is then worse than live's by more than `max_loss` (the
// 95% interval of the difference lies wholly past it). Undecided after
// `max_seconds`, it does not go live.
struct canary_policy {
    double share = 0.1;
    std::int64_t entities = 200;
    double max_loss = 0;  // in the primary metric's units
    std::int64_t max_seconds = 7 * 24 * 3600;
};

// auto: a version that passes goes live; manual: it becomes the candidate
// for a person; canary: it becomes the candidate and a canary experiment
// decides (live at once when there is no live version to judge it against).
enum class promotion_mode { automatic, manual, canary };

// The publish gate. A candidate must beat the baseline on the primary
// metric, meet every threshold, and beat the live version (on the same
// holdout rows) by min_improvement; then the mode says what follows.
struct promotion_policy {
    promotion_mode mode = promotion_mode::automatic;
    canary_policy canary;        // for the canary mode
    double min_improvement = 0;  // in the primary metric's units
    // metric name -> bound; a lower bound for metrics where higher is better
    // (accuracy, f1, roc_auc, r2, ...), an upper bound otherwise (rmse, ...).
    std::map<std::string, double> thresholds;
};
const char* promotion_mode_name(promotion_mode m);  // "auto", "manual", "canary"

// When the supervisor takes a serving version out of service by itself.
struct supervision_policy {
    bool enabled = true;
    double max_error_rate = 0.2;          // share of requests where the version threw
    double max_deadline_miss_rate = 0.2;  // share that missed the deadline
    double max_fallback_share = 0.5;      // share answered by a fallback
    std::int64_t min_requests = 20;       // in the window, before rates count
    double window_seconds = 60;
    // Live metrics from joined outcomes: metric -> bound (as promotion thresholds).
    std::map<std::string, double> live_thresholds;
    std::int64_t min_outcomes = 30;
    // The live metric is judged on the predictions made between
    // outcome_delay + live_window and outcome_delay seconds ago: outcomes
    // that arrive a day after their prediction need a delay of a day, else
    // the predictions judged never have theirs yet.
    double live_window_seconds = 600;
    double outcome_delay_seconds = 0;
    // Feature drift (ml/drift.h): the highest population stability index of
    // any field over the drift window, once min_drift_samples requests were
    // counted in it. Crossing it is reported (and retrains with
    // retrain.on_drift); it does not take the version out of service, since
    // the inputs moved, not the model.
    double max_feature_drift = 0.25;
    double drift_window_seconds = 3600;
    std::int64_t min_drift_samples = 200;
};

struct model_definition {
    task_kind task = task_kind::regression;
    std::string features_from;
    label_spec label;
    std::vector<feature_spec> features;
    // The features computed from the entity's history (ml/aggregate.h), one
    // per field, in the order first declared.
    std::vector<aggregate_spec> aggregates;
    std::string algorithm = "auto";  // "auto" or an algorithm name
    train_params params;
    double search_budget_seconds = 20;
    double holdout = 0.2;  // its share of the labelled rows
    split_by holdout_by = split_by::entity;
    std::size_t max_classes = 50;
    retrain_policy retrain;
    promotion_policy promotion;
    // Binary only: how the threshold of the answers' "decision" is chosen.
    decision_policy decision;
    // Binary only: the map fitted on out-of-fold scores that the answers'
    // probabilities go through (ml/calibration.h).
    calibration_method calibration = calibration_method::none;
    supervision_policy supervision;
    double training_deadline_seconds = 600;
    std::int64_t training_memory_mb = 4096;
    // Serving (prediction deadline and the constant fallback answer).
    double deadline_ms = 50;
    std::optional<std::string> fallback_label;  // classification
    std::optional<double> fallback_value;       // regression
    // Fault injection for tests; ignored unless the server runs with --test-faults.
    std::string test_fault;
};

// The aggregate that computes `field`, or null when it is read from facts.
const aggregate_spec* aggregate_of(const std::vector<aggregate_spec>& specs,
                                   std::string_view field);
inline const aggregate_spec* aggregate_of(const model_definition& d, std::string_view field) {
    return aggregate_of(d.aggregates, field);
}

// Whether higher values of a metric are better (r2, auc...) or lower (rmse...).
bool metric_higher_is_better(const std::string& name);
bool known_metric(task_kind task, const std::string& name);
// Metrics that cannot leave [0, 1] (accuracy, precision, roc_auc, the
// decision's rates...): a bound outside it can never be met, or always is.
bool metric_in_unit_interval(const std::string& name);

}  // namespace kennel::ml

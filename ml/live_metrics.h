// Live metrics: predictions joined to the outcomes that arrived later as
// ordinary facts in the model's label stream — by the outcome's
// "prediction_id" field, else by entity (the newest outcome at or after the
// prediction). The same metrics as the holdout, per version and arm,
// including shadow arms. Reader connection; one thread at a time.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "ml/decision.h"
#include "ml/definition.h"
#include "ml/metrics.h"
#include "store/db.h"
#include "store/status.h"
#include "store/time_util.h"

namespace kennel::ml {

struct live_group {
    std::optional<std::int64_t> version;
    std::string arm;
    bool shadow = false;
    std::int64_t predictions = 0;
    std::int64_t outcomes = 0;  // predictions with a joined outcome, scored
    // Of those, the distinct entities (a request without one counts as
    // one): 30 outcomes of one entity asked about 30 times are one label.
    std::int64_t outcome_entities = 0;
    // Joined outcomes the answering version cannot score: a class it does
    // not know (a 1 where it learned true), or a value of another type.
    // Counted, since a metric over fewer outcomes than were sent needs a why.
    std::int64_t unscored_outcomes = 0;
    std::int64_t fallbacks = 0;
    double mean_latency_ms = 0;
    std::optional<metric_listing> metrics;  // when there are outcomes to score
    // Binary: the decisions as served, counted (the decision_* metrics'
    // rows, and their intervals), when the group has outcomes to score.
    std::optional<operating_point> decision;
    // Of those rows, the distinct entities (a request without one counts
    // as one) answered positive, of the positive class and of the negative.
    struct entity_counts {
        std::int64_t answered_positive = 0, positives = 0, negatives = 0;
    };
    std::optional<entity_counts> decision_entities;
    // Binary: the answers' reliability bins (ml/metrics.h), when the group
    // has outcomes to score; empty otherwise.
    std::vector<reliability_bin> reliability;
    // The primary metric (the gate's) with its interval, when asked for
    // (compute_live_report) and there are outcomes to score; NaN bounds
    // below the options' min_outcomes.
    struct primary_estimate {
        std::string metric;
        double value = 0, lower = 0, upper = 0;
        std::int64_t entities = 0;  // of the scored rows (one without an entity counts as one)
    };
    std::optional<primary_estimate> primary;
};

// The evidence a decision_* metric of the group rests on: the rows it
// counts over (answered positive for a precision, positive for a recall,
// negative for a false positive rate), or their distinct entities when
// fewer (one entity asked about 30 times, one outcome, is one piece of
// evidence). 0 without decisions.
std::int64_t decision_evidence(const live_group& g, const std::string& metric);

// One group's primary metric against another's, with the interval of the
// difference (this group's minus the other's).
struct live_comparison {
    std::optional<std::int64_t> version;
    std::string arm;
    bool shadow = false;
    // Against the reference group (live_report::reference): an experiment
    // arm as an independent sample, a shadow on the reference's answers to
    // the same requests (paired).
    std::string against_arm;
    std::optional<std::int64_t> against_version;
    bool paired = false;
    std::string metric;
    bool higher_is_better = false;
    std::int64_t outcomes = 0, against_outcomes = 0;  // paired: both the pairs
    std::int64_t entities = 0, against_entities = 0;  // what is resampled
    double difference = 0, lower = 0, upper = 0;      // NaN when not known
    // "better", "worse" (the interval lies wholly on one side of 0),
    // "inconclusive" (it does not, or could not be computed),
    // "too_few_entities" (below min_entities on a side), "not_comparable"
    // (another task, or other classes, than the reference's).
    std::string verdict;
};

struct live_uncertainty_options {
    // What experiment arms and shadows are compared with: the version live
    // was when the window began (the caller's choice); none, nothing compared.
    std::optional<std::int64_t> reference_version;
    // The experiment's arms in the order it lists them: of the arms of the
    // reference version, the first listed is the reference (outcome counts
    // change between calls; the order does not).
    std::vector<std::string> arm_order;
    std::uint32_t resamples = 400;
    double confidence = 0.95;
    std::int64_t min_entities = 30;  // per side, for an interval or a verdict
};

struct live_report {
    std::vector<live_group> groups;
    // The group answering with the reference version that the others are
    // compared with: an experiment arm before the "live" arm, then the one
    // with the most outcomes. None: nothing is compared.
    struct reference_group {
        std::string arm;
        std::int64_t version = 0;
    };
    std::optional<reference_group> reference;
    std::vector<live_comparison> comparisons;
    bool truncated = false;  // the window held more than max_predictions
};

// Over the newest `max_predictions` predictions made from `since` to `until`.
result<std::vector<live_group>> compute_live_metrics(
    connection& c, const std::string& model, const model_definition& d, micros since,
    std::int64_t max_predictions = 50000, micros until = std::numeric_limits<micros>::max());

// The same groups, each with its primary metric's interval, and the
// comparisons above: a bootstrap over entities (ml/bootstrap.h).
result<live_report> compute_live_report(connection& c, const std::string& model,
                                        const model_definition& d, micros since,
                                        const live_uncertainty_options& options,
                                        std::int64_t max_predictions = 50000,
                                        micros until = std::numeric_limits<micros>::max());

}  // namespace kennel::ml

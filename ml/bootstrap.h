// How sure a live metric is: intervals for the primary metric of predictions
// joined to their outcomes, and for the difference between two sets of them
// (an experiment arm against live's, a shadow against the answers it
// shadowed), by a bootstrap over entities.
//
// Why entities, not rows: one user asked about many times shares one outcome
// across its predictions (the join is by entity), so rows are not
// independent, and an interval over rows is too narrow. Resampling whole
// entities keeps each one's rows together. Two sets resampled with the same
// weights are compared fairly either way: a shadow and the answers it
// shadowed share their entities (a paired comparison), experiment arms
// split them (independent samples).
//
// The resampling is Poisson's: each entity weighs Poisson(1) in a resample,
// drawn from a hash of the entity and the resample, so the same rows give
// the same interval on every call, and a resample costs one pass over the
// rows (an ROC-AUC is re-weighted along one sort, not re-sorted).
//
// Pure functions over values: safe to call from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "ml/value.h"

namespace kennel::ml {

// The primary metric of a task (see primary_metric), as computed from rows.
enum class primary_form {
    roc_auc,   // binary: score = the positive class's probability
    log_loss,  // multiclass: value = -log of the true class's probability
    rmse,      // regression: value = predicted - truth
};
primary_form primary_form_of(task_kind task);

// The rows one metric is computed over. Add rows, then prepare() once.
class metric_rows {
public:
    explicit metric_rows(primary_form form) : form_(form) {}

    // `cluster` is the row's entity, an index below the bootstrap's count.
    // roc_auc: `value` is the score and `positive` the truth; log_loss: the
    // true class's probability (clipped as log loss clips it); rmse: the
    // prediction and the truth.
    void add_score(std::uint32_t cluster, double score, bool positive);
    void add_probability(std::uint32_t cluster, double true_class_probability);
    void add_regression(std::uint32_t cluster, double predicted, double truth);

    void prepare();
    std::size_t size() const { return cluster_.size(); }
    std::size_t distinct_clusters() const;
    primary_form form() const { return form_; }

    // The metric with every row weighted by its cluster's weight (nullptr:
    // every weight 1, which gives what metrics.h computes). NaN when it is
    // undefined: no weight, or an ROC-AUC with one class only.
    double evaluate(const std::vector<std::uint8_t>* cluster_weight) const;

private:
    primary_form form_;
    std::vector<std::uint32_t> cluster_;
    std::vector<double> value_;
    std::vector<std::uint8_t> positive_;
    std::vector<std::uint32_t> order_;  // roc_auc: by score, ascending
    std::vector<double> truths_;        // rmse: until prepare() makes value_ the error
    double scale_ = 1;                  // rmse: errors are divided by this power of two
    bool prepared_ = false;
};

// The Poisson(1) weight of a cluster in a resample (capped at 255).
std::uint8_t poisson_weight(std::uint64_t seed, std::uint32_t resample, std::uint32_t cluster);

struct bootstrap_interval {
    double lower = 0, upper = 0;  // NaN when too few resamples gave a value
    std::uint32_t valid = 0;      // resamples whose statistic was finite
};

// One statistic of the resampled weights (a metric, or a difference of two).
using bootstrap_statistic = std::function<double(const std::vector<std::uint8_t>& weight)>;

// Percentile intervals at `confidence` (0.95: from the 2.5th to the 97.5th
// percentile) of each statistic over `resamples` resamples of `clusters`
// clusters. A statistic finite in fewer than 90% of the resamples (an
// ROC-AUC where most resamples hold one class) gets NaN bounds.
std::vector<bootstrap_interval> cluster_bootstrap(
    std::size_t clusters, const std::vector<bootstrap_statistic>& statistics,
    std::uint32_t resamples, double confidence, std::uint64_t seed);

}  // namespace kennel::ml

// Holdout metrics: how well a fitted function's predictions match the truth on
// rows it never saw, in a form the registry can store and the HTTP edge can
// turn into JSON, plus the one metric the publish gate compares.
//
// Pure functions over values: safe to call from any thread.
//
// Conventions (as scikit-learn, so numbers can be checked against it):
//   - classification truth is the class index as a double; the predicted class
//     is the argmax of the probabilities (ties go to the lower index, so a
//     binary p = 0.5 predicts class 0);
//   - binary: the positive class is index 1; multiclass precision, recall and
//     F1 are macro averages over the classes in the truth or the predictions,
//     ROC-AUC (one-vs-rest) and PR-AUC over the classes in the truth;
//   - precision or recall with an empty denominator is 0; ROC-AUC and PR-AUC
//     that are undefined (one class only in the truth) are NaN, which the edge
//     writes as null;
//   - log loss clips probabilities to [1e-15, 1 - 1e-15];
//   - binary calibration: the Brier score is brier_score_loss's; the
//     reliability bins are calibration_curve's (10 of equal width, a score on
//     a bin's edge in the lower bin); the calibration error is the bins'
//     mean |mean score - share positive|, weighted by their rows (ECE);
//   - R^2 of a constant truth is 1 for a perfect prediction, else 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ml/value.h"
#include "store/status.h"

namespace kennel::ml {

using confusion_matrix_t = std::vector<std::vector<std::size_t>>;  // [truth][predicted]

struct classification_metrics {
    std::size_t rows = 0;
    double accuracy = 0, precision = 0, recall = 0, f1 = 0;
    double roc_auc = 0, pr_auc = 0, log_loss = 0;
    confusion_matrix_t confusion;
    // Binary only (NaN otherwise): the probability threshold for class 1 with
    // the best F1 on these rows, and that F1.
    double best_threshold = 0, best_threshold_f1 = 0;
    // Binary only (NaN otherwise): how far the probabilities of class 1 are
    // from the rates seen (see the conventions above).
    double brier = 0, calibration_error = 0;
};

struct regression_metrics {
    std::size_t rows = 0;
    double rmse = 0, mae = 0, r2 = 0;
};

// probabilities[i] has num_classes entries. invalid_argument on mismatched
// sizes, no rows, or a truth that is not a class index.
result<classification_metrics> evaluate_classification(
    const std::vector<double>& truth, const std::vector<std::vector<double>>& probabilities,
    std::size_t num_classes);
result<regression_metrics> evaluate_regression(const std::vector<double>& truth,
                                               const std::vector<double>& predicted);

// Building blocks; vectors of different lengths give NaN.
// Area under the ROC curve with tied scores counted as half (Mann-Whitney).
double roc_auc(const std::vector<bool>& positive, const std::vector<double>& score);
// Average precision: sum over distinct thresholds of (R_k - R_k-1) * P_k.
double average_precision(const std::vector<bool>& positive, const std::vector<double>& score);
double log_loss(const std::vector<double>& truth,
                const std::vector<std::vector<double>>& probabilities);
double rmse(const std::vector<double>& truth, const std::vector<double>& predicted);
confusion_matrix_t confusion_matrix(const std::vector<double>& truth,
                                    const std::vector<double>& predicted, std::size_t num_classes);

// Mean squared difference of the score of class 1 and the 0/1 truth.
double brier_score(const std::vector<bool>& positive, const std::vector<double>& score);

// One reliability bin: rows whose score of class 1 is in (lower, upper]
// (the first bin [0, 0.1]), their mean score and their share positive.
struct reliability_bin {
    double lower = 0, upper = 0;
    std::size_t rows = 0, positives = 0;
    double mean_score = 0, observed = 0;  // NaN in an empty bin
    // The mean |observed - mean_score| a perfectly calibrated model would
    // show on these scores by chance (normal approximation: sqrt(2 / pi)
    // times the standard deviation of the share positive); NaN when empty.
    double chance_gap = 0;
};
inline constexpr std::size_t reliability_bins = 10;
// Always reliability_bins bins, empty ones included. With `cluster` (one
// per row: the entity asked), a bin's chance_gap counts an entity's rows
// in it as one draw, as its answers share one outcome: 100 answers to each
// of 10 entities vary as 10 rows, not 1,000 (the chance level was 10 times
// too low, and a calibrated version was taken out of service).
std::vector<reliability_bin> reliability(const std::vector<bool>& positive,
                                         const std::vector<double>& score,
                                         const std::vector<std::uint32_t>& cluster = {});
// Rows-weighted mean |mean_score - observed| over the bins: NaN with no rows.
double calibration_error(const std::vector<reliability_bin>& bins);
// What calibration_error a perfectly calibrated model would show on the
// same scores by chance (the bins' chance_gap, weighted by their rows):
// on 30 rows about 0.1, so a bound below it judges noise. NaN with no rows.
double calibration_error_by_chance(const std::vector<reliability_bin>& bins);
// A bound on calibration_error is judged only when its chance level is at
// most this share of it: at half, a calibrated fraud model (most scores in
// one bin, a skewed binomial) crossed the bound 3-7% of the time, and the
// supervisor looks every 10 s.
inline constexpr double calibration_chance_share = 1.0 / 3;
// Whether a calibration_error bound can be judged at this chance level.
inline bool calibration_bound_judged(double bound, double chance) {
    return !(chance > bound * calibration_chance_share);
}
// The bins as a JSON array of {lower, upper, rows, positives, mean_score,
// observed} (NaN as null): how versions and live metrics show them.
std::string reliability_json(const std::vector<reliability_bin>& bins);

struct threshold_choice {
    double threshold = 0;  // predict positive when score >= threshold
    double f1 = 0;
};
// Scans the distinct scores; ties in F1 go to the higher threshold. NaN
// threshold when there is no positive row.
threshold_choice f1_best_threshold(const std::vector<bool>& positive,
                                   const std::vector<double>& score);

// Name -> value in a fixed order, plus the confusion matrix (empty for
// regression), for storage and JSON.
struct metric_listing {
    std::vector<std::pair<std::string, double>> values;
    confusion_matrix_t confusion;

    // NaN when the name is not listed.
    double get(const std::string& name) const;
};
metric_listing list_metrics(const classification_metrics& m);
metric_listing list_metrics(const regression_metrics& m);

// The metric the publish gate compares between a candidate, the baseline and
// the live version:
//   binary      roc_auc   (higher is better): threshold-free ranking quality;
//   multiclass  log_loss  (lower is better): uses every probability, defined
//               with any number of classes, and the baseline's log loss is the
//               entropy of the class prior, a meaningful bar;
//   regression  rmse      (lower is better), in the label's units.
struct primary_metric_info {
    const char* name;
    bool higher_is_better;
};
primary_metric_info primary_metric(task_kind task);

// True when a is strictly better than b for the task's primary metric
// (NaN is never better).
bool primary_better(task_kind task, double a, double b);

}  // namespace kennel::ml

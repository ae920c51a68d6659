// A binary model's operating point: the probability threshold at which its
// answer's "decision" turns positive, chosen on the holdout by the rule the
// definition declares. The F1-best threshold suits no one in particular: a
// fraud team needs a precision it can staff for, a screening team a recall
// it must not fall below, an alerting team a false-alarm rate; the rule says
// which, and the version records what the threshold reaches on the holdout.
//
// Pure functions over values: safe to call from any thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ml/metrics.h"

namespace kennel::ml {

enum class decision_rule {
    f1,                       // the threshold with the best F1 (the default)
    fixed,                    // a threshold the definition gives
    min_precision,            // the most recall with precision >= target
    min_recall,               // the fewest positive answers with recall >= target
    max_false_positive_rate,  // the most recall with false positive rate <= target
    min_cost,                 // the least false_positive_cost * FP + false_negative_cost * FN
};

const char* decision_rule_name(decision_rule r);
std::optional<decision_rule> parse_decision_rule(std::string_view name);

struct decision_policy {
    decision_rule rule = decision_rule::f1;
    double threshold = 0.5;  // fixed
    double target = 0;       // min_precision, min_recall, max_false_positive_rate
    double false_positive_cost = 1, false_negative_cost = 1;  // min_cost

    bool operator==(const decision_policy&) const = default;
};

// "min_precision 0.9", "fixed 0.7", "min_cost (false positive 1, false negative 20)".
std::string describe(const decision_policy& p);

struct operating_point {
    decision_policy policy;
    // Whether the rule holds on the rows (min_precision can fail; every rule
    // fails on rows without a positive, and max_false_positive_rate on rows
    // without a negative). Not met, the threshold is the closest the rows
    // allow (the highest precision), and `unmet` says why.
    bool met = false;
    std::string unmet;
    double threshold = 0.5;               // positive when the positive class's probability >= it
    std::size_t rows = 0, positives = 0;  // positives: rows of the positive class
    std::size_t true_positives = 0, false_positives = 0;
    // NaN when undefined: precision with no row answered positive, recall
    // with no positive row, the false positive rate with no negative one.
    double precision = 0, recall = 0, false_positive_rate = 0, f1 = 0, accuracy = 0;
    // 95% Wilson intervals: precision over the rows answered positive,
    // recall over the positive rows. A threshold chosen on few rows reaches
    // its target by luck as often as by skill; the interval says how few.
    double precision_lower = 0, precision_upper = 0, recall_lower = 0, recall_upper = 0;
    double false_positive_rate_lower = 0, false_positive_rate_upper = 0;  // over the negative rows
    double cost = 0;  // min_cost only: the rule's cost over the rows

    std::size_t predicted_positive() const { return true_positives + false_positives; }
};

// The operating point the policy picks on these rows: score[i] is the
// probability of the positive class, positive[i] whether row i is of it.
// The thresholds tried are the distinct scores, and for min_cost and
// max_false_positive_rate also one just above the highest (no row positive).
operating_point choose_operating_point(const decision_policy& policy,
                                       const std::vector<bool>& positive,
                                       const std::vector<double>& score);

// What a given threshold reaches on these rows (met is true).
operating_point operating_point_at(double threshold, const std::vector<bool>& positive,
                                   const std::vector<double>& score);
// What decisions already made reach (as served: live metrics); its
// threshold is NaN.
operating_point operating_point_of(const std::vector<bool>& positive,
                                   const std::vector<bool>& decided);

// The operating point's numbers as metrics (decision_precision,
// decision_recall, decision_false_positive_rate), on the holdout and live:
// bounds of the promotion policy and of supervision may name them.
void add_decision_metrics(metric_listing& m, const operating_point& p);

// The three rates a decision is measured by: the decision_* metrics.
enum class decision_rate { precision, recall, false_positive_rate };
const char* decision_metric_name(decision_rate r);  // "decision_precision"...
// Of a metric name, or of the rate a rule is written on (min_precision:
// precision); none for another name or rule.
std::optional<decision_rate> decision_rate_of(std::string_view metric);
std::optional<decision_rate> decision_rate_of(decision_rule rule);

// One rate of a point: its value, its 95% interval, and the rows it counts
// over (answered positive for a precision, positive for a recall, negative
// for a false positive rate).
struct rate_measure {
    double value = 0, lower = 0, upper = 0;
    std::size_t rows = 0;
};
rate_measure measure(const operating_point& p, decision_rate r);
// Those rows as live outcomes: "positive answers", "positive outcomes",
// "negative outcomes".
const char* live_rows_words(decision_rate r);

// The threshold a stored version decides at, from its metrics' JSON: its
// operating point's, else (versions from before decision rules) the F1-best
// one, else 0.5.
double decision_threshold_in_metrics(const std::string& metrics_json);

// A number as rules and thresholds are written back: shortest round-trip,
// without an exponent for everyday magnitudes ("0.0004", not "4e-04").
std::string plain_number(double x);
// Six significant digits, likewise without an exponent for everyday
// magnitudes (an interval's 0.0000176527, not 1.76527e-05).
std::string short_number(double x);

// Wilson score interval of k successes in n trials at 95%; [0, 1] when n is 0.
std::pair<double, double> wilson_interval(std::size_t k, std::size_t n);
// The same for a rate observed over rows that are n independent units at
// most (rows of n entities: an entity asked about 300 times is one unit).
std::pair<double, double> wilson_interval_of_rate(double rate, double n);

}  // namespace kennel::ml

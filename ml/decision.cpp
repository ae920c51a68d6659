#include "ml/decision.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <tuple>

#include "ml/value.h"

namespace kennel::ml {
namespace {

std::string six_digits(double v) {
    std::ostringstream s;
    s.precision(6);
    s << v;
    return s.str();
}

// The counts at one threshold of the sweep.
struct cut {
    double threshold = 0;
    std::size_t tp = 0, fp = 0;
};

// Every distinct score as a threshold, highest first, preceded by one just
// above the highest (no row answered positive).
std::vector<cut> sweep(const std::vector<bool>& positive, const std::vector<double>& score) {
    std::vector<std::size_t> idx(score.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(),
                     [&](std::size_t a, std::size_t b) { return score[a] > score[b]; });
    std::vector<cut> cuts;
    const double top = idx.empty() ? 1.0 : score[idx[0]];
    cuts.push_back({std::nextafter(top, std::numeric_limits<double>::infinity()), 0, 0});
    std::size_t tp = 0, fp = 0;
    for (std::size_t i = 0; i < idx.size();) {
        std::size_t j = i;
        // Rows with the same score cross the threshold together.
        while (j < idx.size() && score[idx[j]] == score[idx[i]]) {
            (positive[idx[j]] ? tp : fp) += 1;
            ++j;
        }
        cuts.push_back({score[idx[i]], tp, fp});
        i = j;
    }
    return cuts;
}

double ratio(std::size_t a, std::size_t b) {
    return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b);
}

// A rate with nothing to count is undefined, not 0: a precision of no row
// answered positive read as 0 took a version out of service.
double defined_ratio(std::size_t a, std::size_t b) {
    return b == 0 ? std::numeric_limits<double>::quiet_NaN()
                  : static_cast<double>(a) / static_cast<double>(b);
}

operating_point point_of(const decision_policy& policy, const cut& c, std::size_t rows,
                         std::size_t positives) {
    operating_point p;
    p.policy = policy;
    p.threshold = c.threshold;
    p.rows = rows;
    p.positives = positives;
    p.true_positives = c.tp;
    p.false_positives = c.fp;
    const std::size_t negatives = rows - positives, fn = positives - c.tp;
    p.precision = defined_ratio(c.tp, c.tp + c.fp);
    p.recall = defined_ratio(c.tp, positives);
    p.false_positive_rate = defined_ratio(c.fp, negatives);
    p.f1 = defined_ratio(2 * c.tp, 2 * c.tp + c.fp + fn);
    p.accuracy = defined_ratio(c.tp + (negatives - c.fp), rows);
    std::tie(p.precision_lower, p.precision_upper) = wilson_interval(c.tp, c.tp + c.fp);
    std::tie(p.recall_lower, p.recall_upper) = wilson_interval(c.tp, positives);
    std::tie(p.false_positive_rate_lower, p.false_positive_rate_upper) =
        wilson_interval(c.fp, negatives);
    if (policy.rule == decision_rule::min_cost) {
        p.cost = policy.false_positive_cost * static_cast<double>(c.fp) +
                 policy.false_negative_cost * static_cast<double>(fn);
    }
    p.met = true;
    return p;
}

}  // namespace

const char* decision_rule_name(decision_rule r) {
    switch (r) {
        case decision_rule::f1:
            return "f1";
        case decision_rule::fixed:
            return "fixed";
        case decision_rule::min_precision:
            return "min_precision";
        case decision_rule::min_recall:
            return "min_recall";
        case decision_rule::max_false_positive_rate:
            return "max_false_positive_rate";
        case decision_rule::min_cost:
            return "min_cost";
    }
    return "f1";
}

std::optional<decision_rule> parse_decision_rule(std::string_view name) {
    for (decision_rule r : {decision_rule::f1, decision_rule::fixed, decision_rule::min_precision,
                            decision_rule::min_recall, decision_rule::max_false_positive_rate,
                            decision_rule::min_cost}) {
        if (name == decision_rule_name(r)) return r;
    }
    return std::nullopt;
}

std::string describe(const decision_policy& p) {
    switch (p.rule) {
        case decision_rule::f1:
            return "f1";
        case decision_rule::fixed:
            return "fixed " + plain_number(p.threshold);
        case decision_rule::min_precision:
        case decision_rule::min_recall:
        case decision_rule::max_false_positive_rate:
            return std::string(decision_rule_name(p.rule)) + " " + plain_number(p.target);
        case decision_rule::min_cost:
            return "min_cost (false positive " + plain_number(p.false_positive_cost) +
                   ", false negative " + plain_number(p.false_negative_cost) + ")";
    }
    return "f1";
}

std::string plain_number(double x) {
    char buf[400];
    const double a = std::abs(x);
    const auto format =
        a == 0 || (a >= 1e-6 && a < 1e15) ? std::chars_format::fixed : std::chars_format::general;
    auto r = std::to_chars(buf, buf + sizeof buf, x, format);
    return std::string(buf, r.ptr);
}

std::string short_number(double x) {
    const double a = std::abs(x);
    if (!std::isfinite(x) || a == 0 || a < 1e-6 || a >= 1e15) return six_digits(x);
    // Six significant digits in fixed notation, trailing zeros dropped.
    const int decimals = std::max(0, 5 - static_cast<int>(std::floor(std::log10(a))));
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, x);
    std::string s(buf);
    if (s.find('.') != std::string::npos) {
        s.erase(s.find_last_not_of('0') + 1);
        if (s.back() == '.') s.pop_back();
    }
    return s;
}

std::pair<double, double> wilson_interval_of_rate(double rate, double n) {
    if (!(n > 0) || !std::isfinite(rate)) return {0.0, 1.0};
    constexpr double z = 1.959963984540054;  // the normal's 97.5th percentile
    const double p = std::clamp(rate, 0.0, 1.0);
    const double denominator = 1 + z * z / n;
    const double centre = (p + z * z / (2 * n)) / denominator;
    const double half = z * std::sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator;
    return {p == 0 ? 0.0 : std::max(0.0, centre - half),
            p == 1 ? 1.0 : std::min(1.0, centre + half)};
}

std::pair<double, double> wilson_interval(std::size_t k, std::size_t n) {
    if (n == 0) return {0.0, 1.0};
    return wilson_interval_of_rate(static_cast<double>(k) / static_cast<double>(n),
                                   static_cast<double>(n));
}

void add_decision_metrics(metric_listing& m, const operating_point& p) {
    for (decision_rate r :
         {decision_rate::precision, decision_rate::recall, decision_rate::false_positive_rate})
        m.values.emplace_back(decision_metric_name(r), measure(p, r).value);
}

const char* decision_metric_name(decision_rate r) {
    switch (r) {
        case decision_rate::precision:
            return "decision_precision";
        case decision_rate::recall:
            return "decision_recall";
        case decision_rate::false_positive_rate:
            return "decision_false_positive_rate";
    }
    return "decision_precision";
}

std::optional<decision_rate> decision_rate_of(std::string_view metric) {
    for (decision_rate r :
         {decision_rate::precision, decision_rate::recall, decision_rate::false_positive_rate}) {
        if (metric == decision_metric_name(r)) return r;
    }
    return std::nullopt;
}

std::optional<decision_rate> decision_rate_of(decision_rule rule) {
    switch (rule) {
        case decision_rule::min_precision:
            return decision_rate::precision;
        case decision_rule::min_recall:
            return decision_rate::recall;
        case decision_rule::max_false_positive_rate:
            return decision_rate::false_positive_rate;
        default:
            return std::nullopt;
    }
}

rate_measure measure(const operating_point& p, decision_rate r) {
    switch (r) {
        case decision_rate::precision:
            return {p.precision, p.precision_lower, p.precision_upper, p.predicted_positive()};
        case decision_rate::recall:
            return {p.recall, p.recall_lower, p.recall_upper, p.positives};
        case decision_rate::false_positive_rate:
            return {p.false_positive_rate, p.false_positive_rate_lower, p.false_positive_rate_upper,
                    p.rows - p.positives};
    }
    return {};
}

const char* live_rows_words(decision_rate r) {
    switch (r) {
        case decision_rate::precision:
            return "positive answers";
        case decision_rate::recall:
            return "positive outcomes";
        case decision_rate::false_positive_rate:
            return "negative outcomes";
    }
    return "rows";
}

double decision_threshold_in_metrics(const std::string& metrics_json) {
    const auto metrics = nlohmann::json::parse(metrics_json, nullptr, false);
    if (!metrics.is_object()) return 0.5;
    if (auto d = metrics.find("decision"); d != metrics.end() && d->is_object()) {
        if (auto t = d->find("threshold"); t != d->end() && t->is_number()) return t->get<double>();
    }
    if (auto t = metrics.find("best_threshold"); t != metrics.end() && t->is_number())
        return t->get<double>();
    return 0.5;
}

operating_point operating_point_at(double threshold, const std::vector<bool>& positive,
                                   const std::vector<double>& score) {
    std::vector<bool> decided(std::min(score.size(), positive.size()));
    for (std::size_t i = 0; i < decided.size(); ++i) decided[i] = score[i] >= threshold;
    operating_point p = operating_point_of(positive, decided);
    p.policy.threshold = p.threshold = threshold;
    return p;
}

operating_point operating_point_of(const std::vector<bool>& positive,
                                   const std::vector<bool>& decided) {
    cut c{std::numeric_limits<double>::quiet_NaN(), 0, 0};
    std::size_t positives = 0;
    const std::size_t rows = std::min(positive.size(), decided.size());
    for (std::size_t i = 0; i < rows; ++i) {
        positives += positive[i];
        if (decided[i]) (positive[i] ? c.tp : c.fp) += 1;
    }
    decision_policy fixed;
    fixed.rule = decision_rule::fixed;
    return point_of(fixed, c, rows, positives);
}

operating_point choose_operating_point(const decision_policy& policy,
                                       const std::vector<bool>& positive,
                                       const std::vector<double>& score) {
    if (policy.rule == decision_rule::fixed || positive.size() != score.size()) {
        operating_point p = operating_point_at(policy.threshold, positive, score);
        p.policy = policy;
        return p;
    }
    const std::vector<cut> cuts = sweep(positive, score);
    const std::size_t rows = score.size();
    const std::size_t positives =
        static_cast<std::size_t>(std::count(positive.begin(), positive.end(), true));
    const std::size_t negatives = rows - positives;
    // cuts[0] answers no row positive; the rules that pick by recall start
    // at the highest score (a threshold no row reaches has recall 0).
    std::size_t chosen = 1;
    std::string unmet;
    if (positives == 0) {
        unmet = "the rows hold no row of the positive class";
    } else if (policy.rule == decision_rule::max_false_positive_rate && negatives == 0) {
        unmet = "the rows hold no row of the negative class";
    }
    if (unmet.empty()) {
        switch (policy.rule) {
            case decision_rule::f1: {
                // Ties go to the higher threshold (the first met), as
                // metrics.h's f1_best_threshold does.
                double best = -1;
                for (std::size_t i = 1; i < cuts.size(); ++i) {
                    const double f = ratio(2 * cuts[i].tp, cuts[i].tp + cuts[i].fp + positives);
                    if (f > best) {
                        best = f;
                        chosen = i;
                    }
                }
                break;
            }
            case decision_rule::min_precision: {
                // The most recall; of equal recall the higher threshold.
                std::optional<std::size_t> met;
                std::size_t closest = 1;
                for (std::size_t i = 1; i < cuts.size(); ++i) {
                    const double precision = ratio(cuts[i].tp, cuts[i].tp + cuts[i].fp);
                    if (precision >= policy.target && (!met || cuts[i].tp > cuts[*met].tp)) met = i;
                    const double best =
                        ratio(cuts[closest].tp, cuts[closest].tp + cuts[closest].fp);
                    if (precision > best || (precision == best && cuts[i].tp > cuts[closest].tp))
                        closest = i;
                }
                if (met) {
                    chosen = *met;
                } else {
                    chosen = closest;
                    unmet =
                        "no threshold reaches precision " + plain_number(policy.target) +
                        " (the highest is " +
                        six_digits(ratio(cuts[closest].tp, cuts[closest].tp + cuts[closest].fp)) +
                        ", at threshold " + plain_number(cuts[closest].threshold) + ")";
                }
                break;
            }
            case decision_rule::min_recall:
                // The highest threshold that keeps the recall: the fewest
                // rows answered positive. The lowest score has recall 1.
                for (std::size_t i = 1; i < cuts.size(); ++i) {
                    if (ratio(cuts[i].tp, positives) >= policy.target) {
                        chosen = i;
                        break;
                    }
                }
                break;
            case decision_rule::max_false_positive_rate:
                // The most recall; no row positive has rate 0, so it is met.
                chosen = 0;
                for (std::size_t i = 1; i < cuts.size(); ++i) {
                    if (ratio(cuts[i].fp, negatives) <= policy.target &&
                        cuts[i].tp > cuts[chosen].tp)
                        chosen = i;
                }
                break;
            case decision_rule::min_cost: {
                // The least cost; of equal cost the higher threshold.
                auto cost = [&](const cut& c) {
                    return policy.false_positive_cost * static_cast<double>(c.fp) +
                           policy.false_negative_cost * static_cast<double>(positives - c.tp);
                };
                chosen = 0;
                for (std::size_t i = 1; i < cuts.size(); ++i) {
                    if (cost(cuts[i]) < cost(cuts[chosen])) chosen = i;
                }
                break;
            }
            case decision_rule::fixed:
                break;
        }
    }
    operating_point p;
    if (positives == 0 ||
        (policy.rule == decision_rule::max_false_positive_rate && negatives == 0)) {
        // Nothing to choose by: the even threshold, as before any rule.
        p = operating_point_at(0.5, positive, score);
        p.policy = policy;
    } else {
        p = point_of(policy, cuts[chosen], rows, positives);
    }
    p.met = unmet.empty();
    p.unmet = unmet;
    return p;
}

}  // namespace kennel::ml

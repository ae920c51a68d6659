#include "ml/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <numeric>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "ml/numeric.h"

namespace kennel::ml {
namespace {

std::size_t argmax(const std::vector<double>& p) {
    // std::max_element returns the first maximum: ties go to the lower index.
    return static_cast<std::size_t>(std::max_element(p.begin(), p.end()) - p.begin());
}

// Row order by descending score, ties in a stable order.
std::vector<std::size_t> order_by_score_desc(const std::vector<double>& score) {
    std::vector<std::size_t> idx(score.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(),
                     [&](std::size_t a, std::size_t b) { return score[a] > score[b]; });
    return idx;
}

double safe_div(double a, double b) {
    return b == 0 ? 0.0 : a / b;
}

double mean_ignoring_nan(const std::vector<double>& xs) {
    double sum = 0;
    std::size_t n = 0;
    for (double x : xs) {
        if (!std::isnan(x)) {
            sum += x;
            ++n;
        }
    }
    return n ? sum / static_cast<double>(n) : nan;
}

}  // namespace

double roc_auc(const std::vector<bool>& positive, const std::vector<double>& score) {
    if (positive.size() != score.size()) return nan;
    const std::size_t n = score.size();
    std::vector<std::size_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(),
              [&](std::size_t a, std::size_t b) { return score[a] < score[b]; });
    // Mid-ranks: tied scores share the average of their ranks, which counts a
    // tied positive/negative pair as half a correct ordering.
    double positive_rank_sum = 0;
    std::size_t num_pos = 0;
    for (std::size_t i = 0; i < n;) {
        std::size_t j = i;
        while (j < n && score[idx[j]] == score[idx[i]]) ++j;
        const double mid_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
        for (std::size_t k = i; k < j; ++k) {
            if (positive[idx[k]]) {
                positive_rank_sum += mid_rank;
                ++num_pos;
            }
        }
        i = j;
    }
    const std::size_t num_neg = n - num_pos;
    if (num_pos == 0 || num_neg == 0) return nan;
    const double p = static_cast<double>(num_pos), q = static_cast<double>(num_neg);
    return (positive_rank_sum - p * (p + 1) / 2) / (p * q);
}

double average_precision(const std::vector<bool>& positive, const std::vector<double>& score) {
    if (positive.size() != score.size()) return nan;
    const double total_pos =
        static_cast<double>(std::count(positive.begin(), positive.end(), true));
    if (total_pos == 0) return nan;
    const auto idx = order_by_score_desc(score);
    double tp = 0, fp = 0, prev_recall = 0, ap = 0;
    for (std::size_t i = 0; i < idx.size();) {
        std::size_t j = i;
        // All rows with the same score cross the threshold together.
        while (j < idx.size() && score[idx[j]] == score[idx[i]]) {
            (positive[idx[j]] ? tp : fp) += 1;
            ++j;
        }
        const double recall = tp / total_pos;
        ap += (recall - prev_recall) * (tp / (tp + fp));
        prev_recall = recall;
        i = j;
    }
    return ap;
}

threshold_choice f1_best_threshold(const std::vector<bool>& positive,
                                   const std::vector<double>& score) {
    threshold_choice best{nan, 0.0};
    if (positive.size() != score.size()) return best;
    const double total_pos =
        static_cast<double>(std::count(positive.begin(), positive.end(), true));
    if (total_pos == 0) return best;
    const auto idx = order_by_score_desc(score);
    double tp = 0, fp = 0;
    bool first = true;
    for (std::size_t i = 0; i < idx.size();) {
        std::size_t j = i;
        while (j < idx.size() && score[idx[j]] == score[idx[i]]) {
            (positive[idx[j]] ? tp : fp) += 1;
            ++j;
        }
        const double fn = total_pos - tp;
        const double f1 = safe_div(2 * tp, 2 * tp + fp + fn);
        // Strictly better only: among equal F1 the higher threshold wins.
        if (first || f1 > best.f1) best = {score[idx[i]], f1};
        first = false;
        i = j;
    }
    return best;
}

double log_loss(const std::vector<double>& truth,
                const std::vector<std::vector<double>>& probabilities) {
    if (truth.size() != probabilities.size() || truth.empty()) return nan;
    constexpr double eps = 1e-15;
    double sum = 0;
    for (std::size_t i = 0; i < truth.size(); ++i) {
        const auto k = static_cast<std::size_t>(truth[i]);
        if (truth[i] < 0 || k >= probabilities[i].size()) return nan;
        sum -= std::log(std::clamp(probabilities[i][k], eps, 1 - eps));
    }
    return sum / static_cast<double>(truth.size());
}

double rmse(const std::vector<double>& truth, const std::vector<double>& predicted) {
    if (truth.size() != predicted.size() || truth.empty()) return nan;
    double sse = 0;
    for (std::size_t i = 0; i < truth.size(); ++i) {
        sse += (truth[i] - predicted[i]) * (truth[i] - predicted[i]);
    }
    return std::sqrt(sse / static_cast<double>(truth.size()));
}

double brier_score(const std::vector<bool>& positive, const std::vector<double>& score) {
    if (positive.size() != score.size() || score.empty()) return nan;
    double sum = 0;
    for (std::size_t i = 0; i < score.size(); ++i) {
        const double e = score[i] - (positive[i] ? 1.0 : 0.0);
        sum += e * e;
    }
    return sum / static_cast<double>(score.size());
}

std::vector<reliability_bin> reliability(const std::vector<bool>& positive,
                                         const std::vector<double>& score,
                                         const std::vector<std::uint32_t>& cluster) {
    std::vector<reliability_bin> bins(reliability_bins);
    std::vector<double> sums(reliability_bins, 0), variances(reliability_bins, 0);
    // The edges as numpy's linspace(0, 1, 11) makes them, i * 0.1 and 1 at
    // the end: 6 * 0.1 is 0.6000000000000001, not 0.6, and isotonic steps
    // answer such values (with 6 / 10.0, 49 of 600 rows fell a bin higher
    // than in calibration_curve).
    const double width = 1.0 / reliability_bins;
    for (std::size_t b = 0; b < reliability_bins; ++b) {
        bins[b].lower = static_cast<double>(b) * width;
        bins[b].upper = b + 1 == reliability_bins ? 1.0 : static_cast<double>(b + 1) * width;
    }
    // Per bin and entity, the sum of its rows' standard deviations: their
    // outcomes move together, so those add before squaring.
    std::vector<std::unordered_map<std::uint32_t, double>> spread(reliability_bins);
    const bool clustered = cluster.size() == score.size();
    if (positive.size() == score.size()) {
        for (std::size_t i = 0; i < score.size(); ++i) {
            const double s = score[i];
            if (!std::isfinite(s)) continue;
            // The first bin whose upper edge is not below the score, as
            // numpy's searchsorted over the inner edges puts it.
            std::size_t b = 0;
            while (b + 1 < reliability_bins && s > bins[b].upper) ++b;
            ++bins[b].rows;
            if (positive[i]) ++bins[b].positives;
            sums[b] += s;
            if (clustered)
                spread[b][cluster[i]] += std::sqrt(s * (1 - s));
            else
                variances[b] += s * (1 - s);
        }
    }
    for (std::size_t b = 0; b < reliability_bins; ++b) {
        for (const auto& [entity, sd] : spread[b]) variances[b] += sd * sd;
        const auto n = static_cast<double>(bins[b].rows);
        bins[b].mean_score = bins[b].rows ? sums[b] / n : nan;
        bins[b].observed = bins[b].rows ? static_cast<double>(bins[b].positives) / n : nan;
        bins[b].chance_gap =
            bins[b].rows ? std::sqrt(2 / std::numbers::pi) * std::sqrt(variances[b]) / n : nan;
    }
    return bins;
}

double calibration_error(const std::vector<reliability_bin>& bins) {
    double sum = 0;
    std::size_t rows = 0;
    for (const auto& b : bins) {
        if (b.rows == 0) continue;
        sum += static_cast<double>(b.rows) * std::abs(b.mean_score - b.observed);
        rows += b.rows;
    }
    return rows ? sum / static_cast<double>(rows) : nan;
}

double calibration_error_by_chance(const std::vector<reliability_bin>& bins) {
    double sum = 0;
    std::size_t rows = 0;
    for (const auto& b : bins) {
        if (b.rows == 0) continue;
        sum += static_cast<double>(b.rows) * b.chance_gap;
        rows += b.rows;
    }
    return rows ? sum / static_cast<double>(rows) : nan;
}

std::string reliability_json(const std::vector<reliability_bin>& bins) {
    nlohmann::json j = nlohmann::json::array();
    const auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nullptr; };
    for (const auto& b : bins) {
        j.push_back({{"lower", b.lower},
                     {"upper", b.upper},
                     {"rows", b.rows},
                     {"positives", b.positives},
                     {"mean_score", number(b.mean_score)},
                     {"observed", number(b.observed)}});
    }
    return j.dump();
}

confusion_matrix_t confusion_matrix(const std::vector<double>& truth,
                                    const std::vector<double>& predicted, std::size_t num_classes) {
    confusion_matrix_t m(num_classes, std::vector<std::size_t>(num_classes, 0));
    if (truth.size() != predicted.size()) return m;
    for (std::size_t i = 0; i < truth.size(); ++i) {
        const double t = truth[i], p = predicted[i];
        if (t >= 0 && p >= 0 && t < static_cast<double>(num_classes) &&
            p < static_cast<double>(num_classes)) {
            ++m[static_cast<std::size_t>(t)][static_cast<std::size_t>(p)];
        }
    }
    return m;
}

result<classification_metrics> evaluate_classification(
    const std::vector<double>& truth, const std::vector<std::vector<double>>& probabilities,
    std::size_t num_classes) {
    if (truth.empty()) return invalid("truth", "no rows to evaluate");
    if (truth.size() != probabilities.size())
        return invalid("probabilities", "one probability vector per row is required");
    if (num_classes < 2) return invalid("num_classes", "at least two classes are required");
    for (std::size_t i = 0; i < truth.size(); ++i) {
        if (probabilities[i].size() != num_classes)
            return invalid("probabilities", "row " + std::to_string(i) + " has " +
                                                std::to_string(probabilities[i].size()) +
                                                " probabilities, expected " +
                                                std::to_string(num_classes));
        const double t = truth[i];
        if (!(t >= 0) || t >= static_cast<double>(num_classes) || t != std::floor(t))
            return invalid("truth", "row " + std::to_string(i) + " is not a class index");
    }
    classification_metrics m;
    m.rows = truth.size();
    std::vector<double> predicted(truth.size());
    for (std::size_t i = 0; i < truth.size(); ++i) {
        predicted[i] = static_cast<double>(argmax(probabilities[i]));
    }
    m.confusion = confusion_matrix(truth, predicted, num_classes);
    std::size_t correct = 0;
    for (std::size_t k = 0; k < num_classes; ++k) correct += m.confusion[k][k];
    m.accuracy = static_cast<double>(correct) / static_cast<double>(m.rows);
    m.log_loss = log_loss(truth, probabilities);

    // Per class: precision, recall, F1 from the confusion matrix, and the
    // one-vs-rest ranking metrics from that class's probability.
    std::vector<double> precision(num_classes), recall(num_classes), f1(num_classes);
    std::vector<double> auc(num_classes), ap(num_classes);
    // Macro averages count the classes in the truth or the predictions only,
    // as scikit-learn's do: a class the holdout never saw nor predicted would
    // otherwise add a 0 (a perfect model scored F1 0.67 with three classes).
    std::size_t present = 0;
    double precision_sum = 0, recall_sum = 0, f1_sum = 0;
    for (std::size_t k = 0; k < num_classes; ++k) {
        double tp = static_cast<double>(m.confusion[k][k]), col = 0, row = 0;
        for (std::size_t j = 0; j < num_classes; ++j) {
            col += static_cast<double>(m.confusion[j][k]);
            row += static_cast<double>(m.confusion[k][j]);
        }
        precision[k] = safe_div(tp, col);
        recall[k] = safe_div(tp, row);
        f1[k] = safe_div(2 * precision[k] * recall[k], precision[k] + recall[k]);
        if (row > 0 || col > 0) {
            ++present;
            precision_sum += precision[k];
            recall_sum += recall[k];
            f1_sum += f1[k];
        }
        std::vector<bool> positive(truth.size());
        std::vector<double> score(truth.size());
        for (std::size_t i = 0; i < truth.size(); ++i) {
            positive[i] = static_cast<std::size_t>(truth[i]) == k;
            score[i] = probabilities[i][k];
        }
        auc[k] = roc_auc(positive, score);
        ap[k] = average_precision(positive, score);
        if (num_classes == 2 && k == 1) {
            auto t = f1_best_threshold(positive, score);
            m.best_threshold = t.threshold;
            m.best_threshold_f1 = t.f1;
            m.brier = brier_score(positive, score);
            m.calibration_error = calibration_error(reliability(positive, score));
        }
    }
    if (num_classes == 2) {
        m.precision = precision[1];
        m.recall = recall[1];
        m.f1 = f1[1];
        m.roc_auc = auc[1];
        m.pr_auc = ap[1];
    } else {
        // rows > 0, so some class is present.
        m.precision = precision_sum / static_cast<double>(present);
        m.recall = recall_sum / static_cast<double>(present);
        m.f1 = f1_sum / static_cast<double>(present);
        m.roc_auc = mean_ignoring_nan(auc);
        m.pr_auc = mean_ignoring_nan(ap);
        m.best_threshold = nan;
        m.best_threshold_f1 = nan;
        m.brier = nan;
        m.calibration_error = nan;
    }
    return m;
}

result<regression_metrics> evaluate_regression(const std::vector<double>& truth,
                                               const std::vector<double>& predicted) {
    if (truth.empty()) return invalid("truth", "no rows to evaluate");
    if (truth.size() != predicted.size())
        return invalid("predicted", "one prediction per row is required");
    regression_metrics m;
    m.rows = truth.size();
    const double n = static_cast<double>(truth.size());
    // Squares of errors beyond about 1e154 overflow a double, and so can a
    // difference of two values near the double range: labels of 1e200 gave
    // a rmse and an r2 of infinity for a model that fitted them. Every value
    // is divided first by a power of two near the largest magnitude (exact:
    // no rounding is added), and the results multiplied back.
    double largest = 0;
    for (std::size_t i = 0; i < truth.size(); ++i)
        largest = std::max({largest, std::abs(truth[i]), std::abs(predicted[i])});
    if (!std::isfinite(largest)) {  // an infinite value: nothing finite to say
        m.rmse = m.mae = std::numeric_limits<double>::infinity();
        m.r2 = std::numeric_limits<double>::quiet_NaN();
        return m;
    }
    if (largest == 0) {  // every truth and prediction is 0
        m.rmse = m.mae = 0;
        m.r2 = 1.0;
        return m;
    }
    int exponent = 0;
    std::frexp(largest, &exponent);
    const double scale = std::ldexp(1.0, exponent - 1);  // scale <= largest < 2 scale
    // The truth's spread on its own scale: beside predictions of 1e304,
    // labels near 1 divided by the predictions' scale underflowed, their
    // spread read as 0, and r2 as 0.0 for a model off by 1e304.
    double truth_largest = 0;
    for (double t : truth) truth_largest = std::max(truth_largest, std::abs(t));
    int truth_exponent = 0;
    std::frexp(truth_largest, &truth_exponent);
    const double truth_scale = truth_largest > 0 ? std::ldexp(1.0, truth_exponent - 1) : 1.0;
    double mean = 0;  // of truth / truth_scale
    for (double t : truth) mean += t / truth_scale;
    mean /= n;
    double sse = 0, sae = 0, sst = 0;
    for (std::size_t i = 0; i < truth.size(); ++i) {
        const double e = truth[i] / scale - predicted[i] / scale;
        sse += e * e;
        sae += std::abs(e);
        const double d = truth[i] / truth_scale - mean;
        sst += d * d;
    }
    m.rmse = scale * std::sqrt(sse / n);
    m.mae = scale * (sae / n);
    // sse is in units of scale^2 and sst of truth_scale^2 (both powers of
    // two: the ratio is exact); past the double range r2 is -infinity, as
    // scikit-learn's would be.
    const double units = std::ldexp(1.0, 2 * (exponent - truth_exponent));
    m.r2 = sst > 0 ? 1 - (sse / sst) * units : (sse == 0 ? 1.0 : 0.0);
    return m;
}

double metric_listing::get(const std::string& name) const {
    for (const auto& [k, v] : values) {
        if (k == name) return v;
    }
    return nan;
}

metric_listing list_metrics(const classification_metrics& m) {
    metric_listing l;
    l.values = {{"rows", static_cast<double>(m.rows)},
                {"accuracy", m.accuracy},
                {"precision", m.precision},
                {"recall", m.recall},
                {"f1", m.f1},
                {"roc_auc", m.roc_auc},
                {"pr_auc", m.pr_auc},
                {"log_loss", m.log_loss}};
    if (m.confusion.size() == 2) {
        l.values.emplace_back("brier", m.brier);
        l.values.emplace_back("calibration_error", m.calibration_error);
        l.values.emplace_back("best_threshold", m.best_threshold);
        l.values.emplace_back("best_threshold_f1", m.best_threshold_f1);
    }
    l.confusion = m.confusion;
    return l;
}

metric_listing list_metrics(const regression_metrics& m) {
    metric_listing l;
    l.values = {
        {"rows", static_cast<double>(m.rows)}, {"rmse", m.rmse}, {"mae", m.mae}, {"r2", m.r2}};
    return l;
}

primary_metric_info primary_metric(task_kind task) {
    switch (task) {
        case task_kind::binary:
            return {"roc_auc", true};
        case task_kind::multiclass:
            return {"log_loss", false};
        case task_kind::regression:
            return {"rmse", false};
    }
    return {"rmse", false};
}

bool primary_better(task_kind task, double a, double b) {
    if (std::isnan(a)) return false;
    if (std::isnan(b)) return true;
    return primary_metric(task).higher_is_better ? a > b : a < b;
}

}  // namespace kennel::ml

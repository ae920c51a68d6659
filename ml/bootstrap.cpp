#include "ml/bootstrap.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "ml/numeric.h"

namespace kennel::ml {
namespace {

std::uint64_t mix(std::uint64_t x) {
    // splitmix64's finaliser: every input bit moves every output bit.
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// Type 7 (linear between order statistics), as numpy's default percentile.
double percentile(const std::vector<double>& sorted, double q) {
    const double h = static_cast<double>(sorted.size() - 1) * q;
    const auto lo = static_cast<std::size_t>(std::floor(h));
    if (lo + 1 >= sorted.size()) return sorted.back();
    return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[lo + 1] - sorted[lo]);
}

}  // namespace

primary_form primary_form_of(task_kind task) {
    switch (task) {
        case task_kind::binary:
            return primary_form::roc_auc;
        case task_kind::multiclass:
            return primary_form::log_loss;
        case task_kind::regression:
            break;
    }
    return primary_form::rmse;
}

void metric_rows::add_score(std::uint32_t cluster, double score, bool positive) {
    cluster_.push_back(cluster);
    value_.push_back(score);
    positive_.push_back(positive ? 1 : 0);
    prepared_ = false;
}

void metric_rows::add_probability(std::uint32_t cluster, double true_class_probability) {
    // As metrics.cpp's log_loss clips.
    constexpr double eps = 1e-15;
    cluster_.push_back(cluster);
    value_.push_back(-std::log(std::clamp(true_class_probability, eps, 1 - eps)));
    prepared_ = false;
}

void metric_rows::add_regression(std::uint32_t cluster, double predicted, double truth) {
    cluster_.push_back(cluster);
    // Kept apart until prepare() knows the scale.
    value_.push_back(predicted);
    truths_.push_back(truth);
    prepared_ = false;
}

void metric_rows::prepare() {
    if (form_ == primary_form::roc_auc) {
        order_.resize(value_.size());
        std::iota(order_.begin(), order_.end(), 0U);
        std::sort(order_.begin(), order_.end(),
                  [&](std::uint32_t a, std::uint32_t b) { return value_[a] < value_[b]; });
    } else if (form_ == primary_form::rmse && !truths_.empty()) {
        // Squares of errors beyond about 1e154 overflow a double: every value
        // is divided by a power of two near the largest (exact), as
        // evaluate_regression does.
        double largest = 0;
        for (std::size_t i = 0; i < value_.size(); ++i)
            largest = std::max({largest, std::abs(value_[i]), std::abs(truths_[i])});
        scale_ =
            std::isfinite(largest) && largest > 0 ? std::exp2(std::ceil(std::log2(largest))) : 1;
        for (std::size_t i = 0; i < value_.size(); ++i)
            value_[i] = value_[i] / scale_ - truths_[i] / scale_;
        truths_.clear();
        truths_.shrink_to_fit();
    }
    prepared_ = true;
}

std::size_t metric_rows::distinct_clusters() const {
    std::vector<std::uint32_t> c = cluster_;
    std::sort(c.begin(), c.end());
    return static_cast<std::size_t>(std::unique(c.begin(), c.end()) - c.begin());
}

double metric_rows::evaluate(const std::vector<std::uint8_t>* cluster_weight) const {
    if (!prepared_) return nan;
    auto weight = [&](std::size_t row) -> double {
        return cluster_weight ? (*cluster_weight)[cluster_[row]] : 1.0;
    };
    if (form_ == primary_form::roc_auc) {
        // Mann-Whitney over tied blocks: a positive counts the negatives
        // below it, and half of those tied with it.
        double negatives_below = 0, positives = 0, pairs = 0;
        for (std::size_t i = 0; i < order_.size();) {
            std::size_t j = i;
            double wp = 0, wn = 0;
            while (j < order_.size() && value_[order_[j]] == value_[order_[i]]) {
                const double w = weight(order_[j]);
                (positive_[order_[j]] ? wp : wn) += w;
                ++j;
            }
            pairs += wp * (negatives_below + 0.5 * wn);
            negatives_below += wn;
            positives += wp;
            i = j;
        }
        if (positives == 0 || negatives_below == 0) return nan;
        return pairs / (positives * negatives_below);
    }
    double sum = 0, total = 0;
    for (std::size_t i = 0; i < value_.size(); ++i) {
        const double w = weight(i);
        total += w;
        sum += w * (form_ == primary_form::rmse ? value_[i] * value_[i] : value_[i]);
    }
    if (total == 0) return nan;
    if (form_ == primary_form::rmse) return std::sqrt(sum / total) * scale_;
    return sum / total;
}

std::uint8_t poisson_weight(std::uint64_t seed, std::uint32_t resample, std::uint32_t cluster) {
    const std::uint64_t h = mix(mix(seed ^ resample) ^ (static_cast<std::uint64_t>(cluster) << 1));
    const double u = static_cast<double>(h >> 11) * 0x1.0p-53;
    // Inverse of Poisson(1)'s distribution function: P(k) = e^-1 / k!.
    double p = std::exp(-1.0), cdf = p;
    unsigned k = 0;
    while (u >= cdf && k < 255) {
        ++k;
        p /= k;
        cdf += p;
        if (p < 1e-300) break;  // u within rounding of 1: nothing more to add
    }
    return static_cast<std::uint8_t>(k);
}

std::vector<bootstrap_interval> cluster_bootstrap(
    std::size_t clusters, const std::vector<bootstrap_statistic>& statistics,
    std::uint32_t resamples, double confidence, std::uint64_t seed) {
    std::vector<std::vector<double>> values(statistics.size());
    for (auto& v : values) v.reserve(resamples);
    std::vector<std::uint8_t> weight(clusters);
    for (std::uint32_t r = 0; r < resamples; ++r) {
        for (std::size_t c = 0; c < clusters; ++c)
            weight[c] = poisson_weight(seed, r, static_cast<std::uint32_t>(c));
        for (std::size_t s = 0; s < statistics.size(); ++s) {
            const double x = statistics[s](weight);
            if (std::isfinite(x)) values[s].push_back(x);
        }
    }
    std::vector<bootstrap_interval> out(statistics.size());
    const double tail = (1 - confidence) / 2;
    for (std::size_t s = 0; s < statistics.size(); ++s) {
        auto& v = values[s];
        out[s].valid = static_cast<std::uint32_t>(v.size());
        if (v.empty() || static_cast<double>(v.size()) < 0.9 * static_cast<double>(resamples)) {
            out[s].lower = out[s].upper = nan;
            continue;
        }
        std::sort(v.begin(), v.end());
        out[s].lower = percentile(v, tail);
        out[s].upper = percentile(v, 1 - tail);
    }
    return out;
}

}  // namespace kennel::ml

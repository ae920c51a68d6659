#include "ml/calibration.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "ml/numeric.h"

namespace kennel::ml {

const char* calibration_method_name(calibration_method m) {
    switch (m) {
        case calibration_method::none:
            return "none";
        case calibration_method::sigmoid:
            return "sigmoid";
        case calibration_method::isotonic:
            return "isotonic";
    }
    return "none";
}

result<calibration_method> parse_calibration_method(std::string_view name) {
    for (auto m :
         {calibration_method::none, calibration_method::sigmoid, calibration_method::isotonic}) {
        if (name == calibration_method_name(m)) return m;
    }
    return status(error_kind::invalid_argument,
                  "unknown calibration \"" + std::string(name.substr(0, 40)) +
                      "\": use \"sigmoid\", \"isotonic\" or \"none\"",
                  "calibration");
}

namespace {

// The score's logit, clipped as log loss clips probabilities.
double score_logit(double score) {
    const double p = std::clamp(score, 1e-15, 1 - 1e-15);
    return std::log(p) - std::log1p(-p);
}

// What a sigmoid of this input is fitted on and applied to.
double sigmoid_feature(sigmoid_input input, double score) {
    return input == sigmoid_input::logit ? score_logit(score) : score;
}

// Platt's sigmoid by Newton's method with a backtracking line search (Lin,
// Lin and Weng's note on Platt's probabilistic outputs): the loss is convex
// in (a, b), so this finds the optimum scikit-learn's BFGS finds.
calibrator fit_sigmoid(const std::vector<bool>& positive, const std::vector<double>& score,
                       sigmoid_input input) {
    const std::size_t n = score.size();
    std::vector<double> f(n), t(n);
    double prior1 = 0;
    for (bool p : positive) prior1 += p ? 1 : 0;
    const double prior0 = static_cast<double>(n) - prior1;
    // Platt's targets: a little short of 0 and 1, so that separable scores
    // do not drive the slope to infinity.
    const double hi = (prior1 + 1) / (prior1 + 2), lo = 1 / (prior0 + 2);
    for (std::size_t i = 0; i < n; ++i) {
        f[i] = sigmoid_feature(input, score[i]);
        t[i] = positive[i] ? hi : lo;
    }
    // loss = sum log(1 + e^z) - (1 - t) z, z = a f + b (P = 1 / (1 + e^z)).
    auto loss = [&](double a, double b) {
        double sum = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const double z = a * f[i] + b;
            sum += softplus(z) - (1 - t[i]) * z;
        }
        return sum;
    };
    double a = 0, b = std::log((prior0 + 1) / (prior1 + 1));
    // One score for every row says nothing of a slope: a stays 0 and b
    // alone is fitted (the targets' log odds), where a and b together were
    // any pair through that one point.
    const bool one_score = std::all_of(f.begin(), f.end(), [&](double v) { return v == f[0]; });
    if (one_score) {
        double mean_t = 0;
        for (double v : t) mean_t += v;
        mean_t /= static_cast<double>(n);
        b = std::log((1 - mean_t) / mean_t);
    }
    double current = loss(a, b);
    for (int iteration = 0; !one_score && iteration < 100; ++iteration) {
        double ga = 0, gb = 0, haa = 1e-12, hab = 0, hbb = 1e-12;
        for (std::size_t i = 0; i < n; ++i) {
            const double z = a * f[i] + b;
            const double p = 1 / (1 + std::exp(z));  // P of class 1
            const double d = t[i] - p;               // d loss / d z
            const double w = p * (1 - p);
            ga += d * f[i];
            gb += d;
            haa += w * f[i] * f[i];
            hab += w * f[i];
            hbb += w;
        }
        if (std::abs(ga) < 1e-8 * static_cast<double>(n) &&
            std::abs(gb) < 1e-8 * static_cast<double>(n))
            break;
        const double det = haa * hbb - hab * hab;
        if (!(det > 0)) break;
        const double da = -(hbb * ga - hab * gb) / det, db = -(-hab * ga + haa * gb) / det;
        const double slope = ga * da + gb * db;  // negative: a descent direction
        double step = 1;
        bool moved = false;
        while (step >= 1e-10) {
            const double next = loss(a + step * da, b + step * db);
            if (next <= current + 1e-4 * step * slope) {
                a += step * da;
                b += step * db;
                moved = current - next > 1e-14 * std::max(1.0, std::abs(current));
                current = next;
                break;
            }
            step /= 2;
        }
        if (!moved) break;
    }
    calibrator c;
    c.method = calibration_method::sigmoid;
    c.input = input;
    c.a = a;
    c.b = b;
    return c;
}

calibrator fit_isotonic(const std::vector<bool>& positive, const std::vector<double>& score) {
    std::vector<std::size_t> order(score.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t i, std::size_t j) { return score[i] < score[j]; });
    // Blocks of the pooled fit: each spans the distinct scores first..last,
    // with its weight (rows) and mean truth. Equal scores start as one block.
    struct block {
        double first, last, weight, mean;
    };
    std::vector<block> blocks;
    for (std::size_t k = 0; k < order.size();) {
        const double x = score[order[k]];
        double rows = 0, hits = 0;
        for (; k < order.size() && score[order[k]] == x; ++k) {
            rows += 1;
            hits += positive[order[k]] ? 1 : 0;
        }
        block cur{x, x, rows, hits / rows};
        // Pool with the blocks before while they are not below it.
        while (!blocks.empty() && blocks.back().mean >= cur.mean) {
            const block& prev = blocks.back();
            const double w = prev.weight + cur.weight;
            cur = {prev.first, cur.last, w, (prev.mean * prev.weight + cur.mean * cur.weight) / w};
            blocks.pop_back();
        }
        blocks.push_back(cur);
    }
    calibrator c;
    c.method = calibration_method::isotonic;
    for (const block& bl : blocks) {
        c.xs.push_back(bl.first);
        c.ys.push_back(bl.mean);
        if (bl.last != bl.first) {
            c.xs.push_back(bl.last);
            c.ys.push_back(bl.mean);
        }
    }
    return c;
}

}  // namespace

result<calibrator> fit_calibrator(calibration_method method, const std::vector<bool>& positive,
                                  const std::vector<double>& score, sigmoid_input input) {
    if (positive.size() != score.size())
        return status(error_kind::invalid_argument, "one score per row is required", "score");
    std::size_t positives = 0;
    for (std::size_t i = 0; i < score.size(); ++i) {
        if (!std::isfinite(score[i]))
            return status(error_kind::invalid_argument,
                          "score " + std::to_string(i) + " is not a finite number", "score");
        positives += positive[i] ? 1 : 0;
    }
    if (positives == 0 || positives == score.size())
        return status(error_kind::invalid_argument,
                      "calibration needs rows of both classes: " + std::to_string(positives) +
                          " of " + std::to_string(score.size()) + " rows are positive",
                      "score");
    switch (method) {
        case calibration_method::sigmoid:
            return fit_sigmoid(positive, score, input);
        case calibration_method::isotonic:
            return fit_isotonic(positive, score);
        case calibration_method::none:
            break;
    }
    return calibrator{};
}

double calibrator::operator()(double score) const {
    switch (method) {
        case calibration_method::none:
            return score;
        case calibration_method::sigmoid:
            return 1 / (1 + std::exp(a * sigmoid_feature(input, score) + b));
        case calibration_method::isotonic: {
            if (xs.empty() || std::isnan(score)) return score;
            if (score <= xs.front()) return ys.front();
            if (score >= xs.back()) return ys.back();
            // First point above the score: the score is in [xs[k-1], xs[k]).
            const auto k = static_cast<std::size_t>(std::upper_bound(xs.begin(), xs.end(), score) -
                                                    xs.begin());
            const double x0 = xs[k - 1], x1 = xs[k], y0 = ys[k - 1], y1 = ys[k];
            return y0 + (y1 - y0) * (score - x0) / (x1 - x0);
        }
    }
    return score;
}

}  // namespace kennel::ml

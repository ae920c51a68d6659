#include "ml/trainers.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>
#include <map>
#include <new>
#include <numeric>
#include <set>
#include <type_traits>

#include <dlib/global_optimization.h>
#include <dlib/optimization.h>

#include "ml/fitted.h"
#include "ml/metrics.h"
#include "ml/numeric.h"

namespace kennel::ml {

using namespace detail;

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();

// Thrown from deep inside a training run (an optimiser callback, a forest
// batch loop) and caught in train()/auto_search(), which return the status.
struct cancelled_error {};

bool is_cancelled(const train_control& c) {
    return c.cancelled && c.cancelled();
}

void check_cancelled(const train_control& c) {
    if (is_cancelled(c)) throw cancelled_error{};
}

void report(const train_control& c, double fraction, const std::string& message) {
    if (c.progress) c.progress(std::clamp(fraction, 0.0, 1.0), message);
}

status cancelled_status() {
    return status(error_kind::conflict, "cancelled");
}

std::string fmt(double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", x);
    return buf;
}

std::size_t num_outputs(task_kind task, std::size_t num_classes) {
    return task == task_kind::multiclass ? num_classes : 1;
}

dlib::matrix<double> to_matrix(const feature_rows& x) {
    dlib::matrix<double> m(static_cast<long>(x.size()), static_cast<long>(x[0].size()));
    for (std::size_t i = 0; i < x.size(); ++i) {
        for (std::size_t j = 0; j < x[i].size(); ++j) {
            m(static_cast<long>(i), static_cast<long>(j)) = x[i][j];
        }
    }
    return m;
}

std::vector<sample_type> to_samples(const feature_rows& x, const std::vector<std::size_t>& rows) {
    std::vector<sample_type> out;
    out.reserve(rows.size());
    for (auto r : rows) out.push_back(to_sample(x[r]));
    return out;
}

std::vector<std::size_t> all_rows(std::size_t n) {
    std::vector<std::size_t> rows(n);
    std::iota(rows.begin(), rows.end(), 0);
    return rows;
}

// A deterministic pseudo-random permutation: dlib::rand is specified by Dlib
// (unlike std::shuffle), so the same data gives the same order everywhere.
std::vector<std::size_t> shuffled_rows(std::size_t n, const std::string& seed) {
    auto rows = all_rows(n);
    dlib::rand rnd(seed);
    for (std::size_t i = n; i > 1; --i) {
        std::swap(rows[i - 1], rows[rnd.get_integer(i)]);
    }
    return rows;
}

status check_inputs(task_kind task, const feature_rows& x, const std::vector<double>& y,
                    std::size_t num_classes) {
    if (x.empty()) return status(error_kind::failed_precondition, "no training rows");
    if (x.size() != y.size()) return invalid("y", "one label per row is required");
    const std::size_t d = x[0].size();
    if (d == 0) return invalid("x", "rows have no features");
    for (std::size_t i = 0; i < x.size(); ++i) {
        if (x[i].size() != d)
            return invalid("x", "row " + std::to_string(i) + " has a different length");
        for (double v : x[i]) {
            if (!std::isfinite(v))
                return invalid("x", "row " + std::to_string(i) + " is not finite");
        }
        if (!std::isfinite(y[i]))
            return invalid("y", "label " + std::to_string(i) + " is not finite");
    }
    if (task == task_kind::regression) return status::ok();
    if (task == task_kind::binary && num_classes != 2)
        return invalid("num_classes", "a binary task has 2 classes");
    if (num_classes < 2 || num_classes > 100000)
        return invalid("num_classes", "the class count must be in 2..100000");
    std::vector<std::size_t> counts(num_classes, 0);
    for (std::size_t i = 0; i < y.size(); ++i) {
        if (y[i] < 0 || y[i] >= static_cast<double>(num_classes) || y[i] != std::floor(y[i]))
            return invalid("y", "label " + std::to_string(i) + " is not a class index");
        ++counts[static_cast<std::size_t>(y[i])];
    }
    if (std::count_if(counts.begin(), counts.end(), [](std::size_t c) { return c > 0; }) < 2)
        return status(error_kind::failed_precondition, "the training rows contain only one class",
                      "label");
    return status::ok();
}

// ---------------------------------------------------------------- baseline

function_ptr train_baseline(task_kind task, const feature_rows& x, const std::vector<double>& y,
                            std::size_t num_classes) {
    const std::size_t d = x[0].size();
    if (task == task_kind::regression) {
        const double mean =
            std::accumulate(y.begin(), y.end(), 0.0) / static_cast<double>(y.size());
        return std::make_shared<baseline_function>(task, d, mean, std::vector<double>{});
    }
    std::vector<double> prior(num_classes, 0.0);
    for (double v : y) prior[static_cast<std::size_t>(v)] += 1;
    for (auto& p : prior) p /= static_cast<double>(y.size());
    const double majority =
        static_cast<double>(std::max_element(prior.begin(), prior.end()) - prior.begin());
    return std::make_shared<baseline_function>(task, d, majority, std::move(prior));
}

// ---------------------------------------------------------------- linear

// L-BFGS stop rule: converged when the largest gradient entry, relative to the
// data term's scale, is tiny or the objective stops moving; also the place
// where cancellation is noticed between iterations.
class lbfgs_stop {
  public:
    lbfgs_stop(const train_control& control, std::size_t max_iterations, double gradient_scale,
               std::size_t* iterations)
        : control_(&control),
          max_iterations_(max_iterations),
          gradient_scale_(gradient_scale),
          iterations_(iterations) {}

    template <class T>
    bool should_continue_search(const T&, double value, const T& gradient) {
        if (is_cancelled(*control_)) throw cancelled_error{};
        if (++*iterations_ > max_iterations_) return false;
        if (dlib::max(dlib::abs(gradient)) < 1e-7 * gradient_scale_) return false;
        if (has_previous_ && std::abs(previous_ - value) <= 1e-13 * std::max(1.0, std::abs(value)))
            return false;
        has_previous_ = true;
        previous_ = value;
        return true;
    }

  private:
    const train_control* control_;
    std::size_t max_iterations_;
    double gradient_scale_;
    std::size_t* iterations_;
    bool has_previous_ = false;
    double previous_ = 0;
};

// Minimises 0.5*||W||^2 + c * sum_i(-log p(y_i | x_i)) over W (K x d) and an
// unpenalised bias b (K): binary logistic regression when K == 1 (p = sigmoid)
// and multinomial (softmax) regression when K > 1 — scikit-learn's
// LogisticRegression(C=c) objective. The objective and gradient are computed
// together and cached because Dlib asks for them separately at the same point.
function_ptr train_logistic(task_kind task, const feature_rows& x, const std::vector<double>& y,
                            std::size_t num_classes, const train_params& params,
                            const train_control& control) {
    const long n = static_cast<long>(x.size());
    const long d = static_cast<long>(x[0].size());
    const long k = static_cast<long>(num_outputs(task, num_classes));
    const dlib::matrix<double> X = to_matrix(x);
    const double c = params.c;

    struct cache_t {
        sample_type at;
        double value = 0;
        sample_type gradient;
    } cache;

    auto evaluate = [&](const sample_type& theta) {
        if (cache.at.size() == theta.size() && cache.at == theta) return;
        dlib::matrix<double> W(k, d);
        sample_type b(k);
        for (long r = 0; r < k; ++r) {
            for (long j = 0; j < d; ++j) W(r, j) = theta(r * d + j);
            b(r) = theta(k * d + r);
        }
        dlib::matrix<double> Z = X * dlib::trans(W);  // n x k
        dlib::matrix<double> G(n, k);                 // d loss / d z
        double loss = 0;
        for (long i = 0; i < n; ++i) {
            const long yi = static_cast<long>(y[static_cast<std::size_t>(i)]);
            if (k == 1) {
                const double z = Z(i, 0) + b(0);
                loss += softplus(z) - (yi == 1 ? z : 0.0);
                G(i, 0) = (z >= 0 ? 1 / (1 + std::exp(-z)) : std::exp(z) / (1 + std::exp(z))) -
                          (yi == 1 ? 1.0 : 0.0);
            } else {
                double m = -inf;
                for (long r = 0; r < k; ++r) m = std::max(m, Z(i, r) + b(r));
                double sum = 0;
                for (long r = 0; r < k; ++r) sum += std::exp(Z(i, r) + b(r) - m);
                const double lse = m + std::log(sum);
                loss += lse - (Z(i, yi) + b(yi));
                for (long r = 0; r < k; ++r)
                    G(i, r) = std::exp(Z(i, r) + b(r) - lse) - (r == yi ? 1.0 : 0.0);
            }
        }
        const dlib::matrix<double> gW = W + c * (dlib::trans(G) * X);  // k x d
        cache.at = theta;
        cache.value = 0.5 * dlib::sum(dlib::squared(W)) + c * loss;
        cache.gradient.set_size(k * (d + 1));
        for (long r = 0; r < k; ++r) {
            for (long j = 0; j < d; ++j) cache.gradient(r * d + j) = gW(r, j);
            cache.gradient(k * d + r) = c * dlib::sum(dlib::colm(G, r));
        }
    };
    auto objective = [&](const sample_type& theta) {
        evaluate(theta);
        return cache.value;
    };
    auto derivative = [&](const sample_type& theta) {
        evaluate(theta);
        return cache.gradient;
    };

    report(control, 0.1,
           std::string("linear: fitting ") + (k == 1 ? "logistic" : "softmax") +
               " regression with L-BFGS (c=" + fmt(c) + ", " + std::to_string(n) + " rows, " +
               std::to_string(d) + " features)");
    sample_type theta = dlib::zeros_matrix<double>(k * (d + 1), 1);
    std::size_t iterations = 0;
    dlib::find_min(
        dlib::lbfgs_search_strategy(10),
        lbfgs_stop(control, params.max_iterations, 1 + c * static_cast<double>(n), &iterations),
        objective, derivative, theta, -inf);
    report(control, 0.9,
           "linear: stopped after " + std::to_string(iterations) + " iterations, objective " +
               fmt(objective(theta)));

    dlib::matrix<double> W(k, d);
    sample_type b(k);
    for (long r = 0; r < k; ++r) {
        for (long j = 0; j < d; ++j) W(r, j) = theta(r * d + j);
        b(r) = theta(k * d + r);
    }
    return std::make_shared<linear_function>(task, static_cast<std::size_t>(d), num_classes,
                                             std::move(W), std::move(b));
}

// Ridge regression by the normal equations on centred data, so the intercept
// is not penalised: (Xc'Xc + lambda*I) w = Xc'(y - mean(y)), b = mean(y) -
// mean(x)'w — exactly scikit-learn's Ridge(alpha=lambda).
function_ptr train_ridge(const feature_rows& x, const std::vector<double>& y,
                         const train_params& params, const train_control& control) {
    const long n = static_cast<long>(x.size());
    const long d = static_cast<long>(x[0].size());
    report(control, 0.1,
           "linear: ridge regression (lambda=" + fmt(params.lambda) + ", " + std::to_string(n) +
               " rows, " + std::to_string(d) + " features)");
    dlib::matrix<double> X = to_matrix(x);
    sample_type yv(n);
    for (long i = 0; i < n; ++i) yv(i) = y[static_cast<std::size_t>(i)];
    const dlib::matrix<double, 1, 0> mx = dlib::sum_rows(X) / static_cast<double>(n);
    const double my = dlib::sum(yv) / static_cast<double>(n);
    for (long i = 0; i < n; ++i) dlib::set_rowm(X, i) = dlib::rowm(X, i) - mx;
    const dlib::matrix<double> A =
        dlib::trans(X) * X + params.lambda * dlib::identity_matrix<double>(d);
    const sample_type rhs = dlib::trans(X) * (yv - my);
    sample_type w;
    if (params.lambda > 0) {
        dlib::cholesky_decomposition<dlib::matrix<double>> chol(A);
        w = chol.solve(rhs);
    } else {
        w = dlib::pinv(A) * rhs;  // least squares: the minimum-norm solution
    }
    sample_type b(1);
    b(0) = my - dlib::dot(dlib::trans(mx), w);
    return std::make_shared<linear_function>(task_kind::regression, static_cast<std::size_t>(d), 0,
                                             dlib::trans(w), std::move(b));
}

// ---------------------------------------------------------------- kernel

// scikit-learn's gamma="scale": 1 / (num_features * variance of all values).
double scale_gamma(const feature_rows& x) {
    double sum = 0, sq = 0, count = 0;
    for (const auto& row : x) {
        for (double v : row) {
            sum += v;
            sq += v * v;
            count += 1;
        }
    }
    const double mean = sum / count, var = sq / count - mean * mean;
    const double d = static_cast<double>(x[0].size());
    return var > 1e-12 ? 1 / (d * var) : 1 / d;
}

// Dlib's train_probabilistic_decision_function, written out so that
// cancellation is checked between the folds: out-of-fold SVM scores (folds
// stratified by class) fit Platt's sigmoid, then one SVM on all rows.
dlib::probabilistic_decision_function<rbf_kernel> platt_scaled_svm(
    const dlib::svm_c_trainer<rbf_kernel>& trainer, const std::vector<sample_type>& samples,
    const std::vector<double>& labels, long folds, const train_control& control) {
    std::vector<long> fold(labels.size());
    long positives = 0, negatives = 0;
    for (std::size_t i = 0; i < labels.size(); ++i) {
        fold[i] = labels[i] > 0 ? positives++ % folds : negatives++ % folds;
    }
    std::vector<double> scores, score_labels;
    for (long f = 0; f < folds; ++f) {
        check_cancelled(control);
        std::vector<sample_type> train_x;
        std::vector<double> train_y;
        for (std::size_t i = 0; i < labels.size(); ++i) {
            if (fold[i] != f) {
                train_x.push_back(samples[i]);
                train_y.push_back(labels[i]);
            }
        }
        const auto df = trainer.train(train_x, train_y);
        for (std::size_t i = 0; i < labels.size(); ++i) {
            if (fold[i] == f) {
                scores.push_back(df(samples[i]));
                score_labels.push_back(labels[i]);
            }
        }
    }
    const auto [a, b] = dlib::learn_platt_scaling(scores, score_labels);
    check_cancelled(control);
    return dlib::probabilistic_decision_function<rbf_kernel>(a, b, trainer.train(samples, labels));
}

result<function_ptr> train_kernel(task_kind task, const feature_rows& x,
                                  const std::vector<double>& y, std::size_t num_classes,
                                  const train_params& params, const train_control& control) {
    const double gamma = params.gamma > 0 ? params.gamma : scale_gamma(x);
    std::vector<std::size_t> rows = all_rows(x.size());
    if (rows.size() > params.max_kernel_rows) {
        const std::vector<std::size_t> order = shuffled_rows(x.size(), "kennel-kernel-rows");
        rows.clear();
        if (task != task_kind::regression) {
            // Stratified at the small end: every class keeps up to ten rows
            // (a uniform sample of 3,000 from 80,000 rows lost all 8 of a
            // rare class, and its calibration then failed for want of
            // them); the rest of the sample is uniform as before.
            std::map<double, std::size_t> taken;
            for (double label : y) taken[label] = 0;
            const std::size_t per_class = std::max<std::size_t>(
                1, std::min<std::size_t>(10, params.max_kernel_rows / taken.size()));
            std::vector<bool> in(x.size(), false);
            for (std::size_t r : order) {
                if (taken[y[r]] < per_class) {
                    ++taken[y[r]];
                    in[r] = true;
                    rows.push_back(r);
                }
            }
            for (std::size_t r : order) {
                if (rows.size() >= params.max_kernel_rows) break;
                if (!in[r]) rows.push_back(r);
            }
        } else {
            rows.assign(order.begin(),
                        order.begin() + static_cast<std::ptrdiff_t>(params.max_kernel_rows));
        }
        std::sort(rows.begin(), rows.end());
        report(control, 0.05,
               "kernel: training on " + std::to_string(rows.size()) + " of " +
                   std::to_string(x.size()) + " rows (max_kernel_rows; kernel methods are O(n^2))");
    }
    const std::vector<sample_type> samples = to_samples(x, rows);
    const rbf_kernel kernel(gamma);
    const std::size_t d = x[0].size();

    if (task == task_kind::regression) {
        report(control, 0.1,
               "kernel: kernel ridge regression (lambda=1/c=" + fmt(1 / params.c) +
                   ", gamma=" + fmt(gamma) + ", " + std::to_string(rows.size()) + " rows)");
        std::vector<double> targets;
        for (auto r : rows) targets.push_back(y[r]);
        dlib::krr_trainer<rbf_kernel> trainer;
        trainer.set_kernel(kernel);
        trainer.set_lambda(1 / params.c);
        return function_ptr(
            std::make_shared<kernel_function>(task, d, trainer.train(samples, targets)));
    }

    // Binary: one SVM; multiclass: one per class against the rest. Each is
    // Platt-scaled with 3-fold cross-validation, which needs every class on
    // both sides of each fold.
    constexpr long platt_folds = 3;
    const std::size_t outputs = num_outputs(task, num_classes);
    std::vector<dlib::probabilistic_decision_function<rbf_kernel>> classifiers;
    for (std::size_t k = 0; k < outputs; ++k) {
        check_cancelled(control);
        const double positive_class = task == task_kind::binary ? 1.0 : static_cast<double>(k);
        std::vector<double> labels;
        std::size_t positives = 0;
        for (auto r : rows) {
            const bool pos = y[r] == positive_class;
            positives += pos ? 1 : 0;
            labels.push_back(pos ? 1.0 : -1.0);
        }
        if (positives < platt_folds || rows.size() - positives < platt_folds) {
            return status(error_kind::failed_precondition,
                          "kernel: class " + std::to_string(static_cast<long>(positive_class)) +
                              " needs at least " + std::to_string(platt_folds) +
                              " rows on each side for probability calibration",
                          "label");
        }
        report(control, 0.1 + 0.8 * static_cast<double>(k) / static_cast<double>(outputs),
               "kernel: RBF SVM" +
                   (outputs > 1 ? " for class " + std::to_string(k) + " vs rest" : std::string()) +
                   " (c=" + fmt(params.c) + ", gamma=" + fmt(gamma) + ", " +
                   std::to_string(rows.size()) + " rows) with Platt scaling");
        dlib::svm_c_trainer<rbf_kernel> trainer;
        trainer.set_kernel(kernel);
        trainer.set_c(params.c);
        classifiers.push_back(platt_scaled_svm(trainer, samples, labels, platt_folds, control));
    }
    return function_ptr(
        std::make_shared<kernel_function>(task, d, num_classes, std::move(classifiers)));
}

// ---------------------------------------------------------------- forest

// Dlib's forest trainer spreads its trees over all cores; to honour
// params.threads we grow the trees in batches of `threads` trees (one call,
// hence at most that many busy threads) and join the batches into one forest.
// The result is deterministic for a given (data, params) including threads.
forest_type grow_forest(const std::vector<sample_type>& samples, const std::vector<double>& targets,
                        const train_params& params, const std::string& seed,
                        const train_control& control, double from, double to,
                        const std::string& what) {
    dlib::random_forest_regression_trainer<dlib::dense_feature_extractor> trainer;
    trainer.set_min_samples_per_leaf(params.min_samples_per_leaf);
    trainer.set_feature_subsampling_fraction(params.feature_subsampling);
    std::vector<std::vector<dlib::internal_tree_node<dlib::dense_feature_extractor>>> trees;
    std::vector<std::vector<float>> leaves;
    dlib::dense_feature_extractor extractor;
    const std::size_t batch = std::max<std::size_t>(1, params.threads);
    std::size_t batch_index = 0;
    for (std::size_t done = 0; done < params.num_trees; done += batch, ++batch_index) {
        check_cancelled(control);
        const std::size_t count = std::min(batch, params.num_trees - done);
        trainer.set_num_trees(count);
        trainer.set_seed(seed + "-" + std::to_string(batch_index) + "-");
        const forest_type part = trainer.train(samples, targets);
        trees.insert(trees.end(), part.get_internal_tree_nodes().begin(),
                     part.get_internal_tree_nodes().end());
        leaves.insert(leaves.end(), part.get_tree_leaves().begin(), part.get_tree_leaves().end());
        if (done == 0) extractor = part.get_feature_extractor();
        if (batch_index % 10 == 0) {
            report(control,
                   from + (to - from) * static_cast<double>(done + count) /
                              static_cast<double>(params.num_trees),
                   "forest: " + what + " " + std::to_string(done + count) + " of " +
                       std::to_string(params.num_trees) + " trees");
        }
    }
    return forest_type(std::move(extractor), std::move(trees), std::move(leaves));
}

function_ptr train_forest(task_kind task, const feature_rows& x, const std::vector<double>& y,
                          std::size_t num_classes, const train_params& params,
                          const train_control& control) {
    const auto samples = to_samples(x, all_rows(x.size()));
    const std::size_t outputs = num_outputs(task, num_classes);
    report(control, 0.05,
           "forest: " + std::to_string(params.num_trees) + " trees per output, " +
               std::to_string(outputs) +
               " output(s), min_samples_per_leaf=" + std::to_string(params.min_samples_per_leaf) +
               ", threads=" + std::to_string(params.threads));
    std::vector<forest_type> forests;
    for (std::size_t k = 0; k < outputs; ++k) {
        std::vector<double> targets(y.size());
        for (std::size_t i = 0; i < y.size(); ++i) {
            // Multiclass: the indicator of class k; binary: the 0/1 label.
            targets[i] =
                task == task_kind::multiclass ? (y[i] == static_cast<double>(k) ? 1.0 : 0.0) : y[i];
        }
        const double from = 0.05 + 0.9 * static_cast<double>(k) / static_cast<double>(outputs);
        const double to = 0.05 + 0.9 * static_cast<double>(k + 1) / static_cast<double>(outputs);
        forests.push_back(grow_forest(samples, targets, params,
                                      "kennel-forest-" + std::to_string(k), control, from, to,
                                      outputs > 1 ? "class " + std::to_string(k) + ":" : "grown"));
    }
    return std::make_shared<forest_function>(task, x[0].size(), num_classes, std::move(forests));
}

result<function_ptr> train_checked(task_kind task, algorithm algo, const train_params& params,
                                   const feature_rows& x, const std::vector<double>& y,
                                   std::size_t num_classes, const train_control& control) {
    check_cancelled(control);
    switch (algo) {
        case algorithm::baseline:
            return train_baseline(task, x, y, num_classes);
        case algorithm::linear:
            if (task == task_kind::regression) return train_ridge(x, y, params, control);
            return train_logistic(task, x, y, num_classes, params, control);
        case algorithm::kernel:
            return train_kernel(task, x, y, num_classes, params, control);
        case algorithm::forest:
            // Dlib's trees keep their leaves as floats: a label past their
            // range became an infinite leaf, and the job failed as "prediction
            // is not finite" without the reason.
            for (std::size_t i = 0; i < y.size(); ++i) {
                if (std::abs(y[i]) > std::numeric_limits<float>::max()) {
                    return invalid("y", "label " + std::to_string(i) + " is " +
                                            format_number(y[i]) +
                                            ": a forest keeps its leaf values as 32-bit floats, "
                                            "which hold at most about 3.4e38; scale the label, or "
                                            "train another algorithm");
                }
            }
            return train_forest(task, x, y, num_classes, params, control);
    }
    return invalid("algorithm", "unknown algorithm");
}

}  // namespace

const char* algorithm_name(algorithm a) {
    switch (a) {
        case algorithm::baseline:
            return "baseline";
        case algorithm::linear:
            return "linear";
        case algorithm::kernel:
            return "kernel";
        case algorithm::forest:
            return "forest";
    }
    return "unknown";
}

result<algorithm> parse_algorithm(std::string_view name) {
    for (auto a : {algorithm::baseline, algorithm::linear, algorithm::kernel, algorithm::forest}) {
        if (name == algorithm_name(a)) return a;
    }
    return invalid("algorithm", "unknown algorithm '" + std::string(name) +
                                    "' (expected baseline, linear, kernel, forest or auto)");
}

status validate_params(const train_params& p) {
    if (!(p.c > 0) || !std::isfinite(p.c) || p.c > 1e12)
        return invalid("params.c", "c must be a positive number up to 1e12");
    if (!(p.lambda >= 0) || !std::isfinite(p.lambda) || p.lambda > 1e12)
        return invalid("params.lambda", "lambda must be a number in 0..1e12");
    if (!std::isfinite(p.gamma) || p.gamma > 1e6)
        return invalid("params.gamma", "gamma must be finite (<= 0 means automatic)");
    if (p.num_trees < 1 || p.num_trees > 10000)
        return invalid("params.num_trees", "num_trees must be in 1..10000");
    if (p.min_samples_per_leaf < 1 || p.min_samples_per_leaf > 1000000)
        return invalid("params.min_samples_per_leaf", "min_samples_per_leaf must be at least 1");
    if (!(p.feature_subsampling > 0) || p.feature_subsampling > 1)
        return invalid("params.feature_subsampling", "feature_subsampling must be in (0, 1]");
    if (p.max_kernel_rows < 10 || p.max_kernel_rows > 100000)
        return invalid("params.max_kernel_rows", "max_kernel_rows must be in 10..100000");
    if (p.max_iterations < 1 || p.max_iterations > 1000000)
        return invalid("params.max_iterations", "max_iterations must be in 1..1000000");
    if (p.threads < 1 || p.threads > 256)
        return invalid("params.threads", "threads must be in 1..256");
    return status::ok();
}

result<function_ptr> train(task_kind task, algorithm algo, const train_params& params,
                           const feature_rows& x, const std::vector<double>& y,
                           std::size_t num_classes, const train_control& control) {
    if (auto st = validate_params(params); !st) return st;
    if (auto st = check_inputs(task, x, y, num_classes); !st) return st;
    if (task == task_kind::regression) num_classes = 0;
    try {
        auto f = train_checked(task, algo, params, x, y, num_classes, control);
        if (f) report(control, 1.0, std::string(algorithm_name(algo)) + ": done");
        return f;
    } catch (const cancelled_error&) {
        return cancelled_status();
    } catch (const std::bad_alloc&) {
        // The training run's memory limit: its process names it (wrapped
        // here, it read "forest training failed: std::bad_alloc").
        throw;
    } catch (const std::exception& e) {  // dlib::error derives from std::exception
        return status(error_kind::internal,
                      std::string(algorithm_name(algo)) + " training failed: " + e.what());
    }
}

// ---------------------------------------------------------------- auto search

namespace {

// Fold of each row: a seeded shuffle, then rows dealt round-robin — by class
// first for classification (stratified), so every fold sees every class
// that has at least `folds` rows.
std::vector<int> make_folds(task_kind task, const std::vector<double>& y, int folds) {
    auto order = shuffled_rows(y.size(), "kennel-cv-folds");
    if (task != task_kind::regression) {
        std::stable_sort(order.begin(), order.end(),
                         [&](std::size_t a, std::size_t b) { return y[a] < y[b]; });
    }
    std::vector<int> fold(y.size());
    for (std::size_t i = 0; i < order.size(); ++i) fold[order[i]] = static_cast<int>(i % folds);
    return fold;
}

// Forward folds: the rows in time order, dealt into folds + 1 runs; round
// r trains on the runs before run r + 1 and is scored on it, so that no
// candidate is scored on rows older than some it learned from. Rows at one
// time come in a seeded shuffle (they arrive in entity order). None when
// the rows are too few, or (classification) the earliest run holds fewer
// than min_class_rows of a class the rows hold: the first round could
// not predict it, or calibrate a kernel on it; `why` then says which.
std::optional<std::vector<int>> make_forward_folds(task_kind task, const std::vector<double>& y,
                                                   const std::vector<std::int64_t>& times,
                                                   int folds, std::string& why) {
    constexpr std::size_t min_class_rows = 3;
    const std::size_t n = y.size();
    const auto runs = static_cast<std::size_t>(folds) + 1;
    if (n < 2 * runs) {
        why = std::to_string(n) + " rows are too few for " + std::to_string(runs) + " runs";
        return std::nullopt;
    }
    auto order = shuffled_rows(n, "kennel-cv-forward");
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return times[a] < times[b]; });
    std::vector<int> fold(n);
    for (std::size_t p = 0; p < n; ++p) fold[order[p]] = static_cast<int>(p * runs / n);
    if (task != task_kind::regression) {
        std::map<double, std::size_t> early;
        std::size_t first_run = 0;
        for (std::size_t i = 0; i < n; ++i) {
            early.emplace(y[i], 0);
            if (fold[i] != 0) continue;
            ++early[y[i]];
            ++first_run;
        }
        std::size_t short_classes = 0;
        for (const auto& [cls, count] : early) short_classes += count < min_class_rows ? 1 : 0;
        if (short_classes > 0) {
            why = "the earliest " + std::to_string(first_run) + " rows hold fewer than " +
                  std::to_string(min_class_rows) + " rows of " + std::to_string(short_classes) +
                  " of the " + std::to_string(early.size()) + " classes";
            return std::nullopt;
        }
    }
    return fold;
}

struct cv_context {
    task_kind task;
    const feature_rows& x;
    const std::vector<double>& y;
    std::size_t num_classes;
    std::vector<int> fold;
    int folds;
    bool forward;  // fold ids from make_forward_folds
    const train_control& control;
    std::string score_name;
    std::chrono::steady_clock::time_point start;
    double budget_seconds;
    std::vector<search_candidate>* tried;
    std::map<std::string, double> seen;  // describe() -> score
    std::set<algorithm> too_slow;        // not tried: one fold would pass the budget

    double elapsed() const {
        if (control.seconds) return control.seconds();
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
};

std::string describe(task_kind task, algorithm algo, const train_params& p) {
    switch (algo) {
        case algorithm::baseline:
            return "baseline";
        case algorithm::linear:
            return task == task_kind::regression ? "linear lambda=" + fmt(p.lambda)
                                                 : "linear c=" + fmt(p.c);
        case algorithm::kernel:
            return "kernel c=" + fmt(p.c) + " gamma=" + fmt(p.gamma);
        case algorithm::forest:
            return "forest trees=" + std::to_string(p.num_trees) +
                   " min_samples_per_leaf=" + std::to_string(p.min_samples_per_leaf);
    }
    return "?";
}

// Thrown when the time budget ran out in the middle of a candidate; the
// search keeps what it has and stops.
struct budget_exhausted {};

// Out-of-fold score of one candidate: higher is better, -inf if it failed.
// A point already evaluated (the optimiser may propose the seed again) is
// answered from memory.
double cv_score(cv_context& cv, algorithm algo, const train_params& params) {
    const std::string key = describe(cv.task, algo, params);
    if (auto it = cv.seen.find(key); it != cv.seen.end()) return it->second;
    if (cv.too_slow.count(algo)) return -inf;
    const std::size_t n = cv.y.size();
    std::vector<double> truth, predicted;
    std::vector<std::vector<double>> probabilities;
    std::string failure;
    // Progress inside a fold would drown the candidate lines; keep only
    // cancellation.
    train_control quiet{cv.control.cancelled, {}, {}};
    for (int round = 0; round < cv.folds && failure.empty(); ++round) {
        const int f = cv.forward ? round + 1 : round;
        // The baseline always runs; anything else stops once the budget is
        // spent, so the search overruns by at most one fold's training.
        if (algo != algorithm::baseline && cv.elapsed() > cv.budget_seconds) {
            report(cv.control, 1.0, "auto: " + key + " skipped: time budget used");
            throw budget_exhausted{};
        }
        feature_rows train_x, test_x;
        std::vector<double> train_y, test_y;
        for (std::size_t i = 0; i < n; ++i) {
            if (cv.fold[i] == f) {
                test_x.push_back(cv.x[i]);
                test_y.push_back(cv.y[i]);
            } else if (!cv.forward || cv.fold[i] < f) {
                train_x.push_back(cv.x[i]);
                train_y.push_back(cv.y[i]);
            }
        }
        // A forest's fold on wide or long data can take minutes, and the
        // budget is looked at only between folds: a search with its budget
        // spent ran on to the job's deadline and kept nothing. One tree is
        // timed first (Dlib grows the trees alike), and a forest whose fold
        // would end past the budget is not started.
        if (algo == algorithm::forest && round == 0 && params.num_trees > 1) {
            train_params one = params;
            one.num_trees = 1;
            const double t0 = cv.elapsed();
            auto probe = train(cv.task, algo, one, train_x, train_y, cv.num_classes, quiet);
            const double tree_seconds = cv.elapsed() - t0;
            // Forward folds grow: the last trains on `folds` runs, this one on one.
            const double fold_seconds =
                tree_seconds * static_cast<double>(params.num_trees) * (cv.forward ? cv.folds : 1);
            if (probe && cv.elapsed() + fold_seconds > cv.budget_seconds) {
                // The other candidates (the kernel's rows are capped) may fit.
                cv.too_slow.insert(algo);
                report(cv.control, 1.0,
                       "auto: forest skipped: one tree took " + fmt(tree_seconds) +
                           " s, so one fold would take about " + fmt(fold_seconds) +
                           " s, past the time budget");
                return -inf;
            }
        }
        auto fn = train(cv.task, algo, params, train_x, train_y, cv.num_classes, quiet);
        if (!fn) {
            if (fn.error().kind() == error_kind::conflict && fn.error().message() == "cancelled")
                throw cancelled_error{};
            failure = fn.error().message();
            break;
        }
        for (std::size_t i = 0; i < test_x.size(); ++i) {
            auto p = (*fn)->predict(test_x[i]);
            truth.push_back(test_y[i]);
            predicted.push_back(p.value);
            probabilities.push_back(std::move(p.probabilities));
        }
    }
    double score = -inf;
    if (failure.empty()) {
        score = cv.task == task_kind::regression ? -rmse(truth, predicted)
                                                 : -log_loss(truth, probabilities);
        if (!std::isfinite(score)) score = -inf;
    }
    cv.tried->push_back({algo, params, score});
    cv.seen.emplace(key, score);
    report(cv.control, cv.elapsed() / cv.budget_seconds,
           "auto: " + key + " -> " +
               (failure.empty() ? cv.score_name + " " + fmt(score) : "failed: " + failure));
    return score;
}

dlib::matrix<double, 0, 1> column(const std::vector<double>& v) {
    dlib::matrix<double, 0, 1> m(static_cast<long>(v.size()));
    for (std::size_t i = 0; i < v.size(); ++i) m(static_cast<long>(i)) = v[i];
    return m;
}

// Ends one algorithm's search at a failed candidate (see run_global_search).
struct search_stopped {};

double finite_or_stop(double score) {
    if (!std::isfinite(score)) throw search_stopped{};
    return score;
}

// dlib::find_max_global over a box, seeded with the already evaluated default
// point so that the defaults are always among the candidates. Dlib's model of
// the function cannot take a failed candidate's -inf (its trust-region step
// crashed the training process), so a failure ends this algorithm's search;
// what was tried stays among the candidates.
template <class F>
void run_global_search(F&& objective, const std::vector<double>& lower,
                       const std::vector<double>& upper, const std::vector<bool>& is_integer,
                       std::size_t max_calls, std::chrono::nanoseconds time_bound,
                       const std::vector<double>& start, double start_value) {
    if (!std::isfinite(start_value)) return;
    const std::vector<dlib::function_evaluation> seeds{
        dlib::function_evaluation(column(start), start_value)};
    try {
        if constexpr (std::is_invocable_v<F&, double>) {
            auto finite = [&](double a) { return finite_or_stop(objective(a)); };
            dlib::find_max_global(finite, column(lower), column(upper), is_integer,
                                  dlib::max_function_calls(max_calls), time_bound, 0.0, seeds);
        } else {
            auto finite = [&](double a, double b) { return finite_or_stop(objective(a, b)); };
            dlib::find_max_global(finite, column(lower), column(upper), is_integer,
                                  dlib::max_function_calls(max_calls), time_bound, 0.0, seeds);
        }
    } catch (const search_stopped&) {
    }
}

}  // namespace

result<search_result> auto_search(task_kind task, const feature_rows& x,
                                  const std::vector<double>& y, std::size_t num_classes,
                                  double time_budget_seconds, const train_control& control,
                                  const train_params& base,
                                  const std::vector<std::int64_t>& times) {
    if (auto st = validate_params(base); !st) return st;
    if (auto st = check_inputs(task, x, y, num_classes); !st) return st;
    if (!(time_budget_seconds > 0) || !std::isfinite(time_budget_seconds))
        return invalid("time_budget_seconds", "the time budget must be positive");
    constexpr int folds = 3;
    if (x.size() < 2 * folds)
        return status(error_kind::failed_precondition,
                      "auto search needs at least " + std::to_string(2 * folds) + " rows");
    if (task == task_kind::regression) num_classes = 0;

    search_result out;
    out.score_name = task == task_kind::regression ? "neg_rmse" : "neg_log_loss";
    std::optional<std::vector<int>> forward;
    std::string not_forward;
    if (!times.empty()) {
        if (times.size() != y.size()) return invalid("times", "one time per row");
        forward = make_forward_folds(task, y, times, folds, not_forward);
        if (!forward) {
            report(control, 0.0, "auto: folds drawn at random, not in time order: " + not_forward);
        }
    }
    const bool in_time = forward.has_value();
    cv_context cv{task,
                  x,
                  y,
                  num_classes,
                  in_time ? std::move(*forward) : make_folds(task, y, folds),
                  folds,
                  in_time,
                  control,
                  out.score_name,
                  std::chrono::steady_clock::now(),
                  time_budget_seconds,
                  &out.tried,
                  {},
                  {}};
    const double default_gamma = scale_gamma(x);
    report(control, 0.0,
           "auto: " + std::to_string(folds) + "-fold cross-validation" +
               (in_time ? " forward in time (each fold trained on the rows before it)" : "") +
               " on " + std::to_string(x.size()) + " rows, scoring " + out.score_name +
               ", budget " + fmt(time_budget_seconds) + " s");
    auto remaining = [&] { return time_budget_seconds - cv.elapsed(); };
    auto time_share = [&](double share) {
        const double s = std::max(0.0, std::min(remaining(), share * time_budget_seconds));
        return std::chrono::nanoseconds(static_cast<long long>(s * 1e9));
    };

    try {
        out.baseline_score = cv_score(cv, algorithm::baseline, base);

        // Linear: tune log10 of c (classification) or of lambda (regression),
        // starting from scikit-learn's default 1.
        {
            auto objective = [&](double log_value) {
                train_params p = base;
                (task == task_kind::regression ? p.lambda : p.c) = std::pow(10.0, log_value);
                return cv_score(cv, algorithm::linear, p);
            };
            const double at_default = objective(0.0);
            if (remaining() > 0) {
                run_global_search(objective, {-4.0}, {4.0}, {false}, 7, time_share(0.2), {0.0},
                                  at_default);
            }
        }
        // Forest: tune the leaf size (an integer), starting from the default.
        if (remaining() > 0) {
            auto objective = [&](double leaf) {
                train_params p = base;
                p.min_samples_per_leaf = static_cast<std::size_t>(std::lround(leaf));
                return cv_score(cv, algorithm::forest, p);
            };
            const double start =
                static_cast<double>(std::min<std::size_t>(base.min_samples_per_leaf, 20));
            const double at_default = objective(start);
            if (remaining() > 0) {
                run_global_search(objective, {1.0}, {20.0}, {true}, 3, time_share(0.3), {start},
                                  at_default);
            }
        } else {
            report(control, 1.0, "auto: forest skipped, time budget used");
        }
        // Kernel: tune log10 c and log10 gamma around scikit-learn's defaults
        // (c = 1, gamma = "scale"), with whatever time is left.
        if (remaining() > 0) {
            const double g0 = std::log10(default_gamma);
            auto objective = [&](double log_c, double log_gamma) {
                train_params p = base;
                p.c = std::pow(10.0, log_c);
                p.gamma = std::pow(10.0, log_gamma);
                return cv_score(cv, algorithm::kernel, p);
            };
            const double at_default = objective(0.0, g0);
            if (remaining() > 0) {
                run_global_search(objective, {-2.0, g0 - 2}, {3.0, g0 + 1}, {false, false}, 9,
                                  time_share(1.0), {0.0, g0}, at_default);
            }
        } else {
            report(control, 1.0, "auto: kernel skipped, time budget used");
        }
    } catch (const budget_exhausted&) {
        // Keep the candidates scored so far.
    } catch (const cancelled_error&) {
        return cancelled_status();
    } catch (const std::exception& e) {
        return status(error_kind::internal, std::string("auto search failed: ") + e.what());
    }

    // The best candidate; the baseline wins when nothing beats it.
    out.algo = algorithm::baseline;
    out.params = base;
    out.cv_score = out.baseline_score;
    for (const auto& c : out.tried) {
        if (c.cv_score > out.cv_score) {
            out.algo = c.algo;
            out.params = c.params;
            out.cv_score = c.cv_score;
        }
    }
    report(control, 1.0,
           "auto: picked " + describe(task, out.algo, out.params) + " (" + out.score_name + " " +
               fmt(out.cv_score) + ", baseline " + fmt(out.baseline_score) + ", " +
               std::to_string(out.tried.size()) + " candidates in " + fmt(cv.elapsed()) + " s)");
    return out;
}

result<std::vector<double>> out_of_fold_scores(algorithm algo, const train_params& params,
                                               const feature_rows& x, const std::vector<double>& y,
                                               const train_control& control) {
    constexpr int folds = 3;
    if (x.size() != y.size() || x.empty())
        return status(error_kind::invalid_argument, "one label per row is required", "y");
    const std::vector<int> fold = make_folds(task_kind::binary, y, folds);
    std::vector<double> scores(x.size(), 0.0);
    for (int f = 0; f < folds; ++f) {
        feature_rows fit_x;
        std::vector<double> fit_y;
        for (std::size_t i = 0; i < x.size(); ++i) {
            if (fold[i] == f) continue;
            fit_x.push_back(x[i]);
            fit_y.push_back(y[i]);
        }
        train_control fold_control = control;
        if (control.progress) {
            fold_control.progress = [&, f](double fraction, const std::string& message) {
                control.progress((f + fraction) / folds,
                                 "calibration fold " + std::to_string(f + 1) + " of " +
                                     std::to_string(folds) + ": " + message);
            };
        }
        auto fn = train(task_kind::binary, algo, params, fit_x, fit_y, 2, fold_control);
        if (!fn && fn.error().kind() == error_kind::conflict && fn.error().message() == "cancelled")
            return fn.error();
        if (!fn) {
            return status(fn.error().kind(),
                          "calibration fold " + std::to_string(f + 1) + " of " +
                              std::to_string(folds) + " (trained on " +
                              std::to_string(fit_x.size()) + " rows): " + fn.error().message(),
                          fn.error().field());
        }
        for (std::size_t i = 0; i < x.size(); ++i) {
            if (fold[i] != f) continue;
            const prediction p = (*fn)->predict(x[i]);
            scores[i] = p.probabilities.size() == 2 ? p.probabilities[1] : 0.5;
        }
    }
    return scores;
}

}  // namespace kennel::ml

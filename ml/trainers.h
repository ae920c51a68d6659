// Trainers over Dlib: fit a function from feature rows to labels (baseline,
// linear, RBF kernel, random forest), and the `auto` search that picks an
// algorithm and its hyperparameters by cross-validation.
//
// Threads: train() and auto_search() are blocking calls meant for the single
// trainer thread; they share nothing between calls, so separate calls may run
// concurrently. A fitted_function is immutable once returned: predict() may be
// called from many threads at once on one shared instance. Each implementation
// holds only Dlib objects whose THREAD SAFETY notes allow concurrent
// operator() (decision_function, probabilistic_decision_function with the
// radial_basis_kernel, random_forest_regression_function with the dense
// feature extractor) or plain dlib::matrix weights read by const code.
// train_control callbacks are called on the training thread.
#pragma once

#include <cstddef>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ml/value.h"
#include "store/status.h"

namespace kennel::ml {

struct calibrator;

enum class algorithm { baseline, linear, kernel, forest };

const char* algorithm_name(algorithm a);
// "baseline", "linear", "kernel", "forest" ("auto" is not an algorithm: the
// caller runs auto_search for it).
result<algorithm> parse_algorithm(std::string_view name);

struct train_params {
    // Inverse regularisation as in scikit-learn: the linear classifiers
    // minimise 0.5*||w||^2 + c * sum(log loss) with an unpenalised intercept
    // (LogisticRegression(C=c)); the kernel SVM is SVC(C=c); kernel ridge
    // regression uses lambda = 1/c (KernelRidge(alpha=1/c)).
    double c = 1.0;
    // Linear regression: ridge penalty, intercept unpenalised, as
    // scikit-learn's Ridge(alpha=lambda). 0 means ordinary least squares.
    double lambda = 1.0;
    // RBF kernel exp(-gamma*||a-b||^2); <= 0 means scikit-learn's "scale":
    // 1 / (num_features * variance of all feature values).
    double gamma = 0;
    std::size_t num_trees = 100;
    std::size_t min_samples_per_leaf = 5;
    double feature_subsampling = 1.0 / 3.0;  // share of features tried per split
    // Kernel training is O(n^2) in memory and worse in time, so at most this
    // many rows are used (a deterministic sample; reported through progress).
    std::size_t max_kernel_rows = 3000;
    std::size_t max_iterations = 1000;  // L-BFGS iterations for the linear classifiers
    std::size_t threads = 1;            // forest training threads
};

// Ranges: c > 0, lambda >= 0, finite gamma, num_trees in 1..10000, etc.
status validate_params(const train_params& p);

struct train_control {
    std::function<bool()> cancelled;                                            // may be empty
    std::function<void(double fraction, const std::string& message)> progress;  // may be empty
    // Seconds since auto_search began, as its budget counts them; empty: the
    // steady clock (tests set a clock of their own).
    std::function<double()> seconds;
};

struct prediction {
    // Regression: the predicted value. Classification: the argmax class index.
    double value = 0;
    // Classification: one probability per class, summing to 1. Empty for
    // regression.
    std::vector<double> probabilities;
};

class fitted_function {
  public:
    virtual ~fitted_function() = default;

    // x must have num_features() values; otherwise the result is NaN with no
    // probabilities rather than undefined behaviour.
    prediction predict(const std::vector<double>& x) const;

    virtual algorithm kind() const = 0;
    task_kind task() const { return task_; }
    // A calibrated binary function (ml/calibration.h): its calibrator, and
    // the function before it. Null and this for any other.
    virtual const calibrator* calibration() const { return nullptr; }
    virtual const fitted_function* uncalibrated() const { return this; }
    std::size_t num_features() const { return num_features_; }
    std::size_t num_classes() const { return num_classes_; }

    // Writes the function (its own tag, shape and Dlib objects) with
    // dlib::serialize; load_function() reads it back. Throws std::logic_error
    // for a function loaded for prediction only (load_use::predict).
    void serialize(std::ostream& out) const;

  protected:
    fitted_function(task_kind task, std::size_t num_features, std::size_t num_classes)
        : task_(task), num_features_(num_features), num_classes_(num_classes) {}

    virtual const char* tag() const = 0;
    virtual prediction do_predict(const std::vector<double>& x) const = 0;
    virtual void serialize_body(std::ostream& out) const = 0;

  private:
    task_kind task_;
    std::size_t num_features_;
    std::size_t num_classes_;
};

using function_ptr = std::shared_ptr<const fitted_function>;

// What a loaded function is for. A forest keeps Dlib's trees only to be
// written again; serving only predicts, from its own flat layout, so it
// loads with `predict` and holds each forest once (the flat layout is 8
// or 12 bytes a node; Dlib's trees another 16 per split and 4 per leaf).
enum class load_use { any, predict };

// Reads what fitted_function::serialize wrote; refuses unknown tags and
// inconsistent shapes, and turns Dlib's serialization_error into a status.
result<function_ptr> load_function(std::istream& in, load_use use = load_use::any);

// Feature rows: x[i] is row i, every row has the same length (the pipeline's
// names().size()); y[i] is the class index (classification) or the target.
using feature_rows = std::vector<std::vector<double>>;

// Trains one algorithm. num_classes is 2 for binary, the class count for
// multiclass and ignored for regression. Fails with invalid_argument for bad
// shapes or params, failed_precondition for data that cannot train the model
// (e.g. a class with too few rows for the kernel's Platt scaling), conflict
// "cancelled" when control.cancelled() turns true, internal for Dlib errors.
result<function_ptr> train(task_kind task, algorithm algo, const train_params& params,
                           const feature_rows& x, const std::vector<double>& y,
                           std::size_t num_classes, const train_control& control = {});

// Each row's probability of class 1 from a function fitted without the
// row's fold (3 folds, stratified by a seeded shuffle, as auto_search's):
// what calibration is fitted on. Binary only; errors as train's, the
// message saying which fold.
result<std::vector<double>> out_of_fold_scores(algorithm algo, const train_params& params,
                                               const feature_rows& x, const std::vector<double>& y,
                                               const train_control& control = {});

// The binary function with its probability of class 1 put through c (see
// fitted_function::calibration).
function_ptr calibrate(function_ptr inner, calibrator c);

struct search_candidate {
    algorithm algo = algorithm::baseline;
    train_params params;
    double cv_score = 0;  // higher is better; -inf when the candidate failed
};

struct search_result {
    algorithm algo = algorithm::baseline;
    train_params params;
    double cv_score = 0;
    // "neg_log_loss" for classification, "neg_rmse" for regression.
    std::string score_name;
    double baseline_score = 0;            // the baseline's cv score, for comparison
    std::vector<search_candidate> tried;  // in the order evaluated
};

// Picks the algorithm and hyperparameters with the best 3-fold cross-validated
// score on x/y (pass only the training part: the holdout must stay unseen).
// Tries linear (tuning log c, or log lambda for regression), forest and kernel
// (tuning log c and log gamma) with dlib::find_max_global, each bounded by a
// number of calls and its share of time_budget_seconds. base supplies the
// settings that are not searched (threads, num_trees, max_kernel_rows, ...).
// Every candidate is reported through control.progress. Given the rows'
// times (a holdout by time), the folds go forward in time: the rows in time
// order in four runs, each of the last three scored by a fit on the runs
// before it; at random, as without times, when the earliest run lacks a
// class or the rows are fewer than eight (reported).
result<search_result> auto_search(task_kind task, const feature_rows& x,
                                  const std::vector<double>& y, std::size_t num_classes,
                                  double time_budget_seconds, const train_control& control = {},
                                  const train_params& base = {},
                                  const std::vector<std::int64_t>& times = {});

}  // namespace kennel::ml

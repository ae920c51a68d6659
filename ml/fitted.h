// The concrete fitted functions behind ml/trainers.h (internal to ml/: only
// trainers.cpp and fitted.cpp include it, so Dlib's headers stay out of every
// other translation unit).
//
// Each type is immutable after construction and its predict is read-only, so
// one instance may serve many threads at once (see the note in trainers.h on
// which Dlib objects allow that).
#pragma once

#include <cstdint>
#include <vector>

#include <dlib/matrix.h>
#include <dlib/random_forest.h>
#include <dlib/svm.h>

#include "ml/trainers.h"

namespace kennel::ml::detail {

using sample_type = dlib::matrix<double, 0, 1>;
using rbf_kernel = dlib::radial_basis_kernel<sample_type>;
using forest_type = dlib::random_forest_regression_function<dlib::dense_feature_extractor>;

sample_type to_sample(const std::vector<double>& x);

// Majority class with the class prior, or the mean.
class baseline_function final : public fitted_function {
  public:
    baseline_function(task_kind task, std::size_t num_features, double value,
                      std::vector<double> probabilities)
        : fitted_function(task, num_features, probabilities.size()),
          value_(value),
          probabilities_(std::move(probabilities)) {}
    algorithm kind() const override { return algorithm::baseline; }

  private:
    const char* tag() const override { return "baseline"; }
    prediction do_predict(const std::vector<double>& x) const override;
    void serialize_body(std::ostream& out) const override;

    double value_;
    std::vector<double> probabilities_;
};

// Linear scores: binary logistic (one row of weights), softmax (one row per
// class) or ridge regression (one row, identity link).
class linear_function final : public fitted_function {
  public:
    // weights: one row per output, num_features columns; bias: one per row.
    linear_function(task_kind task, std::size_t num_features, std::size_t num_classes,
                    dlib::matrix<double> weights, sample_type bias)
        : fitted_function(task, num_features, num_classes),
          weights_(std::move(weights)),
          bias_(std::move(bias)) {}
    algorithm kind() const override { return algorithm::linear; }

  private:
    const char* tag() const override { return "linear"; }
    prediction do_predict(const std::vector<double>& x) const override;
    void serialize_body(std::ostream& out) const override;

    dlib::matrix<double> weights_;
    sample_type bias_;
};

// RBF kernel: kernel ridge regression, or Platt-scaled SVMs (one for binary,
// one-vs-rest per class for multiclass, probabilities normalised).
class kernel_function final : public fitted_function {
  public:
    kernel_function(task_kind task, std::size_t num_features, dlib::decision_function<rbf_kernel> f)
        : fitted_function(task, num_features, 0), regression_(std::move(f)) {}
    kernel_function(task_kind task, std::size_t num_features, std::size_t num_classes,
                    std::vector<dlib::probabilistic_decision_function<rbf_kernel>> fs)
        : fitted_function(task, num_features, num_classes), classifiers_(std::move(fs)) {}
    algorithm kind() const override { return algorithm::kernel; }

  private:
    const char* tag() const override { return "kernel"; }
    prediction do_predict(const std::vector<double>& x) const override;
    void serialize_body(std::ostream& out) const override;

    dlib::decision_function<rbf_kernel> regression_;
    std::vector<dlib::probabilistic_decision_function<rbf_kernel>> classifiers_;
};

// Regression forests: one for regression, one on the 0/1 label for binary
// (its output clipped to [0,1] is P(class 1)), one per class on the class
// indicator for multiclass (normalised).
// A Dlib forest's trees laid out for prediction: every tree's nodes depth
// first in one array (a node's left child is the next node), 12 bytes a
// node, and several trees walked side by side so their memory loads overlap.
// Gives exactly what Dlib's forest gives (same comparisons, leaves summed in
// tree order); Dlib's own layout stays the stored one.
class flat_forest {
public:
    explicit flat_forest(const forest_type& f);
    double operator()(const std::vector<double>& x) const;

private:
    struct node {
        float threshold;        // go left when x[feature] < threshold
        std::uint32_t feature;  // a leaf: its value's bits
        std::uint32_t right;    // a leaf: its own index
    };
    std::vector<node> nodes_;
    std::vector<std::uint32_t> roots_;
};

class forest_function final : public fitted_function {
  public:
      // keep_forests: false when loaded to predict only (Dlib's trees are
      // dropped once flattened; serialize then throws).
      forest_function(task_kind task, std::size_t num_features, std::size_t num_classes,
                      std::vector<forest_type> forests, bool keep_forests = true);
      algorithm kind() const override { return algorithm::forest; }

  private:
    const char* tag() const override { return "forest"; }
    prediction do_predict(const std::vector<double>& x) const override;
    void serialize_body(std::ostream& out) const override;

    std::vector<forest_type> forests_;  // empty when loaded to predict only
    std::vector<flat_forest> flat_;     // one per forest, for prediction
};

// Turns per-class scores in [0,1] into probabilities summing to 1 (uniform
// when all are 0) and fills the argmax.
prediction from_class_scores(std::vector<double> scores);

}  // namespace kennel::ml::detail

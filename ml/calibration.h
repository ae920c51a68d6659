// Probability calibration of a binary model: a monotone map from the
// model's probability of class 1 to one that matches the rates seen, fitted
// on out-of-fold scores of the training rows (a model's scores on its own
// training rows are more confident than on new ones).
//
// sigmoid: Platt's method, p = 1 / (1 + exp(a f + b)) with Platt's smoothed
//   targets (as scikit-learn's _SigmoidCalibration), on the model's score f:
//   the logit of its probability for linear and kernel models, whose
//   probability is a sigmoid of a score (a = -1, b = 0 is then the
//   identity, so a model already calibrated is left about as it was), and
//   the probability itself for a forest, whose probability is a mean of
//   leaves and often exactly 0 or 1: a few such rows wrong, at a logit of
//   +-34.5, flattened the whole map (a = -0.17, the holdout's Brier score
//   0.179 became 0.210). scikit-learn's CalibratedClassifierCV does the
//   same: the decision function where there is one, else the probability.
// isotonic: the non-decreasing step function closest in squared error (pool
//   adjacent violators), linear between its points and clipped to its ends
//   outside them (as scikit-learn's IsotonicRegression(out_of_bounds="clip")).
//
// Plain values: fit is pure, apply is const; share freely between threads.
#pragma once

#include <string_view>
#include <vector>

#include "store/status.h"

namespace kennel::ml {

enum class calibration_method { none, sigmoid, isotonic };

const char* calibration_method_name(calibration_method m);
result<calibration_method> parse_calibration_method(std::string_view name);

// What a sigmoid is fitted on (see above).
enum class sigmoid_input { logit, probability };

struct calibrator {
    calibration_method method = calibration_method::none;
    sigmoid_input input = sigmoid_input::logit;  // sigmoid
    double a = 0, b = 0;         // sigmoid
    std::vector<double> xs, ys;  // isotonic: points, xs increasing, ys non-decreasing
    // The calibrated probability of class 1 for a score in [0, 1]; none:
    // the score itself.
    double operator()(double score) const;
};

// Both need rows of each class; invalid_argument otherwise (or for sizes
// that differ, or a score that is not finite).
result<calibrator> fit_calibrator(calibration_method method, const std::vector<bool>& positive,
                                  const std::vector<double>& score,
                                  sigmoid_input input = sigmoid_input::logit);

}  // namespace kennel::ml

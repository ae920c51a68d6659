// Small numeric helpers shared by the learning core. Pure functions.
#pragma once

#include <cmath>
#include <limits>

namespace kennel::ml {

// "No value": a metric with nothing to measure, an unset bound.
inline constexpr double nan = std::numeric_limits<double>::quiet_NaN();

// log(1 + e^z) without overflow.
inline double softplus(double z) {
    return z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
}

}  // namespace kennel::ml

// The bootstrap over entities behind live metrics' intervals: the metrics it
// resamples equal metrics.h's, weights count rows, and its intervals cover
// what they should, as wide as the entities (not the rows) make them.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "ml/bootstrap.h"
#include "ml/metrics.h"

using namespace kennel::ml;

namespace {

// A deterministic uniform in [0, 1): the tests' data never changes.
struct uniforms {
    std::uint64_t state;
    double next() {
        std::uint64_t x = (state += 0x9e3779b97f4a7c15ULL);
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        x ^= x >> 31;
        return static_cast<double>(x >> 11) * 0x1.0p-53;
    }
    double normal() {  // Box-Muller
        const double u = next(), v = next();
        return std::sqrt(-2 * std::log(1 - u)) * std::cos(2 * M_PI * v);
    }
};

double mean_of(const metric_rows& m, std::size_t clusters, std::uint32_t resamples,
               bootstrap_interval* out) {
    auto i = cluster_bootstrap(clusters,
                               {[&](const std::vector<std::uint8_t>& w) { return m.evaluate(&w); }},
                               resamples, 0.95, 7);
    *out = i[0];
    return m.evaluate(nullptr);
}

}  // namespace

TEST_CASE("with every weight 1 the metrics equal metrics.h's", "[bootstrap]") {
    uniforms u{1};
    std::vector<bool> positive;
    std::vector<double> score, truth, predicted;
    std::vector<std::vector<double>> probabilities;
    metric_rows auc(primary_form::roc_auc), loss(primary_form::log_loss), error(primary_form::rmse);
    for (std::uint32_t i = 0; i < 500; ++i) {
        const bool pos = u.next() < 0.3;
        // Rounded: many ties, which count half.
        const double s = std::round((pos ? 0.2 : 0.0) + u.next() * 20) / 20;
        positive.push_back(pos);
        score.push_back(s);
        auc.add_score(i % 37, s, pos);
        const double p0 = u.next(), p1 = (1 - p0) * u.next();
        const std::size_t k = i % 3;
        probabilities.push_back({p0, p1, 1 - p0 - p1});
        truth.push_back(static_cast<double>(k));
        loss.add_probability(i % 37, probabilities.back()[k]);
        predicted.push_back(u.normal() * 1e200);
        error.add_regression(i % 37, predicted.back(), truth.back() * 1e200);
    }
    auc.prepare();
    loss.prepare();
    error.prepare();
    CHECK(auc.evaluate(nullptr) == Approx(roc_auc(positive, score)).epsilon(1e-12));
    CHECK(loss.evaluate(nullptr) == Approx(log_loss(truth, probabilities)).epsilon(1e-12));
    std::vector<double> scaled_truth;
    for (double t : truth) scaled_truth.push_back(t * 1e200);
    auto reg = evaluate_regression(scaled_truth, predicted);
    REQUIRE(reg);
    // Errors near 1e200 square beyond a double; both scale first.
    REQUIRE(std::isfinite(reg->rmse));
    CHECK(error.evaluate(nullptr) == Approx(reg->rmse).epsilon(1e-12));
}

TEST_CASE("a cluster's weight counts its rows that many times", "[bootstrap]") {
    uniforms u{2};
    metric_rows auc(primary_form::roc_auc), error(primary_form::rmse);
    std::vector<bool> positive;
    std::vector<double> score, truth, predicted;
    const std::vector<std::uint8_t> weight = {0, 1, 2, 3, 1};
    for (std::uint32_t i = 0; i < 100; ++i) {
        const std::uint32_t cluster = i % 5;
        const bool pos = u.next() < 0.5;
        const double s = std::round(u.next() * 10) / 10;
        const double t = u.normal(), p = t + u.normal();
        auc.add_score(cluster, s, pos);
        error.add_regression(cluster, p, t);
        for (int copy = 0; copy < weight[cluster]; ++copy) {
            positive.push_back(pos);
            score.push_back(s);
            truth.push_back(t);
            predicted.push_back(p);
        }
    }
    auc.prepare();
    error.prepare();
    CHECK(auc.size() == 100);
    CHECK(auc.distinct_clusters() == 5);
    CHECK(auc.evaluate(&weight) == Approx(roc_auc(positive, score)).epsilon(1e-12));
    CHECK(error.evaluate(&weight) == Approx(rmse(truth, predicted)).epsilon(1e-12));
    // No weight at all: undefined, not 0.
    const std::vector<std::uint8_t> none(5, 0);
    CHECK(std::isnan(auc.evaluate(&none)));
    CHECK(std::isnan(error.evaluate(&none)));
    // Rows added after prepare() are not evaluated half-sorted.
    auc.add_score(0, 0.5, true);
    CHECK(std::isnan(auc.evaluate(nullptr)));
}

TEST_CASE("Poisson weights have mean 1 and variance 1, and repeat", "[bootstrap]") {
    double sum = 0, squares = 0, zeros = 0;
    const int n = 200000;
    for (int c = 0; c < n; ++c) {
        const double w = poisson_weight(42, static_cast<std::uint32_t>(c % 400),
                                        static_cast<std::uint32_t>(c / 400));
        sum += w;
        squares += w * w;
        zeros += w == 0;
    }
    const double mean = sum / n;
    CHECK(mean == Approx(1).margin(0.01));
    CHECK(squares / n - mean * mean == Approx(1).margin(0.02));
    CHECK(zeros / n == Approx(std::exp(-1.0)).margin(0.005));
    CHECK(poisson_weight(42, 3, 9) == poisson_weight(42, 3, 9));
    int differ = 0;
    for (std::uint32_t c = 0; c < 100; ++c)
        differ += poisson_weight(42, 0, c) != poisson_weight(43, 0, c);
    CHECK(differ > 30);
}

TEST_CASE("the interval of a mean covers it about 95% of the time", "[bootstrap]") {
    // 200 samples of 100 values from Exp(1) (mean 1), as log losses.
    uniforms u{3};
    int covered = 0;
    const int samples = 200;
    for (int s = 0; s < samples; ++s) {
        metric_rows m(primary_form::log_loss);
        for (std::uint32_t i = 0; i < 100; ++i) {
            const double x = -std::log(1 - u.next());
            m.add_probability(i, std::exp(-x));
        }
        m.prepare();
        bootstrap_interval i;
        mean_of(m, 100, 400, &i);
        REQUIRE(i.valid == 400);
        covered += i.lower <= 1 && 1 <= i.upper;
    }
    // Binomial(200, 0.95) lies in [180, 197] with probability > 0.99; the
    // percentile interval runs a little narrow at n = 100.
    CHECK(covered >= 176);
    CHECK(covered <= 198);
}

TEST_CASE("rows of one entity widen the interval as one row would", "[bootstrap]") {
    // 50 entities asked about 10 times each, one outcome each: 500 rows but
    // 50 independent values. Counted as 500 rows, the interval would be
    // sqrt(10) times too narrow.
    uniforms u{4};
    metric_rows by_entity(primary_form::log_loss), by_row(primary_form::log_loss);
    for (std::uint32_t e = 0; e < 50; ++e) {
        const double p = std::exp(-(-std::log(1 - u.next())));
        for (std::uint32_t k = 0; k < 10; ++k) {
            by_entity.add_probability(e, p);
            by_row.add_probability(e * 10 + k, p);
        }
    }
    by_entity.prepare();
    by_row.prepare();
    bootstrap_interval wide, narrow;
    mean_of(by_entity, 50, 400, &wide);
    mean_of(by_row, 500, 400, &narrow);
    const double ratio = (wide.upper - wide.lower) / (narrow.upper - narrow.lower);
    CHECK(ratio == Approx(std::sqrt(10.0)).epsilon(0.25));
}

TEST_CASE("an ROC-AUC interval is as wide as Hanley and McNeil's standard error says",
          "[bootstrap]") {
    // 300 positives scored N(1, 1), 300 negatives N(0, 1): AUC about 0.76.
    uniforms u{5};
    metric_rows m(primary_form::roc_auc);
    for (std::uint32_t i = 0; i < 600; ++i) {
        const bool pos = i % 2 == 0;
        m.add_score(i, u.normal() + (pos ? 1 : 0), pos);
    }
    m.prepare();
    bootstrap_interval i;
    const double a = mean_of(m, 600, 1000, &i);
    const double q1 = a / (2 - a), q2 = 2 * a * a / (1 + a);
    const double se = std::sqrt((a * (1 - a) + 299 * (q1 - a * a) + 299 * (q2 - a * a)) / 90000);
    CHECK((i.upper - i.lower) / (2 * 1.96) == Approx(se).epsilon(0.2));
    CHECK(i.lower < a);
    CHECK(a < i.upper);
}

TEST_CASE("a statistic undefined in many resamples has no bounds", "[bootstrap]") {
    // One positive among 50: a third of the resamples leave it out, and their
    // ROC-AUC is undefined.
    metric_rows m(primary_form::roc_auc);
    for (std::uint32_t i = 0; i < 50; ++i) m.add_score(i, i * 0.01, i == 25);
    m.prepare();
    bootstrap_interval i;
    mean_of(m, 50, 400, &i);
    CHECK(i.valid < 300);
    CHECK(std::isnan(i.lower));
    CHECK(std::isnan(i.upper));
}

TEST_CASE("a paired difference of the same rows is exactly 0; a better model's is below 0",
          "[bootstrap]") {
    uniforms u{6};
    metric_rows a(primary_form::rmse), b(primary_form::rmse), worse(primary_form::rmse);
    for (std::uint32_t i = 0; i < 200; ++i) {
        const double t = u.normal();
        const double p = t + 0.5 * u.normal();
        a.add_regression(i / 4, p, t);
        b.add_regression(i / 4, p, t);
        worse.add_regression(i / 4, p + 0.5 * u.normal(), t);
    }
    a.prepare();
    b.prepare();
    worse.prepare();
    auto i = cluster_bootstrap(
        50,
        {[&](const std::vector<std::uint8_t>& w) { return a.evaluate(&w) - b.evaluate(&w); },
         [&](const std::vector<std::uint8_t>& w) { return a.evaluate(&w) - worse.evaluate(&w); }},
        400, 0.95, 9);
    CHECK(i[0].lower == 0);
    CHECK(i[0].upper == 0);
    CHECK(i[1].upper < 0);
}

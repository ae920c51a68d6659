// Calibration: the sigmoid and isotonic maps, the Brier score, reliability
// bins and calibration error against scikit-learn 1.2 (numbers printed by
// /usr/bin/python3 on the same data), and a calibrated function written and
// read back.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <sstream>
#include <vector>

#include "ml/calibration.h"
#include "ml/metrics.h"
#include "ml/trainers.h"

using namespace kennel::ml;

namespace {

// 200 scores over [0, 1] whose true rate is the score squared (a model too
// sure of its positives), with ends and a tie.
struct sample {
    std::vector<double> score;
    std::vector<bool> positive;
};

sample squared_rate() {
    sample s;
    for (int i = 0; i < 200; ++i) {
        const double x = ((i * 37) % 101) / 101.0;
        s.score.push_back(x);
        s.positive.push_back(((i * 53) % 97) / 97.0 < x * x);
    }
    s.score[0] = 0.0;
    s.score[1] = 1.0;
    s.score[2] = 0.5;
    s.score[3] = 0.5;
    return s;
}

const std::vector<double> probes = {0.0, 0.05, 0.3, 0.5, 0.8, 0.99, 1.0};

}  // namespace

TEST_CASE("sigmoid calibration finds scikit-learn's Platt fit on the logit", "[calibration]") {
    const sample s = squared_rate();
    auto c = fit_calibrator(calibration_method::sigmoid, s.positive, s.score);
    REQUIRE(c);
    // _sigmoid_calibration(logit(clip(s, 1e-15, 1 - 1e-15)), y)
    CHECK(c->a == Approx(-0.4594071796).epsilon(1e-6));
    CHECK(c->b == Approx(0.7799243935).epsilon(1e-6));
    const std::vector<double> want = {5.890815497e-08, 0.1059664469, 0.2370033954, 0.3143361812,
                                      0.4642981587,    0.7910236298, 0.9999997198};
    for (std::size_t i = 0; i < probes.size(); ++i) {
        INFO("score " << probes[i]);
        CHECK((*c)(probes[i]) == Approx(want[i]).epsilon(1e-5));
    }
}

TEST_CASE("sigmoid calibration of a forest's probability is scikit-learn's on the probability",
          "[calibration]") {
    const sample s = squared_rate();
    auto c = fit_calibrator(calibration_method::sigmoid, s.positive, s.score,
                            sigmoid_input::probability);
    REQUIRE(c);
    CHECK(c->input == sigmoid_input::probability);
    // _sigmoid_calibration(s, y)
    CHECK(c->a == Approx(-5.610638363).epsilon(1e-6));
    CHECK(c->b == Approx(3.870719019).epsilon(1e-6));
    const std::vector<double> want = {0.02041780132, 0.02685222919, 0.1008761275, 0.2562788918,
                                      0.6497161323,  0.84340877,    0.8506768204};
    for (std::size_t i = 0; i < probes.size(); ++i) {
        INFO("score " << probes[i]);
        CHECK((*c)(probes[i]) == Approx(want[i]).epsilon(1e-5));
    }
}

TEST_CASE("a calibrated model's sigmoid is about the identity", "[calibration]") {
    // Labels drawn at the score's own rate: Platt on the logit should leave
    // the scores nearly as they were (a = -1, b = 0).
    std::vector<double> score;
    std::vector<bool> positive;
    for (int i = 0; i < 4000; ++i) {
        const double x = 0.02 + 0.96 * ((i * 7919) % 4001) / 4001.0;
        score.push_back(x);
        positive.push_back(((i * 104729) % 9973) / 9973.0 < x);
    }
    auto c = fit_calibrator(calibration_method::sigmoid, positive, score);
    REQUIRE(c);
    CHECK(c->a == Approx(-1).margin(0.1));
    CHECK(c->b == Approx(0).margin(0.1));
}

TEST_CASE("isotonic calibration is scikit-learn's IsotonicRegression, clipped", "[calibration]") {
    const sample s = squared_rate();
    auto c = fit_calibrator(calibration_method::isotonic, s.positive, s.score);
    REQUIRE(c);
    // IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(s, y)
    const std::vector<double> want = {
        0, 0, 0.01785714286, 0.375, 0.6153846154, 0.8148148148, 0.8148148148};
    for (std::size_t i = 0; i < probes.size(); ++i) {
        INFO("score " << probes[i]);
        CHECK((*c)(probes[i]) == Approx(want[i]).margin(1e-9));
    }
    for (std::size_t i = 1; i < c->xs.size(); ++i) {
        CHECK(c->xs[i] > c->xs[i - 1]);
        CHECK(c->ys[i] >= c->ys[i - 1]);
    }
    // Outside the scores fitted on: the ends' values.
    auto narrow = fit_calibrator(calibration_method::isotonic, {false, true, false, true},
                                 {0.2, 0.4, 0.6, 0.8});
    REQUIRE(narrow);
    CHECK((*narrow)(0.0) == Approx(0));
    CHECK((*narrow)(0.3) == Approx(0.25));  // (0.2, 0) to (0.4, 0.5): pooled 0.4, 0.6
    CHECK((*narrow)(0.5) == Approx(0.5));
    CHECK((*narrow)(1.0) == Approx(1));
}

TEST_CASE("calibration needs both classes and finite scores", "[calibration]") {
    auto one = fit_calibrator(calibration_method::sigmoid, {true, true}, {0.2, 0.9});
    REQUIRE_FALSE(one);
    CHECK_THAT(one.error().message(), Catch::Contains("both classes"));
    auto nan = fit_calibrator(calibration_method::isotonic, {true, false}, {std::nan(""), 0.3});
    REQUIRE_FALSE(nan);
    CHECK_THAT(nan.error().message(), Catch::Contains("not a finite number"));
    CHECK_FALSE(parse_calibration_method("platt"));
    CHECK(*parse_calibration_method("isotonic") == calibration_method::isotonic);
}

TEST_CASE("Brier score, reliability bins and calibration error as scikit-learn's",
          "[calibration]") {
    const sample s = squared_rate();
    CHECK(brier_score(s.positive, s.score) == Approx(0.175889373591).epsilon(1e-10));
    const auto bins = reliability(s.positive, s.score);
    REQUIRE(bins.size() == 10);
    // calibration_curve(y, s, n_bins=10): every bin holds rows here.
    const std::vector<std::size_t> rows = {21, 20, 19, 19, 22, 20, 19, 19, 20, 21};
    const std::vector<double> observed = {
        0.04761904762, 0,   0,           0.1052631579, 0.2727272727, 0.4, 0.4210526316,
        0.6842105263,  0.6, 0.8095238095};
    const std::vector<double> mean = {0.0471475719, 0.1534653465, 0.2516935904, 0.3507034914,
                                      0.4549954995, 0.5495049505, 0.6492965086, 0.7483064096,
                                      0.8465346535, 0.9481376709};
    for (std::size_t b = 0; b < 10; ++b) {
        INFO("bin " << b);
        CHECK(bins[b].rows == rows[b]);
        CHECK(bins[b].observed == Approx(observed[b]).margin(1e-9));
        CHECK(bins[b].mean_score == Approx(mean[b]).margin(1e-9));
    }
    CHECK(calibration_error(bins) == Approx(0.164603960396).epsilon(1e-10));
    // The edges are numpy's linspace(0, 1, 11): 0.6000000000000001 (an
    // isotonic step's complement) is on the edge 6 * 0.1 and in bin 5, as
    // calibration_curve puts it; so is 0.30000000000000004 in bin 2.
    const auto ulp = reliability({true, true, false},
                                 {0.6000000000000001, 0.30000000000000004, 0.7000000000000001});
    CHECK(ulp[5].rows == 1);
    CHECK(ulp[2].rows == 1);
    CHECK(ulp[6].rows == 1);
    CHECK(ulp[5].upper == 6 * 0.1);
    // A score on an edge goes to the lower bin, as numpy's searchsorted puts it.
    const auto edge = reliability({true, false, true}, {0.1, 0.2, 0.0});
    CHECK(edge[0].rows == 2);
    CHECK(edge[1].rows == 1);
    CHECK(std::isnan(edge[5].observed));
    CHECK(std::isnan(calibration_error(reliability({}, {}))));
}

TEST_CASE("binary metrics list the Brier score and calibration error", "[calibration]") {
    auto m =
        evaluate_classification({0, 1, 1, 0}, {{0.9, 0.1}, {0.2, 0.8}, {0.6, 0.4}, {0.3, 0.7}}, 2);
    REQUIRE(m);
    // (0.01 + 0.04 + 0.36 + 0.49) / 4
    CHECK(m->brier == Approx(0.225));
    const auto listing = list_metrics(*m);
    CHECK(listing.get("brier") == Approx(0.225));
    CHECK(listing.get("calibration_error") == Approx(m->calibration_error));
    auto multi = evaluate_classification({0, 1, 2}, {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}, 3);
    REQUIRE(multi);
    CHECK(std::isnan(list_metrics(*multi).get("brier")));
}

TEST_CASE("a calibrated function predicts through its calibrator and reads back", "[calibration]") {
    feature_rows x;
    std::vector<double> y;
    for (int i = 0; i < 80; ++i) {
        x.push_back({(i % 20) / 10.0 - 1.0});
        y.push_back(((i * 13) % 20) / 20.0 < (i % 20) / 20.0 ? 1 : 0);
    }
    auto fn = train(task_kind::binary, algorithm::linear, {}, x, y, 2);
    REQUIRE(fn);
    calibrator c;
    c.method = calibration_method::isotonic;
    c.xs = {0.2, 0.8};
    c.ys = {0.1, 0.6};
    const function_ptr cal = calibrate(*fn, c);
    // A sigmoid on the probability reads back as one.
    calibrator sig;
    sig.method = calibration_method::sigmoid;
    sig.input = sigmoid_input::probability;
    sig.a = -4;
    sig.b = 2;
    std::stringstream sig_stored;
    calibrate(*fn, sig)->serialize(sig_stored);
    auto sig_back = load_function(sig_stored);
    REQUIRE(sig_back);
    CHECK((*sig_back)->calibration()->input == sigmoid_input::probability);
    CHECK((*sig_back)->predict(x[3]).probabilities[1] ==
          Approx(sig((*fn)->predict(x[3]).probabilities[1])));
    CHECK(cal->kind() == algorithm::linear);
    REQUIRE(cal->calibration());
    CHECK(cal->uncalibrated() == fn->get());
    for (const auto& row : x) {
        const double raw = (*fn)->predict(row).probabilities[1];
        const prediction p = cal->predict(row);
        CHECK(p.probabilities[1] == Approx(c(raw)));
        CHECK(p.probabilities[0] + p.probabilities[1] == Approx(1));
        CHECK(p.value == (p.probabilities[1] > 0.5 ? 1.0 : 0.0));
    }
    std::stringstream stored;
    cal->serialize(stored);
    auto back = load_function(stored, load_use::predict);
    REQUIRE(back);
    REQUIRE((*back)->calibration());
    CHECK((*back)->calibration()->xs == c.xs);
    for (const auto& row : x)
        CHECK((*back)->predict(row).probabilities == cal->predict(row).probabilities);

    // Out-of-fold scores: one per row, from fits that did not see it.
    auto oof = out_of_fold_scores(algorithm::linear, {}, x, y);
    REQUIRE(oof);
    CHECK(oof->size() == x.size());
    for (double v : *oof) CHECK((v >= 0 && v <= 1));
}

TEST_CASE("a damaged calibration is refused on load", "[calibration]") {
    feature_rows x = {{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9}};
    std::vector<double> y = {0, 0, 1, 0, 1, 0, 1, 1, 1, 1};
    auto fn = train(task_kind::binary, algorithm::linear, {}, x, y, 2);
    REQUIRE(fn);
    calibrator c;
    c.method = calibration_method::isotonic;
    c.xs = {0.8, 0.2};  // not increasing
    c.ys = {0.1, 0.6};
    std::stringstream stored;
    calibrate(*fn, c)->serialize(stored);
    auto back = load_function(stored);
    REQUIRE_FALSE(back);
    CHECK_THAT(back.error().message(), Catch::Contains("calibration is invalid"));
    // A map that is no method, and a map around a map, are not Kennel's.
    c.xs = {0.2, 0.8};
    calibrator none = c;
    none.method = calibration_method::none;
    std::stringstream no_method;
    calibrate(*fn, none)->serialize(no_method);
    auto unknown = load_function(no_method);
    REQUIRE_FALSE(unknown);
    CHECK_THAT(unknown.error().message(), Catch::Contains("unknown calibration method"));
    std::stringstream twice;
    calibrate(calibrate(*fn, c), c)->serialize(twice);
    auto nested = load_function(twice);
    REQUIRE_FALSE(nested);
    CHECK_THAT(nested.error().message(), Catch::Contains("does not match its calibration"));
    // Cut short inside the inner function: refused, not read past the end.
    std::stringstream whole;
    calibrate(*fn, c)->serialize(whole);
    const std::string bytes = whole.str();
    std::stringstream cut(bytes.substr(0, bytes.size() - 5));
    CHECK_FALSE(load_function(cut));
}

TEST_CASE("calibration error by chance is what a calibrated model shows on average",
          "[calibration]") {
    // Outcomes drawn at the scores themselves: calibrated by construction.
    // The mean binned error over many draws is the chance level (a normal
    // approximation per bin: within 10% here, 300 rows in ten bins).
    std::mt19937_64 engine(3);
    std::uniform_real_distribution<double> uniform(0, 1);
    std::vector<double> score(300);
    for (auto& s : score) s = uniform(engine);
    std::vector<bool> positive(score.size());
    double mean_error = 0, chance = 0;
    constexpr int draws = 2000;
    for (int k = 0; k < draws; ++k) {
        for (std::size_t i = 0; i < score.size(); ++i) positive[i] = uniform(engine) < score[i];
        const auto bins = reliability(positive, score);
        mean_error += calibration_error(bins) / draws;
        chance = calibration_error_by_chance(bins);  // the scores alone set it
    }
    CHECK(chance == Approx(mean_error).epsilon(0.1));
    // Fewer rows, more chance: 30 rows about 0.15.
    std::vector<double> few(score.begin(), score.begin() + 30);
    const double few_chance =
        calibration_error_by_chance(reliability(std::vector<bool>(30, false), few));
    CHECK(few_chance > 2 * chance);
    CHECK(std::isnan(calibration_error_by_chance(reliability({}, {}))));
}

TEST_CASE("a sigmoid fitted on one score for every row is flat at the rate", "[calibration]") {
    // a and b are not both identifiable: a stays 0 and the map answers the
    // smoothed share positive everywhere, as scikit-learn's does.
    std::vector<double> score(40, 0.3);
    std::vector<bool> positive(40, false);
    for (int i = 0; i < 10; ++i) positive[static_cast<std::size_t>(i)] = true;
    auto c = fit_calibrator(calibration_method::sigmoid, positive, score);
    REQUIRE(c);
    CHECK(c->a == 0);
    // Platt's targets: (10 + 1) / (10 + 2) for each positive, 1 / (30 + 2) else.
    const double rate = (10 * (11.0 / 12) + 30 * (1.0 / 32)) / 40;
    CHECK((*c)(0.3) == Approx(rate));
    CHECK((*c)(0.9) == Approx(rate));
}

TEST_CASE("calibration error by chance counts an entity's answers as one draw", "[calibration]") {
    // 10 entities asked 100 times each: their outcomes move together, so
    // the chance level is that of 10 rows, ten times that of 1,000.
    std::vector<double> score;
    std::vector<bool> positive;
    std::vector<std::uint32_t> entity;
    for (std::uint32_t e = 0; e < 10; ++e) {
        for (int k = 0; k < 100; ++k) {
            score.push_back(0.05 + 0.09 * e);
            positive.push_back(e % 2 == 0);
            entity.push_back(e);
        }
    }
    const double rows = calibration_error_by_chance(reliability(positive, score));
    const double entities = calibration_error_by_chance(reliability(positive, score, entity));
    CHECK(entities == Approx(10 * rows));
    // One answer per entity: the same as rows.
    std::vector<std::uint32_t> each(score.size());
    for (std::size_t i = 0; i < each.size(); ++i) each[i] = static_cast<std::uint32_t>(i);
    CHECK(calibration_error_by_chance(reliability(positive, score, each)) == Approx(rows));
    // Judged only when chance is at most a third of the bound.
    CHECK(calibration_bound_judged(0.1, 0.03));
    CHECK_FALSE(calibration_bound_judged(0.1, 0.034));
    CHECK(calibration_bound_judged(0.1, std::nan("")));
}

// Holdout metrics on small cases computed by hand.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "ml/metrics.h"

using namespace kennel;
using namespace kennel::ml;

TEST_CASE("ROC-AUC of a perfect ranking is 1, reversed 0, all tied 0.5", "[metrics]") {
    const std::vector<bool> y = {false, false, true, true};
    CHECK(roc_auc(y, {0.1, 0.2, 0.8, 0.9}) == 1.0);
    CHECK(roc_auc(y, {0.9, 0.8, 0.2, 0.1}) == 0.0);
    CHECK(roc_auc(y, {0.5, 0.5, 0.5, 0.5}) == 0.5);
    // One swapped pair out of four: 3/4.
    CHECK(roc_auc(y, {0.1, 0.8, 0.7, 0.9}) == Approx(0.75));
    // A tie between one positive and one negative counts half: (3 + 0.5) / 4.
    CHECK(roc_auc(y, {0.1, 0.7, 0.7, 0.9}) == Approx(0.875));
    CHECK(std::isnan(roc_auc({true, true}, {0.1, 0.2})));
}

TEST_CASE("average precision follows the step-wise definition", "[metrics]") {
    // Ranked: pos (P=1, R=1/2), neg, pos (P=2/3, R=1): AP = 1/2*1 + 1/2*2/3.
    CHECK(average_precision({true, false, true}, {0.9, 0.8, 0.7}) == Approx(0.5 + 1.0 / 3));
    CHECK(average_precision({false, true}, {0.1, 0.9}) == 1.0);
    CHECK(std::isnan(average_precision({false, false}, {0.1, 0.9})));
}

TEST_CASE("log loss clips probabilities", "[metrics]") {
    CHECK(log_loss({1, 0}, {{0.2, 0.8}, {0.6, 0.4}}) ==
          Approx(-(std::log(0.8) + std::log(0.6)) / 2));
    // A confident wrong answer costs -log(1e-15), not infinity.
    CHECK(log_loss({0}, {{0.0, 1.0}}) == Approx(-std::log(1e-15)));
}

TEST_CASE("RMSE, MAE and R2 on a tiny vector", "[metrics]") {
    auto m = evaluate_regression({1, 2, 3, 4}, {1, 2, 3, 6});
    REQUIRE(m);
    CHECK(m->rmse == Approx(1.0));          // sqrt(4/4)
    CHECK(m->mae == Approx(0.5));           // 2/4
    CHECK(m->r2 == Approx(1 - 4.0 / 5.0));  // SST = 2.25+0.25+0.25+2.25
    auto perfect = evaluate_regression({3, 3}, {3, 3});
    REQUIRE(perfect);
    CHECK(perfect->r2 == 1.0);
    CHECK_FALSE(evaluate_regression({1, 2}, {1}));
    CHECK_FALSE(evaluate_regression({}, {}));
}

TEST_CASE("RMSE and R2 of labels near the double range are finite", "[metrics]") {
    // The squares of errors of 1e200 overflowed: rmse and r2 of infinity
    // (null in JSON) for a model that fitted the labels, which then lost to
    // the baseline on "inf vs inf". The same vector scaled by 1e200 scales
    // rmse and mae by 1e200 and leaves r2 as it was.
    auto small = evaluate_regression({1, 2, 3, 4}, {1, 2, 3, 6});
    auto big = evaluate_regression({1e200, 2e200, 3e200, 4e200}, {1e200, 2e200, 3e200, 6e200});
    REQUIRE(big);
    CHECK(std::isfinite(big->rmse));
    CHECK(big->rmse == Approx(small->rmse * 1e200));
    CHECK(big->mae == Approx(small->mae * 1e200));
    CHECK(big->r2 == Approx(small->r2));
    // The baseline's constant on the same labels loses to a close fit.
    auto constant =
        evaluate_regression({1e200, 2e200, 3e200, 4e200}, {2.5e200, 2.5e200, 2.5e200, 2.5e200});
    auto close = evaluate_regression({1e200, 2e200, 3e200, 4e200}, {1.01e200, 2e200, 3e200, 4e200});
    CHECK(close->rmse < constant->rmse);
    CHECK(constant->r2 == Approx(0.0).margin(1e-12));
    // A difference of two values near the range overflowed too: truths of
    // +-1.7e308 around predictions of 5 have a rmse of 1.7e308 / sqrt(2).
    auto wide = evaluate_regression({1.7e308, -1.7e308, 5, 5}, {5, 5, 5, 5});
    REQUIRE(wide);
    CHECK(wide->rmse == Approx(1.7e308 / std::sqrt(2.0)));
    CHECK(wide->mae == Approx(1.7e308 / 2));
    CHECK(wide->r2 == Approx(0.0).margin(1e-12));
    // An rmse past the double range is infinite; r2 is still a ratio.
    auto past = evaluate_regression({1.7e308, -1.7e308}, {-1.7e308, 1.7e308});
    REQUIRE(past);
    CHECK(std::isinf(past->rmse));
    CHECK(past->r2 == Approx(-3.0));
    // Predictions far beyond small labels: the labels' spread, divided by
    // the predictions' scale, underflowed to 0, and r2 read 0.0 for a model
    // off by 8e304 (a probe's). r2 is as a plain computation gives it when
    // that is finite, and -infinity past the range.
    auto off = evaluate_regression({1, 2, 3, 4}, {1e10, 1e10, 1e10, 1e10});
    REQUIRE(off);
    const double sse = (1e10 - 1) * (1e10 - 1) + (1e10 - 2) * (1e10 - 2) + (1e10 - 3) * (1e10 - 3) +
                       (1e10 - 4) * (1e10 - 4);
    CHECK(off->r2 == Approx(1 - sse / 5.0));
    auto far = evaluate_regression({1, 2, 3, 4}, {8e304, 8e304, 8e304, 8e304});
    REQUIRE(far);
    CHECK(far->rmse == Approx(8e304));
    CHECK(std::isinf(far->r2));
    CHECK(far->r2 < 0);
    // An infinite value leaves nothing finite to say.
    auto inf = evaluate_regression({std::numeric_limits<double>::infinity(), 1}, {1, 1});
    REQUIRE(inf);
    CHECK(std::isinf(inf->rmse));
    CHECK(std::isnan(inf->r2));
}

TEST_CASE("confusion matrix counts truth by row and prediction by column", "[metrics]") {
    auto c = confusion_matrix({0, 0, 1, 2, 2, 2}, {0, 1, 1, 2, 2, 0}, 3);
    CHECK(c == confusion_matrix_t{{1, 1, 0}, {0, 1, 0}, {1, 0, 2}});
}

TEST_CASE("binary metrics take class 1 as positive", "[metrics]") {
    // truth:      0    0    1    1    1
    // p(class 1): .2   .6   .7   .4   .9  -> predicted 0 1 1 0 1
    const std::vector<double> truth = {0, 0, 1, 1, 1};
    const std::vector<std::vector<double>> p = {
        {0.8, 0.2}, {0.4, 0.6}, {0.3, 0.7}, {0.6, 0.4}, {0.1, 0.9}};
    auto m = evaluate_classification(truth, p, 2);
    REQUIRE(m);
    CHECK(m->confusion == confusion_matrix_t{{1, 1}, {1, 2}});
    CHECK(m->accuracy == Approx(0.6));
    CHECK(m->precision == Approx(2.0 / 3));
    CHECK(m->recall == Approx(2.0 / 3));
    CHECK(m->f1 == Approx(2.0 / 3));
    // Pairs (pos, neg) ranked right: .7>.2 .7>.6 .4>.2 .9>.2 .9>.6 = 5 of 6.
    CHECK(m->roc_auc == Approx(5.0 / 6));
    const auto listing = list_metrics(*m);
    CHECK(listing.get("accuracy") == Approx(0.6));
    CHECK(listing.get("roc_auc") == Approx(5.0 / 6));
    CHECK(std::isnan(listing.get("rmse")));
    CHECK(listing.confusion == m->confusion);
}

TEST_CASE("F1-best threshold scans the distinct scores", "[metrics]") {
    // Thresholds .9: TP1 FP0 FN2 -> F1 .5; .7: TP2 -> .8; .6: TP2 FP1 -> 4/6;
    // .4: TP3 FP1 -> 6/7 (best); .2: TP3 FP2 -> .75.
    const std::vector<bool> y = {false, false, true, true, true};
    const std::vector<double> s = {0.2, 0.6, 0.7, 0.4, 0.9};
    auto t = f1_best_threshold(y, s);
    CHECK(t.threshold == 0.4);
    CHECK(t.f1 == Approx(6.0 / 7));
    auto m = evaluate_classification(
        {0, 0, 1, 1, 1}, {{0.8, 0.2}, {0.4, 0.6}, {0.3, 0.7}, {0.6, 0.4}, {0.1, 0.9}}, 2);
    REQUIRE(m);
    CHECK(m->best_threshold == 0.4);
    // Equal F1 (2/3 at .9 and at .6) goes to the higher threshold.
    CHECK(f1_best_threshold({true, false, false, true}, {0.9, 0.8, 0.7, 0.6}).threshold == 0.9);
    CHECK(std::isnan(f1_best_threshold({false}, {0.3}).threshold));
}

TEST_CASE("multiclass metrics are macro averages", "[metrics]") {
    const std::vector<double> truth = {0, 1, 2, 2};
    const std::vector<std::vector<double>> p = {
        {0.7, 0.2, 0.1}, {0.1, 0.8, 0.1}, {0.2, 0.2, 0.6}, {0.5, 0.3, 0.2}};
    auto m = evaluate_classification(truth, p, 3);
    REQUIRE(m);
    CHECK(m->accuracy == Approx(0.75));
    // Class 0: P 1/2 R 1; class 1: P 1 R 1; class 2: P 1 R 1/2.
    CHECK(m->precision == Approx((0.5 + 1 + 1) / 3));
    CHECK(m->recall == Approx((1 + 1 + 0.5) / 3));
    CHECK(m->f1 == Approx((2.0 / 3 + 1 + 2.0 / 3) / 3));
    CHECK(m->log_loss ==
          Approx(-(std::log(0.7) + std::log(0.8) + std::log(0.6) + std::log(0.2)) / 4));
    CHECK(std::isnan(m->best_threshold));
    CHECK(std::isnan(list_metrics(*m).get("best_threshold")));
}

TEST_CASE("macro averages leave out a class neither in the truth nor predicted", "[metrics]") {
    // Four classes; class 3 (seen in training only) is absent here. As
    // scikit-learn's precision_recall_fscore_support(average="macro"):
    // labels are those of the truth and the predictions.
    const std::vector<double> truth = {0, 1, 2, 2};
    const std::vector<std::vector<double>> p = {
        {0.7, 0.2, 0.1, 0.0}, {0.1, 0.8, 0.1, 0.0}, {0.2, 0.2, 0.6, 0.0}, {0.5, 0.3, 0.2, 0.0}};
    auto m = evaluate_classification(truth, p, 4);
    REQUIRE(m);
    CHECK(m->precision == Approx((0.5 + 1 + 1) / 3));
    CHECK(m->recall == Approx((1 + 1 + 0.5) / 3));
    CHECK(m->f1 == Approx((2.0 / 3 + 1 + 2.0 / 3) / 3));
    // A perfect answer scores 1, whatever classes are missing.
    auto perfect = evaluate_classification({0, 0, 1}, {{1, 0, 0}, {1, 0, 0}, {0, 1, 0}}, 3);
    REQUIRE(perfect);
    CHECK(perfect->f1 == Approx(1.0));
    CHECK(perfect->precision == Approx(1.0));
    CHECK(perfect->recall == Approx(1.0));
    // A class predicted but never true counts (its precision is 0).
    auto wrong = evaluate_classification({0, 0}, {{1, 0, 0}, {0, 1, 0}}, 3);
    REQUIRE(wrong);
    CHECK(wrong->precision == Approx((1 + 0) / 2.0));
    CHECK(wrong->recall == Approx((0.5 + 0) / 2.0));
}

TEST_CASE("bad evaluation inputs are refused", "[metrics]") {
    CHECK_FALSE(evaluate_classification({0, 1}, {{0.5, 0.5}}, 2));
    CHECK_FALSE(evaluate_classification({0, 3}, {{0.5, 0.5}, {0.5, 0.5}}, 2));
    CHECK_FALSE(evaluate_classification({0}, {{0.5, 0.3, 0.2}}, 2));
}

TEST_CASE("primary metrics and their direction", "[metrics]") {
    CHECK(std::string(primary_metric(task_kind::binary).name) == "roc_auc");
    CHECK(primary_metric(task_kind::binary).higher_is_better);
    CHECK(std::string(primary_metric(task_kind::multiclass).name) == "log_loss");
    CHECK_FALSE(primary_metric(task_kind::multiclass).higher_is_better);
    CHECK(std::string(primary_metric(task_kind::regression).name) == "rmse");
    CHECK(primary_better(task_kind::binary, 0.8, 0.7));
    CHECK(primary_better(task_kind::regression, 1.0, 2.0));
    CHECK_FALSE(primary_better(task_kind::regression, NAN, 2.0));
}

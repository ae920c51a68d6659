// Trainers: every algorithm on every task beats the baseline on held-out
// synthetic data, the linear models match scikit-learn, probabilities are
// proper, cancellation stops training, auto search works, and predict is
// consistent across threads.
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <random>
#include <sstream>
#include <thread>

#include "ml/fitted.h"
#include "ml/metrics.h"
#include "ml/trainers.h"

using namespace kennel;
using namespace kennel::ml;
using Catch::Matchers::Contains;

namespace {

// Deterministic data on every platform: mt19937_64's output is specified by
// the standard (its distributions are not), so normals come from Box-Muller.
class gaussian {
  public:
    explicit gaussian(std::uint64_t seed) : engine_(seed) {}
    double operator()() {
        const double u1 = (static_cast<double>(engine_() >> 11) + 0.5) / 9007199254740992.0;
        const double u2 = static_cast<double>(engine_() >> 11) / 9007199254740992.0;
        return std::sqrt(-2 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2);
    }

  private:
    std::mt19937_64 engine_;
};

struct data_set {
    feature_rows x_train, x_test;
    std::vector<double> y_train, y_test;
    std::size_t num_classes = 0;
};

// 400 rows, 4 features; the first 300 train, the last 100 are the holdout.
data_set make_data(task_kind task, std::uint64_t seed = 7) {
    gaussian g(seed);
    data_set d;
    d.num_classes = task == task_kind::binary ? 2 : task == task_kind::multiclass ? 3 : 0;
    for (int i = 0; i < 400; ++i) {
        std::vector<double> x(4);
        for (auto& v : x) v = g();
        double y = 0;
        switch (task) {
            case task_kind::binary:
                y = x[0] + 0.5 * x[1] + 0.3 * g() > 0 ? 1 : 0;
                break;
            case task_kind::multiclass: {
                // Three classes by which of two directions dominates.
                const double a = x[0] + 0.2 * g(), b = x[1] + 0.2 * g();
                y = a > 0.5 ? 0 : (b > 0 ? 1 : 2);
                break;
            }
            case task_kind::regression:
                y = 3 * x[0] - 2 * x[1] + 0.5 * x[2] + 0.3 * g();
                break;
        }
        (i < 300 ? d.x_train : d.x_test).push_back(x);
        (i < 300 ? d.y_train : d.y_test).push_back(y);
    }
    return d;
}

train_params fast_params() {
    train_params p;
    p.num_trees = 50;
    return p;
}

function_ptr train_ok(task_kind task, algorithm algo, const data_set& d,
                      const train_params& p = fast_params()) {
    auto f = train(task, algo, p, d.x_train, d.y_train, d.num_classes);
    INFO(algorithm_name(algo) << ": " << (f ? "ok" : f.error().to_string()));
    REQUIRE(f);
    return *f;
}

// The task's primary metric on the holdout.
double holdout_metric(task_kind task, const fitted_function& f, const data_set& d) {
    std::vector<double> predicted;
    std::vector<std::vector<double>> probabilities;
    for (const auto& x : d.x_test) {
        auto p = f.predict(x);
        predicted.push_back(p.value);
        probabilities.push_back(p.probabilities);
    }
    if (task == task_kind::regression) return evaluate_regression(d.y_test, predicted)->rmse;
    auto m = evaluate_classification(d.y_test, probabilities, d.num_classes);
    REQUIRE(m);
    return task == task_kind::binary ? m->roc_auc : m->log_loss;
}

}  // namespace

TEST_CASE("every algorithm beats the baseline on held-out data for every task", "[trainers]") {
    const auto task = GENERATE(task_kind::binary, task_kind::multiclass, task_kind::regression);
    const auto algo = GENERATE(algorithm::linear, algorithm::kernel, algorithm::forest);
    const auto d = make_data(task);
    const double baseline = holdout_metric(task, *train_ok(task, algorithm::baseline, d), d);
    const double model = holdout_metric(task, *train_ok(task, algo, d), d);
    INFO(task_kind_name(task) << " " << algorithm_name(algo) << ": " << model << " vs baseline "
                              << baseline);
    switch (task) {
        case task_kind::binary:  // ROC-AUC: baseline 0.5
            CHECK(baseline == Approx(0.5));
            CHECK(model > 0.9);
            break;
        case task_kind::multiclass:  // log loss: baseline ~ln 3
            CHECK(model < 0.6 * baseline);
            break;
        case task_kind::regression:  // RMSE
            CHECK(model < 0.5 * baseline);
            break;
    }
}

TEST_CASE("class probabilities are proper and agree with the predicted class", "[trainers]") {
    const auto task = GENERATE(task_kind::binary, task_kind::multiclass);
    const auto algo =
        GENERATE(algorithm::baseline, algorithm::linear, algorithm::kernel, algorithm::forest);
    const auto d = make_data(task);
    const auto f = train_ok(task, algo, d);
    CHECK(f->kind() == algo);
    CHECK(f->num_classes() == d.num_classes);
    for (const auto& x : d.x_test) {
        const auto p = f->predict(x);
        REQUIRE(p.probabilities.size() == d.num_classes);
        double sum = 0;
        for (double q : p.probabilities) {
            CHECK(q >= 0.0);
            CHECK(q <= 1.0);
            sum += q;
        }
        CHECK(sum == Approx(1.0).epsilon(1e-9));
        const auto best = std::max_element(p.probabilities.begin(), p.probabilities.end()) -
                          p.probabilities.begin();
        CHECK(p.value == static_cast<double>(best));
    }
}

TEST_CASE("baseline predicts the majority class with the prior, or the mean", "[trainers]") {
    const feature_rows x = {{1}, {2}, {3}, {4}};
    auto c = train(task_kind::binary, algorithm::baseline, {}, x, {1, 1, 1, 0}, 2);
    REQUIRE(c);
    auto p = (*c)->predict({9});
    CHECK(p.value == 1.0);
    CHECK(p.probabilities == std::vector<double>{0.25, 0.75});
    auto r = train(task_kind::regression, algorithm::baseline, {}, x, {1, 2, 3, 6}, 0);
    REQUIRE(r);
    CHECK((*r)->predict({0}).value == 3.0);
    CHECK((*r)->predict({0}).probabilities.empty());
}

TEST_CASE("a forest refuses labels its float leaves cannot hold, saying so", "[trainers]") {
    // Labels of 1e40: the leaves became infinite and the job failed as
    // "prediction is not finite", without the reason.
    const feature_rows x = {{1}, {2}, {3}, {4}, {5}, {6}};
    const std::vector<double> big = {1e40, 2e40, 3e40, 4e40, 5e40, 6e40};
    auto f = train(task_kind::regression, algorithm::forest, fast_params(), x, big, 0);
    REQUIRE_FALSE(f);
    CHECK(f.error().field() == "y");
    CHECK_THAT(f.error().message(),
               Contains("is 1e+40: a forest keeps its leaf values as 32-bit floats"));
    // Linear models take them.
    CHECK(train(task_kind::regression, algorithm::linear, {}, x, big, 0));
    // Up to the float range, a forest trains.
    CHECK(train(task_kind::regression, algorithm::forest, fast_params(), x,
                {1e37, 2e37, 3e37, 4e37, 5e37, 6e37}, 0));
}

// Reference values: scikit-learn 1.2 LogisticRegression(C=1) (lbfgs,
// tol=1e-10), LogisticRegression(C=1, multi_class="multinomial") and
// Ridge(alpha=1) on the same 12 rows (see the numbers below).
TEST_CASE("linear models match scikit-learn on a small fixed data set", "[trainers]") {
    const feature_rows x = {{0.5, 1.0},   {1.5, -0.5}, {-1.0, 0.3}, {2.0, 1.2},
                            {-0.7, -1.1}, {0.1, 0.4},  {1.1, 0.9},  {-1.8, 0.2},
                            {0.9, -1.4},  {-0.2, 1.7}, {1.3, 0.1},  {-1.2, -0.6}};
    const std::vector<double> yb = {1, 1, 0, 1, 0, 0, 1, 0, 1, 0, 1, 0};
    const std::vector<double> ym = {2, 1, 0, 2, 0, 1, 2, 0, 1, 2, 1, 0};
    const std::vector<double> yr = {1.2, 2.0, -1.1, 3.5, -2.2, 0.4, 2.1, -1.9, 0.3, 0.8, 1.5, -1.7};
    const feature_rows probe = {{0.0, 0.0}, {1.0, -1.0}, {-0.5, 0.8}};

    SECTION("binary logistic regression, C=1 and C=0.1") {
        auto f = train(task_kind::binary, algorithm::linear, {}, x, yb, 2);
        REQUIRE(f);
        const std::vector<double> expected = {0.4091007494007595, 0.7926689958590578,
                                              0.2219338164037588};
        for (std::size_t i = 0; i < probe.size(); ++i)
            CHECK((*f)->predict(probe[i]).probabilities[1] == Approx(expected[i]).margin(1e-6));
        train_params p;
        p.c = 0.1;
        auto g = train(task_kind::binary, algorithm::linear, p, x, yb, 2);
        REQUIRE(g);
        const std::vector<double> expected_01 = {0.4768460644668849, 0.5856578699712451,
                                                 0.42252018134796465};
        for (std::size_t i = 0; i < probe.size(); ++i)
            CHECK((*g)->predict(probe[i]).probabilities[1] == Approx(expected_01[i]).margin(1e-6));
    }
    SECTION("multinomial logistic regression") {
        auto f = train(task_kind::multiclass, algorithm::linear, {}, x, ym, 3);
        REQUIRE(f);
        const std::vector<std::vector<double>> expected = {
            {0.37170125236969387, 0.4137961551147332, 0.21450259251557285},
            {0.11316997886869723, 0.8233989666300362, 0.06343105450126653},
            {0.41769329445766507, 0.17687336532127632, 0.4054333402210586}};
        for (std::size_t i = 0; i < probe.size(); ++i) {
            const auto p = (*f)->predict(probe[i]).probabilities;
            for (std::size_t k = 0; k < 3; ++k) CHECK(p[k] == Approx(expected[i][k]).margin(1e-6));
        }
    }
    SECTION("ridge regression") {
        auto f = train(task_kind::regression, algorithm::linear, {}, x, yr, 0);
        REQUIRE(f);
        const std::vector<double> expected = {0.03684786209209978, 0.6357120729987326,
                                              -0.0736056181934579};
        for (std::size_t i = 0; i < probe.size(); ++i)
            CHECK((*f)->predict(probe[i]).value == Approx(expected[i]).margin(1e-9));
    }
}

TEST_CASE("cancellation returns a cancelled conflict", "[trainers]") {
    const auto algo = GENERATE(algorithm::linear, algorithm::kernel, algorithm::forest);
    const auto task = GENERATE(task_kind::binary, task_kind::multiclass);
    const auto d = make_data(task);
    // Cancel on the third check, i.e. in the middle of training rather than
    // before it starts.
    std::atomic<int> checks{0};
    train_control control;
    control.cancelled = [&] { return ++checks >= 3; };
    auto f = train(task, algo, fast_params(), d.x_train, d.y_train, d.num_classes, control);
    INFO(algorithm_name(algo));
    REQUIRE_FALSE(f);
    CHECK(f.error().kind() == error_kind::conflict);
    CHECK(f.error().message() == "cancelled");
    CHECK(checks >= 3);
}

TEST_CASE("cancellation stops auto search", "[trainers]") {
    const auto d = make_data(task_kind::binary);
    std::atomic<int> checks{0};
    train_control control;
    control.cancelled = [&] { return ++checks >= 20; };
    auto r = auto_search(task_kind::binary, d.x_train, d.y_train, 2, 60, control, fast_params());
    REQUIRE_FALSE(r);
    CHECK(r.error().message() == "cancelled");
}

TEST_CASE("progress reports stages, and kernel rows are capped", "[trainers]") {
    const auto d = make_data(task_kind::binary);
    std::vector<std::string> messages;
    train_control control;
    control.progress = [&](double fraction, const std::string& m) {
        CHECK(fraction >= 0.0);
        CHECK(fraction <= 1.0);
        messages.push_back(m);
    };
    train_params p = fast_params();
    p.max_kernel_rows = 100;
    auto f = train(task_kind::binary, algorithm::kernel, p, d.x_train, d.y_train, 2, control);
    REQUIRE(f);
    REQUIRE_FALSE(messages.empty());
    CHECK_THAT(messages.front(), Contains("training on 100 of 300 rows"));
    CHECK(messages.back() == "kernel: done");
}

TEST_CASE("the kernel's row sample keeps a rare class", "[trainers]") {
    // 8 positives in 4,000 rows, sampled down to 300: a uniform sample kept
    // none or one, and calibration failed for want of them.
    gaussian g(3);
    feature_rows x;
    std::vector<double> y;
    for (int i = 0; i < 4000; ++i) {
        const bool positive = i % 500 == 7;
        x.push_back({g() + (positive ? 4.0 : 0.0), g()});
        y.push_back(positive ? 1.0 : 0.0);
    }
    train_params p = fast_params();
    p.max_kernel_rows = 300;
    std::vector<std::string> messages;
    train_control control;
    control.progress = [&](double, const std::string& m) { messages.push_back(m); };
    auto f = train(task_kind::binary, algorithm::kernel, p, x, y, 2, control);
    INFO((f ? std::string("trained") : f.error().message()));
    REQUIRE(f);
    CHECK_THAT(messages.front(), Contains("training on 300 of 4000 rows"));
    // The rare class is told apart: far out along the first axis it is likely.
    CHECK((*f)->predict({6.0, 0.0}).probabilities[1] > 0.5);
    CHECK((*f)->predict({0.0, 0.0}).probabilities[1] < 0.5);
}

TEST_CASE("auto search picks a candidate that beats the baseline", "[trainers]") {
    const auto task = GENERATE(task_kind::binary, task_kind::multiclass, task_kind::regression);
    const auto d = make_data(task);
    std::vector<std::string> messages;
    train_control control;
    control.progress = [&](double, const std::string& m) { messages.push_back(m); };
    // A budget no machine reaches: the search ends at its call limits, and
    // the test checks what it tried, not how much fits in a time.
    auto r = auto_search(task, d.x_train, d.y_train, d.num_classes, 600, control, fast_params());
    REQUIRE(r);
    INFO("picked " << algorithm_name(r->algo) << " score " << r->cv_score << " baseline "
                   << r->baseline_score);
    CHECK(r->algo != algorithm::baseline);
    CHECK(r->cv_score > r->baseline_score);
    CHECK(r->score_name == (task == task_kind::regression ? "neg_rmse" : "neg_log_loss"));
    // Every algorithm was tried and every candidate was reported.
    for (auto a : {algorithm::linear, algorithm::forest, algorithm::kernel}) {
        CHECK(std::any_of(r->tried.begin(), r->tried.end(),
                          [&](const search_candidate& c) { return c.algo == a; }));
    }
    CHECK(r->tried.size() >= 4);
    const auto candidate_lines = std::count_if(messages.begin(), messages.end(), [](const auto& m) {
        return m.find(" -> ") != std::string::npos;
    });
    CHECK(static_cast<std::size_t>(candidate_lines) == r->tried.size());
    // The pick, trained on all the training rows, beats the baseline on the holdout.
    const double base = holdout_metric(task, *train_ok(task, algorithm::baseline, d), d);
    const double model = holdout_metric(task, *train_ok(task, r->algo, d, r->params), d);
    CHECK(primary_better(task, model, base));
}

// The budget was looked at only between folds, and a forest's fold on wide
// or long data takes minutes: the search ran on to the job's deadline and
// kept nothing. A clock of the test's own (one second a look) makes the one
// tree timed first take a second, so 5,000 trees would take 5,000 s, past a
// budget of 1,000.
TEST_CASE("auto search does not start a forest whose fold would end past the budget",
          "[trainers]") {
    const auto d = make_data(task_kind::binary);
    std::vector<std::string> messages;
    double now = 0;
    train_control control;
    control.progress = [&](double, const std::string& m) { messages.push_back(m); };
    control.seconds = [&] { return now += 1.0; };
    train_params p = fast_params();
    p.num_trees = 5000;
    auto r = auto_search(task_kind::binary, d.x_train, d.y_train, 2, 1000, control, p);
    REQUIRE(r);
    CHECK(std::none_of(r->tried.begin(), r->tried.end(),
                       [](const search_candidate& c) { return c.algo == algorithm::forest; }));
    // The search went on: the kernel, whose rows are capped, was tried.
    CHECK(std::any_of(r->tried.begin(), r->tried.end(),
                      [](const search_candidate& c) { return c.algo == algorithm::kernel; }));
    CHECK(std::count_if(messages.begin(), messages.end(), [](const std::string& m) {
              return m ==
                     "auto: forest skipped: one tree took 1 s, so one fold would take about "
                     "5000 s, past the time budget";
          }) == 1);
}

// A candidate that fails scores -inf; handed to Dlib's global search, that
// crashed the training process (SIGSEGV in its trust-region step). Labels
// near the double range make every candidate fail.
TEST_CASE("auto search survives candidates that all fail", "[trainers]") {
    auto d = make_data(task_kind::regression);
    d.y_train[3] = 1e308;
    d.y_train[4] = 1e308;
    std::vector<std::string> messages;
    train_control control;
    control.progress = [&](double, const std::string& m) { messages.push_back(m); };
    auto r =
        auto_search(task_kind::regression, d.x_train, d.y_train, 0, 20, control, fast_params());
    REQUIRE(r);
    CHECK(r->algo == algorithm::baseline);
    // Each algorithm's default was scored; none was searched further.
    for (auto a : {algorithm::linear, algorithm::forest, algorithm::kernel}) {
        CHECK(std::count_if(r->tried.begin(), r->tried.end(),
                            [&](const search_candidate& c) { return c.algo == a; }) == 1);
    }
}

TEST_CASE("predict gives the same answers from 4 threads at once", "[trainers]") {
    const auto task = GENERATE(task_kind::binary, task_kind::multiclass, task_kind::regression);
    const auto algo = GENERATE(algorithm::linear, algorithm::kernel, algorithm::forest);
    const auto d = make_data(task);
    train_params p = fast_params();
    p.threads = 2;  // also exercises the batched forest growth
    const auto f = train_ok(task, algo, d, p);
    std::vector<prediction> expected;
    for (const auto& x : d.x_test) expected.push_back(f->predict(x));
    std::atomic<int> mismatches{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int round = 0; round < 5; ++round) {
                for (std::size_t i = 0; i < d.x_test.size(); ++i) {
                    const auto q = f->predict(d.x_test[i]);
                    if (q.value != expected[i].value ||
                        q.probabilities != expected[i].probabilities)
                        ++mismatches;
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    CHECK(mismatches == 0);
}

TEST_CASE("training is deterministic", "[trainers]") {
    const auto algo = GENERATE(algorithm::kernel, algorithm::forest);
    const auto d = make_data(task_kind::binary);
    const auto a = train_ok(task_kind::binary, algo, d);
    const auto b = train_ok(task_kind::binary, algo, d);
    for (const auto& x : d.x_test)
        CHECK(a->predict(x).probabilities == b->predict(x).probabilities);
}

TEST_CASE("bad training inputs are refused with a status", "[trainers]") {
    const feature_rows x = {{1, 2}, {3, 4}, {5, 6}};
    auto mismatched = train(task_kind::binary, algorithm::linear, {}, x, {0, 1}, 2);
    REQUIRE_FALSE(mismatched);
    CHECK(mismatched.error().kind() == error_kind::invalid_argument);

    auto ragged = train(task_kind::regression, algorithm::linear, {}, {{1, 2}, {3}}, {0, 1}, 0);
    REQUIRE_FALSE(ragged);
    CHECK(ragged.error().kind() == error_kind::invalid_argument);

    auto one_class = train(task_kind::binary, algorithm::forest, {}, x, {1, 1, 1}, 2);
    REQUIRE_FALSE(one_class);
    CHECK(one_class.error().kind() == error_kind::failed_precondition);

    auto too_few = train(task_kind::binary, algorithm::kernel, {}, x, {1, 0, 1}, 2);
    REQUIRE_FALSE(too_few);
    CHECK(too_few.error().kind() == error_kind::failed_precondition);

    train_params bad;
    bad.c = -1;
    auto bad_c = train(task_kind::binary, algorithm::linear, bad, x, {1, 0, 1}, 2);
    REQUIRE_FALSE(bad_c);
    CHECK(bad_c.error().field() == "params.c");

    auto wrong_width = train(task_kind::binary, algorithm::linear, {}, x, {1, 0, 1}, 2);
    REQUIRE(wrong_width);
    CHECK(std::isnan((*wrong_width)->predict({1.0}).value));

    CHECK(*parse_algorithm("forest") == algorithm::forest);
    CHECK_FALSE(parse_algorithm("auto"));
}

// The linear scores are summed by a loop instead of Dlib's BLAS product; they
// must equal that product (and so what earlier builds served) bit for bit.
TEST_CASE("linear scores equal Dlib's matrix product exactly", "[trainers]") {
    std::mt19937_64 rng(7);
    std::normal_distribution<double> g(0, 3);
    for (std::size_t outputs : {1, 4}) {
        const long nf = 37;
        dlib::matrix<double> w(static_cast<long>(outputs), nf);
        detail::sample_type b(static_cast<long>(outputs));
        for (long r = 0; r < w.nr(); ++r) {
            b(r) = g(rng);
            for (long c = 0; c < nf; ++c)
                w(r, c) = g(rng) * std::pow(10.0, static_cast<double>(c % 7) - 3);
        }
        const task_kind task = outputs == 1 ? task_kind::regression : task_kind::multiclass;
        detail::linear_function f(task, nf, outputs == 1 ? 0 : outputs, w, b);
        for (int i = 0; i < 200; ++i) {
            std::vector<double> x(nf);
            for (auto& v : x) v = g(rng);
            const detail::sample_type z = w * detail::to_sample(x) + b;
            const prediction p = f.predict(x);
            if (outputs == 1) {
                CHECK(p.value == z(0));
            } else {
                // Softmax of the same scores.
                const double m = dlib::max(z);
                std::vector<double> e(outputs);
                double sum = 0;
                for (std::size_t k = 0; k < outputs; ++k)
                    sum += e[k] = std::exp(z(static_cast<long>(k)) - m);
                REQUIRE(p.probabilities.size() == outputs);
                for (std::size_t k = 0; k < outputs; ++k) CHECK(p.probabilities[k] == e[k] / sum);
            }
        }
    }
}

// Forests predict through their own layout (detail::flat_forest); it must
// give what Dlib's forest gives, bit for bit, on any input, in both of its
// node sizes.

// The compact node holds a feature index and the distance to the right
// child in 32 bits; a forest whose numbers do not fit keeps 12-byte nodes.
TEST_CASE("a forest whose feature indexes need too many bits keeps the wide layout", "[trainers]") {
    using node = dlib::internal_tree_node<dlib::dense_feature_extractor>;
    // One split on feature 2^30 (31 bits) with its right child 2 nodes on:
    // 2 << 31 does not fit in 32 bits.
    std::vector<std::vector<node>> trees{{node{1, 2, 0.5f, 1u << 30}}};
    std::vector<std::vector<float>> leaves{{1.0f, 2.0f}};
    const detail::forest_type forest(dlib::dense_feature_extractor(), std::move(trees),
                                     std::move(leaves));
    CHECK(detail::flat_forest(forest).used() == detail::flat_forest::layout::wide);
    // One feature fewer bit (2^29, 30 bits): 2 << 30 fits.
    std::vector<std::vector<node>> small{{node{1, 2, 0.5f, 1u << 29}}};
    std::vector<std::vector<float>> small_leaves{{1.0f, 2.0f}};
    const detail::forest_type fits(dlib::dense_feature_extractor(), std::move(small),
                                   std::move(small_leaves));
    CHECK(detail::flat_forest(fits).used() == detail::flat_forest::layout::compact);
}
TEST_CASE("the flat forest predicts exactly what Dlib's forest predicts", "[trainers]") {
    using layout = detail::flat_forest::layout;
    const layout nodes = GENERATE(layout::compact, layout::wide);
    std::mt19937_64 rng(11);
    std::normal_distribution<double> g(0, 2);
    const long nf = 6;
    std::vector<detail::sample_type> xs;
    std::vector<double> ys;
    for (int i = 0; i < 400; ++i) {
        detail::sample_type s(nf);
        for (long j = 0; j < nf; ++j) s(j) = j == 5 ? static_cast<double>(i % 3) : g(rng);
        xs.push_back(s);
        ys.push_back(s(0) * s(1) > 0 ? 1.0 : 0.0);
    }
    for (unsigned long min_leaf : {1ul, 5ul, 1000ul}) {  // 1000: every tree a single leaf
        dlib::random_forest_regression_trainer<dlib::dense_feature_extractor> trainer;
        trainer.set_num_trees(23);  // not a multiple of the walks run side by side
        trainer.set_min_samples_per_leaf(min_leaf);
        const detail::forest_type forest = trainer.train(xs, ys);
        const detail::flat_forest flat(forest, nodes);
        REQUIRE(flat.used() == nodes);  // 6 features: the compact form fits
        std::vector<std::vector<double>> probes;
        for (const auto& s : xs) probes.emplace_back(s.begin(), s.end());
        // Split thresholds themselves (x == threshold goes right), NaN and infinities.
        for (const auto& tree : forest.get_internal_tree_nodes()) {
            for (const auto& n : tree) {
                std::vector<double> p(nf, 0.0);
                p[n.split_feature] = n.split_threshold;
                probes.push_back(p);
            }
        }
        const double odd[] = {std::numeric_limits<double>::quiet_NaN(),
                              std::numeric_limits<double>::infinity(),
                              -std::numeric_limits<double>::infinity(), -0.0};
        for (double v : odd) {
            for (long j = 0; j < nf; ++j) {
                std::vector<double> p(probes[static_cast<std::size_t>(j)]);
                p[static_cast<std::size_t>(j)] = v;
                probes.push_back(p);
            }
        }
        for (const auto& p : probes) {
            const double want = forest(detail::to_sample(p));
            const double got = flat(p);
            CHECK((got == want || (std::isnan(got) && std::isnan(want))));
        }
    }
}

// A stored forest whose nodes share a child (node i's left and right both
// i + 1) passes "children point forward" but is a graph, not a tree: laid
// out one node per path it has 2^depth nodes. Loading it must be refused,
// not crash (it wrote past the flat layout's end) or exhaust memory.
TEST_CASE("a stored forest whose nodes share a child is refused", "[trainers]") {
    using node = dlib::internal_tree_node<dlib::dense_feature_extractor>;
    const std::uint32_t depth = GENERATE(2u, 3u, 20u);
    const bool same_node = GENERATE(true, false);  // left == right, or two parents of one node
    std::vector<node> chain;
    for (std::uint32_t i = 0; i < depth; ++i) {
        // Either both children are i + 1, or the right child of every node is
        // the last leaf (so that leaf has many parents).
        chain.push_back(same_node ? node{i + 1, i + 1, 0.5f, 0u}
                                  : node{i + 1, depth + 1, 0.5f, 0u});
    }
    std::vector<std::vector<node>> trees{chain};
    std::vector<std::vector<float>> leaves{{1.0f, 2.0f}};
    dlib::dense_feature_extractor fe;
    fe.setup({detail::to_sample({0.0})}, {0.0});
    std::vector<detail::forest_type> forests;
    forests.emplace_back(std::move(fe), std::move(trees), std::move(leaves));
    std::stringstream stored;
    dlib::serialize(std::string("forest"), stored);
    dlib::serialize(static_cast<std::uint64_t>(task_kind::regression), stored);
    dlib::serialize(std::uint64_t{1}, stored);  // features
    dlib::serialize(std::uint64_t{0}, stored);  // classes
    dlib::serialize(forests, stored);
    const auto loaded = load_function(stored, load_use::predict);
    REQUIRE_FALSE(loaded);
    CHECK_THAT(loaded.error().message(), Contains("forest structure is invalid"));
    // Laid out directly (not through the loader), it throws instead.
    CHECK_THROWS_AS(detail::flat_forest(forests[0]), std::invalid_argument);
}

// The flat forest's nodes live in their own mapping; a large one starts on
// a 2 MiB boundary (so its pages can be huge) and is whole and zeroed.
TEST_CASE("a mapped array is zeroed and movable and a large one is 2 MiB aligned", "[trainers]") {
    const std::size_t n = GENERATE(std::size_t{3}, std::size_t{1} << 20);  // 12 bytes, 4 MiB
    detail::mapped_array<std::uint32_t> a(n);
    REQUIRE(a.size() == n);
    if (n * sizeof(std::uint32_t) >= (std::size_t{2} << 20))
        CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % (std::size_t{2} << 20) == 0);
    bool zero = true;
    for (std::size_t i = 0; i < n; ++i) zero = zero && a[i] == 0;
    CHECK(zero);
    for (std::size_t i = 0; i < n; ++i) a[i] = static_cast<std::uint32_t>(i * 7);
    detail::mapped_array<std::uint32_t> b(std::move(a));
    CHECK(a.size() == 0);
    CHECK(a.data() == nullptr);
    REQUIRE(b.size() == n);
    CHECK(b[n - 1] == static_cast<std::uint32_t>((n - 1) * 7));
    b = detail::mapped_array<std::uint32_t>();
    CHECK(b.size() == 0);
}

TEST_CASE("a mapped array too large to map, or whose size overflows, is bad_alloc", "[trainers]") {
    // 2^60 elements of 8 bytes: more than any address space; mmap refuses.
    CHECK_THROWS_AS(detail::mapped_array<std::uint64_t>(std::size_t{1} << 60), std::bad_alloc);
    // n * 8 wraps around to a small number: once a small mapping, then
    // writes past its end.
    CHECK_THROWS_AS(detail::mapped_array<std::uint64_t>((SIZE_MAX >> 3) + 2), std::bad_alloc);
    CHECK_THROWS_AS(detail::mapped_array<std::uint64_t>(SIZE_MAX), std::bad_alloc);
    // And the next one is made as usual.
    detail::mapped_array<std::uint64_t> fine(16);
    CHECK(fine.size() == 16);
}

// With the rows' times (a holdout by time), each fold is scored by a fit on
// the rows before it only. The label rises with time, so the baseline (the
// training rows' mean) always guesses low: by exactly as much as computed
// here for four runs of 100 rows, three of them scored.
TEST_CASE("auto search with the rows' times: folds go forward in time", "[trainers]") {
    const int n = 400;
    feature_rows x;
    std::vector<double> y;
    std::vector<std::int64_t> times;
    for (int i = 0; i < n; ++i) {
        const int t = (i * 7919) % n;  // the rows out of time order
        x.push_back({static_cast<double>(i % 13)});
        y.push_back(t);
        times.push_back(1'700'000'000'000'000LL + 1'000'000LL * t);
    }
    double squares = 0;
    for (int run = 1; run <= 3; ++run) {
        const double mean = (100.0 * run - 1) / 2;  // of t = 0 .. 100 run - 1
        for (int t = 100 * run; t < 100 * (run + 1); ++t) squares += (t - mean) * (t - mean);
    }
    const double forward_rmse = std::sqrt(squares / 300);
    std::vector<std::string> messages;
    train_control control;
    control.progress = [&](double, const std::string& m) { messages.push_back(m); };
    // A budget spent at once: the baseline is scored, nothing else.
    auto r = auto_search(task_kind::regression, x, y, 0, 1e-9, control, fast_params(), times);
    REQUIRE(r);
    CHECK(r->baseline_score == Approx(-forward_rmse));
    REQUIRE_FALSE(messages.empty());
    CHECK_THAT(messages.front(), Contains("3-fold cross-validation forward in time"));

    SECTION("without times the folds are drawn at random, and see the future") {
        auto random = auto_search(task_kind::regression, x, y, 0, 1e-9, {}, fast_params());
        REQUIRE(random);
        CHECK(random->baseline_score > -0.8 * forward_rmse);
    }
    SECTION("rows at one time are dealt in a seeded shuffle, not in the order given") {
        // Given in label order at one time: dealt in that order, every fold
        // would guess low as above (the rows come in entity order).
        std::vector<double> ordered(y.size());
        for (std::size_t i = 0; i < ordered.size(); ++i) ordered[i] = static_cast<double>(i);
        const std::vector<std::int64_t> same(times.size(), times.front());
        auto tied =
            auto_search(task_kind::regression, x, ordered, 0, 1e-9, {}, fast_params(), same);
        REQUIRE(tied);
        CHECK(tied->baseline_score > -0.8 * forward_rmse);
    }
    SECTION("a class missing from the earliest rows makes them random, and says why") {
        std::vector<double> late(y.size());
        for (std::size_t i = 0; i < y.size(); ++i) late[i] = y[i] >= 150 ? 1.0 : 0.0;
        messages.clear();
        auto b = auto_search(task_kind::binary, x, late, 2, 1e-9, control, fast_params(), times);
        REQUIRE(b);
        REQUIRE_FALSE(messages.empty());
        CHECK_THAT(messages.front(),
                   Contains("folds drawn at random, not in time order: the earliest 100 rows "
                            "hold fewer than 3 rows of 1 of the 2 classes"));
    }
    SECTION("a time for each row, or none") {
        const std::vector<std::int64_t> three(times.begin(), times.begin() + 3);
        auto bad = auto_search(task_kind::regression, x, y, 0, 1e-9, {}, fast_params(), three);
        REQUIRE_FALSE(bad);
        CHECK(bad.error().field() == "times");
    }
}

// Decision rules: the operating point each picks on small cases worked by
// hand, and on random ones against a direct search over every threshold.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>

#include "ml/decision.h"
#include "ml/metrics.h"

using namespace kennel::ml;

namespace {

decision_policy rule(decision_rule r, double target = 0) {
    decision_policy p;
    p.rule = r;
    p.target = target;
    return p;
}

decision_policy cost(double fp, double fn) {
    decision_policy p;
    p.rule = decision_rule::min_cost;
    p.false_positive_cost = fp;
    p.false_negative_cost = fn;
    return p;
}

// Ranked: P N P P N P N N. Precision and recall at each score, highest first:
// 0.9 1/.25, 0.8 .5/.25, 0.7 .667/.5, 0.6 .75/.75, 0.5 .6/.75, 0.4 .667/1,
// 0.3 .571/1, 0.2 .5/1.
const std::vector<bool> y = {true, false, true, true, false, true, false, false};
const std::vector<double> s = {0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2};

}  // namespace

TEST_CASE("min_precision takes the most recall that keeps the precision", "[decision]") {
    auto p = choose_operating_point(rule(decision_rule::min_precision, 0.75), y, s);
    CHECK(p.met);
    CHECK(p.threshold == 0.6);
    CHECK(p.precision == 0.75);
    CHECK(p.recall == 0.75);
    CHECK(p.true_positives == 3);
    CHECK(p.false_positives == 1);
    CHECK(choose_operating_point(rule(decision_rule::min_precision, 0.7), y, s).threshold == 0.6);
    CHECK(choose_operating_point(rule(decision_rule::min_precision, 0.6), y, s).threshold == 0.4);
    CHECK(choose_operating_point(rule(decision_rule::min_precision, 1.0), y, s).threshold == 0.9);
}

TEST_CASE("min_precision out of reach is not met and keeps the highest precision", "[decision]") {
    // The top score is a negative: no threshold reaches 1.
    const std::vector<bool> yy = {false, true, true, true, false};
    const std::vector<double> ss = {0.95, 0.9, 0.8, 0.7, 0.1};
    auto p = choose_operating_point(rule(decision_rule::min_precision, 1.0), yy, ss);
    CHECK_FALSE(p.met);
    CHECK(p.threshold == 0.7);  // 3 of 4
    CHECK(p.precision == 0.75);
    CHECK(p.unmet == "no threshold reaches precision 1 (the highest is 0.75, at threshold 0.7)");
}

TEST_CASE("min_recall takes the highest threshold that keeps the recall", "[decision]") {
    CHECK(choose_operating_point(rule(decision_rule::min_recall, 0.75), y, s).threshold == 0.6);
    CHECK(choose_operating_point(rule(decision_rule::min_recall, 0.5), y, s).threshold == 0.7);
    auto all = choose_operating_point(rule(decision_rule::min_recall, 1.0), y, s);
    CHECK(all.met);
    CHECK(all.threshold == 0.4);
    CHECK(all.recall == 1.0);
}

TEST_CASE("max_false_positive_rate takes the most recall under the rate", "[decision]") {
    CHECK(choose_operating_point(rule(decision_rule::max_false_positive_rate, 0.25), y, s)
              .threshold == 0.6);
    auto none = choose_operating_point(rule(decision_rule::max_false_positive_rate, 0.0), y, s);
    CHECK(none.met);
    CHECK(none.threshold == 0.9);
    CHECK(none.false_positive_rate == 0);
    // A top negative: only answering no row positive keeps the rate at 0.
    const std::vector<bool> yy = {false, true};
    const std::vector<double> ss = {0.8, 0.7};
    auto nothing =
        choose_operating_point(rule(decision_rule::max_false_positive_rate, 0.0), yy, ss);
    CHECK(nothing.met);
    CHECK(nothing.threshold > 0.8);
    CHECK(nothing.predicted_positive() == 0);
    CHECK(nothing.recall == 0);
}

TEST_CASE("min_cost weighs the errors; of equal cost the higher threshold", "[decision]") {
    auto even = choose_operating_point(cost(1, 1), y, s);
    CHECK(even.threshold == 0.6);  // cost 2, as at 0.4
    CHECK(even.cost == 2);
    auto wary = choose_operating_point(cost(10, 1), y, s);
    CHECK(wary.threshold == 0.9);
    CHECK(wary.cost == 3);
    auto eager = choose_operating_point(cost(1, 10), y, s);
    CHECK(eager.threshold == 0.4);
    CHECK(eager.cost == 2);
}

TEST_CASE("the f1 rule is the F1-best threshold of the metrics", "[decision]") {
    auto p = choose_operating_point(rule(decision_rule::f1), y, s);
    CHECK(p.met);
    CHECK(p.threshold == 0.4);
    CHECK(p.f1 == Approx(0.8));
    auto t = f1_best_threshold(y, s);
    CHECK(p.threshold == t.threshold);
    CHECK(p.f1 == t.f1);
}

TEST_CASE("rows of one score cross the threshold together", "[decision]") {
    const std::vector<bool> yy = {true, false, true, false};
    const std::vector<double> ss = {0.7, 0.7, 0.7, 0.2};
    auto p = choose_operating_point(rule(decision_rule::min_recall, 0.5), yy, ss);
    CHECK(p.threshold == 0.7);
    CHECK(p.true_positives == 2);
    CHECK(p.false_positives == 1);
    auto at = operating_point_at(0.7, yy, ss);
    CHECK(at.predicted_positive() == 3);
    CHECK(at.accuracy == 0.75);
}

TEST_CASE("no row of a class: the rule cannot be met and 0.5 stands", "[decision]") {
    auto p =
        choose_operating_point(rule(decision_rule::min_precision, 0.9), {false, false}, {0.3, 0.8});
    CHECK_FALSE(p.met);
    CHECK(p.unmet == "the rows hold no row of the positive class");
    CHECK(p.threshold == 0.5);
    auto q = choose_operating_point(rule(decision_rule::max_false_positive_rate, 0.1), {true, true},
                                    {0.3, 0.8});
    CHECK_FALSE(q.met);
    CHECK(q.unmet == "the rows hold no row of the negative class");
    // A fixed threshold needs no class: it is what it says.
    decision_policy fixed;
    fixed.rule = decision_rule::fixed;
    fixed.threshold = 0.7;
    auto f = choose_operating_point(fixed, {false, false}, {0.3, 0.8});
    CHECK(f.met);
    CHECK(f.threshold == 0.7);
    CHECK(f.false_positives == 1);
}

TEST_CASE("Wilson intervals match scipy's", "[decision]") {
    // scipy.stats.binomtest(k, n).proportion_ci(method="wilson")
    auto [a, b] = wilson_interval(8, 10);
    CHECK(a == Approx(0.4901624715366418).epsilon(1e-12));
    CHECK(b == Approx(0.9433178485456248).epsilon(1e-12));
    auto [c, d] = wilson_interval(0, 5);
    CHECK(c == 0);
    CHECK(d == Approx(0.43448246478317476).epsilon(1e-12));
    auto [e, f] = wilson_interval(5, 5);
    CHECK(e == Approx(0.5655175352168251).epsilon(1e-12));
    CHECK(f == 1);
    auto [g, h] = wilson_interval(0, 0);
    CHECK(g == 0);
    CHECK(h == 1);
    // The ends exactly (the formula leaves 7e-18 at 0 of 48).
    CHECK(wilson_interval(0, 48).first == 0.0);
    CHECK(wilson_interval(48, 48).second == 1.0);
}

TEST_CASE("rules are written back in full, without an exponent for everyday values", "[decision]") {
    decision_policy p;
    p.rule = decision_rule::max_false_positive_rate;
    p.target = 0.0004;
    CHECK(describe(p) == "max_false_positive_rate 0.0004");
    p.rule = decision_rule::min_recall;
    p.target = 0.90000000001;
    CHECK(describe(p) == "min_recall 0.90000000001");
    CHECK(plain_number(1e-300) == "1e-300");
    CHECK(short_number(1.76527e-05) == "0.0000176527");
    CHECK(short_number(0.242494271) == "0.242494");
    CHECK(short_number(0) == "0");
    CHECK(short_number(1) == "1");
    CHECK(short_number(123456.7) == "123457");
    CHECK(short_number(1e-9) == "1e-09");
}

TEST_CASE("a rate's interval over n independent units, at the ends exactly", "[decision]") {
    // As Wilson's over whole counts: 8 of 10.
    auto [a, b] = wilson_interval_of_rate(0.8, 10);
    CHECK(a == Approx(0.4901624715366418).epsilon(1e-12));
    CHECK(b == Approx(0.9433178485456248).epsilon(1e-12));
    // 300 rows of one entity are one unit: the interval is wide.
    auto [c, d] = wilson_interval_of_rate(0.0, 1);
    CHECK(c == 0.0);
    CHECK(d > 0.79);
    CHECK(wilson_interval_of_rate(1.0, 5).second == 1.0);
    auto [e, f] = wilson_interval_of_rate(0.5, 0);
    CHECK(e == 0.0);
    CHECK(f == 1.0);
    CHECK(plain_number(0) == "0");
    CHECK(plain_number(20) == "20");
}

TEST_CASE("on random rows each rule picks what a search of every threshold does", "[decision]") {
    std::mt19937_64 rng(7);
    std::uniform_int_distribution<int> size(2, 40), grain(0, 10);
    std::bernoulli_distribution coin(0.4);
    for (int round = 0; round < 300; ++round) {
        const int n = size(rng);
        std::vector<bool> yy(n);
        std::vector<double> ss(n);
        for (int i = 0; i < n; ++i) {
            yy[i] = coin(rng);
            ss[i] = grain(rng) / 10.0;  // many ties
        }
        std::size_t pos = 0;
        for (bool b : yy) pos += b;
        if (pos == 0 || pos == yy.size()) continue;
        // Every threshold: each distinct score and one above them all.
        std::vector<double> ts(ss);
        ts.push_back(2.0);
        const double target = grain(rng) / 10.0 * 0.9 + 0.05;
        auto best = [&](decision_rule r) {
            // (ok, key to maximise) for a point; ties to the higher threshold.
            std::optional<std::pair<double, double>> pick;  // (key, threshold)
            for (double t : ts) {
                auto p = operating_point_at(t, yy, ss);
                bool ok = true;
                double key = 0;
                switch (r) {
                    case decision_rule::min_precision:
                        ok = p.predicted_positive() > 0 && p.precision >= target;
                        key = p.recall;
                        break;
                    case decision_rule::min_recall:
                        ok = p.recall >= target;
                        key = -static_cast<double>(p.predicted_positive());
                        break;
                    case decision_rule::max_false_positive_rate:
                        ok = p.false_positive_rate <= target;
                        key = p.recall;
                        break;
                    case decision_rule::min_cost:
                        key = -(2.0 * p.false_positives + 3.0 * (pos - p.true_positives));
                        break;
                    default:
                        key = p.f1;
                        ok = t <= 1.0;
                }
                if (!ok) continue;
                if (!pick || key > pick->first || (key == pick->first && t > pick->second))
                    pick = {key, t};
            }
            return pick;
        };
        for (decision_rule r :
             {decision_rule::min_precision, decision_rule::min_recall,
              decision_rule::max_false_positive_rate, decision_rule::min_cost, decision_rule::f1}) {
            decision_policy p = r == decision_rule::min_cost ? cost(2, 3) : rule(r, target);
            auto got = choose_operating_point(p, yy, ss);
            auto want = best(r);
            INFO("round " << round << " rule " << decision_rule_name(r) << " target " << target);
            REQUIRE(got.met == want.has_value());
            if (!want) continue;
            // The search's "above them all" is any threshold above the top.
            if (want->second == 2.0) {
                CHECK(got.predicted_positive() == 0);
            } else {
                CHECK(got.threshold == want->second);
            }
        }
    }
}

TEST_CASE("a rate with nothing to count is undefined, not 0", "[decision]") {
    // Nothing answered positive: precision undefined; no negative row: the
    // false positive rate undefined.
    auto p = operating_point_of({true, true, false}, {false, false, false});
    CHECK(std::isnan(p.precision));
    CHECK(p.recall == 0);
    CHECK(p.false_positive_rate == 0);
    CHECK(p.accuracy == Approx(1.0 / 3));
    auto q = operating_point_of({true, true}, {true, false});
    CHECK(q.precision == 1);
    CHECK(q.recall == 0.5);
    CHECK(std::isnan(q.false_positive_rate));
    auto r = operating_point_of({false, false}, {false, true});
    CHECK(std::isnan(r.recall));
    CHECK(r.precision == 0);
    CHECK(r.false_positive_rate == 0.5);
    CHECK(std::isnan(r.f1) == false);  // 0 true positives of 1 answered: f1 0
    CHECK(r.f1 == 0);
    auto none = operating_point_of({false}, {false});
    CHECK(std::isnan(none.f1));
    // As metrics, undefined stays undefined (written as null).
    metric_listing m;
    add_decision_metrics(m, p);
    CHECK(std::isnan(m.get("decision_precision")));
    CHECK(m.get("decision_recall") == 0);
}

TEST_CASE("decisions as served count as the threshold that made them would", "[decision]") {
    std::vector<bool> decided(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) decided[i] = s[i] >= 0.6;
    auto a = operating_point_of(y, decided);
    auto b = operating_point_at(0.6, y, s);
    CHECK(a.true_positives == b.true_positives);
    CHECK(a.false_positives == b.false_positives);
    CHECK(a.precision == b.precision);
    CHECK(a.recall == b.recall);
    CHECK(std::isnan(a.threshold));
    CHECK(b.threshold == 0.6);
}

TEST_CASE("the stored threshold: the operating point's, else the F1-best, else 0.5", "[decision]") {
    CHECK(decision_threshold_in_metrics(
              R"({"best_threshold": 0.4, "decision": {"threshold": 0.7}})") == 0.7);
    CHECK(decision_threshold_in_metrics(R"({"best_threshold": 0.4})") == 0.4);
    CHECK(decision_threshold_in_metrics(R"({"best_threshold": null})") == 0.5);
    CHECK(decision_threshold_in_metrics("not json") == 0.5);
}

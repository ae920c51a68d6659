// Unit tests for the learning path around the trainers: the publish gate
// (ml::evaluate_gate), model definitions (parse_definition and
// canonical_definition_json), point-in-time training sets read from a real
// SQLite database (ml::build_training_set), and one training run end to end
// (ml::train_model): split by entity, gate, artifact.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "ml/artifact.h"
#include "ml/dataset.h"
#include "ml/definition.h"
#include "ml/definition_json.h"
#include "ml/trainers.h"
#include "ml/training.h"
#include "ml/training_data.h"
#include "ml/training_worker.h"
#include "store/db.h"
#include "store/facts.h"
#include "store/migrations.h"
#include "store/registry.h"
#include "store/time_util.h"

#include "tests/unit/test_support.h"

using namespace kennel;
using kennel::testing::fact_db;
using kennel::testing::temp_dir;
using namespace kennel::ml;
using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using Catch::Matchers::StartsWith;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// ---- gate helpers -----------------------------------------------------------

metric_listing listing(std::vector<std::pair<std::string, double>> values) {
    metric_listing m;
    m.values = std::move(values);
    return m;
}

std::string all_reasons(const gate_decision& g) {
    std::string s;
    for (const auto& r : g.reasons) s += r + "\n";
    return s;
}

// ---- definition helpers -----------------------------------------------------

std::vector<std::string> error_fields(const parsed_definition& p) {
    std::vector<std::string> out;
    for (const auto& e : p.errors) out.push_back(e.field);
    return out;
}

std::string error_text(const parsed_definition& p) {
    std::string s;
    for (const auto& e : p.errors) s += e.field + ": " + e.message + "\n";
    return s;
}

const char* minimal_definition = R"({
  "task": "regression", "features_from": "posts",
  "label": {"stream": "likes", "field": "likes"},
  "features": [{"field": "length"}]
})";

const char* full_definition = R"({
  "task": "binary", "features_from": "posts",
  "label": {"stream": "outcomes", "field": "clicked"},
  "features": [
    {"field": "a", "transform": "log"},
    {"field": "b", "transform": "binarize", "threshold": 3},
    {"field": "c", "transform": "bucketize", "edges": [1, 2.5, 4]},
    {"field": "d", "transform": "category", "top_n": 5, "missing_slot": false},
    {"field": "e", "transform": "text", "buckets": 16},
    {"field": "f", "transform": "boolean"},
    {"field": "g", "transform": "interval", "width": true},
    {"field": "h"}
  ],
  "algorithm": "forest", "params": {"num_trees": 20, "c": 2.5},
  "search": {"budget_seconds": 5}, "holdout": 0.25, "max_classes": 2,
  "retrain": {"every_new_labels": 100, "every_seconds": 3600},
  "promotion": {"mode": "manual", "min_improvement": 0.01,
                "thresholds": {"roc_auc": 0.7, "log_loss": 0.6}},
  "training": {"deadline_seconds": 60, "memory_mb": 512},
  "serving": {"deadline_ms": 20, "fallback": "false"},
  "test_fault": "crash"
})";

// ---- database helpers -------------------------------------------------------

const micros t0 = 1795168800000000;  // 2026-11-20T10:00:00Z
const micros minute = 60LL * 1000000;

model_definition posts_likes_definition() {
    auto p = parse_definition(R"({"task": "regression", "features_from": "posts",
        "label": {"stream": "likes", "field": "y"}, "features": [{"field": "x"}]})");
    if (!p.errors.empty()) throw std::runtime_error(p.errors[0].message);
    return p.definition;
}

double number_of(const raw_value& v) {
    if (auto d = std::get_if<double>(&v)) return *d;
    return std::nan("");
}

const training_example* row_of(const training_set& s, const std::string& entity) {
    for (const auto& r : s.rows) {
        if (r.entity == entity) return &r;
    }
    return nullptr;
}

// ---- training helpers -------------------------------------------------------

// n labelled rows: y = 3*x1 - 2*x2 + 1 + noise (regression) or its sign
// (binary). `flip_holdout` negates the regression target of every entity that
// holdout_of(entity, 0.2) puts on the evaluation side.
training_set synthetic_set(task_kind task, int n, std::uint64_t seed, bool flip_holdout = false) {
    std::mt19937_64 engine(seed);
    auto uniform = [&engine] { return static_cast<double>(engine() >> 11) / 9007199254740992.0; };
    training_set s;
    for (int i = 0; i < n; ++i) {
        training_example ex;
        ex.entity = "u" + std::to_string(1000 + i);
        const double x1 = uniform() * 4 - 2, x2 = uniform() * 4 - 2, noise = uniform() * 0.2 - 0.1;
        ex.features = {{"x1", x1}, {"x2", x2}};
        double y = 3 * x1 - 2 * x2 + 1 + noise;
        if (flip_holdout && holdout_of(ex.entity, 0.2)) y = -y;
        if (task == task_kind::binary) {
            ex.label = y > 1;
        } else {
            ex.label = y;
        }
        ex.label_fact_id = 2 * i + 2;
        ex.feature_fact_id = 2 * i + 1;
        s.rows.push_back(std::move(ex));
    }
    s.max_fact_id = 2 * n;
    s.labelled_entities = n;
    return s;
}

model_definition xy_definition(task_kind task, const std::string& algorithm = "linear") {
    model_definition d;
    d.task = task;
    d.features_from = "points";
    d.label = {"points", "y", std::nullopt};
    for (const char* field : {"x1", "x2"}) {
        feature_spec spec;
        spec.field = field;
        d.features.push_back(spec);
    }
    d.algorithm = algorithm;
    d.holdout = 0.2;
    return d;
}

std::size_t expected_holdout(const training_set& s, double share) {
    std::size_t n = 0;
    for (const auto& r : s.rows) n += holdout_of(r.entity, share) ? 1 : 0;
    return n;
}

}  // namespace

// =============================================================================
// The publish gate

TEST_CASE("gate: a new calibration is compared with live on the Brier score", "[gate]") {
    promotion_policy policy;
    const auto base = listing({{"roc_auc", 0.5}, {"brier", 0.25}});
    // Isotonic's ties lowered roc_auc a little; its probabilities are better.
    const auto cand = listing({{"roc_auc", 0.849}, {"brier", 0.15}});
    const auto live = listing({{"roc_auc", 0.85}, {"brier", 0.18}});
    auto plain = evaluate_gate(task_kind::binary, policy, cand, base, &live);
    CHECK_FALSE(plain.passed);  // the same calibration: judged on roc_auc
    const calibration_shift on{calibration_method::none, calibration_method::isotonic};
    auto shifted =
        evaluate_gate(task_kind::binary, policy, cand, base, &live, nullptr, nullptr, nullptr, &on);
    CHECK(shifted.passed);
    REQUIRE(shifted.calibration_change.has_value());
    CHECK_THAT(shifted.summary(),
               EndsWith("; live is not calibrated, this version calibrated by isotonic (a new "
                        "calibration: compared with live on the Brier score, 0.15 vs live 0.18)"));
    // Worse on the Brier score: rejected, saying a person may promote it.
    const auto sharper_live = listing({{"roc_auc", 0.8}, {"brier", 0.14}});
    auto worse = evaluate_gate(task_kind::binary, policy, cand, base, &sharper_live, nullptr,
                               nullptr, nullptr, &on);
    CHECK_FALSE(worse.passed);
    REQUIRE(worse.reasons.size() == 1);
    CHECK(worse.reasons[0] ==
          "is worse than the live version on the Brier score (0.15 vs live 0.14); live is not "
          "calibrated, this version calibrated by isotonic: a person may promote it");
    // A bound on the calibration error that chance explains is not judged.
    promotion_policy ece;
    ece.thresholds["calibration_error"] = 0.02;
    auto noisy = listing(
        {{"roc_auc", 0.85}, {"calibration_error", 0.026}, {"calibration_error_by_chance", 0.023}});
    CHECK(evaluate_gate(task_kind::binary, ece, noisy, base, nullptr).passed);
    auto settled = listing(
        {{"roc_auc", 0.85}, {"calibration_error", 0.026}, {"calibration_error_by_chance", 0.005}});
    auto judged = evaluate_gate(task_kind::binary, ece, settled, base, nullptr);
    CHECK_FALSE(judged.passed);
    CHECK(judged.reasons[0] == "calibration_error 0.026 is above the maximum 0.02");
    // The baseline and the thresholds still apply.
    promotion_policy bounded;
    bounded.thresholds["brier"] = 0.1;
    auto bound = evaluate_gate(task_kind::binary, bounded, cand, base, &live, nullptr, nullptr,
                               nullptr, &on);
    CHECK_FALSE(bound.passed);
    CHECK(bound.reasons[0] == "brier 0.15 is above the maximum 0.1");
}

TEST_CASE("gate: a decision rule not met fails it; a new rule need only match live", "[gate]") {
    promotion_policy policy;
    decision_policy f1, strict;
    strict.rule = decision_rule::min_precision;
    strict.target = 0.95;
    operating_point met;
    met.policy = strict;
    met.met = true;
    operating_point missed = met;
    missed.met = false;
    missed.unmet = "no threshold reaches precision 0.95 (the highest is 0.9, at threshold 0.8)";
    const auto cand = listing({{"roc_auc", 0.85}}), base = listing({{"roc_auc", 0.5}});
    auto unmet = evaluate_gate(task_kind::binary, policy, cand, base, nullptr, nullptr, &missed);
    CHECK_FALSE(unmet.passed);
    REQUIRE(unmet.reasons.size() == 1);
    CHECK(unmet.reasons[0] ==
          "the decision rule min_precision 0.95 is not met on the holdout: no threshold reaches "
          "precision 0.95 (the highest is 0.9, at threshold 0.8)");
    const auto live_same = listing({{"roc_auc", 0.85}});
    // The same rule as live: a tie with live is not better.
    auto same =
        evaluate_gate(task_kind::binary, policy, cand, base, &live_same, nullptr, &met, &strict);
    CHECK_FALSE(same.passed);
    CHECK_FALSE(same.decision_rule_change.has_value());
    // Live decides by f1: matching it suffices, and both rules are said.
    auto changed =
        evaluate_gate(task_kind::binary, policy, cand, base, &live_same, nullptr, &met, &f1);
    CHECK(changed.passed);
    REQUIRE(changed.decision_rule_change.has_value());
    CHECK(*changed.decision_rule_change ==
          "live decides by f1, this version by min_precision 0.95");
    CHECK_THAT(changed.summary(),
               EndsWith("; live decides by f1, this version by min_precision 0.95 (a new rule: "
                        "matching live suffices)"));
    // A bound on an undefined rate says why it cannot be met, not "nan".
    promotion_policy bounded;
    bounded.thresholds["decision_precision"] = 0.5;
    auto undefined = evaluate_gate(
        task_kind::binary, bounded,
        listing({{"roc_auc", 0.85}, {"decision_precision", std::nan("")}}), base, nullptr);
    CHECK_FALSE(undefined.passed);
    REQUIRE(undefined.reasons.size() == 1);
    CHECK(undefined.reasons[0] ==
          "decision_precision is undefined on the holdout (no row was "
          "answered positive), so it cannot meet the minimum 0.5");
    // What the holdout cannot settle is said, even when the gate passed.
    auto cautious = evaluate_gate(task_kind::binary, policy, cand, base, nullptr);
    cautious.cautions.push_back("the holdout cannot tell whether decision_precision >= 0.95 holds");
    CHECK(cautious.passed);
    CHECK_THAT(cautious.summary(),
               EndsWith("; caution: the holdout cannot tell whether decision_precision >= 0.95 "
                        "holds"));
    unmet.cautions = cautious.cautions;  // rejected: said too
    CHECK_THAT(unmet.summary(), StartsWith("rejected: the decision rule"));
    CHECK_THAT(unmet.summary(), EndsWith("; caution: the holdout cannot tell whether "
                                         "decision_precision >= 0.95 holds"));
    // Worse than live, it is rejected, saying a person may promote it.
    const auto live_better = listing({{"roc_auc", 0.86}});
    auto worse =
        evaluate_gate(task_kind::binary, policy, cand, base, &live_better, nullptr, &met, &f1);
    CHECK_FALSE(worse.passed);
    REQUIRE(worse.reasons.size() == 1);
    CHECK(worse.reasons[0] ==
          "is worse than the live version on roc_auc (0.85 vs live 0.86); live decides by f1, this "
          "version by min_precision 0.95: a person may promote it to serve the new rule");
}

TEST_CASE("gate: a candidate must strictly beat the baseline on the primary metric", "[gate]") {
    promotion_policy policy;
    SECTION("regression compares rmse, lower is better") {
        auto g = evaluate_gate(task_kind::regression, policy, listing({{"rmse", 1.0}, {"r2", 0.9}}),
                               listing({{"rmse", 2.0}, {"r2", 0.0}}), nullptr);
        CHECK(g.passed);
        CHECK(g.metric == "rmse");
        CHECK(g.candidate == 1.0);
        CHECK(g.baseline == 2.0);
        CHECK_FALSE(g.live.has_value());
        CHECK(g.reasons.empty());
        CHECK_THAT(g.summary(), StartsWith("passed: rmse 1 vs baseline 2"));
    }
    SECTION("worse than the baseline is rejected with the numbers") {
        auto g = evaluate_gate(task_kind::regression, policy, listing({{"rmse", 2.5}}),
                               listing({{"rmse", 2.0}}), nullptr);
        CHECK_FALSE(g.passed);
        REQUIRE(g.reasons.size() == 1);
        CHECK(g.reasons[0] == "does not beat the baseline on rmse (2.5 vs 2)");
        CHECK_THAT(g.summary(), StartsWith("rejected: does not beat the baseline"));
    }
    SECTION("equal to the baseline is not better") {
        auto g = evaluate_gate(task_kind::regression, policy, listing({{"rmse", 2.0}}),
                               listing({{"rmse", 2.0}}), nullptr);
        CHECK_FALSE(g.passed);
    }
    SECTION("within a millionth of the baseline only ties it") {
        // Ridge with lambda 1e9 is the mean up to rounding: it went live
        // with rmse 1.4150354159 against the baseline's 1.4150355694.
        auto tie = evaluate_gate(task_kind::regression, policy, listing({{"rmse", 1.4150354159}}),
                                 listing({{"rmse", 1.4150355694}}), nullptr);
        CHECK_FALSE(tie.passed);
        REQUIRE(tie.reasons.size() == 1);
        CHECK_THAT(tie.reasons[0], StartsWith("only ties the baseline on rmse (1.4150354159 vs "));
        CHECK_THAT(tie.reasons[0], EndsWith("within a millionth of it)"));
        auto higher = evaluate_gate(task_kind::binary, policy, listing({{"roc_auc", 0.5000004}}),
                                    listing({{"roc_auc", 0.5}}), nullptr);
        CHECK_FALSE(higher.passed);
        // Just past it, a candidate beats the baseline.
        CHECK(evaluate_gate(task_kind::regression, policy, listing({{"rmse", 1.4150}}),
                            listing({{"rmse", 1.4150355694}}), nullptr)
                  .passed);
        CHECK(evaluate_gate(task_kind::binary, policy, listing({{"roc_auc", 0.500001}}),
                            listing({{"roc_auc", 0.5}}), nullptr)
                  .passed);
        // A millionth of the baseline, however small its unit: labels of
        // 1e-19 made every gain a tie.
        CHECK(evaluate_gate(task_kind::regression, policy, listing({{"rmse", 1.2e-20}}),
                            listing({{"rmse", 5.5e-19}}), nullptr)
                  .passed);
        CHECK_FALSE(evaluate_gate(task_kind::regression, policy, listing({{"rmse", 5.4999999e-19}}),
                                  listing({{"rmse", 5.5e-19}}), nullptr)
                        .passed);
    }
    SECTION("a NaN candidate never passes") {
        auto g = evaluate_gate(task_kind::binary, policy, listing({{"roc_auc", std::nan("")}}),
                               listing({{"roc_auc", 0.5}}), nullptr);
        CHECK_FALSE(g.passed);
        CHECK(g.metric == "roc_auc");
        // The reason says why, not "nan vs nan".
        REQUIRE(g.reasons.size() == 1);
        CHECK(g.reasons[0] ==
              "roc_auc is undefined on the holdout rows (they hold one class only)");
    }
    SECTION("binary compares roc_auc, higher is better") {
        auto up = evaluate_gate(task_kind::binary, policy, listing({{"roc_auc", 0.8}}),
                                listing({{"roc_auc", 0.5}}), nullptr);
        CHECK(up.passed);
        auto down = evaluate_gate(task_kind::binary, policy, listing({{"roc_auc", 0.4}}),
                                  listing({{"roc_auc", 0.5}}), nullptr);
        CHECK_FALSE(down.passed);
    }
    SECTION("multiclass compares log_loss, lower is better") {
        auto g = evaluate_gate(task_kind::multiclass, policy, listing({{"log_loss", 0.3}}),
                               listing({{"log_loss", 1.09}}), nullptr);
        CHECK(g.passed);
        CHECK(g.metric == "log_loss");
        auto worse = evaluate_gate(task_kind::multiclass, policy, listing({{"log_loss", 1.2}}),
                                   listing({{"log_loss", 1.09}}), nullptr);
        CHECK_FALSE(worse.passed);
    }
}

TEST_CASE("gate: thresholds are minimums or maximums by metric", "[gate]") {
    promotion_policy policy;
    policy.thresholds = {{"r2", 0.9}, {"rmse", 0.5}};
    const auto baseline = listing({{"rmse", 5.0}, {"r2", 0.0}});
    SECTION("both met") {
        auto g = evaluate_gate(task_kind::regression, policy, listing({{"rmse", 0.4}, {"r2", 0.95}}),
                               baseline, nullptr);
        CHECK(g.passed);
    }
    SECTION("a minimum not met") {
        auto g = evaluate_gate(task_kind::regression, policy, listing({{"rmse", 0.4}, {"r2", 0.8}}),
                               baseline, nullptr);
        CHECK_FALSE(g.passed);
        REQUIRE(g.reasons.size() == 1);
        CHECK(g.reasons[0] == "r2 0.8 is below the minimum 0.9");
    }
    SECTION("a maximum not met, and the bound itself is allowed") {
        auto g = evaluate_gate(task_kind::regression, policy, listing({{"rmse", 1.0}, {"r2", 0.9}}),
                               baseline, nullptr);
        CHECK_FALSE(g.passed);
        REQUIRE(g.reasons.size() == 1);
        CHECK(g.reasons[0] == "rmse 1 is above the maximum 0.5");
    }
    SECTION("a metric the candidate lacks fails its threshold") {
        auto g = evaluate_gate(task_kind::regression, policy, listing({{"rmse", 0.4}}), baseline,
                               nullptr);
        CHECK_FALSE(g.passed);
        REQUIRE(g.reasons.size() == 1);
        CHECK(g.reasons[0] == "r2 is undefined on the holdout, so it cannot meet the minimum 0.9");
    }
    SECTION("every failed condition is listed") {
        auto g = evaluate_gate(task_kind::regression, policy, listing({{"rmse", 6.0}, {"r2", -0.1}}),
                               baseline, nullptr);
        CHECK_FALSE(g.passed);
        CHECK(g.reasons.size() == 3);
        CHECK_THAT(all_reasons(g), Contains("baseline") && Contains("r2") && Contains("rmse 6"));
    }
    SECTION("classification: log_loss is a maximum, f1 a minimum") {
        promotion_policy p;
        p.thresholds = {{"log_loss", 0.5}, {"f1", 0.7}};
        auto g = evaluate_gate(task_kind::binary, p,
                               listing({{"roc_auc", 0.9}, {"log_loss", 0.4}, {"f1", 0.75}}),
                               listing({{"roc_auc", 0.5}, {"log_loss", 0.69}, {"f1", 0.0}}), nullptr);
        CHECK(g.passed);
        auto h = evaluate_gate(task_kind::binary, p,
                               listing({{"roc_auc", 0.9}, {"log_loss", 0.6}, {"f1", 0.65}}),
                               listing({{"roc_auc", 0.5}, {"log_loss", 0.69}, {"f1", 0.0}}), nullptr);
        CHECK_FALSE(h.passed);
        CHECK(h.reasons.size() == 2);
    }
}

TEST_CASE("gate: a live version must be beaten by the policy's margin", "[gate]") {
    promotion_policy policy;
    const auto baseline = listing({{"roc_auc", 0.5}});
    const auto candidate = listing({{"roc_auc", 0.80}});
    SECTION("margin 0: strictly better than live passes, equal does not") {
        auto live = listing({{"roc_auc", 0.78}});
        auto g = evaluate_gate(task_kind::binary, policy, candidate, baseline, &live);
        CHECK(g.passed);
        REQUIRE(g.live.has_value());
        CHECK(*g.live == 0.78);
        CHECK_THAT(g.summary(), Contains("and live 0.78"));
        auto same = listing({{"roc_auc", 0.80}});
        auto e = evaluate_gate(task_kind::binary, policy, candidate, baseline, &same);
        CHECK_FALSE(e.passed);
        REQUIRE(e.reasons.size() == 1);
        CHECK(e.reasons[0] == "does not beat the live version on roc_auc by 0 (0.8 vs live 0.8)");
    }
    SECTION("the margin is required on top of live") {
        auto live = listing({{"roc_auc", 0.78}});
        policy.min_improvement = 0.01;
        CHECK(evaluate_gate(task_kind::binary, policy, candidate, baseline, &live).passed);
        policy.min_improvement = 0.05;
        auto g = evaluate_gate(task_kind::binary, policy, candidate, baseline, &live);
        CHECK_FALSE(g.passed);
        CHECK_THAT(all_reasons(g), Contains("by 0.05"));
    }
    SECTION("lower-is-better metrics subtract the margin") {
        policy.min_improvement = 0.1;
        auto live = listing({{"rmse", 1.2}});
        auto ok = evaluate_gate(task_kind::regression, policy, listing({{"rmse", 1.0}}),
                                listing({{"rmse", 3.0}}), &live);
        CHECK(ok.passed);
        policy.min_improvement = 0.3;
        auto no = evaluate_gate(task_kind::regression, policy, listing({{"rmse", 1.0}}),
                                listing({{"rmse", 3.0}}), &live);
        CHECK_FALSE(no.passed);
    }
    SECTION("a live version without the metric does not block") {
        auto live = listing({});
        auto g = evaluate_gate(task_kind::binary, policy, candidate, baseline, &live);
        CHECK(g.passed);
    }
    SECTION("worse than live is rejected even when it beats the baseline") {
        auto live = listing({{"roc_auc", 0.9}});
        auto g = evaluate_gate(task_kind::binary, policy, candidate, baseline, &live);
        CHECK_FALSE(g.passed);
        REQUIRE(g.reasons.size() == 1);
        CHECK_THAT(g.reasons[0], StartsWith("does not beat the live version on roc_auc"));
    }
}

// =============================================================================
// Definitions

TEST_CASE("definition: a minimal definition gets the documented defaults", "[definition]") {
    auto p = parse_definition(minimal_definition);
    INFO(error_text(p));
    REQUIRE(p.errors.empty());
    const auto& d = p.definition;
    CHECK(d.task == task_kind::regression);
    CHECK(d.features_from == "posts");
    CHECK(d.label.stream == "likes");
    CHECK(d.label.field == "likes");
    REQUIRE(d.features.size() == 1);
    CHECK(d.features[0].transform == transform_kind::numeric);
    CHECK(d.algorithm == "auto");
    CHECK(d.holdout == 0.2);
    CHECK(d.max_classes == 50);
    CHECK(d.promotion.mode == ml::promotion_mode::automatic);
    CHECK(d.promotion.min_improvement == 0);
    CHECK_FALSE(d.retrain.every_new_labels.has_value());
    CHECK_FALSE(d.retrain.every_seconds.has_value());
    CHECK(d.training_deadline_seconds == 600);
    CHECK(d.training_memory_mb == 4096);
    CHECK(d.test_fault.empty());

    json c = json::parse(canonical_definition_json(d));
    CHECK(c["retrain"] == "manual");
    CHECK(c["promotion"]["mode"] == "auto");
    CHECK(c["holdout"] == 0.2);
    CHECK(c["features"][0] == json({{"field", "length"}, {"transform", "numeric"}}));
    CHECK_FALSE(c.contains("test_fault"));

    SECTION("the label stream defaults to the feature stream") {
        auto q = parse_definition(R"({"task": "binary", "features_from": "posts",
            "label": {"field": "clicked"}, "features": [{"field": "length"}]})");
        REQUIRE(q.errors.empty());
        CHECK(q.definition.label.stream == "posts");
    }
}

TEST_CASE("definition: the canary policy reads back whole, its defaults filled in",
          "[definition][canary]") {
    json j = json::parse(minimal_definition);
    j["promotion"] = {{"mode", "canary"}};
    auto p = parse_definition(j.dump());
    INFO(error_text(p));
    REQUIRE(p.errors.empty());
    CHECK(p.definition.promotion.mode == ml::promotion_mode::canary);
    json c = json::parse(canonical_definition_json(p.definition));
    CHECK(c["promotion"]["mode"] == "canary");
    CHECK(c["promotion"]["canary"] ==
          json({{"share", 0.1}, {"entities", 200}, {"max_loss", 0}, {"max_seconds", 604800}}));
    j["promotion"]["canary"] = {
        {"share", 0.05}, {"entities", 500}, {"max_loss", 0.01}, {"max_seconds", 3600}};
    p = parse_definition(j.dump());
    REQUIRE(p.errors.empty());
    const ml::canary_policy& cp = p.definition.promotion.canary;
    CHECK(cp.share == 0.05);
    CHECK(cp.entities == 500);
    CHECK(cp.max_loss == 0.01);
    CHECK(cp.max_seconds == 3600);
    c = json::parse(canonical_definition_json(p.definition));
    CHECK(c["promotion"]["canary"] == j["promotion"]["canary"]);
    auto again = parse_definition(c.dump());
    REQUIRE(again.errors.empty());
    CHECK(canonical_definition_json(again.definition) == c.dump());
    // Other modes have no canary to read back.
    j["promotion"] = {{"mode", "manual"}, {"canary", nullptr}};
    p = parse_definition(j.dump());
    REQUIRE(p.errors.empty());
    CHECK_FALSE(
        json::parse(canonical_definition_json(p.definition))["promotion"].contains("canary"));
}

TEST_CASE("definition: canonical JSON round-trips and ignores key order", "[definition]") {
    auto p = parse_definition(full_definition);
    INFO(error_text(p));
    REQUIRE(p.errors.empty());
    const auto& d = p.definition;
    CHECK(d.task == task_kind::binary);
    CHECK(d.label.stream == "outcomes");
    REQUIRE(d.features.size() == 8);
    CHECK(d.features[0].transform == transform_kind::log);
    CHECK(d.features[1].params.threshold == 3);
    CHECK(d.features[2].params.edges == std::vector<double>{1, 2.5, 4});
    CHECK(d.features[3].params.top_n == 5);
    CHECK_FALSE(d.features[3].params.missing_slot);
    CHECK(d.features[4].params.buckets == 16);
    CHECK(d.features[5].transform == transform_kind::boolean);
    CHECK(d.features[6].params.width);
    CHECK(d.algorithm == "forest");
    CHECK(d.params.num_trees == 20);
    CHECK(d.params.c == 2.5);
    CHECK(d.search_budget_seconds == 5);
    CHECK(d.holdout == 0.25);
    CHECK(d.max_classes == 2);
    CHECK(d.retrain.every_new_labels == std::optional<std::int64_t>(100));
    CHECK(d.retrain.every_seconds == std::optional<std::int64_t>(3600));
    CHECK(d.promotion.mode == ml::promotion_mode::manual);
    CHECK(d.promotion.min_improvement == 0.01);
    CHECK(d.promotion.thresholds == std::map<std::string, double>{{"log_loss", 0.6}, {"roc_auc", 0.7}});
    CHECK(d.training_deadline_seconds == 60);
    CHECK(d.training_memory_mb == 512);
    CHECK(d.deadline_ms == 20);
    CHECK(d.fallback_label == std::optional<std::string>("false"));
    CHECK(d.test_fault == "crash");

    const std::string c1 = canonical_definition_json(d);
    auto again = parse_definition(c1);
    INFO(c1);
    INFO(error_text(again));
    REQUIRE(again.errors.empty());
    CHECK(canonical_definition_json(again.definition) == c1);  // a fixed point

    // The same definition written in another order, with defaults spelt out.
    json reordered = json::parse(full_definition);
    json alt = json::object();
    std::vector<std::string> keys;
    for (const auto& [k, v] : reordered.items()) keys.push_back(k);
    std::reverse(keys.begin(), keys.end());
    for (const auto& k : keys) alt[k] = reordered[k];
    alt["features"][7]["transform"] = "numeric";
    alt["params"]["lambda"] = 1.0;
    std::string alt_text = alt.dump(2);
    auto q = parse_definition(alt_text);
    REQUIRE(q.errors.empty());
    CHECK(canonical_definition_json(q.definition) == c1);

    // And a real change is a different canonical text.
    alt["holdout"] = 0.3;
    auto r = parse_definition(alt.dump());
    REQUIRE(r.errors.empty());
    CHECK(canonical_definition_json(r.definition) != c1);
}

TEST_CASE("definition: every problem is reported by field", "[definition]") {
    struct bad_case {
        const char* name;
        std::string patch;  // merged into the minimal definition (JSON merge patch)
        std::string field;
        std::string message;
    };
    const std::vector<bad_case> cases = {
        {"unknown task", R"({"task": "banana"})", "task", "banana"},
        {"missing task", R"({"task": null})", "task", "missing"},
        {"unknown transform", R"({"features": [{"field": "x", "transform": "sqrt"}]})",
         "features[0].transform", "sqrt"},
        {"bucketize without edges", R"({"features": [{"field": "x", "transform": "bucketize"}]})",
         "features[0].edges", "edges"},
        {"binarize without threshold", R"({"features": [{"field": "x", "transform": "binarize"}]})",
         "features[0].threshold", "threshold"},
        {"unknown feature key", R"({"features": [{"field": "x", "scale": 2}]})",
         "features[0].scale", "unknown field"},
        {"unknown top-level field", R"({"colour": "red"})", "colour", "unknown field"},
        {"unknown label field", R"({"label": {"field": "y", "strem": "s"}})", "label.strem",
         "unknown field"},
        {"label without a field", R"({"label": {"stream": "likes", "field": null}})", "label.field",
         "missing"},
        {"no features", R"({"features": []})", "features", "non-empty"},
        {"unknown algorithm", R"({"algorithm": "svm"})", "algorithm", "auto"},
        {"unknown param", R"({"params": {"depth": 3}})", "params.depth", "unknown field"},
        {"edges without bucketize", R"({"features": [{"field": "hour", "edges": [6, 12]}]})",
         "features[0].edges", "only to the bucketize transform"},
        {"top_n of a text feature",
         R"({"features": [{"field": "caption", "transform": "text", "top_n": 5}]})",
         "features[0].top_n", "only to the category transform"},
        {"holdout too large", R"({"holdout": 0.99})", "holdout", "between"},
        {"holdout not a number", R"({"holdout": "20%"})", "holdout", "number"},
        {"one class allowed", R"({"max_classes": 1})", "max_classes", "between"},
        {"retrain not an object", R"({"retrain": 5})", "retrain", "manual"},
        {"retrain too often", R"({"retrain": {"every_seconds": 1}})", "retrain.every_seconds",
         "between"},
        {"promotion mode", R"({"promotion": {"mode": "sometimes"}})", "promotion.mode",
         "auto, manual or canary"},
        {"canary without its mode", R"({"promotion": {"canary": {"share": 0.1}}})",
         "promotion.canary", "only with \"mode\": \"canary\""},
        {"canary share too large", R"({"promotion": {"mode": "canary", "canary": {"share": 0.6}}})",
         "promotion.canary.share", "between"},
        {"canary on too few entities",
         R"({"promotion": {"mode": "canary", "canary": {"entities": 29}}})",
         "promotion.canary.entities", "between 30"},
        {"canary loss below 0", R"({"promotion": {"mode": "canary", "canary": {"max_loss": -1}}})",
         "promotion.canary.max_loss", "between"},
        {"canary deadline too short",
         R"({"promotion": {"mode": "canary", "canary": {"max_seconds": 9}}})",
         "promotion.canary.max_seconds", "between 10"},
        {"unknown canary field", R"({"promotion": {"mode": "canary", "canary": {"weight": 1}}})",
         "promotion.canary.weight", "unknown field"},
        {"canary not an object", R"({"promotion": {"mode": "canary", "canary": 0.1}})",
         "promotion.canary", "object"},
        {"canary that could never gather its entities",
         R"({"promotion": {"mode": "canary", "canary": {"share": 0.001}}})",
         "promotion.canary.entities",
         "a share of 0.001 is about 50: too few for 200 entities; raise share or lower entities"},
        {"unknown threshold metric", R"({"promotion": {"thresholds": {"bogus": 1}}})",
         "promotion.thresholds.bogus", "unknown metric"},
        {"threshold of another task", R"({"promotion": {"thresholds": {"roc_auc": 0.7}}})",
         "promotion.thresholds.roc_auc", "regression"},
        {"threshold not a number", R"({"promotion": {"thresholds": {"r2": "high"}}})",
         "promotion.thresholds.r2", "number"},
        {"memory limit too small", R"({"training": {"memory_mb": 1}})", "training.memory_mb",
         "between"},
        {"regression fallback not a number", R"({"serving": {"fallback": "lots"}})",
         "serving.fallback", "number"},
        {"unknown test fault", R"({"test_fault": "explode"})", "test_fault", "throw"},
    };
    for (const auto& c : cases) {
        json j = json::parse(minimal_definition);
        j.merge_patch(json::parse(c.patch));
        auto p = parse_definition(j.dump());
        INFO(c.name << ": " << j.dump());
        INFO(error_text(p));
        REQUIRE(p.errors.size() == 1);
        CHECK(p.errors[0].field == c.field);
        CHECK_THAT(p.errors[0].message, Contains(c.message));
    }

    SECTION("several problems at once: all of them") {
        auto p = parse_definition(R"({"task": "banana", "features_from": "posts",
            "label": {"field": "y"}, "colour": 1, "holdout": 2,
            "features": [{"field": "a", "transform": "sqrt"}, {"field": "b", "transform": "bucketize"}]})");
        auto fields = error_fields(p);
        std::set<std::string> got(fields.begin(), fields.end());
        CHECK(got == std::set<std::string>{"task", "colour", "holdout", "features[0].transform",
                                           "features[1].edges"});
        CHECK(fields.size() == 5);
        std::string body = field_errors_json(p.errors);
        json e = json::parse(body)["error"];
        CHECK(e["code"] == "invalid_argument");
        CHECK(e["message"] == "5 problems in the definition");
        CHECK(e["details"].size() == 5);
        CHECK(e["field"] == p.errors[0].field);
    }
    SECTION("malformed JSON and non-objects") {
        auto p = parse_definition(R"({"task": "binary",)");
        REQUIRE(p.errors.size() == 1);
        CHECK(p.errors[0].field.empty());
        CHECK_THAT(p.errors[0].message, StartsWith("malformed JSON"));
        CHECK_FALSE(p.object);
        auto q = parse_definition("[1, 2]");
        REQUIRE(q.errors.size() == 1);
        CHECK_THAT(q.errors[0].message, Contains("JSON object"));
        CHECK_FALSE(q.object);
        // Neither names a field: the answer's details said "field": "".
        for (const auto* parsed : {&p, &q}) {
            json e = json::parse(field_errors_json(parsed->errors))["error"];
            CHECK_FALSE(e.contains("field"));
            REQUIRE(e["details"].size() == 1);
            CHECK_FALSE(e["details"][0].contains("field"));
            CHECK(e["details"][0]["message"] == parsed->errors[0].message);
        }
        CHECK(parse_definition(minimal_definition).object);
        // A classification fallback that names no class.
        json with_blank = json::parse(minimal_definition);
        with_blank["task"] = "binary";
        with_blank["serving"] = {{"fallback", ""}};
        auto blank = parse_definition(with_blank.dump());
        REQUIRE(blank.errors.size() == 1);
        CHECK(blank.errors[0].field == "serving.fallback");
        // A key given twice: nlohmann kept the second, silently.
        auto twice = parse_definition(
            R"({"task":"binary","features_from":"s","label":{"field":"y","field":"z"}})");
        REQUIRE(twice.errors.size() == 1);
        CHECK(twice.errors[0].field == "label.field");
        CHECK_THAT(twice.errors[0].message, Contains("appears twice"));
    }
    SECTION("features with bad parameters found after parsing") {
        json j = json::parse(minimal_definition);
        j["features"] = json::array({{{"field", "x"}}, {{"field", "x"}}});
        auto p = parse_definition(j.dump());
        REQUIRE(p.errors.size() == 1);
        CHECK(p.errors[0].field == "features[1]");
        CHECK_THAT(p.errors[0].message, Contains("duplicate"));
    }
}

// A definition's field names are the JSON the user wrote: a bucketize
// feature's edges are "features[0].edges", not the internal params path.
TEST_CASE("definition: decreasing bucket edges are reported at the field the user wrote",
          "[definition]") {
    json j = json::parse(minimal_definition);
    j["features"] = json::array({{{"field", "x"}, {"transform", "bucketize"}, {"edges", {3, 1}}}});
    auto p = parse_definition(j.dump());
    INFO(error_text(p));
    REQUIRE(p.errors.size() == 1);
    CHECK_THAT(p.errors[0].message, Contains("increasing"));
    CHECK(p.errors[0].field == "features[0].edges");
}

// What PUT checks: the syntax, then the rules for a definition about to be
// stored (check_new_definition).
namespace {
std::vector<field_error> put_errors(const json& j) {
    auto p = parse_definition(j.dump());
    check_new_definition(p.definition, p.errors);
    return p.errors;
}
}  // namespace

// A definition is stored only if its jobs can train: every parameter at the
// largest (and smallest) value PUT takes passes the trainers' own check. A
// gamma of 1e9 was stored, and each of its jobs failed.
TEST_CASE("definition: parameters PUT accepts are parameters the trainers accept", "[definition]") {
    for (const char* params :
         {R"({"c": 1e9, "lambda": 1e9, "gamma": 1e6, "num_trees": 5000,
              "min_samples_per_leaf": 100000, "feature_subsampling": 1,
              "max_kernel_rows": 50000, "max_iterations": 100000})",
          R"({"c": 1e-9, "lambda": 0, "gamma": 0, "num_trees": 1, "min_samples_per_leaf": 1,
              "feature_subsampling": 0.01, "max_kernel_rows": 10, "max_iterations": 1})"}) {
        json j = json::parse(minimal_definition);
        j["params"] = json::parse(params);
        INFO(params);
        REQUIRE(put_errors(j).empty());
        const status s = validate_params(parse_definition(j.dump()).definition.params);
        INFO(s.message());
        CHECK(s.is_ok());
    }
    json j = json::parse(minimal_definition);
    j["params"] = {{"gamma", 2e6}};
    auto errors = put_errors(j);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].field == "params.gamma");
    CHECK_THAT(errors[0].message, Contains("between 0 and 1000000"));
    // Stored before the bound, it still parses: the model's other versions
    // go on being served.
    CHECK(parse_definition(j.dump()).errors.empty());
}

TEST_CASE("definition: a bound a metric can never cross is refused at PUT", "[definition]") {
    // log_loss -1 was accepted, and the supervisor disabled every version
    // it judged ("live log_loss 0.23 above -1").
    for (const auto& [task, section, name, value, why] :
         std::vector<std::tuple<std::string, std::string, std::string, double, std::string>>{
             {"binary", "supervision", "log_loss", -1, "must be at least 0"},
             {"binary", "promotion", "log_loss", -0.1, "must be at least 0"},
             {"regression", "supervision", "rmse", -1, "must be at least 0"},
             {"regression", "promotion", "mae", -0.5, "must be at least 0"},
             {"regression", "supervision", "r2", 1.5, "must be at most 1"},
             {"binary", "supervision", "roc_auc", 1.5, "must be between 0 and 1"},
         }) {
        json j = json::parse(minimal_definition);
        j["task"] = task;
        const std::string key = section == "promotion" ? "thresholds" : "live_thresholds";
        j[section] = {{key, {{name, value}}}};
        INFO(j.dump());
        auto errors = put_errors(j);
        REQUIRE(errors.size() == 1);
        CHECK(errors[0].field == section + "." + key + "." + name);
        CHECK_THAT(errors[0].message, Contains(why));
    }
    // The edges themselves are bounds a metric can meet.
    for (const auto& [task, name, value] :
         std::vector<std::tuple<std::string, std::string, double>>{{"binary", "log_loss", 0},
                                                                   {"regression", "rmse", 0},
                                                                   {"regression", "r2", 1},
                                                                   {"regression", "r2", -3}}) {
        json j = json::parse(minimal_definition);
        j["task"] = task;
        j["supervision"] = {{"live_thresholds", {{name, value}}}};
        INFO(j.dump());
        CHECK(put_errors(j).empty());
    }
}

// From the label's own stream the label fact is also the feature fact, so
// the label field as a feature scored a perfect holdout and went live.
TEST_CASE("definition: the label field of the features' own stream is refused as a feature",
          "[definition]") {
    json j = json::parse(minimal_definition);
    j["label"] = {{"stream", "posts"}, {"field", "likes"}};
    j["features"] = json::array({{{"field", "length"}}, {{"field", "likes"}}});
    auto errors = put_errors(j);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].field == "features[1].field");
    CHECK_THAT(errors[0].message, Contains("label field"));
    // A stored definition from before the rule still parses (and serves).
    CHECK(parse_definition(j.dump()).errors.empty());

    SECTION("also when the label's stream defaults to the features' stream") {
        j["label"] = {{"field", "likes"}};
        auto e = put_errors(j);
        REQUIRE(e.size() == 1);
        CHECK(e[0].field == "features[1].field");
    }
    SECTION("a field of that name in another stream is an ordinary feature") {
        j["label"] = {{"stream", "likes"}, {"field", "likes"}};
        CHECK(put_errors(j).empty());
    }
}

// =============================================================================
// Point-in-time training sets

TEST_CASE("training set: features come from the latest fact not after the label", "[training_data]") {
    fact_db db;
    // A: a LATE feature fact (after the label) stored first, with a lower id.
    const auto a_late = db.add("posts", "A", t0 + 20 * minute, {{"x", 999}, {"noise", 1}});
    const auto a_feat = db.add("posts", "A", t0, {{"x", 1}, {"noise", 2}});
    const auto a_label = db.add("likes", "A", t0 + 10 * minute, {{"y", 10}});
    // B: features and label, both corrected later (below).
    const auto b_feat = db.add("posts", "B", t0, {{"x", 2}});
    const auto b_label = db.add("likes", "B", t0 + 10 * minute, {{"y", 20}});
    // C: its only feature fact comes after its label.
    db.add("posts", "C", t0 + 30 * minute, {{"x", 7}});
    db.add("likes", "C", t0 + 10 * minute, {{"y", 30}});
    // D: two labels; the latest one wins, with the features as of its time.
    db.add("posts", "D", t0, {{"x", 5}});
    db.add("likes", "D", t0 + 10 * minute, {{"y", 1}});
    const auto d_feat = db.add("posts", "D", t0 + 25 * minute, {{"x", 6}});
    const auto d_label = db.add("likes", "D", t0 + 30 * minute, {{"y", 2}});
    // E: a feature fact at exactly the label's time counts (not after).
    db.add("posts", "E", t0 + 10 * minute, {{"x", 8}});
    db.add("likes", "E", t0 + 10 * minute, {{"y", 40}});
    // F and G: label facts without the label (absent, or null): not labelled.
    db.add("posts", "F", t0, {{"x", 3}});
    db.add("likes", "F", t0 + 10 * minute, {{"other", 1}});
    db.add("posts", "G", t0, {{"x", 3}});
    const auto before_corrections = db.add("likes", "G", t0 + 10 * minute, {{"y", nullptr}});
    // Corrections of B's label and features, at the corrected facts' times.
    const auto b_label2 = db.add("likes", "B", t0 + 10 * minute, {{"y", 21}}, b_label);
    const auto b_feat2 = db.add("posts", "B", t0, {{"x", 3}}, b_feat);

    const auto d = posts_likes_definition();
    auto set = build_training_set(db.conn, d, b_feat2);
    REQUIRE(set);
    CHECK(set->max_fact_id == b_feat2);
    CHECK(set->labelled_entities == 5);  // A B C D E
    CHECK(set->without_features == 1);   // C
    REQUIRE(set->rows.size() == 4);
    std::vector<std::string> entities;
    for (const auto& r : set->rows) entities.push_back(r.entity);
    CHECK(entities == std::vector<std::string>{"A", "B", "D", "E"});

    const auto* a = row_of(*set, "A");
    REQUIRE(a);
    CHECK(number_of(a->features.at("x")) == 1);  // not the late 999
    CHECK(a->feature_fact_id == a_feat);
    CHECK(a->feature_fact_id != a_late);
    CHECK(a->label_fact_id == a_label);
    CHECK(a->label_time == t0 + 10 * minute);
    CHECK(number_of(a->label) == 10);
    CHECK(a->features.count("noise") == 0);  // only declared fields are read

    const auto* b = row_of(*set, "B");
    REQUIRE(b);
    CHECK(number_of(b->label) == 21);
    CHECK(b->label_fact_id == b_label2);
    CHECK(number_of(b->features.at("x")) == 3);
    CHECK(b->feature_fact_id == b_feat2);

    const auto* dd = row_of(*set, "D");
    REQUIRE(dd);
    CHECK(number_of(dd->label) == 2);
    CHECK(dd->label_fact_id == d_label);
    CHECK(number_of(dd->features.at("x")) == 6);
    CHECK(dd->feature_fact_id == d_feat);

    const auto* e = row_of(*set, "E");
    REQUIRE(e);
    CHECK(number_of(e->features.at("x")) == 8);

    SECTION("the watermark hides later facts, corrections included") {
        auto old = build_training_set(db.conn, d, before_corrections);
        REQUIRE(old);
        CHECK(old->max_fact_id == before_corrections);
        const auto* ob = row_of(*old, "B");
        REQUIRE(ob);
        CHECK(number_of(ob->label) == 20);
        CHECK(ob->label_fact_id == b_label);
        CHECK(number_of(ob->features.at("x")) == 2);
        CHECK(ob->feature_fact_id == b_feat);

        auto tiny = build_training_set(db.conn, d, a_feat);  // before any label
        REQUIRE(tiny);
        CHECK(tiny->rows.empty());
        CHECK(tiny->labelled_entities == 0);
    }
    SECTION("the late value is used once a label comes after it") {
        db.add("likes", "A", t0 + 40 * minute, {{"y", 11}});
        auto later = build_training_set(db.conn, d, 1000000);
        REQUIRE(later);
        const auto* la = row_of(*later, "A");
        REQUIRE(la);
        CHECK(number_of(la->features.at("x")) == 999);
        CHECK(la->feature_fact_id == a_late);
    }
}

// A correction "is used in place of the fact it corrects" (README): sent
// later, it still stands at the corrected fact's event time.
TEST_CASE("training set: a feature correction sent later takes the corrected fact's place",
          "[training_data]") {
    fact_db db;
    const auto feat = db.add("posts", "H", t0, {{"x", 4}});
    db.add("likes", "H", t0 + 10 * minute, {{"y", 50}});
    db.add("posts", "H", t0 + 60 * minute, {{"x", 44}}, feat);  // sent an hour later
    auto set = build_training_set(db.conn, posts_likes_definition(), 1000000);
    REQUIRE(set);
    CHECK(set->without_features == 0);
    REQUIRE(set->rows.size() == 1);
    CHECK(number_of(set->rows[0].features.at("x")) == 44);
}

TEST_CASE("training set: values Kennel cannot read are counted by field, null is not",
          "[training_data]") {
    fact_db db;
    const json values[] = {json::array({4}), json{{"chars", 4}}, json(nullptr), 4,
                           json{{"value", 4}}};
    int i = 0;
    for (const auto& v : values) {
        const std::string e = "E" + std::to_string(i++);
        db.add("posts", e, t0, {{"x", v}});
        db.add("likes", e, t0 + minute, {{"y", 1}});
    }
    auto set = build_training_set(db.conn, posts_likes_definition(), 1000000);
    REQUIRE(set);
    REQUIRE(set->rows.size() == 5);
    REQUIRE(set->unreadable.size() == 1);
    CHECK(set->unreadable.at("x").rows == 2);
    CHECK(set->unreadable.at("x").example == "an array");
}

// A live version split by time: each row says when the entity's label was
// as that version's training read it (its stream and field, its snapshot),
// so the gate knows which entities were on its training side.
TEST_CASE("training set: the label a live version read, from its own stream and snapshot",
          "[training_data]") {
    fact_db db;
    for (const char* e : {"A", "B", "C"}) db.add("posts", e, t0, {{"x", 1}});
    db.add("likes", "A", t0 + minute, {{"y", 1}});
    db.add("old_likes", "B", t0 + 2 * minute, {{"y", 2}});
    const auto snapshot = db.add("likes", "B", t0 + 3 * minute, {{"y", 3}});
    db.add("likes", "A", t0 + 9 * minute, {{"y", 4}});  // after live's snapshot
    db.add("likes", "C", t0 + 9 * minute, {{"y", 5}});
    const auto d = posts_likes_definition();
    auto same =
        build_training_set(db.conn, d, 1000000, {}, {}, label_source{"likes", "y", snapshot});
    REQUIRE(same);
    REQUIRE(same->rows.size() == 3);
    std::map<std::string, std::optional<micros>> seen;
    for (const auto& r : same->rows) seen[r.entity] = r.live_label_time;
    CHECK(seen["A"] == std::optional<micros>(t0 + minute));  // its label then, not now
    CHECK(seen["B"] == std::optional<micros>(t0 + 3 * minute));
    CHECK_FALSE(seen["C"].has_value());  // no label then
    auto other =
        build_training_set(db.conn, d, 1000000, {}, {}, label_source{"old_likes", "y", snapshot});
    REQUIRE(other);
    for (const auto& r : other->rows) seen[r.entity] = r.live_label_time;
    CHECK_FALSE(seen["A"].has_value());
    CHECK(seen["B"] == std::optional<micros>(t0 + 2 * minute));
    auto none = build_training_set(db.conn, d, 1000000);
    REQUIRE(none);
    for (const auto& r : none->rows) CHECK_FALSE(r.live_label_time.has_value());
}

// Two corrections of one fact share its place in time: the later one stands
// (the first one stood for labels, and for features it was up to the sort).
TEST_CASE("training set: of two corrections of one fact, the later stands", "[training_data]") {
    fact_db db;
    const auto feat = db.add("posts", "M", t0, {{"x", 1}});
    const auto label = db.add("likes", "M", t0 + 10 * minute, {{"y", 4}});
    db.add("likes", "M", t0 + 10 * minute, {{"y", 5}}, label);
    const auto second = db.add("likes", "M", t0 + 10 * minute, {{"y", 7}}, label);
    db.add("posts", "M", t0, {{"x", 2}}, feat);
    const auto second_feat = db.add("posts", "M", t0, {{"x", 3}}, feat);
    auto set = build_training_set(db.conn, posts_likes_definition(), 1000000);
    REQUIRE(set);
    REQUIRE(set->rows.size() == 1);
    CHECK(number_of(set->rows[0].label) == 7);
    CHECK(set->rows[0].label_fact_id == second);
    CHECK(number_of(set->rows[0].features.at("x")) == 3);
    CHECK(set->rows[0].feature_fact_id == second_feat);
}

// A chain: a correction of the first correction, sent after a second
// correction of the fact, stands (the chain's newest), and a correction
// past the watermark is not seen. The newest of a chain without the label
// takes the label out, as it takes the outcome out of live metrics.
TEST_CASE("training set: the newest fact of a chain of corrections stands", "[training_data]") {
    fact_db db;
    db.add("posts", "C", t0, {{"x", 1}});
    const auto a = db.add("likes", "C", t0 + 10 * minute, {{"y", 10}});
    const auto b = db.add("likes", "C", t0 + 30 * minute, {{"y", 20}}, a);
    db.add("likes", "C", t0 + 20 * minute, {{"y", 30}}, a);
    const auto d = db.add("likes", "C", t0 + 5 * minute, {{"y", 40}}, b);
    db.add("posts", "C", t0 + 15 * minute, {{"x", 2}});  // after the chain's time
    auto set = build_training_set(db.conn, posts_likes_definition(), d);
    REQUIRE(set);
    REQUIRE(set->rows.size() == 1);
    CHECK(number_of(set->rows[0].label) == 40);
    CHECK(set->rows[0].label_fact_id == d);
    CHECK(set->rows[0].label_time == t0 + 10 * minute);
    CHECK(number_of(set->rows[0].features.at("x")) == 1);
    // Up to the second correction only: it stands.
    set = build_training_set(db.conn, posts_likes_definition(), d - 1);
    REQUIRE(set);
    REQUIRE(set->rows.size() == 1);
    CHECK(number_of(set->rows[0].label) == 30);
    // Withdrawn: an earlier label of the entity is used instead.
    const auto before = db.add("likes", "C", t0 + 2 * minute, {{"y", 2}});
    db.add("likes", "C", t0 + 10 * minute, {{"note", "no label"}}, a);
    set = build_training_set(db.conn, posts_likes_definition(), 1000000);
    REQUIRE(set);
    REQUIRE(set->rows.size() == 1);
    CHECK(set->rows[0].label_fact_id == before);
    CHECK(number_of(set->rows[0].label) == 2);
}

TEST_CASE("training set: facts of the label stream after its newest label are counted",
          "[training_data]") {
    // The app renamed the label field: training went on with the labels
    // from before, and its log said nothing.
    fact_db db;
    db.add("posts", "P", t0, {{"x", 1}});
    db.add("likes", "P", t0 + minute, {{"y", 5}});
    db.add("likes", "P", t0 + 2 * minute, {{"note", "not a label"}});  // between labels
    db.add("likes", "P", t0 + 3 * minute, {{"y", 6}});
    auto set = build_training_set(db.conn, posts_likes_definition(), 1000000);
    REQUIRE(set);
    CHECK(set->facts_after_last_label == 0);
    const auto first = db.add("likes", "Q", t0 + 4 * minute, {{"y_renamed", 7}});
    for (int i = 0; i < 24; ++i)
        db.add("likes", "R" + std::to_string(i), t0 + 5 * minute, {{"y_renamed", i}});
    db.add("likes", "S", t0 + 6 * minute, {{"y", nullptr}});  // null is no label either
    set = build_training_set(db.conn, posts_likes_definition(), 1000000);
    REQUIRE(set);
    CHECK(set->facts_after_last_label == 26);
    CHECK(set->first_fact_after_last_label == first);
    CHECK(set->rows.size() == 1);
}

TEST_CASE("training set: regression labels beyond 1e150 are refused, naming the fact",
          "[training_data]") {
    // Their squares overflow: the job failed as "the fitted model cannot
    // answer holdout row 0", naming an entity with an ordinary label.
    fact_db db;
    db.add("posts", "P", t0, {{"x", 1}});
    db.add("likes", "P", t0 + minute, {{"y", 1e150}});  // the largest taken
    db.add("posts", "Q", t0, {{"x", 2}});
    auto set = build_training_set(db.conn, posts_likes_definition(), 1000000);
    REQUIRE(set);
    const auto q = db.add("likes", "Q", t0 + minute, {{"y", -1e300}});
    set = build_training_set(db.conn, posts_likes_definition(), 1000000);
    REQUIRE(!set);
    CHECK(set.error().field() == "label");
    CHECK_THAT(set.error().message(), Catch::Contains("entity \"Q\" (label fact " +
                                                      std::to_string(q) + ") reaches -1e+300"));
    // An interval trains on its midpoint: as wide as the doubles, it is 0.
    const auto wide = db.add("likes", "Q", t0 + 2 * minute,
                             {{"y", json{{"lower", -1e308}, {"upper", 1e308}}}}, q);
    REQUIRE(build_training_set(db.conn, posts_likes_definition(), 1000000));
    // Its midpoint past 1e150 is refused.
    db.add("likes", "Q", t0 + 3 * minute, {{"y", json{{"lower", 1e300}, {"upper", 1e301}}}}, wide);
    REQUIRE(!build_training_set(db.conn, posts_likes_definition(), 1000000));
    // Corrected to an ordinary label, it trains.
    db.add("likes", "Q", t0 + 4 * minute, {{"y", 3}}, q);
    set = build_training_set(db.conn, posts_likes_definition(), 1000000);
    REQUIRE(set);
    CHECK(set->rows.size() == 2);
}

TEST_CASE("training set: class labels beyond 2^53 are refused, naming the fact",
          "[training_data]") {
    // 2^53 and 2^53 + 1 are one double: two classes became one, and the
    // model answered 2^53 for rows labelled 2^53 + 1.
    fact_db db;
    db.add("posts", "P", t0, {{"x", 1}});
    db.add("likes", "P", t0 + minute, {{"y", 9007199254740992ULL}});
    db.add("posts", "Q", t0, {{"x", 2}});
    const auto q = db.add("likes", "Q", t0 + minute, {{"y", 9007199254740993ULL}});
    auto d = posts_likes_definition();
    d.task = task_kind::multiclass;
    auto set = build_training_set(db.conn, d, 1000000);
    REQUIRE_FALSE(set);
    CHECK(set.error().field() == "label");
    CHECK_THAT(set.error().message(), Contains("9007199254740993"));
    CHECK_THAT(set.error().message(), Contains("label fact " + std::to_string(q)));
    CHECK_THAT(set.error().message(), Contains("send such classes as strings"));
    // 2^53 itself is exact, and so is any label of a regression.
    d.task = task_kind::regression;
    CHECK(build_training_set(db.conn, d, 1000000));
    fact_db exact;
    exact.add("posts", "P", t0, {{"x", 1}});
    exact.add("likes", "P", t0 + minute, {{"y", -9007199254740992LL}});
    d.task = task_kind::multiclass;
    CHECK(build_training_set(exact.conn, d, 1000000));
}

// The same for a label: a correction sent later keeps the label's point in
// time, so features from after the labelled moment never leak in.
TEST_CASE("training set: a label correction sent later keeps the label's point in time",
          "[training_data]") {
    fact_db db;
    db.add("posts", "K", t0, {{"x", 1}});
    const auto label = db.add("likes", "K", t0 + 10 * minute, {{"y", 10}});
    db.add("posts", "K", t0 + 20 * minute, {{"x", 999}});  // after the labelled moment
    db.add("likes", "K", t0 + 60 * minute, {{"y", 11}}, label);  // the correction
    auto set = build_training_set(db.conn, posts_likes_definition(), 1000000);
    REQUIRE(set);
    REQUIRE(set->rows.size() == 1);
    CHECK(number_of(set->rows[0].label) == 11);
    CHECK(number_of(set->rows[0].features.at("x")) == 1);
}

// At equal event times the later-sent fact wins; a correction takes the
// place of the fact it corrects, so it does not jump ahead of a fact sent
// between the two (it did: labels came out 11, not 20).
TEST_CASE("training set: a correction keeps its fact's place among facts at the same time",
          "[training_data]") {
    fact_db db;
    db.add("posts", "L", t0, {{"x", 1}});
    const auto first = db.add("likes", "L", t0 + 10 * minute, {{"y", 10}});
    db.add("likes", "L", t0 + 10 * minute, {{"y", 20}});
    db.add("likes", "L", t0 + 30 * minute, {{"y", 11}}, first);
    const auto feat = db.add("posts", "M", t0, {{"x", 1}});
    db.add("posts", "M", t0, {{"x", 2}});
    db.add("posts", "M", t0 + 30 * minute, {{"x", 3}}, feat);
    db.add("likes", "M", t0 + 10 * minute, {{"y", 5}});
    auto set = build_training_set(db.conn, posts_likes_definition(), 1000000);
    REQUIRE(set);
    REQUIRE(set->rows.size() == 2);
    CHECK(number_of(row_of(*set, "L")->label) == 20);
    CHECK(number_of(row_of(*set, "M")->features.at("x")) == 2);
}

// Features and label in one stream: a fact holding only the label is not
// the entity's feature fact (it hid the features sent before it: "x is
// always missing"); a fact holding both is.
TEST_CASE("training set: features from the label's own stream", "[training_data]") {
    fact_db db;
    db.add("events", "N", t0, {{"x", 7}});
    db.add("events", "N", t0 + 10 * minute, {{"y", 70}});
    db.add("events", "P", t0, {{"x", 1}});
    db.add("events", "P", t0 + 10 * minute, {{"x", 8}, {"y", 80}});
    db.add("events", "Q", t0 + 10 * minute, {{"y", 90}});  // no features at all
    auto d = posts_likes_definition();
    d.features_from = "events";
    d.label.stream = "events";
    auto set = build_training_set(db.conn, d, 1000000);
    REQUIRE(set);
    CHECK(set->without_features == 1);
    REQUIRE(set->rows.size() == 2);
    CHECK(number_of(row_of(*set, "N")->features.at("x")) == 7);
    CHECK(number_of(row_of(*set, "N")->label) == 70);
    CHECK(number_of(row_of(*set, "P")->features.at("x")) == 8);
}

// The every-N-new-labels trigger counts labels after the last version's
// snapshot and stored after the newest job was queued: a job that failed
// (one class only) keeps no snapshot, so its labels were counted again and
// the same failing job was queued every 30 s without a new label.
TEST_CASE("retrain trigger: labels count once a job was queued after them", "[training_data]") {
    fact_db db;
    const micros ingest = t0 + 600 * minute;
    for (int i = 0; i < 5; ++i) {
        db.add("likes", "K" + std::to_string(i), t0, {{"y", i}}, std::nullopt, ingest + i);
    }
    db.add("likes", "K9", t0, {{"other", 1}}, std::nullopt, ingest + 9);  // not a label
    CHECK(count_labels_after(db.conn, "likes", "y", 0) == 5);
    CHECK(count_labels_after(db.conn, "likes", "y", 0, ingest + 2) == 2);
    CHECK(count_labels_after(db.conn, "likes", "y", 0, ingest + 9) == 0);
    CHECK(count_labels_after(db.conn, "likes", "y", 3, ingest) == 2);  // ids 4 and 5
    // Up to a fact id; the same whether the id range (shorter than the
    // stream) or the stream (shorter than the range) is read.
    CHECK(count_labels_after(db.conn, "likes", "y", 3, ingest, 4) == 1);
    CHECK(count_labels_after(db.conn, "likes", "y", 0, 0, 2) == 2);
    for (int i = 0; i < 20; ++i) db.add("other", "O" + std::to_string(i), t0, {{"y", i}});
    CHECK(count_labels_after(db.conn, "likes", "y", 0) == 5);
    CHECK(count_labels_after(db.conn, "likes", "y", 4) == 1);
    CHECK(count_labels_after(db.conn, "likes", "y", 6) == 0);
    CHECK(count_labels_after(db.conn, "nothing", "y", 0) == 0);
}

// A job keeps the newest fact id when it was queued: the trigger counts
// labels after it, not by the wall clock (which may step back).
TEST_CASE("retrain trigger: a job keeps the newest fact id it was queued at", "[training_data]") {
    fact_db db;
    auto d = posts_likes_definition();
    put_model(db.conn, "m", canonical_definition_json(d), "test");
    CHECK_FALSE(last_job_recency(db.conn, "m").facts_seen.has_value());
    db.add("likes", "A", t0, {{"y", 1}});
    const auto second = db.add("likes", "B", t0, {{"y", 2}});
    insert_job(db.conn, "m", "manual", "test");
    CHECK(last_job_recency(db.conn, "m").facts_seen == std::optional<std::int64_t>(second));
    db.add("likes", "C", t0, {{"y", 3}});
    CHECK(count_labels_after(db.conn, "likes", "y", *last_job_recency(db.conn, "m").facts_seen) ==
          1);
}

// =============================================================================
// One training run

// A field whose every column was dropped is ignored when served; profiled,
// its drift (a constant in training, anything when served) was reported.
TEST_CASE("train_model: drift profiles only the fields the model reads", "[training]") {
    auto data = synthetic_set(task_kind::regression, 200, 43);
    for (auto& ex : data.rows)
        ex.features = raw_record{{"x1", ex.features.find("x1")->second},
                                 {"x2", ex.features.find("x2")->second},
                                 {"kc", 5.0}};
    auto d = xy_definition(task_kind::regression);
    feature_spec constant;
    constant.field = "kc";
    d.features.push_back(constant);
    auto out = train_model(d, data, nullptr, {});
    REQUIRE(out);
    CHECK(out->feature_names == std::vector<std::string>{"numeric-x1", "numeric-x2"});
    REQUIRE(out->profile.fields.size() == 2);
    CHECK(out->profile.fields[0].field == "x1");
    CHECK(out->profile.fields[1].field == "x2");
}

TEST_CASE("train_model: split by entity, metrics, gate and a verified artifact", "[training]") {
    const auto data = synthetic_set(task_kind::regression, 300, 42);
    const auto d = xy_definition(task_kind::regression);
    std::vector<std::string> log;
    std::vector<double> progress;
    training_hooks hooks;
    hooks.log = [&log](const std::string& level, const std::string& m) { log.push_back(level + ": " + m); };
    hooks.control.progress = [&progress](double f, const std::string&) { progress.push_back(f); };

    auto out = train_model(d, data, nullptr, hooks);
    REQUIRE(out);
    const std::size_t holdout = expected_holdout(data, 0.2);
    CHECK(out->test_rows == holdout);
    CHECK(out->train_rows == 300 - holdout);
    CHECK(out->split_rule == holdout_rule(0.2));
    CHECK(out->split_rule == "fmix64(fnv1a64(entity)) / 2^64 < 0.2");
    CHECK(out->probe_rows == std::min<std::size_t>(holdout, 200));
    CHECK(out->algo == algorithm::linear);
    CHECK(out->feature_names == std::vector<std::string>{"numeric-x1", "numeric-x2"});
    CHECK(out->classes.empty());
    CHECK(out->metrics.get("r2") > 0.99);
    CHECK(out->metrics.get("rmse") < out->baseline_metrics.get("rmse"));
    CHECK(out->gate.passed);
    CHECK_FALSE(out->live_version.has_value());
    CHECK_FALSE(progress.empty());
    CHECK(std::is_sorted(progress.begin(), progress.end()));
    std::string all;
    for (const auto& l : log) all += l + "\n";
    CHECK_THAT(all, Contains("split 300 rows") && Contains("gate passed"));
    // Columns that never vary (missing-x1, missing-x2) were dropped with a warning.
    CHECK_THAT(all, Contains("warn: dropped column 'missing-x1'"));

    // The artifact loads back and predicts the learned function.
    auto art = load_artifact(out->artifact);
    REQUIRE(art);
    CHECK(art->task == task_kind::regression);
    CHECK(art->pipeline.names() == out->feature_names);
    auto p = predict_raw(*art, raw_record{{"x1", 1.0}, {"x2", 0.5}});
    REQUIRE(p);
    CHECK(p->value == Approx(3.0 - 1.0 + 1.0).margin(0.1));

    // What the model relies on: y = 3 x1 - 2 x2 + 1, so x1 before x2; each
    // drop is how much the holdout rmse rose with the field shuffled.
    const permutation_importance& imp = out->importance;
    CHECK(imp.metric == "rmse");
    CHECK(imp.rows == holdout);
    CHECK(imp.complete);
    CHECK(imp.evaluated == out->metrics.get("rmse"));
    REQUIRE(imp.fields.size() == 2);
    CHECK(imp.fields[0].field == "x1");
    CHECK(imp.fields[1].field == "x2");
    CHECK(imp.fields[1].drop > 1);  // x2 shuffled: rmse about 3.3 instead of about 0.06
    for (const auto& f : imp.fields) CHECK(f.shuffled - imp.evaluated == Approx(f.drop));
    // Drift's references: both fields, and the answers on the holdout.
    REQUIRE(out->profile.fields.size() == 2);
    CHECK(out->profile.fields[0].edges.size() == 9);
    REQUIRE(out->profile.prediction);
    CHECK(out->profile.prediction->kind == profile_kind::number);

    SECTION("row order does not change the split or the result") {
        auto shuffled = data;
        std::mt19937_64 engine(9);
        std::shuffle(shuffled.rows.begin(), shuffled.rows.end(), engine);
        auto again = train_model(d, shuffled, nullptr, {});
        REQUIRE(again);
        CHECK(again->train_rows == out->train_rows);
        CHECK(again->test_rows == out->test_rows);
        for (const auto& [name, value] : out->metrics.values) {
            INFO(name);
            CHECK(again->metrics.get(name) == Approx(value).epsilon(1e-9));
        }
    }
    SECTION("a live version scored on the same rows blocks an equal candidate") {
        live_reference live;
        live.version = 7;
        live.artifact = std::make_shared<const model_artifact>(std::move(*art));
        auto second = train_model(d, data, &live, {});
        REQUIRE(second);
        REQUIRE(second->live_version == std::optional<std::int64_t>(7));
        REQUIRE(second->live_metrics.has_value());
        CHECK(second->live_metrics->get("rmse") == Approx(out->metrics.get("rmse")));
        CHECK_FALSE(second->gate.passed);
        CHECK_THAT(all_reasons(second->gate), Contains("does not beat the live version on rmse"));
    }
    SECTION("a holdout row live cannot answer leaves the rest to compare on") {
        // One holdout entity with x1 = 1e308: the linear live version's
        // answer is infinite there. A weak candidate (one shallow tree) that
        // answers it beats the baseline but not live: the gate once left
        // live out and published it.
        training_set extra = data;
        training_example odd = extra.rows.front();
        for (int i = 0; !holdout_of(odd.entity, 0.2); ++i) odd.entity = "odd" + std::to_string(i);
        odd.features = {{"x1", 1e308}, {"x2", 0.0}};
        odd.label = 1.0;
        extra.rows.push_back(odd);
        live_reference live;
        live.version = 7;
        live.artifact = std::make_shared<const model_artifact>(std::move(*art));
        auto weak = xy_definition(task_kind::regression, "forest");
        weak.params.num_trees = 1;
        weak.params.min_samples_per_leaf = 60;
        std::vector<std::string> job_log;
        training_hooks job_hooks;
        job_hooks.log = [&job_log](const std::string&, const std::string& m) {
            job_log.push_back(m);
        };
        auto second = train_model(weak, extra, &live, job_hooks);
        REQUIRE(second);
        REQUIRE(second->live_version == std::optional<std::int64_t>(7));
        CHECK(second->live_rows == std::optional<std::size_t>(second->test_rows - 1));
        REQUIRE(second->gate.candidate_on_live_rows.has_value());
        CHECK(second->gate.candidate < second->gate.baseline);  // beats the baseline
        CHECK(*second->gate.candidate_on_live_rows > *second->gate.live);
        CHECK_FALSE(second->gate.passed);
        CHECK_THAT(all_reasons(second->gate), Contains("does not beat the live version on rmse") &&
                                                  Contains("on the rows live is compared on"));
        std::string job_text;
        for (const auto& l : job_log) job_text += l + "\n";
        CHECK_THAT(job_text, Contains("cannot answer 1 of") && Contains("entity odd"));
    }
}

// Past importance_max_rows holdout rows, the shuffled scores cover the first
// rows only; each drop was taken against the whole holdout's score, so a
// field the model cannot see "dropped" by the difference between the two.
TEST_CASE("train_model: importance on a large holdout compares scores on the same rows",
          "[training]") {
    const auto data = synthetic_set(task_kind::regression, 6000, 7);
    auto d = xy_definition(task_kind::regression);
    d.holdout = 0.5;
    feature_spec ghost;
    ghost.field = "ghost";  // in no row: the pipeline drops it
    d.features.push_back(ghost);
    auto out = train_model(d, data, nullptr, {});
    REQUIRE(out);
    REQUIRE(out->test_rows > importance_max_rows);
    const permutation_importance& imp = out->importance;
    CHECK(imp.rows == importance_max_rows);
    CHECK(imp.evaluated != out->metrics.get("rmse"));  // another set of rows
    REQUIRE(imp.fields.size() == 3);
    CHECK(imp.fields[2].field == "ghost");
    CHECK(imp.fields[2].drop == 0);
    CHECK(imp.fields[2].shuffled == imp.evaluated);
    CHECK(imp.fields[0].drop > 1);
}

TEST_CASE("train_model: the holdout is exactly the entities the hash rule names", "[training]") {
    // Holdout entities get the negated target: the model learns from the other
    // entities only, so it must be badly wrong on exactly these rows.
    const auto data = synthetic_set(task_kind::regression, 300, 43, true);
    auto out = train_model(xy_definition(task_kind::regression), data, nullptr, {});
    REQUIRE(out);
    CHECK(out->test_rows == expected_holdout(data, 0.2));
    CHECK(out->metrics.get("r2") < -2.0);
    CHECK_FALSE(out->gate.passed);
}

TEST_CASE("train_model: binary classification with every algorithm", "[training]") {
    const auto data = synthetic_set(task_kind::binary, 300, 44);
    for (const char* algo : {"linear", "forest", "kernel"}) {
        INFO(algo);
        auto out = train_model(xy_definition(task_kind::binary, algo), data, nullptr, {});
        REQUIRE(out);
        CHECK(algorithm_name(out->algo) == std::string(algo));
        CHECK(out->classes == std::vector<std::string>{"false", "true"});
        CHECK(out->metrics.get("accuracy") > 0.85);
        CHECK(out->metrics.get("roc_auc") > 0.9);
        CHECK(out->baseline_metrics.get("roc_auc") == Approx(0.5));
        CHECK(out->metrics.confusion.size() == 2);
        CHECK(out->gate.passed);
        auto art = load_artifact(out->artifact);
        REQUIRE(art);
        auto p = predict_raw(*art, raw_record{{"x1", 2.0}, {"x2", -2.0}});
        REQUIRE(p);
        CHECK(p->label == "true");
        REQUIRE(p->probabilities.size() == 2);
        CHECK(p->probabilities[1] > 0.5);
    }
}

TEST_CASE("train_model: a calibrated binary version serves what its holdout measured",
          "[training]") {
    const auto data = synthetic_set(task_kind::binary, 400, 45);
    for (auto method : {calibration_method::sigmoid, calibration_method::isotonic}) {
        INFO(calibration_method_name(method));
        auto d = xy_definition(task_kind::binary, "forest");
        d.params.num_trees = 20;
        d.calibration = method;
        std::vector<std::string> lines;
        training_hooks hooks;
        hooks.log = [&](const std::string& level, const std::string& m) {
            lines.push_back(level + ": " + m);
        };
        auto out = train_model(d, data, nullptr, hooks);
        REQUIRE(out);
        REQUIRE(out->calibration);
        CHECK(out->calibration->fitted.method == method);
        CHECK(out->calibration->rows == out->train_rows);
        CHECK(out->calibration->after.brier == Approx(out->metrics.get("brier")));
        CHECK(out->reliability.size() == reliability_bins);
        const auto logged = [&](const std::string& part) {
            return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) {
                return l.find(part) != std::string::npos;
            });
        };
        CHECK(logged("out-of-fold training scores (3 folds)"));
        CHECK(logged("calibration on the holdout: Brier score"));
        // Isotonic on fewer than 1000 rows is warned of; sigmoid is not.
        CHECK(logged("may follow their noise") == (method == calibration_method::isotonic));
        auto art = load_artifact(out->artifact, load_use::predict);
        REQUIRE(art);
        REQUIRE(art->function->calibration());
        CHECK(art->function->kind() == algorithm::forest);
        // The stored function answers the map of its inner function.
        const calibrator& c = *art->function->calibration();
        const auto* inner = art->function->uncalibrated();
        for (double x1 : {-2.0, -0.5, 0.0, 0.7, 2.0}) {
            const auto row = art->pipeline.transform(raw_record{{"x1", x1}, {"x2", 0.3}});
            const double raw = inner->predict(row).probabilities[1];
            CHECK(art->function->predict(row).probabilities[1] == Approx(c(raw)));
        }
    }
    // Not asked for: no map, and the binary metrics still measure calibration.
    auto plain = train_model(xy_definition(task_kind::binary), data, nullptr, {});
    REQUIRE(plain);
    CHECK_FALSE(plain->calibration);
    CHECK(std::isfinite(plain->metrics.get("calibration_error")));
    auto art = load_artifact(plain->artifact);
    REQUIRE(art);
    CHECK(art->function->calibration() == nullptr);
}

TEST_CASE("train_model: a class found only among the holdout rows is said in the log",
          "[training]") {
    // It was scored on in silence: 5 of 15 holdout rows once.
    auto data = synthetic_set(task_kind::binary, 300, 51);
    int moved = 0;
    for (auto& r : data.rows) {
        r.label = std::string(std::get<bool>(r.label) ? "high" : "low");
        if (holdout_of(r.entity, 0.2) && moved < 3) {
            r.label = std::string("rare");
            ++moved;
        }
    }
    std::vector<std::string> log;
    training_hooks hooks;
    hooks.log = [&log](const std::string& level, const std::string& m) {
        log.push_back(level + ": " + m);
    };
    auto out = train_model(xy_definition(task_kind::multiclass), data, nullptr, hooks);
    REQUIRE(out);
    const std::string expected = "warn: 3 of " + std::to_string(expected_holdout(data, 0.2)) +
                                 " holdout rows are of a class no training row holds (\"rare\"): "
                                 "the model never saw it, and is scored on it";
    CHECK(std::find(log.begin(), log.end(), expected) != log.end());
    // Without one, no such line.
    log.clear();
    for (auto& r : data.rows) {
        if (std::get<std::string>(r.label) == "rare") r.label = std::string("low");
    }
    REQUIRE(train_model(xy_definition(task_kind::multiclass), data, nullptr, hooks));
    for (const auto& line : log) CHECK_THAT(line, !Contains("no training row holds"));
}

TEST_CASE("train_model: a class the holdout holds few rows of is said in the log", "[training]") {
    // 10 positives in 100,000 rows: a version was published on an AUC from
    // one holdout positive, without a word.
    auto data = synthetic_set(task_kind::binary, 300, 52);
    int kept = 0;
    for (auto& r : data.rows) {
        if (holdout_of(r.entity, 0.2) && std::get<bool>(r.label) && kept++ >= 2) r.label = false;
    }
    std::vector<std::string> log;
    training_hooks hooks;
    hooks.log = [&log](const std::string& level, const std::string& m) {
        log.push_back(level + ": " + m);
    };
    REQUIRE(train_model(xy_definition(task_kind::binary, "linear"), data, nullptr, hooks));
    const std::string expected = "warn: the holdout holds 2 rows of class \"true\" (of " +
                                 std::to_string(expected_holdout(data, 0.2)) +
                                 "): the holdout metrics rest on so few; more labels of it, or a "
                                 "larger holdout, make them trustworthy";
    CHECK(std::find(log.begin(), log.end(), expected) != log.end());
    for (const auto& line : log) CHECK_THAT(line, !Contains("of class \"false\""));

    SECTION("none at all: said as none") {
        for (auto& r : data.rows) {
            if (holdout_of(r.entity, 0.2)) r.label = false;
        }
        log.clear();
        REQUIRE(train_model(xy_definition(task_kind::binary, "linear"), data, nullptr, hooks));
        const std::string none = "warn: the holdout holds no row of class \"true\" (of " +
                                 std::to_string(expected_holdout(data, 0.2)) +
                                 "): the holdout metrics say nothing of it; more labels of it, "
                                 "or a larger holdout, would let them judge it";
        CHECK(std::find(log.begin(), log.end(), none) != log.end());
    }
}

// Labels near the double range make a linear model answer NaN. The probe
// check reported an artifact that "predicts differently" (an internal
// error); the failure now says the model cannot answer.
TEST_CASE("train_model: a model that cannot answer fails with that reason, not as a bad artifact",
          "[training]") {
    auto data = synthetic_set(task_kind::regression, 300, 49);
    int huge = 0;
    for (auto& r : data.rows) {
        if (!holdout_of(r.entity, 0.2) && huge < 5) {
            r.label = 1e308;
            ++huge;
        }
    }
    auto out = train_model(xy_definition(task_kind::regression), data, nullptr, {});
    REQUIRE_FALSE(out);
    CHECK(out.error().kind() == error_kind::failed_precondition);
    CHECK_THAT(out.error().message(), StartsWith("the fitted model cannot answer holdout row 0") &&
                                          Contains("not finite"));
}

TEST_CASE("train_model: data that cannot train a model fails with a reason", "[training]") {
    const auto d = xy_definition(task_kind::regression);
    SECTION("no labelled rows") {
        training_set empty;
        auto out = train_model(d, empty, nullptr, {});
        REQUIRE_FALSE(out);
        CHECK(out.error().kind() == error_kind::failed_precondition);
        CHECK_THAT(out.error().message(), StartsWith("no labelled rows"));
    }
    SECTION("labels without feature facts") {
        training_set none;
        none.labelled_entities = 3;
        none.without_features = 3;
        auto out = train_model(d, none, nullptr, {});
        REQUIRE_FALSE(out);
        CHECK_THAT(out.error().message(), Contains("3 labelled entities") && Contains("at or before"));
    }
    SECTION("too few rows") {
        auto few = synthetic_set(task_kind::regression, 6, 45);
        auto out = train_model(d, few, nullptr, {});
        REQUIRE_FALSE(out);
        CHECK(out.error().kind() == error_kind::failed_precondition);
        CHECK_THAT(out.error().message(), StartsWith("too few labelled rows"));
    }
    SECTION("one class only") {
        auto one = synthetic_set(task_kind::binary, 100, 46);
        for (auto& r : one.rows) r.label = true;
        auto out = train_model(xy_definition(task_kind::binary), one, nullptr, {});
        REQUIRE_FALSE(out);
        CHECK(out.error().kind() == error_kind::failed_precondition);
        CHECK_THAT(out.error().message(), Contains("one class"));
    }
    SECTION("a serving fallback that is not one of the classes") {
        // It answered "banana", with no probabilities, for a model of 0 and 1.
        auto set = synthetic_set(task_kind::binary, 100, 46);
        auto bd = xy_definition(task_kind::binary);
        bd.fallback_label = "banana";
        auto out = train_model(bd, set, nullptr, {});
        REQUIRE_FALSE(out);
        CHECK(out.error().kind() == error_kind::failed_precondition);
        CHECK(out.error().field() == "serving.fallback");
        CHECK_THAT(out.error().message(), Contains("\"banana\" is not one of the label's classes"));
        bd.fallback_label = "true";  // the classes of boolean labels
        CHECK(train_model(bd, set, nullptr, {}).is_ok());
    }
    SECTION("labels of the wrong type") {
        auto texts = synthetic_set(task_kind::regression, 100, 47);
        for (auto& r : texts.rows) r.label = std::string("many");
        auto out = train_model(d, texts, nullptr, {});
        REQUIRE_FALSE(out);
        CHECK_THAT(out.error().message(), Contains("found string"));
    }
    SECTION("more classes than allowed") {
        auto many = synthetic_set(task_kind::regression, 100, 48);
        int i = 0;
        for (auto& r : many.rows) r.label = std::string("c") + std::to_string(i++ % 5);
        auto md = xy_definition(task_kind::multiclass);
        md.max_classes = 3;
        auto out = train_model(md, many, nullptr, {});
        REQUIRE_FALSE(out);
        CHECK_THAT(out.error().message(), Contains("at most 3 classes, found 5"));
    }
    SECTION("nothing left after dropping constant features") {
        auto flat = synthetic_set(task_kind::regression, 100, 49);
        for (auto& r : flat.rows) r.features = {{"x1", 1.0}};
        auto out = train_model(d, flat, nullptr, {});
        REQUIRE_FALSE(out);
        CHECK(out.error().kind() == error_kind::failed_precondition);
        CHECK_THAT(out.error().message(), Contains("no usable feature columns"));
    }
    SECTION("cancelled") {
        training_hooks hooks;
        hooks.control.cancelled = [] { return true; };
        auto out = train_model(d, synthetic_set(task_kind::regression, 100, 50), nullptr, hooks);
        REQUIRE_FALSE(out);
        CHECK(out.error().kind() == error_kind::conflict);
        CHECK(out.error().message() == "cancelled");
    }
}

// A cancel answered 202 and then a stop (or a crash) before the job ended:
// the job was queued again at the next start, trained, and went live.
TEST_CASE("recovery: a running job whose cancel was accepted ends cancelled, not requeued",
          "[training_data]") {
    fact_db db;
    put_model(db.conn, "m", canonical_definition_json(posts_likes_definition()), "test");
    const auto cancelled = insert_job(db.conn, "m", "manual", "test");
    REQUIRE(transition_job(db.conn, cancelled, job_state::queued, job_state::running));
    REQUIRE(request_cancel(db.conn, cancelled).is_ok());
    put_model(db.conn, "n", canonical_definition_json(posts_likes_definition()), "test");
    const auto plain = insert_job(db.conn, "n", "manual", "test");
    REQUIRE(transition_job(db.conn, plain, job_state::queued, job_state::running));

    const auto fresh = recover_interrupted_jobs(db.conn);
    REQUIRE(fresh.size() == 1);  // only the job nobody cancelled
    CHECK(fresh[0].interrupted == plain);
    CHECK(fresh[0].model == "n");
    CHECK(get_job(db.conn, fresh[0].queued)->model == "n");
    auto c = get_job(db.conn, cancelled);
    REQUIRE(c);
    CHECK(c->state == job_state::cancelled);
    CHECK(c->error == std::optional<std::string>("cancelled on request"));
    CHECK(c->finished_at.has_value());
    CHECK(get_job(db.conn, plain)->state == job_state::interrupted);
}

TEST_CASE("a new revision carries the jobs queued for older ones over to it", "[training_data]") {
    // They stayed queued and trained the replaced definition (a probe
    // cancelled 42 such jobs by hand after editing definitions).
    fact_db db;
    const std::string first = canonical_definition_json(posts_likes_definition());
    put_model(db.conn, "m", first, "test");
    const auto scheduled = insert_job(db.conn, "m", "new_labels", "scheduler");
    CHECK_FALSE(carry_queued_jobs_to_current_revision(db.conn, "m"));  // nothing older
    auto changed = posts_likes_definition();
    changed.holdout = 0.3;
    REQUIRE(put_model(db.conn, "m", canonical_definition_json(changed), "test").new_revision);
    const auto carried = carry_queued_jobs_to_current_revision(db.conn, "m");
    REQUIRE(carried);
    const auto now = get_job(db.conn, *carried);
    REQUIRE(now);
    CHECK(now->state == job_state::queued);
    CHECK(now->revision == 2);
    CHECK(now->trigger == "new_labels");
    CHECK(now->requested_by == "scheduler");
    const auto old = get_job(db.conn, scheduled);
    CHECK(old->state == job_state::cancelled);
    CHECK(old->error == std::optional<std::string>("superseded by job " + std::to_string(*carried) +
                                                   ", which trains revision 2"));
    // Its message says so too, as a job cancelled on request's does (it was "").
    CHECK(old->message ==
          "cancelled: superseded by job " + std::to_string(*carried) + ", which trains revision 2");
    CHECK_FALSE(carry_queued_jobs_to_current_revision(db.conn, "m"));  // done once
    // A queued job cancelled on request says what it came to the same way.
    REQUIRE(request_cancel(db.conn, *carried));
    CHECK(get_job(db.conn, *carried)->message == "cancelled: cancelled before it started");
}

TEST_CASE("queued jobs run those asked for first, then the triggers', each oldest first",
          "[training_data]") {
    fact_db db;
    for (const char* m : {"a", "b", "c", "d"})
        put_model(db.conn, m, canonical_definition_json(posts_likes_definition()), "test");
    const auto interval = insert_job(db.conn, "a", "interval", "scheduler");
    const auto labels = insert_job(db.conn, "b", "new_labels", "scheduler");
    const auto person = insert_job(db.conn, "c", "manual", "admin");
    const auto person2 = insert_job(db.conn, "d", "manual", "key:app");
    std::vector<std::int64_t> order;
    while (auto next = next_queued_job(db.conn)) {
        order.push_back(next->id);
        REQUIRE(transition_job(db.conn, next->id, job_state::queued, job_state::running));
    }
    CHECK(order == std::vector<std::int64_t>{person, person2, interval, labels});
}

TEST_CASE("retrain trigger: failures in a row are counted from the newest job", "[training_data]") {
    fact_db db;
    put_model(db.conn, "m", canonical_definition_json(posts_likes_definition()), "test");
    CHECK_FALSE(last_job_recency(db.conn, "m").last_activity.has_value());
    auto run = [&](job_state end) {
        const auto id = insert_job(db.conn, "m", "interval", "scheduler");
        REQUIRE(transition_job(db.conn, id, job_state::queued, job_state::running));
        REQUIRE(transition_job(db.conn, id, job_state::running, end));
    };
    run(job_state::failed);
    run(job_state::succeeded);
    run(job_state::failed);
    run(job_state::timed_out);
    const job_recency r = last_job_recency(db.conn, "m");
    CHECK(r.failed_in_a_row == 2);
    REQUIRE(r.last_activity.has_value());
    CHECK(*r.last_activity > 0);
    run(job_state::succeeded);
    CHECK(last_job_recency(db.conn, "m").failed_in_a_row == 0);
}

TEST_CASE("retrain trigger: the wait after failures in a row doubles, up to an hour",
          "[training_data]") {
    const micros gap = 30000000;
    CHECK(ml::automatic_job_wait(gap, 0) == gap);
    CHECK(ml::automatic_job_wait(gap, 1) == gap);
    CHECK(ml::automatic_job_wait(gap, 2) == 2 * gap);
    CHECK(ml::automatic_job_wait(gap, 4) == 8 * gap);
    CHECK(ml::automatic_job_wait(gap, 16) == 3600000000LL);
    CHECK(ml::automatic_job_wait(2 * 3600000000LL, 5) == 2 * 3600000000LL);  // never below the gap
}

// =============================================================================
// A holdout by time

TEST_CASE("holdout_from_time: the newest share, ties on the holdout side", "[training]") {
    CHECK(holdout_from_time({5, 1, 3, 2, 4}, 0.4) == std::optional<std::int64_t>(4));
    CHECK(holdout_from_time({5, 1, 3, 2, 4}, 0.2) == std::optional<std::int64_t>(5));
    CHECK(holdout_from_time({5, 1, 3, 2, 4}, 0.01) ==
          std::optional<std::int64_t>(5));  // one at least
    // Ties on one side: of the holdouts 4 (at 2) and 1 (at 3), 1 is closer to 2.
    CHECK(holdout_from_time({1, 2, 2, 2, 3}, 0.4) == std::optional<std::int64_t>(3));
    CHECK(holdout_from_time({1, 2, 2, 3}, 0.5) ==
          std::optional<std::int64_t>(2));  // 3 or 1: the larger
    // Half at one time, half at another: 50 of 100 rather than all 100.
    std::vector<std::int64_t> two(50, 1);
    two.resize(100, 2);
    CHECK(holdout_from_time(two, 0.6) == std::optional<std::int64_t>(2));
    CHECK(holdout_from_time(two, 0.9) == std::optional<std::int64_t>(2));  // not none to train on
    CHECK(holdout_from_time({7, 7, 7}, 0.2) == std::optional<std::int64_t>(7));
    CHECK_FALSE(holdout_from_time({}, 0.2).has_value());
    // 8, 24 and 8 rows at three times, half held out: 32 or 8, as close;
    // the larger leaves 8 to train on, fewer than 10: the other.
    std::vector<std::int64_t> three(8, 1);
    three.resize(32, 2);
    three.resize(40, 3);
    CHECK(holdout_from_time(three, 0.5) == std::optional<std::int64_t>(2));
    CHECK(holdout_from_time(three, 0.5, 10, 3) == std::optional<std::int64_t>(3));
    CHECK(holdout_time_rule(1'700'000'000'000'000, 0.2, 60, 300) ==
          "label time >= 2023-11-14T22:13:20Z (share 0.2 asked: 60 of 300 labelled rows)");
}

namespace {

// synthetic_set's rows labelled a second apart, in a shuffled order; the
// newest `flipped` have their regression target negated (the world changed).
training_set timed_set(int n, int flipped) {
    auto s = synthetic_set(task_kind::regression, n, 45);
    constexpr std::int64_t start = 1'700'000'000'000'000;
    for (int i = 0; i < n; ++i) {
        auto& ex = s.rows[static_cast<std::size_t>(i)];
        ex.label_time = start + 1'000'000LL * i;
        ex.live_label_time = ex.label_time;  // as a live version's training read it
        if (i >= n - flipped) ex.label = -std::get<double>(ex.label);
    }
    std::mt19937_64 engine(3);
    std::shuffle(s.rows.begin(), s.rows.end(), engine);
    return s;
}

// A version trained on `data` as the live one, numbered `version`.
live_reference trained_live(const model_definition& d, const training_set& data,
                            std::int64_t version) {
    auto trained = train_model(d, data, nullptr, {});
    REQUIRE(trained);
    auto art = load_artifact(trained->artifact);
    REQUIRE(art);
    live_reference live;
    live.version = version;
    live.artifact = std::make_shared<const model_artifact>(std::move(*art));
    return live;
}

model_definition by_time(double share = 0.2) {
    auto d = xy_definition(task_kind::regression);
    d.holdout = share;
    d.holdout_by = split_by::time;
    return d;
}

}  // namespace

TEST_CASE("train_model: a holdout by time is the newest labels", "[training]") {
    constexpr std::int64_t start = 1'700'000'000'000'000;
    // The newest 60 of 300 labels come from a changed world: a random holdout
    // would mix them with the rest; the newest labels are exactly those.
    const auto data = timed_set(300, 60);
    std::vector<std::string> log;
    training_hooks hooks;
    hooks.log = [&log](const std::string& level, const std::string& m) {
        log.push_back(level + ": " + m);
    };
    auto out = train_model(by_time(), data, nullptr, hooks);
    REQUIRE(out);
    CHECK(out->test_rows == 60);
    CHECK(out->train_rows == 240);
    CHECK(out->holdout_from == std::optional<std::int64_t>(start + 240'000'000));
    CHECK(out->split_rule ==
          "label time >= 2023-11-14T22:17:20Z (share 0.2 asked: 60 of 300 labelled rows)");
    CHECK(out->metrics.get("r2") < -2.0);  // it learned the old world only
    CHECK_FALSE(out->gate.passed);

    SECTION("the entity split of the same rows hides the change in its training side") {
        auto mixed = train_model(xy_definition(task_kind::regression), data, nullptr, {});
        REQUIRE(mixed);
        CHECK_FALSE(mixed->holdout_from.has_value());
        CHECK(mixed->metrics.get("r2") > out->metrics.get("r2") + 1);
    }
    SECTION("labels sharing the cut's time all go to the holdout, which the log says") {
        auto tied = data;
        for (auto& ex : tied.rows) ex.label_time = std::min(ex.label_time, start + 150'000'000);
        log.clear();
        auto t = train_model(by_time(), tied, nullptr, hooks);
        REQUIRE(t);
        CHECK(t->test_rows == 150);
        bool said = false;
        for (const auto& l : log) {
            said = said || l == "warn: holdout by time: 150 of the 300 labelled rows are at or "
                                "after 2023-11-14T22:15:50Z, the cut nearest the newest 0.2 with "
                                "rows of one time on one side; the holdout is 0.5 of the rows";
        }
        CHECK(said);
    }
    SECTION("labels all at one time cannot be split by time, and the job says why") {
        auto flat = data;
        for (auto& ex : flat.rows) ex.label_time = start;
        auto t = train_model(by_time(), flat, nullptr, {});
        REQUIRE_FALSE(t);
        CHECK(t.error().message() ==
              "too few labelled rows: 0 train and 300 holdout; need at least 10 and 3 (holdout by "
              "time: every label is at 2023-11-14T22:13:20Z, so none is older to train on)");
    }
}

TEST_CASE("train_model: a live version split by time is compared on rows after its cut",
          "[training]") {
    constexpr std::int64_t start = 1'700'000'000'000'000;
    const auto data = timed_set(300, 0);
    live_reference live = trained_live(by_time(), data, 3);
    std::vector<std::string> log;
    training_hooks hooks;
    hooks.log = [&log](const std::string&, const std::string& m) { log.push_back(m); };

    SECTION("labels before its cut were its to learn from: left out") {
        live.holdout_from = start + 270'000'000;
        auto second = train_model(by_time(), data, &live, hooks);
        REQUIRE(second);
        CHECK(second->test_rows == 60);
        CHECK(second->live_rows == std::optional<std::size_t>(30));
        std::string text;
        for (const auto& l : log) text += l + "\n";
        CHECK_THAT(text, Contains("live version 3 trained on 30 of 60 holdout rows (its holdout "
                                  "began at label time 2023-11-14T22:17:50Z); compared with it "
                                  "on the others only"));
    }
    SECTION("an entity live read a label before its cut for, labelled again since: left out") {
        live.holdout_from = start + 270'000'000;
        auto relabelled = data;
        int moved = 0;
        for (auto& ex : relabelled.rows) {
            if (ex.label_time >= start + 280'000'000) {
                ex.live_label_time = start;  // live's training read an older label
                ++moved;
            }
        }
        REQUIRE(moved == 20);
        auto second = train_model(by_time(), relabelled, &live, hooks);
        REQUIRE(second);
        CHECK(second->live_rows == std::optional<std::size_t>(10));
    }
    SECTION("entities live read no label for, or one in its own holdout: compared") {
        live.holdout_from = start + 270'000'000;
        auto later = data;
        for (auto& ex : later.rows) {
            if (ex.label_time < start + 270'000'000) ex.live_label_time.reset();
        }
        auto second = train_model(by_time(), later, &live, hooks);
        REQUIRE(second);
        CHECK_FALSE(second->live_rows.has_value());  // all 60 compared
        CHECK(second->live_metrics.has_value());
    }
    SECTION("a holdout by entity of the same version's is left alone when it split by time") {
        live.holdout = 0.2;
        live.holdout_from = start;  // every row at or after it
        auto second = train_model(xy_definition(task_kind::regression), data, &live, hooks);
        REQUIRE(second);
        CHECK_FALSE(second->live_rows.has_value());  // every holdout row compared
        CHECK(second->live_metrics.has_value());
    }
    SECTION("its cut after every row: nothing to compare on, said") {
        live.holdout_from = start + 1'000'000'000;
        auto second = train_model(by_time(), data, &live, hooks);
        REQUIRE(second);
        CHECK_FALSE(second->live_metrics.has_value());
        CHECK(second->live_version == std::optional<std::int64_t>(3));
        CHECK(second->live_not_compared ==
              std::optional<std::string>("every holdout row is on its own training side (its "
                                         "holdout began at label time 2023-11-14T22:30:00Z)"));
        std::string text;
        for (const auto& l : log) text += l + "\n";
        CHECK_THAT(text, Contains("could not score live version 3: every holdout row is on its "
                                  "own training side (its holdout began at label time "
                                  "2023-11-14T22:30:00Z); the gate cannot tell whether the "
                                  "candidate beats it"));
    }
}

TEST_CASE("train_model: live is compared on enough rows, or not at all", "[training]") {
    constexpr std::int64_t start = 1'700'000'000'000'000;
    auto data = timed_set(300, 0);
    live_reference live = trained_live(by_time(), data, 4);

    SECTION("5 rows after its cut: too few to say which is better") {
        live.holdout_from = start + 295'000'000;
        auto second = train_model(by_time(), data, &live, {});
        REQUIRE(second);
        CHECK_FALSE(second->live_metrics.has_value());
        CHECK(second->live_not_compared ==
              std::optional<std::string>(
                  "only 5 of the 60 holdout rows to compare on, fewer than 10: 55 on its own "
                  "training side (its holdout began at label time 2023-11-14T22:18:15Z)"));
    }
    SECTION("split by entity, with its labels read again: an entity it read none for is compared") {
        live.holdout = 0.2;
        live.labels_read = true;
        auto unseen = data;
        for (auto& ex : unseen.rows) ex.live_label_time.reset();
        auto second = train_model(by_time(), unseen, &live, {});
        REQUIRE(second);
        CHECK_FALSE(second->live_rows.has_value());  // all 60
        CHECK(second->live_metrics.has_value());
        // Read then: those its hash rule kept for training are left out.
        auto seen = train_model(by_time(), data, &live, {});
        REQUIRE(seen);
        std::size_t kept = 0;
        for (const auto& ex : data.rows) {
            kept += ex.label_time >= start + 240'000'000 && holdout_of(ex.entity, 0.2) ? 1 : 0;
        }
        REQUIRE(kept >= min_live_rows);
        CHECK(seen->live_rows == std::optional<std::size_t>(kept));
    }
    SECTION("multiclass: rows of a class live never trained on are left out") {
        // Live answers "d" 0, clipped to 1e-15 by log loss: a few such rows
        // decided the gate (a model of noise beat live on log loss), whether
        // the candidate trained on "d" (here, five older rows) or not.
        auto multi = data;
        auto d = xy_definition(task_kind::multiclass);
        d.holdout_by = split_by::time;
        training_set older;
        for (auto& ex : multi.rows) {
            const double v = std::get<double>(ex.label);
            ex.label = std::string(v > 3 ? "a" : v > -1 ? "b" : "c");
            const std::int64_t i = (ex.label_time - start) / 1'000'000;
            if (i >= 297 || (i < 240 && i % 50 == 7))
                ex.label = std::string("d");
            else
                older.rows.push_back(ex);
        }
        live_reference multi_live = trained_live(d, older, 6);
        std::vector<std::string> log;
        training_hooks hooks;
        hooks.log = [&log](const std::string&, const std::string& m) { log.push_back(m); };
        auto second = train_model(d, multi, &multi_live, hooks);
        REQUIRE(second);
        CHECK(second->live_rows == std::optional<std::size_t>(57));
        std::string text;
        for (const auto& l : log) text += l + "\n";
        CHECK_THAT(text, Contains("3 of 60 holdout rows are of a class live version 6 never "
                                  "trained on (\"d\"): it cannot answer them; compared with it "
                                  "on the others only"));
        CHECK(second->live_unknown_classes == std::vector<std::string>{"d"});
        CHECK(second->live_unknown_rows == 3);

        CHECK(second->live_unknown_learned == std::vector<std::string>{"d"});

        // A weaker candidate (x2 alone) that learned "d": rejected against
        // live on the other rows (passing there would let any candidate
        // with one row of a class live lacks past live), and said to pass
        // all else, for a person who wants "d" answered.
        auto weak = d;
        weak.features.erase(weak.features.begin());
        auto third = train_model(weak, multi, &multi_live, hooks);
        REQUIRE(third);
        CHECK_FALSE(third->gate.passed);
        CHECK_THAT(third->gate.reasons.front(), StartsWith("does not beat the live version"));
        CHECK(third->fails_only_against_live);
        CHECK_FALSE(third->live_not_compared.has_value());
    }
    SECTION("binary: the rows to compare on hold one class") {
        auto binary = synthetic_set(task_kind::binary, 300, 46);
        for (int i = 0; i < 300; ++i) {
            auto& ex = binary.rows[static_cast<std::size_t>(i)];
            ex.label_time = start + 1'000'000LL * i;
            ex.live_label_time = ex.label_time;
            if (i >= 288) ex.label = false;
        }
        auto d = xy_definition(task_kind::binary);
        d.holdout_by = split_by::time;
        live_reference binary_live = trained_live(d, binary, 5);
        binary_live.holdout_from = start + 288'000'000;
        auto second = train_model(d, binary, &binary_live, {});
        REQUIRE(second);
        CHECK(std::isfinite(second->metrics.get("roc_auc")));
        CHECK(second->live_not_compared ==
              std::optional<std::string>("roc_auc is undefined on the 12 holdout rows to compare "
                                         "on (they hold one class only)"));
    }
}

TEST_CASE("definitions: a holdout by time", "[definition]") {
    auto parse = [](const std::string& holdout) {
        return parse_definition(
            R"({"task":"regression","features_from":"p","label":{"stream":"l","field":"y"},)"
            R"("features":[{"field":"x"}],"holdout":)" +
            holdout + "}");
    };
    auto ok = parse(R"({"share": 0.3, "by": "time"})");
    REQUIRE(ok.errors.empty());
    CHECK(ok.definition.holdout == 0.3);
    CHECK(ok.definition.holdout_by == split_by::time);
    const auto canonical = json::parse(canonical_definition_json(ok.definition));
    CHECK(canonical["holdout"] == json{{"share", 0.3}, {"by", "time"}});
    CHECK(parse_definition(canonical.dump()).definition.holdout_by == split_by::time);

    auto defaults = parse(R"({"by": "time"})");
    REQUIRE(defaults.errors.empty());
    CHECK(defaults.definition.holdout == 0.2);
    // By entity, the share alone, as definitions always read.
    auto entity = parse(R"({"share": 0.25, "by": "entity"})");
    REQUIRE(entity.errors.empty());
    CHECK(entity.definition.holdout_by == split_by::entity);
    CHECK(json::parse(canonical_definition_json(entity.definition))["holdout"] == json(0.25));
    CHECK(parse("0.25").definition.holdout_by == split_by::entity);

    auto one_error = [&](const std::string& holdout) {
        auto p = parse(holdout);
        REQUIRE(p.errors.size() == 1);
        return p.errors.front().field + ": " + p.errors.front().message;
    };
    CHECK(one_error(R"({"by": "label"})") == R"(holdout.by: must be "entity" or "time")");
    CHECK(one_error(R"({"by": 1})") == "holdout.by: must be a non-empty string");
    CHECK(one_error(R"({"share": 0.95, "by": "time"})") ==
          "holdout.share: must be between 0.05 and 0.9");
    CHECK(one_error(R"({"share": "0.2"})") == "holdout.share: must be a number");
    CHECK(one_error(R"({"by": "time", "column": "t"})") == "holdout.column: unknown field");
    CHECK(
        one_error(R"("time")") ==
        R"(holdout: must be a number (a share like 0.2) or an object like {"share": 0.2, "by": "time"})");
    CHECK(
        one_error("[0.2]") ==
        R"(holdout: must be a number (a share like 0.2) or an object like {"share": 0.2, "by": "time"})");
}

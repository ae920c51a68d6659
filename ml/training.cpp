#include "ml/training.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <sstream>

#include "ml/dataset.h"
#include "ml/explain.h"
#include "ml/hash.h"
#include "store/time_util.h"

namespace kennel::ml {
namespace {

using steady = std::chrono::steady_clock;

using log_fn = std::function<void(const std::string& level, const std::string& message)>;

double seconds_since(steady::time_point t) {
    return std::chrono::duration<double>(steady::now() - t).count();
}

std::string fmt(double v) {
    std::ostringstream s;
    s.precision(6);
    s << v;
    return s.str();
}

std::string interval_words(double lower, double upper) {
    return "[" + short_number(lower) + ", " + short_number(upper) + "]";
}

// The holdout rows a decision's rate counts over, after "row(s)".
const char* holdout_rows_words(decision_rate r) {
    switch (r) {
        case decision_rate::precision:
            return " answered positive";
        case decision_rate::recall:
            return " of the positive class";
        case decision_rate::false_positive_rate:
            return " of the negative class";
    }
    return "";
}

// The job log's line on the operating point.
std::string decision_words(const operating_point& p) {
    // The threshold in full: one just above the highest score reads as that
    // score at six digits.
    std::string s = "decision rule " + describe(p.policy) + ": threshold " +
                    plain_number(p.threshold) + " on the holdout, ";
    if (p.predicted_positive() == 0) {
        s += "no row answered positive";
    } else {
        s += "precision " + fmt(p.precision) + " " +
             interval_words(p.precision_lower, p.precision_upper) + " on " +
             std::to_string(p.predicted_positive()) +
             (p.predicted_positive() == 1 ? " row" : " rows") + " answered positive";
    }
    if (p.positives > 0) {
        s += ", recall " + fmt(p.recall) + " " + interval_words(p.recall_lower, p.recall_upper) +
             " of " + std::to_string(p.positives) + " positive rows";
    }
    if (p.rows > p.positives) {
        s += ", false positive rate " + fmt(p.false_positive_rate) + " " +
             interval_words(p.false_positive_rate_lower, p.false_positive_rate_upper) + " of " +
             std::to_string(p.rows - p.positives) + " negative rows";
    }
    s += " (95% intervals)";
    if (p.policy.rule == decision_rule::min_cost) s += ", cost " + fmt(p.cost);
    if (!p.met) s += "; not met: " + p.unmet;
    return s;
}

// A threshold chosen on a handful of rows reaches its target by luck as
// often as by skill: said, with what the rule rests on.
std::vector<std::string> decision_rests_on_few(const operating_point& p) {
    constexpr std::size_t few = 10;
    std::vector<std::string> out;
    // Not met (or a holdout without both classes): the gate says why.
    if (!p.met || p.positives == 0 || p.positives == p.rows) return out;
    const std::string surer = ": more labels, or a larger holdout, make it surer";
    // The rate the rule is written on, the rows it counts over, and how far
    // its target is from the rate's end (a precision of 0.9999 is 0.0001
    // from 1; a false positive rate of 0.0004 from 0).
    struct basis {
        const char* rate;
        const char* rows;
        std::size_t n;
        double value, lower, upper, margin;
    };
    std::optional<basis> b;
    if (const auto rate = decision_rate_of(p.policy.rule)) {
        static const char* const rates[] = {"precision", "recall", "false positive rate"};
        static const char* const rows[] = {"rows answered positive", "positive rows",
                                           "negative rows"};
        const auto k = static_cast<std::size_t>(*rate);
        const rate_measure m = measure(p, *rate);
        const double margin =
            *rate == decision_rate::false_positive_rate ? p.policy.target : 1 - p.policy.target;
        b = basis{rates[k], rows[k], m.rows, m.value, m.lower, m.upper, margin};
    }
    if (b && b->n < few) {
        out.push_back("the decision's " + std::string(b->rate) + " rests on " +
                      std::to_string(b->n) + " holdout " + b->rows + " (95% interval " +
                      interval_words(b->lower, b->upper) + ")" + surer);
    } else if (b && b->margin <= 0) {
        // A target at the rate's end (a recall of 1, no false positive) is
        // met or not on the holdout, but no holdout shows it holds after.
        out.push_back("the rule's target is at the end of the decision's " + std::string(b->rate) +
                      " (" + describe(p.policy) + "): met on the holdout's " +
                      std::to_string(b->n) + " " + b->rows +
                      ", it cannot be shown to hold beyond them (95% interval " +
                      interval_words(b->lower, b->upper) + ")");
    } else if (b && 1.0 / static_cast<double>(b->n) > b->margin) {
        // One row more or less moves the rate further than the target is
        // from its end: the holdout cannot tell the target from the end.
        out.push_back(
            "the holdout cannot resolve the rule's target: one row moves the "
            "decision's " +
            std::string(b->rate) + " by " + fmt(1.0 / static_cast<double>(b->n)) + " over its " +
            std::to_string(b->n) + " " + b->rows + ", more than the target's margin of " +
            short_number(b->margin) + " (" + b->rate + " " + fmt(b->value) + ", 95% interval " +
            interval_words(b->lower, b->upper) + ")" + surer);
    }
    if (p.predicted_positive() == 0) {
        out.push_back("the decision answers no holdout row positive (its threshold, " +
                      plain_number(p.threshold) +
                      (p.policy.rule == decision_rule::fixed
                           ? ", is above every holdout score"
                           : ", is just above the highest holdout score") +
                      "): served, it says yes only to a score above every holdout row's");
    }
    return out;
}

// Holdout metrics of one function over encoded rows.
result<metric_listing> score(task_kind task, const fitted_function& fn, const feature_rows& x,
                             const std::vector<double>& y, std::size_t num_classes) {
    if (is_classification(task)) {
        std::vector<std::vector<double>> probs;
        probs.reserve(x.size());
        for (const auto& row : x) probs.push_back(fn.predict(row).probabilities);
        auto m = evaluate_classification(y, probs, num_classes);
        if (!m) return m.error();
        return list_metrics(*m);
    }
    std::vector<double> pred;
    pred.reserve(x.size());
    for (const auto& row : x) pred.push_back(fn.predict(row).value);
    auto m = evaluate_regression(y, pred);
    if (!m) return m.error();
    return list_metrics(*m);
}

// Shuffles one field at a time among the holdout rows (a seed from the
// field's name: the same every run) and scores the candidate again.
permutation_importance importance_by_permutation(
    const model_definition& d, const feature_pipeline& pipeline, const fitted_function& fn,
    const std::vector<const training_example*>& test, const std::vector<double>& y,
    std::size_t num_classes, const metric_listing& evaluated) {
    const auto started = std::chrono::steady_clock::now();
    const primary_metric_info pm = primary_metric(d.task);
    permutation_importance out;
    out.metric = pm.name;
    out.evaluated = evaluated.get(pm.name);
    out.rows = std::min(test.size(), importance_max_rows);
    const std::vector<double> y_used(y.begin(), y.begin() + static_cast<std::ptrdiff_t>(out.rows));
    if (out.rows < test.size()) {
        // Drops compare like with like: the unshuffled score on the same
        // rows, not on the whole holdout (else an ignored field "drops").
        feature_rows x;
        x.reserve(out.rows);
        for (std::size_t i = 0; i < out.rows; ++i)
            x.push_back(pipeline.transform(test[i]->features));
        auto m = score(d.task, fn, x, y_used, num_classes);
        out.evaluated = m ? m->get(pm.name) : std::numeric_limits<double>::quiet_NaN();
    }
    std::vector<std::string> fields;
    for (const auto& spec : d.features) fields.push_back(spec.field);
    std::sort(fields.begin(), fields.end());
    fields.erase(std::unique(fields.begin(), fields.end()), fields.end());
    for (const auto& field : fields) {
        if (std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() >
            importance_budget_seconds) {
            out.complete = false;
            break;
        }
        std::vector<raw_value> values;
        values.reserve(out.rows);
        for (std::size_t i = 0; i < out.rows; ++i) {
            auto it = test[i]->features.find(field);
            values.push_back(it == test[i]->features.end() ? raw_value{} : it->second);
        }
        std::mt19937_64 rng(fnv1a64(field));
        std::shuffle(values.begin(), values.end(), rng);
        feature_rows x;
        x.reserve(out.rows);
        for (std::size_t i = 0; i < out.rows; ++i) {
            raw_record r = test[i]->features;
            r[field] = values[i];  // missing stays missing (monostate)
            x.push_back(pipeline.transform(r));
        }
        auto m = score(d.task, fn, x, y_used, num_classes);
        if (!m) continue;
        const double shuffled = m->get(pm.name);
        const double drop =
            pm.higher_is_better ? out.evaluated - shuffled : shuffled - out.evaluated;
        out.fields.push_back({field, drop, shuffled});
    }
    // Largest drop first; a NaN drop (a metric undefined on this holdout,
    // such as ROC-AUC with one class) last, so the order stays well defined.
    std::stable_sort(out.fields.begin(), out.fields.end(),
                     [](const field_importance& a, const field_importance& b) {
                         if (std::isnan(a.drop)) return false;
                         return std::isnan(b.drop) || a.drop > b.drop;
                     });
    return out;
}

// The live version scored on the same raw holdout rows, through its own
// pipeline. Its classes may differ from the candidate's; probabilities are
// mapped by class name (a class it never knew gets none). Rows live cannot
// answer (a non-finite prediction) are left out and listed: the candidate is
// then compared with it on the others only, never skipped past.
struct live_score {
    metric_listing metrics;
    std::vector<std::size_t> rows;  // holdout rows scored, in order
    std::size_t failed = 0;
    std::size_t trained_on = 0;  // rows on live's own training side, left out
    // Rows of a class live never trained on, left out: it answers such a
    // class a probability of 0, which log loss clips to 1e-15 (34.5 a
    // row), so a few of them decided the gate over every other row.
    std::size_t unknown_class = 0;
    std::vector<std::string> unknown_classes;  // their names
    std::string first_failure;
};

// How live's holdout was chosen, for the log and errors.
std::string live_holdout_words(const live_reference& ref) {
    return ref.holdout_from ? "its holdout began at label time " + format_rfc3339(*ref.holdout_from)
                            : "its holdout share was " + fmt(ref.holdout.value_or(0));
}

result<live_score> score_live(task_kind task, const live_reference& ref,
                              const std::vector<const training_example*>& test,
                              const std::vector<double>& y,
                              const std::vector<std::string>& classes) {
    const model_artifact& live = *ref.artifact;
    if (live.task != task) return status(error_kind::failed_precondition, "live version has another task");
    if (is_classification(task)) {
        // Labels now encoded otherwise (true/false where live knew 0/1):
        // mapped by name, live would score as chance and any candidate beat it.
        bool shared = false;
        for (const auto& c : classes)
            shared = shared ||
                     std::find(live.classes.begin(), live.classes.end(), c) != live.classes.end();
        if (!shared) {
            return status(error_kind::failed_precondition,
                          "its classes (" + quoted_classes(live.classes) +
                              ") share none with the labels now (" + quoted_classes(classes) + ")");
        }
    }
    live_score out;
    std::vector<std::vector<double>> probs;
    std::vector<double> values, scored_y;
    for (std::size_t i = 0; i < test.size(); ++i) {
        if (is_classification(task)) {
            const std::string& cls = classes[static_cast<std::size_t>(y[i])];
            if (std::find(live.classes.begin(), live.classes.end(), cls) == live.classes.end()) {
                ++out.unknown_class;
                if (std::find(out.unknown_classes.begin(), out.unknown_classes.end(), cls) ==
                    out.unknown_classes.end())
                    out.unknown_classes.push_back(cls);
                continue;
            }
        }
        // Rows live trained on (another split, share or label stream than
        // the candidate's): scored on those, it would look better than it
        // is. Split by time, the entities its training read a label before
        // its cut for (labelled again since or not); by entity, those its
        // hash rule kept for training, but for one its training read no
        // label for, when its labels were read again.
        const bool read = !ref.labels_read || test[i]->live_label_time.has_value();
        if (ref.holdout_from
                ? test[i]->live_label_time && *test[i]->live_label_time < *ref.holdout_from
                : ref.holdout && read && !holdout_of(test[i]->entity, *ref.holdout)) {
            ++out.trained_on;
            continue;
        }
        auto p =
            predict_raw(live, test[i]->live_features ? *test[i]->live_features : test[i]->features);
        if (!p) {
            if (out.failed++ == 0) {
                out.first_failure = "entity " + test[i]->entity + ": " + p.error().message();
            }
            continue;
        }
        out.rows.push_back(i);
        scored_y.push_back(y[i]);
        if (!is_classification(task)) {
            values.push_back(p->value);
            continue;
        }
        std::vector<double> mapped(classes.size(), 0.0);
        for (std::size_t k = 0; k < live.classes.size() && k < p->probabilities.size(); ++k) {
            for (std::size_t c = 0; c < classes.size(); ++c) {
                if (classes[c] == live.classes[k]) mapped[c] = p->probabilities[k];
            }
        }
        probs.push_back(std::move(mapped));
    }
    // No row to score on but those on its training side (and any it cannot
    // answer): live is not measured, though it applies (the caller holds
    // the candidate back for a person).
    if (out.rows.empty() && out.trained_on + out.unknown_class > 0) return out;
    if (out.rows.empty()) {
        return status(error_kind::failed_precondition,
                      "it answers none of the holdout rows (" + out.first_failure + ")");
    }
    if (is_classification(task)) {
        auto m = evaluate_classification(scored_y, probs, classes.size());
        if (!m) return m.error();
        out.metrics = list_metrics(*m);
    } else {
        auto m = evaluate_regression(scored_y, values);
        if (!m) return m.error();
        out.metrics = list_metrics(*m);
    }
    return out;
}

// Fits the definition's calibration on out-of-fold scores of the training
// rows, and says in the log what it fitted and what to beware of.
result<calibrator> fit_calibration(calibration_method method, algorithm algo,
                                   const train_params& params, const feature_rows& x_train,
                                   const std::vector<double>& y_train, const train_control& control,
                                   const log_fn& log) {
    const auto started = steady::now();
    auto oof = out_of_fold_scores(algo, params, x_train, y_train, control);
    if (!oof) {
        if (oof.error().kind() == error_kind::conflict) return oof.error();
        return status(oof.error().kind(), oof.error().message(), "calibration");
    }
    std::vector<bool> positive(y_train.size());
    for (std::size_t i = 0; i < y_train.size(); ++i) positive[i] = y_train[i] == 1;
    // A forest's probability is a mean of leaves, not a sigmoid of a score
    // (ml/calibration.h).
    auto c = fit_calibrator(
        method, positive, *oof,
        algo == algorithm::forest ? sigmoid_input::probability : sigmoid_input::logit);
    if (!c)
        return status(error_kind::failed_precondition, "calibration: " + c.error().message(),
                      "calibration");
    const std::size_t rows = oof->size();
    const std::string fitted =
        c->method == calibration_method::sigmoid
            ? "p = 1 / (1 + exp(" + fmt(c->a) +
                  (c->input == sigmoid_input::logit ? " logit(s) + " : " s + ") + fmt(c->b) + "))"
            : std::to_string(c->xs.size()) + " points";
    log("info", std::string("calibration ") + calibration_method_name(c->method) + " fitted on " +
                    std::to_string(rows) + " out-of-fold training scores (3 folds) in " +
                    fmt(seconds_since(started)) + " s: " + fitted);
    // Isotonic steps follow the rows closely: on a few hundred they follow
    // their noise (scikit-learn's guide says the same).
    if (c->method == calibration_method::isotonic && rows < 1000) {
        log("warn", "isotonic calibration fitted on " + std::to_string(rows) +
                        " rows (fewer than 1000) may follow their noise; sigmoid suits so few "
                        "better");
    }
    // A decreasing map reverses the model's ranking: the out-of-fold scores
    // rank the rows the wrong way round (a model that learned nothing,
    // whose folds' shares differ).
    if (c->method == calibration_method::sigmoid && c->a > 0) {
        log("warn", "the sigmoid calibration decreases (a = " + fmt(c->a) +
                        " > 0): it reverses the model's ranking; the out-of-fold scores rank "
                        "the training rows the wrong way round, so the model may have learned "
                        "nothing that holds");
    }
    // Isotonic ends in steps of one class: it answers certainties.
    if (c->method == calibration_method::isotonic) {
        const std::string risk =
            "a certainty a later row may contradict (its log loss is then 34.5); sigmoid never "
            "answers 0 or 1";
        if (c->ys.back() >= 1) {
            const auto first_one = static_cast<std::size_t>(
                std::find(c->ys.begin(), c->ys.end(), c->ys.back()) - c->ys.begin());
            log("warn", "isotonic calibration answers exactly 1 for probabilities from " +
                            fmt(c->xs[first_one]) +
                            " up (its top step held positive training rows only): " + risk);
        }
        if (c->ys.front() <= 0) {
            const auto last_zero = static_cast<std::size_t>(
                std::find_if(c->ys.begin(), c->ys.end(), [](double y) { return y > 0; }) -
                c->ys.begin() - 1);
            log("warn", "isotonic calibration answers exactly 0 for probabilities up to " +
                            fmt(c->xs[last_zero]) +
                            " (its bottom step held negative training rows only): " + risk);
        }
    }
    return c;
}

// What calibration changed on holdout rows neither the model nor the map
// saw: both sides' scores, said in the log with what got worse.
calibration_report compare_calibration(const calibrator& fitted, std::size_t rows,
                                       const fitted_function& uncalibrated,
                                       const feature_rows& x_test,
                                       const std::vector<double>& y_test,
                                       const std::vector<bool>& positive,
                                       const std::vector<double>& score, const log_fn& log) {
    calibration_report rep;
    rep.fitted = fitted;
    rep.rows = rows;
    std::vector<double> before(x_test.size());
    std::vector<std::vector<double>> before_probabilities(x_test.size());
    std::vector<std::vector<double>> after_probabilities(x_test.size());
    for (std::size_t i = 0; i < x_test.size(); ++i) {
        before_probabilities[i] = uncalibrated.predict(x_test[i]).probabilities;
        before[i] = before_probabilities[i][1];
        after_probabilities[i] = {1 - score[i], score[i]};
    }
    const auto side = [&](const std::vector<double>& s,
                          const std::vector<std::vector<double>>& probabilities) {
        calibration_report::side out;
        out.bins = reliability(positive, s);
        out.brier = brier_score(positive, s);
        out.calibration_error = calibration_error(out.bins);
        out.log_loss = log_loss(y_test, probabilities);
        out.roc_auc = roc_auc(positive, s);
        return out;
    };
    rep.before = side(before, before_probabilities);
    rep.after = side(score, after_probabilities);
    log("info", "calibration on the holdout: Brier score " + fmt(rep.before.brier) + " before, " +
                    fmt(rep.after.brier) + " after; calibration error " +
                    fmt(rep.before.calibration_error) + " before, " +
                    fmt(rep.after.calibration_error) + " after; log loss " +
                    fmt(rep.before.log_loss) + " before, " + fmt(rep.after.log_loss) + " after");
    if (rep.after.calibration_error > rep.before.calibration_error) {
        log("warn",
            "calibration made the holdout's calibration error worse (" +
                fmt(rep.before.calibration_error) + " before, " + fmt(rep.after.calibration_error) +
                " after; a perfectly calibrated model's would be about " +
                fmt(calibration_error_by_chance(rep.after.bins)) + " by chance on these rows)");
    }
    if (rep.after.log_loss > rep.before.log_loss) {
        log("warn", "calibration made the holdout's log loss worse (" + fmt(rep.before.log_loss) +
                        " before, " + fmt(rep.after.log_loss) + " after)" +
                        (rep.fitted.method == calibration_method::isotonic
                             ? ": isotonic's certainties (0 or 1) cost the most where they are "
                               "wrong"
                             : ""));
    }
    if (rep.after.brier > rep.before.brier) {
        log("warn", "calibration made the holdout's Brier score worse (" + fmt(rep.before.brier) +
                        " before, " + fmt(rep.after.brier) +
                        " after): the model's own probabilities suit these rows better; the "
                        "out-of-fold scores, from models fitted on two thirds of the rows, may "
                        "not be like the final model's");
    }
    // Isotonic steps tie scores the model ranked apart.
    if (rep.after.roc_auc < rep.before.roc_auc) {
        log("info", "calibration's ties lowered the holdout roc_auc from " +
                        fmt(rep.before.roc_auc) + " to " + fmt(rep.after.roc_auc));
    }
    return rep;
}

}  // namespace

namespace {

std::string cautions_words(const std::vector<std::string>& cautions) {
    std::string s;
    for (const auto& c : cautions) s += "; caution: " + c;
    return s;
}

}  // namespace

std::string gate_decision::summary() const {
    if (passed) {
        return "passed: " + metric + " " + fmt(candidate) + " vs baseline " + fmt(baseline) +
               (live ? " and live " + fmt(*live) : "") +
               (candidate_on_live_rows
                    ? " (" + fmt(*candidate_on_live_rows) + " on the rows live is compared on)"
                    : "") +
               (decision_rule_change
                    ? "; " + *decision_rule_change + " (a new rule: matching live suffices)"
                    : "") +
               (calibration_change ? "; " + *calibration_change : "") + cautions_words(cautions);
    }
    std::string s = "rejected: ";
    for (std::size_t i = 0; i < reasons.size(); ++i) s += (i ? "; " : "") + reasons[i];
    return s + cautions_words(cautions);
}

// How close to the baseline's primary metric, relative to it, a candidate
// only ties it.
constexpr double baseline_tie = 1e-6;

gate_decision evaluate_gate(task_kind task, const promotion_policy& policy,
                            const metric_listing& candidate, const metric_listing& baseline,
                            const metric_listing* live,
                            const metric_listing* candidate_on_live_rows,
                            const operating_point* decision, const decision_policy* live_decision,
                            const calibration_shift* calibration) {
    gate_decision g;
    primary_metric_info pm = primary_metric(task);
    g.metric = pm.name;
    g.candidate = candidate.get(pm.name);
    g.baseline = baseline.get(pm.name);
    if (std::isnan(g.candidate)) {
        // "nan vs nan" told nobody why: for binary models, ROC-AUC needs
        // both classes among the holdout rows.
        g.reasons.push_back(g.metric + " is undefined on the holdout rows" +
                            (task == task_kind::binary ? " (they hold one class only)" : ""));
    } else if (!primary_better(task, g.candidate, g.baseline)) {
        g.reasons.push_back("does not beat the baseline on " + g.metric + " (" + fmt(g.candidate) +
                            " vs " + fmt(g.baseline) + ")");
    } else if (std::abs(g.candidate - g.baseline) <= baseline_tie * std::abs(g.baseline)) {
        // Relative alone: a floor on it (it was 1e-12 of the baseline's
        // magnitude) made any gain a tie for labels in units of 1e-19.
        // A constant that matches the baseline's up to rounding (ridge with
        // a huge lambda, a forest of one leaf) passed or failed by which way
        // the rounding fell. Both in full: at six digits they read the same.
        g.reasons.push_back("only ties the baseline on " + g.metric + " (" +
                            format_number(g.candidate) + " vs " + format_number(g.baseline) +
                            ": within a millionth of it)");
    }
    if (decision && !decision->met) {
        g.reasons.push_back("the decision rule " + describe(decision->policy) +
                            " is not met on the holdout: " + decision->unmet);
    }
    for (const auto& [name, bound] : policy.thresholds) {
        // Not judged where chance alone explains much of it (a caution
        // says so: see train_model).
        if (name == "calibration_error" &&
            !calibration_bound_judged(bound, candidate.get("calibration_error_by_chance")))
            continue;
        double v = candidate.get(name);
        bool higher = metric_higher_is_better(name);
        bool ok = std::isfinite(v) && (higher ? v >= bound : v <= bound);
        if (std::isnan(v)) {
            // "nan is below the minimum" said nothing of why.
            const auto rate = decision_rate_of(name);
            const std::string why = rate ? std::string(" (no row") +
                                               (*rate == decision_rate::precision ? " was" : "") +
                                               holdout_rows_words(*rate) + ")"
                                         : "";
            g.reasons.push_back(name + " is undefined on the holdout" + why +
                                ", so it cannot meet " +
                                (higher ? "the minimum " : "the maximum ") + plain_number(bound));
        } else if (!ok) {
            g.reasons.push_back(name + " " + short_number(v) +
                                (higher ? " is below the minimum " : " is above the maximum ") +
                                plain_number(bound));
        }
    }
    // What changed against live, in the words the gate's fields and
    // reasons share.
    const bool new_rule = decision && live_decision && !(decision->policy == *live_decision);
    const std::string rule_change = new_rule ? "live decides by " + describe(*live_decision) +
                                                   ", this version by " + describe(decision->policy)
                                             : "";
    const auto named = [](calibration_method m) {
        return m == calibration_method::none
                   ? std::string("not calibrated")
                   : std::string("calibrated by ") + calibration_method_name(m);
    };
    const std::string calibration_words = calibration ? "live is " + named(calibration->live) +
                                                            ", this version " +
                                                            named(calibration->candidate)
                                                      : "";
    const std::string on_live_rows =
        candidate_on_live_rows ? ", on the rows live is compared on" : "";
    const bool new_calibration =
        live && calibration && !calibration->ranking && calibration->live != calibration->candidate;
    if (new_calibration) {
        // Compared on the Brier score, on the rows live answered: a new
        // map's worth is in its probabilities, which the ranking (roc_auc)
        // does not see. A new rule in the same revision is said too (the
        // Brier score judges both: a threshold does not change it).
        g.live = live->get(pm.name);
        const metric_listing& mine = candidate_on_live_rows ? *candidate_on_live_rows : candidate;
        if (candidate_on_live_rows) g.candidate_on_live_rows = mine.get(pm.name);
        const double cb = mine.get("brier"), lb = live->get("brier");
        g.calibration_compared = gate_decision::brier_pair{cb, lb};
        if (new_rule) g.decision_rule_change = rule_change;
        if (std::isfinite(cb) && (!std::isfinite(lb) || cb <= lb)) {
            g.calibration_change = calibration_words +
                                   " (a new calibration: compared with live on the Brier score, " +
                                   fmt(cb) + " vs live " + fmt(lb) + on_live_rows + ")";
        } else {
            g.calibration_change = calibration_words;
            g.reasons.push_back("is worse than the live version on the Brier score (" + fmt(cb) +
                                " vs live " + fmt(lb) + on_live_rows + "); " + calibration_words +
                                ": a person may promote it");
        }
    } else if (live) {
        // Compared on the rows live answered; after a person put back a
        // version calibrated otherwise, by both sides' own rankings.
        const metric_listing* ranking = calibration ? calibration->ranking : nullptr;
        const double lv = ranking ? calibration->live_ranking->get(pm.name) : live->get(pm.name);
        const double cv = ranking                  ? ranking->get(pm.name)
                          : candidate_on_live_rows ? candidate_on_live_rows->get(pm.name)
                                                   : g.candidate;
        g.live = lv;
        if (ranking) {
            g.calibration_change = calibration_words +
                                   "; live was put back after the calibration changed: compared "
                                   "by " +
                                   pm.name + " before calibration, " + fmt(cv) + " vs live " +
                                   fmt(lv);
        }
        if (candidate_on_live_rows) g.candidate_on_live_rows = cv;
        // The candidate must improve on live by the margin, in the metric's
        // direction; with a new decision rule, match it.
        double margin = policy.min_improvement;
        if (new_rule) g.decision_rule_change = rule_change;
        bool ok = std::isfinite(cv) &&
                  (!std::isfinite(lv) ||
                   (new_rule ? (pm.higher_is_better ? cv >= lv : cv <= lv)
                             : (pm.higher_is_better ? cv > lv + margin : cv < lv - margin)));
        if (!ok && new_rule) {
            g.reasons.push_back("is worse than the live version on " + g.metric + " (" + fmt(cv) +
                                " vs live " + fmt(lv) + on_live_rows + "); " + rule_change +
                                ": a person may promote it to serve the new rule");
        } else if (!ok) {
            g.reasons.push_back("does not beat the live version on " + g.metric + " by " +
                                fmt(margin) + " (" + fmt(cv) + " vs live " + fmt(lv) +
                                on_live_rows + ")");
        }
    }
    g.passed = g.reasons.empty();
    return g;
}

result<training_outcome> train_model(const model_definition& d, const training_set& data,
                                     const live_reference* live, const training_hooks& hooks) {
    auto log = [&](const std::string& level, const std::string& msg) {
        if (hooks.log) hooks.log(level, msg);
    };
    auto progress = [&](double f, const std::string& msg) {
        if (hooks.control.progress) hooks.control.progress(f, msg);
    };
    auto cancelled = [&] { return hooks.control.cancelled && hooks.control.cancelled(); };

    training_outcome out;
    if (data.rows.empty()) {
        std::string why = data.labelled_entities == 0
                              ? "no labelled rows: no fact in stream \"" + d.label.stream +
                                    "\" has the label field \"" + d.label.field + "\""
                              : "no labelled rows with features: " +
                                    std::to_string(data.labelled_entities) +
                                    " labelled entities, none has a \"" + d.features_from +
                                    "\" fact at or before its label";
        return status(error_kind::failed_precondition, why, "label");
    }
    if (data.without_features > 0) {
        log("warn", std::to_string(data.without_features) +
                        " labelled entities have no feature fact at or before their label; skipped");
    }
    // 20: a handful of other facts between labels is no sign of a rename.
    if (data.facts_after_last_label >= 20) {
        log("warn", "label stream \"" + d.label.stream + "\": its " +
                        std::to_string(data.facts_after_last_label) + " newest facts (from fact " +
                        std::to_string(data.first_fact_after_last_label) + ") have no \"" +
                        d.label.field +
                        "\" and are not labels; if the app renamed the field, "
                        "change the definition's label");
    }
    for (const auto& [field, u] : data.unreadable) {
        log("warn", "field '" + field + "': " + std::to_string(u.rows) + " of " +
                        std::to_string(data.rows.size()) +
                        " rows hold a value Kennel cannot read (e.g. " + u.example +
                        ") and count as missing");
    }

    // Split by entity hash (an entity is on one side only, the same side
    // every run), or by time (the newest labels are the holdout).
    std::vector<const training_example*> train_rows, test_rows;
    if (d.holdout_by == split_by::time) {
        std::vector<std::int64_t> times;
        times.reserve(data.rows.size());
        for (const auto& ex : data.rows) times.push_back(ex.label_time);
        out.holdout_from =
            holdout_from_time(std::move(times), d.holdout, min_train_rows, min_test_rows);
        for (const auto& ex : data.rows) {
            (ex.label_time >= *out.holdout_from ? test_rows : train_rows).push_back(&ex);
        }
        out.split_rule =
            holdout_time_rule(*out.holdout_from, d.holdout, test_rows.size(), data.rows.size());
    } else {
        for (const auto& ex : data.rows) {
            (holdout_of(ex.entity, d.holdout) ? test_rows : train_rows).push_back(&ex);
        }
        out.split_rule = holdout_rule(d.holdout);
    }
    out.train_rows = train_rows.size();
    out.test_rows = test_rows.size();
    log("info", "split " + std::to_string(data.rows.size()) + " rows: " +
                    std::to_string(train_rows.size()) + " train, " + std::to_string(test_rows.size()) +
                    " holdout (" + out.split_rule + ")");
    // Labels sharing one time go to one side: many at the cut (a bulk
    // import stamped alike) make a holdout far larger than asked for.
    const double test_share =
        static_cast<double>(test_rows.size()) / static_cast<double>(data.rows.size());
    std::string by_time;  // what the time split came to, for the messages below
    if (out.holdout_from && train_rows.empty()) {
        by_time = "every label is at " + format_rfc3339(*out.holdout_from) +
                  ", so none is older to train on";
    } else if (out.holdout_from) {
        by_time = std::to_string(test_rows.size()) + " of the " + std::to_string(data.rows.size()) +
                  " labelled rows " + (test_rows.size() == 1 ? "is" : "are") + " at or after " +
                  format_rfc3339(*out.holdout_from) + ", the cut nearest the newest " +
                  format_number(d.holdout) + " with rows of one time on one side";
    }
    if (train_rows.size() < min_train_rows || test_rows.size() < min_test_rows) {
        return status(error_kind::failed_precondition,
                      "too few labelled rows: " + std::to_string(train_rows.size()) +
                          " train and " + std::to_string(test_rows.size()) +
                          " holdout; need at least " + std::to_string(min_train_rows) + " and " +
                          std::to_string(min_test_rows) +
                          (by_time.empty() ? "" : " (holdout by time: " + by_time + ")"));
    }
    if (!by_time.empty() && (test_share > 1.5 * d.holdout || test_share < d.holdout / 1.5)) {
        log("warn", "holdout by time: " + by_time + "; the holdout is " +
                        format_number(std::round(test_share * 1000) / 1000) + " of the rows");
    }

    // Labels: classes come from every row so both sides agree on indices.
    std::vector<raw_value> all_labels;
    for (const auto* ex : train_rows) all_labels.push_back(ex->label);
    for (const auto* ex : test_rows) all_labels.push_back(ex->label);
    // An error names the fact to correct, not a row number.
    auto name_row = [&](std::size_t i) {
        const training_example* ex =
            i < train_rows.size() ? train_rows[i] : test_rows[i - train_rows.size()];
        return "entity \"" + ex->entity + "\" (label fact " + std::to_string(ex->label_fact_id) +
               ")";
    };
    auto enc = encode_labels(d.task, all_labels, d.max_classes, name_row, false, d.label.positive);
    if (!enc) return enc.error();
    out.classes = enc->classes;
    // The definition's constant answers when no version can: a class no
    // version knows would be an answer the app cannot take.
    if (d.fallback_label && std::find(enc->classes.begin(), enc->classes.end(),
                                      *d.fallback_label) == enc->classes.end()) {
        return status(error_kind::failed_precondition,
                      "serving.fallback \"" + *d.fallback_label +
                          "\" is not one of the label's classes (" + quoted_classes(enc->classes) +
                          "); name one of them in the definition",
                      "serving.fallback");
    }
    std::vector<double> y_train(enc->y.begin(), enc->y.begin() + static_cast<std::ptrdiff_t>(train_rows.size()));
    std::vector<double> y_test(enc->y.begin() + static_cast<std::ptrdiff_t>(train_rows.size()), enc->y.end());
    std::size_t num_classes = std::max<std::size_t>(2, enc->classes.size());
    std::vector<bool> seen(num_classes, false);  // classes the training rows hold
    if (is_classification(d.task)) {
        std::size_t distinct = 0;
        for (double v : y_train) {
            auto k = static_cast<std::size_t>(v);
            if (!seen[k]) ++distinct;
            seen[k] = true;
        }
        if (distinct < 2) {
            return status(error_kind::failed_precondition,
                          "the training rows hold one class only (\"" +
                              enc->classes[static_cast<std::size_t>(y_train[0])] + "\")",
                          "label");
        }
        // A class only among the holdout rows is one the model never saw: it
        // is scored on it all the same (as live would meet it), and the log
        // says so, for a holdout otherwise judged without a word.
        std::vector<std::string> unseen;
        std::size_t unseen_rows = 0;
        for (double v : y_test) {
            const auto k = static_cast<std::size_t>(v);
            if (seen[k]) continue;
            ++unseen_rows;
            if (std::find(unseen.begin(), unseen.end(), enc->classes[k]) == unseen.end())
                unseen.push_back(enc->classes[k]);
        }
        if (!unseen.empty()) {
            log("warn", std::to_string(unseen_rows) + " of " + std::to_string(y_test.size()) +
                            " holdout rows are of " + (unseen.size() == 1 ? "a class" : "classes") +
                            " no training row holds (" + quoted_classes(unseen) +
                            "): the model never saw " + (unseen.size() == 1 ? "it" : "them") +
                            ", and is scored on " + (unseen.size() == 1 ? "it" : "them"));
        }
        // A class the holdout holds only a few rows of: the metrics (AUC,
        // recall, F1) rest on those alone. With 10 positives in 100,000 rows
        // a version was published on an AUC from one positive, without a word.
        std::vector<std::size_t> holdout_count(enc->classes.size(), 0);
        for (double v : y_test) ++holdout_count[static_cast<std::size_t>(v)];
        for (std::size_t k = 0; k < holdout_count.size(); ++k) {
            if (!seen[k] || holdout_count[k] >= 10) continue;
            if (holdout_count[k] == 0) {
                log("warn", "the holdout holds no row of class " +
                                quoted_classes({enc->classes[k]}) + " (of " +
                                std::to_string(y_test.size()) +
                                "): the holdout metrics say nothing of it; more labels of it, "
                                "or a larger holdout, would let them judge it");
                continue;
            }
            log("warn", "the holdout holds " + std::to_string(holdout_count[k]) + " row" +
                            (holdout_count[k] == 1 ? "" : "s") + " of class " +
                            quoted_classes({enc->classes[k]}) + " (of " +
                            std::to_string(y_test.size()) +
                            "): the holdout metrics rest on so few; more labels of it, or a "
                            "larger holdout, make them trustworthy");
        }
    }
    progress(0.1, "labels encoded");

    auto started = steady::now();
    std::vector<raw_record> train_raw;
    train_raw.reserve(train_rows.size());
    for (const auto* ex : train_rows) train_raw.push_back(ex->features);
    std::vector<std::string> warnings;
    auto pipeline = feature_pipeline::fit(d.features, train_raw, &warnings);
    for (const auto& w : warnings) log("warn", w);
    out.warnings = warnings;
    if (!pipeline) return pipeline.error();
    out.feature_names = pipeline->names();
    // The fields the model reads: one whose columns were all dropped is
    // ignored when served, and its drift (a constant in training, say) would
    // be reported and retrained on though no answer depends on it.
    out.profile = profile_rows(pipeline->used_specs(), train_raw);
    // What an answer's explanation compares it with (ml/explain.h).
    out.background = sample_background(pipeline->used_specs(), train_raw);
    for (const auto& a : d.aggregates) {
        for (const auto& spec : pipeline->used_specs()) {
            if (spec.field != a.field) continue;
            out.aggregates.push_back(a);
            break;
        }
    }
    feature_rows x_train = pipeline->transform_all(train_raw);
    // Named here, where the columns and entities are known: the trainer
    // could only say "row 1 is not finite".
    for (std::size_t i = 0; i < x_train.size(); ++i) {
        for (std::size_t j = 0; j < x_train[i].size(); ++j) {
            if (std::isfinite(x_train[i][j])) continue;
            return status(error_kind::failed_precondition,
                          "feature column \"" + out.feature_names[j] + "\" of entity \"" +
                              train_rows[i]->entity +
                              "\" is not a finite number once scaled: its value is beyond what "
                              "the column can hold beside the others");
        }
    }
    feature_rows x_test;
    x_test.reserve(test_rows.size());
    for (const auto* ex : test_rows) x_test.push_back(pipeline->transform(ex->features));
    log("info", "feature pipeline: " + std::to_string(pipeline->size()) + " columns");
    progress(0.2, "features ready");
    if (cancelled()) return status(error_kind::conflict, "cancelled");

    auto baseline = train(d.task, algorithm::baseline, d.params, x_train, y_train, num_classes);
    if (!baseline) return baseline.error();
    out.baseline_answer = (*baseline)->predict(x_train.front());

    algorithm algo;
    train_params params = d.params;
    if (d.algorithm == "auto") {
        train_control search_control = hooks.control;
        search_control.progress = [&](double f, const std::string& msg) {
            progress(0.2 + 0.5 * f, msg);
            log("info", "search: " + msg);
        };
        // A holdout by time asks how the model does on newer data; so do the folds.
        std::vector<std::int64_t> times;
        if (d.holdout_by == split_by::time) {
            times.reserve(train_rows.size());
            for (const auto* ex : train_rows) times.push_back(ex->label_time);
        }
        auto found = auto_search(d.task, x_train, y_train, num_classes, d.search_budget_seconds,
                                 search_control, d.params, times);
        if (!found) return found.error();
        algo = found->algo;
        params = found->params;
        out.search = *found;
        log("info", std::string("auto chose ") + algorithm_name(algo) + " (cv " +
                        found->score_name + " " + fmt(found->cv_score) + ")");
    } else {
        algo = *parse_algorithm(d.algorithm);
    }
    train_control fit_control = hooks.control;
    // With calibration, its three fits on two thirds of the rows take about
    // twice the fit's time: their share of the progress is that.
    const bool calibrating = d.calibration != calibration_method::none &&
                             d.task == task_kind::binary && num_classes == 2;
    // A fixed algorithm's fit starts where a search would have: the bar sat
    // at 0.1 and jumped to 0.7.
    const double fit_from = d.algorithm == "auto" ? 0.7 : 0.2;
    const double calibrate_from = calibrating ? fit_from + (0.9 - fit_from) / 3 : 0.85;
    fit_control.progress = [&](double f, const std::string& msg) {
        progress(fit_from + (calibrate_from - fit_from) * f, msg);
    };
    auto fn = train(d.task, algo, params, x_train, y_train, num_classes, fit_control);
    if (!fn) return fn.error();
    out.algo = algo;
    out.params = params;
    out.fit_seconds = seconds_since(started);
    log("info", std::string("fitted ") + algorithm_name(algo) + " in " + fmt(out.fit_seconds) + " s");

    // Calibration: a map from the model's probability to one that matches
    // the rates seen, fitted on scores of training rows by models that did
    // not train on them (its own scores on them are surer than on new rows).
    function_ptr uncalibrated;
    std::size_t calibration_rows = 0;
    if (calibrating) {
        if (algo == algorithm::baseline) {
            log("warn", std::string("calibration ") + calibration_method_name(d.calibration) +
                            " not fitted: auto chose the baseline, which answers the label's "
                            "prior for every row");
        } else {
            progress(calibrate_from, "calibrating");
            train_control cal_control = hooks.control;
            cal_control.progress = [&](double f, const std::string& msg) {
                progress(calibrate_from + (0.9 - calibrate_from) * f, msg);
            };
            const auto cal_started = steady::now();
            auto c =
                fit_calibration(d.calibration, algo, params, x_train, y_train, cal_control, log);
            if (!c) return c.error();
            out.calibration_seconds = seconds_since(cal_started);
            calibration_rows = x_train.size();
            uncalibrated = *fn;
            fn = calibrate(*fn, std::move(*c));
        }
    }
    progress(0.9, "evaluating on the holdout");

    // Holdout rows the fitted model overflows on (inputs far outside the
    // training data, 1e308 where it saw tens) are answered by the fallback
    // when served; evaluated, one such fact failed every job of the model
    // until someone corrected it. Left out and said, as for live.
    {
        std::size_t kept = 0, dropped = 0;
        std::string first;
        for (std::size_t i = 0; i < x_test.size(); ++i) {
            // Serving's rule for an input the model overflows on.
            if (not_finite((*fn)->predict(x_test[i])) && out_of_range_input(x_test[i])) {
                if (dropped++ == 0) first = test_rows[i]->entity;
                continue;
            }
            if (kept != i) {  // (a vector moved onto itself is left empty)
                x_test[kept] = std::move(x_test[i]);
                y_test[kept] = y_test[i];
                test_rows[kept] = test_rows[i];
            }
            ++kept;
        }
        if (dropped > 0) {
            x_test.resize(kept);
            y_test.resize(kept);
            test_rows.resize(kept);
            const std::string what = std::to_string(dropped) + " of " +
                                     std::to_string(kept + dropped) +
                                     " holdout rows have inputs far outside the training data that "
                                     "the model cannot answer (first: entity \"" +
                                     first + "\")";
            if (kept < min_test_rows) {
                return status(error_kind::failed_precondition,
                              what + "; too few holdout rows remain to evaluate");
            }
            log("warn", what + "; evaluated on the other " + std::to_string(kept));
        }
    }

    auto eval_started = steady::now();
    auto m = score(d.task, **fn, x_test, y_test, num_classes);
    if (!m) return m.error();
    auto bm = score(d.task, **baseline, x_test, y_test, num_classes);
    if (!bm) return bm.error();
    out.metrics = *m;
    out.baseline_metrics = *bm;
    if (d.task == task_kind::binary && num_classes == 2) {
        // The threshold of the answers' decision, by the definition's rule,
        // on the rows the metrics were measured on.
        std::vector<bool> positive(x_test.size());
        std::vector<double> score(x_test.size());
        for (std::size_t i = 0; i < x_test.size(); ++i) {
            positive[i] = y_test[i] == 1;
            score[i] = (*fn)->predict(x_test[i]).probabilities[1];
        }
        out.reliability = reliability(positive, score);
        out.metrics.values.emplace_back("calibration_error_by_chance",
                                        calibration_error_by_chance(out.reliability));
        if (uncalibrated) {
            out.calibration =
                compare_calibration(*(*fn)->calibration(), calibration_rows, *uncalibrated, x_test,
                                    y_test, positive, score, log);
        }
        out.decision = choose_operating_point(d.decision, positive, score);
        add_decision_metrics(out.metrics, *out.decision);
        log(out.decision->met ? "info" : "warn", decision_words(*out.decision));
        for (const std::string& few : decision_rests_on_few(*out.decision)) log("warn", few);
        // A bound of the promotion policy on the decision's rates is judged
        // on the rows they count: on a handful, or when the rate's interval
        // holds the bound, the holdout cannot tell whether it is met.
        for (const auto& [name, bound] : d.promotion.thresholds) {
            const auto rate = decision_rate_of(name);
            if (!rate) continue;
            const rate_measure rm = measure(*out.decision, *rate);
            // At the rate's end (a bound of 0 or 1) too: met on the holdout,
            // it cannot be shown to hold beyond it.
            const bool holds = rm.lower <= bound && bound <= rm.upper && rm.lower < rm.upper;
            if (rm.rows >= 10 && !holds) continue;
            const std::string basis =
                std::to_string(rm.rows) + (rm.rows == 1 ? " holdout row" : " holdout rows") +
                holdout_rows_words(*rate) + ", 95% interval " + interval_words(rm.lower, rm.upper);
            log("warn", "promotion.thresholds." + name + " (" + plain_number(bound) +
                            ") is judged on " + basis +
                            ": the holdout cannot tell whether it is met; more labels, or a "
                            "larger holdout, make it surer");
            out.gate_cautions.push_back("the holdout cannot tell whether " + name +
                                        (metric_higher_is_better(name) ? " >= " : " <= ") +
                                        plain_number(bound) + " holds (" + basis + ")");
        }
        // A bound on the calibration error less than three times what a
        // perfectly calibrated model shows by chance on these rows: the
        // holdout cannot tell a calibrated model from one that is not.
        if (auto b = d.promotion.thresholds.find("calibration_error");
            b != d.promotion.thresholds.end()) {
            const double chance = calibration_error_by_chance(out.reliability);
            if (!calibration_bound_judged(b->second, chance)) {
                const std::string basis = "a perfectly calibrated model's would be about " +
                                          short_number(chance) + " by chance on these " +
                                          std::to_string(x_test.size()) + " holdout rows";
                log("warn", "promotion.thresholds.calibration_error (" + plain_number(b->second) +
                                ") is not judged: " + basis +
                                ", more than a third of the bound; more labels, or a larger "
                                "holdout, make it judged");
                out.gate_cautions.push_back("calibration_error <= " + plain_number(b->second) +
                                            " was not judged: the holdout cannot tell (" + basis +
                                            ")");
            }
        }
    }
    {
        // What the model answers on the holdout: drift's reference for its outputs.
        std::vector<raw_value> outputs;
        outputs.reserve(x_test.size());
        for (const auto& x : x_test) {
            prediction p = (*fn)->predict(x);
            std::string label;
            if (is_classification(d.task) && p.value >= 0 &&
                static_cast<std::size_t>(p.value) < out.classes.size()) {
                label = out.classes[static_cast<std::size_t>(p.value)];
            }
            outputs.push_back(prediction_output(d.task, p.value, p.probabilities, label));
        }
        out.profile.prediction = profile_predictions(d.task, outputs);
    }
    // The candidate's metrics on the rows live answered, when it missed some.
    std::optional<metric_listing> on_live_rows;
    // The holdout rows live is compared on, when not all of them; a
    // function's metrics on those rows.
    std::vector<std::size_t> live_rows_compared;
    const auto score_compared = [&](const fitted_function& f) {
        if (live_rows_compared.empty()) return score(d.task, f, x_test, y_test, num_classes);
        feature_rows x_sub;
        std::vector<double> y_sub;
        for (std::size_t r : live_rows_compared) {
            x_sub.push_back(x_test[r]);
            y_sub.push_back(y_test[r]);
        }
        return score(d.task, f, x_sub, y_sub, num_classes);
    };
    if (live && live->artifact) {
        auto lm = score_live(d.task, *live, test_rows, y_test, out.classes);
        if (!lm) {
            log("warn", "could not score live version " + std::to_string(live->version) + ": " +
                            lm.error().message());
        } else {
            out.live_version = live->version;
            out.live_unknown_classes = lm->unknown_classes;
            out.live_unknown_rows = lm->unknown_class;
            const std::string left_out =
                std::to_string(lm->trained_on) + " on its own training side (" +
                live_holdout_words(*live) + ")" +
                (lm->unknown_class > 0
                     ? ", " + std::to_string(lm->unknown_class) + " of a class it never trained on"
                     : "") +
                (lm->failed > 0 ? ", " + std::to_string(lm->failed) + " it cannot answer (" +
                                      lm->first_failure + ")"
                                : "");
            // Live applies but cannot be measured on these rows: the gate
            // cannot tell whether the candidate beats it.
            std::string unmeasured;
            const std::string primary = primary_metric(d.task).name;
            if (lm->rows.empty()) {
                unmeasured = lm->failed + lm->unknown_class == 0
                                 ? "every holdout row is on its own training side (" +
                                       live_holdout_words(*live) + ")"
                                 : "no holdout row to compare on: " + left_out;
            } else if (lm->rows.size() < min_live_rows && lm->rows.size() < test_rows.size()) {
                unmeasured = "only " + std::to_string(lm->rows.size()) + " of the " +
                             std::to_string(test_rows.size()) +
                             " holdout rows to compare on, fewer than " +
                             std::to_string(min_live_rows) + ": " + left_out;
            } else if (std::isnan(lm->metrics.get(primary))) {
                unmeasured = primary + " is undefined on the " + std::to_string(lm->rows.size()) +
                             " holdout rows to compare on (they hold one class only)";
            }
            if (!unmeasured.empty()) {
                out.live_not_compared = unmeasured;
                log("warn", "could not score live version " + std::to_string(live->version) + ": " +
                                unmeasured +
                                "; the gate cannot tell whether the candidate beats it");
            } else {
                out.live_metrics = lm->metrics;
                if (lm->trained_on > 0) {
                    log("info", "live version " + std::to_string(live->version) + " trained on " +
                                    std::to_string(lm->trained_on) + " of " +
                                    std::to_string(test_rows.size()) + " holdout rows (" +
                                    live_holdout_words(*live) +
                                    "); compared with it on the others only");
                }
                if (lm->unknown_class > 0) {
                    log("info", std::to_string(lm->unknown_class) + " of " +
                                    std::to_string(test_rows.size()) +
                                    " holdout rows are of a class live version " +
                                    std::to_string(live->version) + " never trained on (" +
                                    quoted_classes(lm->unknown_classes) +
                                    "): it cannot answer them; compared with it on the others "
                                    "only");
                }
                if (lm->failed > 0) {
                    log("warn", "live version " + std::to_string(live->version) +
                                    " cannot answer " + std::to_string(lm->failed) + " of " +
                                    std::to_string(test_rows.size()) + " holdout rows (" +
                                    lm->first_failure + "); compared with it on the other " +
                                    std::to_string(lm->rows.size()));
                }
                if (lm->rows.size() < test_rows.size()) {
                    live_rows_compared.assign(lm->rows.begin(), lm->rows.end());
                    auto cm = score_compared(**fn);
                    if (!cm) return cm.error();
                    on_live_rows = *cm;
                    out.live_rows = lm->rows.size();
                }
            }
        }
    }
    out.importance =
        importance_by_permutation(d, *pipeline, **fn, test_rows, y_test, num_classes, out.metrics);
    log("info", "permutation importance on " + std::to_string(out.importance.rows) +
                    " holdout rows" + (out.importance.complete ? "" : " (time budget reached)"));
    const operating_point* decision = out.decision ? &*out.decision : nullptr;
    std::optional<calibration_shift> shift;
    // Both sides' own rankings, before calibration, on the rows compared:
    // what the candidate is judged by when live, calibrated otherwise, was
    // put back by a person after the calibration changed. Isotonic's ties
    // move roc_auc, on either side: a rollback to an isotonic version was
    // undone by the same model without them.
    std::optional<metric_listing> ranking, live_ranking;
    const calibration_method candidate_cal =
        out.calibration ? out.calibration->fitted.method : calibration_method::none;
    if (live && live->calibration) {
        shift = calibration_shift{*live->calibration, candidate_cal};
    } else if (live && out.live_metrics && live->artifact) {
        const calibrator* lc = live->artifact->function->calibration();
        const calibration_method live_cal = lc ? lc->method : calibration_method::none;
        if (live_cal != candidate_cal) {
            if (uncalibrated) {
                auto rm = score_compared(*uncalibrated);
                if (!rm) return rm.error();
                ranking = *rm;
            } else {
                ranking = on_live_rows ? *on_live_rows : out.metrics;
            }
            if (lc) {
                // Live's function without its map (aliasing: it lives as
                // long as live's artifact), on the same rows.
                live_reference raw = *live;
                model_artifact bare = *live->artifact;
                bare.function = function_ptr(live->artifact->function,
                                             live->artifact->function->uncalibrated());
                raw.artifact = std::make_shared<const model_artifact>(std::move(bare));
                auto lm = score_live(d.task, raw, test_rows, y_test, out.classes);
                if (!lm) return lm.error();
                live_ranking = lm->metrics;
            } else {
                live_ranking = *out.live_metrics;
            }
            shift = calibration_shift{live_cal, candidate_cal, &*ranking, &*live_ranking};
        }
    }
    out.gate = evaluate_gate(
        d.task, d.promotion, out.metrics, out.baseline_metrics,
        out.live_metrics ? &*out.live_metrics : nullptr, on_live_rows ? &*on_live_rows : nullptr,
        decision, live && live->decision ? &*live->decision : nullptr, shift ? &*shift : nullptr);
    // Classes the candidate learned and live never did had their rows left
    // out of the comparison, so it is not credited for them: a candidate
    // that fails only against live there (a new class growing) is said to
    // be one a person may want (it stays rejected: "passed" means passed).
    for (const auto& cls : out.live_unknown_classes) {
        const auto k = static_cast<std::size_t>(
            std::find(out.classes.begin(), out.classes.end(), cls) - out.classes.begin());
        if (k < seen.size() && seen[k]) out.live_unknown_learned.push_back(cls);
    }
    // Rejected on the Brier score alone, after a change of calibration, it
    // is one a person may promote too.
    if (!out.gate.passed && out.live_metrics &&
        (!out.live_unknown_learned.empty() || out.gate.calibration_compared)) {
        out.fails_only_against_live =
            evaluate_gate(d.task, d.promotion, out.metrics, out.baseline_metrics, nullptr, nullptr,
                          decision)
                .passed;
    }
    out.gate.cautions = out.gate_cautions;
    log(out.gate.passed ? "info" : "warn", "gate " + out.gate.summary());

    // The artifact, then proof that it predicts exactly what was evaluated.
    model_artifact art;
    art.task = d.task;
    art.pipeline = std::move(*pipeline);
    art.classes = out.classes;
    art.algo = algo;
    art.params = params;
    art.function = *fn;
    out.artifact = serialize_artifact(art);
    auto loaded = load_artifact(out.artifact);
    if (!loaded) {
        return status(error_kind::internal, "the artifact does not load back: " + loaded.error().message());
    }
    std::size_t probes = std::min<std::size_t>(test_rows.size(), 200);
    for (std::size_t i = 0; i < probes; ++i) {
        auto a = predict_raw(art, test_rows[i]->features);
        if (!a) {
            // The model itself cannot answer (a non-finite answer, e.g. from
            // labels near the double range): not the artifact's fault, which
            // is what the check below would have said.
            return status(error_kind::failed_precondition,
                          "the fitted model cannot answer holdout row " + std::to_string(i) +
                              " (entity " + test_rows[i]->entity + "): " + a.error().message());
        }
        auto b = predict_raw(*loaded, test_rows[i]->features);
        if (!b) {
            return status(error_kind::internal,
                          "the stored artifact cannot answer probe row " + std::to_string(i) +
                              " (entity " + test_rows[i]->entity + "): " + b.error().message());
        }
        if (a->value != b->value || a->probabilities != b->probabilities) {
            return status(error_kind::internal,
                          "the stored artifact predicts differently from the evaluated model on "
                          "probe row " + std::to_string(i) + " (entity " + test_rows[i]->entity + ")");
        }
    }
    out.probe_rows = probes;
    out.evaluate_seconds = seconds_since(eval_started);
    progress(0.95, "artifact verified");
    return out;
}

}  // namespace kennel::ml

#include "ml/live_metrics.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "ml/bootstrap.h"
#include "ml/decision.h"
#include "ml/numeric.h"
#include "ml/prediction_history.h"
#include "ml/raw_json.h"
#include "store/registry.h"

namespace kennel::ml {
namespace {

using json = nlohmann::json;

struct row {
    std::optional<std::int64_t> version;
    std::string arm;
    bool shadow = false;
    std::optional<double> value;  // none when nothing answered
    std::string label;
    std::vector<double> probabilities;
    bool fallback = false;
    double latency_ms = 0;
    raw_value truth;
    std::uint32_t cluster = 0;  // the entity's (a request without one is its own)
    std::string prediction_id;
    const version_scoring* scoring = nullptr;  // the answering version's task, label, classes
    // The probabilities' classes: those the entry names (an answer no
    // version gave: a baseline's, the prior's), else its version's.
    const std::vector<std::string>* classes = nullptr;
    std::optional<bool> decision;  // binary, as served (entries from before rules: none)
};

std::string label_name(const raw_value& v) {
    if (const auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
    if (const auto* s = std::get_if<std::string>(&v)) return *s;
    if (const auto* d = std::get_if<double>(&v)) {
        json j = *d;
        if (*d == static_cast<double>(static_cast<long long>(*d))) j = static_cast<long long>(*d);
        return j.dump();
    }
    return {};
}

// One scored row's part in its group's primary metric.
struct datum {
    std::uint32_t cluster = 0;
    double a = 0;  // binary: the positive class's probability; multiclass: the
                   // true class's; regression: the prediction
    double b = 0;  // regression: the truth
    bool positive = false;
};

void add_datum(metric_rows& m, const datum& x) {
    switch (m.form()) {
        case primary_form::roc_auc:
            m.add_score(x.cluster, x.a, x.positive);
            break;
        case primary_form::log_loss:
            m.add_probability(x.cluster, x.a);
            break;
        case primary_form::rmse:
            m.add_regression(x.cluster, x.a, x.b);
            break;
    }
}

// Fixed: the same rows give the same interval on every call.
constexpr std::uint64_t bootstrap_seed = 0x6b656e6e656cULL;

// A decision's rates with each entity counted once, as on the holdout,
// whose rows are one per entity: each answer weighs 1 / the entity's
// answers, so an entity's answers count as its share (300 answers to one
// entity weigh as one), and the three rates come from one weighted
// confusion matrix. Counted by answers, one entity asked about 300 times
// hid 30 others answered wrongly, or outweighed 30 answered rightly.
// Each rate's interval is over the entity weight it counts. Returns the
// distinct entities each rate counts over.
live_group::entity_counts weigh_by_entity(operating_point& p, const std::vector<bool>& positive,
                                          const std::vector<bool>& decided,
                                          const std::vector<std::uint32_t>& cluster) {
    std::map<std::uint32_t, std::size_t> answers;
    for (std::uint32_t c : cluster) ++answers[c];
    double tp = 0, fp = 0, fn = 0, tn = 0;
    std::set<std::uint32_t> yes, pos, neg;
    for (std::size_t i = 0; i < decided.size(); ++i) {
        const double w = 1.0 / static_cast<double>(answers[cluster[i]]);
        if (decided[i]) yes.insert(cluster[i]);
        (positive[i] ? pos : neg).insert(cluster[i]);
        (positive[i] ? (decided[i] ? tp : fn) : (decided[i] ? fp : tn)) += w;
    }
    constexpr double undefined = std::numeric_limits<double>::quiet_NaN();
    const auto rate = [&](double k, double n) { return n > 0 ? k / n : undefined; };
    p.precision = rate(tp, tp + fp);
    p.recall = rate(tp, tp + fn);
    p.false_positive_rate = rate(fp, fp + tn);
    std::tie(p.precision_lower, p.precision_upper) = wilson_interval_of_rate(p.precision, tp + fp);
    std::tie(p.recall_lower, p.recall_upper) = wilson_interval_of_rate(p.recall, tp + fn);
    std::tie(p.false_positive_rate_lower, p.false_positive_rate_upper) =
        wilson_interval_of_rate(p.false_positive_rate, fp + tn);
    return {static_cast<std::int64_t>(yes.size()), static_cast<std::int64_t>(pos.size()),
            static_cast<std::int64_t>(neg.size())};
}

// One group's rows as they are gathered.
struct group_acc {
    live_group g;
    double latency_sum = 0;
    std::vector<double> truth, predicted;
    std::vector<std::vector<double>> probs;
    std::vector<std::uint32_t> clusters;  // each scored row's entity (classification)
    std::unordered_set<std::uint32_t> outcome_clusters;  // the entities of all scored rows
    // Binary: the decisions as served of the scored rows whose decision is
    // known, and whether each row was of the positive class.
    std::vector<bool> decided, decided_positive;
    std::vector<std::uint32_t> decided_cluster;  // their entities (clusters)
    const version_scoring* scoring = nullptr;  // one version per group: one scoring
    // The classes scored rows share; a fallback group's rows may come
    // from versions of other classes, which cannot be scored together.
    const std::vector<std::string>* classes = nullptr;
    std::vector<datum> data;                 // with uncertainty: per scored row
    std::vector<std::string_view> data_ids;  // their prediction ids
};

// A group's primary metric over its scored rows. A multiclass group whose
// rows hold two classes only is still scored by log loss, as the gate
// scores its task.
struct group_metric {
    group_acc* a;
    metric_rows rows;
    std::int64_t entities = 0;
};

// A group of fallback answers only: another version answered an arm's
// requests for it (its own out of service). Neither a reference nor an
// arm to compare: "B v1 against A v1" read as an A/A test nobody ran.
bool fallbacks_only(const live_group& g) {
    return g.predictions > 0 && g.fallbacks >= g.predictions;
}

void compare_groups(const live_uncertainty_options& u, const std::vector<group_acc*>& kept,
                    std::uint32_t clusters, live_report& report) {
    std::vector<group_metric> metrics;
    metrics.reserve(kept.size());
    for (group_acc* a : kept) {
        group_metric& m =
            metrics.emplace_back(group_metric{a, metric_rows(primary_form_of(a->scoring->task))});
        for (const datum& x : a->data) add_datum(m.rows, x);
        m.rows.prepare();
        m.entities = static_cast<std::int64_t>(m.rows.distinct_clusters());
    }
    std::vector<bootstrap_statistic> statistics;
    // What each statistic fills in once the bootstrap has run.
    std::vector<std::function<void(const bootstrap_interval&)>> fill;
    for (group_metric& m : metrics) {
        live_group& g = m.a->g;
        if (!m.rows.size()) continue;  // no outcome: no metric (groups are still compared)
        g.primary = live_group::primary_estimate{primary_metric(m.a->scoring->task).name,
                                                 m.rows.evaluate(nullptr), nan, nan, m.entities};
        // Entities, not predictions: they are what is resampled, and 30
        // predictions of 3 entities gave intervals that covered 65 in 100.
        if (m.entities < u.min_entities) continue;
        statistics.push_back(
            [rows = &m.rows](const std::vector<std::uint8_t>& w) { return rows->evaluate(&w); });
        fill.push_back([group = &g](const bootstrap_interval& i) {
            group->primary->lower = i.lower;
            group->primary->upper = i.upper;
        });
    }
    // The reference: a group answering with the reference version as
    // itself (not an arm taken out of service, whose requests live answers
    // for it as fallbacks: its first request made it the reference, with no
    // outcome, and every comparison "too few entities"), the experiment's
    // first listed arm of it, an experiment arm before the "live" arm
    // (requests outside the experiment, such as those before it), then the
    // one with the most outcomes.
    group_metric* reference = nullptr;
    auto rank = [&u](const group_metric& m) {
        const live_group& g = m.a->g;
        const auto listed = std::find(u.arm_order.begin(), u.arm_order.end(), g.arm);
        return std::make_tuple(-(listed - u.arm_order.begin()), g.arm != "live", g.outcomes);
    };
    for (group_metric& m : metrics) {
        const live_group& g = m.a->g;
        if (g.shadow || !g.version || g.version != u.reference_version || g.arm == "fallback" ||
            fallbacks_only(g))
            continue;
        if (!reference || rank(m) > rank(*reference)) reference = &m;
    }
    // Both outlive the bootstrap that reads them (a deque keeps addresses).
    std::deque<live_comparison> made;
    std::deque<std::pair<metric_rows, metric_rows>> paired_rows;
    // A comparison's interval, filled in once the bootstrap has run.
    auto measure = [&](live_comparison& cmp, bootstrap_statistic statistic) {
        statistics.push_back(std::move(statistic));
        fill.push_back([c = &cmp](const bootstrap_interval& i) {
            c->lower = i.lower;
            c->upper = i.upper;
        });
    };
    if (reference) {
        const live_group& ref = reference->a->g;
        report.reference = live_report::reference_group{ref.arm, *ref.version};
        auto classes_of = [](const group_acc& a) -> const std::vector<std::string>& {
            return a.classes ? *a.classes : a.scoring->classes;
        };
        // One metric means one thing only for the same task and classes: a
        // log loss over four classes is not one over three.
        auto comparable = [&](const group_acc& a) {
            const group_acc& r = *reference->a;
            if (a.scoring->task != r.scoring->task) return false;
            return a.scoring->task == task_kind::regression || classes_of(a) == classes_of(r);
        };
        auto begin = [&](const group_metric& m, bool paired) -> live_comparison& {
            live_comparison& cmp = made.emplace_back();
            cmp.version = m.a->g.version;
            cmp.arm = m.a->g.arm;
            cmp.shadow = m.a->g.shadow;
            cmp.against_arm = ref.arm;
            cmp.against_version = ref.version;
            cmp.paired = paired;
            const auto info = primary_metric(m.a->scoring->task);
            cmp.metric = info.name;
            cmp.higher_is_better = info.higher_is_better;
            cmp.difference = cmp.lower = cmp.upper = nan;
            return cmp;
        };
        // Whether the interval is worth computing; the verdict otherwise.
        auto settle = [&](live_comparison& cmp) {
            if (cmp.entities < u.min_entities || cmp.against_entities < u.min_entities) {
                cmp.verdict = "too_few_entities";
                return false;
            }
            cmp.verdict = "inconclusive";
            return true;
        };
        // The other experiment arms, as independent samples: another version,
        // or the reference's own (an A/A test of the split). The "live" arm
        // is traffic outside the experiment.
        for (group_metric& m : metrics) {
            const live_group& g = m.a->g;
            if (&m == reference || g.shadow || !g.version || g.arm == "live" ||
                g.arm == "fallback" || fallbacks_only(g))
                continue;
            live_comparison& cmp = begin(m, false);
            cmp.outcomes = g.outcomes;
            cmp.against_outcomes = ref.outcomes;
            cmp.entities = m.entities;
            cmp.against_entities = reference->entities;
            if (!comparable(*m.a)) {
                cmp.verdict = "not_comparable";
                continue;
            }
            cmp.difference = m.rows.evaluate(nullptr) - reference->rows.evaluate(nullptr);
            if (!settle(cmp)) continue;
            measure(cmp, [rows = &m.rows,
                          against = &reference->rows](const std::vector<std::uint8_t>& w) {
                return rows->evaluate(&w) - against->evaluate(&w);
            });
        }
        // Shadows against the reference's answers to the same requests (one
        // prediction id, both scored): paired. Answers of other arms, or
        // fallbacks, are not what the shadow would replace.
        std::unordered_map<std::string_view, const datum*> answered;
        for (std::size_t i = 0; i < reference->a->data.size(); ++i)
            answered.emplace(reference->a->data_ids[i], &reference->a->data[i]);
        for (group_metric& m : metrics) {
            group_acc& a = *m.a;
            if (!a.g.shadow) continue;
            live_comparison& cmp = begin(m, true);
            if (!comparable(a)) {
                cmp.verdict = "not_comparable";
                continue;
            }
            const primary_form form = primary_form_of(a.scoring->task);
            auto& both = paired_rows.emplace_back(metric_rows(form), metric_rows(form));
            for (std::size_t i = 0; i < a.data.size(); ++i) {
                auto it = answered.find(a.data_ids[i]);
                if (it == answered.end()) continue;
                add_datum(both.first, a.data[i]);
                add_datum(both.second, *it->second);
            }
            both.first.prepare();
            both.second.prepare();
            cmp.outcomes = cmp.against_outcomes = static_cast<std::int64_t>(both.first.size());
            cmp.entities = cmp.against_entities =
                static_cast<std::int64_t>(both.first.distinct_clusters());
            cmp.difference = both.first.evaluate(nullptr) - both.second.evaluate(nullptr);
            if (!settle(cmp)) continue;
            measure(cmp, [pair = &both](const std::vector<std::uint8_t>& w) {
                return pair->first.evaluate(&w) - pair->second.evaluate(&w);
            });
        }
    }
    const auto intervals =
        cluster_bootstrap(clusters, statistics, u.resamples, u.confidence, bootstrap_seed);
    for (std::size_t i = 0; i < intervals.size(); ++i) fill[i](intervals[i]);
    for (auto& cmp : made) {
        // Better or worse only when the interval lies wholly on one side of 0.
        if (cmp.verdict == "inconclusive" && std::isfinite(cmp.lower) && std::isfinite(cmp.upper)) {
            const bool above = cmp.lower > 0, below = cmp.upper < 0;
            if (above || below) cmp.verdict = (above == cmp.higher_is_better) ? "better" : "worse";
        }
        report.comparisons.push_back(std::move(cmp));
    }
}

result<live_report> compute(connection& c, const std::string& model, const model_definition& d,
                            micros since, std::int64_t max_predictions, micros until,
                            const live_uncertainty_options* uncertainty) {
    std::vector<row> rows;
    std::uint32_t clusters = 0;
    bool truncated = false;                // more predictions than max_predictions in the window
    std::optional<outcome_joiner> joiner;  // outlives the rows: they point into it
    std::vector<logged_prediction> recent;  // so do these
    try {
        // One snapshot for the many lookups of outcomes below.
        read_snapshot snapshot(c);
        outcome_joiner& outcomes = joiner.emplace(c, model, d);
        // The newest predictions since `since`, at most max_predictions:
        // segments are read newest first until no older one can hold any.
        const auto limit = static_cast<std::size_t>(std::max<std::int64_t>(0, max_predictions));
        micros cutoff = since;  // once `limit` rows are held: the time of the oldest one kept
        if (limit) {
            for_each_log_segment(
                c, model, since, until,
                [&](micros last_time, std::int64_t) {
                    const bool read = recent.size() < limit || last_time >= cutoff;
                    // A segment left unread holds a prediction of the window
                    // (its newest): held rows that add up to `limit` exactly
                    // left older segments out unsaid.
                    if (!read) truncated = true;
                    return read;
                },
                [&](std::vector<logged_prediction>& entries, micros) {
                    for (auto& e : entries) recent.push_back(std::move(e));
                    if (recent.size() >= limit) {
                        std::sort(recent.begin(), recent.end(),
                                  [](const logged_prediction& a, const logged_prediction& b) {
                                      return a.time > b.time;
                                  });
                        truncated = truncated || recent.size() > limit;
                        recent.resize(limit);
                        cutoff = recent.back().time;
                    }
                });
        }
        // Each entity's earliest prediction here: one outcome lookup then
        // serves all of the entity's (a user asked about many times).
        std::unordered_map<std::string_view, micros> earliest;
        std::unordered_map<std::string_view, std::uint32_t> cluster_of;
        for (const logged_prediction& l : recent) {
            auto [it, fresh] = earliest.try_emplace(l.entity, l.time);
            if (!fresh) it->second = std::min(it->second, l.time);
        }
        // Entities in the order first met. A request without one is its own
        // cluster, shared by its answer and its shadow entries (one
        // prediction id), so their comparison stays paired.
        std::unordered_map<std::string, std::uint32_t> cluster_of_request;
        auto cluster = [&](const logged_prediction& l) {
            auto take = [&](auto& map, auto key) {
                auto [it, fresh] = map.try_emplace(std::move(key), clusters);
                if (fresh) ++clusters;
                return it->second;
            };
            return l.entity.empty() ? take(cluster_of_request, l.prediction_id())
                                    : take(cluster_of, std::string_view(l.entity));
        };
        for (const logged_prediction& l : recent) {
            row r;
            r.version = l.version;
            r.arm = l.arm;
            r.shadow = l.shadow;
            r.value = l.value;
            r.label = l.label;
            r.probabilities = l.probabilities;
            r.decision = l.decision;
            r.fallback = l.fallback;
            r.latency_ms = static_cast<double>(l.latency_us) / 1000.0;
            r.cluster = cluster(l);
            if (uncertainty) r.prediction_id = l.prediction_id();
            r.scoring = &outcomes.scoring(l);
            r.classes = l.classes.empty() ? &r.scoring->classes : &l.classes;
            if (auto o = outcomes.find(l, earliest.at(l.entity)))
                r.truth = raw_field_from_json(o->data, r.scoring->label.field);
            rows.push_back(std::move(r));
        }
    } catch (const db_error& e) {
        return status(error_kind::internal, std::string("live metrics: ") + e.what());
    }

    std::map<std::tuple<std::int64_t, std::string, bool>, group_acc> groups;
    for (const auto& r : rows) {
        auto key = std::make_tuple(r.version.value_or(0), r.arm, r.shadow);
        group_acc& a = groups[key];
        a.g.version = r.version;
        a.g.arm = r.arm;
        a.g.shadow = r.shadow;
        a.scoring = r.scoring;
        ++a.g.predictions;
        a.g.fallbacks += r.fallback;
        a.latency_sum += r.latency_ms;
        if (std::holds_alternative<std::monostate>(r.truth)) continue;
        datum x;
        x.cluster = r.cluster;
        if (r.scoring->task == task_kind::regression) {
            double t;
            if (const auto* v = std::get_if<double>(&r.truth)) {
                t = *v;
            } else if (const auto* iv = std::get_if<interval>(&r.truth)) {
                t = iv->midpoint();
            } else {
                ++a.g.unscored_outcomes;
                continue;
            }
            // A row that answered nothing (a failed shadow) is not a 0.
            if (!r.value) continue;
            a.truth.push_back(t);
            a.predicted.push_back(*r.value);
            x.a = *r.value;
            x.b = t;
        } else {
            // A constant fallback (a class, no probabilities) or an entry
            // from before the log named a fallback's classes cannot be
            // scored; nor a class the answer does not know.
            const auto& names = *r.classes;
            std::string want = label_name(r.truth);
            std::size_t k = names.size();
            for (std::size_t i = 0; i < names.size(); ++i) {
                if (names[i] == want) k = i;
            }
            if (k == names.size() || r.probabilities.size() != names.size() ||
                (a.classes && *a.classes != names)) {
                ++a.g.unscored_outcomes;
                continue;
            }
            a.classes = r.classes;
            a.truth.push_back(static_cast<double>(k));
            a.probs.push_back(r.probabilities);
            a.clusters.push_back(r.cluster);
            // An entry from before decisions were logged: its version's
            // threshold gives what it decided; a fallback's (no version)
            // decided by a threshold the entry does not say, so it is left
            // out of the decision's counts.
            std::optional<bool> decided = r.decision;
            if (!decided && r.version && names.size() == 2)
                decided = r.probabilities[1] >= r.scoring->threshold;
            if (decided) {
                a.decided.push_back(*decided);
                a.decided_positive.push_back(k == 1);
                a.decided_cluster.push_back(r.cluster);
            }
            x.a = r.scoring->task == task_kind::binary ? r.probabilities[1 % names.size()]
                                                       : r.probabilities[k];
            x.positive = k == 1;
        }
        ++a.g.outcomes;
        a.outcome_clusters.insert(x.cluster);
        // A binary answer of one class (the prior's, before a second class
        // came) has no ROC-AUC; its group has no metrics either.
        const bool ranked = r.scoring->task != task_kind::binary || r.classes->size() == 2;
        if (uncertainty && ranked) {
            a.data.push_back(x);
            a.data_ids.push_back(r.prediction_id);
        }
    }
    live_report report;
    report.truncated = truncated;
    std::vector<group_acc*> kept;
    for (auto& [key, a] : groups) {
        a.g.mean_latency_ms =
            a.g.predictions ? a.latency_sum / static_cast<double>(a.g.predictions) : 0;
        a.g.outcome_entities = static_cast<std::int64_t>(a.outcome_clusters.size());
        if (!a.truth.empty()) {
            if (a.scoring->task == task_kind::regression) {
                auto m = evaluate_regression(a.truth, a.predicted);
                if (m) a.g.metrics = list_metrics(*m);
            } else {
                auto m = evaluate_classification(a.truth, a.probs, a.classes->size());
                if (m) a.g.metrics = list_metrics(*m);
                if (m && a.scoring->task == task_kind::binary && a.classes->size() == 2) {
                    // The decisions as served, each entity counted once.
                    a.g.decision = operating_point_of(a.decided_positive, a.decided);
                    a.g.decision_entities = weigh_by_entity(*a.g.decision, a.decided_positive,
                                                            a.decided, a.decided_cluster);
                    add_decision_metrics(*a.g.metrics, *a.g.decision);
                    std::vector<bool> positive(a.truth.size());
                    std::vector<double> score(a.truth.size());
                    for (std::size_t i = 0; i < a.truth.size(); ++i) {
                        positive[i] = a.truth[i] == 1;
                        score[i] = a.probs[i][1];
                    }
                    a.g.reliability = reliability(positive, score, a.clusters);
                }
            }
        }
        kept.push_back(&a);
    }
    if (uncertainty) compare_groups(*uncertainty, kept, clusters, report);
    for (group_acc* a : kept) report.groups.push_back(std::move(a->g));
    return report;
}

}  // namespace

std::int64_t decision_evidence(const live_group& g, const std::string& metric) {
    const auto rate = decision_rate_of(metric);
    if (!g.decision || !rate) return 0;
    const auto rows = static_cast<std::int64_t>(measure(*g.decision, *rate).rows);
    if (!g.decision_entities) return rows;
    const live_group::entity_counts& e = *g.decision_entities;
    const std::int64_t entities = *rate == decision_rate::precision ? e.answered_positive
                                  : *rate == decision_rate::recall  ? e.positives
                                                                    : e.negatives;
    return std::min(rows, entities);
}

result<std::vector<live_group>> compute_live_metrics(connection& c, const std::string& model,
                                                     const model_definition& d, micros since,
                                                     std::int64_t max_predictions, micros until) {
    auto report = compute(c, model, d, since, max_predictions, until, nullptr);
    if (!report) return report.error();
    return std::move(report->groups);
}

result<live_report> compute_live_report(connection& c, const std::string& model,
                                        const model_definition& d, micros since,
                                        const live_uncertainty_options& options,
                                        std::int64_t max_predictions, micros until) {
    return compute(c, model, d, since, max_predictions, until, &options);
}

}  // namespace kennel::ml

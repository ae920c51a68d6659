// The training child process (`kennel train-job`): everything that can throw,
// crash or run away happens here, in a process of its own, so the server only
// sees an exit status and a result file.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <new>
#include <nlohmann/json.hpp>
#include <thread>

#include "ml/definition_json.h"
#include "ml/explain.h"
#include "ml/training.h"
#include "ml/training_worker.h"
#include "store/facts.h"
#include "store/registry.h"
#include "store/sha256.h"
#include "store/time_util.h"

namespace kennel::ml {
namespace {

using json = nlohmann::json;

// One JSON object per line on stdout: the parent reads progress and logs.
void emit(const json& j) {
    std::string line = j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);
}

json metrics_json(const metric_listing& m) {
    json j = json::object();
    for (const auto& [name, value] : m.values) j[name] = value;  // NaN is written as null
    if (!m.confusion.empty()) j["confusion"] = m.confusion;
    return j;
}

// The operating point as versions show it: the rule as the definition
// wrote it, whether the holdout met it, and what its threshold reaches.
json decision_json(const operating_point& p) {
    json j = json::parse(decision_policy_json(p.policy));
    j["met"] = p.met;
    j["unmet"] = p.met ? json(nullptr) : json(p.unmet);
    j["threshold"] = p.threshold;
    j["rows"] = p.rows;
    j["positives"] = p.positives;
    j["answered_positive"] = p.predicted_positive();
    j["true_positives"] = p.true_positives;
    j["false_positives"] = p.false_positives;
    j["precision"] = p.precision;
    j["precision_interval"] = {p.precision_lower, p.precision_upper};
    j["recall"] = p.recall;
    j["recall_interval"] = {p.recall_lower, p.recall_upper};
    j["false_positive_rate"] = p.false_positive_rate;
    j["false_positive_rate_interval"] = {p.false_positive_rate_lower, p.false_positive_rate_upper};
    j["f1"] = p.f1;
    j["accuracy"] = p.accuracy;
    if (p.policy.rule == decision_rule::min_cost) j["cost"] = p.cost;
    return j;
}

json calibration_json(const calibration_report& r) {
    const auto side = [](const calibration_report::side& s) {
        return json{{"brier", s.brier},
                    {"calibration_error", s.calibration_error},
                    {"log_loss", s.log_loss},
                    {"roc_auc", s.roc_auc},
                    {"reliability", json::parse(reliability_json(s.bins))}};
    };
    json j = {{"method", calibration_method_name(r.fitted.method)},
              {"fitted_on_rows", r.rows},
              {"before", side(r.before)},
              {"after", side(r.after)}};
    if (r.fitted.method == calibration_method::sigmoid) {
        j["input"] = r.fitted.input == sigmoid_input::logit ? "logit" : "probability";
        j["a"] = r.fitted.a;
        j["b"] = r.fitted.b;
    } else {
        json points = json::array();
        for (std::size_t i = 0; i < r.fitted.xs.size(); ++i)
            points.push_back({r.fitted.xs[i], r.fitted.ys[i]});
        j["points"] = std::move(points);
    }
    return j;
}

// The version's metrics as stored: the listing, and for binary models the
// operating point, the reliability bins and the calibration.
json version_metrics_json(const training_outcome& o) {
    json j = metrics_json(o.metrics);
    if (o.decision) j["decision"] = decision_json(*o.decision);
    if (!o.reliability.empty()) {
        j["reliability"] = json::parse(reliability_json(o.reliability));
    }
    if (o.calibration) j["calibration"] = calibration_json(*o.calibration);
    return j;
}

// When a setting of the definition (its decision rule, its calibration)
// took its present value: the creation of the oldest revision of the
// unbroken run, back from `revision`, whose definition `same` accepts.
micros in_force_since(connection& c, const std::string& model, std::int64_t revision,
                      const std::function<bool(const model_definition&)>& same) {
    micros since = 0;
    for (std::int64_t r = revision; r >= 1; --r) {
        auto row = get_revision(c, model, r);
        if (!row) break;
        parsed_definition p = parse_definition(row->definition);
        if (!p.errors.empty() || !same(p.definition)) break;
        since = row->created_at;
    }
    return since;
}

// When live last moved (0: never).
micros live_moved_at(connection& c, const std::string& model) {
    statement st(
        c, "SELECT coalesce(max(time), 0) FROM deployments WHERE model = ? AND alias = 'live'");
    st.bind(1, model);
    st.step();
    return st.column_int(0);
}

json importance_json(const permutation_importance& p) {
    json fields = json::array();
    for (const auto& f : p.fields) {
        fields.push_back({{"field", f.field}, {"drop", f.drop}, {"shuffled", f.shuffled}});
    }
    return {{"method", "permutation"}, {"metric", p.metric},     {"evaluated", p.evaluated},
            {"rows", p.rows},          {"complete", p.complete}, {"fields", fields}};
}

json params_json(const train_params& p) {
    return json::parse(train_params_json(p));
}

// Empty when written; else why not, with the system's reason ("cannot write
// DIR/result.json: No space left on device").
std::string write_file(const std::string& path, const std::string& bytes) {
    errno = 0;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (out) return {};
    return "cannot write " + path + ": " + (errno ? std::strerror(errno) : "unknown error");
}

// A version's split as its snapshot says: the holdout's cut when it split
// by time ("holdout_from"; none for a split by entity or an older
// snapshot), and the facts its training read.
struct snapshot_split {
    std::optional<std::int64_t> holdout_from;
    std::int64_t max_fact_id = 0;
};

snapshot_split snapshot_split_of(const std::string& snapshot) {
    snapshot_split out;
    const json j = json::parse(snapshot, nullptr, false);
    if (!j.is_object()) return out;
    if (auto it = j.find("max_fact_id"); it != j.end() && it->is_number_integer())
        out.max_fact_id = it->get<std::int64_t>();
    if (auto it = j.find("holdout_from"); it != j.end() && it->is_string())
        out.holdout_from = parse_rfc3339(it->get<std::string>());
    return out;
}

// The gate's verdict in words, with what it could not weigh: live not
// measured (a pass otherwise reads as one where no version was live), and
// classes live never trained on (a candidate that learned one is not
// credited for it).
std::string gate_summary(const training_outcome& o) {
    std::string s = o.gate.summary();
    const std::string live = o.live_version ? "live v" + std::to_string(*o.live_version) : "live";
    if (o.live_not_compared) s += "; " + live + " not compared: " + *o.live_not_compared;
    if (!o.live_unknown_classes.empty()) {
        s += "; " + live + " never trained on " + quoted_classes(o.live_unknown_classes) + " (" +
             std::to_string(o.live_unknown_rows) + " of " + std::to_string(o.test_rows) +
             " holdout rows, left out of the comparison)";
        if (o.fails_only_against_live) {
            s += "; the candidate learned " + quoted_classes(o.live_unknown_learned) +
                 ": a person may promote it if it should answer " +
                 (o.live_unknown_learned.size() == 1 ? "it" : "them");
        }
    }
    return s;
}

int fail(const std::string& out_dir, const status& s) {
    json r = {
        {"ok", false},
        {"error",
         {{"kind", error_kind_name(s.kind())}, {"message", s.message()}, {"field", s.field()}}}};
    (void)write_file(out_dir + "/result.json",
                     r.dump(-1, ' ', false, json::error_handler_t::replace));
    emit({{"log", "error"}, {"message", s.message()}});
    return 3;
}

// The last progress message the job emitted: where an allocation that
// failed stopped it (as the parent says where a deadline stopped it).
std::string last_step;

// Test-only faults, named in the definition and honoured only when the server
// runs with --test-faults.
void inject_fault(const std::string& fault) {
    if (fault == "throw") throw std::runtime_error("injected fault: the trainer threw");
    if (fault == "crash") std::raise(SIGSEGV);
    if (fault == "sleep") std::this_thread::sleep_for(std::chrono::hours(1));
    if (fault == "oom") {
        std::vector<std::vector<char>> hog;
        for (;;) hog.emplace_back(64 * 1024 * 1024, 'x');  // touched: counts as resident
    }
}

}  // namespace

int run_train_job_child(const std::string& db_path, std::int64_t job_id, const std::string& out_dir,
                        bool test_faults) {
    auto t0 = std::chrono::steady_clock::now();
    std::int64_t memory_mb = 0;  // the definition's limit, for an out-of-memory failure
    try {
        open_options ro;
        ro.read_only = true;
        connection conn(db_path, ro);
        auto job = get_job(conn, job_id);
        if (!job)
            return fail(out_dir, status(error_kind::not_found, "no job " + std::to_string(job_id)));
        auto rev = get_revision(conn, job->model, job->revision);
        if (!rev)
            return fail(out_dir, status(error_kind::not_found, "the job's revision is missing"));
        parsed_definition p = parse_definition(rev->definition);
        if (!p.errors.empty()) {
            return fail(out_dir, invalid(p.errors[0].field, p.errors[0].message));
        }
        const model_definition& d = p.definition;
        memory_mb = d.training_memory_mb;
        if (test_faults && !d.test_fault.empty()) inject_fault(d.test_fault);

        // The snapshot: every fact up to the newest id at this moment.
        std::int64_t watermark = 0;
        {
            // Finished at once: a statement left open keeps its read
            // transaction, and a reader held through the whole fit stops the
            // WAL from being checkpointed, so it grows and every write slows.
            statement wm(conn, "SELECT coalesce(max(id), 0) FROM facts");
            wm.step();
            watermark = wm.column_int(0);
        }
        live_reference live;
        bool has_live = false;
        // Recorded with the gate: if a person moves live while this job
        // runs, the trainer does not publish over their choice.
        const std::optional<std::int64_t> live_at_start = alias_version(conn, job->model, "live");
        const bool live_disabled_at_start =
            live_at_start && disabled_versions(conn, job->model).count(*live_at_start) > 0;
        const live_marks marks_at_start = live_marks_of(conn, job->model, live_at_start);
        const bool move_and_back = d.test_fault == "wait_for_live_move_and_back";
        if (test_faults && (d.test_fault == "wait_for_live_move" || move_and_back)) {
            // Until a person moves live, or takes its version out of service
            // (and, for the second fault, until it is as it was again).
            emit({{"log", "info"}, {"message", "test fault: waiting for live to move"}});
            const auto live_unchanged = [&] {
                return alias_version(conn, job->model, "live") == live_at_start &&
                       (!live_at_start ||
                        disabled_versions(conn, job->model).count(*live_at_start) > 0) ==
                           live_disabled_at_start;
            };
            // A move and a move back within one poll are seen by the marks
            // (the tests make both at once: the poll waited its whole minute).
            const auto acted_on = [&] {
                return !live_unchanged() ||
                       !(live_marks_of(conn, job->model, live_at_start) == marks_at_start);
            };
            for (int i = 0; i < 1200 && !acted_on(); ++i)
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            if (move_and_back) {
                emit({{"log", "info"}, {"message", "test fault: waiting for live to move back"}});
                for (int i = 0; i < 1200 && !live_unchanged(); ++i)
                    std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
        }
        if (test_faults && d.test_fault == "wait_for_new_revision") {
            emit({{"log", "info"}, {"message", "test fault: waiting for a new revision"}});
            for (int i = 0; i < 1200; ++i) {
                auto m = get_model(conn, job->model);
                if (!m || m->current_revision != job->revision) break;
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
        }
        std::vector<aggregate_spec> live_aggregates;  // how live computes its aggregates
        std::optional<label_source> live_labels;      // live split by time: where it read labels
        if (const auto& lv = live_at_start) {
            auto row = get_version(conn, job->model, *lv, true);
            if (row) {
                auto art = load_artifact(row->artifact);
                if (art) {
                    live.version = *lv;
                    live_aggregates = aggregates_in_features(row->features);
                    live.artifact = std::make_shared<const model_artifact>(std::move(*art));
                    has_live = true;
                    // Its holdout: the gate compares on rows it did not train
                    // on. A split by time kept its cut and watermark in the
                    // snapshot; its labels are read again as it read them.
                    const snapshot_split split = snapshot_split_of(row->snapshot);
                    live.holdout_from = split.holdout_from;
                    std::optional<parsed_definition> lp;
                    if (auto live_rev = get_revision(conn, job->model, row->revision)) {
                        lp = parse_definition(live_rev->definition);
                        if (!lp->errors.empty()) lp.reset();
                    }
                    if (!lp) {
                        emit({{"log", "warn"},
                              {"message", "live version " + std::to_string(*lv) +
                                              ": its definition (revision " +
                                              std::to_string(row->revision) +
                                              ") cannot be read; its holdout is taken as " +
                                              (live.holdout_from ? "its snapshot says and its "
                                                                   "labels as this one's"
                                                                 : "unknown: compared with it "
                                                                   "on every holdout row")}});
                    }
                    if (!live.holdout_from && lp && lp->definition.holdout_by == split_by::entity)
                        live.holdout = lp->definition.holdout;
                    if (lp && !(lp->definition.decision == d.decision)) {
                        // A new rule lets a candidate that matches live go
                        // live, unless live was put back after the rule
                        // changed (a rollback, by a person or the
                        // supervisor): a choice of the old rule, which a tie
                        // does not undo.
                        const micros since = in_force_since(
                            conn, job->model, job->revision,
                            [&](const model_definition& r) { return r.decision == d.decision; });
                        const micros moved = live_moved_at(conn, job->model);
                        if (moved < since) {
                            live.decision = lp->definition.decision;
                        } else {
                            emit({{"log", "info"},
                                  {"message", "live version " + std::to_string(*lv) +
                                                  " decides by " +
                                                  describe(lp->definition.decision) +
                                                  ", but was put live after the rule became " +
                                                  describe(d.decision) +
                                                  ": the candidate must beat it, not match it"}});
                        }
                    }
                    // Live's calibration as served (its artifact), against
                    // the definition's: a change is judged on the Brier
                    // score, unless live was put back after it (as above).
                    const calibrator* lc = live.artifact->function->calibration();
                    const calibration_method live_cal = lc ? lc->method : calibration_method::none;
                    if (d.task == task_kind::binary && live.artifact->task == task_kind::binary &&
                        live_cal != d.calibration) {
                        const micros since = in_force_since(
                            conn, job->model, job->revision, [&](const model_definition& r) {
                                return r.calibration == d.calibration;
                            });
                        if (live_moved_at(conn, job->model) < since) {
                            live.calibration = live_cal;
                        } else {
                            emit({{"log", "info"},
                                  {"message", "live version " + std::to_string(*lv) + " is " +
                                                  (lc ? std::string("calibrated by ") +
                                                            calibration_method_name(live_cal)
                                                      : std::string("not calibrated")) +
                                                  ", but was put live after the definition's "
                                                  "calibration became " +
                                                  calibration_method_name(d.calibration) +
                                                  ": the candidate is compared with it by its " +
                                                  primary_metric(d.task).name +
                                                  " before calibration"}});
                        }
                    }
                    if (split.max_fact_id > 0 && (live.holdout_from || live.holdout)) {
                        const label_spec& l = lp ? lp->definition.label : d.label;
                        live_labels = label_source{l.stream, l.field, split.max_fact_id};
                        live.labels_read = true;
                    }
                } else {
                    emit({{"log", "warn"},
                          {"message", "live version " + std::to_string(*lv) +
                                          " does not load: " + art.error().message()}});
                }
            }
        }

        emit({{"progress", 0.02},
              {"message", "reading facts up to id " + std::to_string(watermark)}});
        // The holdout rows keep the fields live reads too, so that it is
        // scored on what the app would send it, not on rows stripped to the
        // new definition's fields (a dropped feature would read as missing).
        std::vector<std::string> live_fields;
        if (has_live) {
            for (const auto& spec : live.artifact->pipeline.specs())
                live_fields.push_back(spec.field);
        }
        auto data =
            build_training_set(conn, d, watermark, live_fields, live_aggregates, live_labels);
        if (!data) return fail(out_dir, data.error());
        double read_seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        emit({{"log", "info"},
              {"message", "training set: " + std::to_string(data->rows.size()) + " rows from " +
                              std::to_string(data->labelled_entities) +
                              " labelled entities (snapshot fact id " + std::to_string(watermark) +
                              ")"}});

        // A fit that takes long once its data is read (tests: nothing may
        // hold the database meanwhile).
        if (test_faults && d.test_fault == "sleep_after_read") inject_fault("sleep");

        training_hooks hooks;
        hooks.control.progress = [](double f, const std::string& m) {
            last_step = m;
            emit({{"progress", f}, {"message", m}});
        };
        // Tests: an allocation that fails inside a trainer, in a
        // calibration fold (where a fit over its limit first said only
        // "forest training failed: std::bad_alloc").
        if (test_faults && d.test_fault == "oom_in_calibration") {
            hooks.control.progress = [](double f, const std::string& m) {
                last_step = m;
                if (m.starts_with("calibration fold")) throw std::bad_alloc();
                emit({{"progress", f}, {"message", m}});
            };
        }
        hooks.log = [](const std::string& level, const std::string& m) {
            emit({{"log", level}, {"message", m}});
        };
        auto outcome = train_model(d, *data, has_live ? &live : nullptr, hooks);
        if (!outcome) return fail(out_dir, outcome.error());

        std::string sha = sha256_hex(outcome->artifact);
        if (std::string e = write_file(out_dir + "/artifact.bin", outcome->artifact); !e.empty()) {
            return fail(out_dir, status(error_kind::internal, e));
        }
        const gate_decision& g = outcome->gate;
        json gate = {{"passed", g.passed},
                     {"metric", g.metric},
                     {"candidate", g.candidate},
                     {"baseline", g.baseline},
                     {"reasons", g.reasons},
                     {"summary", gate_summary(*outcome)},
                     {"policy", promotion_mode_name(d.promotion.mode)},
                     {"min_improvement", d.promotion.min_improvement},
                     {"thresholds", d.promotion.thresholds}};
        gate["live"] = g.live ? json(*g.live) : json(nullptr);
        if (g.candidate_on_live_rows) {
            gate["candidate_on_live_rows"] = *g.candidate_on_live_rows;
            gate["live_rows"] = *outcome->live_rows;
        }
        gate["live_version"] = outcome->live_version ? json(*outcome->live_version) : json(nullptr);
        gate["live_not_compared"] =
            outcome->live_not_compared ? json(*outcome->live_not_compared) : json(nullptr);
        gate["live_unknown_classes"] = outcome->live_unknown_classes;
        gate["cautions"] = g.cautions;
        gate["decision_rule_change"] =
            g.decision_rule_change ? json(*g.decision_rule_change) : json(nullptr);
        gate["calibration_change"] =
            g.calibration_change ? json(*g.calibration_change) : json(nullptr);
        gate["calibration_compared"] = g.calibration_compared
                                           ? json{{"metric", "brier"},
                                                  {"candidate", g.calibration_compared->candidate},
                                                  {"live", g.calibration_compared->live}}
                                           : json(nullptr);
        gate["fails_only_against_live"] = outcome->fails_only_against_live;
        gate["live_alias_at_start"] = live_at_start ? json(*live_at_start) : json(nullptr);
        gate["live_disabled_at_start"] = live_disabled_at_start;
        gate["live_move_at_start"] = marks_at_start.move;
        gate["live_event_at_start"] = marks_at_start.event;
        gate["live_metrics"] =
            outcome->live_metrics ? metrics_json(*outcome->live_metrics) : json(nullptr);
        json params = params_json(outcome->params);
        params["requested"] = d.algorithm;
        if (outcome->search) {
            json tried = json::array();
            for (const auto& c : outcome->search->tried) {
                tried.push_back({{"algorithm", algorithm_name(c.algo)},
                                 {"params", params_json(c.params)},
                                 {"cv_score", c.cv_score}});
            }
            params["search"] = {{"score", outcome->search->score_name},
                                {"best_cv_score", outcome->search->cv_score},
                                {"baseline_cv_score", outcome->search->baseline_score},
                                {"budget_seconds", d.search_budget_seconds},
                                {"tried", tried}};
        }
        double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        json result = {
            {"ok", true},
            {"algorithm", algorithm_name(outcome->algo)},
            {"params", params},
            {"sha256", sha},
            {"snapshot",
             {{"max_fact_id", watermark},
              {"train_rows", outcome->train_rows},
              {"test_rows", outcome->test_rows},
              {"labelled_entities", data->labelled_entities},
              {"without_features", data->without_features},
              {"split_rule", outcome->split_rule},
              {"holdout_from", outcome->holdout_from ? json(format_rfc3339(*outcome->holdout_from))
                                                     : json(nullptr)},
              {"probe_rows_verified", outcome->probe_rows}}},
            {"metrics", version_metrics_json(*outcome)},
            {"baseline_metrics", metrics_json(outcome->baseline_metrics)},
            {"gate", gate},
            {"baseline",
             {{"value", outcome->baseline_answer.value},
              {"label", outcome->classes.empty() ? json(nullptr)
                                                 : json(outcome->classes[static_cast<std::size_t>(
                                                       outcome->baseline_answer.value)])},
              {"probabilities", outcome->baseline_answer.probabilities}}},
            {"features",
             {{"names", outcome->feature_names},
              {"classes", outcome->classes},
              {"warnings", outcome->warnings},
              {"profile", json::parse(profile_to_json(outcome->profile))},
              {"background", json::parse(background_to_json(outcome->background))},
              {"aggregates", json::parse(aggregates_to_json(outcome->aggregates))},
              {"importance", importance_json(outcome->importance)}}},
            {"timings",
             {{"read_seconds", read_seconds},
              {"fit_seconds", outcome->fit_seconds},
              {"calibration_seconds", outcome->calibration_seconds},
              {"evaluate_seconds", outcome->evaluate_seconds},
              {"total_seconds", total}}},
        };
        if (std::string e = write_file(out_dir + "/result.json",
                                       result.dump(-1, ' ', false, json::error_handler_t::replace));
            !e.empty()) {
            return fail(out_dir, status(error_kind::internal, e));
        }
        emit({{"progress", 1.0}, {"message", "done"}});
        return 0;
    } catch (const std::bad_alloc&) {
        // The limit by name, and what raises the need: it read as if the
        // machine had run out.
        return fail(out_dir,
                    status(error_kind::failed_precondition,
                           "out of memory: the training run exceeded its memory limit of " +
                               std::to_string(memory_mb) +
                               " MB (training.memory_mb); more rows, more columns (a "
                               "category's top_n, text buckets), more trees or a "
                               "calibration's folds need more" +
                               (last_step.empty() ? "" : "; at: " + last_step)));
    } catch (const std::exception& e) {
        return fail(out_dir,
                    status(error_kind::internal, std::string("training threw: ") + e.what()));
    }
}

}  // namespace kennel::ml

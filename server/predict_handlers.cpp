// POST /v1/models/{name}/predict: answers within the deadline, always.
//
// The request thread validates the features, hands the model work to the
// predict pool and waits only until the deadline. Whatever is not answered
// by then — or fails — is answered by the next step of the fallback chain:
// an earlier live version, the baseline, the definition's constant, the
// label's prior; flagged "fallback": true with the reason.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <random>
#include <span>

#include "ml/predict_pool.h"
#include "ml/predict_slots.h"
#include "ml/prediction_log.h"
#include "ml/serving.h"
#include "server/app.h"
#include "server/errors.h"
#include "server/handlers.h"
#include "server/json_body.h"
#include "server/predict_body.h"
#include "store/json_writer.h"
#include "store/registry.h"

namespace kennel {
namespace {

using steady = std::chrono::steady_clock;

// 32 hex digits: 14 of microseconds since the epoch, then 18 random. Ids
// that grow with time append at the right edge of the log's primary-key
// index; random ids dirtied about one index page per prediction (measured
// with strace under bench/predict: 1.08 page writes per prediction).
std::array<char, 32> new_prediction_id(micros at) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    static const char* hex = "0123456789abcdef";
    std::array<char, 32> id{};
    const auto micros = static_cast<std::uint64_t>(at);
    for (std::size_t i = 0; i < 14; ++i) id[i] = hex[(micros >> (4 * (13 - i))) & 0xf];
    std::uint64_t a = rng(), b = rng();
    for (std::size_t i = 0; i < 16; ++i) id[14 + i] = hex[(a >> (4 * i)) & 0xf];
    for (std::size_t i = 0; i < 2; ++i) id[30 + i] = hex[(b >> (4 * i)) & 0xf];
    return id;
}

// What the pool computes for a batch; the request thread reads it under the
// mutex, at the latest at its deadline, and never waits longer.
struct batch_work {
    std::mutex mu;
    std::condition_variable cv;
    std::size_t done = 0;
    // When run_batch began (steady ticks; 0: not yet): time spent waiting in
    // the pool's queue before it is not the version's doing.
    std::atomic<steady::rep> began{0};
    // Set by the pool while the work waited because its own model held
    // every thread it may: those waits are the model's doing.
    std::atomic<bool> held_back{false};
    std::vector<std::optional<ml::answer>> answers;
    std::vector<std::int64_t> answered_by;  // version that answered
    std::vector<std::string> reasons;       // fallback reason, when a fallback answered
};

struct chosen {
    std::shared_ptr<const ml::loaded_version> version;  // may be null
    std::string arm;
    std::string problem;  // why version is null
};

// The loaded version whose answer is `version`: the chosen one, live, or an
// earlier live version of the fallback chain.
const ml::loaded_version* answering_version(const ml::model_serving& m, const chosen& pick,
                                            std::int64_t version) {
    if (pick.version && pick.version->version == version) return pick.version.get();
    if (m.live && m.live->version == version) return m.live.get();
    for (const auto& p : m.previous) {
        if (p && p->version == version) return p.get();
    }
    return nullptr;
}

// What an answer lists as ignored and imputed, for the version that gave it
// (an experiment arm, or a version of the fallback chain, may read other
// fields than those the request was read for): ignored, the fields sent that
// it did not get (no version reads them, it does not, or their value was of
// a wrong type for it and dropped); imputed, those it reads that were not
// sent (or null).
struct field_report {
    std::vector<std::string> ignored, imputed;
};

field_report fields_for(const predict_instance& in, const ml::loaded_version& v) {
    field_report out;
    out.ignored = in.ignored;
    const ml::raw_record& record = in.record_for(v.version);
    for (const auto& [name, value] : record) {
        // A value Kennel computed for another version was not sent: not
        // ignored.
        bool computed = false;
        if (in.aggregates) {
            for (const auto& [field, x] : in.aggregates->values)
                computed = computed || field == name;
        }
        if (!v.reads_field(name) && !computed) out.ignored.push_back(name);
    }
    for (const auto& f : in.fallback_only) {
        if (!record.count(f)) out.ignored.push_back(f);  // of a wrong type: dropped
    }
    std::sort(out.ignored.begin(), out.ignored.end());
    out.ignored.erase(std::unique(out.ignored.begin(), out.ignored.end()), out.ignored.end());
    for (const auto& f : v.reads) {
        if (!record.count(f) &&
            !std::binary_search(in.fallback_only.begin(), in.fallback_only.end(), f))
            out.imputed.push_back(f);
    }
    return out;
}

// Runs the chosen versions (and, on an exception, earlier live versions) for
// each instance in order, publishing each answer as it is ready; stops at the
// deadline, when the request has answered from the constant steps already.
void run_batch(batch_work& work, const ml::model_serving& m, const std::vector<chosen>& picks,
               std::span<const predict_instance> instances, steady::time_point deadline) {
    work.began.store(steady::now().time_since_epoch().count(), std::memory_order_relaxed);
    for (std::size_t i = 0; i < instances.size(); ++i) {
        if (steady::now() > deadline) break;
        std::optional<ml::answer> got;
        std::int64_t by = 0;
        std::string reason;
        bool input_fault = false;
        if (picks[i].version) {
            try {
                got = ml::predict_with(*picks[i].version,
                                       instances[i].record_for(picks[i].version->version));
                by = picks[i].version->version;
            } catch (const ml::input_out_of_range& e) {
                // Earlier versions would overflow alike: the constant answers.
                reason = std::string("input_out_of_range: ") + e.what();
                input_fault = true;
            } catch (const std::exception& e) {
                picks[i].version->counters.errors.fetch_add(1, std::memory_order_relaxed);
                reason = std::string("model_error: ") + e.what();
            }
        } else {
            reason = picks[i].problem.empty() ? "no_version" : picks[i].problem;
        }
        // An experiment arm that failed or is disabled: live answers next.
        if (!got && !input_fault && m.live && m.live != picks[i].version &&
            steady::now() <= deadline) {
            try {
                got = ml::predict_with(*m.live, instances[i].record_for(m.live->version));
                by = m.live->version;
            } catch (const ml::input_out_of_range& e) {
                reason = std::string("input_out_of_range: ") + e.what();
                input_fault = true;
            } catch (const std::exception&) {
                m.live->counters.errors.fetch_add(1, std::memory_order_relaxed);
            }
        }
        // Down the chain: earlier live versions, newest first.
        for (const auto& prev : m.previous) {
            if (got || input_fault || steady::now() > deadline) break;
            // One trained to compute an aggregate otherwise, whose values were
            // not read with the request (only the arms' are): passed over.
            if (needs_own_values(m, *prev, instances[i])) continue;
            try {
                got = ml::predict_with(*prev, instances[i].record_for(prev->version));
                by = prev->version;
            } catch (const ml::input_out_of_range&) {
                break;
            } catch (const std::exception&) {
                prev->counters.errors.fetch_add(1, std::memory_order_relaxed);
            }
        }
        std::lock_guard lock(work.mu);
        work.answers[i] = std::move(got);
        work.answered_by[i] = by;
        work.reasons[i] = reason;
        ++work.done;
    }
    work.cv.notify_all();
}

}  // namespace

// Why a model has nothing serving it: unknown, or archived (read only on
// this path, off the predictions that find their model).
status unserved_model(app& a, const std::string& name) {
    auto conn = a.readers().acquire();
    if (auto archive = current_archive(*conn, name)) {
        return status(error_kind::not_found,
                      archived_note(name, *archive) +
                          ": it answers no predictions until restored (POST /v1/models/" + name +
                          "/restore)",
                      "name");
    }
    return no_model_named(name);
}

// A reader leased only for instances asking for their stored features or
// aggregates, and given back before predicting.
struct leased_reader final : stored_feature_reader {
    explicit leased_reader(reader_pool& p) : pool(p) {}
    connection& conn() override {
        if (!lease) lease.emplace(pool.acquire());
        return **lease;
    }
    reader_pool& pool;
    std::optional<reader_pool::lease> lease;
};

http_response post_model_predict(app& a, const http_request& req) {
    const auto started = steady::now();
    const std::string& name = req.param("name");
    auto m = a.serving().get(name);
    if (!m) return error_response(unserved_model(a, name));
    if (status s = check_json_media_type(req); !s) return error_response(s);
    std::optional<std::size_t> error_instance;
    leased_reader stored(a.readers());
    stored.started = started;
    auto parsed = parse_predict_body(*m, req.body, error_instance, &stored);
    stored.lease.reset();
    if (parsed && (!m->definition.aggregates.empty() || !m->own_aggregates.empty())) {
        std::uint64_t complete = 0, cut = 0;
        for (const auto& in : parsed->instances) {
            if (in.aggregates) ++(in.aggregates->complete ? complete : cut);
        }
        if (complete + cut) a.metrics().record_aggregates(complete, cut, stored.read_seconds);
    }
    if (!parsed) return error_response(parsed.error(), error_instance);
    const bool batch = parsed->batch;
    const double deadline_ms = parsed->deadline_ms.value_or(m->definition.deadline_ms);
    // A miss of a deadline the client cut below the model's is the client's
    // doing: not held against the version (else any predict key could get
    // live disabled by the supervisor with deadline_ms 0.001). So is one the
    // request caused otherwise; see version_missed below.
    const bool deadline_is_models = deadline_ms >= m->definition.deadline_ms;
    const auto deadline =
        started + std::chrono::microseconds(static_cast<std::int64_t>(deadline_ms * 1000));
    // An explanation costs thousands of predictions: past the few that may
    // run at once, the request is refused before anything is predicted or
    // logged, not queued behind them.
    std::optional<ml::predict_slots::held> explaining;
    if (parsed->explain) explaining.emplace(a.explain_slots(), started);
    if (explaining && !explaining->holds()) {
        return error_response(
            status(error_kind::unavailable,
                   std::to_string(a.explain_slots().slots()) +
                       " explanation(s) at a time, all running; retry shortly, or ask without "
                       "\"explain\"",
                   "explain"));
    }
    // The deadline counts from arrival, so a wait for a slot is part of it:
    // after a quarter of this request's deadline it goes on without one. (A
    // model runs here only when 10x below the deadline. With half, 2 of 18k
    // batched requests at 64 connections in bench/predict waited it out and
    // then missed the deadline.) Taken after the body is read, whose
    // deadline_ms may be shorter than the model's.
    ml::predict_slots::held slot(a.predict_slots(), started + (deadline - started) / 4);
    // The pool's task and the shadow arms read the instances too: they are
    // moved into `shared` when one needs them (a copy for the pool cost a
    // batch's records over again; sharing them from the start, an allocation
    // for every request). A vector moved keeps its elements where they are,
    // so this view of them stays valid.
    const bool explain = parsed->explain;
    const std::span<const predict_instance> instances(parsed->instances);
    std::shared_ptr<const std::vector<predict_instance>> shared;
    auto share = [&] {
        if (!shared)
            shared = std::make_shared<std::vector<predict_instance>>(std::move(parsed->instances));
        return shared;
    };

    // Choose a version per instance: an experiment arm, or live.
    std::vector<chosen> picks(instances.size());
    for (std::size_t i = 0; i < instances.size(); ++i) {
        const ml::serving_arm* arm = m->arms.empty() || instances[i].entity.empty()
                                         ? nullptr
                                         : ml::choose_arm(*m, instances[i].entity);
        if (arm) {
            picks[i] = {arm->version, arm->name, arm->problem};
        } else {
            picks[i] = {m->live, "live", m->live_problem};
        }
        if (picks[i].version) {
            picks[i].version->counters.requests.fetch_add(1, std::memory_order_relaxed);
            // A history cut at the deadline is no value the app's entity has.
            const auto& agg = instances[i].aggregates;
            if (picks[i].version->drift && !(agg && !agg->complete))
                picks[i].version->drift->observe(
                    instances[i].record_for(picks[i].version->version));
        }
    }

    const std::size_t n = instances.size();
    bool any_model = false;
    for (const auto& p : picks)
        any_model = any_model || p.version || m->live || !m->previous.empty();
    // Versions measured far below the deadline run here on the request
    // thread (no hand-off); anything unmeasured, slow or under a test fault
    // goes to the pool, and the request waits only until its deadline.
    bool inline_ok = true;
    if (any_model) {
        const auto deadline_ns = static_cast<std::int64_t>(deadline_ms * 1e6);
        for (const auto& p : picks) {
            inline_ok = inline_ok && p.version && p.version->fast_enough(n, deadline_ns);
        }
        if (m->live && !m->arms.empty())
            inline_ok = inline_ok && m->live->fast_enough(n, deadline_ns);
        for (const auto& prev : m->previous) {
            inline_ok = inline_ok && prev->fast_enough(n, deadline_ns);
        }
    }
    // Work handed to the pool is shared with its task, which may outlive the
    // request; work done here is the request's own (and costs no allocation).
    std::shared_ptr<batch_work> pooled;
    batch_work here;
    if (any_model && !inline_ok) pooled = std::make_shared<batch_work>();
    batch_work& work = pooled ? *pooled : here;
    work.answers.resize(n);
    work.answered_by.resize(n, 0);
    work.reasons.resize(n);
    // When the work was handed over (to this thread or the pool).
    const auto handed_at = steady::now();
    if (any_model) {
        bool accepted = true;
        if (!pooled) {
            run_batch(work, *m, picks, instances, deadline);
        } else {
            accepted = a.predict_pool().submit(
                [pooled, m, picks, shared = share(), deadline] {
                    run_batch(*pooled, *m, picks, *shared, deadline);
                },
                m->name, &pooled->held_back);
        }
        if (!accepted) {
            return error_response(
                status(error_kind::unavailable, "prediction queue is full (" +
                                                    std::to_string(a.predict_pool().queued()) +
                                                    " waiting); retry shortly"));
        }
    }

    std::vector<std::optional<ml::answer>> answers;
    std::vector<std::int64_t> by;
    std::vector<std::string> reasons;
    bool version_missed = false;  // the deadline misses are the version's doing
    if (pooled) slot.release();  // waiting for the pool takes no CPU
    {
        std::unique_lock lock(work.mu);
        // The answers for what is missing are built and written after the
        // wait: it ends a little before the deadline (1 ms, or a twentieth
        // of a shorter one), so the answer, not only the wait, is within it.
        // Waiting to the deadline itself, answers went out 0.05-0.2 ms late.
        const auto answer_by = deadline - std::min<steady::duration>(std::chrono::milliseconds(1),
                                                                     (deadline - started) / 20);
        if (pooled) work.cv.wait_until(lock, answer_by, [&] { return work.done == n; });
        const std::size_t done = work.done;
        // The version is held to a miss only when it began on the work with
        // at least half the model's deadline left and still did not answer
        // the request's first instance: a body slow to parse (a batch of
        // 1000 instances with thousands of unknown fields took 191 ms and
        // had every instance held against live, which the supervisor then
        // disabled), a long wait for a slot, or a batch too large for the
        // deadline are the request's doing, not the version's. A wait in the
        // pool's queue counts only when the model's own work held every
        // thread it may take (a slow version under load keeps its queue from
        // draining): another model's hung version kept the shared queue full
        // while a healthy one was disabled for it.
        const auto half =
            std::chrono::microseconds(static_cast<std::int64_t>(m->definition.deadline_ms * 500));
        const steady::rep began = work.began.load(std::memory_order_relaxed);
        const bool slow_to_answer =
            began != 0 && deadline - steady::time_point(steady::duration(began)) >= half;
        const bool queued_behind_itself =
            work.held_back.load(std::memory_order_relaxed) && deadline - handed_at >= half;
        version_missed =
            deadline_is_models && done == 0 && (slow_to_answer || queued_behind_itself);
        if (!pooled) {
            answers = std::move(work.answers);
            by = std::move(work.answered_by);
            reasons = std::move(work.reasons);
        } else {
            // The pool never touches an index below done again; the rest it
            // may still write after the deadline, so they are not read.
            answers.resize(n);
            by.resize(n, 0);
            reasons.resize(n);
            for (std::size_t i = 0; i < done; ++i) {
                answers[i] = std::move(work.answers[i]);
                by[i] = work.answered_by[i];
                reasons[i] = std::move(work.reasons[i]);
            }
        }
        for (std::size_t i = done; i < n; ++i) {
            reasons[i] = any_model ? "deadline_exceeded"
                                   : (picks[i].problem.empty() ? "no_version" : picks[i].problem);
            if (instances[i].aggregates && !instances[i].aggregates->complete) {
                reasons[i] =
                    "deadline_exceeded: the entity's history (its aggregate features) was not "
                    "read within the deadline";
            }
            if (picks[i].version && any_model && version_missed) {
                picks[i].version->counters.deadline_misses.fetch_add(1, std::memory_order_relaxed);
            }
        }
    }

    const double latency_ms =
        std::chrono::duration<double, std::milli>(steady::now() - started).count();
    m->traffic->latency.record(latency_ms / 1000);
    // One time for the request's answers: their ids and log rows.
    const micros answered_at = now_micros();
    m->traffic->last_answered.store(answered_at, std::memory_order_relaxed);
    std::string text = batch ? "{\"predictions\":[" : "";
    text.reserve(text.size() + instances.size() * 360);  // a typical answer is 250-350 bytes
    bool any_shadow = false;
    for (const auto& arm : m->arms) any_shadow = any_shadow || (arm.shadow && arm.version);
    std::vector<std::array<char, 32>> shadow_ids;  // the ids shadow rows are logged under
    if (any_shadow) shadow_ids.reserve(n);
    std::vector<prediction_row> rows;
    rows.reserve(instances.size());
    // Explanations share one budget a request: once it is spent, the
    // answers left say so, without one.
    const auto explain_until = explain ? explain_deadline() : steady::time_point{};
    bool explained_one = false;
    // The answers are settled: explaining them holds an explanation's slot,
    // not a prediction's.
    if (explain) slot.release();
    for (std::size_t i = 0; i < instances.size(); ++i) {
        const chosen& pick = picks[i];
        bool fallback =
            !answers[i] || (pick.version && by[i] != pick.version->version) || !pick.version;
        std::string source = "model";
        ml::answer ans;
        // The constant and "none" read as the model; every other answer
        // below replaces it with its own version's task.
        ans.task = m->definition.task;
        std::optional<std::int64_t> version;
        if (answers[i]) {
            ans = std::move(*answers[i]);
            version = by[i];
            if (fallback) {
                source = m->live && by[i] == m->live->version ? "live_version" : "previous_version";
            }
            if (!fallback && pick.version->drift) {
                pick.version->drift->observe_prediction(ml::prediction_output(
                    pick.version->artifact->task, ans.value, ans.probabilities, ans.label));
            }
        } else if (pick.version || m->live || m->baseline) {
            // The baseline trained with the version: a constant, always at hand.
            const auto& v = pick.version ? pick.version : m->live;
            ans = v ? v->baseline : *m->baseline;
            source = "baseline";
        } else if (m->definition.fallback_value || m->definition.fallback_label) {
            if (m->definition.fallback_value) ans.value = *m->definition.fallback_value;
            if (m->definition.fallback_label) ans.label = *m->definition.fallback_label;
            source = "constant";
        } else if (m->prior) {
            ans = *m->prior;
            source = "label_prior";
        } else {
            source = "none";
        }
        // An input the model overflows on, or a deadline the client cut, is
        // the request's fault: not held against the version by the supervisor.
        if (fallback && pick.version && !reasons[i].starts_with("input_out_of_range") &&
            (version_missed || !reasons[i].starts_with("deadline_exceeded")))
            pick.version->counters.fallbacks.fetch_add(1, std::memory_order_relaxed);
        a.metrics().record_prediction(latency_ms, fallback);
        if (fallback && reasons[i].empty()) reasons[i] = "version_unavailable";

        const std::array<char, 32> id = new_prediction_id(answered_at);
        if (i) text += ',';
        text += '{';
        json_writer w(text);
        write_prediction(w, ans, source == "none");
        w.key("prediction_id").string(std::string_view(id.data(), id.size()));
        w.key("model").string(m->name);
        w.key("version");
        if (version) {
            w.integer(*version);
        } else {
            w.null();
        }
        w.key("arm").string(pick.arm);
        if (m->experiment) w.key("experiment").integer(*m->experiment);
        w.key("fallback").boolean(fallback);
        w.key("fallback_reason");
        if (fallback) {
            w.string(reasons[i]);
            w.key("answered_by").string(source);
        } else {
            w.null();
        }
        w.key("latency_ms").number(latency_ms);
        // The lists as the request was read hold for a version that reads
        // just those fields (the usual case); another's are its own.
        const ml::loaded_version* answering =
            answers[i] ? answering_version(*m, pick, by[i]) : nullptr;
        if (answering &&
            (!instances[i].fallback_only.empty() || !m->reads_served_fields(answering->version) ||
             &instances[i].record_for(answering->version) != &instances[i].record)) {
            const field_report own = fields_for(instances[i], *answering);
            if (!own.ignored.empty()) w.key("ignored_fields").strings(own.ignored);
            if (!own.imputed.empty()) w.key("imputed_fields").strings(own.imputed);
        } else {
            if (!instances[i].ignored.empty())
                w.key("ignored_fields").strings(instances[i].ignored);
            if (!instances[i].missing.empty())
                w.key("imputed_fields").strings(instances[i].missing);
        }
        if (instances[i].stored) write_stored_source(w, *instances[i].stored);
        // A constant's values: those read for the version the entity was
        // routed to.
        if (instances[i].aggregates)
            write_aggregate_source(w, instances[i], answering ? answering : pick.version.get());
        if (!fallback) {
            // Which version read them: the one that answered.
            const auto unseen = pick.version->artifact->pipeline.unseen_categories(
                instances[i].record_for(pick.version->version));
            if (!unseen.empty()) w.key("unseen_categories").strings(unseen);
        }
        if (explain) {
            const auto explaining_from = steady::now();
            const bool given = write_explanation(
                w, answering, ans, source, instances[i],
                std::max(0.0, std::chrono::duration<double>(explain_until - steady::now()).count()),
                !explained_one);
            explained_one = explained_one || given;
            a.metrics().record_explanation(
                std::chrono::duration<double>(steady::now() - explaining_from).count(), given);
        }
        text += '}';

        prediction_row row;
        row.id = id;
        row.model = m->name;
        row.version = version;
        row.arm = fallback && !version ? "fallback" : pick.arm;
        row.entity = instances[i].entity;
        row.time = answered_at;
        if (source != "none") row.value = ans.value;  // "none" answered nothing
        if (ans.task != ml::task_kind::regression) {
            row.label = ans.label;
            row.probabilities.assign(ans.probabilities);
            if (!version && ans.classes) row.class_names = *ans.classes;
        }
        row.fallback = fallback;
        row.reason = fallback ? reasons[i] + " -> " + source : "";
        row.latency_us = static_cast<std::int64_t>(latency_ms * 1000);
        row.features_hash = instances[i].features_hash;
        row.decision = ans.decision;
        rows.push_back(std::move(row));

        if (any_shadow) shadow_ids.push_back(id);
    }
    a.prediction_log().append(std::move(rows));
    if (batch) text += "]}";
    // Most models have no shadow: nothing below is paid for per request.
    if (!any_shadow) return json_response(std::move(text));
    // Shadow arms: scored and logged on the same request, never returned, as
    // one task per arm. They yield to live traffic: when the prediction queue
    // is half full they are skipped, and counted as dropped log entries; they
    // run under a key of their own on at most a quarter of the pool's
    // threads (a hung shadow held all that live's key may, and live's waits
    // were held against it: the supervisor disabled the healthy live); and
    // what has not begun within ten deadlines (at least 1 s: they wait
    // behind live work) is dropped, counted (a stop waited out hundreds of
    // queued 500 ms shadow calls).
    const std::string shadow_key = m->name + "\x1f" + "shadow";
    const std::size_t shadow_threads = std::max<std::size_t>(1, a.predict_pool().threads() / 4);
    const auto shadow_by =
        steady::now() + std::chrono::microseconds(static_cast<std::int64_t>(
                            std::max(1000.0, 10 * m->definition.deadline_ms) * 1000));
    for (const auto& arm : m->arms) {
        if (!arm.shadow || !arm.version) continue;
        auto* log = &a.prediction_log();
        bool room = a.predict_pool().queued() * 2 < a.options().predict_queue;
        // A shadow trained to compute an aggregate otherwise reads its own
        // values here, off the request's path, within its own time.
        std::vector<ml::aggregate_spec> own_specs;
        if (m->computes_own_aggregates(arm.version->version))
            own_specs = own_aggregate_specs(*m, *arm.version);
        bool accepted =
            room &&
            a.predict_pool().submit(
                [version = arm.version, shared = share(), arm_name = arm.name, model_name = m->name,
                 log, ids = shadow_ids, answered_at, shadow_by, own_specs = std::move(own_specs),
                 model = m, readers = &a.readers(), metrics = &a.metrics()] {
                    leased_reader reader(*readers);
                    reader.until = shadow_by;
                    // Its reads are counted with the requests' (whenever it ends).
                    struct counted {
                        app_metrics* metrics;
                        leased_reader& reader;
                        std::uint64_t whole = 0, cut = 0;
                        ~counted() {
                            if (whole + cut)
                                metrics->record_aggregates(whole, cut, reader.read_seconds);
                        }
                    } reads{metrics, reader};
                    for (std::size_t i = 0; i < shared->size(); ++i) {
                        if (steady::now() > shadow_by) {
                            log->count_dropped(shared->size() - i);
                            return;
                        }
                        const predict_instance& inst = (*shared)[i];
                        // The request's history not read in time: nothing to
                        // score it on.
                        if (inst.aggregates && !inst.aggregates->complete) {
                            log->count_dropped(1);
                            continue;
                        }
                        std::optional<predict_instance::version_values> own;
                        if (!own_specs.empty()) {
                            auto read = read_own_values(reader, model->definition.aggregates,
                                                        own_specs, version->version, inst);
                            if (read && *read) ++(reader.cut ? reads.cut : reads.whole);
                            if (!read || (*read && reader.cut)) {
                                log->count_dropped(1);
                                continue;
                            }
                            own = std::move(*read);
                        }
                        auto t0 = steady::now();
                        prediction_row s;
                        s.id = ids[i];  // the log appends "-" + arm to a shadow row's id
                        s.model = model_name;
                        s.version = version->version;
                        s.arm = arm_name;
                        s.shadow = true;
                        s.entity = inst.entity;
                        // The request's time, as its live entry: a shadow entry is
                        // found with its answer (the id's time) and joined alike.
                        s.time = answered_at;
                        s.features_hash = inst.features_hash;
                        // Counted as a served version's are, so that the supervisor
                        // takes a failing shadow out of service too.
                        version->counters.requests.fetch_add(1, std::memory_order_relaxed);
                        const auto& rec = own ? own->record : inst.record;
                        if (version->drift) version->drift->observe(rec);
                        try {
                            ml::answer sa = ml::predict_with(*version, rec);
                            if (version->drift) {
                                version->drift->observe_prediction(ml::prediction_output(
                                    version->artifact->task, sa.value, sa.probabilities, sa.label));
                            }
                            s.value = sa.value;
                            if (!sa.label.empty()) s.label = sa.label;
                            s.probabilities.assign(sa.probabilities);
                            s.decision = sa.decision;
                        } catch (const ml::input_out_of_range& e) {
                            s.fallback = true;
                            s.reason = std::string("input_out_of_range: ") + e.what();
                        } catch (const std::exception& e) {
                            version->counters.errors.fetch_add(1, std::memory_order_relaxed);
                            s.fallback = true;
                            s.reason = std::string("model_error: ") + e.what();
                        }
                        s.latency_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                           steady::now() - t0)
                                           .count();
                        log->append(std::move(s));
                    }
                },
                shadow_key, nullptr, shadow_threads);
        if (!accepted) log->count_dropped(instances.size());
    }
    return json_response(std::move(text));
}

}  // namespace kennel

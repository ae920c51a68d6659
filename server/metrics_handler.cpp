// GET /metrics: Kennel's counters and gauges in the Prometheus text format
// (version 0.0.4), for a monitoring system to scrape. The same numbers as
// /v1/overview and /v1/serving; a counter of a serving version starts again
// from 0 when that version is loaded anew (Prometheus treats it as a reset).
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ml/drift.h"
#include "ml/predict_pool.h"
#include "ml/predict_slots.h"
#include "ml/prediction_log.h"
#include "ml/serving.h"
#include "ml/supervisor.h"
#include "ml/training_worker.h"
#include "server/access_log.h"
#include "server/app.h"
#include "server/app_metrics.h"
#include "server/auth.h"
#include "server/handlers.h"
#include "server/http_stats.h"
#include "store/json_writer.h"
#include "store/latency_histogram.h"
#include "store/time_util.h"

#include "kennel_version.h"

namespace kennel {
namespace {

// A serving version's drift over its model's window, once the supervisor
// has started one and something was counted in it.
struct drift_row {
    std::string model, version, role;
    ml::drift_report report;
};

std::vector<drift_row> drift_windows(
    const std::vector<std::shared_ptr<const ml::model_serving>>& models) {
    std::vector<drift_row> out;
    for (const auto& m : models) {
        ml::for_each_served_version(*m, [&](const ml::loaded_version& v, const std::string& role) {
            if (!v.drift || role == "previous") return;
            auto window = v.drift->recent();
            if (!window || window->counts.observed == 0) return;
            out.push_back({m->name, std::to_string(v.version), role,
                           ml::compare_to_profile(v.drift->reference(), window->counts)});
        });
    }
    return out;
}

class exposition {
public:
    // Starts a metric family: its HELP and TYPE lines.
    exposition& family(std::string_view name, std::string_view type, std::string_view help) {
        name_ = name;
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += help;
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
        return *this;
    }

    // A sample of the current family: labels as name="value" pairs.
    exposition& sample(
        double value,
        std::initializer_list<std::pair<std::string_view, std::string_view>> labels = {}) {
        return sample_of("", value, labels);
    }

    // A sample named the family's name and `suffix`, as a histogram's
    // _bucket, _sum and _count.
    using label = std::pair<std::string_view, std::string_view>;
    exposition& sample_of(std::string_view suffix, double value,
                          std::initializer_list<label> labels = {}) {
        return sample_of(suffix, value, std::span<const label>(labels.begin(), labels.size()));
    }

    exposition& sample_of(std::string_view suffix, double value, std::span<const label> labels) {
        out_ += name_;
        out_ += suffix;
        if (labels.size()) {
            out_ += '{';
            bool first = true;
            for (const auto& [k, v] : labels) {
                if (!first) out_ += ',';
                first = false;
                out_ += k;
                out_ += "=\"";
                for (char ch : v) {  // the format's three escapes
                    if (ch == '\\') {
                        out_ += "\\\\";
                    } else if (ch == '"') {
                        out_ += "\\\"";
                    } else if (ch == '\n') {
                        out_ += "\\n";
                    } else {
                        out_ += ch;
                    }
                }
                out_ += '"';
            }
            out_ += '}';
        }
        out_ += ' ';
        if (std::isfinite(value) && value == std::floor(value) && std::fabs(value) < 1e15) {
            out_ += std::to_string(static_cast<std::int64_t>(value));  // counts read as counts
        } else {
            std::string number;
            json_writer(number).number(value);
            out_ += number == "null" ? "NaN" : number;
        }
        out_ += '\n';
        return *this;
    }

    // A histogram's series for one set of labels: a _bucket per bound (and
    // +Inf), _sum and _count.
    exposition& histogram(std::vector<label> labels, const latency_histogram::counts& c) {
        static const std::array<std::string, latency_histogram::buckets> le = [] {
            std::array<std::string, latency_histogram::buckets> out;
            for (std::size_t i = 0; i < latency_histogram::bounds.size(); ++i) {
                char text[32];  // "0.0005" and "1", as the client libraries write them
                std::snprintf(text, sizeof text, "%g", latency_histogram::bounds[i]);
                out[i] = text;
            }
            out.back() = "+Inf";
            return out;
        }();
        labels.emplace_back("le", "");
        for (std::size_t i = 0; i < c.cumulative.size(); ++i) {
            labels.back().second = le[i];
            sample_of("_bucket", static_cast<double>(c.cumulative[i]), labels);
        }
        labels.pop_back();
        sample_of("_sum", c.seconds_sum, labels);
        return sample_of("_count", static_cast<double>(c.count()), labels);
    }

    std::string take() { return std::move(out_); }

private:
    std::string out_;
    std::string name_;
};

double num(std::uint64_t v) {
    return static_cast<double>(v);
}

// Requests by route and status code, their durations, and the access log.
void http_metrics(exposition& e, const app& a) {
    const auto routes = a.request_stats().snapshot();
    e.family("kennel_http_requests_total", "counter",
             "HTTP requests answered, by route and status code (route \"(unmatched)\": no route "
             "took the request).");
    for (const auto& r : routes) {
        for (const auto& c : r.codes)
            e.sample(num(c.count),
                     {{"method", r.label.method}, {"route", r.label.pattern}, {"code", c.code}});
    }
    e.family("kennel_http_request_duration_seconds", "histogram",
             "Time from a request's first byte to its answer made, by route.");
    for (const auto& r : routes)
        e.histogram({{"method", r.label.method}, {"route", r.label.pattern}}, r.latency);
    if (const access_log* log = a.request_log()) {
        const access_log_stats s = log->stats();
        e.family("kennel_access_log_lines_total", "counter",
                 "Access log lines, by outcome: dropped when its queue was full or a write "
                 "failed.")
            .sample(num(s.written), {{"outcome", "written"}})
            .sample(num(s.dropped), {{"outcome", "dropped"}});
    }
}

// The process metrics every Prometheus client library exports by these
// names, read from the kernel; a value that cannot be read is left out.
void process_metrics(exposition& e, micros started_at) {
    e.family("process_start_time_seconds", "gauge",
             "Start time of the process since the Unix epoch in seconds.")
        .sample(static_cast<double>(started_at) / 1e6);
    rusage use{};
    if (::getrusage(RUSAGE_SELF, &use) == 0) {
        const auto seconds = [](const timeval& t) {
            return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
        };
        e.family("process_cpu_seconds_total", "counter",
                 "Total user and system CPU time spent in seconds.")
            .sample(seconds(use.ru_utime) + seconds(use.ru_stime));
    }
    std::ifstream statm("/proc/self/statm");
    std::uint64_t size_pages = 0, resident_pages = 0;
    if (statm >> size_pages >> resident_pages) {
        const auto page = static_cast<double>(::sysconf(_SC_PAGESIZE));
        e.family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.")
            .sample(static_cast<double>(size_pages) * page);
        e.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
            .sample(static_cast<double>(resident_pages) * page);
    }
    std::error_code ec;
    std::size_t fds = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
        ++fds;
    if (!ec && fds > 0) {
        // Less the one the count itself held open.
        e.family("process_open_fds", "gauge", "Number of open file descriptors.")
            .sample(static_cast<double>(fds - 1));
    }
    rlimit files{};
    if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY) {
        e.family("process_max_fds", "gauge", "Maximum number of open file descriptors.")
            .sample(static_cast<double>(files.rlim_cur));
    }
}

}  // namespace

http_response get_metrics(app& a, const http_request&) {
    exposition e;
    const writer_stats w = a.writer().stats();
    const rate_snapshot r = a.metrics().sample(w.facts_stored);
    const ml::worker_state t = a.trainer().state();
    const auto sup = a.supervisor_state();
    const auto log = a.prediction_log().stats();

    e.family("kennel_uptime_seconds", "gauge", "Seconds since the server started.")
        .sample(static_cast<double>(now_micros() - a.started_at()) / 1e6);
    e.family("kennel_build_info", "gauge", "Always 1: the labels say which build is running.")
        .sample(1, {{"version", KENNEL_VERSION}, {"commit", KENNEL_GIT_COMMIT}});
    process_metrics(e, a.started_at());
    e.family("kennel_facts_total", "counter", "Facts written, by outcome.")
        .sample(num(w.facts_stored), {{"outcome", "stored"}})
        .sample(num(w.facts_duplicate), {{"outcome", "duplicate"}})
        .sample(num(w.facts_rejected), {{"outcome", "rejected"}});
    e.family("kennel_writer_commits_total", "counter", "Transactions the writer committed.")
        .sample(num(w.commits));
    e.family("kennel_writer_failed_commits_total", "counter", "Writer transactions that failed.")
        .sample(num(w.failed_commits));
    e.family("kennel_writer_refused_total", "counter",
             "Writes refused with 503: the queue was full.")
        .sample(num(w.refused_full));
    e.family("kennel_http_parked_connections", "gauge",
             "Connections waiting off the HTTP worker threads: idle keep-alive ones and those "
             "with a request still arriving.")
        .sample(num(a.parked_connections()));
    e.family("kennel_http_parked_partial_requests", "gauge",
             "Parked connections holding part of a request still arriving.")
        .sample(num(a.parked_partial_requests()));
    e.family("kennel_auth_password_checks_refused_total", "counter",
             "Sign-ins answered 503: too many password checks were running at once.")
        .sample(num(a.auth().password_checks_refused()));
    e.family("kennel_writer_queue", "gauge", "Facts and tasks waiting for the writer.")
        .sample(num(w.pending));
    e.family("kennel_writer_checkpoints_total", "counter", "WAL checkpoints run.")
        .sample(num(w.checkpoints));

    http_metrics(e, a);

    e.family("kennel_predictions_total", "counter", "Predictions answered (fallbacks included).")
        .sample(num(r.predictions_total));
    e.family("kennel_prediction_latency_recent_seconds", "gauge",
             "Latency quantiles over the last 4096 predictions.");
    if (r.predictions_total) {
        e.sample(r.p50_ms / 1000, {{"quantile", "0.5"}})
            .sample(r.p99_ms / 1000, {{"quantile", "0.99"}});
    }
    e.family("kennel_prediction_fallback_recent_ratio", "gauge",
             "Share of fallbacks over the last 4096 predictions.");
    if (r.predictions_total) e.sample(r.fallback_share);

    // Per model and serving version.
    const auto models = a.serving().all();
    e.family("kennel_model_serving_version", "gauge",
             "The version answering a model's live traffic (0: none, see kennel_model_problem).");
    for (const auto& m : models)
        e.sample(m->answering() ? static_cast<double>(m->answering()->version) : 0,
                 {{"model", m->name}});
    e.family("kennel_prediction_duration_seconds", "histogram",
             "Time a model's predict requests took to compute their answers (one instance or "
             "a batch), from the request read to its answers made, by model.");
    // From a model's first prediction on: 18 lines for each model never
    // asked (1,253 models wrote 2 MB a scrape, most of it zeros).
    for (const auto& m : models) {
        const auto counts = m->traffic->latency.read();
        if (counts.count() > 0) e.histogram({{"model", m->name}}, counts);
    }
    e.family("kennel_model_problem", "gauge",
             "1 when a model has no usable live version, by reason.");
    for (const auto& m : models) {
        if (!m->live_problem.empty())
            e.sample(1, {{"model", m->name}, {"problem", m->live_problem}});
    }
    for (const auto& [name, why] : a.serving().refresh_failures())
        e.sample(1, {{"model", name}, {"problem", "refresh_failed"}});
    struct counter_family {
        const char* name;
        const char* help;
        std::atomic<std::uint64_t> ml::version_counters::*field;
    };
    const counter_family counters[] = {
        {"kennel_version_requests_total", "Predictions asked of a serving version.",
         &ml::version_counters::requests},
        {"kennel_version_errors_total", "Predictions a serving version failed.",
         &ml::version_counters::errors},
        {"kennel_version_deadline_misses_total",
         "Predictions a serving version did not finish in time.",
         &ml::version_counters::deadline_misses},
        {"kennel_version_fallbacks_total",
         "Predictions of a serving version answered by a fallback.",
         &ml::version_counters::fallbacks},
    };
    for (const auto& c : counters) {
        e.family(c.name, "counter", c.help);
        for (const auto& m : models) {
            ml::for_each_served_version(
                *m, [&](const ml::loaded_version& v, const std::string& role) {
                    const std::string version = std::to_string(v.version);
                    e.sample(num((v.counters.*c.field).load(std::memory_order_relaxed)),
                             {{"model", m->name}, {"version", version}, {"role", role}});
                });
        }
    }

    // Drift over each model's drift window (ml/drift.h), once the supervisor
    // has started one for the version.
    e.family("kennel_feature_drift_psi", "gauge",
             "Population stability index of a field's served values against the version's "
             "training rows, over the model's drift window.");
    const std::vector<drift_row> drift = drift_windows(models);
    for (const auto& d : drift) {
        for (const auto& f : d.report.fields) {
            e.sample(f.psi, {{"model", d.model}, {"version", d.version}, {"role", d.role},
                             {"field", f.field}});
        }
    }

    e.family("kennel_prediction_drift_psi", "gauge",
             "Population stability index of a version's answers against its answers on the "
             "holdout, over the model's drift window.");
    for (const auto& d : drift) {
        if (d.report.predicted && d.report.prediction) {
            e.sample(d.report.prediction->psi,
                     {{"model", d.model}, {"version", d.version}, {"role", d.role}});
        }
    }

    // The indices above mean little over a few requests: an alert rule can
    // ask for as many as the policy's min_drift_samples does.
    e.family("kennel_drift_window_requests", "gauge",
             "Requests counted in the drift window the feature indices cover.");
    for (const auto& d : drift) {
        e.sample(num(d.report.observed),
                 {{"model", d.model}, {"version", d.version}, {"role", d.role}});
    }
    e.family("kennel_drift_window_answers", "gauge",
             "Answers counted in the drift window the prediction index covers.");
    for (const auto& d : drift) {
        e.sample(num(d.report.predicted),
                 {{"model", d.model}, {"version", d.version}, {"role", d.role}});
    }

    e.family("kennel_predict_pool_queued", "gauge", "Prediction tasks waiting for the pool.")
        .sample(num(a.predict_pool().queued()));
    e.family("kennel_predict_pool_refused_total", "counter",
             "Predict requests refused with 503: the pool's queue was full.")
        .sample(num(a.predict_pool().refused()));
    e.family("kennel_predict_slot_waits_total", "counter",
             "Predict requests that waited for a slot.")
        .sample(num(a.predict_slots().waited()));
    e.family("kennel_predict_slot_gave_up_total", "counter",
             "Predict requests that stopped waiting for a slot and went on without one.")
        .sample(num(a.predict_slots().gave_up()));
    e.family("kennel_explanations_total", "counter",
             "Answers asked to be explained (\"explain\": true), by whether an explanation was "
             "given (not: a constant answered, the request's time ran out, an old version).")
        .sample(num(a.metrics().explained()), {{"outcome", "given"}})
        .sample(num(a.metrics().not_explained()), {{"outcome", "unavailable"}});
    e.family("kennel_explanation_seconds_total", "counter", "Time spent explaining answers.")
        .sample(a.metrics().explanation_seconds());
    e.family("kennel_explain_refused_total", "counter",
             "Predict requests asking for explanations refused with 503: --explain-concurrency "
             "were explaining.")
        .sample(num(a.explain_slots().gave_up()));
    e.family("kennel_aggregate_reads_total", "counter",
             "Instances whose aggregate features were computed from the entity's history, by "
             "whether the read was whole or cut at the request's deadline.")
        .sample(num(a.metrics().aggregates_complete()), {{"outcome", "complete"}})
        .sample(num(a.metrics().aggregates_cut()), {{"outcome", "cut"}});
    e.family("kennel_aggregate_read_seconds_total", "counter",
             "Time spent reading entities' histories for aggregate features.")
        .sample(a.metrics().aggregate_seconds());
    e.family("kennel_prediction_log_entries_total", "counter",
             "Prediction log entries, by what became of them.")
        .sample(num(log.logged), {{"outcome", "logged"}})
        .sample(num(log.dropped), {{"outcome", "dropped"}});
    e.family("kennel_prediction_log_expired_entries_total", "counter",
             "Logged predictions deleted by retention (--prediction-log-days) since start.")
        .sample(num(log.expired));
    e.family("kennel_prediction_log_queued", "gauge",
             "Prediction log entries waiting to be written.")
        .sample(num(log.queued));

    // Outcomes that partition the jobs, so that sum() counts each once ("run"
    // counted the failed ones too).
    // A cancel is a person's choice and an interrupted job is requeued:
    // neither is a failure worth an alert.
    e.family("kennel_training_jobs_total", "counter",
             "Training jobs the worker ran, by how they ended (failed: failed or timed out; "
             "interrupted: by a stop, and queued again).")
        .sample(num(t.jobs_run - t.jobs_failed), {{"outcome", "succeeded"}})
        .sample(num(t.jobs_failed - t.jobs_cancelled - t.jobs_interrupted), {{"outcome", "failed"}})
        .sample(num(t.jobs_cancelled), {{"outcome", "cancelled"}})
        .sample(num(t.jobs_interrupted), {{"outcome", "interrupted"}});
    e.family("kennel_training_triggers_total", "counter", "Retrain triggers that queued a job.")
        .sample(num(t.triggers_fired));
    e.family("kennel_training_running", "gauge", "1 while a training job runs.")
        .sample(t.job ? 1 : 0);
    e.family("kennel_supervisor_ticks_total", "counter", "Supervisor checks.")
        .sample(num(sup.ticks));
    e.family("kennel_supervisor_actions_total", "counter",
             "Supervisor actions since start, by kind: disable (a version taken out of "
             "service), drift (drift reported) or canary (a canary decided or ended).");
    for (const char* kind : {"disable", "drift", "canary"}) {
        auto it = sup.actions_total.find(kind);
        e.sample(num(it == sup.actions_total.end() ? 0 : it->second), {{"kind", kind}});
    }

    http_response out;
    out.content_type = "text/plain; version=0.0.4; charset=utf-8";
    out.body = e.take();
    return out;
}

}  // namespace kennel

// Handlers for models, training jobs, versions, aliases and deployments.
#include <charconv>
#include <set>
#include <nlohmann/json.hpp>

#include "ml/definition_json.h"
#include "ml/serving.h"
#include "ml/training_worker.h"
#include "server/app.h"
#include "server/errors.h"
#include "server/handlers.h"
#include "server/json_body.h"
#include "server/preconditions.h"
#include "store/registry.h"

namespace kennel {
namespace {

using json = nlohmann::json;

json parse_stored(const std::string& text) {
    json j = json::parse(text, nullptr, false);
    return j.is_discarded() ? json(nullptr) : j;
}

json time_or_null(const std::optional<micros>& t) {
    return t ? json(format_rfc3339(*t)) : json(nullptr);
}

template <class T>
json opt(const std::optional<T>& v) {
    return v ? json(*v) : json(nullptr);
}

}  // namespace

status model_name_problem() {
    return invalid("name",
                   "a model name is 1-64 letters, digits, '_', '-' or '.', not \".\" or \"..\"");
}

namespace {

status alias_name_problem() {
    return invalid("alias",
                   "an alias is 1-64 letters, digits, '_', '-' or '.', not \".\" or \"..\"");
}

json job_json(const job_row& j) {
    return {{"id", j.id},
            {"model", j.model},
            {"revision", j.revision},
            {"state", job_state_name(j.state)},
            {"trigger", j.trigger},
            {"requested_by", j.requested_by},
            {"created_at", format_rfc3339(j.created_at)},
            {"started_at", time_or_null(j.started_at)},
            {"finished_at", time_or_null(j.finished_at)},
            {"progress", j.progress},
            {"message", j.message},
            {"error", opt(j.error)},
            {"cancel_requested", j.cancel_requested},
            {"requeued_from", opt(j.requeued_from)},
            {"version", opt(j.version)}};
}

// `whole`: a version asked for by its number. Lists, which the admin page
// reads every few seconds, leave out the large parts: the features' drift
// profile (a few KB a version) and a calibration's isotonic points and its
// holdout bins after (equal to metrics.reliability): 11 of an isotonic
// version's 16 KB, a 1 MB list at 61 versions.
json version_json(const version_row& v, const std::vector<alias_row>& aliases,
                  const std::set<std::int64_t>& disabled, bool whole) {
    json features = parse_stored(v.features);
    if (!whole && features.is_object()) features.erase("profile");
    json metrics = parse_stored(v.metrics);
    if (!whole && metrics.is_object() && metrics.contains("calibration") &&
        metrics["calibration"].is_object()) {
        json& cal = metrics["calibration"];
        cal.erase("points");
        if (cal.contains("after") && cal["after"].is_object()) cal["after"].erase("reliability");
    }
    // Training rows, kept for explanations: their count, not the rows.
    if (features.is_object() && features.contains("background")) {
        const json& rows = features["background"];
        features["background_rows"] = rows.is_array() ? rows.size() : 0;
        features.erase("background");
    }
    json names = json::array();
    for (const auto& a : aliases) {
        if (a.version == v.version) names.push_back(a.alias);
    }
    return {{"model", v.model},
            {"version", v.version},
            {"revision", v.revision},
            {"job", opt(v.job)},
            {"algorithm", v.algorithm},
            {"params", parse_stored(v.params)},
            {"artifact",
             {{"sha256", v.artifact_sha256},
              {"bytes", v.artifact_bytes},
              // Retention removed it: the version can no longer serve.
              {"removed_at", v.artifact_removed_at ? json(format_rfc3339(*v.artifact_removed_at))
                                                   : json(nullptr)}}},
            {"snapshot", parse_stored(v.snapshot)},
            {"metrics", metrics},
            {"baseline_metrics", parse_stored(v.baseline_metrics)},
            {"baseline", parse_stored(v.baseline)},
            {"gate", parse_stored(v.gate)},
            {"features", features},
            {"timings", parse_stored(v.timings)},
            {"status", v.status},  // the gate's verdict when trained; aliases say what serves
            {"disabled", disabled.count(v.version) > 0},
            {"aliases", names},
            {"created_at", format_rfc3339(v.created_at)}};
}

}  // namespace

http_response put_model(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    if (!valid_name(name)) return error_response(model_name_problem());
    if (std::string mt = media_type(req); !mt.empty() && mt != "application/json") {
        return error_response(status(error_kind::unsupported_media,
                                     "send the definition as application/json", "Content-Type"));
    }
    if (req.body.empty()) return error_response(empty_body("the definition (a JSON object)"));
    auto pre = read_preconditions(req);
    if (!pre) return error_response(pre.error());
    parsed_definition p = parse_definition(req.body);
    // Data problems are reported together with syntax problems, as long as
    // the body was a JSON object at all. (A text that does not parse names
    // its field, 1e999's or a repeated key's, from parse_json_input.)
    if (p.object) {
        check_new_definition(p.definition, p.errors);
        auto conn = a.readers().acquire();
        check_definition_against_data(*conn, p.definition, p.errors);
    }
    if (!p.errors.empty()) return json_response(field_errors_json(p.errors), 400);
    std::string canonical = canonical_definition_json(p.definition);
    put_model_result r;
    std::optional<std::int64_t> carried;  // a queued job moved to the new revision
    std::string author = req.actor.empty() ? "api" : req.actor;
    std::optional<std::string> etag_now;  // the definition's, when a condition failed
    status s = a.writer().run(
        [&](connection& c) {
            if (!pre->empty()) {
                auto m = get_model(c, name);
                if (m) etag_now = revision_etag(m->current_revision);
                if (status held =
                        check_preconditions(*pre, etag_now, "the definition of model " + name);
                    !held)
                    return held;
            }
            if (status st = refuse_if_archived(c, name, "change its definition"); !st) return st;
            r = put_model(c, name, canonical, author);
            if (r.new_revision) carried = carry_queued_jobs_to_current_revision(c, name);
            return status::ok();
        },
        a.write_timeout());
    if (!s) return with_etag(error_response(s), etag_now);
    a.refresh_model(name);
    if (carried) a.trainer().wake();
    json out = {{"model", name},
                {"revision", r.revision},
                {"created", r.created_model},
                {"new_revision", r.new_revision},
                {"queued_job", carried ? json(*carried) : json(nullptr)},
                {"definition", json::parse(canonical)}};
    http_response answer = json_response(dump_json(out), r.created_model ? 201 : 200);
    set_etag(answer, revision_etag(r.revision));
    if (r.created_model) answer.headers.emplace_back("Location", "/v1/models/" + name);
    return answer;
}

// The model's archive, or null while it is in service.
json archive_json(connection& c, const model_row& m) {
    if (!m.archived_at) return nullptr;
    auto e = current_archive(c, m.name);
    if (!e) return {{"at", format_rfc3339(*m.archived_at)}, {"by", nullptr}, {"reason", nullptr}};
    return {{"at", format_rfc3339(e->time)}, {"by", e->actor}, {"reason", e->reason}};
}

http_response get_models(app& a, const http_request& req) {
    // ?archived=true lists the archived models, all both; by default those in service.
    model_filter filter = model_filter::in_service;
    if (auto v = req.query_value("archived")) {
        if (*v == "true") {
            filter = model_filter::archived;
        } else if (*v == "all") {
            filter = model_filter::all;
        } else if (*v != "false") {
            return error_response(invalid("archived", "must be true, false or all"));
        }
    }
    auto conn = a.readers().acquire();
    json out = json::array();
    const auto summaries = model_summaries(*conn);
    const model_summary none;
    for (const model_row& m : list_models(*conn, filter)) {
        const auto found = summaries.find(m.name);
        const model_summary& sum = found != summaries.end() ? found->second : none;
        json aliases = json::object();
        for (const auto& [alias, version] : sum.aliases) aliases[alias] = version;
        out.push_back({{"name", m.name},
                       {"task", sum.task},
                       {"revision", m.current_revision},
                       {"created_at", format_rfc3339(m.created_at)},
                       {"aliases", aliases},
                       {"versions", sum.versions},
                       {"last_job", sum.last_job ? job_json(*sum.last_job) : json(nullptr)},
                       {"archived", archive_json(*conn, m)}});
    }
    return json_response(dump_json({{"models", out}}));
}

http_response get_model(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    auto conn = a.readers().acquire();
    auto m = get_model(*conn, name);
    if (!m) return error_response(no_model_named(name));
    json aliases = json::object();
    for (const auto& al : list_aliases(*conn, name)) aliases[al.alias] = al.version;
    auto jobs = list_jobs(*conn, name, 5);
    json recent = json::array();
    for (const auto& j : jobs) recent.push_back(job_json(j));
    // Where POST …/rollback would move live now, by the server's own rule
    // (the admin page rebuilt it from the newest 500 moves, and without the
    // task rule, and offered rollbacks the server then refused).
    json rollback = {{"to", nullptr}, {"passed_over_task", false}, {"passed_over_removed", false}};
    // An archived model takes no rollback.
    if (aliases.contains("live") && !m->archived_at) {
        const ml::earlier_live back =
            ml::earlier_live_version(*conn, name, aliases["live"].get<std::int64_t>());
        rollback = {{"to", back.version ? json(*back.version) : json(nullptr)},
                    {"passed_over_task", back.passed_over_task},
                    {"passed_over_removed", back.passed_over_removed}};
    }
    json out = {{"name", m->name},
                {"revision", m->current_revision},
                {"created_at", format_rfc3339(m->created_at)},
                {"definition", parse_stored(m->definition)},
                {"aliases", aliases},
                {"versions", count_versions(*conn, name)},
                {"rollback", rollback},
                {"recent_jobs", recent},
                {"archived", archive_json(*conn, *m)}};
    // The newest 100 archives and restores, oldest first, and how many there
    // are (2,036 of them made the model 206 KB, read by the page every 2 s).
    json history = json::array();
    for (const auto& e : list_model_events(*conn, name)) {
        history.push_back({{"id", e.id},
                           {"event", e.event},
                           {"time", format_rfc3339(e.time)},
                           {"actor", e.actor},
                           {"reason", e.reason}});
    }
    out["archive_history"] = std::move(history);
    out["archive_events"] = count_model_events(*conn, name);
    // The ETag names the definition's revision: what PUT replaces.
    http_response answer = json_response(dump_json(out));
    set_etag(answer, revision_etag(m->current_revision));
    return answer;
}

http_response get_model_revisions(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    auto conn = a.readers().acquire();
    auto model = get_model(*conn, name);
    if (!model) return error_response(no_model_named(name));
    auto asked = query_page(req, 100, 1000);
    if (!asked) return error_response(asked.error());
    auto revisions = list_revisions(*conn, name, *asked);
    json next =
        next_before(revisions, *asked, false, [](const revision_row& r) { return r.revision; });
    json out = json::array();
    for (const auto& r : revisions) {
        out.push_back({{"revision", r.revision},
                       {"definition", parse_stored(r.definition)},
                       {"created_at", format_rfc3339(r.created_at)},
                       {"author", r.author}});
    }
    // Revisions are numbered from 1 and never removed: the newest is the count.
    return json_response(dump_json({{"model", name},
                                    {"count", model->current_revision},
                                    {"revisions", out},
                                    {"next_before", next}}));
}

http_response post_model_train(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    auto body = json_object_body(req, true);
    if (!body) return error_response(body.error());
    if (status s = only_known_fields(*body, "", {"reason"}); !s) return error_response(s);
    // Optional, but a reason of another type is an error, as for cancel.
    auto reason_field = optional_reason(*body);
    if (!reason_field) return error_response(reason_field.error());
    const std::string reason = std::move(*reason_field);
    {
        auto conn = a.readers().acquire();
        if (!get_model(*conn, name)) return error_response(no_model_named(name));
    }
    std::string actor = actor_of(req);
    std::int64_t id = 0;
    bool existing = false;
    status s = a.writer().run(
        [&](connection& c) {
            if (status st = refuse_if_archived(c, name, "train it"); !st) return st;
            // One queued job per model and revision is enough: a second
            // request joins it. A job of an older revision would train the
            // definition this request was made to replace.
            if (auto queued = queued_job_of_current_revision(c, name)) {
                id = *queued;
                existing = true;
                return status::ok();
            }
            id = insert_job(c, name, "manual", actor);
            append_job_log(c, id, "info", "queued by " + actor + (reason.empty() ? "" : ": " + reason));
            return status::ok();
        },
        a.write_timeout());
    if (!s) return error_response(s);
    a.trainer().wake();
    const std::string url = "/v1/jobs/" + std::to_string(id);
    json out = {{"job", id},
                {"model", name},
                {"state", "queued"},
                {"already_queued", existing},
                {"url", url}};
    http_response answer = json_response(dump_json(out), 202);
    answer.headers.emplace_back("Location", url);  // where the job's progress is read
    return answer;
}

// How recent a logged prediction makes archiving ask for "force": an app
// still asking the model would get 404s from then on.
constexpr micros recent_traffic = 10LL * 60 * 1000 * 1000;

http_response post_model_archive(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    auto body = reasoned_body(req, {"force"});
    if (!body) return error_response(body.error());
    bool force = false;
    if (auto f = body->find("force"); f != body->end()) {
        if (!f->is_boolean()) return error_response(invalid("force", "must be true or false"));
        force = f->get<bool>();
    }
    const std::string reason = (*body)["reason"].get<std::string>();
    {
        auto conn = a.readers().acquire();
        auto m = get_model(*conn, name);
        if (!m) return error_response(no_model_named(name));
        // An archived model answers no predictions: one still asked would
        // start failing its app. The log says whether it was asked lately.
        if (!m->archived_at && !force) {
            // The log, and what serving saw: the log is written a few ms
            // later, and drops entries when its queue is full.
            auto last = last_prediction_time(*conn, name);
            if (auto served = a.serving().get(name)) {
                const micros seen = served->traffic->last_answered.load(std::memory_order_relaxed);
                if (seen > 0 && (!last || seen > *last)) last = seen;
            }
            if (last && now_micros() - *last < recent_traffic) {
                return error_response(status(
                    error_kind::conflict,
                    "model " + name + " answered a prediction at " + format_rfc3339(*last) +
                        ", within the last 10 minutes: an app may still ask it, and would get "
                        "404 once it is archived; send \"force\": true to archive it anyway",
                    "force"));
            }
        }
    }
    const std::string actor = actor_of(req);
    archive_effects effects;
    auto changed = write_change(a, [&](connection& c) {
        effects = {};
        return archive_model(c, name, actor, reason, effects);
    });
    if (!changed) return error_response(changed.error());
    // The running job stops now, not at its next look at the database.
    for (std::int64_t id : effects.cancelled_jobs) a.trainer().cancel(id);
    a.refresh_model(name);
    json out = {{"model", name}, {"archived", true}, {"changed", *changed}};
    if (*changed) {
        out["actor"] = actor;
        out["reason"] = reason;
        out["cancelled_jobs"] = effects.cancelled_jobs;
        out["ended_experiment"] =
            effects.ended_experiment ? json(*effects.ended_experiment) : json(nullptr);
    }
    return json_response(dump_json(out));
}

http_response post_model_restore(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    auto body = reasoned_body(req);
    if (!body) return error_response(body.error());
    const std::string reason = (*body)["reason"].get<std::string>();
    const std::string actor = actor_of(req);
    auto changed =
        write_change(a, [&](connection& c) { return restore_model(c, name, actor, reason); });
    if (!changed) return error_response(changed.error());
    a.refresh_model(name);
    json out = {{"model", name}, {"archived", false}, {"changed", *changed}};
    if (*changed) {
        out["actor"] = actor;
        out["reason"] = reason;
    }
    auto m = a.serving().get(name);
    out["serving_version"] = m && m->answering() ? json(m->answering()->version) : json(nullptr);
    return json_response(dump_json(out));
}

namespace {

// ?limit= (1-1000, 100), ?before= (a job id: older ones), ?state= (names,
// comma-separated). The list was the newest 100, whatever was asked: the
// admin page lost older jobs and, behind 100 queued ones, the running one.
http_response jobs_page(connection& c, std::optional<std::string> model, const http_request& req) {
    job_filter f;
    f.model = std::move(model);
    auto asked = query_page(req, 100, 1000);
    if (!asked) return error_response(asked.error());
    f.limit = asked->limit;
    f.before = asked->before;
    if (auto v = req.query_value("state")) {
        for (std::string_view name : comma_fields(*v)) {
            auto s = parse_job_state(std::string(name));
            if (!s) {
                return error_response(
                    invalid("state", "unknown job state \"" + std::string(name) +
                                         "\" (queued, running, succeeded, failed, cancelled, "
                                         "timed_out, interrupted)"));
            }
            f.states.push_back(*s);
        }
    }
    // One more than the page (query_page): a full last page pointed to an empty one.
    auto jobs = list_jobs(c, f);
    json next = next_before(jobs, *asked, true, [](const job_row& j) { return j.id; });
    json out = json::array();
    for (const auto& j : jobs) out.push_back(job_json(j));
    json answer = {{"jobs", out}, {"next_before", next}};
    if (f.model) answer["model"] = *f.model;  // as every other list of one model's says
    return json_response(dump_json(answer));
}

}  // namespace

http_response get_model_jobs(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    auto conn = a.readers().acquire();
    if (!get_model(*conn, name)) return error_response(no_model_named(name));
    return jobs_page(*conn, name, req);
}

http_response get_jobs(app& a, const http_request& req) {
    auto conn = a.readers().acquire();
    return jobs_page(*conn, std::nullopt, req);
}

http_response get_job(app& a, const http_request& req) {
    auto id = parse_id("id", req.param("id"));
    if (!id) return error_response(id.error());
    std::int64_t after = 0;
    if (auto v = req.query_value("log_after")) {
        // A sequence number seen, or 0 for the whole log.
        auto n = parse_int("log_after", *v, 0, INT64_MAX);
        if (!n) return error_response(n.error());
        after = *n;
    }
    auto conn = a.readers().acquire();
    auto j = get_job(*conn, *id);
    if (!j) return error_response(status(error_kind::not_found, "no job with id " + std::to_string(*id), "id"));
    json out = job_json(*j);
    json log = json::array();
    for (const auto& l : job_log(*conn, *id, after)) {
        log.push_back({{"seq", l.seq}, {"time", format_rfc3339(l.time)}, {"level", l.level}, {"message", l.message}});
    }
    out["log"] = log;
    return json_response(dump_json(out));
}

http_response post_job_cancel(app& a, const http_request& req) {
    auto id = parse_id("id", req.param("id"));
    if (!id) return error_response(id.error());
    auto body = json_object_body(req, true);
    if (!body) return error_response(body.error());
    if (status s = only_known_fields(*body, "", {"reason"}); !s) return error_response(s);
    auto why_field = optional_reason(*body);
    if (!why_field) return error_response(why_field.error());
    const std::string why = std::move(*why_field);
    std::string who = actor_of(req);
    // A cancel sent again after a lost answer records nothing: the job is
    // cancelled (200), or its cancel is still under way (202).
    bool already = false, under_way = false;
    status s = a.writer().run(
        [&](connection& c) {
            auto j = get_job(c, *id);
            already = j && j->state == job_state::cancelled;
            under_way = j && j->state == job_state::running && j->cancel_requested;
            if (already || under_way) return status::ok();
            status r = request_cancel(c, *id);
            if (r)
                append_job_log(c, *id, "info",
                               "cancel requested by " + who + (why.empty() ? "" : ": " + why));
            return r;
        },
        a.write_timeout());
    if (!s) return error_response(s);
    if (!already) a.trainer().cancel(*id);
    auto conn = a.readers().acquire();
    auto j = get_job(*conn, *id);
    http_response answer =
        json_response(dump_json(j ? job_json(*j) : json(nullptr)), already ? 200 : 202);
    // Where the cancel shows (a running job ends within moments), as for train.
    answer.headers.emplace_back("Location", "/v1/jobs/" + std::to_string(*id));
    return answer;
}

http_response get_model_versions(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    auto conn = a.readers().acquire();
    if (!get_model(*conn, name)) return error_response(no_model_named(name));
    auto asked = query_page(req, 100, 1000);
    if (!asked) return error_response(asked.error());
    auto aliases = list_aliases(*conn, name);
    json out = json::array();
    auto disabled = disabled_versions(*conn, name);
    auto versions = list_versions(*conn, name, *asked);
    json next =
        next_before(versions, *asked, false, [](const version_row& v) { return v.version; });
    for (const auto& v : versions) out.push_back(version_json(v, aliases, disabled, false));
    return json_response(dump_json({{"model", name},
                                    {"versions", out},
                                    {"count", count_versions(*conn, name)},
                                    {"next_before", next}}));
}

http_response get_model_version(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    auto n = parse_id("version", req.param("version"));
    if (!n) return error_response(n.error());
    auto conn = a.readers().acquire();
    if (!get_model(*conn, name)) return error_response(no_model_named(name));
    auto v = get_version(*conn, name, *n, false);
    if (!v) {
        return error_response(status(error_kind::not_found,
                                     "model " + name + " has no version " + std::to_string(*n), "version"));
    }
    return json_response(dump_json(
        version_json(*v, list_aliases(*conn, name), disabled_versions(*conn, name), true)));
}

http_response get_model_aliases(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    auto conn = a.readers().acquire();
    if (!get_model(*conn, name)) return error_response(no_model_named(name));
    json out = json::array();
    for (const auto& al : list_aliases(*conn, name)) {
        out.push_back({{"alias", al.alias}, {"version", al.version}, {"updated_at", format_rfc3339(al.updated_at)}});
    }
    return json_response(dump_json({{"model", name}, {"aliases", out}}));
}

http_response get_model_alias(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    const std::string& alias = req.param("alias");
    if (!valid_name(alias)) return error_response(alias_name_problem());
    auto conn = a.readers().acquire();
    if (!get_model(*conn, name)) return error_response(no_model_named(name));
    for (const auto& al : list_aliases(*conn, name)) {
        if (al.alias != alias) continue;
        http_response answer =
            json_response(dump_json({{"model", name},
                                     {"alias", al.alias},
                                     {"version", al.version},
                                     {"updated_at", format_rfc3339(al.updated_at)}}));
        set_etag(answer, alias_etag(al.version));
        return answer;
    }
    return error_response(
        status(error_kind::not_found, "model " + name + " has no alias " + alias, "alias"));
}

http_response put_model_alias(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    const std::string& alias = req.param("alias");
    if (!valid_name(alias)) return error_response(alias_name_problem());
    auto body = json_object_body(req, false);
    if (!body) return error_response(body.error());
    if (status s = only_known_fields(*body, "", {"version", "reason"}); !s)
        return error_response(s);
    auto v = body->find("version");
    if (v == body->end() || !v->is_number_integer() || v->get<std::int64_t>() <= 0) {
        return error_response(invalid("version", "must be the positive integer of a version"));
    }
    if (status s = check_reason(*body, "say why the alias moves: every move is recorded"); !s)
        return error_response(s);
    auto pre = read_preconditions(req);
    if (!pre) return error_response(pre.error());
    auto r = body->find("reason");
    {
        auto conn = a.readers().acquire();
        if (!get_model(*conn, name)) return error_response(no_model_named(name));
    }
    std::int64_t version = v->get<std::int64_t>();
    if (alias == "live") {
        // Loaded and warmed before live moves, as serving would: a version
        // whose artifact cannot be read was answered 200 "changed", then
        // served nothing but fallbacks.
        auto conn = a.readers().acquire();
        if (status loads = a.serving().preload(*conn, name, version); !loads) {
            return error_response(status(error_kind::conflict,
                                         "version " + std::to_string(version) +
                                             " cannot be served (" + loads.message() +
                                             "); live stays where it is",
                                         "version"));
        }
    }
    std::string actor = actor_of(req);
    std::string reason = r->get<std::string>();
    bool changed = false;
    std::optional<std::string> etag_now;  // the alias's, when a condition failed
    status s = a.writer().run(
        [&](connection& c) {
            const auto before = alias_version(c, name, alias);
            if (status held = check_alias_preconditions(*pre, before, name, alias, etag_now); !held)
                return held;
            changed = before != version;
            return move_alias(c, name, alias, version, actor, reason);
        },
        a.write_timeout());
    if (!s) return with_etag(error_response(s), etag_now);
    a.refresh_model(name);
    http_response answer = json_response(dump_json({{"model", name},
                                                    {"alias", alias},
                                                    {"version", version},
                                                    {"changed", changed},
                                                    {"actor", actor},
                                                    {"reason", reason}}));
    set_etag(answer, alias_etag(version));
    return answer;
}

http_response delete_model_alias(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    const std::string& alias = req.param("alias");
    if (!valid_name(alias)) return error_response(alias_name_problem());
    auto body = json_object_body(req, true);
    if (!body) return error_response(body.error());
    if (status s = only_known_fields(*body, "", {"reason"}); !s) return error_response(s);
    if (status s = check_reason(*body, "say why the alias is removed"); !s)
        return error_response(s);
    const std::string reason = (*body)["reason"].get<std::string>();
    auto pre = read_preconditions(req);
    if (!pre) return error_response(pre.error());
    {
        // A mistyped model name read as "model x has no alias live".
        auto conn = a.readers().acquire();
        if (!get_model(*conn, name)) return error_response(no_model_named(name));
    }
    std::string actor = actor_of(req);
    std::optional<std::string> etag_now;
    bool changed = true;
    status s = a.writer().run(
        [&](connection& c) {
            const auto before = alias_version(c, name, alias);
            if (status held = check_alias_preconditions(*pre, before, name, alias, etag_now); !held)
                return held;
            // Sent again after a lost answer, as a PUT to where the alias
            // is already answers "changed": false. One never set is a 404.
            if (!before && alias_was_removed(c, name, alias)) {
                if (status st = refuse_if_archived(c, name, "remove an alias"); !st) return st;
                changed = false;
                return status::ok();
            }
            return move_alias(c, name, alias, std::nullopt, actor, reason);
        },
        a.write_timeout());
    if (!s) return with_etag(error_response(s), etag_now);
    if (changed) a.refresh_model(name);
    return json_response(dump_json({{"model", name},
                                    {"alias", alias},
                                    {"version", nullptr},
                                    {"changed", changed},
                                    {"actor", actor},
                                    {"reason", reason}}));
}

http_response get_model_deployments(app& a, const http_request& req) {
    const std::string& name = req.param("name");
    auto conn = a.readers().acquire();
    if (!get_model(*conn, name)) return error_response(no_model_named(name));
    auto asked = query_page(req, 500, 1000);
    if (!asked) return error_response(asked.error());
    auto deployments = list_deployments(*conn, name, *asked);
    json next =
        next_before(deployments, *asked, true, [](const deployment_row& d) { return d.id; });
    json out = json::array();
    for (const auto& d : deployments) {
        out.push_back({{"id", d.id},
                       {"alias", d.alias},
                       {"version", opt(d.version)},
                       {"previous_version", opt(d.previous_version)},
                       {"time", format_rfc3339(d.time)},
                       {"actor", d.actor},
                       {"reason", d.reason}});
    }
    return json_response(dump_json({{"model", name}, {"deployments", out}, {"next_before", next}}));
}

}  // namespace kennel

#include "store/registry.h"

#include <algorithm>
#include <tuple>
#include <unordered_map>

#include "store/json_writer.h"
#include "store/time_util.h"

namespace kennel {

const char* job_state_name(job_state s) {
    switch (s) {
        case job_state::queued: return "queued";
        case job_state::running: return "running";
        case job_state::succeeded: return "succeeded";
        case job_state::failed: return "failed";
        case job_state::timed_out: return "timed_out";
        case job_state::cancelled: return "cancelled";
        case job_state::interrupted: return "interrupted";
    }
    return "failed";
}

std::optional<job_state> parse_job_state(const std::string& s) {
    for (job_state st : {job_state::queued, job_state::running, job_state::succeeded,
                         job_state::failed, job_state::timed_out, job_state::cancelled,
                         job_state::interrupted}) {
        if (s == job_state_name(st)) return st;
    }
    return std::nullopt;
}

put_model_result put_model(connection& c, const std::string& name, const std::string& definition,
                           const std::string& author) {
    put_model_result r;
    micros now = now_micros();
    statement cur(c,
                  "SELECT m.current_revision, r.definition FROM models m JOIN model_revisions r"
                  " ON r.model = m.name AND r.revision = m.current_revision WHERE m.name = ?");
    cur.bind(1, name);
    if (cur.step()) {
        r.revision = cur.column_int(0);
        if (cur.column_text(1) == definition) return r;  // unchanged: no new revision
        r.revision += 1;
        r.new_revision = true;
        statement ins(c,
                      "INSERT INTO model_revisions (model, revision, definition, created_at, author)"
                      " VALUES (?,?,?,?,?)");
        ins.bind(1, name).bind(2, r.revision).bind(3, definition).bind(4, now).bind(5, author).run();
        statement up(c, "UPDATE models SET current_revision = ? WHERE name = ?");
        up.bind(1, r.revision).bind(2, name).run();
        return r;
    }
    r.revision = 1;
    r.created_model = true;
    r.new_revision = true;
    statement m(c, "INSERT INTO models (name, created_at, current_revision) VALUES (?,?,1)");
    m.bind(1, name).bind(2, now).run();
    statement ins(c,
                  "INSERT INTO model_revisions (model, revision, definition, created_at, author)"
                  " VALUES (?,1,?,?,?)");
    ins.bind(1, name).bind(2, definition).bind(3, now).bind(4, author).run();
    return r;
}

std::optional<std::int64_t> queued_job_of_current_revision(connection& c,
                                                           const std::string& model) {
    statement q(c,
                "SELECT j.id FROM jobs j JOIN models m ON m.name = j.model"
                " WHERE j.model = ? AND j.state = 'queued' AND j.revision = m.current_revision"
                " ORDER BY j.id LIMIT 1");
    q.bind(1, model);
    if (!q.step()) return std::nullopt;
    return q.column_int(0);
}

std::optional<std::int64_t> carry_queued_jobs_to_current_revision(connection& c,
                                                                  const std::string& model) {
    statement q(c,
                "SELECT j.id, j.trigger, j.requested_by FROM jobs j JOIN models m ON m.name ="
                " j.model WHERE j.model = ? AND j.state = 'queued' AND j.revision <"
                " m.current_revision ORDER BY j.id LIMIT 1");
    q.bind(1, model);
    if (!q.step()) return std::nullopt;
    const std::int64_t old_id = q.column_int(0);
    const std::string trigger = q.column_text(1), requested_by = q.column_text(2);
    q.reset();
    const std::int64_t id = insert_job(c, model, trigger, requested_by);
    append_job_log(c, id, "info",
                   "queued in place of job " + std::to_string(old_id) +
                       ", which was queued for a revision since replaced");
    return id;
}

std::int64_t insert_job(connection& c, const std::string& model, const std::string& trigger,
                        const std::string& requested_by, std::optional<std::int64_t> requeued_from) {
    if (requeued_from) {
        if (auto id = queued_job_of_current_revision(c, model)) {
            append_job_log(c, *id, "info",
                           "also stands for interrupted job " + std::to_string(*requeued_from));
            // Named as the job it stands for, so that a second crash during
            // it is seen as one (recover_interrupted_jobs): without, a job
            // queued at each crash let the crash loop go on.
            statement st(c,
                         "UPDATE jobs SET requeued_from = ?1 WHERE id = ?2 AND requeued_from IS"
                         " NULL");
            st.bind(1, *requeued_from).bind(2, *id);
            st.run();
            return *id;
        }
    }
    statement st(c,
                 "INSERT INTO jobs (model, revision, state, trigger, requested_by, created_at,"
                 " requeued_from, facts_seen) SELECT name, current_revision, 'queued', ?, ?, ?, ?,"
                 " (SELECT coalesce(max(id), 0) FROM facts) FROM models WHERE name = ?");
    st.bind(1, trigger).bind(2, requested_by).bind(3, now_micros()).bind(4, requeued_from).bind(5, model);
    st.run();
    if (c.changes() != 1) throw db_error(19, "no model named \"" + model + "\"");
    const std::int64_t id = c.last_insert_rowid();
    // A job still queued for an older revision would train a definition
    // since replaced (and might publish it): this one supersedes it.
    statement older(c,
                    "SELECT o.id, n.revision FROM jobs o JOIN jobs n ON n.id = ?2"
                    " WHERE o.model = ?1 AND o.state = 'queued' AND o.revision < n.revision");
    older.bind(1, model).bind(2, id);
    std::vector<std::pair<std::int64_t, std::int64_t>> superseded;
    while (older.step()) superseded.emplace_back(older.column_int(0), older.column_int(1));
    for (const auto& [old_id, revision] : superseded) {
        const std::string why = "superseded by job " + std::to_string(id) +
                                ", which trains revision " + std::to_string(revision);
        transition_job(c, old_id, job_state::queued, job_state::cancelled, why);
        append_job_log(c, old_id, "info", why);
    }
    return id;
}

bool transition_job(connection& c, std::int64_t id, job_state from, job_state to,
                    const std::optional<std::string>& error) {
    bool legal = (from == job_state::queued &&
                  (to == job_state::running || to == job_state::cancelled)) ||
                 (from == job_state::running && job_finished(to));
    if (!legal) return false;
    micros now = now_micros();
    std::string sql = "UPDATE jobs SET state = ?1, error = coalesce(?2, error)";
    if (to == job_state::running) sql += ", started_at = ?3";
    if (job_finished(to)) sql += ", finished_at = ?3";
    if (to == job_state::succeeded) sql += ", progress = 1";
    // A job that ends otherwise says what it came to ("cancelled: superseded
    // by job 9"), not its last step or nothing; a success's caller writes its
    // outcome first.
    const bool says_why = job_finished(to) && to != job_state::succeeded;
    if (says_why) sql += ", message = ?6";
    sql += " WHERE id = ?4 AND state = ?5";
    statement st(c, sql);
    st.bind(1, job_state_name(to)).bind(2, error).bind(3, now).bind(4, id).bind(5, job_state_name(from));
    if (says_why)
        st.bind(6,
                std::string(job_state_name(to)) + (error && !error->empty() ? ": " + *error : ""));
    st.run();
    return c.changes() == 1;
}

void set_job_progress(connection& c, std::int64_t id, double progress, const std::string& message) {
    statement st(c, "UPDATE jobs SET progress = ?, message = ? WHERE id = ? AND state = 'running'");
    st.bind(1, progress).bind(2, message).bind(3, id).run();
}

void set_job_version(connection& c, std::int64_t id, std::int64_t version) {
    statement st(c, "UPDATE jobs SET version = ? WHERE id = ?");
    st.bind(1, version).bind(2, id).run();
}

void append_job_log(connection& c, std::int64_t id, const std::string& level,
                    const std::string& message) {
    statement st(c,
                 "INSERT INTO job_log (job, seq, time, level, message) SELECT ?1,"
                 " coalesce(max(seq), 0) + 1, ?2, ?3, ?4 FROM job_log WHERE job = ?1");
    st.bind(1, id).bind(2, now_micros()).bind(3, level).bind(4, message).run();
}

status request_cancel(connection& c, std::int64_t id) {
    auto job = get_job(c, id);
    if (!job) return status(error_kind::not_found, "no job with id " + std::to_string(id), "id");
    if (job->state == job_state::queued) {
        transition_job(c, id, job_state::queued, job_state::cancelled,
                       std::string("cancelled before it started"));
        append_job_log(c, id, "info", "cancelled while queued");
        return status::ok();
    }
    if (job->state == job_state::running) {
        statement st(c, "UPDATE jobs SET cancel_requested = 1 WHERE id = ?");
        st.bind(1, id).run();
        append_job_log(c, id, "info", "cancellation requested");
        return status::ok();
    }
    return status(error_kind::conflict,
                  std::string("job ") + std::to_string(id) + " has already finished (" +
                      job_state_name(job->state) + ")",
                  "id");
}

namespace {

// The error of a job a crash left running, found at the next start.
constexpr const char* stopped_while_running = "Kennel stopped while this job was running";

}  // namespace

std::vector<requeued_job> recover_interrupted_jobs(connection& c) {
    std::vector<std::tuple<std::int64_t, std::string, bool, std::optional<std::int64_t>>> stuck;
    {
        // With the job it was requeued from, if a crash interrupted that one too.
        statement st(c,
                     "SELECT j.id, j.model, j.cancel_requested, p.id FROM jobs j"
                     " LEFT JOIN jobs p ON p.id = j.requeued_from AND p.state = 'interrupted'"
                     " AND p.error = ? WHERE j.state = 'running' ORDER BY j.id");
        st.bind(1, std::string(stopped_while_running));
        while (st.step())
            stuck.emplace_back(st.column_int(0), st.column_text(1), st.column_int(2) != 0,
                               st.column_opt_int(3));
    }
    std::vector<requeued_job> fresh;
    for (const auto& [id, model, cancel_requested, crashed_before] : stuck) {
        if (cancel_requested) {
            // A cancel was accepted before the stop: the job ends cancelled,
            // not queued again (to train, and perhaps publish).
            transition_job(c, id, job_state::running, job_state::cancelled,
                           std::string("cancelled on request"));
            append_job_log(c, id, "info", "cancelled on request; Kennel stopped before it ended");
            continue;
        }
        if (crashed_before) {
            // Twice in a row the server died during this job: the job may be
            // why (a fit the kernel's out-of-memory killer answered by killing
            // the server), and queued again at every start it made a crash loop.
            const std::string why =
                "Kennel stopped while this job was running, as it did while job " +
                std::to_string(*crashed_before) +
                ", which this job stood for, was running: not queued again, since the job may "
                "be what stops Kennel (see the system log, e.g. for the out-of-memory killer); "
                "train it again once the cause is known";
            transition_job(c, id, job_state::running, job_state::failed, why);
            append_job_log(c, id, "error", why);
            fresh.push_back({id, model, 0});
            continue;
        }
        transition_job(c, id, job_state::running, job_state::interrupted,
                       std::string(stopped_while_running));
        append_job_log(c, id, "warn", "interrupted by a restart; queued again");
        fresh.push_back({id, model, insert_job(c, model, "requeued", "kennel", id)});
    }
    return fresh;
}

std::int64_t insert_version(connection& c, version_row v) {
    statement next(c, "SELECT coalesce(max(version), 0) + 1 FROM model_versions WHERE model = ?");
    next.bind(1, v.model);
    next.step();
    v.version = next.column_int(0);
    statement st(c,
                 "INSERT INTO model_versions (model, version, revision, job, algorithm, params,"
                 " artifact, artifact_sha256, artifact_bytes, snapshot, metrics, baseline_metrics,"
                 " gate, features, timings, status, created_at, baseline)"
                 " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    st.bind(1, v.model).bind(2, v.version).bind(3, v.revision).bind(4, v.job).bind(5, v.algorithm);
    st.bind(6, v.params).bind_blob_static(7, v.artifact).bind(8, v.artifact_sha256);
    st.bind(9, static_cast<std::int64_t>(v.artifact.size())).bind(10, v.snapshot);
    st.bind(11, v.metrics).bind(12, v.baseline_metrics).bind(13, v.gate).bind(14, v.features);
    st.bind(15, v.timings).bind(16, v.status).bind(17, now_micros()).bind(18, v.baseline);
    st.run();
    return v.version;
}

status move_alias(connection& c, const std::string& model, const std::string& alias,
                  std::optional<std::int64_t> version, const std::string& actor,
                  const std::string& reason) {
    if (status s = refuse_if_archived(c, model, version ? "move its aliases" : "remove an alias");
        !s)
        return s;
    if (version) {
        if (status s = check_servable(c, model, *version); !s) return s;
        if (alias == "live" && disabled_versions(c, model).count(*version)) {
            return status(error_kind::conflict,
                          "version " + std::to_string(*version) + " of model " + model +
                              " is disabled: enable it before moving live to it",
                          "version");
        }
    }
    auto previous = alias_version(c, model, alias);
    // Already there: nothing moved, so nothing is recorded.
    if (version && previous == version) return status::ok();
    micros now = now_micros();
    if (version) {
        statement up(c,
                     "INSERT INTO aliases (model, alias, version, updated_at) VALUES (?,?,?,?)"
                     " ON CONFLICT (model, alias) DO UPDATE SET version = excluded.version,"
                     " updated_at = excluded.updated_at");
        up.bind(1, model).bind(2, alias).bind(3, *version).bind(4, now).run();
    } else {
        if (!previous) {
            return status(error_kind::not_found, "model " + model + " has no alias " + alias, "alias");
        }
        statement del(c, "DELETE FROM aliases WHERE model = ? AND alias = ?");
        del.bind(1, model).bind(2, alias).run();
    }
    statement log(c,
                  "INSERT INTO deployments (model, alias, version, previous_version, time, actor,"
                  " reason) VALUES (?,?,?,?,?,?,?)");
    log.bind(1, model).bind(2, alias).bind(3, version).bind(4, previous).bind(5, now);
    log.bind(6, actor).bind(7, reason).run();
    // An older candidate left waiting is superseded by what just went live
    // (by the auto policy or a person): promoting "candidate" would move
    // live back.
    if (const auto waiting = alias_version(c, model, "candidate");
        alias == "live" && version && waiting && *waiting < *version) {
        return move_alias(c, model, "candidate", std::nullopt, actor,
                          "superseded: version " + std::to_string(*version) + " is now live");
    }
    return status::ok();
}

namespace {

job_row read_job(const statement& st) {
    job_row j;
    j.id = st.column_int(0);
    j.model = st.column_text(1);
    j.revision = st.column_int(2);
    j.state = parse_job_state(st.column_text(3)).value_or(job_state::failed);
    j.trigger = st.column_text(4);
    j.requested_by = st.column_text(5);
    j.created_at = st.column_int(6);
    j.started_at = st.column_opt_int(7);
    j.finished_at = st.column_opt_int(8);
    j.progress = st.column_double(9);
    j.message = st.column_text(10);
    j.error = st.column_opt_text(11);
    j.cancel_requested = st.column_int(12) != 0;
    j.requeued_from = st.column_opt_int(13);
    j.version = st.column_opt_int(14);
    return j;
}

constexpr const char* job_columns =
    "id, model, revision, state, trigger, requested_by, created_at, started_at, finished_at,"
    " progress, message, error, cancel_requested, requeued_from, version";

version_row read_version(const statement& st, bool with_artifact) {
    version_row v;
    v.model = st.column_text(0);
    v.version = st.column_int(1);
    v.revision = st.column_int(2);
    v.job = st.column_opt_int(3);
    v.algorithm = st.column_text(4);
    v.params = st.column_text(5);
    v.artifact_sha256 = st.column_text(6);
    v.artifact_bytes = st.column_int(7);
    v.snapshot = st.column_text(8);
    v.metrics = st.column_text(9);
    v.baseline_metrics = st.column_text(10);
    v.gate = st.column_text(11);
    v.features = st.column_text(12);
    v.timings = st.column_text(13);
    v.status = st.column_text(14);
    v.created_at = st.column_int(15);
    v.baseline = st.column_text(16);
    v.artifact_removed_at = st.column_opt_int(17);
    if (with_artifact) v.artifact = st.column_blob(18);
    return v;
}

constexpr const char* version_columns =
    "model, version, revision, job, algorithm, params, artifact_sha256, artifact_bytes, snapshot,"
    " metrics, baseline_metrics, gate, features, timings, status, created_at, baseline,"
    " artifact_removed_at";

}  // namespace

namespace {

constexpr const char* model_columns =
    "SELECT m.name, m.created_at, m.current_revision, r.definition, m.archived_at FROM models m"
    " JOIN model_revisions r ON r.model = m.name AND r.revision = m.current_revision";

model_row read_model(statement& st) {
    return {st.column_text(0), st.column_int(1), st.column_int(2), st.column_text(3),
            st.column_opt_int(4)};
}

}  // namespace

std::vector<model_row> list_models(connection& c, model_filter f) {
    const char* where = f == model_filter::in_service ? " WHERE m.archived_at IS NULL"
                        : f == model_filter::archived ? " WHERE m.archived_at IS NOT NULL"
                                                      : "";
    statement st(c, std::string(model_columns) + where + " ORDER BY m.name");
    std::vector<model_row> out;
    while (st.step()) out.push_back(read_model(st));
    return out;
}

std::map<std::string, model_summary> model_summaries(connection& c) {
    std::map<std::string, model_summary> out;
    {
        statement st(
            c,
            "SELECT m.name, coalesce(json_extract(r.definition, '$.task'), '') FROM models m"
            " JOIN model_revisions r ON r.model = m.name AND r.revision = m.current_revision");
        while (st.step()) out[st.column_text(0)].task = st.column_text(1);
    }
    {
        statement st(c, "SELECT model, alias, version FROM aliases ORDER BY model, alias");
        while (st.step()) {
            out[st.column_text(0)].aliases.emplace_back(st.column_text(1), st.column_int(2));
        }
    }
    {
        statement st(c, "SELECT model, count(*) FROM model_versions GROUP BY model");
        while (st.step()) out[st.column_text(0)].versions = st.column_int(1);
    }
    {
        statement st(c, std::string("SELECT ") + job_columns +
                            " FROM jobs WHERE id IN (SELECT max(id) FROM jobs GROUP BY model)");
        while (st.step()) {
            job_row j = read_job(st);
            const std::string model = j.model;
            out[model].last_job = std::move(j);
        }
    }
    return out;
}

std::optional<model_row> get_model(connection& c, const std::string& name) {
    statement st(c, std::string(model_columns) + " WHERE m.name = ?");
    st.bind(1, name);
    if (!st.step()) return std::nullopt;
    return read_model(st);
}

namespace {

void add_model_event(connection& c, const std::string& model, const char* event,
                     const std::string& actor, const std::string& reason, micros at) {
    statement st(c,
                 "INSERT INTO model_events (model, event, time, actor, reason) VALUES (?,?,?,?,?)");
    st.bind(1, model).bind(2, event).bind(3, at).bind(4, actor).bind(5, reason).run();
    statement mark(c, "UPDATE models SET archived_at = ? WHERE name = ?");
    if (std::string(event) == "archived") {
        mark.bind(1, at);
    } else {
        mark.bind_null(1);
    }
    mark.bind(2, model).run();
}

}  // namespace

status no_model_named(const std::string& model) {
    return status(error_kind::not_found, "no model named \"" + model + "\"", "name");
}

result<bool> archive_model(connection& c, const std::string& model, const std::string& actor,
                           const std::string& reason, archive_effects& effects) {
    auto m = get_model(c, model);
    if (!m) return no_model_named(model);
    if (m->archived_at) return false;
    const micros at = now_micros();
    add_model_event(c, model, "archived", actor, reason, at);
    std::vector<std::int64_t> open;
    {
        statement st(c,
                     "SELECT id FROM jobs WHERE model = ? AND state IN ('queued', 'running')"
                     " ORDER BY id");
        st.bind(1, model);
        while (st.step()) open.push_back(st.column_int(0));
    }
    for (std::int64_t id : open) {
        if (!request_cancel(c, id)) continue;
        append_job_log(c, id, "info", "model archived by " + actor + ": " + reason);
        effects.cancelled_jobs.push_back(id);
    }
    if (auto e = active_experiment(c, model)) {
        if (end_experiment(c, e->id, actor, "model archived: " + reason)) {
            effects.ended_experiment = e->id;
        }
    }
    return true;
}

result<bool> restore_model(connection& c, const std::string& model, const std::string& actor,
                           const std::string& reason) {
    auto m = get_model(c, model);
    if (!m) return no_model_named(model);
    if (!m->archived_at) return false;
    add_model_event(c, model, "restored", actor, reason, now_micros());
    return true;
}

std::vector<model_event_row> list_model_events(connection& c, const std::string& model,
                                               std::int64_t limit) {
    statement st(c,
                 "SELECT * FROM (SELECT id, event, time, actor, reason FROM model_events"
                 " WHERE model = ? ORDER BY id DESC LIMIT ?) ORDER BY id");
    st.bind(1, model).bind(2, limit);
    std::vector<model_event_row> out;
    while (st.step()) {
        out.push_back({st.column_int(0), st.column_text(1), st.column_int(2), st.column_text(3),
                       st.column_text(4)});
    }
    return out;
}

std::int64_t count_model_events(connection& c, const std::string& model) {
    statement st(c, "SELECT count(*) FROM model_events WHERE model = ?");
    st.bind(1, model);
    st.step();
    return st.column_int(0);
}

std::optional<model_event_row> current_archive(connection& c, const std::string& model) {
    statement st(c,
                 "SELECT id, event, time, actor, reason FROM model_events WHERE model = ?1 AND"
                 " event = 'archived' AND (SELECT archived_at FROM models WHERE name = ?1) IS NOT"
                 " NULL ORDER BY id DESC LIMIT 1");
    st.bind(1, model);
    if (!st.step()) return std::nullopt;
    return model_event_row{st.column_int(0), st.column_text(1), st.column_int(2), st.column_text(3),
                           st.column_text(4)};
}

std::string archived_note(const std::string& model, const model_event_row& archive) {
    return "model " + model + " is archived (since " + format_rfc3339(archive.time) + ", by " +
           archive.actor + ": " + archive.reason + ")";
}

status refuse_if_archived(connection& c, const std::string& model, const std::string& what) {
    auto archive = current_archive(c, model);
    if (!archive) return status::ok();
    return status(error_kind::conflict,
                  archived_note(model, *archive) + "; restore it with POST /v1/models/" + model +
                      "/restore to " + what,
                  "name");
}

std::optional<micros> last_prediction_time(connection& c, const std::string& model) {
    statement st(c, "SELECT max(last_time) FROM prediction_segments WHERE model = ?");
    st.bind(1, model);
    if (!st.step() || st.is_null(0)) return std::nullopt;
    return st.column_int(0);
}

std::vector<revision_row> list_revisions(connection& c, const std::string& model, const page& p) {
    statement st(c,
                 "SELECT * FROM (SELECT model, revision, definition, created_at, author FROM"
                 " model_revisions WHERE model = ? AND revision < ? ORDER BY revision DESC"
                 " LIMIT ?) ORDER BY revision");
    st.bind(1, model).bind(2, p.before.value_or(INT64_MAX)).bind(3, p.limit);
    std::vector<revision_row> out;
    while (st.step()) {
        out.push_back({st.column_text(0), st.column_int(1), st.column_text(2), st.column_int(3),
                       st.column_text(4)});
    }
    return out;
}

std::optional<revision_row> get_revision(connection& c, const std::string& model,
                                         std::int64_t revision) {
    statement st(c,
                 "SELECT model, revision, definition, created_at, author FROM model_revisions"
                 " WHERE model = ? AND revision = ?");
    st.bind(1, model).bind(2, revision);
    if (!st.step()) return std::nullopt;
    return revision_row{st.column_text(0), st.column_int(1), st.column_text(2), st.column_int(3),
                        st.column_text(4)};
}

std::optional<job_row> get_job(connection& c, std::int64_t id) {
    statement st(c, std::string("SELECT ") + job_columns + " FROM jobs WHERE id = ?");
    st.bind(1, id);
    if (!st.step()) return std::nullopt;
    return read_job(st);
}

std::vector<job_row> list_jobs(connection& c, const std::optional<std::string>& model, int limit) {
    job_filter f;
    f.model = model;
    f.limit = limit;
    return list_jobs(c, f);
}

std::vector<job_row> list_jobs(connection& c, const job_filter& f) {
    std::string sql = std::string("SELECT ") + job_columns + " FROM jobs WHERE id < ?2";
    if (f.model) sql += " AND model = ?3";
    if (!f.states.empty()) {
        sql += " AND state IN (";
        for (std::size_t i = 0; i < f.states.size(); ++i) {
            sql += (i ? ",'" : "'") + std::string(job_state_name(f.states[i])) + "'";
        }
        sql += ")";
    }
    sql += " ORDER BY id DESC LIMIT ?1";
    statement st(c, sql);
    st.bind(1, f.limit).bind(2, f.before.value_or(INT64_MAX));
    if (f.model) st.bind(3, *f.model);
    std::vector<job_row> out;
    while (st.step()) out.push_back(read_job(st));
    return out;
}

std::optional<job_row> next_queued_job(connection& c) {
    // A person's jobs first, then the triggers', each oldest first: with
    // many models on triggers, a person's retrain waited behind every
    // queued automatic job (89 s behind 60 models in a probe).
    statement st(c, std::string("SELECT ") + job_columns +
                        " FROM jobs WHERE state = 'queued' ORDER BY trigger <> 'manual', id"
                        " LIMIT 1");
    if (!st.step()) return std::nullopt;
    return read_job(st);
}

std::vector<job_log_row> job_log(connection& c, std::int64_t id, std::int64_t after_seq) {
    statement st(c,
                 "SELECT seq, time, level, message FROM job_log WHERE job = ? AND seq > ?"
                 " ORDER BY seq LIMIT 1000");
    st.bind(1, id).bind(2, after_seq);
    std::vector<job_log_row> out;
    while (st.step()) {
        out.push_back({st.column_int(0), st.column_int(1), st.column_text(2), st.column_text(3)});
    }
    return out;
}

bool has_active_job(connection& c, const std::string& model) {
    statement st(c, "SELECT 1 FROM jobs WHERE model = ? AND state IN ('queued','running') LIMIT 1");
    st.bind(1, model);
    return st.step();
}

std::int64_t count_versions(connection& c, const std::string& model) {
    statement st(c, "SELECT count(*) FROM model_versions WHERE model = ?");
    st.bind(1, model);
    st.step();
    return st.column_int(0);
}

std::vector<version_row> list_versions(connection& c, const std::string& model, const page& p) {
    // The features' drift profile (a few KB a version), explanations'
    // background rows (up to 256 KB) and column names (a
    // text feature's 65,536 buckets: 1.1 MB a version) stay in SQLite, the
    // names counted: parsed and dropped per row, 300 versions took ~100 ms
    // a read of a list the admin page reads every few seconds, and twenty
    // such text versions made a 22 MB answer.
    std::string columns = version_columns;
    const std::string features = " features,";
    columns.replace(columns.find(features), features.size(),
                    " json_set(json_remove(features, '$.profile', '$.names', '$.background'),"
                    " '$.columns', json_array_length(features, '$.names')),");
    statement st(c, "SELECT * FROM (SELECT " + columns +
                        " FROM model_versions WHERE model = ? AND version < ?"
                        " ORDER BY version DESC LIMIT ?) ORDER BY version");
    st.bind(1, model).bind(2, p.before.value_or(INT64_MAX)).bind(3, p.limit);
    std::vector<version_row> out;
    while (st.step()) out.push_back(read_version(st, false));
    return out;
}

std::optional<version_row> get_version(connection& c, const std::string& model,
                                       std::int64_t version, bool with_artifact) {
    // The artifact only when asked for: SQLite reads every selected column
    // as it steps, so a version's metadata read (its task, for a rollback's
    // target; GET …/versions/{n}) copied the whole artifact too, 0.3-0.5 s
    // and its size in memory beside a 361 MB forest.
    statement st(c, std::string("SELECT ") + version_columns + (with_artifact ? ", artifact" : "") +
                        " FROM model_versions WHERE model = ? AND version = ?");
    st.bind(1, model).bind(2, version);
    if (!st.step()) return std::nullopt;
    return read_version(st, with_artifact);
}

std::vector<alias_row> list_aliases(connection& c, const std::string& model) {
    statement st(c,
                 "SELECT model, alias, version, updated_at FROM aliases WHERE model = ?"
                 " ORDER BY alias");
    st.bind(1, model);
    std::vector<alias_row> out;
    while (st.step()) {
        out.push_back({st.column_text(0), st.column_text(1), st.column_int(2), st.column_int(3)});
    }
    return out;
}

std::optional<std::int64_t> alias_version(connection& c, const std::string& model,
                                          const std::string& alias) {
    statement st(c, "SELECT version FROM aliases WHERE model = ? AND alias = ?");
    st.bind(1, model).bind(2, alias);
    if (!st.step()) return std::nullopt;
    return st.column_int(0);
}

std::optional<std::int64_t> alias_version_since(connection& c, const std::string& model,
                                                const std::string& alias, micros at) {
    // Its newest move at or before `at` (a removal points nowhere), else the
    // first move after `at` that pointed it at a version.
    statement then(c,
                   "SELECT version FROM deployments WHERE model = ?1 AND alias = ?2 AND time <= ?3"
                   " ORDER BY id DESC LIMIT 1");
    then.bind(1, model).bind(2, alias).bind(3, at);
    if (then.step() && then.column_opt_int(0)) return then.column_opt_int(0);
    statement next(c,
                   "SELECT version FROM deployments WHERE model = ?1 AND alias = ?2 AND time > ?3"
                   " AND version IS NOT NULL ORDER BY id LIMIT 1");
    next.bind(1, model).bind(2, alias).bind(3, at);
    if (!next.step()) return std::nullopt;
    return next.column_int(0);
}

bool alias_was_removed(connection& c, const std::string& model, const std::string& alias) {
    statement st(c,
                 "SELECT 1 FROM deployments WHERE model = ? AND alias = ? AND version IS NULL"
                 " LIMIT 1");
    st.bind(1, model).bind(2, alias);
    return st.step();
}

live_marks live_marks_of(connection& c, const std::string& model,
                         std::optional<std::int64_t> version) {
    live_marks m;
    statement moves(
        c, "SELECT coalesce(max(id), 0) FROM deployments WHERE model = ? AND alias = 'live'");
    moves.bind(1, model);
    moves.step();
    m.move = moves.column_int(0);
    if (version) {
        statement events(c,
                         "SELECT coalesce(max(id), 0) FROM version_events"
                         " WHERE model = ? AND version = ?");
        events.bind(1, model).bind(2, *version);
        events.step();
        m.event = events.column_int(0);
    }
    return m;
}

namespace {

// A row of "SELECT id, model, alias, version, previous_version, time,
// actor, reason FROM deployments".
deployment_row read_deployment(const statement& st) {
    return {st.column_int(0),     st.column_text(1), st.column_text(2), st.column_opt_int(3),
            st.column_opt_int(4), st.column_int(5),  st.column_text(6), st.column_text(7)};
}

// A row of "SELECT id, model, version, event, time, actor, reason FROM
// version_events".
version_event_row read_version_event(const statement& st) {
    return {st.column_int(0), st.column_text(1), st.column_int(2), st.column_text(3),
            st.column_int(4), st.column_text(5), st.column_text(6)};
}

}  // namespace

std::optional<deployment_row> first_alias_move_after(connection& c, const std::string& model,
                                                     const std::string& alias,
                                                     std::int64_t after_id) {
    statement st(c,
                 "SELECT id, model, alias, version, previous_version, time, actor, reason"
                 " FROM deployments WHERE model = ? AND alias = ? AND id > ? ORDER BY id LIMIT 1");
    st.bind(1, model).bind(2, alias).bind(3, after_id);
    if (!st.step()) return std::nullopt;
    return read_deployment(st);
}

std::optional<version_event_row> first_disable_after(connection& c, const std::string& model,
                                                     std::int64_t version, std::int64_t after_id) {
    statement st(c,
                 "SELECT id, model, version, event, time, actor, reason FROM version_events"
                 " WHERE model = ? AND version = ? AND event = 'disabled' AND id > ?"
                 " ORDER BY id LIMIT 1");
    st.bind(1, model).bind(2, version).bind(3, after_id);
    if (!st.step()) return std::nullopt;
    return read_version_event(st);
}

std::vector<deployment_row> list_deployments(connection& c, const std::string& model,
                                             const page& p) {
    statement st(c,
                 "SELECT id, model, alias, version, previous_version, time, actor, reason"
                 " FROM deployments WHERE model = ? AND id < ? ORDER BY id DESC LIMIT ?");
    st.bind(1, model).bind(2, p.before.value_or(INT64_MAX)).bind(3, p.limit);
    std::vector<deployment_row> out;
    while (st.step()) out.push_back(read_deployment(st));
    return out;
}

std::int64_t count_labels_after(connection& c, const std::string& stream, const std::string& field,
                                std::int64_t after_fact_id, micros ingested_after,
                                std::optional<std::int64_t> up_to_fact_id) {
    std::int64_t hi = 0;
    if (up_to_fact_id) {
        hi = *up_to_fact_id;
    } else {
        statement top(c, "SELECT coalesce(max(id), 0) FROM facts");
        top.step();
        hi = top.column_int(0);
    }
    if (hi <= after_fact_id) return 0;
    statement size(c, "SELECT fact_count FROM stream_stats WHERE stream = ?");
    size.bind(1, stream);
    if (!size.step()) return 0;
    // Read the fewer rows: the id range (every stream's facts in it) when it
    // is shorter than the stream, else the stream. SQLite alone took the
    // stream's index for a range of a few new facts (6 ms a model at
    // 100,000 labels, every second).
    const bool by_range = hi - after_fact_id < size.column_int(0);
    statement st(c, std::string("SELECT count(*) FROM facts WHERE id > ?2 AND id <= ?5 AND ") +
                        (by_range ? "+stream" : "stream") +
                        " = ?1 AND ingest_time > ?4"
                        " AND coalesce(json_type(data, ?3), 'null') != 'null'");
    st.bind(1, stream)
        .bind(2, after_fact_id)
        .bind(3, "$.\"" + field + "\"")
        .bind(4, ingested_after)
        .bind(5, hi);
    st.step();
    return st.column_int(0);
}

std::int64_t last_snapshot_fact_id(connection& c, const std::string& model) {
    statement st(c,
                 "SELECT coalesce(json_extract(snapshot, '$.max_fact_id'), 0) FROM model_versions"
                 " WHERE model = ? ORDER BY version DESC LIMIT 1");
    st.bind(1, model);
    return st.step() ? st.column_int(0) : 0;
}

job_recency last_job_recency(connection& c, const std::string& model) {
    job_recency r;
    statement st(c,
                 "SELECT created_at, coalesce(finished_at, started_at, created_at), facts_seen,"
                 " state FROM jobs WHERE model = ? ORDER BY id DESC LIMIT 16");
    st.bind(1, model);
    bool in_a_row = true;
    for (bool newest = true; st.step(); newest = false) {
        if (newest) {
            r.created_at = st.column_int(0);
            r.last_activity = st.column_int(1);
            r.facts_seen = st.column_opt_int(2);
        }
        const std::string state = st.column_text(3);
        in_a_row = in_a_row && (state == "failed" || state == "timed_out");
        if (in_a_row) ++r.failed_in_a_row;
    }
    return r;
}

std::optional<micros> last_job_created_at(connection& c, const std::string& model,
                                          const std::optional<std::string>& trigger) {
    statement st(c, "SELECT max(created_at) FROM jobs WHERE model = ?1 AND (?2 IS NULL OR trigger = ?2)");
    st.bind(1, model);
    if (trigger) st.bind(2, *trigger);
    if (!st.step()) return std::nullopt;
    return st.column_opt_int(0);
}

}  // namespace kennel

namespace kennel {

result<bool> set_version_enabled(connection& c, const std::string& model, std::int64_t version,
                                 bool enabled, const std::string& actor,
                                 const std::string& reason) {
    // A restore serves what the model served when it was archived.
    if (status s = refuse_if_archived(c, model, enabled ? "enable a version" : "disable a version");
        !s)
        return s;
    statement chk(c, "SELECT 1 FROM model_versions WHERE model = ? AND version = ?");
    chk.bind(1, model).bind(2, version);
    if (!chk.step()) {
        return status(error_kind::not_found,
                      "model " + model + " has no version " + std::to_string(version), "version");
    }
    // Already so: nothing to record (a repeated click is not a new event).
    if (disabled_versions(c, model).count(version) != (enabled ? 1u : 0u)) return false;
    statement st(c,
                 "INSERT INTO version_events (model, version, event, time, actor, reason)"
                 " VALUES (?,?,?,?,?,?)");
    st.bind(1, model).bind(2, version).bind(3, enabled ? "enabled" : "disabled");
    st.bind(4, now_micros()).bind(5, actor).bind(6, reason).run();
    return true;
}

namespace {

// The versions `sql` (bound to the model as ?1) selects.
std::set<std::int64_t> version_set(connection& c, const char* sql, const std::string& model) {
    statement st(c, sql);
    st.bind(1, model);
    std::set<std::int64_t> out;
    while (st.step()) out.insert(st.column_int(0));
    return out;
}

}  // namespace

std::set<std::int64_t> disabled_versions(connection& c, const std::string& model) {
    return version_set(c,
                       "SELECT version FROM version_events e WHERE model = ?1 AND id = (SELECT"
                       " max(id) FROM version_events WHERE model = ?1 AND version = e.version)"
                       " AND event = 'disabled'",
                       model);
}

std::vector<experiment_event_row> list_experiment_events(connection& c, std::int64_t experiment) {
    statement st(c,
                 "SELECT time, event, actor, arms, reason FROM experiment_events"
                 " WHERE experiment = ? ORDER BY id");
    st.bind(1, experiment);
    std::vector<experiment_event_row> out;
    while (st.step()) {
        out.push_back({st.column_int(0), st.column_text(1), st.column_text(2), st.column_text(3),
                       st.column_text(4)});
    }
    return out;
}

std::optional<micros> last_enabled_at(connection& c, const std::string& model,
                                      std::int64_t version) {
    statement st(c,
                 "SELECT max(time) FROM version_events WHERE model = ?1 AND version = ?2"
                 " AND event = 'enabled'");
    st.bind(1, model).bind(2, version);
    if (!st.step() || st.is_null(0)) return std::nullopt;
    return st.column_int(0);
}

std::vector<version_event_row> list_version_events(connection& c, const std::string& model,
                                                   const page& p) {
    statement st(c,
                 "SELECT id, model, version, event, time, actor, reason FROM version_events"
                 " WHERE model = ? AND id < ? ORDER BY id DESC LIMIT ?");
    st.bind(1, model).bind(2, p.before.value_or(INT64_MAX)).bind(3, p.limit);
    std::vector<version_event_row> out;
    while (st.step()) out.push_back(read_version_event(st));
    return out;
}

std::vector<std::int64_t> live_history(connection& c, const std::string& model) {
    // Replayed oldest first as a path: a move to a version already on it
    // goes back to it (a rollback, the supervisor's move back, or a person
    // promoting an older version again), dropping what came after; a move
    // to any other version goes forward. Read newest first as "every
    // version live has been on" made a second rollback undo the first.
    // Removing the alias takes its version down: it steps back off the
    // path (it kept answering as the first fallback).
    // Every move, however many: a path replayed from the newest 10,000 alone
    // lost where a long back-and-forth began, and a rollback then went back
    // to the version it had just left. `where` keeps each step's place, so a
    // replay is linear in the moves.
    statement st(c,
                 "SELECT version, previous_version FROM deployments WHERE model = ?"
                 " AND alias = 'live' ORDER BY id");
    st.bind(1, model);
    std::vector<std::int64_t> path;
    std::unordered_map<std::int64_t, std::size_t> where;
    auto cut_after = [&](std::size_t keep) {
        while (path.size() > keep) {
            where.erase(path.back());
            path.pop_back();
        }
    };
    while (st.step()) {
        const std::optional<std::int64_t> to = st.column_opt_int(0), from = st.column_opt_int(1);
        if (!to) {
            if (!path.empty() && from == path.back()) cut_after(path.size() - 1);
            continue;
        }
        if (auto on = where.find(*to); on != where.end()) {
            cut_after(on->second + 1);
        } else {
            where.emplace(*to, path.size());
            path.push_back(*to);
        }
    }
    std::reverse(path.begin(), path.end());
    return path;
}

removed_artifacts_row remove_old_artifacts(connection& c, const std::string& model, int keep) {
    removed_artifacts_row out;
    if (keep <= 0) return out;
    std::set<std::int64_t> kept;
    for (const alias_row& a : list_aliases(c, model)) kept.insert(a.version);
    {
        statement arms(c,
                       "SELECT json_extract(a.value, '$.version') FROM experiments e,"
                       " json_each(e.arms) a WHERE e.model = ? AND e.ended_at IS NULL");
        arms.bind(1, model);
        while (arms.step()) kept.insert(arms.column_int(0));
    }
    const std::vector<std::int64_t> path = live_history(c, model);
    for (std::size_t i = 0; i < path.size() && i < static_cast<std::size_t>(keep); ++i) {
        kept.insert(path[i]);
    }
    statement candidates(c,
                         "SELECT version, artifact_bytes FROM model_versions WHERE model = ?1"
                         " AND artifact_removed_at IS NULL AND version <= (SELECT max(version)"
                         " FROM model_versions WHERE model = ?1) - ?2 ORDER BY version");
    candidates.bind(1, model).bind(2, static_cast<std::int64_t>(keep));
    std::vector<std::pair<std::int64_t, std::int64_t>> gone;
    while (candidates.step()) {
        if (!kept.count(candidates.column_int(0)))
            gone.emplace_back(candidates.column_int(0), candidates.column_int(1));
    }
    statement up(c,
                 "UPDATE model_versions SET artifact = x'', artifact_removed_at = ?"
                 " WHERE model = ? AND version = ?");
    const micros now = now_micros();
    for (const auto& [version, bytes] : gone) {
        up.reset();
        up.bind(1, now).bind(2, model).bind(3, version).run();
        out.versions.push_back(version);
        out.bytes += bytes;
    }
    return out;
}

std::set<std::int64_t> removed_artifact_versions(connection& c, const std::string& model) {
    return version_set(c,
                       "SELECT version FROM model_versions WHERE model = ?1 AND"
                       " artifact_removed_at IS NOT NULL",
                       model);
}

status check_servable(connection& c, const std::string& model, std::int64_t version) {
    statement st(c,
                 "SELECT artifact_removed_at FROM model_versions WHERE model = ? AND version = ?");
    st.bind(1, model).bind(2, version);
    if (!st.step()) {
        return status(error_kind::not_found,
                      "model " + model + " has no version " + std::to_string(version), "version");
    }
    if (st.column_opt_int(0)) {
        return status(error_kind::conflict,
                      "version " + std::to_string(version) + " of model " + model +
                          " cannot serve: its artifact was removed by retention (serve "
                          "--keep-versions) at " +
                          format_rfc3339(*st.column_opt_int(0)),
                      "version");
    }
    return status::ok();
}

void add_supervisor_action(connection& c, const supervisor_action_row& a, std::int64_t keep) {
    statement st(c,
                 "INSERT INTO supervisor_actions (time, kind, model, version, reason, outcome)"
                 " VALUES (?,?,?,?,?,?)");
    st.bind(1, a.time)
        .bind(2, a.kind)
        .bind(3, a.model)
        .bind(4, a.version)
        .bind(5, a.reason)
        .bind(6, a.outcome)
        .run();
    // Ids grow by one per row: those at or below the newest minus `keep` go.
    statement trim(c, "DELETE FROM supervisor_actions WHERE id <= ? - ?");
    trim.bind(1, c.last_insert_rowid()).bind(2, keep).run();
}

std::vector<supervisor_action_row> recent_supervisor_actions(connection& c, std::int64_t n) {
    statement st(c,
                 "SELECT time, kind, model, version, reason, outcome FROM"
                 " (SELECT * FROM supervisor_actions ORDER BY id DESC LIMIT ?) ORDER BY id");
    st.bind(1, n);
    std::vector<supervisor_action_row> out;
    while (st.step()) {
        out.push_back({st.column_int(0), st.column_text(1), st.column_text(2), st.column_int(3),
                       st.column_text(4), st.column_text(5)});
    }
    return out;
}

namespace {

void experiment_event(connection& c, std::int64_t id, const std::string& actor,
                      const std::string& event, const std::string& arms, const std::string& reason) {
    statement st(c,
                 "INSERT INTO experiment_events (experiment, time, actor, event, arms, reason)"
                 " VALUES (?,?,?,?,?,?)");
    st.bind(1, id).bind(2, now_micros()).bind(3, actor).bind(4, event).bind(5, arms).bind(6, reason).run();
}

experiment_row read_experiment(const statement& st) {
    return {st.column_int(0),      st.column_text(1),     st.column_text(2),
            st.column_int(3),      st.column_text(4),     st.column_text(5),
            st.column_opt_int(6),  st.column_opt_text(7), st.column_opt_text(8),
            st.column_opt_text(9), st.column_opt_text(10)};
}

constexpr const char* experiment_columns =
    "id, model, arms, started_at, started_by, reason, ended_at, ended_by, end_reason, results, "
    "canary";

}  // namespace

namespace {

// Every arm's version can serve, read in the write's own transaction: a
// check before it (on a reader) let a disable that committed meanwhile
// through, and the arm answered only with fallbacks.
// `kept`: the versions the experiment's arms have now, which may stay
// though disabled (a change of weights needed them enabled again first).
status arms_can_serve(connection& c, const std::string& model, const std::string& arms,
                      const std::set<std::int64_t>& kept = {}) {
    statement st(c, "SELECT key, json_extract(value, '$.version') FROM json_each(?)");
    st.bind(1, arms);
    const auto disabled = disabled_versions(c, model);
    while (st.step()) {
        const std::int64_t version = st.column_int(1);
        const std::string field = "arms[" + std::to_string(st.column_int(0)) + "].version";
        if (status s = check_servable(c, model, version); !s)
            return status(s.kind(), s.message(), field);
        if (disabled.count(version) && !kept.count(version)) {
            return status(error_kind::conflict,
                          "version " + std::to_string(version) + " of model " + model +
                              " is disabled: enable it before giving it an arm",
                          field);
        }
    }
    return status::ok();
}

}  // namespace

std::set<std::int64_t> arm_versions(connection& c, const std::string& arms) {
    statement st(c, "SELECT json_extract(value, '$.version') FROM json_each(?)");
    st.bind(1, arms);
    std::set<std::int64_t> out;
    while (st.step()) out.insert(st.column_int(0));
    return out;
}

namespace {}  // namespace

result<std::int64_t> start_experiment(connection& c, const std::string& model,
                                      const std::string& arms, const std::string& actor,
                                      const std::string& reason,
                                      const std::optional<std::string>& canary) {
    if (status s = refuse_if_archived(c, model, "start an experiment"); !s) return s;
    if (status s = arms_can_serve(c, model, arms); !s) return s;
    if (auto active = active_experiment(c, model)) {
        return status(error_kind::conflict,
                      "model " + model + " already has experiment " + std::to_string(active->id) +
                          " running; change or end it first");
    }
    statement st(c,
                 "INSERT INTO experiments (model, arms, started_at, started_by, reason, canary)"
                 " VALUES (?,?,?,?,?,?)");
    st.bind(1, model).bind(2, arms).bind(3, now_micros()).bind(4, actor).bind(5, reason);
    st.bind(6, canary).run();
    std::int64_t id = c.last_insert_rowid();
    experiment_event(c, id, actor, "started", arms, reason);
    return id;
}

namespace {

// Why experiment `id` could not be changed or ended: it has ended (409, as
// for a finished job), or there is no such experiment.
status not_running(connection& c, std::int64_t id) {
    if (auto e = get_experiment(c, id); e && e->ended_at) {
        return status(error_kind::conflict,
                      "experiment " + std::to_string(id) + " has ended; start a new one", "id");
    }
    return status(error_kind::not_found, "no experiment " + std::to_string(id), "id");
}

}  // namespace

result<bool> change_experiment(connection& c, std::int64_t id, const std::string& arms,
                               const std::string& actor, const std::string& reason) {
    bool same = false;  // the arms as they are (names, versions, shadows, weights)
    if (auto e = get_experiment(c, id); e && !e->ended_at) {
        if (status s = arms_can_serve(c, e->model, arms, arm_versions(c, e->arms)); !s) return s;
        statement compare(
            c,
            "SELECT json_array_length(?1) = json_array_length(?2) AND json_array_length(?1) ="
            " (SELECT count(*) FROM json_each(?1) a JOIN json_each(?2) b ON a.key = b.key"
            "  WHERE json_extract(a.value, '$.name') IS json_extract(b.value, '$.name')"
            "  AND json_extract(a.value, '$.version') IS json_extract(b.value, '$.version')"
            "  AND coalesce(json_extract(a.value, '$.shadow'), 0) ="
            "      coalesce(json_extract(b.value, '$.shadow'), 0)"
            "  AND abs(coalesce(json_extract(a.value, '$.weight'), 0) -"
            "          coalesce(json_extract(b.value, '$.weight'), 0)) < 1e-12)");
        compare.bind(1, arms).bind(2, e->arms);
        same = compare.step() && compare.column_int(0) == 1;
        // Nothing to record: a PUT sent again after its answer was lost
        // recorded a change and moved the ETag (its If-Match then failed).
        if (same) return false;
    }
    // A person's change hands a canary over to them: its policy no longer
    // decides it (the outcome says so), the experiment is theirs to end. The
    // arms sent back as they are changed nothing, and handed nothing over
    // (returned above).
    statement st(c,
                 "UPDATE experiments SET arms = ?, canary = CASE WHEN canary IS NULL OR"
                 " json_extract(canary, '$.outcome') IS NOT NULL THEN canary"
                 " ELSE json_set(canary, '$.outcome', 'handed_over') END"
                 " WHERE id = ? AND ended_at IS NULL");
    st.bind(1, arms).bind(2, id).run();
    if (c.changes() != 1) return not_running(c, id);
    experiment_event(c, id, actor, "changed", arms, reason);
    return true;
}

bool replace_experiment_canary(connection& c, std::int64_t id, const std::string& from,
                               const std::string& to, const std::string& actor,
                               const std::string& reason) {
    statement st(
        c, "UPDATE experiments SET canary = ? WHERE id = ? AND ended_at IS NULL AND canary = ?");
    st.bind(1, to).bind(2, id).bind(3, from).run();
    if (c.changes() != 1) return false;
    auto e = get_experiment(c, id);
    experiment_event(c, id, actor, "changed", e ? e->arms : "[]", reason);
    return true;
}

status end_experiment(connection& c, std::int64_t id, const std::string& actor,
                      const std::string& reason, const std::optional<std::string>& results,
                      const std::string& canary_outcome) {
    // A canary not yet decided takes the outcome given (a person's end:
    // "ended").
    statement st(c,
                 "UPDATE experiments SET ended_at = ?, ended_by = ?, end_reason = ?, results = ?,"
                 " canary = CASE WHEN canary IS NULL OR json_extract(canary, '$.outcome') IS NOT"
                 " NULL THEN canary ELSE json_set(canary, '$.outcome', ?) END"
                 " WHERE id = ? AND ended_at IS NULL");
    st.bind(1, now_micros()).bind(2, actor).bind(3, reason).bind(4, results);
    st.bind(5, canary_outcome).bind(6, id).run();
    if (c.changes() != 1) return not_running(c, id);
    auto e = get_experiment(c, id);
    experiment_event(c, id, actor, "ended", e ? e->arms : "[]", reason);
    return status::ok();
}

std::optional<experiment_row> active_experiment(connection& c, const std::string& model) {
    statement st(c, std::string("SELECT ") + experiment_columns +
                        " FROM experiments WHERE model = ? AND ended_at IS NULL");
    st.bind(1, model);
    if (!st.step()) return std::nullopt;
    return read_experiment(st);
}

std::optional<experiment_row> get_experiment(connection& c, std::int64_t id) {
    statement st(c, std::string("SELECT ") + experiment_columns + " FROM experiments WHERE id = ?");
    st.bind(1, id);
    if (!st.step()) return std::nullopt;
    return read_experiment(st);
}

std::optional<experiment_row> experiment_started_at(connection& c, const std::string& model,
                                                    micros at) {
    statement st(c, std::string("SELECT ") + experiment_columns +
                        " FROM experiments WHERE model = ? AND started_at = ? ORDER BY id DESC "
                        "LIMIT 1");
    st.bind(1, model).bind(2, at);
    if (!st.step()) return std::nullopt;
    return read_experiment(st);
}

std::vector<experiment_row> list_experiments(connection& c, const std::string& model,
                                             const page& p) {
    statement st(c, std::string("SELECT ") + experiment_columns +
                        " FROM experiments WHERE model = ? AND id < ? ORDER BY id DESC LIMIT ?");
    st.bind(1, model).bind(2, p.before.value_or(INT64_MAX)).bind(3, p.limit);
    std::vector<experiment_row> out;
    while (st.step()) out.push_back(read_experiment(st));
    return out;
}

void probability_list::assign(const std::vector<double>& p) {
    n_ = p.size();
    if (n_ <= inline_.size()) {
        std::copy(p.begin(), p.end(), inline_.begin());
        heap_.clear();
    } else {
        heap_ = p;
    }
}

namespace {

prediction_segment& segment_of(std::vector<prediction_segment>& open, const std::string& model) {
    // A flush holds one or two models: a list beats a map.
    for (auto& s : open) {
        if (s.model == model) return s;
    }
    prediction_segment& seg = open.emplace_back();
    seg.model = model;
    return seg;
}

void widen(prediction_segment& seg, micros first, micros last) {
    seg.first_time = seg.size ? std::min(seg.first_time, first) : first;
    seg.last_time = seg.size ? std::max(seg.last_time, last) : last;
}

}  // namespace

void add_prediction_entries(std::vector<prediction_segment>& open, const prediction_row* rows,
                            std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        const prediction_row& p = rows[i];
        prediction_segment& seg = segment_of(open, p.model);
        widen(seg, p.time, p.time);
        std::string& e = seg.entries;
        e += seg.size++ ? ',' : '[';  // open: the array's closing bracket comes last
        // The order of the view's columns in migrations/0008.
        json_writer w(e);
        e += '[';
        const std::string_view id(p.id.data(), p.id.size());
        p.shadow ? w.string(std::string(id) + "-" + p.arm) : w.string(id);  // a shadow arm's row: id-arm
        e += ',';
        p.version ? w.integer(*p.version) : w.null();
        e += ',';
        w.string(p.arm);
        e += p.shadow ? ",1," : ",0,";
        p.entity.empty() ? w.null() : w.string(p.entity);
        e += ',';
        w.integer(p.time);
        e += ',';
        p.value ? w.number(*p.value) : w.null();
        e += ',';
        p.label ? w.string(*p.label) : w.null();
        e += ',';
        if (p.probabilities.empty()) {
            w.null();
        } else if (p.class_names.size() == p.probabilities.size()) {
            e += '{';
            for (std::size_t k = 0; k < p.class_names.size(); ++k)
                w.key(p.class_names[k]).number(p.probabilities.data()[k]);
            e += '}';
        } else {
            w.numbers(p.probabilities.data(), p.probabilities.size());
        }
        e += p.fallback ? ",1," : ",0,";
        w.string(p.reason);
        e += ',';
        w.integer(p.latency_us);
        e += ",\"";
        for (int k = 0; k < 16; ++k)
            e += "0123456789abcdef"[(p.features_hash >> (60 - 4 * k)) & 0xf];
        e += p.decision ? (*p.decision ? "\",1]" : "\",0]") : "\",null]";
    }
}

void merge_prediction_entries(std::vector<prediction_segment>& open, prediction_segment&& more) {
    if (!more.size) return;
    prediction_segment& seg = segment_of(open, more.model);
    if (!seg.size) {
        seg = std::move(more);
        return;
    }
    widen(seg, more.first_time, more.last_time);
    seg.size += more.size;
    seg.entries += ',';
    seg.entries.append(more.entries, 1);  // without its opening bracket
}

void close_prediction_segments(std::vector<prediction_segment>& open) {
    for (auto& s : open) s.entries += s.size ? "]" : "[]";
}

std::vector<prediction_segment> encode_predictions(const std::vector<prediction_row>& rows) {
    std::vector<prediction_segment> out;
    add_prediction_entries(out, rows.data(), rows.size());
    close_prediction_segments(out);
    return out;
}

void insert_prediction_segments(connection& c, const std::vector<prediction_segment>& segments) {
    statement& st = c.cached(
        "INSERT INTO prediction_segments (model, first_time, last_time, size, entries)"
        " VALUES (?,?,?,?,?)");
    for (const prediction_segment& s : segments) {
        st.reset();
        // The strings outlive st.run(): SQLite need not copy them.
        st.bind_static(1, s.model).bind(2, s.first_time).bind(3, s.last_time).bind(4, s.size);
        st.bind_static(5, s.entries);
        st.run();
    }
    st.reset();  // the bound strings are the caller's
}

expired_predictions expire_prediction_segments(connection& c, micros before, std::int64_t limit) {
    // Model by model through the (model, last_time) index, so that only the
    // expired segments' rows are read. Reading the oldest 100,000 rows by id
    // to find them, every minute, kept the writer's page cache full: 68 MB
    // more resident memory beside a 150 MB log, expiring nothing.
    expired_predictions out;
    std::int64_t& deleted = out.segments;
    statement first_model(c, "SELECT min(model) FROM prediction_segments");
    statement next_model(c, "SELECT min(model) FROM prediction_segments WHERE model > ?");
    // RETURNING: what was removed is counted, so retention is not silent.
    statement expire(c,
                     "DELETE FROM prediction_segments WHERE id IN (SELECT id FROM"
                     " prediction_segments WHERE model = ?1 AND last_time < ?2"
                     " ORDER BY last_time LIMIT ?3) RETURNING size");
    std::optional<std::string> model;
    while (deleted < limit) {
        statement& next = model ? next_model : first_model;
        next.reset();
        if (model) next.bind(1, *model);
        if (!next.step()) break;
        auto found = next.column_opt_text(0);
        if (!found) break;
        model = std::move(*found);
        expire.reset();
        expire.bind(1, *model).bind(2, before).bind(3, limit - deleted);
        while (expire.step()) {
            ++deleted;
            out.entries += expire.column_int(0);
        }
    }
    return out;
}

void insert_predictions(connection& c, const std::vector<prediction_row>& rows) {
    insert_prediction_segments(c, encode_predictions(rows));
}

}  // namespace kennel

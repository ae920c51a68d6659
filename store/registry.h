// The model registry: models and their immutable definition revisions,
// training jobs and their logs, immutable model versions, aliases and the
// append-only deployment history.
//
// Write functions run inside a writer task (store/writer.h) on the writer's
// connection and its transaction; read functions take a reader connection.
// Definitions and metrics are stored as JSON text: the registry does not
// interpret them. Like their connection, use from one thread at a time.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "store/db.h"
#include "store/status.h"
#include "store/time_util.h"

namespace kennel {

struct model_row {
    std::string name;
    micros created_at = 0;
    std::int64_t current_revision = 0;
    std::string definition;  // JSON of the current revision
    std::optional<micros> archived_at;  // set while the model is archived
};

// Which models list_models returns.
enum class model_filter { in_service, archived, all };

struct revision_row {
    std::string model;
    std::int64_t revision = 0;
    std::string definition;
    micros created_at = 0;
    std::string author;
};

enum class job_state { queued, running, succeeded, failed, timed_out, cancelled, interrupted };
const char* job_state_name(job_state s);
std::optional<job_state> parse_job_state(const std::string& s);
inline bool job_finished(job_state s) {
    return s != job_state::queued && s != job_state::running;
}

struct job_row {
    std::int64_t id = 0;
    std::string model;
    std::int64_t revision = 0;
    job_state state = job_state::queued;
    std::string trigger;
    std::string requested_by;
    micros created_at = 0;
    std::optional<micros> started_at;
    std::optional<micros> finished_at;
    double progress = 0;
    std::string message;
    std::optional<std::string> error;
    bool cancel_requested = false;
    std::optional<std::int64_t> requeued_from;
    std::optional<std::int64_t> version;
};

struct job_log_row {
    std::int64_t seq = 0;
    micros time = 0;
    std::string level;
    std::string message;
};

struct version_row {
    std::string model;
    std::int64_t version = 0;
    std::int64_t revision = 0;
    std::optional<std::int64_t> job;
    std::string algorithm;
    std::string params;  // JSON
    std::string artifact;  // bytes; left empty by listings
    std::string artifact_sha256;
    std::int64_t artifact_bytes = 0;
    std::string snapshot;          // JSON
    std::string metrics;           // JSON
    std::string baseline_metrics;  // JSON
    std::string gate;              // JSON
    std::string features;          // JSON
    std::string timings;           // JSON
    std::string baseline = "null";  // JSON: the baseline's constant answer
    std::string status;            // candidate | rejected
    micros created_at = 0;
    // When retention removed the artifact (the row stays; it cannot serve).
    std::optional<micros> artifact_removed_at;
};

struct alias_row {
    std::string model;
    std::string alias;
    std::int64_t version = 0;
    micros updated_at = 0;
};

struct deployment_row {
    std::int64_t id = 0;
    std::string model;
    std::string alias;
    std::optional<std::int64_t> version;
    std::optional<std::int64_t> previous_version;
    micros time = 0;
    std::string actor;
    std::string reason;
};

// ---- writes (inside a writer task) ---------------------------------------

// Creates the model or adds a revision when the definition differs from the
// current one. Returns the current revision and whether it is new.
struct put_model_result {
    std::int64_t revision = 0;
    bool created_model = false;
    bool new_revision = false;
};
put_model_result put_model(connection& c, const std::string& name, const std::string& definition,
                           const std::string& author);

// The job queued for the model's current revision, if any (the oldest).
std::optional<std::int64_t> queued_job_of_current_revision(connection& c, const std::string& model);

// After a new revision: a job still queued for an older one would train a
// definition since replaced. It is carried over: a job for the current
// revision, with the oldest such job's trigger and requester, takes the
// place of every one of them (insert_job cancels them, "superseded by job
// N"). Returns the new job's id, or nullopt when none was queued.
std::optional<std::int64_t> carry_queued_jobs_to_current_revision(connection& c,
                                                                  const std::string& model);

// Queues a job for the model's current revision; returns its id. A requeue
// (requeued_from set: a job interrupted by a stop or crash) joins a job
// already queued for that revision instead, as POST …/train does, and
// returns that job's id: queued beside it, the model would train twice.
std::int64_t insert_job(connection& c, const std::string& model, const std::string& trigger,
                        const std::string& requested_by,
                        std::optional<std::int64_t> requeued_from = std::nullopt);

// Moves a job to a new state when the move is legal (queued -> running or
// cancelled; running -> any finished state). Returns false otherwise. A
// finished state other than succeeded sets the message to "<state>: <error>".
bool transition_job(connection& c, std::int64_t id, job_state from, job_state to,
                    const std::optional<std::string>& error = std::nullopt);
void set_job_progress(connection& c, std::int64_t id, double progress, const std::string& message);
void set_job_version(connection& c, std::int64_t id, std::int64_t version);
void append_job_log(connection& c, std::int64_t id, const std::string& level,
                    const std::string& message);
// Marks a queued job cancelled, or flags a running one for the worker.
status request_cancel(connection& c, std::int64_t id);

// Jobs left running by a crash: marked interrupted, each queued again,
// unless a crash had interrupted the job it was queued for as well (then it
// is failed, and queued is 0).
struct requeued_job {
    std::int64_t interrupted = 0;  // the job the crash left running
    std::string model;
    std::int64_t queued = 0;  // the new job standing for it; 0: none
};
std::vector<requeued_job> recover_interrupted_jobs(connection& c);

// Inserts a version with the next number; returns that number.
std::int64_t insert_version(connection& c, version_row v);

// Points an alias at a version and records the move. version = nullopt
// removes the alias. not_found for an unknown version; conflict for live
// on a disabled version (it would not serve: every answer a fallback). A
// move to the version the alias already points at changes and records
// nothing. Live moving past the candidate removes that alias (recorded:
// "superseded").
status move_alias(connection& c, const std::string& model, const std::string& alias,
                  std::optional<std::int64_t> version, const std::string& actor,
                  const std::string& reason);

// ---- reads -----------------------------------------------------------------

// One page of a list read from its newest end: at most `limit` rows, and
// only those before `before` (an id, or a version or revision number).
struct page {
    page(int limit_ = std::numeric_limits<int>::max(), std::optional<std::int64_t> before_ = {})
        : limit(limit_), before(before_) {}
    int limit;
    std::optional<std::int64_t> before;
};

std::vector<model_row> list_models(connection& c, model_filter f = model_filter::in_service);

// What GET /v1/models shows of each model, read for all models at once (it
// was read model by model, with each definition parsed for its task: 94-146
// ms a call at 1,253 models).
struct model_summary {
    std::string task;
    std::vector<std::pair<std::string, std::int64_t>> aliases;  // by name
    std::int64_t versions = 0;
    std::optional<job_row> last_job;
};
std::map<std::string, model_summary> model_summaries(connection& c);
std::optional<model_row> get_model(connection& c, const std::string& name);
// Oldest first: the newest p.limit revisions (below p.before).
std::vector<revision_row> list_revisions(connection& c, const std::string& model,
                                         const page& p = {});
std::optional<revision_row> get_revision(connection& c, const std::string& model,
                                         std::int64_t revision);

std::optional<job_row> get_job(connection& c, std::int64_t id);
std::vector<job_row> list_jobs(connection& c, const std::optional<std::string>& model, int limit);
// Newest first: jobs of `model` (any if unset) in one of `states` (any if
// empty) with ids below `before` (if set), at most `limit`.
struct job_filter {
    std::optional<std::string> model;
    std::vector<job_state> states;
    std::optional<std::int64_t> before;
    int limit = 100;
};
std::vector<job_row> list_jobs(connection& c, const job_filter& f);
std::optional<job_row> next_queued_job(connection& c);
std::vector<job_log_row> job_log(connection& c, std::int64_t id, std::int64_t after_seq = 0);
bool has_active_job(connection& c, const std::string& model);

// Without the features' drift profile (get_version has it). Oldest first:
// the newest p.limit versions (below p.before).
std::vector<version_row> list_versions(connection& c, const std::string& model, const page& p = {});
std::int64_t count_versions(connection& c, const std::string& model);
// with_artifact: also read the artifact bytes.
std::optional<version_row> get_version(connection& c, const std::string& model,
                                       std::int64_t version, bool with_artifact);

std::vector<alias_row> list_aliases(connection& c, const std::string& model);
std::optional<std::int64_t> alias_version(connection& c, const std::string& model,
                                          const std::string& alias);
// The version the alias pointed at `at` (as its moves recorded it); when it
// pointed nowhere then, the first version it was pointed at after; or none.
std::optional<std::int64_t> alias_version_since(connection& c, const std::string& model,
                                                const std::string& alias, micros at);
// Whether the alias was removed at some time (a deployment with no
// version): a removal sent again finds it gone, which is no error.
bool alias_was_removed(connection& c, const std::string& model, const std::string& alias);

// The newest records that touched live: a move of the live alias, and a
// disable or enable of `version` (ids; 0 when none). A job compares them at
// its start and at its end: live back where it was is not live untouched.
struct live_marks {
    std::int64_t move = 0;
    std::int64_t event = 0;
    friend bool operator==(const live_marks&, const live_marks&) = default;
};
live_marks live_marks_of(connection& c, const std::string& model,
                         std::optional<std::int64_t> version);
// The first move of the alias after deployment `after_id` (a live mark):
// a canary (ml/canary.h) ends on a person's act even when undone since.
std::optional<deployment_row> first_alias_move_after(connection& c, const std::string& model,
                                                     const std::string& alias,
                                                     std::int64_t after_id);
// Newest first, as the other lists below.
std::vector<deployment_row> list_deployments(connection& c, const std::string& model,
                                             const page& p);

// Labels that arrived after the model's last training snapshot, for the
// every-N-new-labels trigger: facts in the label stream with the label field,
// with ids in (after_fact_id, up_to_fact_id] (to the newest when not given)
// and stored after `ingested_after` (for a newest job from before its
// facts_seen was kept: a job that failed keeps no snapshot, and without
// this its labels counted again).
std::int64_t count_labels_after(connection& c, const std::string& stream, const std::string& field,
                                std::int64_t after_fact_id, micros ingested_after = 0,
                                std::optional<std::int64_t> up_to_fact_id = std::nullopt);
// The model's newest job, for the scheduler (one read): when it was queued,
// when it last changed (ended, else started, else queued), the newest fact
// id when it was queued (nullopt for a job from before Kennel kept it), and
// how many of the newest jobs failed or timed out in a row (of the newest
// 16). All empty without a job.
struct job_recency {
    std::optional<micros> created_at;
    std::optional<micros> last_activity;
    std::optional<std::int64_t> facts_seen;
    int failed_in_a_row = 0;
};
job_recency last_job_recency(connection& c, const std::string& model);
// The highest fact id that the newest finished job (any state) trained on, or
// 0; read from the newest version's snapshot.
std::int64_t last_snapshot_fact_id(connection& c, const std::string& model);
// When the model's newest job (or, with a trigger, its newest job queued by
// that trigger) was created.
std::optional<micros> last_job_created_at(connection& c, const std::string& model,
                                          const std::optional<std::string>& trigger = {});

}  // namespace kennel

namespace kennel {

// ---- serving state (migration 0003) ----------------------------------------

struct version_event_row {
    std::int64_t id = 0;
    std::string model;
    std::int64_t version = 0;
    std::string event;  // disabled | enabled
    micros time = 0;
    std::string actor;
    std::string reason;
};

// An archive or a restore of a model (table model_events, migration 0014).
struct model_event_row {
    std::int64_t id = 0;
    std::string event;  // archived | restored
    micros time = 0;
    std::string actor;
    std::string reason;
};

// What archiving a model did besides the event.
struct archive_effects {
    std::vector<std::int64_t> cancelled_jobs;  // queued ones cancelled, running ones asked to stop
    std::optional<std::int64_t> ended_experiment;
};

// The 404 of a name no model has, as every route says it.
status no_model_named(const std::string& model);

// Archives a model: appends the event, marks the model, cancels its queued
// jobs, asks its running one to stop and ends its active experiment, all in
// the caller's transaction. Its aliases stay, so a restore serves it as it
// was. Unchanged (false) when it already is archived; not_found for an
// unknown model.
result<bool> archive_model(connection& c, const std::string& model, const std::string& actor,
                           const std::string& reason, archive_effects& effects);
// Puts an archived model back in service (false: it was not archived).
result<bool> restore_model(connection& c, const std::string& model, const std::string& actor,
                           const std::string& reason);
// The model's newest `limit` archives and restores, oldest first.
std::vector<model_event_row> list_model_events(connection& c, const std::string& model,
                                               std::int64_t limit = 100);
std::int64_t count_model_events(connection& c, const std::string& model);
// The event that archived the model, while it is archived.
std::optional<model_event_row> current_archive(connection& c, const std::string& model);
// "model m is archived (since …, by …: why)".
std::string archived_note(const std::string& model, const model_event_row& archive);
// A conflict naming the archive (when, by whom, why) if the model is
// archived, for a write that would change what it is or serves (`what`:
// "change its definition"); ok otherwise, also for an unknown model.
status refuse_if_archived(connection& c, const std::string& model, const std::string& what);
// When the model's newest logged prediction was made, if any.
std::optional<micros> last_prediction_time(connection& c, const std::string& model);

// What the supervisor did (table supervisor_actions, migration 0013).
struct supervisor_action_row {
    micros time = 0;
    std::string kind;  // disable | drift
    std::string model;
    std::int64_t version = 0;
    std::string reason;
    std::string outcome;
};
// Appends one; past the newest `keep`, the oldest are deleted.
void add_supervisor_action(connection& c, const supervisor_action_row& a,
                           std::int64_t keep = 10000);
// The newest `n`, oldest first.
std::vector<supervisor_action_row> recent_supervisor_actions(connection& c, std::int64_t n);

// One step of an experiment's history: started, changed or ended.
struct experiment_event_row {
    micros time = 0;
    std::string event;
    std::string actor;
    std::string arms;  // JSON, as they were after this step
    std::string reason;
};

struct experiment_row {
    std::int64_t id = 0;
    std::string model;
    std::string arms;  // JSON [{"name","version","weight","shadow"}]
    micros started_at = 0;
    std::string started_by;
    std::string reason;
    std::optional<micros> ended_at;
    std::optional<std::string> ended_by;
    std::optional<std::string> end_reason;
    // JSON: what its arms showed when it ended, from the end's request
    // (null: ended before results were kept, or by archiving its model).
    std::optional<std::string> results;
    // JSON: the canary this experiment is (ml/canary.h), null for a person's.
    std::optional<std::string> canary;
};

// Appends a disabled/enabled event unless the version is already in that
// state (a version without events is enabled). Returns whether it changed;
// not_found for an unknown version.
result<bool> set_version_enabled(connection& c, const std::string& model, std::int64_t version,
                                 bool enabled, const std::string& actor, const std::string& reason);
std::set<std::int64_t> disabled_versions(connection& c, const std::string& model);
// The versions of an experiment's arms (its JSON).
std::set<std::int64_t> arm_versions(connection& c, const std::string& arms);
// When the version was last enabled (after being disabled), if ever.
std::optional<micros> last_enabled_at(connection& c, const std::string& model,
                                      std::int64_t version);
std::vector<version_event_row> list_version_events(connection& c, const std::string& model,
                                                   const page& p);
// The first disable of the version after event `after_id` (as above).
std::optional<version_event_row> first_disable_after(connection& c, const std::string& model,
                                                     std::int64_t version, std::int64_t after_id);
// An experiment's history, oldest first.
std::vector<experiment_event_row> list_experiment_events(connection& c, std::int64_t experiment);
// The path live came by, newest first (live itself first): every move to a
// new version steps forward, a move back to a version on the path (a
// rollback) drops the versions after it. After 1 -> 2 -> 3 and a rollback
// to 2: [2, 1]; rolling back again reaches 1, then nothing. Removing the
// alias drops the version it pointed at: after 1 -> 2 -> 3 and a removal,
// [2, 1].
std::vector<std::int64_t> live_history(connection& c, const std::string& model);

// Retention: removes the artifacts of the model's versions that no alias or
// active experiment names, that are not among the `keep` newest, and that
// are not among the last `keep` steps of live's path (what a rollback
// reaches). keep <= 0 removes nothing. Returns the versions whose artifacts
// it removed, oldest first, and their bytes.
struct removed_artifacts_row {
    std::vector<std::int64_t> versions;
    std::int64_t bytes = 0;
};
removed_artifacts_row remove_old_artifacts(connection& c, const std::string& model, int keep);
// The model's versions whose artifacts were removed.
std::set<std::int64_t> removed_artifact_versions(connection& c, const std::string& model);
// not_found for an unknown version; conflict for one whose artifact
// retention removed (it cannot serve, so no alias or arm may name it).
status check_servable(connection& c, const std::string& model, std::int64_t version);

// Starts an experiment (conflict when one is active), changes its arms, or
// ends it; every step is recorded in experiment_events.
// A canary (JSON, ml/canary.h) is started by the canary promotion policy;
// a change of its arms hands it over to the person (outcome "handed_over"),
// and an end records `canary_outcome` unless it was decided.
result<std::int64_t> start_experiment(connection& c, const std::string& model,
                                      const std::string& arms, const std::string& actor,
                                      const std::string& reason,
                                      const std::optional<std::string>& canary = std::nullopt);
// Whether anything changed: arms sent as they are record nothing (false).
result<bool> change_experiment(connection& c, std::int64_t id, const std::string& arms,
                               const std::string& actor, const std::string& reason);
status end_experiment(connection& c, std::int64_t id, const std::string& actor,
                      const std::string& reason,
                      const std::optional<std::string>& results = std::nullopt,
                      const std::string& canary_outcome = "ended");
// A canary's JSON replaced, recorded as a change of the experiment by
// `actor`: false when the experiment ended or its canary is no longer
// `from` (it was decided or handed over since it was read).
bool replace_experiment_canary(connection& c, std::int64_t id, const std::string& from,
                               const std::string& to, const std::string& actor,
                               const std::string& reason);
std::optional<experiment_row> active_experiment(connection& c, const std::string& model);
std::optional<experiment_row> get_experiment(connection& c, std::int64_t id);
// The newest experiment of the model that started at `at` (live metrics
// asked ?since= an ended experiment's start compare its arms as it did).
std::optional<experiment_row> experiment_started_at(connection& c, const std::string& model,
                                                    micros at);
std::vector<experiment_row> list_experiments(connection& c, const std::string& model,
                                             const page& p);

// Per-class probabilities; up to four are held inline.
class probability_list {
public:
    void assign(const std::vector<double>& p);
    std::size_t size() const { return n_; }
    bool empty() const { return n_ == 0; }
    const double* data() const { return n_ <= inline_.size() ? inline_.data() : heap_.data(); }

private:
    std::array<double, 4> inline_{};
    std::vector<double> heap_;
    std::size_t n_ = 0;
};

// One prediction log entry. Rows are made on request threads and freed on
// the writer thread, and freeing small heap strings across threads cost the
// writer more than SQLite's insert did (bench/predict batch32, perf: _int_free
// the writer's top symbol); so the common row holds no heap memory: fixed-size
// id and hash, probabilities inline, short names in std::string's own buffer.
struct prediction_row {
    std::array<char, 32> id{};  // 32 hex digits; a shadow row's id is id + "-" + arm
    std::string model;
    std::optional<std::int64_t> version;
    std::string arm;
    bool shadow = false;
    std::string entity;
    micros time = 0;
    std::optional<double> value;
    std::optional<std::string> label;
    probability_list probabilities;  // stored as a JSON array, or NULL when empty
    // For an answer no version gave (a baseline's, the prior's): the
    // probabilities' classes, which no version in the row names. The
    // probabilities are then stored as an object of class -> probability.
    // A rare row: the heap memory above is paid only here.
    std::vector<std::string> class_names;
    bool fallback = false;
    std::string reason;
    std::int64_t latency_us = 0;
    std::uint64_t features_hash = 0;  // stored as 16 hex digits
    // A binary answer's decision as served (its version's threshold, or the
    // fallback's): live metrics measure what was decided, not a replay.
    std::optional<bool> decision;
};

// A stored piece of the log: one model's predictions from one flush, as the
// JSON array the prediction_segments table holds (migration 0008).
struct prediction_segment {
    std::string model;
    micros first_time = 0;
    micros last_time = 0;
    std::int64_t size = 0;
    std::string entries;
};

// The rows as segments, one per model. Pure: runs off the writer's thread.
std::vector<prediction_segment> encode_predictions(const std::vector<prediction_row>& rows);

// The steps of encode_predictions for a log that gathers entries from many
// threads: add_prediction_entries encodes rows into open segments (one per
// model; their arrays not yet closed), merge_prediction_entries moves one
// open segment's entries into another's, close_prediction_segments closes
// the arrays.
void add_prediction_entries(std::vector<prediction_segment>& open, const prediction_row* rows,
                            std::size_t n);
void merge_prediction_entries(std::vector<prediction_segment>& open, prediction_segment&& more);
void close_prediction_segments(std::vector<prediction_segment>& open);

// Inserts the segments in the caller's transaction.
void insert_prediction_segments(connection& c, const std::vector<prediction_segment>& segments);

// Deletes segments whose newest prediction is older than `before`, oldest
// first, at most `limit` of them (one call a minute keeps a busy log's
// deletions small); returns how many, and the predictions they held.
struct expired_predictions {
    std::int64_t segments = 0;
    std::int64_t entries = 0;
};
expired_predictions expire_prediction_segments(connection& c, micros before,
                                               std::int64_t limit = 100000);

// Inserts the rows in the caller's transaction (encode, then insert).
void insert_predictions(connection& c, const std::vector<prediction_row>& rows);

}  // namespace kennel

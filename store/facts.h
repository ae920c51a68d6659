// Facts: the immutable, append-only event log.
//
// Writes go through fact_writer (store/writer.h) on the single writer
// connection; the read functions here take any reader connection. All
// functions are stateless apart from the connection they are given, so they
// are as thread-safe as that connection (one thread at a time).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/db.h"
#include "store/status.h"
#include "store/time_util.h"

namespace kennel {

// A fact that passed validation at the edge, ready to store. `data_json` is a
// JSON object serialised canonically (keys sorted) so the derived idempotency
// key does not depend on the client's key order.
struct fact_input {
    std::string idempotency_key;
    std::string stream;
    std::string entity;
    micros event_time = 0;
    std::string data_json;
    std::optional<std::int64_t> corrects;
    // False when the server stamped the time: a resend with the same client
    // key then differs in time alone and is still the same fact.
    bool time_given = true;
    // True when `idempotency_key` came from derive_idempotency_key.
    bool key_derived = false;
};

enum class write_outcome { stored, duplicate, rejected };
const char* write_outcome_name(write_outcome o);

struct write_result {
    write_outcome outcome = write_outcome::rejected;
    std::int64_t id = 0;     // the stored fact's id (also for duplicates)
    std::string field;       // for rejections: the field at fault
    std::string error;       // for rejections: what is wrong
    // The fact may be fine but its transaction did not commit (disk full, a
    // lock held too long): nothing was stored, and a retry may succeed.
    bool commit_failed = false;
};

struct fact {
    std::int64_t id = 0;
    std::string idempotency_key;
    std::string stream;
    std::string entity;
    micros event_time = 0;
    micros ingest_time = 0;
    std::string data_json;
    std::optional<std::int64_t> corrects;
};

// The key used when the client gives none: the same stream, entity, event
// time and data always give the same key, "derived:<event time>:<hash>".
// The event time (16 hex digits, ordered like the times) comes first so
// the UNIQUE index grows near its end like the log itself: a group commit
// then rewrites a few index pages instead of one random page per fact
// (measured: 21 instead of 61 WAL pages per 30-fact commit). The hash is the
// first 128 bits of the SHA-256 of stream, entity, time and data (and of the
// id a correction corrects).
std::string derive_idempotency_key(const std::string& stream, const std::string& entity,
                                   micros event_time, const std::string& canonical_data,
                                   std::optional<std::int64_t> corrects = std::nullopt);
// The key of a fact without a time of its own, stamped with its arrival:
// each arrival is a new fact, so no two calls give the same key (two such
// facts alike in one batch were one fact under derive_idempotency_key).
std::string derive_arrival_key(const std::string& stream, const std::string& entity, micros arrival,
                               const std::string& canonical_data,
                               std::optional<std::int64_t> corrects = std::nullopt);
// Gives a fact sent without a key its derived key: derive_idempotency_key's
// when it has a time of its own, else derive_arrival_key's.
void set_derived_key(fact_input& f);
// The derived key of Kennel 0.1 before this form: "sha256:" and the whole
// hash, with no time. Kept so a resend of a fact stored under it is still a duplicate.
std::string derive_legacy_idempotency_key(const std::string& stream, const std::string& entity,
                                          micros event_time, const std::string& canonical_data);

// Inserts facts inside the caller's transaction with statements prepared
// once. A fact whose key is already stored is a duplicate when its content
// matches and a rejection when it does not (a key names one fact). Throws
// db_error only on I/O failure. One thread at a time, like its connection.
class fact_inserter {
public:
    explicit fact_inserter(connection& conn);
    write_result insert(const fact_input& in, micros ingest_time);

private:
    // The stored fact under `key` compared with `in`: a duplicate, a
    // rejection (same key, other content), or nullopt when there is none.
    std::optional<write_result> match_stored(const std::string& key, const fact_input& in);

    connection& conn_;
    statement check_corrects_;
    statement insert_;
    statement previous_;
    // Whether the log holds keys in the legacy derived form; only then is a
    // derived key also looked up in that form (one index probe per fact).
    bool legacy_keys_ = false;
};

struct fact_query {
    std::string stream;
    std::optional<std::string> entity;
    std::optional<micros> from;  // inclusive event time
    std::optional<micros> to;    // exclusive event time
    // Paging cursor: continue after this (event_time, id).
    std::optional<micros> after_time;
    std::optional<std::int64_t> after_id;
    int limit = 100;
    bool newest_first = false;  // order by event time descending
};

struct fact_page {
    std::vector<fact> facts;
    bool more = false;  // another page follows; its cursor is the last fact's (event_time, id)
};

result<fact_page> list_facts(connection& conn, const fact_query& q);
result<std::optional<fact>> get_fact(connection& conn, std::int64_t id);

struct stream_summary {
    std::string stream;
    std::int64_t count = 0;
    micros first_event_time = 0;
    micros last_event_time = 0;
    micros last_ingest_time = 0;
    std::int64_t max_fact_id = 0;
};

result<std::vector<stream_summary>> list_streams(connection& conn);

// A numeric field summed over a range of facts, respecting uncertainty: a
// plain number counts as [v, v]; {"lower":a,"upper":b} counts as [a, b];
// {"value":v,"confidence":c} counts as [v, v]. Facts without the field, or
// with a non-numeric value, are counted as skipped.
struct field_total {
    std::int64_t facts = 0;      // facts in the range
    std::int64_t counted = 0;    // facts whose field was numeric or an interval
    std::int64_t intervals = 0;  // of those, how many were intervals
    double sum_lower = 0;
    double sum_upper = 0;
};

// Why facts' values under this key cannot be read, or empty. SQLite's JSON
// paths compare a key as it is written in the stored JSON: a double quote
// cannot be named, and a key with a backslash or a control character is
// stored escaped, so the path would not match it. Model definitions and
// sums refuse such names alike.
std::string unreadable_field_name(std::string_view field);

// Corrections, one rule for every reader (training, totals, the label
// prior, the outcome join), kept in table fact_origins (migration 0010): a
// fact and the corrections of it, and of those, form a chain in one stream;
// the chain's newest fact stands for it, at the time of its first fact (its
// origin). A correction from another stream is refused at the edge; legacy
// ones stand on their own.
//
// The SQL condition that a row of `facts` (under `alias`) stands: no newer
// fact of its chain.
std::string standing_fact_sql(std::string_view alias);
// SQL expressions for the row's chain: its origin's id, and time (the fact's
// own for a fact that corrects nothing).
std::string origin_id_sql(std::string_view alias);
std::string origin_time_sql(std::string_view alias);

// invalid_argument naming "field" for an empty or unreadable field name;
// failed_precondition (422) naming "field" when a sum overflows a double.
result<field_total> total_field(connection& conn, const fact_query& range,
                                const std::string& field);

// An entity's standing facts in a stream, read as two index walks (?1 the
// stream, ?2 the entity; facts under alias `f`): those that correct
// nothing, on the stream-entity-time index, and the entity's corrections,
// on theirs (migration 0018; walking the stream's corrections by time and
// keeping the entity's scanned every other entity's first). `from_where`
// is "FROM ... WHERE ..."; `time` is the effective time (a correction's:
// its chain's) and `chain` the chain's first fact, as SQL expressions.
// Callers add a time bound on `time`, their columns and order.
struct standing_walk {
    const char* from_where;
    const char* time;
    const char* chain;
};
extern const standing_walk entity_standing_walks[2];

// The fact a point-in-time read takes for an entity at `at`: of the
// entity's facts in `stream` that stand (corrections applied), the one
// with the latest effective time not after `at` (ties: the newer chain,
// then the newer fact), as training takes the feature fact for a label.
// `any_of_fields`: when not empty, only a fact holding one of them (not
// null) counts, as training reads features from its label's own stream.
// None when the entity has no such fact. The fact's event_time is its
// effective one (a correction's is its chain's).
result<std::optional<fact>> fact_as_of(connection& conn, const std::string& stream,
                                       const std::string& entity, micros at,
                                       const std::vector<std::string>& any_of_fields = {});

// Highest fact id (0 when empty): the training snapshot's watermark.
result<std::int64_t> max_fact_id(connection& conn);

}  // namespace kennel

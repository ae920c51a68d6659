#include "store/facts.h"

#include <atomic>
#include <cmath>
#include <tuple>

#include "store/sha256.h"

namespace kennel {

const char* write_outcome_name(write_outcome o) {
    switch (o) {
        case write_outcome::stored:
            return "stored";
        case write_outcome::duplicate:
            return "duplicate";
        case write_outcome::rejected:
            return "rejected";
    }
    return "rejected";
}

namespace {

// NUL separators: no two different tuples give the same input bytes.
std::string key_material(const std::string& stream, const std::string& entity, micros event_time,
                         const std::string& canonical_data) {
    std::string material;
    material.reserve(stream.size() + entity.size() + canonical_data.size() + 24);
    material.append(stream).push_back('\0');
    material.append(entity).push_back('\0');
    material.append(std::to_string(event_time)).push_back('\0');
    material.append(canonical_data);
    return material;
}

std::string derived_key(micros event_time, const std::string& material) {
    // Offset binary: times before 1970 still sort before later ones.
    const auto ordered = static_cast<std::uint64_t>(event_time) ^ (std::uint64_t{1} << 63);
    static constexpr char hex[] = "0123456789abcdef";
    std::string key = "derived:0000000000000000:";
    for (int i = 0; i < 16; ++i) key[8 + i] = hex[(ordered >> (60 - 4 * i)) & 0xf];
    key += sha256_hex(material).substr(0, 32);
    return key;
}

// A correction's key holds the id it corrects (after the NUL that ends the
// data, which JSON text never holds): one that puts an earlier value back
// is another fact than the one that first had it. Without `corrects` the
// material is as it always was, so a fact resent keeps its key.
std::string material_of(const std::string& stream, const std::string& entity, micros event_time,
                        const std::string& canonical_data, std::optional<std::int64_t> corrects) {
    std::string material = key_material(stream, entity, event_time, canonical_data);
    if (corrects) material.append(1, '\0').append("corrects ").append(std::to_string(*corrects));
    return material;
}

}  // namespace

std::string derive_idempotency_key(const std::string& stream, const std::string& entity,
                                   micros event_time, const std::string& canonical_data,
                                   std::optional<std::int64_t> corrects) {
    return derived_key(event_time,
                       material_of(stream, entity, event_time, canonical_data, corrects));
}

std::string derive_arrival_key(const std::string& stream, const std::string& entity, micros arrival,
                               const std::string& canonical_data,
                               std::optional<std::int64_t> corrects) {
    // This process's mark (random, so two processes never share one) and a
    // count: unique without a read of the log or a syscall a fact.
    static const std::string process_mark = random_hex(8);
    static std::atomic<std::uint64_t> arrivals{0};
    std::string material = material_of(stream, entity, arrival, canonical_data, corrects);
    material.append(1, '\0').append("arrival ").append(process_mark).push_back(' ');
    material.append(std::to_string(arrivals.fetch_add(1, std::memory_order_relaxed)));
    return derived_key(arrival, material);
}

void set_derived_key(fact_input& f) {
    f.idempotency_key =
        f.time_given
            ? derive_idempotency_key(f.stream, f.entity, f.event_time, f.data_json, f.corrects)
            : derive_arrival_key(f.stream, f.entity, f.event_time, f.data_json, f.corrects);
    f.key_derived = true;
}

std::string derive_legacy_idempotency_key(const std::string& stream, const std::string& entity,
                                          micros event_time, const std::string& canonical_data) {
    return "sha256:" + sha256_hex(key_material(stream, entity, event_time, canonical_data));
}

fact_inserter::fact_inserter(connection& conn)
    : conn_(conn),
      check_corrects_(conn, "SELECT stream FROM facts WHERE id = ?"),
      insert_(conn,
              "INSERT INTO facts (idempotency_key, stream, entity, event_time, ingest_time,"
              " data, corrects) VALUES (?,?,?,?,?,?,?)"
              " ON CONFLICT (idempotency_key) DO NOTHING"),
      previous_(conn,
                "SELECT id, stream, entity, event_time, data, corrects FROM facts"
                " WHERE idempotency_key = ?") {
    // A range on the UNIQUE index: one probe, however long the log.
    statement legacy(conn,
                     "SELECT 1 FROM facts WHERE idempotency_key >= 'sha256:'"
                     " AND idempotency_key < 'sha256;' LIMIT 1");
    legacy_keys_ = legacy.step();
}

std::optional<write_result> fact_inserter::match_stored(const std::string& key,
                                                        const fact_input& in) {
    statement& prev = previous_;
    prev.reset();
    prev.bind(1, key);
    if (!prev.step()) {
        prev.reset();
        return std::nullopt;
    }
    write_result r;
    bool same = prev.column_text(1) == in.stream && prev.column_text(2) == in.entity &&
                (!in.time_given || prev.column_int(3) == in.event_time) &&
                prev.column_text(4) == in.data_json && prev.column_opt_int(5) == in.corrects;
    if (!same) {
        r.field = "idempotency_key";
        r.error = "key already names fact " + std::to_string(prev.column_int(0)) +
                  " with different content";
    } else {
        r.outcome = write_outcome::duplicate;
        r.id = prev.column_int(0);
    }
    prev.reset();
    return r;
}

write_result fact_inserter::insert(const fact_input& in, micros ingest_time) {
    write_result r;
    if (in.corrects) {
        statement& chk = check_corrects_;
        chk.reset();
        chk.bind(1, *in.corrects);
        const bool found = chk.step();
        const std::string stream = found ? chk.column_text(0) : std::string();
        chk.reset();
        if (!found) {
            r.field = "corrects";
            r.error = "no fact with id " + std::to_string(*in.corrects) + " to correct";
            return r;
        }
        // Training, totals and live metrics replace a fact only by a
        // correction in its own stream: one from another stream was stored
        // and then ignored by all of them.
        if (stream != in.stream) {
            // The same fact resent, stored before this check: still a duplicate.
            if (auto stored = match_stored(in.idempotency_key, in)) return *stored;
            r.field = "corrects";
            r.error = "fact " + std::to_string(*in.corrects) + " is in stream \"" + stream +
                      "\"; a correction must be in the stream of the fact it corrects";
            return r;
        }
    }
    if (legacy_keys_ && in.key_derived && in.time_given) {
        // Stored before derived keys carried the time: the same fact resent
        // now derives a key in the new form.
        auto legacy = match_stored(
            derive_legacy_idempotency_key(in.stream, in.entity, in.event_time, in.data_json), in);
        if (legacy) return *legacy;
    }
    statement& ins = insert_;
    ins.reset();
    // Bound without a copy: `in` outlives this call, and the next insert
    // resets the bindings before the statement runs again.
    ins.bind_static(1, in.idempotency_key)
        .bind_static(2, in.stream)
        .bind_static(3, in.entity)
        .bind(4, in.event_time)
        .bind(5, ingest_time)
        .bind_static(6, in.data_json)
        .bind(7, in.corrects);
    try {
        ins.run();
    } catch (const db_error& e) {
        if (!e.is_constraint()) throw;
        r.error = e.what();
        return r;
    }
    if (conn_.changes() == 1) {
        r.outcome = write_outcome::stored;
        r.id = conn_.last_insert_rowid();
        return r;
    }
    if (auto stored = match_stored(in.idempotency_key, in)) return *stored;
    r.error = "insert ignored for an unknown reason";
    return r;
}

namespace {

fact read_fact(const statement& st) {
    fact f;
    f.id = st.column_int(0);
    f.idempotency_key = st.column_text(1);
    f.stream = st.column_text(2);
    f.entity = st.column_text(3);
    f.event_time = st.column_int(4);
    f.ingest_time = st.column_int(5);
    f.data_json = st.column_text(6);
    f.corrects = st.column_opt_int(7);
    return f;
}

constexpr const char* fact_columns =
    "id, idempotency_key, stream, entity, event_time, ingest_time, data, corrects";

// WHERE clause shared by listing and totals; binds in a fixed order.
std::string range_where(const fact_query& q) {
    std::string w = " WHERE stream = ?1";
    if (q.entity) w += " AND entity = ?2";
    if (q.from) w += " AND event_time >= ?3";
    if (q.to) w += " AND event_time < ?4";
    if (q.after_time && q.after_id) {
        w += q.newest_first ? " AND (event_time, id) < (?5, ?6)"
                            : " AND (event_time, id) > (?5, ?6)";
    }
    return w;
}

void bind_range(statement& st, const fact_query& q) {
    st.bind(1, q.stream);
    if (q.entity) st.bind(2, *q.entity);
    if (q.from) st.bind(3, *q.from);
    if (q.to) st.bind(4, *q.to);
    if (q.after_time && q.after_id) st.bind(5, *q.after_time).bind(6, *q.after_id);
}

}  // namespace

result<fact_page> list_facts(connection& conn, const fact_query& q) {
    try {
        std::string sql = std::string("SELECT ") + fact_columns + " FROM facts" + range_where(q) +
                          (q.newest_first ? " ORDER BY event_time DESC, id DESC LIMIT ?7"
                                          : " ORDER BY event_time, id LIMIT ?7");
        statement st(conn, sql);
        bind_range(st, q);
        st.bind(7, q.limit + 1);
        fact_page page;
        while (st.step()) page.facts.push_back(read_fact(st));
        if (static_cast<int>(page.facts.size()) > q.limit) {
            page.facts.pop_back();
            page.more = true;
        }
        return page;
    } catch (const db_error& e) {
        return status(error_kind::internal, e.what());
    }
}

result<std::optional<fact>> get_fact(connection& conn, std::int64_t id) {
    try {
        statement st(conn, std::string("SELECT ") + fact_columns + " FROM facts WHERE id = ?");
        st.bind(1, id);
        if (!st.step()) return std::optional<fact>{};
        return std::optional<fact>{read_fact(st)};
    } catch (const db_error& e) {
        return status(error_kind::internal, e.what());
    }
}

const standing_walk entity_standing_walks[2] = {
    {"FROM facts f WHERE f.stream = ?1 AND f.entity = ?2"
     " AND NOT EXISTS (SELECT 1 FROM fact_origins x WHERE x.fact = f.id)"
     " AND NOT EXISTS (SELECT 1 FROM fact_origins newer WHERE newer.origin = f.id)",
     "f.event_time", "f.id"},
    {"FROM facts f INDEXED BY facts_corrections_by_stream_entity"
     " JOIN fact_origins o ON o.fact = f.id"
     " WHERE f.stream = ?1 AND f.entity = ?2 AND f.corrects IS NOT NULL"
     " AND NOT EXISTS (SELECT 1 FROM fact_origins newer WHERE newer.origin = o.origin"
     " AND newer.fact > f.id)",
     "o.origin_time", "o.origin"}};

result<std::optional<fact>> fact_as_of(connection& conn, const std::string& stream,
                                       const std::string& entity, micros at,
                                       const std::vector<std::string>& any_of_fields) {
    try {
        const auto holds = [&](const char* alias) {
            std::string out;
            for (std::size_t i = 0; i < any_of_fields.size(); ++i) {
                out += std::string(i ? " OR " : " AND (") + "coalesce(json_type(" + alias +
                       ".data, ?" + std::to_string(4 + i) + "), 'null') != 'null'";
            }
            return out.empty() ? out : out + ")";
        };
        // The newer of the two walks' latest standing fact (one query over
        // both, ordered by the chain's time, read and sorted every fact of
        // the entity: 7.8 ms at 10,000 facts). Cached: on the predict path,
        // a preparation cost more than the lookup.
        const std::string columns =
            "f.id, f.idempotency_key, f.stream, f.entity, f.event_time, f.ingest_time, f.data,"
            " f.corrects";
        std::vector<statement*> walks;
        for (const standing_walk& w : entity_standing_walks) {
            walks.push_back(&conn.cached("SELECT " + columns + ", " + w.time + ", " + w.chain +
                                         " " + w.from_where + " AND " + w.time + " <= ?3" +
                                         holds("f") + " ORDER BY " + w.time + " DESC, " + w.chain +
                                         " DESC, f.id DESC LIMIT 1"));
        }
        std::optional<fact> best;
        std::tuple<micros, std::int64_t, std::int64_t> best_key{};
        for (statement* st : walks) {
            st->bind(1, stream).bind(2, entity).bind(3, at);
            for (std::size_t i = 0; i < any_of_fields.size(); ++i)
                st->bind(static_cast<int>(4 + i), "$.\"" + any_of_fields[i] + "\"");
            if (st->step()) {
                fact f = read_fact(*st);
                // A correction's time is its chain's, as training reads it.
                f.event_time = st->column_int(8);
                const std::tuple<micros, std::int64_t, std::int64_t> key{f.event_time,
                                                                         st->column_int(9), f.id};
                if (!best || key > best_key) {
                    best = std::move(f);
                    best_key = key;
                }
            }
            // Reset before returning: a cached statement left on a row holds
            // its read transaction open, on a connection the pool keeps idle.
            st->reset();
        }
        return best;
    } catch (const db_error& e) {
        return status(error_kind::internal, e.what());
    }
}

result<std::vector<stream_summary>> list_streams(connection& conn) {
    try {
        statement st(conn,
                     "SELECT stream, fact_count, first_event_time, last_event_time,"
                     " last_ingest_time, max_fact_id FROM stream_stats ORDER BY stream");
        std::vector<stream_summary> out;
        while (st.step()) {
            out.push_back({st.column_text(0), st.column_int(1), st.column_int(2), st.column_int(3),
                           st.column_int(4), st.column_int(5)});
        }
        return out;
    } catch (const db_error& e) {
        return status(error_kind::internal, e.what());
    }
}

std::string unreadable_field_name(std::string_view field) {
    for (char ch : field) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\' || c < 0x20 || c == 0x7f) {
            return "a field name with a double quote, a backslash or a control character "
                   "cannot be read";
        }
    }
    return {};
}

std::string origin_id_sql(std::string_view alias) {
    const std::string a(alias);
    return "coalesce((SELECT o.origin FROM fact_origins o WHERE o.fact = " + a + ".id), " + a +
           ".id)";
}

std::string origin_time_sql(std::string_view alias) {
    const std::string a(alias);
    return "coalesce((SELECT o.origin_time FROM fact_origins o WHERE o.fact = " + a + ".id), " + a +
           ".event_time)";
}

std::string standing_fact_sql(std::string_view alias) {
    const std::string a(alias);
    return "NOT EXISTS (SELECT 1 FROM fact_origins newer WHERE newer.origin = " +
           origin_id_sql(alias) + " AND newer.fact > " + a + ".id)";
}

namespace {

// range_where for totals: a correction is in the range by its chain's time
// (that of the fact it corrects), as in training. Binds as range_where.
std::string chain_range_where(const fact_query& q) {
    fact_query untimed = q;
    untimed.from.reset();
    untimed.to.reset();
    std::string w = range_where(untimed);
    if (!q.from && !q.to) return w;
    if (q.entity) {
        // An entity's facts are few: each one's chain time is looked up.
        const std::string at = origin_time_sql("facts");
        if (q.from) w += " AND " + at + " >= ?3";
        if (q.to) w += " AND " + at + " < ?4";
        return w;
    }
    // A whole stream: facts that correct nothing by their own time (on the
    // time index), corrections by their chain's.
    std::string own, chain;
    if (q.from) {
        own += " AND f.event_time >= ?3";
        chain += " AND o.origin_time >= ?3";
    }
    if (q.to) {
        own += " AND f.event_time < ?4";
        chain += " AND o.origin_time < ?4";
    }
    return w + " AND id IN (SELECT f.id FROM facts f WHERE f.stream = ?1" + own +
           " AND NOT EXISTS (SELECT 1 FROM fact_origins x WHERE x.fact = f.id)"
           " UNION ALL SELECT o.fact FROM fact_origins o WHERE o.stream = ?1" +
           chain + ")";
}

}  // namespace

result<field_total> total_field(connection& conn, const fact_query& range,
                                const std::string& field) {
    if (field.empty()) return invalid("field", "a field name must be non-empty");
    if (std::string why = unreadable_field_name(field); !why.empty()) {
        return invalid("field", why);
    }
    // A quoted JSON path so names with dots or spaces address one key.
    std::string path = "$.\"" + field + "\"";
    try {
        std::string sql =
            "SELECT count(*),"
            " sum(CASE WHEN t IN ('integer','real') THEN 1"
            "          WHEN t = 'object' AND lo IS NOT NULL AND hi IS NOT NULL THEN 1"
            "          WHEN t = 'object' AND vt IN ('integer','real') THEN 1 ELSE 0 END),"
            " sum(CASE WHEN t = 'object' AND lo IS NOT NULL AND hi IS NOT NULL THEN 1 ELSE 0 END),"
            " total(CASE WHEN t IN ('integer','real') THEN x"
            "            WHEN t = 'object' AND lo IS NOT NULL AND hi IS NOT NULL THEN lo"
            "            WHEN t = 'object' AND vt IN ('integer','real') THEN v END),"
            " total(CASE WHEN t IN ('integer','real') THEN x"
            "            WHEN t = 'object' AND lo IS NOT NULL AND hi IS NOT NULL THEN hi"
            "            WHEN t = 'object' AND vt IN ('integer','real') THEN v END)"
            " FROM (SELECT json_type(data, ?8) AS t, json_extract(data, ?8) AS x,"
            "              json_extract(data, ?8 || '.lower') AS lo,"
            "              json_extract(data, ?8 || '.upper') AS hi,"
            "              json_extract(data, ?8 || '.value') AS v,"
            "              json_type(data, ?8 || '.value') AS vt"
            "       FROM facts" +
            chain_range_where(range) +
            // A corrected fact is replaced by its correction (as in
            // training), not counted beside it.
            " AND " + standing_fact_sql("facts") + ")";
        statement st(conn, sql);
        bind_range(st, range);
        st.bind(8, path);
        st.step();
        field_total t;
        t.facts = st.column_int(0);
        t.counted = st.column_int(1);
        t.intervals = st.column_int(2);
        t.sum_lower = st.column_double(3);
        t.sum_upper = st.column_double(4);
        // SQLite's total() overflows to infinity, which JSON cannot hold.
        if (!std::isfinite(t.sum_lower) || !std::isfinite(t.sum_upper)) {
            return status(error_kind::failed_precondition,
                          "the sum of \"" + field +
                              "\" overflows a 64-bit float (beyond about 1.8e308); "
                              "narrow the range with entity, from or to",
                          "field");
        }
        return t;
    } catch (const db_error& e) {
        return status(error_kind::internal, e.what());
    }
}

result<std::int64_t> max_fact_id(connection& conn) {
    try {
        statement st(conn, "SELECT coalesce(max(id), 0) FROM facts");
        st.step();
        return st.column_int(0);
    } catch (const db_error& e) {
        return status(error_kind::internal, e.what());
    }
}

}  // namespace kennel

// Every endpoint, in one table (make_routes at the bottom). Handlers are
// named for their route and turn HTTP into calls on the core and back.
#include "server/routes.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "server/app.h"
#include "server/auth.h"
#include "server/errors.h"
#include "server/fact_json.h"
#include "server/handlers.h"
#include "server/json_body.h"
#include "store/facts.h"
#include "store/json_writer.h"

namespace kennel {
namespace {

using json = nlohmann::json;

// What a read of facts covers: a page of the list, or (a total) the whole
// range, where a paging parameter would mean the caller expects a page and
// a cursor would silently narrow the range.
enum class fact_read { page, whole_range };

// The list a facts cursor continues: the stream, the entity and the order.
std::string facts_cursor_tag(const fact_query& q) {
    return cursor_tag({"facts", q.stream, q.entity.value_or(""), q.newest_first ? "desc" : "asc"});
}

// Fact range from the query string: entity, from, to, and for a page
// cursor, limit and order.
result<fact_query> parse_fact_query(const http_request& req, const std::string& stream,
                                    fact_read read) {
    constexpr const char* whole =
        "pages the fact list; a total covers the whole range (entity, from, to)";
    for (const char* paging : {"cursor", "limit", "order"}) {
        if (read == fact_read::whole_range && req.query_value(paging))
            return invalid(paging, whole);
    }
    // A name no fact can have is a mistake, not an empty stream.
    if (auto problem = stream_name_problem(stream); !problem.empty())
        return invalid("stream", problem);
    fact_query q;
    q.stream = stream;
    if (auto e = req.query_value("entity")) {
        if (auto problem = query_entity_problem(*e); !problem.empty())
            return invalid("entity", problem);
        q.entity = *e;
    }
    auto from = query_time(req, "from");
    if (!from) return from.error();
    q.from = *from;
    auto to = query_time(req, "to");
    if (!to) return to.error();
    q.to = *to;
    // An empty answer would read as "no facts then", not as a typo.
    if (q.from && q.to && *q.from > *q.to) return invalid("to", "is before from");
    if (auto l = req.query_value("limit")) {
        auto n = parse_int("limit", *l, 1, 1000);
        if (!n) return n.error();
        q.limit = static_cast<int>(*n);
    }
    if (auto o = req.query_value("order")) {
        if (*o != "asc" && *o != "desc") return invalid("order", "must be asc or desc");
        q.newest_first = *o == "desc";
    }
    if (auto c = req.query_value("cursor")) {
        // "<event time micros>.<fact id>" of the previous page's last fact,
        // tagged with the list (see cursor_position).
        auto position = cursor_position(*c, facts_cursor_tag(q));
        if (!position) return position.error();
        const std::string& text = *position;
        auto dot = text.find('.');
        if (dot == std::string::npos) return invalid("cursor", "malformed cursor");
        auto t = parse_int("cursor", text.substr(0, dot), INT64_MIN, INT64_MAX);
        auto id = parse_int("cursor", text.substr(dot + 1), 0, INT64_MAX);
        if (!t || !id) return invalid("cursor", "malformed cursor");
        q.after_time = *t;
        q.after_id = *id;
    }
    return q;
}

http_response get_healthz(app&, const http_request&) {
    return json_response(R"({"status":"ok"})");
}

http_response get_readyz(app& a, const http_request&) {
    if (!a.ready()) {
        // Start-up: migrations, the admin user, demo data, loading the
        // served versions, the trainer and the supervisor.
        return error_response(status(error_kind::unavailable, a.stopping()
                                                                  ? "not ready: stopping"
                                                                  : "not ready: starting up"));
    }
    // Writes are refused until the file is back: a load balancer or an
    // operator watching readiness hears of it.
    if (std::string gone = a.writer().database_file_problem(); !gone.empty())
        return error_response(status(error_kind::unavailable, "not ready: " + gone));
    return json_response(R"({"status":"ready"})");
}

// The answer to POST /v1/facts once the writer has answered for the valid
// items (`stored[k]` is the result of item `valid_pos[k]`).
http_response facts_answer(const parsed_body& parsed, const std::vector<std::size_t>& valid_pos,
                           const std::vector<write_result>& stored) {
    for (const write_result& r : stored) {
        // Not the facts' fault (a full disk, say): a 400 would tell the
        // client to drop them.
        if (r.commit_failed) {
            // One transaction held them all: nothing is stored, so the
            // whole body is safe to send again, keys or not.
            return error_response(
                status(error_kind::unavailable, r.error + "; send the whole body again"));
        }
    }
    if (parsed.single && stored.size() == 1 && stored[0].outcome != write_outcome::rejected) {
        // A fact sent alone and accepted: {"id":…,"status":…} (keys in the
        // DOM's order, no spaces, as every answer here).
        const write_result& r = stored[0];
        std::string body = "{\"id\":";
        body += std::to_string(r.id);
        body += ",\"status\":\"";
        body += write_outcome_name(r.outcome);
        body += "\"}";
        if (r.outcome != write_outcome::stored) return json_response(std::move(body), 200);
        http_response created = json_response(std::move(body), 201);
        created.headers.emplace_back("Location", "/v1/facts/" + std::to_string(r.id));
        return created;
    }
    // Rejected items (rare) go through the DOM for their error object;
    // the rest are written directly, in the DOM's key order.
    std::vector<const write_result*> result_of(parsed.items.size(), nullptr);
    for (std::size_t k = 0; k < stored.size(); ++k) result_of[valid_pos[k]] = &stored[k];
    std::string items;
    items.reserve(48 * parsed.items.size());
    json_writer w(items);
    std::size_t n_stored = 0, n_dup = 0, n_rej = 0;
    status first_error;
    bool all_forbidden = true;  // every rejection is a key's stream limit
    for (std::size_t i = 0; i < parsed.items.size(); ++i) {
        const parsed_item& p = parsed.items[i];
        const write_result* r = result_of[i];
        if (i) w.raw(",");
        if (!p.error.is_ok() || (r && r->outcome == write_outcome::rejected)) {
            status s = p.error.is_ok() ? status(error_kind::invalid_argument, r->error, r->field)
                                       : p.error;
            json e = json::parse(error_object_json(s, p.index));
            if (p.line) e["line"] = p.line;
            w.raw(dump_json({{"error", e}, {"index", p.index}, {"status", "rejected"}}));
            if (n_rej++ == 0) first_error = s;
            if (s.kind() != error_kind::forbidden) all_forbidden = false;
            continue;
        }
        if (!r) {
            // Cannot happen: every valid item has a result. Say so rather than invent one.
            return error_response(
                status(error_kind::internal, "no result for item " + std::to_string(p.index)));
        }
        r->outcome == write_outcome::stored ? ++n_stored : ++n_dup;
        w.raw("{").key("id").integer(r->id).key("index").integer(
            static_cast<std::int64_t>(p.index));
        w.key("status").string(write_outcome_name(r->outcome)).raw("}");
    }
    if (parsed.single) return error_response(first_error);  // its one item was rejected
    std::string body;
    body.reserve(items.size() + 160);
    json_writer b(body);
    b.raw("{").key("duplicates").integer(static_cast<std::int64_t>(n_dup));
    const bool none = n_rej == parsed.items.size();
    if (none) {
        // Nothing was accepted: an error, with every item's reason.
        b.key("error").raw(error_object_json(
            status(all_forbidden ? error_kind::forbidden : error_kind::invalid_argument,
                   "all " + std::to_string(n_rej) + " facts were rejected")));
    }
    b.key("items").raw("[").raw(items).raw("]");
    b.key("rejected").integer(static_cast<std::int64_t>(n_rej));
    b.key("stored").integer(static_cast<std::int64_t>(n_stored)).raw("}");
    return json_response(std::move(body), none ? (all_forbidden ? 403 : 400) : 200);
}

// Only valid items go to the writer; rejected ones are reported in place.
// Moves out the valid facts of items[from...], noting their positions. A
// fact to a stream the caller's key may not send to is rejected as an item
// (forbidden), as a malformed one is (invalid).
std::vector<fact_input> take_valid(parsed_body& parsed, std::size_t from,
                                   std::vector<std::size_t>& valid_pos, const http_request& req) {
    std::vector<fact_input> valid;
    const auto& allowed = req.key_streams;
    for (std::size_t i = from; i < parsed.items.size(); ++i) {
        if (!parsed.items[i].error.is_ok()) continue;
        const std::string& stream = parsed.items[i].fact.stream;
        if (!allowed.empty() &&
            std::find(allowed.begin(), allowed.end(), stream) == allowed.end()) {
            // Only a key has limits: its actor is "key:NAME".
            const std::string key = req.actor.substr(req.actor.find(':') + 1);
            parsed.items[i].error =
                status(error_kind::forbidden,
                       "API key \"" + key + "\" may send facts to " +
                           limited_to("stream", allowed) + " only, not \"" + stream + "\"",
                       "stream");
            continue;
        }
        valid.push_back(std::move(parsed.items[i].fact));
        valid_pos.push_back(i);
    }
    return valid;
}

// Items refused at the edge (malformed, invalid, or forbidden to the key):
// for the writer's count of rejected facts, which sees only the rest.
std::uint64_t edge_rejections(const parsed_body& parsed, std::size_t from = 0) {
    std::uint64_t n = 0;
    for (std::size_t i = from; i < parsed.items.size(); ++i) n += !parsed.items[i].error.is_ok();
    return n;
}

// Answers for up to this many facts are built on the writer's thread (a
// few microseconds each); larger batches wait on their own thread.
constexpr std::size_t max_deferred_facts = 16;

// Facts per slice of an NDJSON body (post_ndjson_facts).
constexpr std::size_t ndjson_slice = 128;

// Lines "a-b, c-d" of an NDJSON body (ranges of slices, joined when they touch).
std::string line_ranges(const std::vector<std::pair<std::size_t, std::size_t>>& ranges) {
    std::string out;
    for (std::size_t i = 0; i < ranges.size();) {
        std::size_t j = i;
        while (j + 1 < ranges.size() && ranges[j + 1].first == ranges[j].second + 1) ++j;
        if (!out.empty()) out += ", ";
        out += std::to_string(ranges[i].first);
        if (ranges[j].second != ranges[i].first) out += "-" + std::to_string(ranges[j].second);
        i = j + 1;
    }
    return out;
}

// An NDJSON body is parsed a slice at a time, and each slice's valid facts go
// to the writer at once, so the writer stores the first slices while this
// thread parses the rest (the two took about the same time one after the
// other). Whole-body problems are found before anything is written; each
// fact is still all-or-nothing, and the answer comes after every slice has
// committed. A slice that the writer refuses (a full queue), that fails to
// commit, or that is not committed in time makes the answer a 503 naming the
// lines stored and those to send again: each slice is its own transaction,
// and a fact without a time or a key would be stored twice by a resent body.
http_response post_ndjson_facts(app& a, const http_request& req, const fact_limits& limits) {
    const std::string& body = req.body;
    using clock = std::chrono::steady_clock;
    const auto timeout = a.write_timeout();
    const auto deadline = clock::now() + timeout;
    ndjson_reader reader(body, now_micros());
    if (status s = reader.check(limits); !s) return error_response(s);
    parsed_body parsed;
    std::vector<std::size_t> valid_pos;
    struct slice {
        fact_writer::ticket ticket;
        std::size_t first_line = 0, last_line = 0;
    };
    std::vector<slice> slices;
    std::string refused;           // why the writer took no more slices
    std::size_t refused_line = 0;  // the first line it did not take
    for (bool more = true; more;) {
        const std::size_t from = parsed.items.size();
        more = reader.read(ndjson_slice, parsed.items);
        std::vector<fact_input> valid = take_valid(parsed, from, valid_pos, req);
        a.writer().count_rejected(edge_rejections(parsed, from));
        if (valid.empty()) continue;
        // A full queue refuses the first slice (nothing written: 503); a
        // later one waits for room, as the slices before it drain.
        auto t = slices.empty() ? a.writer().submit_facts(std::move(valid))
                                : a.writer().submit_facts(std::move(valid), deadline);
        if (!t && slices.empty()) return error_response(t.error());
        if (!t) {
            refused = t.error().message();
            refused_line = parsed.items[from].line;
            break;
        }
        slices.push_back({std::move(t).value(), parsed.items[from].line, parsed.items.back().line});
    }
    std::vector<write_result> stored;
    stored.reserve(valid_pos.size());
    std::vector<std::pair<std::size_t, std::size_t>> committed, failed, pending;
    std::string failure;
    for (slice& s : slices) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
        if (!s.ticket.wait_for(std::max(left, std::chrono::milliseconds(0)))) {
            pending.emplace_back(s.first_line, s.last_line);
            continue;
        }
        std::vector<write_result> results = s.ticket.take();
        const auto bad = std::find_if(results.begin(), results.end(),
                                      [](const write_result& r) { return r.commit_failed; });
        if (bad != results.end()) {
            if (failure.empty()) failure = bad->error;
            failed.emplace_back(s.first_line, s.last_line);
            continue;
        }
        committed.emplace_back(s.first_line, s.last_line);
        for (write_result& r : results) stored.push_back(std::move(r));
    }
    if (refused.empty() && failed.empty() && pending.empty())
        return facts_answer(parsed, valid_pos, stored);
    if (committed.empty() && pending.empty() && refused.empty())
        return error_response(
            status(error_kind::unavailable, failure + "; send the whole body again"));
    if (committed.empty() && failed.empty() && refused.empty())
        return error_response(fact_writer::not_committed(timeout));
    std::string message = !failure.empty()   ? failure
                          : !refused.empty() ? refused
                                             : fact_writer::not_committed(timeout).message();
    message +=
        " (each slice of " + std::to_string(ndjson_slice) + " lines is its own transaction): ";
    if (!committed.empty())
        message += "the facts of lines " + line_ranges(committed) + " are stored";
    if (!failed.empty() || !refused.empty()) {
        if (!committed.empty()) message += "; ";
        message += "those of lines ";
        if (!failed.empty()) message += line_ranges(failed);
        if (!failed.empty() && !refused.empty()) message += " and ";
        if (!refused.empty()) message += std::to_string(refused_line) + " to the end";
        message += " are not: send those lines again";
    }
    if (!pending.empty()) {
        message += "; those of lines " + line_ranges(pending) +
                   " were not committed in time and may still be: a resend of them is safe for "
                   "facts with a time or an idempotency_key";
    }
    return error_response(status(error_kind::unavailable, message));
}

http_response post_facts(app& a, const http_request& req) {
    std::string mt = media_type(req);
    body_format format;
    if (mt.empty() || mt == "application/json") {
        format = body_format::json;
    } else if (mt == "application/x-ndjson" || mt == "application/jsonl") {
        format = body_format::ndjson;
    } else {
        return error_response(status(error_kind::unsupported_media,
                                     "content type \"" + mt +
                                         "\" is not accepted; send application/json (one fact or "
                                         "an array) or application/x-ndjson",
                                     "Content-Type"));
    }
    if (req.body.empty()) {
        return error_response(empty_body(format == body_format::ndjson
                                             ? "facts as JSON objects, one a line,"
                                             : "a fact (a JSON object) or a JSON array of facts"));
    }
    fact_limits limits;
    limits.max_items = a.options().max_batch;
    if (format == body_format::ndjson) return post_ndjson_facts(a, req, limits);
    auto parsed = parse_fact_body(req.body, format, limits, now_micros());
    if (!parsed) return error_response(parsed.error());

    std::vector<std::size_t> valid_pos;
    std::vector<fact_input> valid = take_valid(*parsed, 0, valid_pos, req);
    a.writer().count_rejected(edge_rejections(*parsed));
    if (valid.empty()) return facts_answer(*parsed, valid_pos, {});
    if (valid.size() <= max_deferred_facts) {
        // The writer's thread builds and sends the answer after the commit;
        // this thread goes back to the connection (http_server.h).
        const auto timeout = a.write_timeout();
        auto d = std::make_shared<deferred_response>(
            std::chrono::steady_clock::now() + timeout,
            [timeout] { return error_response(fact_writer::not_committed(timeout)); });
        auto then = [d, body = std::make_shared<parsed_body>(std::move(*parsed)),
                     pos = std::move(valid_pos)](std::vector<write_result>&& stored) {
            d->complete(facts_answer(*body, pos, stored));
        };
        status s = a.writer().submit_facts(std::move(valid), std::move(then));
        if (!s) return error_response(s);
        http_response later;
        later.deferred = std::move(d);
        return later;
    }
    auto w = a.writer().write_facts(std::move(valid), a.write_timeout());
    if (!w) return error_response(w.error());
    return facts_answer(*parsed, valid_pos, *w);
}

http_response get_fact_by_id(app& a, const http_request& req) {
    auto id = parse_int("id", req.param("id"), 1, INT64_MAX);
    if (!id) return error_response(id.error());
    auto conn = a.readers().acquire();
    auto f = get_fact(*conn, *id);
    if (!f) return error_response(f.error());
    if (!f->has_value()) {
        return error_response(
            status(error_kind::not_found, "no fact with id " + std::to_string(*id), "id"));
    }
    return json_response(fact_to_json(**f));
}

http_response get_streams(app& a, const http_request&) {
    auto conn = a.readers().acquire();
    auto streams = list_streams(*conn);
    if (!streams) return error_response(streams.error());
    json out = json::array();
    for (const stream_summary& s : *streams) {
        out.push_back({{"stream", s.stream},
                       {"count", s.count},
                       {"first_event_time", format_rfc3339(s.first_event_time)},
                       {"last_event_time", format_rfc3339(s.last_event_time)},
                       {"last_ingest_time", format_rfc3339(s.last_ingest_time)},
                       {"max_fact_id", s.max_fact_id}});
    }
    return json_response(dump_json({{"streams", out}}));
}

http_response get_stream_facts(app& a, const http_request& req) {
    auto q = parse_fact_query(req, req.param("stream"), fact_read::page);
    if (!q) return error_response(q.error());
    auto conn = a.readers().acquire();
    auto page = list_facts(*conn, *q);
    if (!page) return error_response(page.error());
    std::string body = R"({"facts":[)";
    for (std::size_t i = 0; i < page->facts.size(); ++i) {
        if (i) body += ',';
        body += fact_to_json(page->facts[i]);
    }
    body += "],\"next_cursor\":";
    if (page->more) {
        const fact& last = page->facts.back();
        body += "\"" + std::to_string(last.event_time) + "." + std::to_string(last.id) + "~" +
                facts_cursor_tag(*q) + "\"";
    } else {
        body += "null";
    }
    body += "}";
    return json_response(std::move(body));
}

http_response get_stream_total(app& a, const http_request& req) {
    auto field = req.query_value("field");
    if (!field) return error_response(invalid("field", "missing: which numeric field to total"));
    auto q = parse_fact_query(req, req.param("stream"), fact_read::whole_range);
    if (!q) return error_response(q.error());
    auto conn = a.readers().acquire();
    auto t = total_field(*conn, *q, *field);
    if (!t) return error_response(t.error());
    json out = {{"stream", q->stream},
                {"field", *field},
                {"facts", t->facts},
                {"counted", t->counted},
                {"intervals", t->intervals},
                {"skipped", t->facts - t->counted},
                {"lower", t->sum_lower},
                {"upper", t->sum_upper},
                // Halves first: lower + upper can overflow where each is finite.
                {"midpoint", t->sum_lower / 2 + t->sum_upper / 2}};
    return json_response(dump_json(out));
}

http_response get_status(app& a, const http_request&) {
    writer_stats w = a.writer().stats();
    json out = {{"started_at", format_rfc3339(a.started_at())},
                {"http",
                 {{"threads", a.options().http_threads},
                  {"parked_connections", a.parked_connections()},
                  {"parked_partial_requests", a.parked_partial_requests()},
                  {"park_refused_full", a.park_refused_full()},
                  {"streaming_refused", a.streaming_refused()}}},
                {"auth",
                 {{"password_checks_running", a.auth().password_checks_running()},
                  {"password_checks_max", a.auth().password_checks().at_once},
                  {"password_checks_waiting", a.auth().password_checks_waiting()},
                  {"password_checks_max_waiting", a.auth().password_checks().waiting},
                  {"password_checks_refused", a.auth().password_checks_refused()}}},
                {"writer",
                 {{"commits", w.commits},
                  {"facts_stored", w.facts_stored},
                  {"facts_duplicate", w.facts_duplicate},
                  {"facts_rejected", w.facts_rejected},
                  {"tasks", w.tasks},
                  {"refused_full", w.refused_full},
                  {"failed_commits", w.failed_commits},
                  {"pending", w.pending},
                  {"queue_limit", a.options().writer_queue},
                  {"last_commit", w.last_commit_micros ? json(format_rfc3339(w.last_commit_micros))
                                                       : json(nullptr)}}}};
    return json_response(dump_json(out));
}

}  // namespace

std::vector<route> make_routes(app& a) {
    auto h = [&a](http_response (*fn)(app&, const http_request&)) {
        return [&a, fn](const http_request& req) { return fn(a, req); };
    };
    // method, path, handler, needs the store to be ready, credentials needed,
    // the query parameters it reads
    const std::vector<std::string> paged = {"limit", "before"};
    const std::vector<std::string> paged_by_state = {"limit", "before", "state"};
    constexpr auto open = access::open, any = access::any, ingest = access::ingest,
                   predict = access::predict, admin = access::admin;
    std::vector<route> routes = {
        {"GET", "/healthz", h(get_healthz), false, open, {"*"}},
        {"GET", "/readyz", h(get_readyz), false, open, {"*"}},
        {"GET", "/", h(get_web_index), false, open, {"*"}},
        {"GET", "/assets/{file}", h(get_web_asset), false, open, {"*"}},
        {"POST", "/v1/auth/login", h(post_auth_login), true, open},
        // Not before ready: the authenticator is made once the store is open.
        {"POST", "/v1/auth/logout", h(post_auth_logout), true, open},
        {"GET", "/v1/auth/session", h(get_auth_session), true, open},
        {"GET", "/v1/keys", h(get_keys), true, admin, paged_by_state},
        {"POST", "/v1/keys", h(post_key), true, admin},
        {"GET", "/v1/keys/{id}", h(get_key), true, admin},
        {"DELETE", "/v1/keys/{id}", h(delete_key), true, admin},
        {"GET", "/v1/status", h(get_status), true, any},
        {"POST", "/v1/facts", h(post_facts), true, ingest},
        {"GET", "/v1/facts/{id}", h(get_fact_by_id), true, any},
        {"GET", "/v1/streams", h(get_streams), true, any},
        {"GET",
         "/v1/streams/{stream}/facts",
         h(get_stream_facts),
         true,
         any,
         {"entity", "from", "to", "limit", "order", "cursor"}},
        {"GET",
         "/v1/streams/{stream}/total",
         h(get_stream_total),
         true,
         any,
         {"entity", "from", "to", "field", "limit", "order", "cursor"}},
        {"GET", "/v1/models", h(get_models), true, any, {"archived"}},
        {"GET", "/v1/models/{name}", h(get_model), true, any},
        {"PUT", "/v1/models/{name}", h(put_model), true, admin, {}, true},
        {"GET", "/v1/models/{name}/revisions", h(get_model_revisions), true, any, paged},
        {"POST", "/v1/models/{name}/train", h(post_model_train), true, admin},
        {"POST", "/v1/models/{name}/archive", h(post_model_archive), true, admin},
        {"POST", "/v1/models/{name}/restore", h(post_model_restore), true, admin},
        {"GET", "/v1/models/{name}/jobs", h(get_model_jobs), true, any, paged_by_state},
        {"GET", "/v1/models/{name}/versions", h(get_model_versions), true, any, paged},
        {"GET", "/v1/models/{name}/versions/{version}", h(get_model_version), true, any},
        {"POST", "/v1/models/{name}/versions/{version}/disable", h(post_version_disable), true,
         admin},
        {"POST", "/v1/models/{name}/versions/{version}/enable", h(post_version_enable), true,
         admin},
        {"GET", "/v1/models/{name}/aliases", h(get_model_aliases), true, any},
        {"GET", "/v1/models/{name}/aliases/{alias}", h(get_model_alias), true, any},
        {"PUT", "/v1/models/{name}/aliases/{alias}", h(put_model_alias), true, admin, {}, true},
        {"DELETE",
         "/v1/models/{name}/aliases/{alias}",
         h(delete_model_alias),
         true,
         admin,
         {},
         true},
        {"POST", "/v1/models/{name}/rollback", h(post_model_rollback), true, admin, {}, true},
        {"GET", "/v1/models/{name}/deployments", h(get_model_deployments), true, any, paged},
        {"GET", "/v1/models/{name}/events", h(get_model_events), true, any, paged},
        {"POST", "/v1/models/{name}/predict", h(post_model_predict), true, predict},
        {"GET", "/v1/models/{name}/experiments", h(get_model_experiments), true, any, paged},
        {"POST", "/v1/models/{name}/experiments", h(post_model_experiment), true, admin},
        {"GET", "/v1/models/{name}/experiments/{id}", h(get_model_experiment), true, any},
        {"PUT",
         "/v1/models/{name}/experiments/{id}",
         h(put_model_experiment),
         true,
         admin,
         {},
         true},
        {"POST",
         "/v1/models/{name}/experiments/{id}/end",
         h(post_model_experiment_end),
         true,
         admin,
         {},
         true},
        {"GET",
         "/v1/models/{name}/live-metrics",
         h(get_model_live_metrics),
         true,
         any,
         {"since", "max_age"}},
        {"GET",
         "/v1/models/{name}/predictions",
         h(get_model_predictions),
         true,
         any,
         {"limit", "entity", "id", "cursor"}},
        {"GET", "/v1/models/{name}/drift", h(get_model_drift), true, any},
        {"GET", "/v1/jobs", h(get_jobs), true, any, paged_by_state},
        {"GET", "/v1/jobs/{id}", h(get_job), true, any, {"log_after"}},
        {"POST", "/v1/jobs/{id}/cancel", h(post_job_cancel), true, admin},
        {"GET", "/v1/serving", h(get_serving), true, any, {"model"}},
        {"GET", "/v1/overview", h(get_overview), true, any},
        {"GET", "/metrics", h(get_metrics), true, any, {"*"}},
    };
    // A name no model can have is a 400 on every model route, as PUT says:
    // a read answered "no model named …", as if one might be defined.
    for (route& r : routes) {
        if (!r.pattern.starts_with("/v1/models/{name}")) continue;
        r.handler = [inner = std::move(r.handler)](const http_request& req) {
            if (!valid_name(req.param("name"))) return error_response(model_name_problem());
            return inner(req);
        };
    }
    return routes;
}

}  // namespace kennel

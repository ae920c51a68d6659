#include "server/import_export.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "server/app.h"
#include "server/fact_json.h"
#include "server/json_body.h"
#include "store/facts.h"
#include "store/json_input.h"
#include "store/migrations.h"
#include "store/writer.h"

namespace kennel {
namespace {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

// A progress line redrawn in place on a terminal; silent otherwise.
class progress_bar {
public:
    progress_bar(std::uint64_t total_bytes, bool enabled)
        : total_(total_bytes), enabled_(enabled && ::isatty(STDERR_FILENO)),
          start_(clock_type::now()) {}

    void update(std::uint64_t done_bytes, std::uint64_t facts, bool force = false) {
        if (!enabled_) return;
        auto now = clock_type::now();
        if (!force && now - last_ < std::chrono::milliseconds(100)) return;
        last_ = now;
        double secs = std::chrono::duration<double>(now - start_).count();
        double rate = secs > 0 ? static_cast<double>(facts) / secs : 0;
        double frac = total_ ? std::min(1.0, static_cast<double>(done_bytes) / static_cast<double>(total_)) : 0;
        int width = 30, filled = static_cast<int>(frac * width);
        std::string bar(static_cast<std::size_t>(filled), '#');
        bar.append(static_cast<std::size_t>(width - filled), '.');
        std::fprintf(stderr, "\r[%s] %5.1f%%  %llu facts  %.0f facts/s ", bar.c_str(), frac * 100,
                     static_cast<unsigned long long>(facts), rate);
        std::fflush(stderr);
    }
    void finish() {
        if (enabled_) std::fprintf(stderr, "\n");
    }

private:
    std::uint64_t total_;
    bool enabled_;
    clock_type::time_point start_;
    clock_type::time_point last_{};
};

// RFC 4180 CSV: quoted fields may hold commas, quotes ("") and newlines.
class csv_reader {
public:
    explicit csv_reader(std::istream& in) : in_(in) {}

    // Reads one record; false at end of input.
    bool next(std::vector<std::string>& fields) {
        fields.clear();
        first_line_ = line_ + 1;
        std::string field;
        bool quoted = false, any = false;
        int c;
        while ((c = in_.get()) != EOF) {
            any = true;
            char ch = static_cast<char>(c);
            if (quoted) {
                if (ch == '"') {
                    if (in_.peek() == '"') {
                        in_.get();
                        field.push_back('"');
                    } else {
                        quoted = false;
                    }
                } else {
                    if (ch == '\n') ++line_;
                    field.push_back(ch);
                }
                continue;
            }
            if (ch == '"') {
                quoted = true;
            } else if (ch == ',') {
                fields.push_back(std::move(field));
                field.clear();
            } else if (ch == '\n') {
                ++line_;
                break;
            } else if (ch != '\r') {
                field.push_back(ch);
            }
        }
        if (!any) return false;
        if (c == EOF) ++line_;  // the last record, without a newline: its line counts too
        fields.push_back(std::move(field));
        unclosed_ = quoted;
        return true;
    }
    std::size_t line() const { return line_; }
    // The record read last ended the input inside a quoted cell: every line
    // after the quote went into that cell.
    bool unclosed_quote() const { return unclosed_; }
    std::size_t first_line() const { return first_line_; }  // of the record read last

private:
    std::istream& in_;
    std::size_t line_ = 0;
    std::size_t first_line_ = 0;
    bool unclosed_ = false;
};

// A CSV cell as JSON: numbers and booleans are typed, empty cells absent.
// Digits with a leading zero ("00501", a code) stay text, as a number would
// lose the zeros; a number past a double's range is refused (it became null).
result<json> csv_value(const std::string& s) {
    // Spaces around a cell keep it text, before as after (strtod skipped
    // leading ones only: " 5" was 5 and "5 " the text "5 ").
    if (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) return json(s);
    if (s == "true") return json(true);
    if (s == "false") return json(false);
    const std::size_t digits_at = s.find_first_not_of("+-");
    if (digits_at != std::string::npos && s.size() > digits_at + 1 && s[digits_at] == '0' &&
        std::isdigit(static_cast<unsigned char>(s[digits_at + 1])))
        return json(s);
    char* end = nullptr;
    errno = 0;
    double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size() &&
        s.find_first_of("xXnNiI") == std::string::npos) {
        if (s.find_first_of(".eE") == std::string::npos) {
            // Integers as integers, up to the unsigned 64-bit range, as the
            // API stores them; past it the double.
            char* iend = nullptr;
            errno = 0;
            long long v = std::strtoll(s.c_str(), &iend, 10);
            if (iend == s.c_str() + s.size() && errno != ERANGE) return json(v);
            if (s[0] != '-') {
                errno = 0;
                unsigned long long u = std::strtoull(s.c_str(), &iend, 10);
                if (iend == s.c_str() + s.size() && errno != ERANGE) return json(u);
            }
        }
        if (!std::isfinite(d)) {
            return invalid("", s + " is beyond the range of a 64-bit floating-point number");
        }
        return json(d);
    }
    return json(s);
}

struct import_counts {
    std::uint64_t stored = 0, duplicate = 0, rejected = 0;
    // Stored without a time or an idempotency key: stamped with the time of
    // import, so the same line imported again is a new fact.
    std::uint64_t stamped = 0;
};

void report_rejection(import_counts& counts, std::size_t line, const std::string& field,
                      const std::string& message) {
    ++counts.rejected;
    if (counts.rejected <= 20) {
        std::fprintf(stderr, "line %zu: rejected%s%s: %s\n", line, field.empty() ? "" : " ",
                     field.c_str(), message.c_str());
    } else if (counts.rejected == 21) {
        std::fprintf(stderr, "(further rejections are counted, not printed)\n");
    }
}

}  // namespace

std::istream* open_cli_input(const std::string& path, std::unique_ptr<std::ifstream>& file,
                             const char* command) {
    if (path.empty() || path == "-") return &std::cin;
    // A directory opens as a stream that reads nothing: "0 stored", exit 0.
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
        std::cerr << "kennel " << command << ": cannot read " << path << ": it is a directory\n";
        return nullptr;
    }
    file = std::make_unique<std::ifstream>(path, std::ios::binary);
    if (*file) return file.get();
    std::cerr << "kennel " << command << ": cannot read " << path << "\n";
    return nullptr;
}

namespace {

// The signals that stop a command run by hand or by a scheduler: Ctrl-C,
// SIGTERM (a timeout, a shutdown), SIGHUP (a closed terminal).
constexpr int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};

// Sets what each of stop_signals does: a handler, SIG_IGN or SIG_DFL.
void set_stop_handlers(void (*handler)(int), int flags = 0) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    for (int sig : stop_signals) ::sigaction(sig, &sa, nullptr);
}

// The signal that asked an import to stop (0: none), set by the handler.
volatile std::sig_atomic_t import_stop_signal = 0;

extern "C" void note_import_stop(int sig) {
    import_stop_signal = sig;
}

// An import's input file read through its descriptor: a read that a stop
// signal interrupts ends the input, where std::ifstream's retried it, so an
// import blocked on a FIFO or a <(...) stayed blocked after Ctrl-C until its
// writer closed. A read error is thrown, which the stream turns into badbit
// (as std::ifstream's does).
class import_file_buf final : public std::streambuf {
public:
    explicit import_file_buf(int fd) : fd_(fd) {}
    ~import_file_buf() override { ::close(fd_); }
    import_file_buf(const import_file_buf&) = delete;
    import_file_buf& operator=(const import_file_buf&) = delete;

protected:
    int_type underflow() override {
        if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
        for (;;) {
            const ssize_t n = ::read(fd_, buf_, sizeof buf_);
            if (n > 0) {
                setg(buf_, buf_, buf_ + n);
                return traits_type::to_int_type(*gptr());
            }
            if (n == 0) return traits_type::eof();
            if (errno != EINTR) throw std::ios_base::failure(std::strerror(errno));
            if (import_stop_signal) return traits_type::eof();
        }
    }
    // For the progress bar's size (seekg to the end and back) and position
    // (tellg); a pipe cannot seek, which the caller expects.
    pos_type seekoff(off_type off, std::ios_base::seekdir dir, std::ios_base::openmode) override {
        const off_t buffered = egptr() - gptr();
        if (dir == std::ios_base::cur && off == 0) {
            const off_t at = ::lseek(fd_, 0, SEEK_CUR);
            return at < 0 ? pos_type(off_type(-1)) : pos_type(at - buffered);
        }
        const int whence = dir == std::ios_base::beg   ? SEEK_SET
                           : dir == std::ios_base::cur ? SEEK_CUR
                                                       : SEEK_END;
        const off_t at = ::lseek(fd_, dir == std::ios_base::cur ? off - buffered : off, whence);
        if (at < 0) return pos_type(off_type(-1));
        setg(buf_, buf_, buf_);
        return pos_type(at);
    }
    pos_type seekpos(pos_type pos, std::ios_base::openmode mode) override {
        return seekoff(off_type(pos), std::ios_base::beg, mode);
    }

private:
    int fd_;
    char buf_[64 * 1024];
};

// An input file for kennel import: its buffer, then the stream over it.
struct import_file {
    explicit import_file(int fd) : buf(fd), in(&buf) {}
    import_file_buf buf;
    std::istream in;
};

// While it lives, Ctrl-C, SIGTERM and SIGHUP stop an import after the line
// being read: the batch read so far is committed and the counts are said
// (an interrupted import ended at once and said nothing of what it had
// stored). Without SA_RESTART, so a read blocked on a pipe returns; a
// second signal ends the process at once (SA_RESETHAND).
class import_signal_guard {
public:
    import_signal_guard() {
        import_stop_signal = 0;
        set_stop_handlers(note_import_stop, SA_RESETHAND);
    }
    ~import_signal_guard() { set_stop_handlers(SIG_DFL); }
    import_signal_guard(const import_signal_guard&) = delete;
    import_signal_guard& operator=(const import_signal_guard&) = delete;
};

}  // namespace

int run_import(const import_options& o) {
    std::unique_ptr<import_file> file;
    std::istream* owned = nullptr;  // a file of ours, which may seek
    std::istream* in = &std::cin;
    if (!o.file.empty() && o.file != "-") {
        std::error_code ec;
        if (std::filesystem::is_directory(o.file, ec)) {
            std::cerr << "kennel import: cannot read " << o.file << ": it is a directory\n";
            return 1;
        }
        const int fd = ::open(o.file.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            std::cerr << "kennel import: cannot read " << o.file << ": " << std::strerror(errno)
                      << "\n";
            return 1;
        }
        file = std::make_unique<import_file>(fd);
        in = owned = &file->in;
    }
    std::uint64_t total = 0;  // bytes, for the progress bar (a file's only)
    if (owned) {
        // A pipe (<(cat f), a FIFO, /dev/stdin) cannot seek: the failed seek
        // left the stream failed, and the import read nothing and exited 0.
        owned->seekg(0, std::ios::end);
        const auto end = owned->tellg();
        owned->seekg(0);
        if (*owned && end > 0) {
            total = static_cast<std::uint64_t>(end);
        } else {
            owned->clear();
            total = 0;
        }
    }
    std::string format = o.format;
    if (format == "auto") {
        bool csv = o.file.size() > 4 && o.file.substr(o.file.size() - 4) == ".csv";
        format = csv ? "csv" : "ndjson";
    }
    if (format != "csv" && format != "ndjson") {
        std::cerr << "kennel import: --format must be auto, ndjson or csv\n";
        return 2;
    }
    if (format == "csv" && o.stream.empty()) {
        std::cerr << "kennel import: CSV rows need a stream: --stream NAME\n";
        return 2;
    }

    auto lock = db_lock::acquire(o.db);
    if (!lock) {
        // The hint only for the one case it answers: another Kennel has it.
        std::cerr << "kennel import: " << lock.error().message()
                  << (lock.error().kind() == error_kind::conflict
                          ? "; stop it, or send the facts to its POST /v1/facts"
                          : "")
                  << "\n";
        return 1;
    }
    open_options db;
    db.sync = o.sync;
    {
        open_options first = db;
        first.wal = false;  // migrate() sets it once the file is known to be Kennel's
        connection conn(o.db, first);
        if (status s = migrate(conn); !s) {
            std::cerr << "kennel import: " << s.message() << "\n";
            return 1;
        }
    }
    writer_options wo;
    wo.db_path = o.db;
    wo.db = db;
    wo.max_pending = o.batch * 4;
    fact_writer writer(wo);
    if (status s = writer.start(); !s) {
        std::cerr << "kennel import: " << s.message() << "\n";
        return 1;
    }

    const import_signal_guard on_signal;
    std::size_t last_line = 0;  // the last line read, for an interruption's report
    import_counts counts;
    progress_bar bar(total, o.progress);
    std::vector<fact_input> batch;
    std::vector<std::size_t> batch_lines;
    // An export's lines carry each fact's `id` in the database it came from.
    // A `corrects` naming one of them is translated to the id that fact got
    // here, so corrections survive a round trip into a database that already
    // holds facts. A line without an id (not from an export) may name an id
    // of this database; an exported line naming an id no earlier line of the
    // file had is refused: that id meant another fact where it came from.
    std::vector<std::int64_t> batch_source_ids;                  // 0: the line had no id
    std::vector<bool> batch_stamped;                             // see import_counts::stamped
    std::unordered_map<std::int64_t, std::int64_t> imported_id;  // source id -> id here
    std::unordered_set<std::int64_t> pending_ids;
    std::unordered_map<std::int64_t, std::size_t> named_ids;  // source id -> the line naming it
    auto flush = [&]() -> bool {
        if (batch.empty()) return true;
        auto r = writer.write_facts(std::move(batch), std::chrono::minutes(5));
        batch.clear();
        pending_ids.clear();
        if (!r) {
            std::cerr << "\nkennel import: " << r.error().message() << "\n";
            return false;
        }
        // A commit that failed (a full disk) is the system's failure, not the
        // lines': every later batch failed alike, and each line was counted
        // as rejected (exit 3, "bad lines"). Stop with the reason instead.
        if (!r->empty() && r->front().commit_failed) {
            std::cerr << "\nkennel import: " << r->front().error << " (stopped at line "
                      << batch_lines.front() << "; " << counts.stored
                      << " facts stored before it)\n";
            return false;
        }
        for (std::size_t i = 0; i < r->size(); ++i) {
            const write_result& w = (*r)[i];
            if (w.outcome == write_outcome::stored) {
                ++counts.stored;
                counts.stamped += batch_stamped[i];
            }
            if (w.outcome == write_outcome::duplicate) ++counts.duplicate;
            if (w.outcome == write_outcome::rejected) report_rejection(counts, batch_lines[i], w.field, w.error);
            if (w.outcome != write_outcome::rejected && batch_source_ids[i] > 0) {
                imported_id[batch_source_ids[i]] = w.id;
            }
        }
        batch_lines.clear();
        batch_source_ids.clear();
        batch_stamped.clear();
        return true;
    };
    auto add = [&](const std::string& text, std::size_t line, std::int64_t source_id) -> bool {
        // Named even when the line is refused: a correction of it must not
        // then be taken for a correction of this database's fact of that id.
        // Named twice (two exports joined), a later correction of the id
        // went to the second fact without a word.
        if (source_id > 0) {
            const auto [first, fresh] = named_ids.emplace(source_id, line);
            if (!fresh) {
                report_rejection(counts, line, "id",
                                 "id " + std::to_string(source_id) + " was given by line " +
                                     std::to_string(first->second) +
                                     " already: an export names each fact once (two files "
                                     "joined?), and a correction of the id could not tell which");
                return true;
            }
        }
        parsed_item item = parse_fact_text(text, now_micros());
        if (!item.error.is_ok()) {
            report_rejection(counts, line, item.error.field(), item.error.message());
            return true;
        }
        if (item.fact.corrects && source_id > 0 && !named_ids.count(*item.fact.corrects)) {
            report_rejection(counts, line, "corrects",
                             "the fact it corrects (id " + std::to_string(*item.fact.corrects) +
                                 " where the file came from) is not in the file before it");
            return true;
        }
        if (item.fact.corrects && named_ids.count(*item.fact.corrects)) {
            // The fact it corrects is in this file: wait for its id here.
            if (pending_ids.count(*item.fact.corrects) && !flush()) return false;
            auto to = imported_id.find(*item.fact.corrects);
            if (to == imported_id.end()) {
                report_rejection(counts, line, "corrects",
                                 "the fact it corrects (id " + std::to_string(*item.fact.corrects) +
                                     " in the file) was not imported");
                return true;
            }
            item.fact.corrects = to->second;
            // Derived from the id where the file came from; this database's
            // id is the one the fact names here.
            if (item.fact.key_derived) set_derived_key(item.fact);
        }
        if (source_id > 0) pending_ids.insert(source_id);
        batch_stamped.push_back(!item.fact.time_given && item.fact.key_derived);
        batch.push_back(std::move(item.fact));
        batch_lines.push_back(line);
        batch_source_ids.push_back(source_id);
        if (batch.size() >= o.batch) return flush();
        return true;
    };

    bool ok = true;
    if (format == "ndjson") {
        std::string line;
        std::size_t line_no = 0;
        while (ok && !import_stop_signal && std::getline(*in, line)) {
            last_line = ++line_no;
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (is_blank(line)) continue;
            std::int64_t source_id = 0;
            // Lines without a stream take --stream. An export's own fields
            // are accepted here (never by POST /v1/facts): `id` maps
            // corrections (above); `ingest_time` is ignored, as this database
            // stamps its own.
            bool exported = line.find("\"id\"") != std::string::npos ||
                            line.find("\"ingest_time\"") != std::string::npos;
            if (!o.stream.empty() || exported) {
                // A line that does not parse (or names a key twice) is left
                // as it is: parse_fact_text reports it.
                if (auto parsed = parse_json_input(line)) {
                    json& j = *parsed;
                    if (j.is_object()) {
                        std::string bad;
                        if (auto id = j.find("id"); id != j.end()) {
                            if (id->is_number_integer() && id->get<std::int64_t>() > 0) {
                                source_id = id->get<std::int64_t>();
                            } else {
                                bad = "id";
                            }
                            j.erase(id);
                        }
                        if (auto t = j.find("ingest_time"); t != j.end()) {
                            if (!t->is_string()) bad = "ingest_time";
                            j.erase(t);
                        }
                        if (!o.stream.empty() && !j.contains("stream")) j["stream"] = o.stream;
                        if (!bad.empty()) {
                            if (source_id > 0) named_ids.emplace(source_id, line_no);
                            report_rejection(counts, line_no, bad,
                                             bad == "id" ? "must be a positive integer (the fact's "
                                                           "id in an export)"
                                                         : "must be a string (an export's time "
                                                           "of ingest; ignored)");
                            continue;
                        }
                        line = j.dump();
                    }
                }
            }
            ok = add(line, line_no, source_id);
            bar.update(total ? static_cast<std::uint64_t>(in->tellg()) : 0,
                       counts.stored + counts.duplicate + batch.size());
        }
    } else {
        csv_reader csv(*in);
        std::vector<std::string> header, row;
        if (!csv.next(header)) {
            std::cerr << "kennel import: " << o.file << " is empty\n";
            return 1;
        }
        // A spreadsheet's "CSV UTF-8" starts with a byte order mark.
        if (!header.empty() && header[0].starts_with("\xEF\xBB\xBF")) header[0].erase(0, 3);
        // A name given twice would be one field, the last column's (and
        // facts refuse a key given twice); a name not UTF-8 no field at all.
        std::unordered_map<std::string_view, std::size_t> column_of;
        for (std::size_t i = 0; i < header.size(); ++i) {
            if (!is_utf8(header[i])) {
                std::cerr << "kennel import: the header's column " << i + 1
                          << " is not UTF-8 text; convert the file to UTF-8 (e.g. iconv -f "
                             "latin1 -t utf-8)\n";
                return 1;
            }
            if (auto [it, fresh] = column_of.try_emplace(header[i], i); !fresh) {
                std::cerr << "kennel import: the header names \"" << header[i]
                          << "\" twice (columns " << it->second + 1 << " and " << i + 1
                          << "); rename one\n";
                return 1;
            }
        }
        int entity_col = -1, time_col = -1;
        for (std::size_t i = 0; i < header.size(); ++i) {
            if (header[i] == o.entity_column) entity_col = static_cast<int>(i);
            if (!o.time_column.empty() && header[i] == o.time_column) time_col = static_cast<int>(i);
        }
        if (entity_col < 0) {
            std::cerr << "kennel import: no column \"" << o.entity_column
                      << "\" in the header (set --entity-column)\n";
            return 1;
        }
        if (!o.time_column.empty() && time_col < 0) {
            std::cerr << "kennel import: no column \"" << o.time_column << "\" in the header\n";
            return 1;
        }
        while (ok && !import_stop_signal && csv.next(row)) {
            std::size_t line_no = last_line = csv.line();
            if (row.size() == 1 && row[0].empty()) continue;
            if (csv.unclosed_quote()) {
                // Was "has 3 columns": the count of a record that had run
                // to the end of the file.
                report_rejection(counts, csv.first_line(), "",
                                 "a quoted cell is never closed: every line from here to the "
                                 "end of the file was read as one record");
                continue;
            }
            if (row.size() != header.size()) {
                report_rejection(counts, line_no, "", "has " + std::to_string(row.size()) +
                                                          " columns; the header has " +
                                                          std::to_string(header.size()));
                continue;
            }
            // Text that is not UTF-8 (a Latin-1 file) cannot be stored as
            // JSON: the line is refused, naming the column.
            const auto bad = std::find_if(row.begin(), row.end(),
                                          [](const std::string& cell) { return !is_utf8(cell); });
            if (bad != row.end()) {
                const auto col = bad - row.begin();
                report_rejection(counts, line_no,
                                 col == entity_col ? "entity"
                                 : col == time_col
                                     ? "time"
                                     : "data." + header[static_cast<std::size_t>(col)],
                                 "is not UTF-8 text; convert the file to UTF-8 (e.g. iconv -f "
                                 "latin1 -t utf-8)");
                continue;
            }
            json fact = {{"stream", o.stream}, {"entity", row[static_cast<std::size_t>(entity_col)]}};
            if (time_col >= 0) fact["time"] = row[static_cast<std::size_t>(time_col)];
            json data = json::object();
            std::string bad_column, why;
            for (std::size_t i = 0; i < header.size(); ++i) {
                if (static_cast<int>(i) == entity_col || static_cast<int>(i) == time_col) continue;
                if (row[i].empty()) continue;
                auto v = csv_value(row[i]);
                if (!v) {
                    bad_column = header[i];
                    why = v.error().message();
                    break;
                }
                data[header[i]] = std::move(*v);
            }
            if (!bad_column.empty()) {
                report_rejection(counts, line_no, "data." + bad_column, why);
                continue;
            }
            fact["data"] = data;
            ok = add(fact.dump(), line_no, 0);
            bar.update(total ? static_cast<std::uint64_t>(in->tellg()) : 0,
                       counts.stored + counts.duplicate + batch.size());
        }
    }
    // A read error (EIO, a directory, a dropped network mount) ends the
    // loops as the end of the input does, and the import exited 0 after a
    // partial read. So a loop the writer did not stop must have reached the
    // end; std::cin reads through stdin's FILE, which keeps its error there.
    const int interrupted = import_stop_signal;  // a read it cut short is no read error
    const bool read_failed =
        !interrupted &&
        (in->bad() || (in == &std::cin && std::ferror(stdin)) || (ok && !in->eof()));
    if (ok) ok = flush();  // what was read before the error is stored
    bar.update(total, counts.stored + counts.duplicate, true);
    bar.finish();
    writer.stop();
    std::fprintf(stderr, "kennel import: %llu stored, %llu duplicates, %llu rejected\n",
                 static_cast<unsigned long long>(counts.stored),
                 static_cast<unsigned long long>(counts.duplicate),
                 static_cast<unsigned long long>(counts.rejected));
    if (counts.stamped) {
        // Said, not refused: a file of current readings is a fair thing to
        // load once. But a second run (say, after an interruption) doubles
        // these facts, and nothing else would tell.
        std::fprintf(stderr,
                     "kennel import: %llu of the facts stored had no time and no "
                     "idempotency_key, so they were stamped with the time of this import: "
                     "importing them again stores them again (a time%s or an idempotency_key "
                     "makes a re-import store nothing twice)\n",
                     static_cast<unsigned long long>(counts.stamped),
                     format == "csv" ? " column (--time-column)" : "");
    }
    if (interrupted && ok) {
        std::fprintf(stderr,
                     "kennel import: interrupted by %s after line %zu; the facts counted above "
                     "were stored (importing the whole file again stores nothing twice when "
                     "they have a time or an idempotency_key)\n",
                     interrupted == SIGINT    ? "SIGINT"
                     : interrupted == SIGTERM ? "SIGTERM"
                                              : "SIGHUP",
                     last_line);
        return 128 + interrupted;
    }
    if (read_failed) {
        std::cerr << "kennel import: reading "
                  << (o.file.empty() || o.file == "-" ? std::string("standard input") : o.file)
                  << " failed before its end; the facts counted above were stored (importing "
                     "the whole file again stores nothing twice when they have a time or an "
                     "idempotency_key)\n";
        return 1;
    }
    if (!ok) return 1;
    return counts.rejected ? 3 : 0;
}

int run_export(const export_options& o) {
    // A name no fact can have exported nothing, exit 0, like an empty stream.
    if (!o.stream.empty()) {
        if (const std::string problem = stream_name_problem(o.stream); !problem.empty()) {
            std::cerr << "kennel export: --stream \"" << o.stream << "\" " << problem << "\n";
            return 2;
        }
    }
    open_options ro;
    ro.read_only = true;
    connection conn(o.db, ro);
    cli_output output("export", o.db);
    std::ostream* out = output.open(o.out);
    if (!out) return 1;
    // Log order (by id): an export imported elsewhere replays the same log.
    std::string sql =
        "SELECT id, idempotency_key, stream, entity, event_time, ingest_time, data, corrects"
        " FROM facts";
    if (!o.stream.empty()) sql += " WHERE stream = ?1";
    sql += " ORDER BY id";
    statement st(conn, sql);
    if (!o.stream.empty()) st.bind(1, o.stream);
    std::uint64_t n = 0;
    errno = 0;
    while (st.step()) {
        fact f{st.column_int(0),  st.column_text(1), st.column_text(2),   st.column_text(3),
               st.column_int(4),  st.column_int(5),  st.column_text(6),   st.column_opt_int(7)};
        if (!(*out << facts_to_ndjson_line(f))) break;
        ++n;
    }
    if (!output.finish("after " + std::to_string(n) + " facts")) return 1;
    std::fprintf(stderr, "kennel export: %llu facts\n", static_cast<unsigned long long>(n));
    return 0;
}

namespace {

// Files a stop signal removes before the process ends, and what it says
// then: fixed storage, since a signal handler may only call
// async-signal-safe functions (unlink, write, _exit).
constexpr std::size_t max_partial_files = 4;  // a backup's copy, its journal, -wal and -shm
char partial_files[max_partial_files][PATH_MAX];
char partial_said[160];
std::size_t partial_said_bytes = 0;

extern "C" void discard_partial_and_exit(int sig) {
    for (auto& path : partial_files) {
        if (path[0]) ::unlink(path);
    }
    [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, partial_said, partial_said_bytes);
    ::_exit(128 + sig);
}

}  // namespace

// While it lives, Ctrl-C, SIGTERM (a cron job's timeout, a shutdown) and
// SIGHUP remove the partial files before the process ends, saying `said`:
// each interrupted backup left a file as large as the database beside the
// backups, under a name no clean-up matched, and an interrupted export a
// file cut short under its final name. kill -9 still leaves them (their
// names say so).
class partial_signal_guard {
public:
    partial_signal_guard(const std::vector<std::string>& files, std::string_view said) {
        if (files.size() > max_partial_files || said.size() > sizeof partial_said) return;
        for (const std::string& f : files) {
            if (f.size() >= PATH_MAX) return;  // no handler: as before
        }
        for (std::size_t i = 0; i < max_partial_files; ++i) {
            const std::string none;
            const std::string& f = i < files.size() ? files[i] : none;
            std::memcpy(partial_files[i], f.c_str(), f.size() + 1);
        }
        std::memcpy(partial_said, said.data(), said.size());
        partial_said_bytes = said.size();
        set_stop_handlers(discard_partial_and_exit);
        armed_ = true;
    }
    // Around naming the copy: a signal then is held until settled() or the
    // guard's end, so that it cannot report a copy already named as removed.
    void hold() {
        sigset_t held;
        sigemptyset(&held);
        for (int sig : stop_signals) sigaddset(&held, sig);
        ::sigprocmask(SIG_BLOCK, &held, &before_hold_);
        holding_ = true;
    }
    // The copy has its name: a signal that came meanwhile is dropped (the
    // backup is done, and says so), and later ones act as they normally do.
    void settled() {
        set_stop_handlers(SIG_IGN);  // discards a pending signal
        release();
    }
    ~partial_signal_guard() {
        if (!armed_) {
            release();
            return;
        }
        set_stop_handlers(SIG_DFL);
        for (auto& path : partial_files) path[0] = '\0';
        release();  // a signal held here acts now, as it normally does
    }
    partial_signal_guard(const partial_signal_guard&) = delete;
    partial_signal_guard& operator=(const partial_signal_guard&) = delete;

private:
    void release() {
        if (holding_) ::sigprocmask(SIG_SETMASK, &before_hold_, nullptr);
        holding_ = false;
    }

    bool armed_ = false;
    bool holding_ = false;
    sigset_t before_hold_{};
};

cli_output::cli_output(const char* command, std::string db)
    : command_(command), db_(std::move(db)) {}

cli_output::~cli_output() {
    discard();
}

void cli_output::discard() {
    guard_.reset();
    if (file_) file_->close();
    if (!partial_.empty()) {
        std::error_code ignored;
        std::filesystem::remove(partial_, ignored);
        partial_.clear();
    }
}

std::ostream* cli_output::open(const std::string& path) {
    if (path.empty() || path == "-") return &std::cout;
    namespace fs = std::filesystem;
    std::error_code ec;
    if (const std::string other = database_file_named(path, db_); !other.empty()) {
        const bool main_file = fs::equivalent(other, db_, ec);
        std::cerr << "kennel " << command_ << ": --out " << path << " is the database "
                  << (main_file ? db_ : "file " + other)
                  << ": writing it would destroy the facts; name another file\n";
        return nullptr;
    }
    if (fs::is_directory(path, ec)) {
        std::cerr << "kennel " << command_ << ": cannot write " << path << ": it is a directory\n";
        return nullptr;
    }
    path_ = path;
    // A symbolic link is written through, as before: renamed over, it would
    // be replaced by a file (/dev/stdout, as root, among them).
    const bool in_place =
        fs::is_symlink(path, ec) || (fs::exists(path, ec) && !fs::is_regular_file(path, ec));
    if (!in_place) {
        partial_ = path + ".partial-" + std::to_string(::getpid());
        guard_ = std::make_unique<partial_signal_guard>(
            std::vector<std::string>{partial_},
            "kennel " + std::string(command_) + ": interrupted; the partial output was removed\n");
    }
    errno = 0;
    file_ = std::make_unique<std::ofstream>(in_place ? path : partial_,
                                            std::ios::binary | std::ios::trunc);
    if (*file_) return file_.get();
    const int err = errno;
    std::cerr << "kennel " << command_ << ": cannot write " << path
              << (err ? std::string(": ") + std::strerror(err) : std::string()) << "\n";
    discard();
    return nullptr;
}

bool cli_output::finish(const std::string& progress) {
    bool written = static_cast<bool>(file_ ? file_->flush() : std::cout.flush());
    if (written && file_) {
        file_->close();
        written = !file_->fail();
    }
    if (!written) {
        const int err = errno;
        std::cerr << "kennel " << command_ << ": writing " << (file_ ? path_ : "standard output")
                  << " failed " << progress << ": " << (err ? std::strerror(err) : "unknown error")
                  << (partial_.empty() ? "" : "; the incomplete file was removed") << "\n";
        discard();
        return false;
    }
    if (partial_.empty()) return true;
    guard_->hold();  // a signal now must not report a named file as removed
    if (::rename(partial_.c_str(), path_.c_str()) != 0) {
        std::cerr << "kennel " << command_ << ": cannot rename " << partial_ << " to " << path_
                  << ": " << std::strerror(errno) << "\n";
        discard();
        return false;
    }
    partial_.clear();
    guard_->settled();
    guard_.reset();
    return true;
}

int run_backup(const std::string& db, const std::string& to_path) {
    if (::access(to_path.c_str(), F_OK) == 0) {
        std::cerr << "kennel backup: " << to_path << " exists; choose a new file\n";
        return 1;
    }
    // The copy is made under a name of its own and takes to_path only once
    // it is whole and checked, so an interrupted backup (an error, Ctrl-C,
    // kill -9) never leaves a file at to_path that looks like a backup and
    // refuses the retry; a killed one leaves only the plainly named partial.
    const std::string partial = to_path + ".partial-" + std::to_string(::getpid());
    auto discard = [&partial] {
        for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
            std::error_code ignored;
            std::filesystem::remove(partial + suffix, ignored);
        }
    };
    partial_signal_guard on_signal(
        {partial, partial + "-journal", partial + "-wal", partial + "-shm"},
        "kennel backup: interrupted; the partial copy was removed\n");
    open_options ro;
    ro.read_only = true;
    long long facts = 0;
    try {
        connection from(db, ro);
        bool tty = ::isatty(STDERR_FILENO);
        online_backup(from, partial, [tty](int remaining, int total) {
            if (tty && total > 0) {
                std::fprintf(stderr, "\rbackup: %d/%d pages", total - remaining, total);
            }
        });
        if (tty) std::fprintf(stderr, "\n");
        connection check(partial, ro);
        statement ic(check, "PRAGMA quick_check");
        std::string verdict = ic.step() ? ic.column_text(0) : "no answer";
        if (verdict != "ok") {
            std::cerr << "kennel backup: the copy failed its integrity check: " << verdict << "\n";
            facts = -1;
        } else {
            statement count(check, "SELECT count(*) FROM facts");
            count.step();
            facts = count.column_int(0);
        }
    } catch (...) {
        discard();
        throw;
    }
    if (facts < 0) {
        discard();
        return 1;
    }
    // The read-only check of a WAL-mode copy leaves an empty -wal and a -shm
    // beside it, which a read-only connection cannot remove: the copy is one
    // file.
    {
        std::error_code ec;
        if (std::filesystem::file_size(partial + "-wal", ec) == 0 && !ec) {
            std::filesystem::remove(partial + "-wal", ec);
            std::filesystem::remove(partial + "-shm", ec);
        }
    }
    // Never rename() over a file that appeared at to_path meanwhile: with
    // RENAME_NOREPLACE, or where a file system lacks it, link() and unlink.
    on_signal.hold();
    int moved = ::renameat2(AT_FDCWD, partial.c_str(), AT_FDCWD, to_path.c_str(), RENAME_NOREPLACE);
    if (moved != 0 && errno == EINVAL) moved = ::link(partial.c_str(), to_path.c_str());
    if (moved == 0) on_signal.settled();
    if (moved != 0) {
        const int err = errno;
        discard();
        std::cerr << "kennel backup: cannot name the copy " << to_path << ": " << std::strerror(err)
                  << (err == EEXIST ? " (it appeared while copying; choose a new file)" : "")
                  << "\n";
        return 1;
    }
    discard();
    std::fprintf(stderr, "kennel backup: wrote %s (%lld facts, integrity ok)\n", to_path.c_str(),
                 facts);
    return 0;
}

}  // namespace kennel

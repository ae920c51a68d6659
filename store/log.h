// One-line structured log to stderr ("2026-11-21T10:00:00.123Z info writer: ...").
// Thread-safe: lines from different threads never interleave.
#pragma once

#include <string>
#include <string_view>

namespace kennel {

enum class log_level { debug, info, warn, error };

void log_line(log_level level, std::string_view component, std::string_view message);
// Appends text with control characters escaped (\n, \t, \r, \xNN), as
// log_line writes a message.
void append_log_text(std::string& line, std::string_view text);
inline void log_info(std::string_view c, std::string_view m) { log_line(log_level::info, c, m); }
inline void log_warn(std::string_view c, std::string_view m) { log_line(log_level::warn, c, m); }
inline void log_error(std::string_view c, std::string_view m) { log_line(log_level::error, c, m); }

// Names the calling thread (at most 15 characters are kept) so that top -H,
// perf and gdb tell Kennel's threads apart.
void name_this_thread(const char* name);

}  // namespace kennel

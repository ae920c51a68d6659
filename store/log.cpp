#include "store/log.h"

#include <pthread.h>

#include <cstdio>
#include <mutex>
#include <string>

#include "store/json_input.h"
#include "store/time_util.h"

namespace kennel {

void name_this_thread(const char* name) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%s", name);
    pthread_setname_np(pthread_self(), buf);
}

void append_log_text(std::string& line, std::string_view text) {
    // One entry, one line: a name sent by a client ("x\n2026-... info ...")
    // could otherwise write a line that reads as the server's own. A
    // character that turns the text's direction (U+202E: "\u202egpj.exe"
    // reads "exe.jpg") is shown by its number, as the names refused
    // elsewhere for it would be.
    static const char hex[] = "0123456789abcdef";
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char ch = text[i];
        const auto c = static_cast<unsigned char>(ch);
        if (c >= 0x80) {
            std::size_t next = i;
            const auto ch32 = next_code_point(text, next);
            // U+2028 and U+2029 break the line in some viewers.
            if (ch32 && (turns_direction(*ch32) || *ch32 == 0x2028 || *ch32 == 0x2029)) {
                line += "\\u";
                for (int shift = 12; shift >= 0; shift -= 4) line += hex[(*ch32 >> shift) & 0xf];
                i = next - 1;
            } else {
                line += ch;  // the rest of a character, or bytes as they came
            }
        } else if (c >= 0x20 && c != 0x7f) {
            line += ch;
        } else if (c == '\n') {
            line += "\\n";
        } else if (c == '\t') {
            line += "\\t";
        } else if (c == '\r') {
            line += "\\r";
        } else {
            line += "\\x";
            line += hex[c >> 4];
            line += hex[c & 0xf];
        }
    }
}

void log_line(log_level level, std::string_view component, std::string_view message) {
    static std::mutex mu;
    static const char* names[] = {"debug", "info", "warn", "error"};
    std::string line = format_rfc3339(now_micros());
    line += ' ';
    line += names[static_cast<int>(level)];
    line += ' ';
    line += component;
    line += ": ";
    append_log_text(line, message);
    line += '\n';
    std::lock_guard lock(mu);
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
}

}  // namespace kennel

#include "server/json_writer.h"

#include <charconv>
#include <cmath>

namespace kennel {

json_writer& json_writer::string(std::string_view s) {
    static const char* hex = "0123456789abcdef";
    out_.push_back('"');
    std::size_t run = 0;  // start of the bytes not yet copied
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        out_.append(s.substr(run, i - run));
        run = i + 1;
        switch (c) {
            case '"':
                out_.append("\\\"");
                break;
            case '\\':
                out_.append("\\\\");
                break;
            case '\n':
                out_.append("\\n");
                break;
            case '\r':
                out_.append("\\r");
                break;
            case '\t':
                out_.append("\\t");
                break;
            case '\b':
                out_.append("\\b");
                break;
            case '\f':
                out_.append("\\f");
                break;
            default: {
                const char esc[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
                out_.append(esc, sizeof esc);
            }
        }
    }
    out_.append(s.substr(run));
    out_.push_back('"');
    return *this;
}

json_writer& json_writer::number(double v) {
    if (!std::isfinite(v)) return null();
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    if (ec != std::errc{}) return null();  // cannot happen: 32 bytes hold any double
    std::string_view text(buf, static_cast<std::size_t>(end - buf));
    out_.append(text);
    if (text.find_first_of(".e") == std::string_view::npos) out_.append(".0");
    return *this;
}

json_writer& json_writer::integer(std::int64_t v) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    (void)ec;  // 24 bytes hold any int64
    out_.append(buf, static_cast<std::size_t>(end - buf));
    return *this;
}

json_writer& json_writer::key(std::string_view name) {
    if (!out_.empty() && out_.back() != '{') out_.push_back(',');
    string(name);
    out_.push_back(':');
    return *this;
}

}  // namespace kennel

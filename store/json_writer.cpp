#include "store/json_writer.h"

#include <charconv>
#include <cmath>

namespace kennel {

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not
// one (bad lead byte, missing or bad continuation, overlong, surrogate, or
// beyond U+10FFFF).
std::size_t utf8_length(std::string_view s, std::size_t i) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        const auto b = static_cast<unsigned char>(s[i + k]);
        if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
    }
    return n;
}

}  // namespace

json_writer& json_writer::string(std::string_view s) {
    static const char* hex = "0123456789abcdef";
    out_.push_back('"');
    std::size_t run = 0;  // start of the bytes not yet copied
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x80) {
            if (std::size_t n = utf8_length(s, i)) {
                i += n;
                continue;
            }
            out_.append(s.substr(run, i - run));
            out_.append("\xEF\xBF\xBD");  // U+FFFD for the one bad byte
            run = ++i;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            ++i;
            continue;
        }
        out_.append(s.substr(run, i - run));
        run = ++i;
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

json_writer& json_writer::numbers(const double* values, std::size_t n) {
    out_.push_back('[');
    for (std::size_t i = 0; i < n; ++i) {
        if (i) out_.push_back(',');
        number(values[i]);
    }
    out_.push_back(']');
    return *this;
}

json_writer& json_writer::strings(const std::vector<std::string>& values) {
    out_.push_back('[');
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i) out_.push_back(',');
        string(values[i]);
    }
    out_.push_back(']');
    return *this;
}

json_writer& json_writer::key(std::string_view name) {
    if (!out_.empty() && out_.back() != '{') out_.push_back(',');
    string(name);
    out_.push_back(':');
    return *this;
}

}  // namespace kennel

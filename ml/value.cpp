#include "ml/value.h"

#include <algorithm>
#include <charconv>
#include <stdexcept>

namespace kennel::ml {

raw_record::raw_record(std::initializer_list<value_type> items) {
    items_.reserve(items.size());
    for (const auto& [name, value] : items) emplace(name, value);
}

namespace {

// Orders a record's items by name against a name being looked up.
bool name_before(const raw_record::value_type& item, std::string_view name) {
    return item.first < name;
}

}  // namespace

std::vector<raw_record::value_type>::iterator raw_record::lower_bound(std::string_view name) {
    return std::lower_bound(items_.begin(), items_.end(), name, name_before);
}

raw_record::const_iterator raw_record::find(std::string_view name) const {
    auto it = std::lower_bound(items_.begin(), items_.end(), name, name_before);
    return it != items_.end() && it->first == name ? it : items_.end();
}

const raw_value& raw_record::at(std::string_view name) const {
    auto it = find(name);
    if (it == end()) throw std::out_of_range("raw_record: no field \"" + std::string(name) + "\"");
    return it->second;
}

raw_value& raw_record::operator[](std::string_view name) {
    auto it = lower_bound(name);
    if (it != items_.end() && it->first == name) return it->second;
    return items_.emplace(it, std::string(name), raw_value{})->second;
}

void raw_record::erase(std::string_view name) {
    auto it = lower_bound(name);
    if (it != items_.end() && it->first == name) items_.erase(it);
}

void raw_record::set(std::string_view name, std::optional<double> value) {
    if (value)
        (*this)[name] = *value;
    else
        erase(name);
}

bool raw_record::emplace(std::string name, raw_value value) {
    if (items_.empty() || items_.back().first < name) {
        items_.emplace_back(std::move(name), std::move(value));
        return true;
    }
    auto it = lower_bound(name);
    if (it != items_.end() && it->first == name) return false;
    items_.emplace(it, std::move(name), std::move(value));
    return true;
}

std::string format_number(double x) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, x);
    return std::string(buf, r.ptr);
}

}  // namespace kennel::ml

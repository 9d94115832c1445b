#include "tokenizer/post_processor.hpp"

#include <nlohmann/json.hpp>
#include <string>

#include "tokenizer/format_error.hpp"

namespace planeq::tokenizer_detail {
namespace {

// The ids of special token `name` as the template's "special_tokens" table lists them.
std::vector<int32_t> special_ids(const nlohmann::json& table, const std::string& name, const std::string& where) {
    if (!table.is_object() || !table.contains(name))
        throw FormatError(where + ": special token \"" + name + "\" is not in special_tokens");
    const nlohmann::json& ids = required(table[name], "ids", where + ".special_tokens[\"" + name + "\"]");
    if (!ids.is_array()) throw FormatError(where + ".special_tokens[\"" + name + "\"].ids is not an array");
    std::vector<int32_t> result;
    for (const nlohmann::json& id : ids) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
            throw FormatError(where + ".special_tokens[\"" + name + "\"] has an invalid id");
        result.push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
    return result;
}

PostProcessor parse_template(const nlohmann::json& spec, const std::string& where) {
    const nlohmann::json& single = required(spec, "single", where);
    if (!single.is_array()) throw FormatError(where + ".single is not an array of template items");
    const nlohmann::json empty_table = nlohmann::json::object();
    const nlohmann::json& table = spec.contains("special_tokens") ? spec["special_tokens"] : empty_table;
    PostProcessor result;
    bool seen_sequence = false;
    for (const nlohmann::json& item : single) {
        if (item.is_object() && item.contains("Sequence")) {
            const std::string id = required_string(item["Sequence"], "id", where + ".single Sequence");
            if (id != "A") throw FormatError(where + ".single refers to sequence \"" + id + "\"; expected \"A\"");
            if (seen_sequence) throw FormatError(where + ".single contains sequence A twice");
            seen_sequence = true;
        } else if (item.is_object() && item.contains("SpecialToken")) {
            const std::string name = required_string(item["SpecialToken"], "id", where + ".single SpecialToken");
            const std::vector<int32_t> ids = special_ids(table, name, where);
            auto& side = seen_sequence ? result.suffix : result.prefix;
            side.insert(side.end(), ids.begin(), ids.end());
        } else {
            throw FormatError(where + ".single has an item that is neither Sequence nor SpecialToken");
        }
    }
    if (!seen_sequence) throw FormatError(where + ".single does not contain sequence A");
    return result;
}

PostProcessor parse(const nlohmann::json& spec, const std::string& where) {
    if (spec.is_null()) return {};
    const std::string type = type_of(spec, where);
    if (type == "TemplateProcessing") return parse_template(spec, where);
    if (type == "ByteLevel") return {};  // only trims offsets
    if (type == "Sequence") {
        const nlohmann::json& parts = required(spec, "processors", where);
        if (!parts.is_array()) throw FormatError(where + ".processors is not an array");
        // HF runs the processors in order, so each later one wraps what the earlier ones produced.
        PostProcessor result;
        for (size_t i = 0; i < parts.size(); ++i) {
            const PostProcessor p = parse(parts[i], where + ".processors[" + std::to_string(i) + "]");
            result.prefix.insert(result.prefix.begin(), p.prefix.begin(), p.prefix.end());
            result.suffix.insert(result.suffix.end(), p.suffix.begin(), p.suffix.end());
        }
        return result;
    }
    throw FormatError(where + ": unsupported post-processor type \"" + type + "\"");
}

}  // namespace

PostProcessor PostProcessor::from_json(const nlohmann::json& spec) { return parse(spec, "post_processor"); }

}  // namespace planeq::tokenizer_detail

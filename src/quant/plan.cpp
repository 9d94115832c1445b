#include "quant/plan.hpp"

#include <fstream>

#include "core/error.hpp"
#include "core/text_file.hpp"

namespace planeq {

nlohmann::json Plan::to_json() const {
    nlohmann::json ls = nlohmann::json::array();
    for (const PlanLayer& l : layers) {
        nlohmann::json j{{"name", l.name}, {"method", l.setting.method}, {"bits", l.setting.bits}, {"group", l.setting.group},
                         {"score", l.score}};
        if (l.setting.sym) j["sym"] = true;
        if (l.setting.order != ColumnOrder::Gar) j["order"] = column_order_name(l.setting.order);
        if (l.setting.iters != LayerSetting{}.iters) j["iters"] = l.setting.iters;
        ls.push_back(j);
    }
    nlohmann::json j = extra.is_object() ? extra : nlohmann::json::object();
    j["scorer"] = scorer;
    j["budget"] = budget;
    j["achieved_bpw"] = achieved_bpw;
    j["layers"] = ls;
    return j;
}

Plan plan_from_json(const nlohmann::json& j, const std::filesystem::path& where) {
    if (!j.is_object()) fail_file(where, "a plan is one JSON object");
    if (!j.contains("layers") || !j["layers"].is_array()) fail_file(where, "plan has no 'layers' list");
    Plan p;
    p.scorer = j.value("scorer", std::string());
    p.budget = j.value("budget", 0.0);
    p.achieved_bpw = j.value("achieved_bpw", 0.0);
    p.extra = j;
    p.extra.erase("layers");
    for (const auto& l : j["layers"]) {
        if (!l.is_object() || !l.contains("name") || !l["name"].is_string()) fail_file(where, "every plan layer needs a 'name'");
        PlanLayer pl;
        pl.name = l["name"].get<std::string>();
        try {
            pl.setting.method = l.value("method", pl.setting.method);
            pl.setting.bits = l.value("bits", pl.setting.bits);
            pl.setting.group = l.value("group", pl.setting.group);
            pl.setting.sym = l.value("sym", false);
            pl.setting.order = parse_column_order(l.value("order", std::string("gar")));
            pl.setting.iters = l.value("iters", pl.setting.iters);
            pl.score = l.value("score", 0.0);
        } catch (const nlohmann::json::exception& e) {
            fail_file(where, "layer '" + pl.name + "': " + e.what());
        } catch (const Error& e) {
            fail_file(where, "layer '" + pl.name + "': " + e.what());
        }
        if (p.settings.count(pl.name)) fail_file(where, "layer '" + pl.name + "' appears twice");
        p.settings[pl.name] = pl.setting;
        p.layers.push_back(std::move(pl));
    }
    return p;
}

Plan load_plan(const std::filesystem::path& path, const Model& m) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(read_text_file(path));
    } catch (const nlohmann::json::exception& e) {
        fail_file(path, std::string("malformed JSON: ") + e.what());
    }
    Plan p = plan_from_json(j, path);
    std::map<std::string, const Linear*> known;
    for (const Linear* l : m.linears()) known[l->name] = l;
    known["lm_head"] = &m.lm_head;
    for (const PlanLayer& l : p.layers) {
        auto it = known.find(l.name);
        if (it == known.end()) fail_file(path, "layer '" + l.name + "' is not a linear layer of this model");
        const QuantMethod* method = find_method(l.setting.method);
        if (!method) fail_file(path, "layer '" + l.name + "': unknown method '" + l.setting.method + "' (known: " + method_names() + ")");
        if (std::string why = method->check(l.setting, it->second->weight.rows, it->second->weight.cols); !why.empty())
            fail_file(path, "layer '" + l.name + "': " + why);
    }
    return p;
}

void save_plan(const Plan& plan, const std::filesystem::path& path) {
    const std::filesystem::path tmp = path.string() + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        if (!out) fail_file(tmp, "cannot create file");
        out << plan.to_json().dump(2) << "\n";
        if (!out) fail_file(tmp, "write failed");
    }
    std::filesystem::rename(tmp, path);
}

}  // namespace planeq

#include "model/quant_config.hpp"

#include "core/error.hpp"

namespace planeq {

QuantConfig parse_quant_config(const nlohmann::json& config, const std::filesystem::path& where) {
    QuantConfig qc;
    if (!config.contains("quantization_config") || config["quantization_config"].is_null()) return qc;
    const auto& q = config["quantization_config"];
    if (!q.is_object()) fail_file(where, "quantization_config is not an object");
    const std::string method = q.value("quant_method", std::string());
    if (method != "planeq")
        fail_file(where, "quantization_config.quant_method is '" + method +
                             "'; only planeq-quantized checkpoints can be loaded (convert other formats first)");
    qc.raw = q;
    if (!q.contains("layers") || !q["layers"].is_object()) fail_file(where, "quantization_config has no 'layers' object");
    for (auto it = q["layers"].begin(); it != q["layers"].end(); ++it) {
        const auto& l = *it;
        if (!l.is_object() || !l.contains("format") || !l["format"].is_string())
            fail_file(where, "quantization_config.layers['" + it.key() + "'] has no format");
        LayerQuant lq;
        const std::string fmt = l["format"].get<std::string>();
        lq.format = find_format(fmt);
        if (!lq.format) fail_file(where, "layer '" + it.key() + "' uses unknown format '" + fmt + "' (known: " + format_names() + ")");
        try {
            lq.params = FormatParams::from_json(l);
        } catch (const nlohmann::json::exception& e) {
            fail_file(where, "quantization_config.layers['" + it.key() + "']: " + e.what());
        }
        lq.method = l.value("method", std::string());
        qc.layers[it.key()] = lq;
    }
    return qc;
}

}  // namespace planeq

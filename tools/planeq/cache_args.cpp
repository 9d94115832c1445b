#include "cache_args.hpp"

#include "core/error.hpp"

namespace planeq::cli {

void add_cache_options(CLI::App& cmd, CacheArgs& a) {
    cmd.add_option("--cache", a.mode, "KV cache: full (no eviction), window (the last W tokens), streaming (N sinks + last W)")
        ->capture_default_str();
    cmd.add_option("--sinks", a.sinks, "Pinned sink tokens N of --cache streaming (default 4)");
    cmd.add_option("--window", a.window, "Recent tokens W of --cache window/streaming");
    cmd.add_option("--kv-bits", a.kv_bits, "Quantize cached K and V to 8, 4 or 2 bits (16 = off)")->capture_default_str();
    cmd.add_option("--kv-group", a.kv_group, "Channels per K/V quantization group, along the head dimension")->capture_default_str();
    cmd.add_option("--kv-keep-sinks", a.keep_sinks,
                   "With --kv-bits: the first N tokens stay fp16 (default: the streaming sinks, else 0)");
}

CacheOptions cache_options(const CacheArgs& a, const ModelConfig& c) {
    CacheOptions o;
    o.mode = parse_cache_mode(a.mode);
    o.sinks = a.sinks >= 0 ? a.sinks : (o.mode == CacheMode::Streaming ? 4 : 0);
    o.window = a.window;
    if (a.kv_bits == 16) {
        o.kv_bits = 0;
    } else if (a.kv_bits == 8 || a.kv_bits == 4 || a.kv_bits == 2) {
        o.kv_bits = a.kv_bits;
    } else {
        fail("--kv-bits must be 8, 4 or 2 (16 = unquantized); got " + std::to_string(a.kv_bits));
    }
    o.kv_group = a.kv_group;
    if (a.keep_sinks >= 0 && o.kv_bits == 0) fail("--kv-keep-sinks protects tokens of a quantized cache: give --kv-bits too");
    o.keep_sinks = a.keep_sinks >= 0 ? a.keep_sinks : (o.kv_bits > 0 && o.mode == CacheMode::Streaming ? o.sinks : 0);
    validate_cache_options(o, c);
    return o;
}

}  // namespace planeq::cli

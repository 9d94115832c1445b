// The (store kind, code bits) instantiation a slot-cache attention kernel runs for one run of slots, shared by the
// per-ISA kernel files (kv_attention_avx2.cpp, kv_attention_avx512.cpp): f.template operator()<Kind, Bits>(); the
// scores kernels also by whether the keys are rotated at read time (RoPE tables given: pre-RoPE slot caches).
#pragma once

#include "kernels/cpu/kv_attention.hpp"

namespace planeq::cpu {

template <class F>
inline void kv_dispatch(const KvAttnParams& p, KvStore kind, F&& f) {
    switch (kind) {
        case KvStore::F32: return f.template operator()<KvStore::F32, 0>();
        case KvStore::F16: return f.template operator()<KvStore::F16, 0>();
        case KvStore::Quant:
            if (p.bits == 8) return f.template operator()<KvStore::Quant, 8>();
            if (p.bits == 4) return f.template operator()<KvStore::Quant, 4>();
            return f.template operator()<KvStore::Quant, 2>();
    }
}

template <class F>
inline void kv_dispatch_scores(const KvAttnParams& p, KvStore kind, F&& f) {
    kv_dispatch(p, kind, [&]<KvStore Kind, int Bits>() {
        if (p.cos) f.template operator()<Kind, Bits, true>();
        else f.template operator()<Kind, Bits, false>();
    });
}

}  // namespace planeq::cpu

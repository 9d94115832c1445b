# Sourced by the scripts/cuda-device-*.sh calls (the lent H200): unpacks the carried shared libraries the GPU
# image lacks ($C/libs.tar.xz, and binaries from $C/bins.tar.xz when present) and points LD_LIBRARY_PATH at
# them, at the toolkit, and at the Python wheels' cuBLAS/cuSOLVER (and cuSOLVER's cuSPARSE/nvJitLink).
C=${C:-.devcarry}
mkdir -p $C/lib && tar -xJf $C/libs.tar.xz -C $C/lib && { [ ! -f $C/bins.tar.xz ] || tar -xJf $C/bins.tar.xz -C $C; }
extra=$(python3 - <<'PY' 2>/dev/null
import importlib, os
out = []
for m in ("nvidia.cublas", "nvidia.cusolver", "nvidia.cusparse", "nvidia.nvjitlink", "nvidia.cuda_runtime", "nvidia.cu13"):
    try:
        mod = importlib.import_module(m)
        for p in list(getattr(mod, "__path__", [])):
            for sub in ("lib", "lib64"):
                if os.path.isdir(os.path.join(p, sub)): out.append(os.path.join(p, sub))
    except Exception:
        pass
print(":".join(out))
PY
)
export LD_LIBRARY_PATH=$PWD/$C/lib:/usr/local/cuda/lib64:${extra}:${LD_LIBRARY_PATH:-}
export OMP_NUM_THREADS=16

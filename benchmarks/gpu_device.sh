#!/usr/bin/env bash
# The command on the GPU machine (docs/gpu.md): unpack .device-data/ (benchmarks/gpu_pack.sh), install oodbench
# and the carried pytorch-ood wheel, then run benchmarks/gpu.py with these arguments, its log in $OUT/gpu.log.
#
#     bash benchmarks/gpu_device.sh --skip speed,agree,rowb        # e.g. call 1: train + the gpu suite
#
# Caches and results stay in /tmp/oodbench-gpu-work (outside the checkout, so nothing travels back), which a
# later call on the still-warm machine reuses: step train then finds its checkpoint cached.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/oodbench-gpu-out}
mkdir -p "$out"
started=$(date +%s)
eval "$(bash .device-data/unpack.sh)" || exit 2
python3 -m pip install --quiet --no-index --no-deps --no-compile --target /tmp/oodbench-site .device-data/wheels/*.whl \
    || exit 2
export PYTHONPATH=/tmp/oodbench-site${PYTHONPATH:+:$PYTHONPATH}
# oodbench itself: an editable install into the image's python; where that cannot be (a read-only environment, a
# setuptools too old to build it), the checkout on PYTHONPATH and its entry points declared beside the wheels
if ! python3 -m pip install --quiet --no-deps --no-build-isolation -e . 2>"$out/install.err"; then
    echo "editable install failed ($(tail -1 "$out/install.err")); oodbench runs from the checkout" | tee "$out/gpu.log"
    python3 benchmarks/entry_points_stub.py /tmp/oodbench-site || exit 2
    export PYTHONPATH=$PWD:$PWD/plugins:$PYTHONPATH
fi
echo "setup (unpack + installs): $(($(date +%s) - started)) s; OODBENCH_DATA=$OODBENCH_DATA" | tee -a "$out/gpu.log"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$out/gpu.log"
PYTHONUNBUFFERED=1 python3 benchmarks/gpu.py --work /tmp/oodbench-gpu-work "$@" 2>&1 | tee -a "$out/gpu.log"

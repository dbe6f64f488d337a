#!/usr/bin/env bash
# Pack every split benchmarks/gpu.py reads, and the pytorch-ood wheel it compares against, into .device-data/
# (git-ignored) for a GPU machine that receives at most 64 MiB per call (docs/gpu.md):
#
#     OODBENCH_DATA=../shared/datasets bash benchmarks/gpu_pack.sh
#
# cifar10-jpeg (train + test), svhn, tinyimagenet-r32 and dtd-subset32 whole, and MNIST's test split only (the
# gpu suite reads it as an OOD set): ≈ 50 MiB. The layout is ../shared/tools/device-pack's, so its unpack.sh
# works the same way; benchmarks/gpu_device.sh is the command that uses it on the device.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${OODBENCH_DATA:-../shared/datasets}
out=.device-data
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qx '/.device-data/' "$exclude" 2>/dev/null || echo '/.device-data/' >>"$exclude"
rm -rf "$out"
mkdir -p "$out/wheels"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for src in cifar10-jpeg SVHN tinyimagenet-r32 dtd-subset32; do
    [ -e "$data/$src" ] || { echo "gpu_pack: $data/$src is missing (set OODBENCH_DATA)" >&2; exit 2; }
    cp -r "$data/$src" "$stage/"
done
mkdir -p "$stage/MNIST/raw"
cp "$data"/MNIST/raw/t10k-* "$stage/MNIST/raw/"
find "$stage" -name '*-ubyte' -exec gzip -9 {} \;
tar -C "$stage" -czf "$out/data.tar.gz" .
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$out/wheels" pytorch-ood==0.4.0
cat >"$out/unpack.sh" <<'UNPACK'
#!/usr/bin/env bash
# On the device: unpack the data beside this script into /tmp/oodbench-data; prints the export line to eval.
set -e
dest=/tmp/oodbench-data
mkdir -p "$dest"
tar -C "$dest" -xzf "$(dirname "$0")/data.tar.gz"
find "$dest" -name '*-ubyte.gz' -exec gunzip -f {} \;
echo "export OODBENCH_DATA=$dest"
UNPACK
tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
packed=$(du -sb "$out" | cut -f1)
total=$(((tree + packed) / 1048576))
echo "packed into $out/: $((packed / 1048576)) MiB; with the working tree $total MiB of the 64 MiB a call carries"
[ "$total" -lt 63 ] || { echo "gpu_pack: too large for one call; remove untracked files from the tree" >&2; exit 1; }

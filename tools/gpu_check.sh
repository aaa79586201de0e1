#!/usr/bin/env bash
# GPU check of the probes (run on a machine with an NVIDIA GPU and PyTorch; not part of the tests).
# Probes the PyTorch seed port on synthetic 13-class data twice on the GPU (same seed: are the
# results the same?) and once with the GPU hidden, and prints the device, step time and results.
# Usage: tools/gpu_check.sh [OUTDIR]   (BUDGET=seconds, default 60; DATA=an existing class-folder dataset)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-/tmp/modellint-gpu}}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 MODELLINT_CACHE_DIR=$(mktemp -d)
PY=${PYTHON:-python3}
budget=${BUDGET:-60}
nvidia-smi -L || true
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
data=${DATA:-$(mktemp -d)/synth}
[ -d "$data" ] || $PY -m modellint data synth "$data" --classes 13 --size 128 --count 2600 --seed 0
probe() { $PY -m modellint probe examples.seed_cnn_torch:build --input-shape 1,3,128,128 --data "$data" \
          --budget "$budget" --no-cache --exit-zero --format json --output-file "$out/$1.json"; }
probe gpu1
probe gpu2
CUDA_VISIBLE_DEVICES= probe cpu
$PY - "$out" <<'PYEOF'
import json, sys
out = sys.argv[1]
runs = {k: json.load(open(f"{out}/{k}.json")) for k in ("gpu1", "gpu2", "cpu")}
def report(d):
    return d["reports"][0]["probes"]
for k, d in runs.items():
    p = report(d)
    s = p["settings"]
    print(f"{k}: device {s.get('device')}, suite {p['seconds']} s of {s['budget']}, step {p['step_seconds']:.4f} s")
    for name, r in p["results"].items():
        m = r["metrics"]
        keep = {x: m[x] for x in ("loss", "expected", "final_loss", "val_accuracy", "suggested_lr", "steps") if x in m}
        print(f"   {name:16s} {r['status']:8s} {r['seconds']:6.1f} s  {keep}")
    print("   findings:", [x["code"] for x in d["reports"][0]["findings"]])
a, b = report(runs["gpu1"]), report(runs["gpu2"])
same = {n: a["results"][n]["metrics"] == b["results"][n]["metrics"] for n in a["results"] if n in b["results"]}
print("GPU runs identical per probe:", same)
PYEOF

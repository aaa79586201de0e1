#!/usr/bin/env bash
# GPU check of the Keras probes through Keras' torch backend (not part of the tests). Probes
# examples/seed_cnn.h5 and examples/seed_cnn_fixed.h5 on synthetic 13-class data with
# KERAS_BACKEND=torch and prints device, plan and results per probe.
# Usage: tools/gpu_keras_check.sh [OUTDIR]   (BUDGET=seconds, default 35; DATA=an existing dataset;
#   WHEELS=a folder of wheels to install first with --no-index into a private --target: the lent GPU
#   machines have torch but no Keras and reach no index. On this machine:
#   pip download --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 3.12 \
#       keras==3.15.1 absl-py rich namex optree ml-dtypes markdown-it-py mdurl pygments -d WHEELS)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-/tmp/modellint-gpu-keras}}
mkdir -p "$out"
PY=${PYTHON:-python3}
extra=""
if [ -n "${WHEELS:-}" ]; then
  extra=$(mktemp -d)
  $PY -m pip install -q --no-index --no-deps --target "$extra" "$WHEELS"/*.whl
fi
export PYTHONPATH=$PWD${extra:+:$extra} PYTHONUNBUFFERED=1 MODELLINT_CACHE_DIR=$(mktemp -d) KERAS_BACKEND=torch
$PY -c "import keras, torch; print('keras', keras.__version__, keras.backend.backend(), 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
data=${DATA:-$(mktemp -d)/synth}
[ -d "$data" ] || $PY -m modellint data synth "$data" --classes 13 --size 128 --count 1300 --seed 0
for m in seed_cnn seed_cnn_fixed; do
  $PY -m modellint probe "examples/$m.h5" --data "$data" --budget "${BUDGET:-35}" --no-cache --exit-zero -q \
      --format json --output-file "$out/$m.json"
  $PY - "$out/$m.json" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))["reports"][0]
p = d["probes"]
s = p["settings"]
print(sys.argv[1], s.get("runner"), s.get("device"), "suite", round(p["seconds"], 1), "s; plan", s.get("plan", {}).get("steps"))
for name, r in p["results"].items():
    keep = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r["metrics"].items()
            if k in ("steps", "epochs", "loss", "expected", "final_loss", "val_accuracy", "suggested_lr", "accuracy",
                     "real_val_accuracy", "zero_val_accuracy")}
    print("  ", name, r["status"], keep, r["notes"][:1])
print("   probe findings", sorted({f["code"] for f in d["findings"] if f["code"] < "ML100"}))
PYEOF
done

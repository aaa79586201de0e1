"""`modellint summary` speed and memory (issue 2).

Prints, all measured in this run on this machine (fresh interpreter per run,
median of several):
  * summary of examples/seed_cnn.h5: wall seconds and peak RSS
  * Keras' own `keras.models.load_model(...).summary()` on the same file, and the ratio
  * summary of NASNetLarge's architecture (from the test fixture, as a .keras archive)
  * summary of generated N-layer models for N = 2,500 / 5,000 / 10,000 / 20,000 and
    the time ratio of each doubling (linear growth gives about 2.0)
Targets (issue 2): seed <= 0.3 s and >= 10x faster than Keras; NASNetLarge <= 1.5 s;
10,000 layers <= 3 s, doubling <= 2.2x; seed peak memory <= 120 MiB.
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ROOT, report, run_py  # noqa: E402

SEED = ROOT / "examples" / "seed_cnn.h5"


def generated_model(n_layers: int) -> dict:
    """A Functional config of ``n_layers`` layers: conv/BN/ReLU blocks with residual adds."""
    layers = [{"class_name": "InputLayer", "name": "in", "inbound_nodes": [],
               "config": {"name": "in", "batch_shape": [None, 32, 32, 16]}}]
    prev, block_in, i = "in", "in", 0
    kinds = ["Conv2D", "BatchNormalization", "ReLU", "Add"]
    while len(layers) < n_layers:
        kind = kinds[i % 4]
        name = f"l{i}"
        cfg = {"name": name}
        inputs = [[prev, 0, 0, {}]]
        if kind == "Conv2D":
            cfg.update(filters=16, kernel_size=[3, 3], strides=[1, 1], padding="same", activation="linear",
                       use_bias=False)
            block_in = prev if i % 4 == 0 else block_in
        elif kind == "Add":
            inputs = [[prev, 0, 0, {}], [block_in, 0, 0, {}]]
        layers.append({"class_name": kind, "name": name, "config": cfg, "inbound_nodes": [inputs]})
        prev = name
        i += 1
    return {"class_name": "Functional", "config": {"name": f"gen{n_layers}", "layers": layers,
                                                   "input_layers": [["in", 0, 0]],
                                                   "output_layers": [[prev, 0, 0]]}}


def write_keras(model: dict, path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", json.dumps(model))
        z.writestr("metadata.json", json.dumps({"keras_version": "generated"}))
    return path


def main() -> int:
    rows = []
    seed_t, seed_mem = run_py(["-m", "modellint", "summary", SEED], repeat=7)
    rows.append(("seed summary (s)", f"{seed_t:.3f}   target <= 0.3"))
    rows.append(("seed summary peak RSS (MiB)", f"{seed_mem:.0f}   target <= 120"))
    keras_code = ("import keras; keras.models.load_model(r'%s', compile=False).summary()" % SEED)
    try:
        keras_t, _ = run_py(["-c", keras_code], repeat=3)
        rows.append(("keras load_model().summary() (s)", f"{keras_t:.3f}"))
        rows.append(("speed-up over Keras", f"{keras_t / seed_t:.1f}x   target >= 10x"))
    except SystemExit as exc:
        rows.append(("keras baseline", f"not measured ({str(exc).splitlines()[0]})"))

    tmp = Path(tempfile.mkdtemp(prefix="modellint-bench-"))
    fixture = ROOT / "tests" / "fixtures" / "keras_apps" / "NASNetLarge.json.gz"
    nas = write_keras(json.loads(gzip.decompress(fixture.read_bytes()))["keras_config"], tmp / "nasnet.keras")
    nas_t, _ = run_py(["-m", "modellint", "summary", nas], repeat=3)
    rows.append(("NASNetLarge summary (s)", f"{nas_t:.3f}   target <= 1.5"))

    prev = None
    for n in (2500, 5000, 10000, 20000):
        path = write_keras(generated_model(n), tmp / f"gen{n}.keras")
        t, mem = run_py(["-m", "modellint", "summary", path], repeat=3)
        ratio = f", x{t / prev:.2f} vs half" if prev else ""
        target = "   target <= 3 s" if n == 10000 else ""
        rows.append((f"{n:,}-layer model (s)", f"{t:.3f} ({mem:.0f} MiB{ratio}){target}"))
        prev = t
    print("modellint summary benchmarks")
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

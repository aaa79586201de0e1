"""`modellint check` speed (issue 3).

Prints, measured in this run (fresh interpreter per run, median):
  * `modellint check examples/seed_cnn.h5` wall seconds           target <= 0.4 s
  * the same model's `modellint summary`, and the rules' overhead   target <= +50 %
  * checking all keras.applications fixtures in one process         target <= 10 s in total
"""

from __future__ import annotations

import gzip
import json
import statistics
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ROOT, report, run_py  # noqa: E402

SEED = ROOT / "examples" / "seed_cnn.h5"


def main() -> int:
    rows = []
    # interleaved single runs, so both commands see the same machine load
    checks, summaries, mem = [], [], 0.0
    for _ in range(15):
        t, m = run_py(["-m", "modellint", "check", SEED, "--samples", "8000", "--classes", "13",
                       "--exit-zero"], repeat=1)
        checks.append(t)
        mem = max(mem, m)
        summaries.append(run_py(["-m", "modellint", "summary", SEED], repeat=1)[0])
    check_t, summary_t = statistics.median(checks), statistics.median(summaries)
    rows.append(("seed check (s)", f"{check_t:.3f}   target <= 0.4   ({mem:.0f} MiB)"))
    rows.append(("seed summary (s)", f"{summary_t:.3f}"))
    rows.append(("rules overhead over summary", f"{(check_t / summary_t - 1):+.0%}   target <= +50%"))

    tmp = Path(tempfile.mkdtemp(prefix="modellint-bench-"))
    fixtures = sorted((ROOT / "tests" / "fixtures" / "keras_apps").glob("*.json.gz"))
    for p in fixtures:
        with zipfile.ZipFile(tmp / (p.name.split(".")[0] + ".keras"), "w") as z:
            z.writestr("config.json", json.dumps(json.loads(gzip.decompress(p.read_bytes()))["keras_config"]))
    all_t, _ = run_py(["-m", "modellint", "check", tmp, "--exit-zero", "--quiet"], repeat=1)
    rows.append((f"check all {len(fixtures)} keras.applications (s)", f"{all_t:.2f}   target <= 10"))
    print("modellint check benchmarks")
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

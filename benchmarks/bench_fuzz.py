"""The fuzz corpus of tests/test_fuzz.py, run with counts and timings per family.

    .venv/bin/python benchmarks/bench_fuzz.py                      # the CI corpus (seed 0, about 1,100 cases)
    .venv/bin/python benchmarks/bench_fuzz.py --cases 5000 --seed 7
    .venv/bin/python benchmarks/bench_fuzz.py --families pickles,archives --failures /tmp/fuzz_failures.txt

Prints, per family: cases, exit 0/1/2, failing cases and failures by invariant (exit_code,
traceback, internal, hang, marker, modified, memory, error_line, expected_exit), the slowest
case and the largest RSS growth; then the time to generate and to run, the worker restarts
(one per hang or crash), and a sample run as real ``python -m modellint`` subprocesses
compared with the in-process results. ``--failures FILE`` writes the readable failure list.
Exit status 1 when any case fails.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fuzz import corpus, runner  # noqa: E402

#: family -> (cases that scale with --cases, fixed cases) at scale 1 (seed 0)
SIZES = {"bytes": (547, 13), "keras_config": (339, 75), "archives": (0, 44), "pickles": (0, 202), "data": (0, 26),
         "probe": (0, 9)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, help="about this many cases in all (scales the byte and Keras-config "
                                              "families; the others are a fixed list)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--families", help="comma-separated subset of: " + ", ".join(corpus.FAMILIES))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--root", help="write the corpus here (default: a temporary folder, removed afterwards)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary corpus folder")
    ap.add_argument("--failures", metavar="FILE", help="write the failure list here")
    ap.add_argument("--subprocess-sample", type=int, default=20, metavar="N",
                    help="also run N cases as real subprocesses and compare (default 20; 0: none)")
    ap.add_argument("--progress", action="store_true", help="one line per finished case")
    args = ap.parse_args(argv)

    families = args.families.split(",") if args.families else list(corpus.FAMILIES)
    scale = 1.0
    if args.cases:
        scalable = sum(SIZES[f][0] for f in families)
        fixed = sum(SIZES[f][1] for f in families)
        scale = max(0.05, (args.cases - fixed) / scalable) if scalable else 1.0
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="bench_fuzz-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        cases = corpus.generate(root, seed=args.seed, families=families, scale=scale)
        t_gen = time.perf_counter() - t0
        print(f"generated {len(cases)} cases (seed {args.seed}, scale {scale:.2f}) in {t_gen:.1f} s under {root}",
              flush=True)

        def progress(res):
            if args.progress:
                flag = "FAIL " + ",".join(k for k, _ in res.violations) if res.failed else "ok"
                print(f"  {res.case.id:60} exit {res.exit} {res.seconds:6.2f} s  {flag}", flush=True)

        t0 = time.perf_counter()
        with runner.Pool(workers=args.workers) as pool:
            t_start = time.perf_counter() - t0
            t0 = time.perf_counter()
            results = pool.run(cases, progress=progress)
            t_run = time.perf_counter() - t0
            runner.sweep_markers(results, root / "_markers")
            restarts = pool.restarts
            start_s = [s for w in pool.workers for s in w.start_seconds]
        print()
        print(runner.summary_table(results))
        print()
        print(f"workers: {args.workers}, started in {t_start:.1f} s; {restarts} restart(s) after a hang or crash "
              f"(each start {min(start_s):.1f}-{max(start_s):.1f} s); run {t_run:.1f} s; "
              f"generate {t_gen:.1f} s")
        parity_failed = 0
        if args.subprocess_sample:
            rng = random.Random(args.seed)
            pool_ok = [r for r in results if r.status == "ok" and r.case.family != "probe"]
            sample = rng.sample(pool_ok, min(args.subprocess_sample, len(pool_ok)))
            t0 = time.perf_counter()
            for r in sample:
                sub = runner.run_subprocess(r.case)
                diffs = runner.compare(r, sub)
                if diffs:
                    parity_failed += 1
                    print(f"  MISMATCH {r.case.id}: " + "; ".join(diffs))
            print(f"subprocess sample: {len(sample)} cases as `python -m modellint` in "
                  f"{time.perf_counter() - t0:.1f} s; {parity_failed} differ from the in-process result")
        text = runner.format_failures(results, root=root, max_cases=400)
        notes = runner.format_advisories(results, root=root)
        print(notes.splitlines()[0])
        if args.failures:
            Path(args.failures).write_text(runner.summary_table(results) + "\n\n" + text + "\n\n"
                                           + "Advisory (not failures):\n" + notes + "\n")
            print(f"failure list: {args.failures}")
        return 1 if any(r.failed for r in results) or parity_failed else 0
    finally:
        if not args.root and not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

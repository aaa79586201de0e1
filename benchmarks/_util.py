"""Helpers shared by the benchmarks: run a command in a fresh interpreter, time it."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")


# Runs the command, then prints its own peak RSS (KiB) on the last line of stderr.
_WRAPPER = """
import resource, runpy, sys
args = sys.argv[1:]
try:
    if args[0] == '-m':
        sys.argv = [args[1], *args[2:]]
        runpy.run_module(args[1], run_name='__main__', alter_sys=True)
    else:
        sys.argv = ['-c', *args[2:]]
        exec(compile(args[1], '<bench>', 'exec'), {'__name__': '__main__'})
except SystemExit as exc:
    if exc.code not in (0, None):
        raise
sys.stderr.write('\\nMAXRSS %d\\n' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def run_py(args, repeat=5):
    """Median wall seconds and peak RSS (MiB) of ``python ARGS`` over ``repeat`` fresh runs.

    ARGS is ``["-m", module, ...]`` or ``["-c", code]``.
    """
    times, peaks = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _WRAPPER, *map(str, args)], cwd=ROOT, env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"benchmark command failed: {args}\n{proc.stderr[-2000:]}")
        peaks.append(int(proc.stderr.rsplit("MAXRSS", 1)[1]) / 1024)
    return statistics.median(times), max(peaks)


def report(rows):
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")

"""Run fuzz cases and check the invariants of issue 10.

:class:`Pool` keeps a few persistent :mod:`worker <.worker>` processes (modellint and torch
imported once) and feeds them cases over a pipe. The parent enforces the per-case time bound
(a worker that overruns is killed, with its process group, and restarted: the case is a hang)
and polls each worker's RSS (a worker that grows by more than ``GUARD_GROWTH`` in one case is
killed: the case is a memory failure). Cases marked ``heavy`` (zip and PNG bombs) run one at a
time, so two workers never blow up together on a small CI machine.

Invariants checked for every case (:func:`check`):

=============  ============================================================================
exit_code      the exit code is 0, 1 or 2 (a worker that dies, e.g. by a signal, fails it)
traceback      no "Traceback" on stdout or stderr
internal       no "internal error" on stdout or stderr
hang           a result within the case's time bound
marker         no payload marker file exists afterwards (no code from the file ran)
modified       every watched file has the same bytes, none added or removed
memory         RSS growth while the case ran <= 1 GiB (and the worker never passed the guard)
error_line     exit 2: exactly one non-empty line on stderr, naming the file
expected_exit  the exit code is one the case allows (e.g. 2 for a hostile pickle)
=============  ============================================================================

:func:`run_subprocess` runs a case as ``python -m modellint`` (the same invariants, memory from
``wait4``'s ``ru_maxrss``) to show that the in-process route gives the same results.
"""

from __future__ import annotations

import json
import os
import queue
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .corpus import Case, snapshot, warmup_argvs

ROOT = Path(__file__).resolve().parent.parent.parent
WORKER = Path(__file__).resolve().parent / "worker.py"
GiB = 1 << 30
MEMORY_LIMIT = 1 * GiB      # the promise: RSS growth of a case
GUARD_GROWTH = 1.5 * GiB    # the machine guard: a worker that grows this much in one case is killed
RSS_CAP = 2.5 * GiB         # the guard for a subprocess (its whole RSS, imports included)
STARTUP_TIMEOUT = 600.0     # importing torch and warming up on a busy machine

INVARIANTS = ("exit_code", "traceback", "internal", "hang", "marker", "modified", "memory", "error_line",
              "expected_exit", "mismatch")


@dataclass
class Result:
    case: Case
    exit: Optional[int] = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    rss_growth: int = 0
    rss_peak: int = 0
    status: str = "ok"           # ok | hang | memory | died
    detail: str = ""
    route: str = "inprocess"     # inprocess | subprocess
    violations: list = field(default_factory=list)  # [(invariant, detail)]

    @property
    def failed(self) -> bool:
        return bool(self.violations)


def _env(extra_path=()) -> dict:
    env = dict(os.environ)
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("MODELLINT_DEBUG", None)
    paths = [str(ROOT)] + list(extra_path) + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


class WorkerDied(Exception):
    pass


class Worker:
    """One persistent worker process."""

    def __init__(self, name: str, scratch: Path, guard_growth: float = GUARD_GROWTH, warmup=True):
        self.name = name
        self.scratch = Path(scratch)
        self.guard_growth = guard_growth
        self.warmup = warmup
        self.proc: Optional[subprocess.Popen] = None
        self.restarts = 0
        self.start_seconds = []

    def start(self) -> None:
        t0 = time.perf_counter()
        cache = self.scratch / f"{self.name}-cache"
        cache.mkdir(parents=True, exist_ok=True)
        env = _env()
        env["MODELLINT_CACHE_DIR"] = str(cache)
        env["FUZZ_WORKER_LOG"] = str(self.scratch / f"{self.name}.log")
        self.proc = subprocess.Popen([sys.executable, "-u", str(WORKER)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                     cwd=str(self.scratch), start_new_session=True)
        self._buf = b""
        msg = self._read(STARTUP_TIMEOUT)
        if not msg or not msg.get("ready"):
            raise WorkerDied(f"worker {self.name} did not start: {msg}")
        if self.warmup:
            self._send({"op": "warmup", "argvs": warmup_argvs()})
            msg = self._read(STARTUP_TIMEOUT)
            if not msg or not msg.get("warm"):
                raise WorkerDied(f"worker {self.name} did not warm up: {msg}")
        self.start_seconds.append(time.perf_counter() - t0)

    def _send(self, obj) -> None:
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def _read(self, timeout: float, on_poll=None) -> Optional[dict]:
        """The next JSON line, or None on timeout; raises WorkerDied when the pipe closes.
        ``on_poll()`` runs about 10 times a second while waiting (the RSS guard)."""
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], min(0.1, left))
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise WorkerDied(self._death())
                self._buf += chunk
            if on_poll is not None:
                stop = on_poll()
                if stop:
                    return {"_stopped": stop}
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def _death(self) -> str:
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            rc = None
        if rc is not None and rc < 0:
            try:
                return f"worker died of signal {signal.Signals(-rc).name}"
            except ValueError:
                return f"worker died of signal {-rc}"
        return f"worker exited with status {rc}"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                self._send({"op": "exit"})
                self.proc.wait(timeout=10)
            except Exception:
                _kill_group(self.proc)
        self.proc = None

    def restart(self) -> None:
        if self.proc is not None:
            _kill_group(self.proc)
        self.restarts += 1
        self.start()

    def run(self, case: Case) -> dict:
        """Run one case: the worker's answer, or a status (hang, memory, died) after killing it."""
        if self.proc is None or self.proc.poll() is not None:
            self.restart()
        peak = [0]
        base = _rss(self.proc.pid)
        cap = base + self.guard_growth

        def guard():
            rss = _rss(self.proc.pid)
            peak[0] = max(peak[0], rss)
            return "memory" if rss > cap else None

        t0 = time.perf_counter()
        try:
            self._send({"op": "run", "argv": case.argv, "cwd": case.cwd, "sys_path": case.sys_path})
            msg = self._read(case.timeout, on_poll=guard)
        except (WorkerDied, BrokenPipeError) as exc:
            detail = str(exc) if isinstance(exc, WorkerDied) else self._death()
            self.proc = None
            return {"status": "died", "detail": detail, "seconds": time.perf_counter() - t0, "rss_peak": peak[0],
                    "rss_growth": max(0, peak[0] - base)}
        if msg is None or "_stopped" in msg:
            status = "hang" if msg is None else msg["_stopped"]
            _kill_group(self.proc)
            self.proc = None
            detail = (f"no result within {case.timeout:g} s; worker killed" if status == "hang" else
                      f"worker RSS grew past {self.guard_growth / GiB:g} GiB in this case (to "
                      f"{peak[0] / GiB:.2f} GiB); killed")
            return {"status": status, "detail": detail, "seconds": time.perf_counter() - t0, "rss_peak": peak[0],
                    "rss_growth": max(0, peak[0] - base)}
        msg["status"] = "ok"
        msg["rss_peak"] = peak[0]
        return msg


def check(case: Case, res: Result, before: dict, after: dict) -> list:
    """The invariants a finished case violates: [(invariant, detail)]."""
    v = []
    if res.status == "hang":
        v.append(("hang", res.detail))
    elif res.status == "memory":
        v.append(("memory", res.detail))
    elif res.status == "died":
        v.append(("exit_code", res.detail))
    text = res.stdout + "\n" + res.stderr
    if res.status == "ok":
        if res.exit not in (0, 1, 2):
            v.append(("exit_code", f"exit code {res.exit}"))
        if "Traceback" in text:
            v.append(("traceback", _first_line_with(text, "Traceback") or "Traceback in output"))
        if "internal error" in text:
            v.append(("internal", _first_line_with(text, "internal error")))
        if res.rss_growth > MEMORY_LIMIT:
            v.append(("memory", f"RSS grew by {res.rss_growth / GiB:.2f} GiB"))
        if res.exit == 2:
            lines = res.stderr.strip("\n").split("\n") if res.stderr.strip() else []
            nonempty = [line for line in lines if line.strip()]
            if len(lines) != 1 or len(nonempty) != 1:
                v.append(("error_line", f"exit 2 with {len(nonempty)} non-empty stderr line(s)"
                          + (f" ({len(lines)} in all)" if len(lines) != len(nonempty) else "")))
            elif case.names and not any(n in nonempty[0] for n in case.names):
                v.append(("error_line", f"the error line does not name {case.names[0]!r}"))
        if case.expect_exit is not None and res.exit not in case.expect_exit:
            v.append(("expected_exit", f"exit {res.exit}, expected {'/'.join(map(str, case.expect_exit))}"))
    ran = [m for m in case.markers if os.path.lexists(m)]
    if ran:
        v.append(("marker", "payload ran: " + ", ".join(Path(m).name for m in ran)))
    if after != before:
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        words = []
        for k in changed[:5]:
            what = "created" if k not in before else "removed" if k not in after else "changed"
            words.append(f"{what} {Path(k).name}")
        v.append(("modified", ", ".join(words) + (f" (+{len(changed) - 5} more)" if len(changed) > 5 else "")))
    return v


def sweep_markers(results, markers_dir) -> None:
    """After a run: a marker that appeared late (a payload that ran in the background, or in another
    case) is charged to the case that owns it."""
    owners = {m: r for r in results if r is not None for m in r.case.markers}
    for p in sorted(Path(markers_dir).glob("*")) if Path(markers_dir).is_dir() else []:
        r = owners.get(str(p))
        if r is None:
            continue
        if not any(k == "marker" for k, _ in r.violations):
            r.violations.append(("marker", f"payload ran (marker {p.name} found after the run)"))


def _first_line_with(text: str, needle: str) -> str:
    for line in text.splitlines():
        if needle in line:
            return line.strip()[:300]
    return needle


def _clear_markers(case: Case) -> None:
    for m in case.markers:
        if os.path.lexists(m):
            os.unlink(m)


def _result(case: Case, msg: dict, route: str) -> Result:
    return Result(case=case, exit=msg.get("exit"), stdout=msg.get("stdout", ""), stderr=msg.get("stderr", ""),
                  seconds=msg.get("seconds", 0.0), rss_growth=msg.get("rss_growth", 0),
                  rss_peak=msg.get("rss_peak", 0), status=msg.get("status", "ok"), detail=msg.get("detail", ""),
                  route=route)


class Pool:
    """Persistent workers running cases in parallel."""

    def __init__(self, workers: int = 2, scratch=None, guard_growth: float = GUARD_GROWTH, warmup: bool = True):
        self._tmp = None
        if scratch is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fuzzpool-")
            scratch = self._tmp.name
        self.scratch = Path(scratch)
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.workers = [Worker(f"w{i}", self.scratch, guard_growth, warmup) for i in range(workers)]
        self.heavy = threading.Semaphore(1)  # cases that may take GiBs run one at a time
        threads = [threading.Thread(target=w.start) for w in self.workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for w in self.workers:
            if w.proc is None:
                raise WorkerDied(f"worker {w.name} failed to start")

    def run(self, cases, progress=None) -> list:
        """Results in the order of ``cases``."""
        todo: queue.Queue = queue.Queue()
        for i, c in enumerate(cases):
            todo.put((i, c))
        results: list = [None] * len(cases)
        errors = []

        def loop(worker: Worker):
            while True:
                try:
                    i, case = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    _clear_markers(case)
                    before = snapshot(case.watch)
                    if case.heavy:
                        with self.heavy:
                            msg = worker.run(case)
                    else:
                        msg = worker.run(case)
                    res = _result(case, msg, "inprocess")
                    res.violations = check(case, res, before, snapshot(case.watch))
                    results[i] = res
                    if progress:
                        progress(res)
                except Exception as exc:  # the harness itself failed: say so, do not hide the case
                    errors.append(f"{case.id}: {type(exc).__name__}: {exc}")
                    res = Result(case=case, status="died", detail=f"harness error: {exc}")
                    res.violations = [("exit_code", f"harness error: {type(exc).__name__}: {exc}")]
                    results[i] = res
                    try:
                        worker.restart()
                    except Exception:
                        pass

        threads = [threading.Thread(target=loop, args=(w,)) for w in self.workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def restarts(self) -> int:
        return sum(w.restarts for w in self.workers)


def run_subprocess(case: Case, cache_dir=None) -> Result:
    """The case as a real ``python -m modellint`` process (same invariants; memory from wait4)."""
    _clear_markers(case)
    before = snapshot(case.watch)
    env = _env(case.sys_path)
    with tempfile.TemporaryDirectory(prefix="fuzzsub-") as tmp:
        env["MODELLINT_CACHE_DIR"] = str(cache_dir or Path(tmp) / "cache")
        out_p, err_p = Path(tmp) / "out", Path(tmp) / "err"
        with open(out_p, "wb") as out, open(err_p, "wb") as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "modellint", *case.argv], cwd=case.cwd, env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
            status, detail, maxrss, code, peak = "ok", "", 0, None, 0
            while True:
                pid, wstatus, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    maxrss = usage.ru_maxrss * 1024
                    code = os.waitstatus_to_exitcode(wstatus)
                    proc.returncode = code
                    break
                rss = _rss(proc.pid)
                peak = max(peak, rss)
                elapsed = time.perf_counter() - t0
                if rss > RSS_CAP or elapsed > case.timeout:
                    status = "memory" if rss > RSS_CAP else "hang"
                    detail = (f"no result within {case.timeout:g} s; killed" if status == "hang" else
                              f"RSS reached {rss / GiB:.2f} GiB; killed")
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    _pid, _ws, usage = os.wait4(proc.pid, 0)
                    maxrss = usage.ru_maxrss * 1024
                    break
                time.sleep(0.02)
            seconds = time.perf_counter() - t0
        stdout = out_p.read_bytes()[: 1 << 20].decode("utf-8", "replace")
        stderr = err_p.read_bytes()[: 1 << 20].decode("utf-8", "replace")
    if status == "ok" and code is not None and code < 0:
        status, detail = "died", f"killed by signal {signal.Signals(-code).name}"
    res = Result(case=case, exit=code if status == "ok" else None, stdout=stdout, stderr=stderr, seconds=seconds,
                 rss_growth=maxrss, rss_peak=max(peak, maxrss), status=status, detail=detail, route="subprocess")
    res.violations = check(case, res, before, snapshot(case.watch))
    return res


def compare(inproc: Result, sub: Result) -> list:
    """Differences between the in-process and the subprocess result of one case."""
    diffs = []
    if inproc.status != sub.status:
        diffs.append(f"status {inproc.status} in-process, {sub.status} as a subprocess")
    if inproc.exit != sub.exit:
        diffs.append(f"exit {inproc.exit} in-process, {sub.exit} as a subprocess")
    a = {k for k, _ in inproc.violations if k != "memory"}
    b = {k for k, _ in sub.violations if k != "memory"}
    if a != b:
        diffs.append(f"invariants {sorted(a)} in-process, {sorted(b)} as a subprocess")
    first = lambda s: (s.strip().splitlines() or [""])[0]  # noqa: E731
    if inproc.exit == 2 and sub.exit == 2 and first(inproc.stderr) != first(sub.stderr):
        diffs.append(f"stderr {first(inproc.stderr)[:120]!r} in-process, {first(sub.stderr)[:120]!r} as a subprocess")
    return diffs


# ---------------------------------------------------------------------------------------------
# reporting
# ---------------------------------------------------------------------------------------------

def _short(text: str, root: Optional[str]) -> str:
    return text.replace(root + "/", "") if root else text


def format_failures(results, root=None, max_cases: int = 40, stderr_lines: int = 3) -> str:
    """A readable list of failing cases, grouped by family and invariant."""
    root = str(root) if root else None
    failing = [r for r in results if r is not None and r.failed]
    if not failing:
        return "no failures"
    out = []
    by_family = defaultdict(list)
    for r in failing:
        by_family[r.case.family].append(r)
    for family, rs in by_family.items():
        total = sum(1 for r in results if r is not None and r.case.family == family)
        counts = Counter(k for r in rs for k in {k for k, _ in r.violations})
        out.append(f"== {family}: {len(rs)} of {total} cases fail: "
                   + ", ".join(f"{k} {n}" for k, n in counts.most_common()))
        by_inv = defaultdict(list)
        for r in rs:
            by_inv[r.violations[0][0]].append(r)
        shown = 0
        for inv, group in sorted(by_inv.items(), key=lambda kv: -len(kv[1])):
            out.append(f"-- {inv} ({len(group)} cases; first violation)")
            for r in group[: max(3, max_cases // max(1, len(by_inv)))]:
                shown += 1
                v = "; ".join(f"{k}: {d}" for k, d in r.violations)
                out.append(f"  {r.case.id} [{r.route}, exit {r.exit}, {r.seconds:.1f} s]")
                out.append(f"    argv: modellint {_short(' '.join(r.case.argv), root)}")
                if r.case.note:
                    out.append(f"    case: {r.case.note[:200]}")
                out.append(f"    violated: {_short(v, root)[:600]}")
                lines = [line for line in r.stderr.splitlines() if line.strip()]
                for line in lines[:stderr_lines]:
                    out.append(f"    stderr| {_short(line, root)[:300]}")
                if len(lines) > stderr_lines:
                    out.append(f"    stderr| ... ({len(lines) - stderr_lines} more lines)")
            if len(group) > max(3, max_cases // max(1, len(by_inv))):
                out.append(f"  ... and {len(group) - max(3, max_cases // max(1, len(by_inv)))} more {inv} cases: "
                           + ", ".join(r.case.id.split("/", 1)[1]
                                       for r in group[max(3, max_cases // max(1, len(by_inv))):][:30]))
    return "\n".join(out)


_RAW_EXC = re.compile(r"\b([A-Z][A-Za-z]*(?:Error|Exception|Warning))\b: ")


def advisories(results) -> list:
    """Exit-2 lines that pass the invariants but read like an exception a reader did not foresee
    (``... file is malformed: AttributeError: ...``): [(exception name, result)]. Not failures:
    the promise holds, but the message is a Python exception, often a bug in the reader."""
    out = []
    for r in results:
        if r is None or r.failed or r.exit != 2:
            continue
        line = r.stderr.strip()
        m = _RAW_EXC.search(line)
        if m or "is malformed:" in line:
            out.append((m.group(1) if m else "malformed", r))
    return out


def format_advisories(results, root=None, per_kind: int = 3) -> str:
    adv = advisories(results)
    root = str(root) if root else None
    noisy = [r for r in results if r is not None and not r.failed and r.exit in (0, 1) and r.stderr.strip()
             and r.case.family != "probe"]
    tail = []
    if noisy:
        tail.append(f"{len(noisy)} cases exit 0/1 with text on stderr (warnings a user would see), e.g.:")
        for r in noisy[:per_kind]:
            tail.append(f"  {r.case.id}: {_short(r.stderr.strip().splitlines()[0], root)[:260]}")
    if not adv:
        return "\n".join(["no exit-2 message quotes a Python exception"] + tail)
    by = defaultdict(list)
    for name, r in adv:
        by[name].append(r)
    out = [f"{len(adv)} exit-2 messages quote a Python exception (the promise holds; the reader did not foresee "
           "the input):"]
    for name, rs in sorted(by.items(), key=lambda kv: -len(kv[1])):
        fams = Counter(r.case.family for r in rs)
        out.append(f"-- {name}: {len(rs)} ({', '.join(f'{f} {n}' for f, n in fams.most_common())})")
        for r in rs[:per_kind]:
            out.append(f"  {r.case.id}: {_short(r.stderr.strip(), root)[:260]}")
    return "\n".join(out + tail)


def summary_table(results) -> str:
    """Per family: cases, exit codes, failures by invariant, max time, max RSS growth."""
    rows = []
    fams = []
    for r in results:
        if r is not None and r.case.family not in fams:
            fams.append(r.case.family)
    header = f"{'family':<14}{'cases':>6}{'exit0':>7}{'exit1':>7}{'exit2':>7}{'other':>7}{'fail':>6}" \
             f"{'max s':>8}{'max RSS+':>10}  failures by invariant"
    rows.append(header)
    rows.append("-" * len(header))
    tot = Counter()
    for fam in fams + ["ALL"]:
        rs = [r for r in results if r is not None and (fam == "ALL" or r.case.family == fam)]
        ex = Counter(r.exit if r.status == "ok" and r.exit in (0, 1, 2) else "other" for r in rs)
        inv = Counter(k for r in rs for k in {k for k, _ in r.violations})
        fails = sum(1 for r in rs if r.failed)
        max_s = max((r.seconds for r in rs), default=0.0)
        max_rss = max((r.rss_growth for r in rs), default=0)
        if fam == "ALL":
            rows.append("-" * len(header))
        rows.append(f"{fam:<14}{len(rs):>6}{ex[0]:>7}{ex[1]:>7}{ex[2]:>7}{ex['other']:>7}{fails:>6}"
                    f"{max_s:>8.1f}{max_rss / (1 << 20):>8.0f}MB  "
                    + (", ".join(f"{k} {n}" for k, n in inv.most_common()) or "-"))
        tot[fam] = len(rs)
    return "\n".join(rows)

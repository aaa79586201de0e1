"""A persistent fuzz worker: imports modellint (and torch) once, then runs cases in-process.

Started by ``runner.Worker`` as ``python worker.py``. Protocol: JSON lines. The parent writes
``{"op": "warmup", "argvs": [...]}`` once, then ``{"op": "run", "argv": [...], "cwd": ...,
"sys_path": [...]}`` per case; the worker answers one line per message. Standard input and
output are the command pipe: the worker moves them to private descriptors at start, so fd 0 is
/dev/null and fds 1 and 2 are free to be redirected to a case's capture files (``os.dup2``:
output from C code and logging is caught too).

Per case: the warnings filters are restored (so a once-only warning shows in every case, as in a
fresh process), the RSS high-water mark is reset (``/proc/self/clear_refs`` ← "5") and read back
after (``VmHWM``), ``modellint.cli.main(argv)`` runs in the case's folder; ``SystemExit`` gives
the exit code and an exception that escapes main() is printed as Python would (a traceback,
exit 1).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback


def _status(field: str) -> int:
    """A /proc/self/status field in bytes (VmRSS, VmHWM)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> int:
    cmd_in = os.fdopen(os.dup(0), "rb")
    res_out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    log_path = os.environ.get("FUZZ_WORKER_LOG") or os.devnull
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.dont_write_bytecode = True

    import warnings

    import modellint.cli as cli

    try:
        import torch

        torch.set_num_threads(int(os.environ.get("FUZZ_TORCH_THREADS", "1")))
    except ImportError:
        pass
    filters = list(warnings.filters)
    scratch = tempfile.mkdtemp(prefix="fuzzworker-")
    home = os.getcwd()

    def send(obj) -> None:
        res_out.write((json.dumps(obj) + "\n").encode())
        res_out.flush()

    def run(argv, cwd=None, sys_path=()) -> dict:
        out_path, err_path = os.path.join(scratch, "out"), os.path.join(scratch, "err")
        out_fd = os.open(out_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        err_fd = os.open(err_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        sys.stdout.flush()
        sys.stderr.flush()
        saved_out, saved_err = os.dup(1), os.dup(2)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        warnings.filters[:] = filters
        warnings._filters_mutated()  # forget what was already shown ("default" shows once per place)
        saved_path = list(sys.path)
        sys.path[:0] = list(sys_path)
        modules = set(sys.modules)
        os.chdir(cwd or home)
        hwm_ok = _reset_hwm()
        rss0, maxrss0 = _status("VmRSS"), _maxrss()
        t0 = time.perf_counter()
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:
            code = exc.code
            if code is None:
                code = 0
            elif not isinstance(code, int):
                print(code, file=sys.stderr)
                code = 1
        except BaseException:  # what `python -m modellint` would print: a traceback, exit 1
            traceback.print_exc()
            code = 1
        seconds = time.perf_counter() - t0
        try:
            sys.stdout.flush()
        except Exception:
            pass
        try:
            sys.stderr.flush()
        except Exception:
            pass
        hwm = _status("VmHWM") if hwm_ok else 0
        maxrss1 = _maxrss()
        os.chdir(home)
        sys.path[:] = saved_path
        for name in set(sys.modules) - modules:  # modules imported from the case's folder
            mod = sys.modules.get(name)
            if any(str(getattr(mod, "__file__", "") or "").startswith(p) for p in sys_path if p):
                del sys.modules[name]
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        texts = []
        for fd in (out_fd, err_fd):
            size = os.lseek(fd, 0, os.SEEK_END)
            os.lseek(fd, 0, os.SEEK_SET)
            data = os.read(fd, min(size, 1 << 20))
            os.close(fd)
            texts.append((data.decode("utf-8", "replace"), size))
        if hwm_ok:
            growth, method = max(0, hwm - rss0), "VmHWM"
        else:
            growth, method = max(0, maxrss1 - max(rss0, maxrss0)), "ru_maxrss"
        return {"exit": code, "stdout": texts[0][0], "stdout_bytes": texts[0][1], "stderr": texts[1][0],
                "stderr_bytes": texts[1][1], "seconds": seconds, "rss_before": rss0, "rss_growth": growth,
                "rss_method": method}

    send({"ready": True, "pid": os.getpid(), "rss": _status("VmRSS")})
    for line in cmd_in:
        msg = json.loads(line)
        op = msg.get("op")
        if op == "run":
            send(run(msg["argv"], msg.get("cwd"), msg.get("sys_path") or ()))
        elif op == "warmup":
            t0 = time.perf_counter()
            for argv in msg.get("argvs", []):
                run(argv)
            send({"warm": True, "seconds": time.perf_counter() - t0, "rss": _status("VmRSS")})
        elif op == "exit":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())

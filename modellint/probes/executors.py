"""Executors: where the independent runs of a comparison (:class:`~.compare.RunJob`) run.

An executor has a ``name`` and ``map(fn, jobs) -> results`` (in the order of ``jobs``). Jobs are
picklable (paths and settings); ``fn`` is a module-level function (:func:`~.compare.run_job`). No
queue, pool or scheduler lives here: in-process runs the jobs one after another, Ray schedules them
on its own workers (``pip install modellint[ray]``).

Executors are found by name in :data:`EXECUTORS` (``--executor NAME``); :func:`register_executor`
adds one ("package.module:Class").
"""

from __future__ import annotations

import importlib
import os
import sys

EXECUTORS = {"inprocess": "modellint.probes.executors:InProcess",
             "ray": "modellint.probes.executors:RayExecutor"}


def register_executor(name: str, target: str) -> None:
    EXECUTORS[name] = target


class InProcess:
    """Runs the jobs here, one after another (the default)."""

    name = "inprocess"

    def map(self, fn, jobs) -> list:
        return [fn(job) for job in jobs]


class RayExecutor:
    """Runs each job as a Ray task (one CPU each). Joins the cluster at ``RAY_ADDRESS`` when set, else
    starts a local Ray; an already initialised Ray (``ray.init(...)`` by the caller) is used as it is.
    A local Ray started here gets this process's ``sys.path`` as its workers' PYTHONPATH, so a code
    target importable here is importable there; on a cluster, ship your code with Ray's runtime_env."""

    name = "ray"

    def __init__(self):
        from ..errors import need

        need("ray", "--executor ray (pip install modellint[ray])")

    def map(self, fn, jobs) -> list:
        import ray

        if not ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS")
            if address:
                ray.init(address=address)
            else:
                path = os.pathsep.join(p for p in sys.path if p)
                ray.init(runtime_env={"env_vars": {"PYTHONPATH": path}}, include_dashboard=False,
                         log_to_driver=False)
        task = ray.remote(num_cpus=1)(fn)
        return ray.get([task.remote(job) for job in jobs])


def get_executor(executor=None):
    """An executor object: ``executor`` itself when it has ``map``, else the one registered under that name
    (None: in-process)."""
    if executor is not None and hasattr(executor, "map"):
        return executor
    name = executor or "inprocess"
    target = EXECUTORS.get(name)
    if target is None:
        from ..errors import ConfigError

        raise ConfigError(f"unknown executor {name!r} (known: {', '.join(sorted(EXECUTORS))})")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)()

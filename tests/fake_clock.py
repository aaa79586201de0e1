"""A clock for tests of the probes' time budget: seconds pass only when a runner's call says so.

The probe suite plans its steps from what the runner's calls cost, reads the clock to stop loops at
their time limits, and skips probes that do not fit the budget. On the wall clock a busy machine
therefore plans fewer steps, cuts loops and skips probes, and a test that checks statuses, steps or
numbers passes on an idle machine only. ``run_suite(..., clock=clock)`` and
``run_probes(..., clock=clock)`` read a :class:`FakeClock` instead, and :func:`charge` makes each call of
a real runner (PyTorch, Keras) advance it by a fixed cost after doing its real work: the plan, every
cut and every skip are then the same on any machine, however busy.
"""

from __future__ import annotations

#: what each timed runner call costs on the fake clock, by default: a few times what the tiny test CNNs
#: cost on an idle two-core machine, so that budgets of a few seconds plan a few hundred steps in all
STEP_S = 0.02         # a training step of 32 images (a measuring step costs 1.5x)
IMAGE_S = 0.0002      # one evaluated image
RESET_S = 0.02        # re-initialising the model


class FakeClock:
    """Seconds (from ``start``) that pass only through :meth:`advance`."""

    def __init__(self, start: float = 1000.0):
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def charge(monkeypatch, runner_cls, clock: FakeClock, *, step: float = STEP_S, image: float = IMAGE_S,
           reset: float = RESET_S):
    """Make every timed call of ``runner_cls`` (its reset, step, evaluations, BatchNorm refresh and activation
    statistics) advance ``clock`` by a fixed cost after its real work; returns ``clock``. The patches are
    undone with ``monkeypatch``."""

    def wrap(name, cost):
        original = getattr(runner_cls, name)

        def timed(self, *args, **kwargs):
            out = original(self, *args, **kwargs)
            clock.advance(cost(args, kwargs))
            return out

        monkeypatch.setattr(runner_cls, name, timed)

    wrap("reset", lambda a, k: reset)
    wrap("step", lambda a, k: step * len(a[0]) / 32 * (1.5 if k.get("measure") else 1.0))
    wrap("evaluate_predictions", lambda a, k: image * len(a[0]))  # what Runner.evaluate calls
    wrap("refresh_norm_stats", lambda a, k: step / 2 * len(a[0]))
    wrap("activation_stats", lambda a, k: 2 * image * len(a[0]))
    return clock

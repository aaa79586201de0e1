"""The measured verdict: what the probes (and ``--compare``) found, in a few lines, first.

When probes ran, the top of the text output and the first screen of the HTML report are this verdict:
overfits one batch, beats zeroed inputs, network against a linear baseline, learning rate against
the range test, and the comparison when there is one. Each line is a mark and a sentence:

* ``✓`` the probe ran and its rule found nothing;
* ``✗`` its rule fired at warning or error severity (the finding's own message, so a consequence of a
  head error says "likely caused by ML302");
* ``?`` its rule fired as an info (inconclusive, e.g. under one epoch) or the probe gave no reading;
* ``–`` the probe did not run (with why);
* a ``budget`` line (``?``) when the probe plan said, before training, that the budget cannot hold a
  verdict about learning (:data:`modellint.probes.suite.VERDICT_STEPS`).

The verdict decides nothing itself: the marks come from the findings the rules wrote. A static head or
loss error (the causes the probe rules name) comes first, as the cause of what follows.
"""

from __future__ import annotations

from typing import Optional

#: (label, probes the line reads, rule that judges it)
ITEMS = (("overfits one batch", ("overfit_batch",), "ML023"),
         ("beats zeroed inputs", ("zero_input",), "ML022"),
         ("network vs linear baseline", ("train_dynamics", "linear_baseline"), "ML030"),
         ("learning rate vs range test", ("lr_range",), "ML024"))


def _pct(v) -> str:
    return f"{100 * v:.0f} %" if isinstance(v, (int, float)) else "?"


def _g(v) -> str:
    return f"{v:.3g}" if isinstance(v, (int, float)) else "?"


def _probes(report) -> dict:
    """The report's probe results as plain data ({} when no probe ran)."""
    probes = getattr(report, "probes", None)
    if probes is None:
        return {}
    return probes.to_dict() if hasattr(probes, "to_dict") else dict(probes)


def _passed(name: str, results: dict) -> str:
    m = lambda p: (results.get(p) or {}).get("metrics") or {}  # noqa: E731
    if name == "ML023":
        o = m("overfit_batch")
        return f"loss {_g(o.get('initial_loss'))} → {_g(o.get('final_loss'))} on {o.get('batch')} images in " \
               f"{o.get('steps')} steps"
    if name == "ML022":
        z = m("zero_input")
        return f"validation accuracy {_pct(z.get('real_val_accuracy'))} on the images, " \
               f"{_pct(z.get('zero_val_accuracy'))} on zeros, after {z.get('steps')} steps"
    if name == "ML030":
        td = m("train_dynamics")
        on = f" (trained on a class-stratified {td['train_images']:,} of {td['train_split']:,} training images)" \
            if isinstance(td.get("train_images"), int) and td["train_images"] < td.get("train_split", 0) else ""
        return f"network {_pct(td.get('val_accuracy'))}{on}, linear model on pixels " \
               f"{_pct(m('linear_baseline').get('val_accuracy'))} validation accuracy"
    lr = m("lr_range")
    configured = lr.get("configured_lr")
    used = f"configured {_g(configured)}" if configured else \
        f"trained at {_g(m('train_dynamics').get('lr') or m('overfit_batch').get('lr'))} (none configured)"
    return f"{used}, range test suggests {_g(lr.get('suggested_lr'))}"


def lines(report) -> list:
    """The verdict as ``[{"mark", "label", "text"}]``; [] when neither probes nor a comparison ran."""
    measured = _probes(report)
    results = measured.get("results") or {}
    comparison = getattr(report, "comparison", None)
    if not results and comparison is None:
        return []
    out = []
    from ..rules.probes import STATIC_CAUSES

    causes = [f for f in report.findings if f.code in STATIC_CAUSES and f.severity == "error"]
    for f in causes:
        out.append({"mark": "!", "label": "cause first", "text": f"{f.code} {f.message} — the training results "
                    "below are its likely consequences; fix it first"})
    planned = ((measured.get("settings") or {}).get("plan") or {}).get("verdict") or {}
    if planned.get("why"):  # the plan said before training that the budget holds no verdict about learning
        out.append({"mark": "?", "label": "budget", "text": planned["why"]})
    found = {}
    for f in report.findings:
        found.setdefault(f.code, f)
    for label, probes, code in ITEMS if results else ():
        missing = [p for p in probes if (results.get(p) or {}).get("status") != "ok"]
        if missing:
            why = []
            for p in missing:
                r = results.get(p)
                why.append(f"{p} {r.get('status')}" + (f" ({r['notes'][0]})" if r.get("notes") else "")
                           if r else f"{p} not selected")
            out.append({"mark": "–", "label": label, "text": "not measured: " + "; ".join(why)})
            continue
        f = found.get(code)
        if f is not None:
            mark = "?" if f.severity == "info" else "✗"
            out.append({"mark": mark, "label": label, "text": f"{f.message} ({code})"})
        elif code == "ML024" and not isinstance(((results.get("lr_range") or {}).get("metrics") or {})
                                                .get("suggested_lr"), (int, float)):
            notes = (results.get("lr_range") or {}).get("notes") or ["the range test gave no reading"]
            out.append({"mark": "?", "label": label, "text": notes[0]})
        else:
            out.append({"mark": "✓", "label": label, "text": _passed(code, results)})
    if comparison is not None:
        out.append(comparison_line(comparison))
    return out


def comparison_line(c) -> dict:
    d = c.to_dict() if hasattr(c, "to_dict") else dict(c)
    label = f"compared with {d['names']['other']}"
    if d.get("status") != "ok":
        return {"mark": "?", "label": label, "text": d.get("why") or "no verdict"}
    acc = d.get("accuracy") or {}
    mark = "≈" if acc.get("winner") is None else "✓" if acc.get("winner") == "other" else "✗"
    note = (d.get("plan") or {}).get("subset_note")
    return {"mark": mark, "label": label, "text": d["verdict"] + (f"; {note}" if note else "")}


def subset_note(report) -> Optional[str]:
    c = getattr(report, "comparison", None)
    return None if c is None else (c.plan or {}).get("subset_note")

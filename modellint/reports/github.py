"""GitHub Actions workflow commands: one annotation per finding.

::

    ::warning file=examples/seed_cnn.h5,title=ML102 bias-before-batchnorm::conv2d_1: conv2d_1 … : bias is cancelled …

Severity maps error→``error``, warning→``warning``, info→``notice``. Escaping follows
``@actions/core`` (``toCommandValue``/``escapeData``/``escapeProperty``): in the message
``%``, CR and LF are percent-encoded; in properties ``:`` and ``,`` are as well. A model
file has no lines, so the annotations carry no ``line``.
"""

from __future__ import annotations

import os
from typing import Iterable, Optional

COMMANDS = {"error": "error", "warning": "warning", "info": "notice"}


def escape_data(text: str) -> str:
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(f, path: Optional[str]) -> str:
    from ..rules import get_rule

    rule = get_rule(f.code)
    title = f"{f.code} {rule.name}" if rule is not None and rule.name else f.code
    props = []
    if path:
        props.append(f"file={escape_property(display_path(path))}")
    props.append(f"title={escape_property(title)}")
    message = f"{f.layers[0]}: {f.message}" if f.layers else f.message
    if f.fix:
        message += f"\nfix: {f.fix}"
    return f"::{COMMANDS[f.severity]} {','.join(props)}::{escape_data(message)}"


def display_path(path: str) -> str:
    """Relative to the working directory (the checkout, in Actions) with forward slashes."""
    p = str(path)
    if os.path.isabs(p):
        try:
            rel = os.path.relpath(p)
            if not rel.startswith(".."):
                p = rel
        except ValueError:  # another drive on Windows
            pass
    return p.replace(os.sep, "/") if os.sep != "/" else p


def render(reports: Iterable) -> str:
    """One workflow command per finding, in report order (no trailing newline)."""
    lines = []
    for report in reports:
        for f in report.findings:
            lines.append(annotation(f, f.path or report.graph.source_path))
    return "\n".join(lines)

"""Print a model's rows in the Keras 2 / tf.keras ``model.summary()`` layouts.

The fixtures ``keras2_*.txt`` in this folder were written with it, from models built by the
installed Keras 3 (names, output shapes and parameter counts are theirs), so the test knows
the truth behind each text. The two layouts are transcribed from Keras' own
``layer_utils.print_summary``:

* ``legacy`` (Keras 2.2-2.8 / tf.keras <= 2.8): each field cut at its column
  (``line = line[:positions[i]]``), rows separated by ``_`` rules, a Functional model's
  further producers on rows of their own (``input_1[0][0]``);
* ``wrapped`` (tf.keras 2.9-2.15): a leading space, fields wrapped onto the next line at
  the column width (breaking after ``),``/``',``), blank lines between rows, producers as
  a list (``['conv2d[0][0]']``).

    python tests/data/summaries/keras2_format.py   # rewrites the fixtures
"""

from __future__ import annotations


def _legacy_row(fields, positions):
    line = ""
    for i, f in enumerate(fields):
        if i > 0:
            line = line[:-1] + " "
        line += str(f)
        line = line[:positions[i]]
        line += " " * (positions[i] - len(line))
    return line


def _wrapped_row(fields, positions):
    left = [str(x) for x in fields]
    lines = []
    while any(left):
        line = ""
        for col in range(len(left)):
            start = positions[col - 1] if col > 0 else 0
            end = positions[col]
            space = 2 if col != len(positions) - 1 else 0
            cutoff = end - start - space
            if col != len(positions) - 1:
                cutoff -= 1
            fit = left[col][:cutoff]
            cands = [fit.find(x) + len(x) for x in ("),", "},", "],", "',") if fit.find(x) >= 0]
            if cands:
                cutoff = min(cands)
                fit = fit[:cutoff]
            if col == 0:
                line += " "
            line += fit
            line += " " * space if space else ""
            left[col] = left[col][cutoff:]
            line += " " * (positions[col] - len(line))
        lines.append(line)
    return lines


def keras2_summary(name, rows, totals, functional, layout="legacy"):
    """``rows``: (layer name, class, shape text, params, [producer refs]); ``totals``: (total, trainable)."""
    line_length = 98 if functional else 65
    positions = [.33, .55, .67, 1.] if functional else [.45, .85, 1.]
    positions = [int(line_length * p) for p in positions]
    header = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if functional else [])
    out = [f'Model: "{name}"', "_" * line_length]
    if layout == "legacy":
        out.append(_legacy_row(header, positions))
    else:
        out += _wrapped_row(header, positions)
    out.append("=" * line_length)
    for i, (lname, cls, shape, params, conns) in enumerate(rows):
        first = f"{lname} ({cls})"
        if layout == "legacy":
            c0 = conns[0] if conns else ""
            out.append(_legacy_row([first, shape, params] + ([c0] if functional else []), positions))
            for c in (conns[1:] if functional else []):
                out.append(_legacy_row(["", "", "", c], positions))
            out.append(("=" if i == len(rows) - 1 else "_") * line_length)
        else:
            fields = [first, shape, params] + ([str(list(conns))] if functional else [])
            out += _wrapped_row(fields, positions)
            out.append(" " * line_length if i < len(rows) - 1 else " " * line_length)
            if i == len(rows) - 1:
                out.append("=" * line_length)
    total, trainable = totals
    out += [f"Total params: {total:,}", f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}", "_" * line_length]
    return "\n".join(out) + "\n"


def rows_of(model, functional):
    """(name, class, shape text, params, producers) of a built Keras 3 model, as Keras 2 printed them."""
    rows = []
    for layer in model.layers:
        if not functional and type(layer).__name__ == "InputLayer":
            continue
        shape = tuple(layer.output.shape)
        text = str(shape) if type(layer).__name__ != "InputLayer" else f"[{shape}]"
        conns = []
        if functional:
            for node in layer._inbound_nodes:
                for t in node.input_tensors:
                    hist = t._keras_history
                    conns.append(f"{hist.operation.name}[{hist.node_index}][{hist.tensor_index}]")
        rows.append((layer.name, type(layer).__name__, text, layer.count_params(), conns))
    return rows


def _main():
    import os
    import sys
    from pathlib import Path

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here.parent.parent.parent / "benchmarks"))
    from bench_summary_text import keras2_models

    for fname, model, functional, layout in keras2_models():
        total = model.count_params()
        trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
        text = keras2_summary(model.name, rows_of(model, functional), (total, trainable), functional, layout)
        (here / fname).write_text(text, encoding="utf-8")
        print("wrote", fname)


if __name__ == "__main__":
    _main()

"""ML906: sequence models against the axes of their input."""

from __future__ import annotations

from typing import Optional

from .base import Rule, register


def _batch_axis(graph, node) -> Optional[int]:
    """The axis of an RNN's ``(a, b, features)`` input that holds the batch: 0, 1 or None (unknown).

    The PyTorch capture records it (``input_batch_axis``: which dim equals the example
    input's batch size, dim 0 of the example, batch first); otherwise the canonical
    shape says it, the batch being the one ``None`` dim."""
    if "input_batch_axis" in node.attrs:
        axis = node.attrs["input_batch_axis"]
        return axis if axis in (0, 1) else None
    shape = graph.shape_of(node.inputs[0]) if node.inputs else None
    if shape is None or len(shape) != 3:
        return None
    if shape[0] is None and shape[1] is not None:
        return 0
    if shape[1] is None and shape[0] is not None:
        return 1
    return None


@register
class RnnBatchAxisSwapped(Rule):
    """
    ## What it does
    Flags a PyTorch recurrent layer (`nn.LSTM`, `nn.GRU`, `nn.RNN`) whose
    `batch_first` does not match the input it is called on: `batch_first=False`
    (the default, time-major `(time, batch, features)`) fed a batch-first
    `(batch, time, features)` tensor straight from a `DataLoader`, or
    `batch_first=True` fed a tensor transposed to time-major. modellint reads the
    first dimension of the example input as the batch (`--input-shape` and
    `input_shape=` are batch first) and follows it to the layer.

    ## Why is this bad
    Nothing fails: the shapes fit either way. The layer steps through the batch
    as if it were time, so every sample's state leaks into the next sample, and
    treats each time step as a separate sequence: a batch of 16 series of 128
    steps becomes 128 "sequences" of 16 steps, each running across the 16
    samples. `out[:, -1]` then picks the last *sample* at every step, not the
    last step of each sample. The model learns from scrambled data and its
    results change with the batch size.

    ## Fix
    Say the layout the data has: `nn.LSTM(..., batch_first=True)` for
    `(batch, time, features)` batches (then `out[:, -1]` is each sequence's last
    step), or transpose the input to `(time, batch, features)` with
    `x.transpose(0, 1)` before a time-major layer and read its last step as
    `out[-1]`. The final hidden state `h_n[-1]` is `(batch, hidden)` either way.
    """

    code = "ML906"
    name = "rnn-batch-axis-swapped"
    category = "input-shape"
    severity = "error"
    impact = 3
    references = ("PyTorch documentation, torch.nn.LSTM: batch_first (default False: input is "
                  "(seq, batch, feature))",)
    INVALID = ["seq(inp(128, 9), rnn(64, batch_first=False, return_sequences=False), dense(6, act='softmax'), "
               "framework='torch')  # nn.LSTM(9, 64) fed (batch, 128, 9)"]
    VALID = ["seq(inp(128, 9), rnn(64, batch_first=True, return_sequences=False), dense(6, act='softmax'), "
             "framework='torch')  # nn.LSTM(9, 64, batch_first=True)",
             "seq(inp(128, 9), rnn(64, return_sequences=False), dense(6, act='softmax'))  # Keras: always batch first"]

    def check(self, ctx):
        graph = ctx.graph
        for node in graph:
            if node.op != "rnn" or node.attrs.get("batch_first") not in (True, False):
                continue
            batch_first = node.attrs["batch_first"]
            axis = _batch_axis(graph, node)
            if axis is None or axis == (0 if batch_first else 1):
                continue
            kind = node.source_type.rsplit(".", 1)[-1] or "RNN"
            shape = graph.display_shape(graph.shape_of(node.inputs[0])) if node.inputs else None
            shown = "(" + ", ".join("batch" if i == axis else str(d) for i, d in enumerate(shape)) + ")" \
                if shape is not None else "its input"
            other = shape[1 - axis] if shape is not None else None
            if not batch_first:
                message = (f"nn.{kind} `{node.name}` has batch_first=False but is called on {shown} with the batch "
                           f"first: it runs through the batch as time steps"
                           + (f" and reads the {other} time steps as {other} separate sequences" if other else ""))
                fix = (f"nn.{kind}(..., batch_first=True) for (batch, time, features) input (the last step is then "
                       "out[:, -1]), or x.transpose(0, 1) before it and out[-1] after it.")
                snippet = f"self.rnn = nn.{kind}(input_size, hidden_size, batch_first=True)\n" \
                          "out, _ = self.rnn(x)        # x: (batch, time, features)\nlast = out[:, -1]"
            else:
                message = (f"nn.{kind} `{node.name}` has batch_first=True but is called on {shown}, time-major: it "
                           "reads the time steps as the batch and the batch as time")
                fix = (f"Drop the transpose and feed (batch, time, features), or nn.{kind}(..., batch_first=False) "
                       "for time-major input.")
                snippet = f"self.rnn = nn.{kind}(input_size, hidden_size, batch_first=True)\n" \
                          "out, _ = self.rnn(x)        # x: (batch, time, features), not transposed"
            yield self.finding(
                message, layers=[node.name],
                evidence={"batch_first": batch_first, "input": list(shape) if shape is not None else None,
                          "input_batch_axis": axis, "expected_batch_axis": 0 if batch_first else 1},
                explanation="The shapes fit either way, so nothing fails: the layer mixes the samples of a batch "
                            "as one sequence and splits every sequence into unrelated steps.",
                fix=fix, snippets={"torch": snippet})

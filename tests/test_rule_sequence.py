"""ML906 on real PyTorch modules: an RNN's batch_first against the input it is called on."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from modellint import analyze  # noqa: E402
from modellint.adapters.torch_live import graph_from_module  # noqa: E402

pytestmark = pytest.mark.torch


class Net(nn.Module):
    """(batch, time, features) in; ``transpose``: made time-major before the RNN."""

    def __init__(self, cell=nn.LSTM, batch_first=False, transpose=False):
        super().__init__()
        self.rnn = cell(9, 32, batch_first=batch_first)
        self.fc = nn.Linear(32, 6)
        self.transpose = transpose

    def forward(self, x):
        if self.transpose:
            x = x.transpose(0, 1)
        out, _ = self.rnn(x)
        last = out[:, -1] if self.rnn.batch_first else out[-1]
        return self.fc(last)


def ml906(model, shape=(16, 128, 9)):
    report = analyze(model, input_shape=shape, dataset={"classes": 6})
    return report, [f for f in report.findings if f.code == "ML906"]


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.RNN])
def test_time_major_rnn_fed_batch_first_input(cell):
    report, found = ml906(Net(cell, batch_first=False))
    (f,) = found
    assert f.severity == "error" and f.category == "input-shape" and f.layers == ["rnn"]
    assert f"nn.{cell.__name__} `rnn` has batch_first=False" in f.message and "(batch, 128, 9)" in f.message
    assert f.evidence["input_batch_axis"] == 0 and f.evidence["batch_first"] is False
    node = report.graph["rnn"]
    assert node.attrs["batch_first"] is False and node.attrs["input_batch_axis"] == 0


@pytest.mark.parametrize("model", [Net(batch_first=True), Net(batch_first=False, transpose=True)],
                         ids=["batch_first", "transposed_for_time_major"])
def test_matching_layouts_are_quiet(model):
    report, found = ml906(model)
    assert found == []
    assert report.graph["rnn"].attrs["input_batch_axis"] == (0 if model.rnn.batch_first else 1)


def test_batch_first_rnn_fed_time_major_input():
    (f,) = ml906(Net(batch_first=True, transpose=True))[1]
    assert "batch_first=True" in f.message and f.evidence["input_batch_axis"] == 1


def test_every_capture_records_the_batch_axis():
    for capture in ("fx", "export", "hooks"):
        graph = graph_from_module(Net(batch_first=False), input_shape=(16, 128, 9), capture=capture)
        assert graph["rnn"].attrs["batch_first"] is False and graph["rnn"].attrs["input_batch_axis"] == 0, capture


def test_batch_size_equal_to_time_steps_is_not_guessed():
    """(8, 8, 9): either dim could be the batch; the rule stays quiet rather than guess."""
    report, found = ml906(Net(batch_first=False), shape=(8, 8, 9))
    assert found == [] and report.graph["rnn"].attrs["input_batch_axis"] is None

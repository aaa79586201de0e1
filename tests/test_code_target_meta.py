"""Issue 12: a PyTorch code target is built on the meta device when only its graph is needed.

A factory with ``nn.Linear(512*28*28, 4096)`` took 20 s and 6.6 GB with real
weights; under ``torch.device("meta")`` it costs nothing. A factory that cannot
build there, or whose model cannot be read there, is built for real, with a note.
"""

from __future__ import annotations

import sys
import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("modellint.adapters.torch_live")

from modellint.adapters import load_graph  # noqa: E402
from modellint.adapters.code_target import resolve_target  # noqa: E402

pytestmark = pytest.mark.torch

BIG = '''
import torch
from torch import nn

def build():
    return nn.Sequential(nn.Conv2d(3, 512, 3, padding=1), nn.AdaptiveAvgPool2d(28), nn.Flatten(),
                         nn.Linear(512 * 28 * 28, 4096), nn.ReLU(), nn.Linear(4096, 10))

def reads_values():
    width = int(torch.tensor([8]).item())  # a value read while building: no meta tensor has one
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, width))

class Branchy(nn.Module):  # its forward branches on values: it can only be read on real tensors
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x) if x.sum() > -1e9 else x

def branchy():
    return Branchy()
'''


@pytest.fixture
def factories(tmp_path, monkeypatch):
    (tmp_path / "meta_factories.py").write_text(BIG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("meta_factories", None)


def test_big_factory_builds_on_meta(factories):
    t0 = time.perf_counter()
    g = load_graph("meta_factories:build", input_shape=(1, 3, 28, 28))
    assert time.perf_counter() - t0 < 15
    expected = (3 * 9 * 512 + 512) + (512 * 28 * 28 * 4096 + 4096) + (4096 * 10 + 10)
    assert g.total_params == g.trainable_params == expected
    assert g.source_format == "code"
    assert any('built under torch.device("meta")' in n for n in g.notes), g.notes
    # the probes still get real weights
    model = resolve_target("meta_factories:reads_values")
    assert not next(model.parameters()).is_meta


def test_factory_that_cannot_build_on_meta_is_built_for_real(factories):
    g = load_graph("meta_factories:reads_values", input_shape=(1, 3, 4, 4))
    assert g.total_params == 48 * 8 + 8
    assert any("could not build on the meta device" in n and "built with real weights" in n for n in g.notes), \
        g.notes


def test_model_unreadable_on_meta_is_built_for_real(factories):
    g = load_graph("meta_factories:branchy", input_shape=(1, 4))
    assert g.total_params == 20
    assert any("meta device failed" in n for n in g.notes), g.notes

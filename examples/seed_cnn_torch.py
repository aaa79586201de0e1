"""The seed CNN (examples/build_seed.py) in PyTorch.

Same layers, shapes, parameter counts (168,793: 168,339 trainable and 454
BatchNorm running statistics), receptive field and MACs as the Keras model in
``examples/seed_cnn.h5``: BatchNorm on the raw input, four 3x3 convolutions with
no activation (Keras' default), max pooling between them, global average
pooling and a softmax classifier over 13 classes.

    python examples/seed_cnn_torch.py            # prints modellint's summary of it
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

INPUT_SHAPE = (1, 3, 128, 128)  # NCHW, batch first
NUM_CLASSES = 13


def build(num_classes: int = NUM_CLASSES) -> nn.Sequential:
    """The seed model; module paths read ``input_bn``, ``conv1`` ... ``fc``, ``softmax``."""
    return nn.Sequential(OrderedDict([
        ("input_bn", nn.BatchNorm2d(3)),
        ("conv1", nn.Conv2d(3, 32, 3, padding=1)),
        ("pool1", nn.MaxPool2d(2)),
        ("bn1", nn.BatchNorm2d(32)),
        ("conv2", nn.Conv2d(32, 64, 3, padding=1)),
        ("pool2", nn.MaxPool2d(2)),
        ("bn2", nn.BatchNorm2d(64)),
        ("conv3", nn.Conv2d(64, 128, 3, padding=1)),
        ("pool3", nn.MaxPool2d(2)),
        ("bn3", nn.BatchNorm2d(128)),
        ("conv4", nn.Conv2d(128, 64, 3, padding=1)),
        ("gap", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(64, num_classes)),
        ("softmax", nn.Softmax(dim=1)),
    ]))


if __name__ == "__main__":
    model = build()
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters")
    with torch.no_grad():
        print("output", tuple(model(torch.zeros(INPUT_SHAPE)).shape))
    try:
        from modellint.adapters.torch_live import graph_from_module
    except ImportError:  # modellint not installed
        raise SystemExit(0)
    graph = graph_from_module(model, input_shape=INPUT_SHAPE, name="seed_cnn_torch")
    for node in graph:
        print(f"{node.name:12} {node.op:12} {str(graph.display_shape(node.output_shape)):22} {node.params:>8,}")
    print(f"total {graph.total_params:,} ({graph.trainable_params:,} trainable)")

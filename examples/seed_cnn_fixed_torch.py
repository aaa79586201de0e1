"""The fixed seed CNN (``build_seed_fixed`` in examples/build_seed.py) in PyTorch.

The seed with modellint's advice applied: pixels rescaled to [0, 1] instead of a
BatchNorm on the raw input, a ReLU after every convolution, no convolution bias
before BatchNorm, He initialisation, five stages of two convolutions so the
receptive field (140 px) covers the 128 px input, no channel drop before the head,
dropout before the classifier. The Keras model's augmentation layers are left out
(torch.nn has none; augment in the data pipeline), so this is the architecture the
probes compare with the seed's PyTorch port (examples/seed_cnn_torch.py).

    python examples/seed_cnn_fixed_torch.py       # prints modellint's summary of it
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

INPUT_SHAPE = (1, 3, 128, 128)  # NCHW, batch first
NUM_CLASSES = 13
FILTERS = (16, 32, 64, 128, 128)


class SeedFixed(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        layers, c_in = OrderedDict(), 3
        for stage, c_out in enumerate(FILTERS, start=1):
            for i in (1, 2):
                conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
                layers[f"stage{stage}_conv{i}"] = conv
                layers[f"stage{stage}_bn{i}"] = nn.BatchNorm2d(c_out)
                layers[f"stage{stage}_relu{i}"] = nn.ReLU(inplace=True)
                c_in = c_out
            if stage < len(FILTERS):
                layers[f"stage{stage}_pool"] = nn.MaxPool2d(2)
        self.features = nn.Sequential(layers)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.3)
        self.classes = nn.Linear(c_in, num_classes)

    def forward(self, x):
        x = self.features(x / 255.0)  # pixels arrive as 0-255
        x = torch.flatten(self.gap(x), 1)
        return self.classes(self.dropout(x))  # logits, for nn.CrossEntropyLoss


def build(num_classes: int = NUM_CLASSES) -> SeedFixed:
    return SeedFixed(num_classes)


if __name__ == "__main__":
    model = build()
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters")
    try:
        from modellint.adapters.torch_live import graph_from_module
        from modellint.analysis import last_spatial, receptive_fields
    except ImportError:  # modellint not installed
        raise SystemExit(0)
    graph = graph_from_module(model, input_shape=INPUT_SHAPE, name="seed_cnn_fixed_torch")
    node, rf = last_spatial(graph, receptive_fields(graph))
    print(f"total {graph.total_params:,} ({graph.trainable_params:,} trainable); "
          f"receptive field {rf.size[0]}x{rf.size[1]} px at {node.name}")

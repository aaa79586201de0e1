"""Sound PyTorch reference designs: each factory returns ``(module, input_shape)`` (or
``(module, example_input_tensor)`` for token ids), following published recipes
(torchvision's ResNets, the PyTorch tutorials, U-Net, ViT). The loss each trains with is
a manifest label. They must raise no warning unless the manifest says why that
warning is right.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torch_resnet import resnet18 as _resnet18, resnet50 as _resnet50  # tests/torch_resnet.py

from .torch_body import TinyViT
from .torch_heads import CIFAR, MNIST, tokens


def resnet18():
    return _resnet18(), (1, 3, 224, 224)


def resnet50():
    return _resnet50(), (1, 3, 224, 224)


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-20 for CIFAR (He et al. 2016, sec. 4.2): 3x3 stem, three stages of three blocks."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, c = [], 16
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                blocks.append(BasicBlock(c, width, stride if i == 0 else 1))
                c = width
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def cifar_resnet20():
    return CifarResNet(), CIFAR


class QuickstartMLP(nn.Module):
    """The PyTorch "Quickstart" tutorial's NeuralNetwork (FashionMNIST)."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(nn.Linear(28 * 28, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                                               nn.Linear(512, 10))

    def forward(self, x):
        return self.linear_relu_stack(self.flatten(x))


def quickstart_mlp():
    return QuickstartMLP(), MNIST


class LSTMClassifier(nn.Module):
    def __init__(self, vocab=20000, dim=64, hidden=128, classes=5):
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim, padding_idx=0)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.dropout = nn.Dropout(0.3)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, tokens):
        _, (h, _) = self.lstm(self.embedding(tokens))
        return self.fc(self.dropout(h[-1]))


def lstm_classifier():
    return LSTMClassifier(), (8, 80)


class DoubleConv(nn.Sequential):
    def __init__(self, c_in, c_out):
        super().__init__(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class UNet(nn.Module):
    """Ronneberger et al. 2015, three levels, padded convolutions, one output channel (logits)."""

    def __init__(self, c_in=3, classes=1, widths=(32, 64, 128, 256)):
        super().__init__()
        self.downs = nn.ModuleList()
        c = c_in
        for w in widths[:-1]:
            self.downs.append(DoubleConv(c, w))
            c = w
        self.bottom = DoubleConv(widths[-2], widths[-1])
        self.ups = nn.ModuleList()
        self.up_convs = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.ups.append(nn.ConvTranspose2d(w * 2, w, 2, stride=2))
            self.up_convs.append(DoubleConv(w * 2, w))
        self.out = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x):
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, conv, skip in zip(self.ups, self.up_convs, reversed(skips)):
            x = conv(torch.cat([up(x), skip], dim=1))
        return self.out(x)


def unet():
    return UNet(), (1, 3, 64, 64)


def vit_tiny():
    return TinyViT(), CIFAR


class TextTransformer(nn.Module):
    """A transformer-encoder text classifier with learned positions and mean pooling."""

    def __init__(self, vocab=20000, dim=64, length=128, classes=4):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.zeros(1, length, dim))
        layer = nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=4 * dim, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2)
        self.head = nn.Linear(dim, classes)

    def forward(self, tokens):
        x = self.encoder(self.embed(tokens) + self.pos)
        return self.head(x.mean(dim=1))


def text_transformer():
    return TextTransformer(), tokens(8, 128)


class MultiLabelCNN(nn.Module):
    def __init__(self, labels=20):
        super().__init__()
        mods, c = [], 3
        for w in (32, 64, 128, 128):
            mods += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                     nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*mods)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(128, labels))

    def forward(self, x):
        return self.head(self.features(x))  # logits: BCEWithLogitsLoss applies the sigmoid


def multilabel_cnn():
    return MultiLabelCNN(), (1, 3, 64, 64)


def regression_mlp():
    return nn.Sequential(nn.Linear(13, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1)), (1, 13)


class CountRegressor(nn.Module):
    """Counts: a softplus keeps the predicted rate positive, for PoissonNLLLoss(log_input=False)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
        self.act = nn.Softplus()

    def forward(self, x):
        return self.act(self.body(x))


def count_softplus():
    return CountRegressor(), (1, 16)


class MLPAutoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 32))
        self.decoder = nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 784), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x.flatten(1))).view(-1, 1, 28, 28)


def mlp_autoencoder():
    return MLPAutoencoder(), MNIST

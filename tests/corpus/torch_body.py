"""PyTorch faults in the body of the model and in its training setup (buggy/fixed twins):
activations, normalization, receptive field, architecture, initialization,
regularization, capacity, input layout, optimizer and learning rate.

Each pair is two factories, ``<name>_buggy`` and ``<name>_fixed``, returning
``(module, input_shape)`` (batch first) or ``(module, example_input_tensor)``. The
optimizer and loss the user trains with are labels in :mod:`corpus.manifest`; where the
fix changes only those, both factories return the same module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .torch_heads import CIFAR, MNIST, CifarNet, mnist_mlp


# -- activation ---------------------------------------------------------------------------------

def missing_activation_mlp_buggy():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.Linear(256, 128), nn.Linear(128, 10)), MNIST


def missing_activation_mlp_fixed():
    return mnist_mlp(), MNIST


class ConvBNNet(nn.Module):
    def __init__(self, relu):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(128)
        self.fc = nn.Linear(128, 10)
        self.relu = relu

    def _act(self, x):
        return F.relu(x) if self.relu else x

    def forward(self, x):
        x = F.max_pool2d(self._act(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(self._act(self.bn2(self.conv2(x))), 2)
        x = F.max_pool2d(self._act(self.bn3(self.conv3(x))), 2)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def missing_activation_cnn_buggy():
    return ConvBNNet(relu=False), CIFAR


def missing_activation_cnn_fixed():
    return ConvBNNet(relu=True), CIFAR


class DeepMLP(nn.Module):
    def __init__(self, act, depth=8, width=64):
        super().__init__()
        self.inp = nn.Linear(784, width)
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth - 1))
        self.act = act
        self.out = nn.Linear(width, 10)

    def forward(self, x):
        x = self.act(self.inp(x.flatten(1)))
        for layer in self.hidden:
            x = self.act(layer(x))
        return self.out(x)


def sigmoid_deep_plain_buggy():
    return DeepMLP(nn.Sigmoid()), MNIST


def sigmoid_deep_plain_fixed():
    return DeepMLP(nn.ReLU()), MNIST


def softmax_hidden_buggy():
    return nn.Sequential(nn.Linear(20, 64), nn.Softmax(dim=1), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 2)), (1, 20)


def softmax_hidden_fixed():
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 2)), (1, 20)


# -- input layout -------------------------------------------------------------------------------

class HARNet(nn.Module):
    """Human-activity recognition: the DataLoader yields (batch, 128 steps, 9 channels)."""

    def __init__(self, batch_first):
        super().__init__()
        self.lstm = nn.LSTM(9, 64, batch_first=batch_first)
        self.fc = nn.Linear(64, 6)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1, :])  # batch_first=False: the last *sample* at every step


def lstm_batch_first_buggy():
    return HARNet(batch_first=False), (16, 128, 9)


def lstm_batch_first_fixed():
    return HARNet(batch_first=True), (16, 128, 9)


class BagOfEmbeddings(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.embed = nn.Embedding(vocab, 64)
        self.fc1 = nn.Linear(64, 64)
        self.fc2 = nn.Linear(64, 4)

    def forward(self, tokens):
        x = self.embed(tokens).mean(dim=1)
        return self.fc2(F.relu(self.fc1(x)))


def embedding_vocab_too_small_buggy():
    return BagOfEmbeddings(1000), (8, 120)  # the tokenizer has 20,000 ids


def embedding_vocab_too_small_fixed():
    return BagOfEmbeddings(20000), (8, 120)


# -- normalization --------------------------------------------------------------------------------

def dropout_before_bn_buggy():
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Dropout(0.3), nn.BatchNorm2d(32), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Dropout(0.3), nn.BatchNorm2d(64), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10)), CIFAR


def dropout_before_bn_fixed():
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(128, 10)), CIFAR


def _bn_first(bn):
    return nn.Sequential(
        *([nn.BatchNorm2d(1)] if bn else []),
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def bn_raw_input_buggy():
    return _bn_first(True), MNIST


def bn_raw_input_fixed():
    return _bn_first(False), MNIST  # transforms.Normalize((0.1307,), (0.3081,)) in the pipeline


class TabularNet(nn.Module):
    def __init__(self, bn_on_logits):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.out = nn.Linear(64, 10)
        self.out_bn = nn.BatchNorm1d(10) if bn_on_logits else None

    def forward(self, x):
        x = self.out(self.body(x))
        return self.out_bn(x) if self.out_bn is not None else x


def bn_before_logits_buggy():
    return TabularNet(True), (4, 64)


def bn_before_logits_fixed():
    return TabularNet(False), (4, 64)


# -- initialization -------------------------------------------------------------------------------

class InitMLP(nn.Module):
    def __init__(self, zero):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 128)
        self.fc3 = nn.Linear(128, 10)
        for m in (self.fc1, self.fc2, self.fc3):
            if zero:
                nn.init.zeros_(m.weight)
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.fc1(x.view(x.size(0), -1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def zero_init_buggy():
    return InitMLP(zero=True), MNIST


def zero_init_fixed():
    return InitMLP(zero=False), MNIST


# -- receptive field --------------------------------------------------------------------------------

def _conv_stages(widths, c_in=3):
    mods = []
    for w in widths:
        mods += [nn.Conv2d(c_in, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                 nn.MaxPool2d(2)]
        c_in = w
    return mods


class GapNet(nn.Module):
    def __init__(self, widths, classes, c_in=3):
        super().__init__()
        self.features = nn.Sequential(*_conv_stages(widths[:-1], c_in),
                                      nn.Conv2d(widths[-2], widths[-1], 3, padding=1, bias=False),
                                      nn.BatchNorm2d(widths[-1]), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(widths[-1], classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def small_rf_buggy():
    return GapNet((32, 64, 128), 13), (1, 3, 128, 128)  # receptive field 18 px of 128


def small_rf_fixed():
    return GapNet((32, 64, 128, 128, 256, 256), 13), (1, 3, 128, 128)


def _conv_bn_relu(c_in, c_out, stride=1):
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


class SmallResNetStem(nn.Module):
    def __init__(self, imagenet_stem):
        super().__init__()
        if imagenet_stem:
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64),
                                      nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(64),
                                      nn.ReLU(inplace=True))
        self.layer1 = nn.Sequential(*_conv_bn_relu(64, 128, stride=2), *_conv_bn_relu(128, 128))
        self.layer2 = nn.Sequential(*_conv_bn_relu(128, 256, stride=2), *_conv_bn_relu(256, 256))
        self.fc = nn.Linear(256, 10)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def aggressive_stem_buggy():
    return SmallResNetStem(imagenet_stem=True), CIFAR


def aggressive_stem_fixed():
    return SmallResNetStem(imagenet_stem=False), CIFAR


def _collapse(pools):
    mods, c = [], 1
    for w in (32, 64, 64, 128)[:pools]:
        mods += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c = w
    mods += [nn.Conv2d(c, 128, 3, padding=1), nn.ReLU(), nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(),
             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10)]
    return nn.Sequential(*mods)


def feature_collapse_buggy():
    return _collapse(4), MNIST  # 28 -> 14 -> 7 -> 3 -> 1, then two 3x3 convs on a 1x1 map


def feature_collapse_fixed():
    return _collapse(2), MNIST


# -- architecture ---------------------------------------------------------------------------------

class FlattenHead(nn.Module):
    def __init__(self, flatten):
        super().__init__()
        widths = (32, 64, 64) if flatten else (32, 64, 128, 128)
        self.features = nn.Sequential(*_conv_stages(widths))
        if flatten:  # 64 x 8 x 8 = 4096 features into 256 units: 1.05 M of 1.11 M parameters
            self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * 8 * 8, 256), nn.ReLU(), nn.Dropout(0.5),
                                            nn.Linear(256, 10))
        else:
            self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.5),
                                            nn.Linear(128, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def huge_flatten_head_buggy():
    return FlattenHead(True), (1, 3, 64, 64)


def huge_flatten_head_fixed():
    return FlattenHead(False), (1, 3, 64, 64)


class TinyViT(nn.Module):
    """A small ViT for 32x32 images: 4x4 patches, 2 encoder layers, mean pooling."""

    def __init__(self, positional=True, dim=128, depth=2, classes=10):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, kernel_size=4, stride=4)
        self.pos = nn.Parameter(torch.randn(1, 64, dim) * 0.02) if positional else None
        layer = nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=2 * dim, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)  # (N, 64, dim)
        if self.pos is not None:
            x = x + self.pos
        x = self.encoder(x)
        return self.head(self.norm(x.mean(dim=1)))


def no_positional_encoding_buggy():
    return TinyViT(positional=False), CIFAR


def no_positional_encoding_fixed():
    return TinyViT(positional=True), CIFAR


# -- regularization -------------------------------------------------------------------------------

def dropout_p_high_buggy():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Dropout(p=0.9), nn.Linear(512, 256),
                         nn.ReLU(), nn.Dropout(p=0.9), nn.Linear(256, 10)), MNIST


def dropout_p_high_fixed():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Dropout(p=0.2), nn.Linear(512, 256),
                         nn.ReLU(), nn.Dropout(p=0.2), nn.Linear(256, 10)), MNIST


def dropout_after_logits_buggy():
    return nn.Sequential(nn.Linear(40, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 6),
                         nn.Dropout(0.5)), (1, 40)


def dropout_after_logits_fixed():
    return nn.Sequential(nn.Linear(40, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(64, 6)), (1, 40)


# -- capacity -------------------------------------------------------------------------------------

def too_many_params_buggy():
    return nn.Sequential(nn.Linear(50, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 2)), (1, 50)


def too_many_params_fixed():
    return nn.Sequential(nn.Linear(50, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2)), (1, 50)


# -- optimizer and learning rate: same module, the optimizer is a manifest label -------------------

def lr_too_high_buggy():
    return CifarNet(), CIFAR


lr_too_high_fixed = lr_too_high_buggy


def lr_too_low_buggy():
    return mnist_mlp(), MNIST


lr_too_low_fixed = lr_too_low_buggy


def sgd_tiny_lr_buggy():
    return GapNet((32, 64, 128), 10), CIFAR


sgd_tiny_lr_fixed = sgd_tiny_lr_buggy


def adam_coupled_weight_decay_buggy():
    return TinyViT(), CIFAR


adam_coupled_weight_decay_fixed = adam_coupled_weight_decay_buggy

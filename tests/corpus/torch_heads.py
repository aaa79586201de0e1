"""PyTorch faults at the output head and in the loss (buggy/fixed twins).

Each pair is two factories, ``<name>_buggy`` and ``<name>_fixed``, returning
``(module, input_shape)`` (batch first, PyTorch's layout; or example input tensors
where the input is token ids), written in the styles
PyTorch users write (``nn.Sequential``, ``nn.Module`` with layers as attributes,
``torch.nn.functional`` calls in ``forward``). The loss the user trains with is a
label in :mod:`corpus.manifest` (a module carries none); where the fix is a change of
loss the two factories return the same module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def mnist_mlp(final=()):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                         nn.Linear(128, 10), *final)


class CifarNet(nn.Module):
    """The PyTorch CIFAR-10 tutorial's network, widened a little; ``head`` ends it."""

    def __init__(self, out_features=10, final=None, functional_softmax=False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(128, 64)
        self.fc2 = nn.Linear(64, out_features)
        self.final = final
        self.functional_softmax = functional_softmax

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = self.pool(F.relu(self.conv3(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        if self.final is not None:
            x = self.final(x)
        if self.functional_softmax:
            x = F.softmax(x, dim=1)
        return x


CIFAR = (1, 3, 32, 32)
MNIST = (1, 1, 28, 28)


# -- nn.Softmax before nn.CrossEntropyLoss (softmax applied twice) -------------------------

def softmax_before_ce_buggy():
    return mnist_mlp([nn.Softmax(dim=1)]), MNIST


def softmax_before_ce_fixed():
    return mnist_mlp(), MNIST


def functional_softmax_before_ce_buggy():
    return CifarNet(functional_softmax=True), CIFAR


def functional_softmax_before_ce_fixed():
    return CifarNet(), CIFAR


# -- Linear(..., 1) for a 10-class problem ---------------------------------------------------

def linear1_for_10_classes_buggy():
    return CifarNet(out_features=1), CIFAR


def linear1_for_10_classes_fixed():
    return CifarNet(out_features=10), CIFAR


# -- BCELoss on raw logits (fix: BCEWithLogitsLoss; same module) -----------------------------

class TabularBinary(nn.Module):
    def __init__(self, final=None):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))
        self.final = final

    def forward(self, x):
        x = self.net(x)
        return self.final(x) if self.final is not None else x


def bce_on_logits_buggy():
    return TabularBinary(), (1, 30)


def bce_on_logits_fixed():
    return TabularBinary(), (1, 30)


# -- NLLLoss on logits, no log_softmax ------------------------------------------------------

def nll_without_log_softmax_buggy():
    return mnist_mlp(), MNIST


def nll_without_log_softmax_fixed():
    return mnist_mlp([nn.LogSoftmax(dim=1)]), MNIST


# -- nn.Sigmoid before BCEWithLogitsLoss (sigmoid applied twice) ------------------------------

def sigmoid_before_bce_with_logits_buggy():
    return TabularBinary(final=nn.Sigmoid()), (1, 30)


def sigmoid_before_bce_with_logits_fixed():
    return TabularBinary(), (1, 30)


# -- ReLU at a regression output whose (standardised) target can be negative ----------------

class Regressor(nn.Module):
    def __init__(self, final=None):
        super().__init__()
        self.fc1 = nn.Linear(20, 128)
        self.fc2 = nn.Linear(128, 64)
        self.out = nn.Linear(64, 1)
        self.final = final

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        x = self.out(x)
        return self.final(x) if self.final is not None else x


def relu_regression_output_buggy():
    return Regressor(final=nn.ReLU()), (1, 20)


def relu_regression_output_fixed():
    return Regressor(), (1, 20)


# -- ReLU after the last Linear, into CrossEntropyLoss ---------------------------------------

def relu_after_logits_buggy():
    return CifarNet(final=nn.ReLU()), CIFAR


def relu_after_logits_fixed():
    return CifarNet(), CIFAR


# -- Sigmoid outputs into CrossEntropyLoss on single-label data ------------------------------

def sigmoid_into_ce_buggy():
    return mnist_mlp([nn.Sigmoid()]), MNIST


def sigmoid_into_ce_fixed():
    return mnist_mlp(), MNIST


# -- Softmax + MSELoss as a classifier (fix: logits + CrossEntropyLoss) -----------------------

def mse_on_classifier_buggy():
    return CifarNet(final=nn.Softmax(dim=1)), CIFAR


def mse_on_classifier_fixed():
    return CifarNet(), CIFAR


# -- softmax over one unit, BCELoss -----------------------------------------------------------

def softmax_one_unit_buggy():
    return TabularBinary(final=nn.Softmax(dim=1)), (1, 30)


def softmax_one_unit_fixed():
    return TabularBinary(final=nn.Sigmoid()), (1, 30)


# -- Transformer encoder: every token goes to the head of a per-text regression -------------

class TextRegressor(nn.Module):
    """Predicts one score per review; the buggy variant forgets to pool over tokens."""

    def __init__(self, pool, vocab=5000, dim=64, length=100):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.zeros(1, length, dim))
        layer = nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=128, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2)
        self.head = nn.Linear(dim, 1)
        self.pool = pool

    def forward(self, tokens):
        x = self.encoder(self.embed(tokens) + self.pos)
        if self.pool:
            x = x.mean(dim=1)
        return self.head(x)  # without pooling: (N, 100, 1), broadcast against (N, 1) targets by MSELoss


def tokens(batch=8, length=100):
    """Example token ids (a module that starts with a parameter, not an Embedding, needs them)."""
    return torch.zeros(batch, length, dtype=torch.long)


def encoder_no_pooling_buggy():
    return TextRegressor(pool=False), tokens()


def encoder_no_pooling_fixed():
    return TextRegressor(pool=True), tokens()


# -- LSTM: every time step goes to the head of a sequence-to-one regression -------------------

class Forecaster(nn.Module):
    def __init__(self, last_step):
        super().__init__()
        self.lstm = nn.LSTM(input_size=1, hidden_size=50, num_layers=2, batch_first=True)
        self.fc = nn.Linear(50, 1)
        self.last_step = last_step

    def forward(self, x):
        out, _ = self.lstm(x)
        if self.last_step:
            out = out[:, -1, :]
        return self.fc(out)  # without last_step: (N, 45, 1)


def lstm_all_steps_to_head_buggy():
    return Forecaster(last_step=False), (16, 45, 1)


def lstm_all_steps_to_head_fixed():
    return Forecaster(last_step=True), (16, 45, 1)

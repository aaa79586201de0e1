"""ML7xx: weight initialization."""

from __future__ import annotations

from .. import ops
from ..build_weights import WeightsExample
from .base import Rule, register
from .context import names

_SYMMETRIC = ("zeros", "ones", "constant")
_HE = ("he_normal", "he_uniform")
_GLOROT = ("glorot_normal", "glorot_uniform", "lecun_normal", "lecun_uniform")


def _activation_after(ctx, node):
    fused = ctx.graph.nodes.get(node.name + ".activation")
    if fused is not None:
        return fused.attrs.get("function")
    for n in ctx.forward(node, through=lambda n: ctx.kind(n) in (ops.NORMALIZATION, ops.REGULARIZATION)):
        return n.attrs.get("function") if n.op == "activation" else None
    return None


_TORCH_CNN = "seq(inp(32, 32, 3), conv(32, act='relu'), pool(2), conv(64, act='relu'), gap(), dense(10), framework='torch')"


@register
class SymmetricInit(Rule):
    """
    ## What it does
    Flags hidden conv/dense layers whose kernels start as zeros, ones or another constant.

    ## Why is this bad
    Every unit of the layer computes the same function and receives the same
    gradient, so they stay identical forever: the layer behaves like one unit.
    (A zero-initialised *output* layer is a known trick and is not flagged.)

    ## Fix
    Use the framework default (Glorot uniform in Keras, Kaiming uniform in
    PyTorch) or He initialization for ReLU networks.
    """

    code = "ML701"
    impact = 3
    name = "symmetric-init"
    category = "initialization"
    severity = "error"
    INVALID = ["seq(inp(64,), dense(32, act='relu', init='zeros'), dense(10, act='softmax'))",
               # PyTorch records no initializer: nn.init.zeros_ in __init__ shows in the weights
               WeightsExample(_TORCH_CNN, "{'conv_1': dead(32)}")]
    VALID = ["seq(inp(64,), dense(32, act='relu', init='he_normal'), dense(10, act='softmax', init='zeros'))",
             # a zero-initialised output layer is a known trick; a few dead filters are ML962's
             WeightsExample(_TORCH_CNN, "{'dense_1': dead(10), 'conv_2': dead(8)}")]

    def check(self, ctx):
        outputs = {ctx.head_layer(o).name for o in ctx.outputs()}
        flagged = set()
        for node in ctx.learnable_layers():
            init = node.attrs.get("kernel_initializer")
            if init in _SYMMETRIC and node.name not in outputs:
                flagged.add(node.name)
                yield self._finding(ctx, node.name, f"{node.name}: kernel initialised to {init}",
                                    {"kernel_initializer": init})
        # the weights show what no config records (PyTorch's nn.init.zeros_ in __init__, a zeroed file):
        # a hidden layer whose every unit's kernel is exactly zero
        for st in ctx.weights or ():
            if st.node in flagged or st.node in outputs or st.node not in ctx.graph.nodes or not st.zero_kernel:
                continue
            yield self._finding(ctx, st.node, f"{ctx.label(ctx.graph[st.node])}: kernel is all zeros in the weights "
                                f"({st.units} units)", {"kernel": "all zero", "units": st.units})

    def _finding(self, ctx, layer, message, evidence):
        return self.finding(message, layers=[layer], evidence=evidence,
                            explanation="All units start identical and get identical gradients.",
                            fix=ctx.say("Use he_normal (ReLU) or glorot_uniform (tanh/sigmoid).",
                                        "Keep PyTorch's default init, or nn.init.kaiming_normal_ (ReLU) / "
                                        "nn.init.xavier_uniform_ (tanh/sigmoid)."),
                            snippets={"keras": 'Dense(units, kernel_initializer="he_normal")',
                                      "torch": "nn.init.kaiming_normal_(layer.weight, nonlinearity='relu')"})


@register
class InitActivationMismatch(Rule):
    """
    ## What it does
    In deep plain networks (10 or more learnable layers, no normalization),
    flags ReLU-family layers initialised with Glorot/LeCun scaling and
    tanh/sigmoid layers initialised with He scaling.

    ## Why is this bad
    Glorot scaling assumes a symmetric activation and halves the signal
    variance at every ReLU layer; over many layers activations and gradients
    shrink towards zero. He scaling doubles the variance to compensate and
    over-drives tanh/sigmoid into saturation. Normalization layers hide the
    mismatch, so shallow or normalised models are not flagged.

    ## Fix
    `kernel_initializer="he_normal"` for ReLU-family, `"glorot_uniform"` for tanh/sigmoid.
    """

    code = "ML702"
    impact = 1
    name = "init-activation-mismatch"
    category = "initialization"
    severity = "info"
    references = ("He et al. 2015, Delving Deep into Rectifiers (ICCV)",
                  "Glorot & Bengio 2010 (AISTATS)")
    INVALID = ["seq(inp(64,), " + ", ".join(["dense(64, act='relu')"] * 10) + ", dense(10, act='softmax'))"]
    VALID = ["seq(inp(64,), " + ", ".join(["dense(64, act='relu', init='he_normal')"] * 10)
             + ", dense(10, act='softmax'))"]

    def check(self, ctx):
        layers = ctx.learnable_layers()
        if len(layers) < 10 or any(ctx.kind(n) == ops.NORMALIZATION for n in ctx.graph):
            return
        relu_glorot, tanh_he = [], []
        for node in layers:
            init, fn = node.attrs.get("kernel_initializer"), _activation_after(ctx, node)
            family = ops.ACTIVATION_FAMILY.get(fn)
            if family == "relu" and init in _GLOROT:
                relu_glorot.append(node)
            elif family in ("tanh", "sigmoid") and init in _HE:
                tanh_he.append(node)
        if relu_glorot:
            yield self.finding(f"{names(relu_glorot)}: ReLU layers with Glorot initialization in a deep "
                               "network without normalization", layers=[n.name for n in relu_glorot],
                               evidence={"layers": len(relu_glorot), "depth": len(layers)},
                               fix='kernel_initializer="he_normal"')
        if tanh_he:
            yield self.finding(f"{names(tanh_he)}: tanh/sigmoid layers with He initialization",
                               layers=[n.name for n in tanh_he], fix='kernel_initializer="glorot_uniform"')

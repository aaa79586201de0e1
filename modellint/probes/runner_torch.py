"""The probe :class:`~.runner.Runner` for PyTorch modules.

``source`` is a live ``torch.nn.Module`` (files and code targets are resolved to
modules before). Each :meth:`TorchRunner.reset` starts from fresh, seeded weights:

* with ``build`` (what a code target ``package.module:factory`` gives): the factory
  is called again under ``torch.manual_seed(seed)``, so the model's own
  initialisation code (``nn.init.kaiming_normal_``, a zero-initialised last
  BatchNorm...) runs, seeded;
* a live module: a ``copy.deepcopy`` of it, re-initialised under the seed by
  ``reset_parameters()`` on every submodule that has one (parameters of modules
  without it keep the copied values). Custom initialisation done in the module's
  constructor is not reproduced: ``init`` says so, and the report carries it.

The user's module is never modified. Images arrive NHWC and are
transposed to NCHW when ``graph.layout`` is ``"channels_first"``.

Loss: the ``loss`` argument, else ``graph.training`` (the adapter's assumption
for a softmax output included), else cross-entropy on logits (or on the log of
the probabilities after a softmax output). An output with spatial dimensions
``(N, C, ...)`` is averaged over them first.

* ``categorical/sparse_categorical_crossentropy`` with ``from_logits`` ->
  ``nn.CrossEntropyLoss``; without -> ``nn.NLLLoss`` on ``log(clamp(p, 1e-7))``;
* ``nll_loss`` -> ``nn.NLLLoss`` on the output (log-probabilities);
* ``binary_crossentropy`` -> ``BCEWithLogitsLoss`` / ``BCELoss`` on one-hot labels;
* ``mean_squared_error`` / ``mean_absolute_error`` -> ``MSELoss`` / ``L1Loss`` on one-hot labels.

Optimizer: Adam, or SGD / AdamW / RMSprop when ``graph.training.optimizer`` names them.

Measurements (keys are module paths, the graph's node names):

* ``step(measure=True)``: for every module with its own parameter of rank >= 2
  (Linear/Conv weights, embeddings; not biases or norm scales), the L2 norm of
  those parameters' ``.grad``, their norm before the step and ``||ΔW|| / ||W||``.
* ``activation_stats``: forward *pre*-hooks (safe with ``inplace=True``) on
  activation modules (``nn.ReLU``, ``ReLU6``, ``GELU``, ``SiLU``, ``Mish``,
  ``Hardswish``, ``Tanh``, ``Sigmoid``), keyed ``path`` and ``path@k`` for a
  module called again (as the graph names repeated calls); and, through a
  ``TorchFunctionMode``, the functional calls ``F.relu`` / ``torch.relu`` /
  ``x.relu()`` (and relu6, gelu, silu, mish, hardswish, tanh, sigmoid) made in a
  module's ``forward``, keyed ``scope.relu``, ``scope.relu_1``... like the
  graph's function nodes. A ReLU-family unit (channel, axis 1) is dead when its
  output is zero (``|y| <= 1e-6``) on >= 70 % of positions x inputs; for
  tanh/sigmoid the fraction of pre-activations beyond ±5 is reported.
  Activations inside fused kernels (``nn.MultiheadAttention``, ``nn.LSTM``) or
  TorchScript code are not seen.
"""

from __future__ import annotations

import copy
import math
from typing import Optional

import numpy as np

from ..errors import InputError
from .runner import ActivationStats, Runner, StepStats

DEAD_ZERO = 1e-6
DEAD_SHARE = 0.70
SATURATION = 5.0
TINY = 1e-12  # ||W|| floor of the update ratio (an all-zero kernel gives ||ΔW|| * 1e12)

_CE = {"categoricalcrossentropy", "sparsecategoricalcrossentropy", "crossentropy", "crossentropyloss",
       "cce", "scce", "ce"}
_NLL = {"nllloss", "nll", "nlloss"}
_BCE = {"binarycrossentropy", "bce", "bceloss", "bcewithlogitsloss", "binarycrossentropywithlogits"}
_MSE = {"meansquarederror", "mse", "mseloss"}
_MAE = {"meanabsoluteerror", "mae", "l1loss", "l1"}


def _norm_name(name) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def output_activation(graph) -> Optional[str]:
    """The activation function at the graph's (first) output, if it ends in one."""
    return graph.output_activation() if graph is not None else None


def _activation_tables():
    import torch
    import torch.nn.functional as F
    from torch import nn

    modules = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.GELU: "gelu", nn.SiLU: "silu", nn.Mish: "mish",
               nn.Hardswish: "hardswish", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}
    functions = {}
    for name, fns in {
        "relu": (F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, F.relu_),
        "relu6": (F.relu6,),
        "gelu": (F.gelu,),
        "silu": (F.silu,),
        "mish": (F.mish,),
        "hardswish": (F.hardswish,),
        "tanh": (torch.tanh, torch.Tensor.tanh, torch.Tensor.tanh_, F.tanh),
        "sigmoid": (torch.sigmoid, torch.Tensor.sigmoid, torch.Tensor.sigmoid_, F.sigmoid),
    }.items():
        for fn in fns:
            functions[fn] = name
    apply = {"relu": F.relu, "relu6": F.relu6, "gelu": F.gelu, "silu": F.silu, "mish": F.mish,
             "hardswish": F.hardswish}
    return modules, functions, apply


def deterministic_cudnn() -> None:
    """The same seed, the same numbers on a GPU: cuDNN's autotuner and its non-deterministic convolution
    algorithms would change results between identical runs (also used by Keras on the torch backend)."""
    import torch

    if torch.cuda.is_available():
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


class TorchRunner(Runner):
    framework = "torch"

    def __init__(self, graph, source, *, loss=None, seed: int = 0, build=None):
        import torch

        self.graph = graph
        self._where = getattr(graph, "source_path", None) or getattr(graph, "name", None) or "model"
        if not isinstance(source, torch.nn.Module):
            raise InputError(self._where, f"probes need a live torch.nn.Module, not {type(source).__name__}")
        if isinstance(source, torch.jit.ScriptModule):
            raise InputError(self._where, "probes cannot re-initialise a TorchScript module; pass the nn.Module")
        self._template = source
        self._build = build
        #: how each reset initialises the weights (recorded in the probe report's settings)
        self.init = ("the factory called again under the seed: the model's own initialisation" if build is not None
                     else "PyTorch's default reset_parameters() under the seed; initialisation code in the "
                          "module's constructor is not reproduced (probe a code target package.module:factory "
                          "to keep it)")
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self._channels_first = getattr(graph, "layout", "channels_first") == "channels_first"
        self._loss_spec = loss
        training = getattr(graph, "training", None)
        self._lr = float(training.learning_rate) if training is not None and training.learning_rate else 1e-3
        self.model = None
        self.reset(seed, self._lr)

    # -- set-up ------------------------------------------------------------
    def reset(self, seed: int, lr: float) -> None:
        import torch

        torch.manual_seed(int(seed))
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(int(seed))
        deterministic_cudnn()
        if self._build is not None:
            model = self._build()
            if not isinstance(model, torch.nn.Module):
                raise InputError(self._where, f"the factory gave {type(model).__name__} on a second call, "
                                              "not a torch.nn.Module")
        else:
            model = self._fresh_copy()
        model.to(self.device).train()
        self.model = model
        self._layers = []
        for path, module in model.named_modules():
            ps = [p for p in module.parameters(recurse=False) if p.requires_grad and p.dim() >= 2]
            if ps:
                self._layers.append((path or "<root>", ps))
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise InputError(self._where, "the module has no trainable parameters; there is nothing to probe")
        self._params = params
        self._loss_fn = self._make_loss(self._loss_spec)
        self.optimizer = self._make_optimizer(params, lr)
        self._lr = float(lr)

    def _fresh_copy(self):
        """A copy of the live module with every ``reset_parameters()`` called (under the caller's seed)."""
        import torch

        try:
            model = copy.deepcopy(self._template)
        except Exception as exc:
            raise InputError(self._where, f"the module cannot be copied for the probes ({_one_line(exc)})") from None
        with torch.no_grad():
            for module in model.modules():
                fn = getattr(module, "reset_parameters", None)
                if callable(fn):
                    try:
                        fn()
                    except Exception as exc:
                        raise InputError(self._where, f"{type(module).__name__}.reset_parameters() failed "
                                                      f"({_one_line(exc)})") from None
        return model

    def set_lr(self, lr: float) -> None:
        self._lr = float(lr)
        for group in self.optimizer.param_groups:
            group["lr"] = float(lr)

    def _make_optimizer(self, params, lr: float):
        import torch

        training = getattr(self.graph, "training", None)
        name = _norm_name((training.optimizer if training is not None else None) or "adam")
        cfg = dict(training.optimizer_config) if training is not None and training.optimizer_config else {}
        if name == "sgd":
            momentum = float(cfg.get("momentum") or 0.0)
            return torch.optim.SGD(params, lr=lr, momentum=momentum,
                                   nesterov=bool(cfg.get("nesterov")) and momentum > 0)
        if name == "adamw":
            return torch.optim.AdamW(params, lr=lr)
        if name == "rmsprop":
            return torch.optim.RMSprop(params, lr=lr)
        return torch.optim.Adam(params, lr=lr)

    def _make_loss(self, spec):
        import torch
        from torch import nn

        training = getattr(self.graph, "training", None)
        if isinstance(spec, nn.Module):  # a loss module the caller built: int labels
            self.loss_name = type(spec).__name__
            self._onehot = False
            return spec
        if spec is not None and not isinstance(spec, str):
            raise InputError(self._where, f"loss must be a name or an nn.Module, not {type(spec).__name__}")
        from_logits = None
        if spec is None and training is not None and training.loss:
            spec, from_logits = training.loss, training.from_logits
        elif spec is not None and training is not None and training.loss and \
                _norm_name(training.loss) == _norm_name(spec):
            from_logits = training.from_logits
        out_act = output_activation(self.graph)
        from ..losses import LOGITS, lookup

        known = lookup(spec) if spec else None
        if known is not None and known.framework == "torch":  # a PyTorch loss class says what it takes
            from_logits = known.expects == LOGITS
        if from_logits is None:
            from_logits = out_act not in ("softmax", "sigmoid", "log_softmax")
        name = _norm_name(spec or "crossentropy")
        self._onehot = False
        if name in _CE:
            if out_act == "log_softmax" and not from_logits:
                self.loss_name = "NLLLoss (log_softmax output)"
                return nn.NLLLoss()
            if from_logits:
                self.loss_name = "CrossEntropyLoss"
                return nn.CrossEntropyLoss()
            nll = nn.NLLLoss()
            self.loss_name = "NLLLoss(log(probabilities))"
            return lambda out, y: nll(torch.log(out.clamp(1e-7, 1.0)), y)
        if name in _NLL:
            self.loss_name = "NLLLoss"
            return nn.NLLLoss()
        self._onehot = True
        if name in _BCE:
            if from_logits or name == "bcewithlogitsloss":
                self.loss_name = "BCEWithLogitsLoss"
                return nn.BCEWithLogitsLoss()
            bce = nn.BCELoss()
            self.loss_name = "BCELoss"
            return lambda out, y: bce(out.clamp(1e-7, 1 - 1e-7), y)
        if name in _MSE:
            self.loss_name = "MSELoss (one-hot)"
            return nn.MSELoss()
        if name in _MAE:
            self.loss_name = "L1Loss (one-hot)"
            return nn.L1Loss()
        raise InputError(self._where, f"probes cannot train a PyTorch model with the loss {spec!r}")

    # -- data --------------------------------------------------------------
    def _x(self, x):
        import torch

        x = np.asarray(x, dtype=np.float32)
        if self._channels_first and x.ndim == 4:
            x = x.transpose(0, 3, 1, 2)
        return torch.from_numpy(np.ascontiguousarray(x)).to(self.device)

    def _loss(self, out, y):
        import torch

        if isinstance(out, (tuple, list)):
            out = out[0]
        if out.dim() > 2:  # (N, C, ...) -> mean over positions, as a classifier head would
            out = out.flatten(2).mean(-1)
        y = np.asarray(y).astype(np.int64).reshape(-1)
        n_out = out.shape[-1] if out.dim() > 1 else 1
        if len(y) and (y.max() >= max(n_out, 2) or y.min() < 0):
            raise InputError(self._where, f"the data has class index {int(y.max())} but the model has "
                                          f"{n_out} output(s)")
        yt = torch.from_numpy(y).to(out.device)
        if self._onehot:
            if out.shape[-1] == 1:
                target = yt.to(out.dtype).reshape(-1, 1)
            else:
                target = torch.nn.functional.one_hot(yt, out.shape[-1]).to(out.dtype)
            return self._loss_fn(out, target), out, yt
        return self._loss_fn(out, yt), out, yt

    # -- training ----------------------------------------------------------
    def step(self, x, y, *, measure: bool = False) -> StepStats:
        import torch

        model = self.model
        model.train()
        self.optimizer.zero_grad(set_to_none=True)
        try:
            loss, _, _ = self._loss(model(self._x(x)), y)
            loss.backward()
        except InputError:
            raise
        except Exception as exc:
            raise InputError(self._where, f"the module failed on the probe batch ({_one_line(exc)})") from None
        # One device->host transfer per step: the loss, the extremes of every gradient (a NaN or Inf anywhere
        # shows in them, where a sum could overflow) and, when measuring, the squared norms per layer.
        grads = [g._values() if g.is_sparse else g for g in
                 (p.grad.detach() for p in self._params if p.grad is not None) if g.numel()]
        parts = [loss.detach().double().reshape(1)]
        if grads:
            parts.append(torch.stack([v.double() for g in grads for v in torch.aminmax(g)]))
        zero = torch.zeros((), dtype=torch.float64, device=parts[0].device)

        def sq(ts):  # squared L2 norm of the tensors together, in float64 (no float64 copies)
            norm = torch.linalg.vector_norm
            return norm(torch.stack([norm(t, dtype=torch.float64) for t in ts])) ** 2 if ts else zero

        if measure:
            before = [[p.detach().clone() for p in ps] for _, ps in self._layers]
            parts.append(torch.stack([sq([p.grad.detach() for p in ps if p.grad is not None])
                                      for _, ps in self._layers]))
            parts.append(torch.stack([sq(snap) for snap in before]))
        self.optimizer.step()
        if measure:
            parts.append(torch.stack([sq([p.detach() - s for p, s in zip(ps, snap)])
                                      for (_, ps), snap in zip(self._layers, before)]))
        values = torch.cat(parts).tolist()
        loss_value, extremes = values[0], values[1:1 + 2 * len(grads)]
        finite = math.isfinite(loss_value) and all(math.isfinite(v) for v in extremes)
        out = StepStats(loss=loss_value, nonfinite=not finite)
        if measure:
            n = len(self._layers)
            g2, w2, d2 = (values[1 + 2 * len(grads) + k * n:1 + 2 * len(grads) + (k + 1) * n] for k in range(3))
            for (name, _), g, w, d in zip(self._layers, g2, w2, d2):
                out.grad_norm[name] = math.sqrt(g)
                out.weight_norm[name] = math.sqrt(w)
                out.update_ratio[name] = math.sqrt(d) / max(math.sqrt(w), TINY)  # finite for an all-zero kernel
        return out

    def evaluate_predictions(self, x, y, batch_size: int = 128) -> tuple:
        import torch

        y = np.asarray(y).astype(np.int64).reshape(-1)
        if len(y) == 0:
            return float("nan"), float("nan"), np.zeros(0, np.int64)
        model = self.model
        model.eval()
        total, correct, guesses = 0.0, 0, []
        try:
            with torch.no_grad():
                for i in range(0, len(y), batch_size):
                    xb, yb = x[i:i + batch_size], y[i:i + batch_size]
                    loss, out, yt = self._loss(model(self._x(xb)), yb)
                    total += float(loss) * len(yb)
                    if out.shape[-1] > 1:
                        guess = out.argmax(-1)
                    else:
                        guess = (out[:, 0] > (0.0 if "Logits" in self.loss_name else 0.5)).long()
                    correct += int((guess == yt).sum())
                    guesses.append(guess.reshape(-1).to("cpu").numpy().astype(np.int64))
        except InputError:
            raise
        except Exception as exc:
            raise InputError(self._where, f"the module failed on the probe batch ({_one_line(exc)})") from None
        finally:
            model.train()
        return total / len(y), correct / len(y), np.concatenate(guesses)

    # -- BatchNorm statistics ----------------------------------------------
    def _norm_modules(self):
        import torch

        return [m for m in self.model.modules()
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats
                and m.running_mean is not None]

    @property
    def has_norm_stats(self) -> bool:
        return bool(self.model is not None and self._norm_modules())

    def refresh_norm_stats(self, batches) -> int:
        """``reset_running_stats()`` and ``momentum=None`` (a cumulative average) on every BatchNorm module,
        one forward pass per batch under ``no_grad`` with only the norm modules in training mode (dropout
        and the rest in eval mode), then the momenta and modes restored."""
        import torch

        norms = self._norm_modules()
        if not norms or not batches:
            return 0
        model = self.model
        momenta = [m.momentum for m in norms]
        try:
            model.eval()
            for m in norms:
                m.reset_running_stats()
                m.momentum = None
                m.train()
            with torch.no_grad():
                for xb in batches:
                    model(self._x(xb))
        except Exception as exc:
            raise InputError(self._where, f"the module failed on the probe batch ({_one_line(exc)})") from None
        finally:
            for m, mom in zip(norms, momenta):
                m.momentum = mom
            model.train()
        return len(norms)

    # -- activations -------------------------------------------------------
    def activation_stats(self, x, batch_size: int = 64) -> ActivationStats:
        import torch
        from torch.overrides import TorchFunctionMode

        modules, functions, apply = _activation_tables()
        acc: dict = {}

        def record(name, kind, pre):
            pre = pre.detach()
            a = acc.setdefault(name, {"kind": kind, "zero": None, "count": 0, "sat": 0, "total": 0})
            if kind in ("tanh", "sigmoid"):
                a["sat"] += int((pre.abs() > SATURATION).sum())
                a["total"] += pre.numel()
                return
            post = apply[kind](pre.float())
            if post.dim() >= 2:
                post = post.movedim(1, -1)
            c = post.reshape(-1, post.shape[-1]) if post.dim() >= 1 else post.reshape(1, 1)
            zeros = (c.abs() <= DEAD_ZERO).sum(0).double().cpu().numpy()
            a["zero"] = zeros if a["zero"] is None else a["zero"] + zeros
            a["count"] += c.shape[0]

        names = {id(m): path for path, m in self.model.named_modules()}
        paths = set(names.values())
        taken: set = set()
        calls: dict = {}
        fn_calls: dict = {}
        stack: list = []
        handles = []

        def pre_hook(module, args):
            path = names.get(id(module), "")
            stack.append((module, path))
            kind = modules.get(type(module))
            if kind is not None and args and torch.is_tensor(args[0]):
                k = calls.get(path, 0)
                calls[path] = k + 1
                record(path if k == 0 else f"{path}@{k}", kind, args[0])

        def post_hook(module, args, output):
            if stack:
                stack.pop()

        class Functions(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kind = functions.get(func)
                if kind is not None and args and torch.is_tensor(args[0]) and stack \
                        and type(stack[-1][0]) not in modules:
                    scope = stack[-1][1]
                    base = f"{scope}.{kind}" if scope else kind
                    name, k = base, fn_calls.get(base, 0)
                    while name in paths or name in taken:  # the graph's unique(): base, base_1, ...
                        k += 1
                        name = f"{base}_{k}"
                    fn_calls[base] = k
                    taken.add(name)
                    record(name, kind, args[0])
                return func(*args, **(kwargs or {}))

        for module in self.model.modules():
            handles.append(module.register_forward_pre_hook(pre_hook))
            handles.append(module.register_forward_hook(post_hook))
        model = self.model
        model.eval()
        try:
            with torch.no_grad():
                for i in range(0, len(x), batch_size):
                    calls.clear()
                    fn_calls.clear()
                    taken.clear()
                    stack.clear()
                    with Functions():
                        model(self._x(x[i:i + batch_size]))
        except InputError:
            raise
        except Exception as exc:
            raise InputError(self._where, f"the module failed on the probe batch ({_one_line(exc)})") from None
        finally:
            for h in handles:
                h.remove()
            model.train()
        out = ActivationStats()
        for name, a in acc.items():
            if a["kind"] in ("tanh", "sigmoid"):
                if a["total"]:
                    out.saturated_fraction[name] = a["sat"] / a["total"]
            elif a["count"]:
                out.dead_fraction[name] = float(np.mean(a["zero"] / a["count"] >= DEAD_SHARE))
        return out

    def output_bias(self) -> Optional[list]:
        from torch import nn

        modules = dict(self.model.named_modules())
        linear = None
        for node in reversed(list(getattr(self.graph, "nodes", {}).values()) if self.graph is not None else []):
            m = modules.get(node.name.split("@")[0])
            if isinstance(m, nn.Linear):
                linear = m
                break
        if linear is None:
            found = [m for m in self.model.modules() if isinstance(m, nn.Linear)]
            linear = found[-1] if found else None
        if linear is None or linear.bias is None:
            return None
        return [float(v) for v in linear.bias.detach().cpu().reshape(-1)]

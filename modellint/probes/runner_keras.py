"""The probe :class:`~.runner.Runner` for Keras 3 models.

The architecture is built by Keras' own deserialisers (those ``keras.saving.load_model(...,
compile=False, safe_mode=True)`` calls) from the model config the adapter reads
(:func:`modellint.adapters.keras_files.model_architecture`: within its caps, a damaged
file refused with one line); the stored weights are never read, as the probes
re-initialise every weight. So Keras never opens the file itself: libhdf5 in process
on damaged weight data can loop forever or exhaust memory, where the adapter's HDF5
reads are pure Python or in a child bounded by ``MODELLINT_H5PY_TIMEOUT`` and a
memory cap. A model with a ``Lambda`` layer is refused, because probes run the model
and modellint never executes Lambda bytecode.

:meth:`KerasRunner.reset` builds a fresh model with ``keras.models.clone_model``
right after ``keras.utils.set_random_seed(seed)``: new layers, new initialisation,
so the probes measure the architecture and the training setup, never the weights
of a checkpoint. The optimizer is the graph's configured class (default Adam)
and the loss is the ``loss`` argument, else the graph's compiled loss with its
``from_logits`` flag, else sparse categorical cross-entropy that takes logits
unless the output is a softmax/sigmoid.

Measurements
------------
* ``step(measure=True)``: for every *learnable layer* (a layer with a trainable
  weight of rank >= 2: kernels, depthwise/pointwise kernels, embeddings; biases and
  BatchNorm's gamma/beta are not "kernels"), the L2 norm of the gradient of those
  weights, their norm before the step, and ``||ΔW|| / ||W||`` of the step. Keys
  are layer names, ``outer/inner`` inside nested models (as in the graph). The
  reported loss is the data loss; the gradient is of the data loss plus the
  model's regularisation losses (what ``fit`` optimises).
* ``activation_stats``: every ReLU-family activation (``relu``, ``relu6``, ``gelu``,
  ``silu``/``swish``, ``mish``, ``ReLU`` layers without a negative slope) gives the
  fraction of its units (channels) whose output is zero (``|y| <= 1e-6``) on
  >= 70 % of positions x inputs; every ``tanh``/``sigmoid`` gives the fraction of
  its pre-activations beyond ±5. Activation layers (``Activation``, ``ReLU``) are
  keyed by layer name and read their input as the pre-activation; fused
  activations (``Conv2D(activation="relu")``) are keyed ``"<layer>.activation"``
  (the graph's node name) and their pre-activation comes from a clone of the
  layer with ``activation="linear"`` holding the same weights, applied to the
  layer's input. The tensors come from Keras sub-models
  (``keras.Model(model.inputs, [...])``), recursing into nested models;
  sub-classed models (no graph of layers) give no activation statistics.

Backends
--------
Everything above goes through Keras 3's public API, except what Keras 3 has no
backend-neutral API for: per-variable gradients, and compiling the step. Those
are :data:`BACKENDS`: on TensorFlow ``tf.GradientTape`` and ``tf.function`` (one
trace per step kind, reused across resets); on PyTorch (``KERAS_BACKEND=torch``)
``torch.autograd.grad`` in eager mode, on the GPU when Keras puts the model there.
JAX is refused with a one-line error.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import numpy as np

from ..errors import InputError
from .runner import ActivationStats, Runner, StepStats

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEAD_ZERO = 1e-6          # an output this close to 0 counts as zero
DEAD_SHARE = 0.70         # a unit is dead when zero on at least this share of positions x inputs
SATURATION = 5.0          # |pre-activation| beyond this saturates tanh/sigmoid
TINY = 1e-12              # ||W|| floor of the update ratio (an all-zero kernel gives ||ΔW|| * 1e12)
RELU_FAMILY = {"relu", "relu6", "gelu", "silu", "swish", "mish"}
SATURATING = {"tanh", "sigmoid"}

_LOSS_ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error", "bce": "binary_crossentropy",
                 "cce": "categorical_crossentropy", "scce": "sparse_categorical_crossentropy",
                 "crossentropy": "sparse_categorical_crossentropy", "cross_entropy": "sparse_categorical_crossentropy",
                 "kld": "kl_divergence", "kullback_leibler_divergence": "kl_divergence"}


def _norm_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def output_activation(graph) -> Optional[str]:
    """The activation function at the graph's (first) output, if it ends in one."""
    return graph.output_activation() if graph is not None else None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _model_from_config(kind: str, config: str):
    """The model ``keras.saving.load_model(path, compile=False, safe_mode=True)`` would build, from
    the architecture config alone (:func:`modellint.adapters.keras_files.model_architecture`): the
    same Keras deserialisers load_model calls for a ``.keras`` archive and for a legacy ``.h5``, with
    Lambda code refused (safe mode), and no weights read. Keras' public deserialiser where its
    internals differ from Keras 3.x's."""
    import keras

    if kind == "keras":
        try:
            from keras.src.saving.saving_lib import _model_from_config as from_config
        except ImportError:
            return keras.saving.deserialize_keras_object(dict(json.loads(config), compile_config=None),
                                                         safe_mode=True)
        return from_config(config, None, False, True)  # custom_objects, compile, safe_mode
    try:
        from keras.src.backend.common import global_state
        from keras.src.legacy.saving import json_utils, saving_options, saving_utils
        from keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:
        return keras.models.model_from_json(config)
    custom_objects = {**keras.saving.get_custom_objects(),
                      **global_state.get_global_attribute("custom_objects_scope_dict", {})}
    with saving_options.keras_option_scope(use_legacy_config=True), SafeModeScope(True):
        return saving_utils.model_from_config(json_utils.decode(config), custom_objects=custom_objects)


class KerasRunner(Runner):
    framework = "keras"

    def __init__(self, graph, source, *, loss=None, seed: int = 0):
        import keras

        self.graph = graph
        self._where = str(source) if isinstance(source, (str, os.PathLike)) else (
            getattr(graph, "source_path", None) or getattr(graph, "name", None) or "model")
        if graph is not None and any(n.source_type == "Lambda" for n in graph):
            self._refuse_lambda()
        self._template = self._load(source)
        #: how each reset initialises the weights (recorded in the probe report's settings)
        self.init = "keras.models.clone_model under the seed: the layers' configured initializers"
        if any(isinstance(layer, keras.layers.Lambda) for layer in self._all_layers(self._template)):
            self._refuse_lambda()
        backend = keras.backend.backend()
        if backend not in BACKENDS:
            raise InputError(self._where, f"probes train Keras models on the tensorflow or torch backend; "
                             f"KERAS_BACKEND is {backend!r}")
        self._ops = BACKENDS[backend]
        self.device = self._ops.device()
        self._loss_spec = loss
        self.model = None
        training = getattr(graph, "training", None)
        self._lr = float(training.learning_rate) if training is not None and training.learning_rate else 1e-3
        self.reset(seed, self._lr)

    # -- loading -----------------------------------------------------------
    def _refuse_lambda(self):
        raise InputError(self._where, "the model has a Lambda layer; probes need to run the model and modellint "
                                      "never executes Lambda code (replace it with a registered custom layer)")

    def _load(self, source):
        import keras

        if isinstance(source, keras.Model):
            return source
        if not isinstance(source, (str, os.PathLike)):
            raise InputError(self._where, f"probes need a Keras model file or a keras.Model, not {type(source).__name__}")
        path = Path(source)
        if path.suffix.lower() not in (".keras", ".h5", ".hdf5"):
            raise InputError(path, "probes load Keras models from .keras or .h5 files")
        from ..adapters.keras_files import model_architecture

        kind, config = model_architecture(path)  # bounded; a damaged file is refused here
        try:
            model = _model_from_config(kind, config)
        except Exception as exc:  # unknown custom layers, Lambda in safe mode, a config Keras refuses...
            if "lambda" in str(exc).lower():
                self._refuse_lambda()
            raise InputError(path, f"Keras cannot rebuild this model to run the probes ({_one_line(exc)})") from None
        if not isinstance(model, keras.Model):
            raise InputError(path, "the file does not hold a Keras model")
        return model

    @staticmethod
    def _all_layers(model):
        import keras

        out = []
        for layer in getattr(model, "layers", []):
            out.append(layer)
            if isinstance(layer, keras.Model):
                out.extend(KerasRunner._all_layers(layer))
        return out

    # -- set-up ------------------------------------------------------------
    def reset(self, seed: int, lr: float) -> None:
        """A fresh initialisation (``clone_model`` after ``set_random_seed``) and a fresh optimizer.

        The first call makes the clone the working model and traces the step; later
        calls assign a new clone's variables (weights, BatchNorm statistics, dropout
        seed states) and a new optimizer's variables to the working ones, so the
        traced ``tf.function`` is reused instead of traced again (~0.4 s a trace)."""
        import keras

        keras.utils.set_random_seed(int(seed))
        try:
            model = keras.models.clone_model(self._template)
        except Exception as exc:
            raise InputError(self._where, f"Keras cannot clone this model for the probes ({_one_line(exc)})") from None
        if not model.built:
            raise InputError(self._where, "the Keras model is not built (no input shape); probes need its input size")
        if self.model is not None:
            fresh, work = list(model.variables), list(self.model.variables)
            if len(fresh) == len(work) and all(tuple(a.shape) == tuple(b.shape) for a, b in zip(fresh, work)):
                for a, b in zip(work, fresh):
                    a.assign(b.value)
                optimizer = self._make_optimizer(lr)
                optimizer.build(self._tvars)
                for a, b in zip(self.optimizer.variables, optimizer.variables):
                    a.assign(b.value)
                self.set_lr(lr)
                return
        if len(getattr(model, "inputs", None) or [None]) != 1 or len(getattr(model, "outputs", None) or [None]) != 1:
            raise InputError(self._where, "probes run models with one image input and one class output")
        self.model = model
        self._layers = self._learnable(model)
        self._tvars = list(model.trainable_variables)
        if not self._tvars:
            raise InputError(self._where, "the model has no trainable weights; there is nothing to probe")
        index = {id(v): i for i, v in enumerate(self._tvars)}
        self._groups = [[index[id(v)] for v in vs if id(v) in index] for _, vs in self._layers]
        self._loss_fn, self._sparse, self._logits = self._make_loss(self._loss_spec)
        self._n_out = int(model.outputs[0].shape[-1]) if getattr(model, "outputs", None) else None
        self.optimizer = self._make_optimizer(lr)
        self.optimizer.build(self._tvars)
        self._lr = float(lr)
        self._train_fns = {}
        self._predict_fn = None
        self._norm_fn = None
        self._act_plan = None

    def set_lr(self, lr: float) -> None:
        self._lr = float(lr)
        self.optimizer.learning_rate = float(lr)

    def _learnable(self, model, prefix: str = "") -> list:
        """(name, [rank >= 2 trainable variables]) per learnable layer, in layer order."""
        import keras

        out = []
        for layer in model.layers:
            if isinstance(layer, keras.Model) and layer.layers:
                out.extend(self._learnable(layer, f"{prefix}{layer.name}/"))
                continue
            vs = [v for v in layer.trainable_weights if len(v.shape) >= 2]
            if vs:
                out.append((prefix + layer.name, vs))
        return out

    def _make_optimizer(self, lr: float):
        import keras

        training = getattr(self.graph, "training", None)
        name = (training.optimizer if training is not None else None) or "adam"
        config = dict(training.optimizer_config) if training is not None and training.optimizer_config else {}
        cls = None
        for attr in dir(keras.optimizers):
            obj = getattr(keras.optimizers, attr)
            if (inspect.isclass(obj) and issubclass(obj, keras.optimizers.Optimizer)
                    and _norm_name(attr) == _norm_name(name)):
                cls = obj
                break
        if cls is None:
            cls = keras.optimizers.Adam
        params = inspect.signature(cls.__init__).parameters
        skip = ("learning_rate", "name", "self", "use_ema", "ema_momentum", "ema_overwrite_frequency",
                "loss_scale_factor", "gradient_accumulation_steps")  # one probe step = one update
        kwargs = {k: v for k, v in config.items() if k in params and k not in skip and not isinstance(v, dict)}
        try:
            return cls(learning_rate=float(lr), **kwargs)
        except Exception:
            return cls(learning_rate=float(lr))

    def _make_loss(self, spec):
        """(loss object, labels sparse?, output is logits?)."""
        import keras

        training = getattr(self.graph, "training", None)
        if isinstance(spec, keras.losses.Loss):
            sparse = "sparse" in type(spec).__name__.lower()
            logits = bool(getattr(spec, "from_logits", False) or spec.get_config().get("from_logits", False))
            self.loss_name = type(spec).__name__
            return spec, sparse, logits
        if spec is not None and not isinstance(spec, str):
            raise InputError(self._where, f"loss must be a name or a keras.losses.Loss, not {type(spec).__name__}")
        config: dict = {}
        from_logits = None
        if spec is None and training is not None and training.loss:
            spec, from_logits = training.loss, training.from_logits
            config = {k: v for k, v in (training.loss_config or {}).items() if not isinstance(v, (dict, list))}
        elif spec is not None and training is not None and training.loss and \
                _norm_name(training.loss) == _norm_name(spec):
            from_logits = training.from_logits
        out_act = output_activation(self.graph)
        if out_act is None and getattr(self._template, "layers", None):
            out_act = getattr(getattr(self._template.layers[-1], "activation", None), "__name__", None)
        if from_logits is None:
            from_logits = out_act not in ("softmax", "sigmoid", "log_softmax")
        name = (spec or "sparse_categorical_crossentropy").lower()
        name = _LOSS_ALIASES.get(name, name)
        cls = None
        for attr in dir(keras.losses):
            obj = getattr(keras.losses, attr)
            if inspect.isclass(obj) and issubclass(obj, keras.losses.Loss) and _norm_name(attr) == _norm_name(name):
                cls = obj
                break
        if cls is None:
            raise InputError(self._where, f"probes cannot train with the loss {spec!r} (not a Keras loss class)")
        params = inspect.signature(cls.__init__).parameters
        kwargs = {k: v for k, v in config.items() if k in params and k not in ("name", "reduction", "self")}
        if "from_logits" in params:
            kwargs["from_logits"] = bool(from_logits)
        try:
            fn = cls(**kwargs)
        except Exception:
            fn = cls(**({"from_logits": bool(from_logits)} if "from_logits" in params else {}))
        logits = bool(kwargs.get("from_logits", False))
        self.loss_name = f"{cls.__name__}(from_logits={logits})" if "from_logits" in params else cls.__name__
        return fn, cls.__name__.startswith("Sparse"), logits

    # -- data --------------------------------------------------------------
    def _labels(self, y):
        y = np.asarray(y).astype(np.int64).reshape(-1)
        if self._n_out and len(y) and (y.max() >= max(self._n_out, 2) or y.min() < 0):
            raise InputError(self._where, f"the data has class index {int(y.max())} but the model has "
                                          f"{self._n_out} output(s)")
        if self._sparse:
            return y
        n = self._n_out or int(y.max()) + 1
        if n == 1:
            return y.astype(np.float32).reshape(-1, 1)
        return np.eye(n, dtype=np.float32)[y]

    @staticmethod
    def _images(x):
        return np.ascontiguousarray(np.asarray(x, dtype=np.float32))

    # -- training ----------------------------------------------------------
    @staticmethod
    def _spec(a):
        """The TensorSpec of a batch with the batch dimension left open: one trace serves every batch size
        (the probes step on batches of 16 and 32, evaluate on 128 and a remainder)."""
        import tensorflow as tf

        return tf.TensorSpec((None,) + tuple(a.shape[1:]), tf.as_dtype(a.dtype))

    def _train_fn(self, measure: bool, x, y):
        fn = self._train_fns.get(measure)
        if fn is None:
            fn = self._train_fns[measure] = self._ops.train_step(self, measure, x, y)
        return fn

    def _tf_train_step(self, measure: bool, x, y):
        """The TensorFlow step: per-variable gradients from ``tf.GradientTape`` (Keras 3 has no
        backend-neutral gradient API); ``tf.function`` traces it once."""
        import tensorflow as tf

        model, opt, loss_fn, tvars, groups = self.model, self.optimizer, self._loss_fn, self._tvars, self._groups
        logits = self._logits

        def gnorm(ts):
            return tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(tf.cast(t, tf.float32))) for t in ts]))

        def step(x, y):
            with tf.GradientTape() as tape:
                pred = model(x, training=True)
                if logits:
                    # A from_logits loss sees the output as configured: else Keras' TF backend silently
                    # swaps a Softmax output for its logits (graph mode only), and the step would train
                    # on a loss that evaluate() does not compute, hiding the softmax/from_logits mismatch.
                    # (Without from_logits the swap is Keras' stable log-softmax: kept, as in fit().)
                    pred = tf.identity(pred)
                data_loss = tf.cast(loss_fn(y, pred), tf.float32)
                total = data_loss + tf.add_n(model.losses) if model.losses else data_loss
            grads = tape.gradient(total, tvars)
            grads = [g if g is not None else tf.zeros_like(v) for g, v in zip(grads, tvars)]
            finite = tf.logical_and(tf.math.is_finite(data_loss),
                                    tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads]))
            stats = ()
            if measure:
                before = [[tf.identity(tvars[i].value) for i in grp] for grp in groups]
                g_norms = tf.stack([gnorm([grads[i] for i in grp]) for grp in groups])
                w_norms = tf.stack([gnorm(b) for b in before])
            opt.apply(grads, tvars)
            if measure:
                d_norms = tf.stack([gnorm([tvars[i].value - b for i, b in zip(grp, bs)])
                                    for grp, bs in zip(groups, before)])
                stats = (g_norms, w_norms, d_norms)
            return data_loss, finite, stats

        return tf.function(step, input_signature=[self._spec(x), self._spec(y)])

    def _torch_train_step(self, measure: bool, x, y):
        """The PyTorch step (``KERAS_BACKEND=torch``): eager, per-variable gradients from
        ``torch.autograd.grad`` on the variables' tensors, then the Keras optimizer's ``apply``."""
        import keras
        import torch

        model, opt, loss_fn, tvars, groups = self.model, self.optimizer, self._loss_fn, self._tvars, self._groups

        def gnorm(ts):
            return torch.sqrt(sum(torch.sum(torch.square(t.detach().float())) for t in ts))

        def step(x, y):
            x, y = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)
            params = [v.value for v in tvars]
            pred = model(x, training=True)
            data_loss = loss_fn(y, pred).float()
            total = data_loss + sum(model.losses) if model.losses else data_loss
            grads = torch.autograd.grad(total, params, allow_unused=True)
            grads = [g if g is not None else torch.zeros_like(p) for g, p in zip(grads, params)]
            finite = torch.stack([torch.isfinite(data_loss)] + [torch.isfinite(g).all() for g in grads]).all()
            stats = ()
            with torch.no_grad():
                if measure:
                    before = [[params[i].detach().clone() for i in grp] for grp in groups]
                    g_norms = [gnorm([grads[i] for i in grp]) for grp in groups]
                    w_norms = [gnorm(b) for b in before]
                opt.apply(grads, tvars)
                if measure:
                    d_norms = [gnorm([tvars[i].value - b for i, b in zip(grp, bs)]) for grp, bs in zip(groups, before)]
                    stats = tuple(torch.stack(ts).tolist() if ts else [] for ts in (g_norms, w_norms, d_norms))
            return float(data_loss.detach()), bool(finite), stats

        return step

    def _guard(self, fn, *args):
        """Run ``fn``; a failure of the model on the batch becomes a one-line InputError."""
        try:
            return fn(*args)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(self._where, f"the model failed on the probe batch ({_one_line(exc)})") from None

    def step(self, x, y, *, measure: bool = False) -> StepStats:
        labels, images = self._labels(y), self._images(x)
        loss, finite, stats = self._guard(self._train_fn(bool(measure), images, labels), images, labels)
        out = StepStats(loss=float(loss), nonfinite=not bool(finite))
        if measure:
            g, w, d = (np.asarray(s, dtype=np.float64) for s in stats)
            for k, (name, _) in enumerate(self._layers):
                out.grad_norm[name] = float(g[k])
                out.weight_norm[name] = float(w[k])
                out.update_ratio[name] = float(d[k] / max(w[k], TINY))  # finite for an all-zero kernel
        return out

    def _predict(self, x):
        if self._predict_fn is None:
            self._predict_fn = self._ops.predict(self, x)
        return self._predict_fn(x)

    def _tf_predict(self, x):
        import tensorflow as tf

        model = self.model
        return tf.function(lambda t: model(t, training=False), input_signature=[self._spec(x)])

    def _torch_predict(self, x):
        import torch

        model = self.model

        def predict(t):
            with torch.no_grad():
                return model(t, training=False)
        return predict

    def evaluate_predictions(self, x, y, batch_size: int = 128) -> tuple:
        import keras

        x, y = self._images(x), np.asarray(y).astype(np.int64).reshape(-1)
        if len(x) == 0:
            return float("nan"), float("nan"), np.zeros(0, np.int64)
        total, correct, guesses = 0.0, 0, []
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            pred = self._guard(self._predict, xb)
            total += float(self._loss_fn(self._labels(yb), pred)) * len(xb)
            p = np.asarray(keras.ops.convert_to_numpy(pred))
            if p.ndim > 1 and p.shape[-1] > 1:
                guess = p.reshape(len(xb), -1, p.shape[-1]).mean(axis=1).argmax(-1)
            else:
                guess = (p.reshape(len(xb), -1)[:, 0] > (0.0 if self._logits else 0.5)).astype(np.int64)
            correct += int((guess == yb).sum())
            guesses.append(np.asarray(guess, dtype=np.int64))
        return total / len(x), correct / len(x), np.concatenate(guesses)

    # -- BatchNorm statistics ----------------------------------------------
    def _norm_layers(self):
        import keras

        return [layer for layer in self._all_layers(self.model)
                if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
                and getattr(layer, "moving_mean", None) is not None]

    @property
    def has_norm_stats(self) -> bool:
        return bool(self.model is not None and self._norm_layers())

    def refresh_norm_stats(self, batches) -> int:
        """Keras 3 ``BatchNormalization`` in training mode sets ``moving = moving * momentum + batch * (1 -
        momentum)``, reading ``momentum`` when called. A forward pass traced with every norm layer's momentum
        at 0 and every dropout rate at 0 (inference-like activations feeding the norm layers) leaves each
        layer's batch statistics in its moving mean/variance; their average over ``batches`` is assigned."""
        import keras

        norms = self._norm_layers()
        if not norms or not batches:
            return 0
        if self._norm_fn is None:
            drops = [layer for layer in self._all_layers(self.model) if isinstance(layer, keras.layers.Dropout)]
            saved = [(layer, "momentum", layer.momentum) for layer in norms] + \
                [(layer, "rate", layer.rate) for layer in drops]
            self._norm_fn = self._ops.norm_forward(self, saved, self._images(batches[0]))
        sums = [[np.zeros(tuple(layer.moving_mean.shape), np.float64),
                 np.zeros(tuple(layer.moving_variance.shape), np.float64)] for layer in norms]
        for xb in batches:
            self._guard(self._norm_fn, self._images(xb))
            for acc, layer in zip(sums, norms):
                acc[0] += np.asarray(keras.ops.convert_to_numpy(layer.moving_mean), np.float64)
                acc[1] += np.asarray(keras.ops.convert_to_numpy(layer.moving_variance), np.float64)
        for (m, v), layer in zip(sums, norms):
            layer.moving_mean.assign((m / len(batches)).astype(layer.moving_mean.dtype))
            layer.moving_variance.assign((v / len(batches)).astype(layer.moving_variance.dtype))
        return len(norms)

    def _tf_norm_forward(self, saved, x):
        """A forward pass in training mode traced while every ``saved`` attribute (norm momentum, dropout
        rate) is 0: the trace keeps the zeros, the layers get their values back."""
        import tensorflow as tf

        model = self.model
        fn = tf.function(lambda t: model(t, training=True), input_signature=[self._spec(x)])
        with _zeroed(saved):
            fn.get_concrete_function()  # traced now, with the zeros
        return fn

    def _torch_norm_forward(self, saved, x):
        """Eager: each call zeroes the ``saved`` attributes around a training-mode forward pass."""
        import torch

        model = self.model

        def forward(t):
            with _zeroed(saved), torch.no_grad():
                model(t, training=True)
        return forward

    # -- activations -------------------------------------------------------
    def _plan(self, model, prefix: str = "") -> Optional[dict]:
        """What to read from ``model``'s graph of layers: a sub-model and per-output jobs."""
        import keras

        if not getattr(model, "inputs", None) or not getattr(model, "layers", None):
            return None  # a sub-classed model: no graph of layers to read
        fused_types = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Conv1D, keras.layers.Conv2D,
                       keras.layers.Conv3D, keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
                       keras.layers.Conv3DTranspose, keras.layers.SeparableConv1D, keras.layers.SeparableConv2D,
                       keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
        tensors, jobs = [], []
        channels_first = getattr(self.graph, "layout", "channels_last") == "channels_first"
        for layer in model.layers:
            try:
                inp = layer.input
            except Exception:
                continue
            if isinstance(layer, keras.Model):
                sub = self._plan(layer, f"{prefix}{layer.name}/")
                if sub is not None and not isinstance(inp, (list, tuple, dict)):
                    jobs.append(("nested", sub, None, None))
                    tensors.append(inp)
                continue
            if isinstance(inp, (list, tuple, dict)):
                continue
            kind, fn, name = None, None, prefix + layer.name
            if isinstance(layer, keras.layers.ReLU):
                if not float(getattr(layer, "negative_slope", 0.0) or 0.0):
                    kind, fn = "dead", layer
            elif isinstance(layer, keras.layers.Activation):
                act = getattr(layer.activation, "__name__", "")
                kind = "dead" if act in RELU_FAMILY else "sat" if act in SATURATING else None
                fn = layer.activation
            elif isinstance(layer, fused_types):
                act = getattr(getattr(layer, "activation", None), "__name__", "linear")
                kind = "dead" if act in RELU_FAMILY else "sat" if act in SATURATING else None
                if kind is not None:
                    cfg = dict(layer.get_config(), activation="linear")
                    try:
                        linear = layer.__class__.from_config(cfg)
                        linear.build(tuple(inp.shape))
                    except Exception:
                        continue
                    fn = (layer, linear)
                    name += ".activation"
            if kind is None:
                continue
            fmt = getattr(layer, "data_format", None)
            axis = 1 if (fmt == "channels_first" or (fmt is None and channels_first)) else -1
            jobs.append((kind, fn, name, axis))
            tensors.append(inp)
        if not tensors:
            return {"model": None, "jobs": []}
        try:
            probe = keras.Model(model.inputs[0] if len(model.inputs) == 1 else model.inputs, tensors)
        except Exception:
            return None
        return {"model": probe, "jobs": jobs}

    def _run_plan(self, plan, x, acc: dict):
        import keras

        if plan is None or plan["model"] is None:
            return
        values = plan["model"](x, training=False)
        if not isinstance(values, (list, tuple)):
            values = [values]
        for (kind, fn, name, axis), pre in zip(plan["jobs"], values):
            if kind == "nested":
                self._run_plan(fn, pre, acc)
                continue
            if isinstance(fn, tuple):  # fused: linear clone with the layer's current weights
                layer, linear = fn
                linear.set_weights(layer.get_weights())
                pre = linear(pre, training=False)
                post = layer.activation(pre)
            else:
                post = fn(pre)
            a = acc.setdefault(name, {"kind": kind, "zero": None, "count": 0, "sat": 0, "total": 0})
            if kind == "dead":
                y = np.moveaxis(np.asarray(keras.ops.convert_to_numpy(post)), axis, -1)
                y = y.reshape(-1, y.shape[-1])
                zeros = (np.abs(y) <= DEAD_ZERO).sum(axis=0).astype(np.float64)
                a["zero"] = zeros if a["zero"] is None else a["zero"] + zeros
                a["count"] += y.shape[0]
            else:
                p = np.asarray(keras.ops.convert_to_numpy(pre))
                a["sat"] += int((np.abs(p) > SATURATION).sum())
                a["total"] += p.size

    def activation_stats(self, x, batch_size: int = 64) -> ActivationStats:
        if self._act_plan is None:
            self._act_plan = (self._plan(self.model),)
        plan = self._act_plan[0]
        x = self._images(x)
        acc: dict = {}
        for i in range(0, len(x), batch_size):
            self._guard(self._run_plan, plan, x[i:i + batch_size], acc)
        out = ActivationStats()
        for name, a in acc.items():
            if a["kind"] == "dead" and a["count"]:
                out.dead_fraction[name] = float(np.mean(a["zero"] / a["count"] >= DEAD_SHARE))
            elif a["kind"] == "sat" and a["total"]:
                out.saturated_fraction[name] = a["sat"] / a["total"]
        return out

    def output_bias(self) -> Optional[list]:
        import keras

        dense = [layer for layer in self._all_layers(self.model) if isinstance(layer, keras.layers.Dense)]
        if not dense or getattr(dense[-1], "bias", None) is None:
            return None
        return [float(v) for v in np.asarray(keras.ops.convert_to_numpy(dense[-1].bias)).reshape(-1)]


@contextlib.contextmanager
def _zeroed(saved):
    """Within the block, every ``(object, attribute, value)`` of ``saved`` is 0; afterwards ``value``."""
    try:
        for obj, attr, _ in saved:
            setattr(obj, attr, 0.0)
        yield
    finally:
        for obj, attr, value in saved:
            setattr(obj, attr, value)


def _tf_device() -> str:
    import tensorflow as tf

    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def _torch_device() -> str:
    import torch

    from .runner_torch import deterministic_cudnn

    deterministic_cudnn()
    return "cuda" if torch.cuda.is_available() else "cpu"


class _Backend(NamedTuple):
    """What Keras 3 has no backend-neutral API for, per backend: the device, and builders (unbound
    :class:`KerasRunner` methods, called with the runner) of the training step, the prediction and the
    BatchNorm-refresh forward pass."""

    device: Callable[[], str]
    train_step: Callable
    predict: Callable
    norm_forward: Callable


BACKENDS = {
    "tensorflow": _Backend(_tf_device, KerasRunner._tf_train_step, KerasRunner._tf_predict,
                           KerasRunner._tf_norm_forward),
    "torch": _Backend(_torch_device, KerasRunner._torch_train_step, KerasRunner._torch_predict,
                      KerasRunner._torch_norm_forward),
}

"""What the trained weights say, per layer: one streaming pass over the weights
(:func:`modellint.weights.iter_weights`) into a :class:`LayerStats` record per node.

Rules read the records, never the arrays (``ctx.weights``, a :class:`WeightStore`)::

    store = ctx.weights                 # None: the source holds no weights
    for st in store:                    # LayerStats, in graph order
        st.nonfinite, st.dead_units, st.duplicate_pairs, st.init, st.scale
    store["conv2d_1"].extra["alpha"]    # a registered per-layer analysis

The pass runs once, on first use, one layer's arrays in memory at a time (plus at
most one working copy of its largest tensor), and calls every per-layer analysis
registered with :func:`register_layer_analysis` on the same arrays; their results
land in ``LayerStats.extra[name]`` (also ``st[name]``). A function registered after
the pass ran is computed by :meth:`WeightStore.analysis` with one more pass.

Weight analyses are pure functions of ``(node, arrays)``; this module imports no
deep-learning framework (the readers of :mod:`modellint.weights` import h5py in a
child process, ``onnx`` for ONNX files, torch only for PyTorch sources).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import numpy as np

from ..graph import Graph, Node

# -- documented thresholds (the rules' pages quote these) --------------------------------

#: A unit (filter / output neuron) is dead when its kernel norm is below this fraction of the
#: median unit norm of its layer (or exactly zero).
DEAD_FRACTION = 0.01
#: Two units of a layer are duplicates at a cosine similarity of their kernels at or above this.
DUPLICATE_COSINE = 0.99
#: At most this many units of a layer are compared for duplicates (the first ones)...
DUPLICATE_MAX_UNITS = 2048
#: ...and fewer when units² × kernel size would pass this many multiply-adds.
DUPLICATE_MAX_WORK = 2_000_000_000
#: Kernels of fewer values per unit are not compared (3×3 depthwise filters agree by chance).
DUPLICATE_MIN_DIM = 16
#: Init-likeness is judged on kernels of at least this many values (fewer decide nothing).
INIT_MIN_SIZE = 256
#: Values per chunk of the streaming moments (bounds the working memory).
CHUNK = 1 << 18

_KERNEL_NAMES = ("kernel", "weight", "pointwise_kernel", "embeddings", "depthwise_kernel", "W")
_UNIT_ROLES = ("conv", "conv_transpose", "depthwise_conv", "separable_conv", "dense")


@dataclass
class ArrayStats:
    """Moments of one weight array (over its finite values)."""

    shape: tuple
    dtype: str
    size: int
    nan: int = 0
    inf: int = 0
    zeros: int = 0
    mean: float = 0.0
    std: float = 0.0
    min: float = 0.0
    max: float = 0.0
    kurtosis: float = 0.0  # excess kurtosis (0 for a normal, -1.2 for a uniform)

    @property
    def absmax(self) -> float:
        return max(abs(self.min), abs(self.max))

    @property
    def rms(self) -> float:
        return math.sqrt(self.mean ** 2 + self.std ** 2)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("dtype", "size", "nan", "inf", "zeros", "mean", "std", "min", "max",
                                           "kurtosis")}
        d["shape"] = list(self.shape)
        return d


@dataclass
class InitMatch:
    """A kernel whose statistics match an initializer's distribution."""

    initializer: str  # "glorot_uniform", "he_normal", "torch_default" (kaiming_uniform(a=√5))...
    expected_std: float
    std: float
    bound: Optional[float]  # the distribution's bound (uniform, truncated normal), None when unbounded
    absmax: float
    kurtosis: float
    expected_kurtosis: float
    bias: str = "none"  # "none", "zeros", "in init range"

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class LayerStats:
    """Everything the weight rules read about one node's weights."""

    node: str
    op: str
    role: str  # the node's op for learnable layers, "batchnorm", or "other"
    arrays: dict = field(default_factory=dict)  # weight name -> ArrayStats
    params: int = 0  # values held
    kernel: Optional[str] = None  # the main weight's name
    layout: str = "last"  # units axis of the kernel: "last" (Keras) or "first" (PyTorch, ONNX)
    units: int = 0
    fan_in: int = 0
    fan_out: int = 0
    unit_dim: int = 0  # values per unit
    unit_norms: Optional[np.ndarray] = None  # L2 norm of each unit's kernel
    dead_units: list = field(default_factory=list)  # indices of dead units
    duplicate_pairs: list = field(default_factory=list)  # (i, j, cosine), i < j
    duplicates_compared: int = 0  # how many units were compared for duplicates
    gamma: Optional[np.ndarray] = None  # BatchNorm scale, per channel
    beta: Optional[np.ndarray] = None
    moving_mean: Optional[np.ndarray] = None
    moving_variance: Optional[np.ndarray] = None
    epsilon: Optional[float] = None
    init: Optional[InitMatch] = None  # the initializer the kernel still matches (None: moved, or unknown)
    init_checked: bool = False  # whether init-likeness could be judged
    bn_at_init: bool = False  # BatchNorm with γ = 1 and β = 0 exactly
    extra: dict = field(default_factory=dict)  # registered analyses: name -> value

    def __getitem__(self, name: str):
        return self.extra[name]

    @property
    def nonfinite(self) -> dict:
        """``{weight name: (NaN count, Inf count)}`` of the arrays that hold any."""
        return {k: (a.nan, a.inf) for k, a in self.arrays.items() if a.nan or a.inf}

    @property
    def zero_kernel(self) -> bool:
        """Every unit's kernel (of at least two) is exactly zero, and no value is NaN/Inf."""
        norms = self.unit_norms
        return norms is not None and len(norms) >= 2 and not self.nonfinite and not bool((norms != 0).any())

    @property
    def kernel_stats(self) -> Optional[ArrayStats]:
        return self.arrays.get(self.kernel) if self.kernel else None

    @property
    def scale(self) -> Optional[float]:
        """RMS of the kernel × √fan_in: about the gain of the layer (He init: √2, Glorot about 1,
        PyTorch's default 1/√3); None without a kernel."""
        k = self.kernel_stats
        if k is None or not self.fan_in or not k.size or k.nan + k.inf == k.size:
            return None
        return k.rms * math.sqrt(self.fan_in)

    def to_dict(self) -> dict:
        d = {"node": self.node, "op": self.op, "role": self.role, "params": self.params, "kernel": self.kernel,
             "units": self.units, "fan_in": self.fan_in, "fan_out": self.fan_out, "scale": self.scale,
             "dead_units": list(self.dead_units), "duplicate_pairs": [list(p) for p in self.duplicate_pairs[:50]],
             "arrays": {k: a.to_dict() for k, a in self.arrays.items()},
             "init": self.init.to_dict() if self.init else None}
        extra = {}
        for k, v in self.extra.items():
            extra[k] = v.to_dict() if hasattr(v, "to_dict") else v
        d["extra"] = extra
        return d


# -- registered per-layer analyses ------------------------------------------------------------

#: name -> fn(node: Node | None, arrays: dict[str, ndarray]) -> value (anything; None: nothing to say)
LAYER_ANALYSES: dict = {}


def register_layer_analysis(name: str, fn: Optional[Callable] = None, *, replace: bool = False):
    """Run ``fn(node, arrays)`` on every layer in the weights pass; its result lands in
    ``LayerStats.extra[name]``. ``node`` is the graph's :class:`Node` (None when the store has
    no graph entry for it); ``arrays`` the layer's ``{weight name: ndarray}`` in the framework's
    own layout and naming (read-only: do not modify them). An exception in ``fn`` is recorded as
    ``extra[name] = None`` and in :attr:`WeightStore.errors`, never raised. Usable as a decorator."""
    def add(f):
        if name in LAYER_ANALYSES and LAYER_ANALYSES[name] is not f and not replace:
            raise ValueError(f"a layer analysis named {name!r} is already registered")
        LAYER_ANALYSES[name] = f
        return f

    return add(fn) if fn is not None else add


# -- the store --------------------------------------------------------------------------------

class WeightStore:
    """The weights of one model, read lazily, layer by layer.

    ``layers()`` streams ``(node name, arrays)`` from the source (each call reads it again;
    rules should read :meth:`stats` instead); ``stats()`` / iteration / ``store[node]`` give
    the :class:`LayerStats` of the one streaming pass, computed on first use and cached."""

    def __init__(self, source, graph: Optional[Graph] = None, *, what: str = "", reader: Optional[Callable] = None):
        self.source = source
        self.graph = graph
        self.what = what or (str(source) if isinstance(source, (str, os.PathLike)) else type(source).__name__)
        self._reader = reader
        self._stats: Optional[dict] = None
        self.error: Optional[str] = None  # why the weights could not be read (then stats() is empty)
        self.errors: list = []  # registered analyses that failed: "name on node: message"
        self.computed: set = set()  # registered analyses run in the pass

    # -- constructors ------------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, arrays: dict, graph: Optional[Graph] = None, what: str = "arrays") -> "WeightStore":
        """A store over ``{node: {weight name: ndarray}}`` already in memory (tests, examples)."""
        items = list(arrays.items())
        return cls(arrays, graph, what=what, reader=lambda: iter(items))

    # -- reading -----------------------------------------------------------------------------
    def layers(self) -> Iterator[tuple]:
        """``(node name, {weight name: ndarray})`` one layer at a time, in the source's order."""
        if self._reader is not None:
            yield from self._reader()
            return
        from ..weights import iter_weights

        yield from iter_weights(self.source, self.graph)

    def stats(self) -> dict:
        """``{node name: LayerStats}`` in graph order (one pass, cached). A source whose weights
        cannot be read gives ``{}`` and says why in :attr:`error`."""
        if self._stats is None:
            self._stats = self._pass(dict(LAYER_ANALYSES))
        return self._stats

    def _pass(self, analyses: dict) -> dict:
        from ..errors import ModelLintError

        out: dict = {}
        try:
            for name, arrays in self.layers():
                node = self.graph.nodes.get(name) if self.graph is not None else None
                st = layer_stats(node, arrays, name=name, framework=self._framework())
                self._run_analyses(st, node, arrays, analyses)
                out[name] = st
                del arrays
        except ModelLintError as exc:
            self.error = str(exc)
            return {}
        self.computed |= set(analyses)
        if self.graph is not None:
            order = {n: i for i, n in enumerate(self.graph.nodes)}
            out = dict(sorted(out.items(), key=lambda kv: order.get(kv[0], len(order))))
        return out

    def _run_analyses(self, st, node, arrays, analyses):
        for aname, fn in analyses.items():
            try:
                st.extra[aname] = fn(node, arrays)
            except Exception as exc:  # an analysis bug must not lose the other statistics
                st.extra[aname] = None
                self.errors.append(f"{aname} on {st.node}: {type(exc).__name__}: {exc}")

    def analysis(self, name: str) -> dict:
        """``{node: value}`` of a registered analysis (one more pass when it was registered
        after the statistics were computed)."""
        stats = self.stats()
        if name not in self.computed and name in LAYER_ANALYSES and stats:
            fn = {name: LAYER_ANALYSES[name]}
            for lname, arrays in self.layers():
                if lname in stats:
                    node = self.graph.nodes.get(lname) if self.graph is not None else None
                    self._run_analyses(stats[lname], node, arrays, fn)
            self.computed.add(name)
        return {n: st.extra.get(name) for n, st in stats.items()}

    def _framework(self) -> str:
        if self.graph is not None and self.graph.framework:
            return self.graph.framework
        return ""

    # -- mapping protocol ----------------------------------------------------------------------
    def __iter__(self) -> Iterator[LayerStats]:
        return iter(self.stats().values())

    def __getitem__(self, node: str) -> LayerStats:
        return self.stats()[node]

    def __contains__(self, node: str) -> bool:
        return node in self.stats()

    def __len__(self) -> int:
        return len(self.stats())

    @property
    def empty(self) -> bool:
        """No weights (none in the source, or unreadable: see :attr:`error`)."""
        return not self.stats()

    @property
    def total(self) -> int:
        return sum(st.params for st in self.stats().values())

    def to_dict(self) -> dict:
        return {"source": self.what, "error": self.error, "layers": [st.to_dict() for st in self]}

    def __repr__(self) -> str:
        state = "not read" if self._stats is None else f"{len(self._stats)} layers"
        return f"<WeightStore {self.what}: {state}>"


#: Model files that may hold weights, by suffix.
WEIGHT_SUFFIXES = (".h5", ".hdf5", ".keras", ".onnx")
STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".tar", ".safetensors")


def weights_for(source, graph: Graph, weights=None) -> Optional[WeightStore]:
    """The :class:`WeightStore` of a model, or None when its source cannot hold weights.

    ``source`` is what the graph was read from (a path, a code target, a live model);
    ``weights`` a state_dict file (``--weights FILE``: ``torch.save`` or ``.safetensors``) for
    a code target or a PyTorch source without weights; a ``.pt2`` holds its own. Nothing is read here: the store reads on first use."""
    from ..adapters import is_keras_model, is_torch_module

    if weights is not None:
        return WeightStore(weights, graph, what=str(weights))
    if isinstance(source, (str, os.PathLike)):
        suffix = os.path.splitext(str(source))[1].lower()
        if suffix in WEIGHT_SUFFIXES:
            return WeightStore(source, graph)
        if graph.source_format == "pt2" or suffix == ".pt2":   # the exported program's state_dict
            return WeightStore(source, graph)
        if suffix in STATE_DICT_SUFFIXES and graph.source_format != "torchscript":
            return WeightStore(source, graph)
        return None
    if is_keras_model(source) or is_torch_module(source):
        return WeightStore(source, graph, what=f"live {type(source).__name__}")
    return None


# -- the per-layer statistics ----------------------------------------------------------------

def array_stats(a: np.ndarray) -> ArrayStats:
    """Moments of ``a`` over its finite values, in chunks of :data:`CHUNK` values (float64 sums)."""
    flat = a.reshape(-1)
    st = ArrayStats(shape=tuple(a.shape), dtype=str(a.dtype), size=int(a.size))
    if a.size == 0:
        return st
    if a.dtype.kind not in "fc":
        st.zeros = int(np.count_nonzero(flat == 0))
        st.min, st.max = float(flat.min()), float(flat.max())
        st.mean = float(flat.mean(dtype=np.float64))
        st.std = float(flat.std(dtype=np.float64))
        return st
    n = 0
    s1 = 0.0
    lo, hi = math.inf, -math.inf
    for i in range(0, flat.size, CHUNK):
        c = flat[i:i + CHUNK]
        fin = np.isfinite(c)
        bad = c.size - int(np.count_nonzero(fin))
        if bad:
            st.nan += int(np.count_nonzero(np.isnan(c)))
            st.inf += bad - int(np.count_nonzero(np.isnan(c)))
            c = c[fin]
        if not c.size:
            continue
        n += c.size
        s1 += float(c.sum(dtype=np.float64))
        st.zeros += int(c.size - np.count_nonzero(c))
        lo, hi = min(lo, float(c.min())), max(hi, float(c.max()))
    if not n:
        return st
    mean = s1 / n
    s2 = s4 = 0.0
    for i in range(0, flat.size, CHUNK):
        c = flat[i:i + CHUNK]
        if st.nan or st.inf:
            c = c[np.isfinite(c)]
        d = c.astype(np.float64) - mean
        d2 = d * d
        s2 += float(d2.sum())
        s4 += float((d2 * d2).sum())
    var = s2 / n
    st.mean, st.std, st.min, st.max = mean, math.sqrt(var), lo, hi
    st.kurtosis = (s4 / n) / (var * var) - 3.0 if var > 0 else 0.0
    return st


def _role(node: Optional[Node]) -> str:
    if node is None:
        return "other"
    if node.op in _UNIT_ROLES or node.op in ("embedding", "rnn", "attention", "batchnorm"):
        return node.op
    return "other"


def _pick(arrays: dict, *names) -> Optional[str]:
    for n in names:
        if n in arrays:
            return n
    for n in names:  # ONNX and nested names: "...running_var", "bn/moving_variance"
        for k in arrays:
            if k.rsplit("/", 1)[-1].rsplit(".", 1)[-1].split(":")[0] == n:
                return k
    return None


def _kernel_name(arrays: dict, role: str) -> Optional[str]:
    name = _pick(arrays, *(("pointwise_kernel",) if role == "separable_conv" else ()), *_KERNEL_NAMES)
    if name is not None and arrays[name].ndim >= 2:
        return name
    cands = [k for k, a in arrays.items() if a.ndim >= 2 and a.dtype.kind == "f"]
    return max(cands, key=lambda k: arrays[k].size) if cands else None


def _units_of(node: Optional[Node]) -> Optional[int]:
    if node is None:
        return None
    for key in ("filters", "units", "out_channels", "out_features"):
        v = node.attrs.get(key)
        if isinstance(v, int) and v > 0:
            return v
    shape = node.output_shape if node.output_shapes else None
    if shape and isinstance(shape[-1], int):
        return shape[-1]
    return None


def _layout(node: Optional[Node], arr: np.ndarray, framework: str, role: str, kname: str) -> str:
    """Which end of the kernel's shape holds the units: ``"last"`` (Keras: (kh, kw, in, out),
    (in, out)) or ``"first"`` (PyTorch/ONNX: (out, in, kh, kw), (out, in))."""
    default = "last" if framework == "keras" or kname in ("kernel", "pointwise_kernel", "depthwise_kernel") \
        else "first"
    if role == "conv_transpose" or role == "depthwise_conv" and default == "last":
        return default
    units = _units_of(node)
    if units and arr.ndim >= 2:
        first, last = arr.shape[0] == units, arr.shape[-1] == units
        if first and not last:
            return "first"
        if last and not first:
            return "last"
    return default


def _fans(shape: tuple, layout: str) -> tuple:
    """Fan-in and fan-out as the framework's own initializers compute them."""
    if len(shape) < 2:
        return (int(shape[0]) if shape else 1), (int(shape[0]) if shape else 1)
    if layout == "last":   # Keras: receptive field = all but the last two axes
        rf = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        return int(shape[-2]) * rf, int(shape[-1]) * rf
    rf = int(np.prod(shape[2:])) if len(shape) > 2 else 1   # PyTorch: (out, in, *kernel)
    return int(shape[1]) * rf, int(shape[0]) * rf


def _unit_matrix(arr: np.ndarray, layout: str, role: str) -> np.ndarray:
    """``(units, values per unit)``; a view where the layout allows, else one copy."""
    if role == "conv_transpose":
        # Keras (kh, kw, out, in); PyTorch (in, out/groups, kh, kw): units on axis -2 / 1
        axis = -2 if layout == "last" else 1
        return np.moveaxis(arr, axis, 0).reshape(arr.shape[axis], -1)
    if layout == "last":
        if role == "depthwise_conv" and arr.ndim >= 3:   # (kh, kw, in, multiplier): in × multiplier units
            return arr.reshape(-1, arr.shape[-2] * arr.shape[-1]).T
        return arr.reshape(-1, arr.shape[-1]).T
    return arr.reshape(arr.shape[0], -1)


def layer_stats(node: Optional[Node], arrays: dict, name: str = "", framework: str = "") -> LayerStats:
    """The :class:`LayerStats` of one layer's arrays (a pure function of node and arrays)."""
    role = _role(node)
    st = LayerStats(node=node.name if node is not None else name, op=node.op if node is not None else "",
                    role=role)
    for k, a in arrays.items():
        a = np.asarray(a)
        st.arrays[k] = array_stats(a)
        st.params += int(a.size)
    if role == "batchnorm":
        _bn_stats(st, node, arrays)
        return st
    if role == "other":
        return st
    kname = _kernel_name(arrays, role)
    if kname is None:
        return st
    kernel = np.asarray(arrays[kname])
    st.kernel = kname
    st.layout = _layout(node, kernel, framework, role, kname)
    st.fan_in, st.fan_out = _fans(kernel.shape, st.layout)
    if role in _UNIT_ROLES and kernel.dtype.kind == "f":
        _unit_stats(st, kernel, role)
    st.init_checked, st.init = _init_match(st, arrays, kernel, framework)
    return st


def _unit_stats(st: LayerStats, kernel: np.ndarray, role: str) -> None:
    F = _unit_matrix(kernel, st.layout, role)
    st.units, st.unit_dim = int(F.shape[0]), int(F.shape[1])
    if not st.units or not st.unit_dim:
        return
    if st.arrays[st.kernel].nan or st.arrays[st.kernel].inf:
        F = np.where(np.isfinite(F), F, 0)
    norms = np.sqrt(np.einsum("ij,ij->i", F, F).astype(np.float64))   # in F's dtype: no float64 copy of F
    st.unit_norms = norms
    med = float(np.median(norms))
    st.dead_units = [int(i) for i in np.nonzero((norms == 0) | (norms < DEAD_FRACTION * med))[0]]
    if st.unit_dim < DUPLICATE_MIN_DIM or st.units < 2:
        return
    k = min(st.units, DUPLICATE_MAX_UNITS, max(2, int(math.sqrt(DUPLICATE_MAX_WORK / st.unit_dim))))
    st.duplicates_compared = k
    alive = np.ones(k, dtype=bool)
    alive[[i for i in st.dead_units if i < k]] = False
    idx = np.nonzero(alive)[0]
    if len(idx) < 2:
        return
    sub = np.asarray(F[idx], dtype=np.float32)   # the one working copy
    sub /= norms[idx].astype(np.float32)[:, None]
    pairs = []
    block = 256   # cosines a block of rows at a time: (256 × units) floats beside the one copy
    for start in range(0, len(idx), block):
        G = sub[start:start + block] @ sub.T
        rows, cols = np.nonzero(G >= DUPLICATE_COSINE)
        for r, c in zip(rows.tolist(), cols.tolist()):
            if c > start + r and len(pairs) < 1000:
                pairs.append((int(idx[start + r]), int(idx[c]), round(float(G[r, c]), 4)))
    st.duplicate_pairs = pairs


def _bn_stats(st: LayerStats, node: Optional[Node], arrays: dict) -> None:
    g = _pick(arrays, "gamma", "weight", "scale")
    b = _pick(arrays, "beta", "bias")
    m = _pick(arrays, "moving_mean", "running_mean", "mean")
    v = _pick(arrays, "moving_variance", "running_var", "var", "variance")
    as1d = lambda k: np.asarray(arrays[k], dtype=np.float64).reshape(-1) if k is not None else None  # noqa: E731
    st.gamma, st.beta, st.moving_mean, st.moving_variance = as1d(g), as1d(b), as1d(m), as1d(v)
    st.units = int(next((x.size for x in (st.gamma, st.moving_variance, st.beta) if x is not None), 0))
    eps = node.attrs.get("epsilon", node.attrs.get("eps")) if node is not None else None
    st.epsilon = float(eps) if isinstance(eps, (int, float)) else None
    st.init_checked = st.gamma is not None and st.beta is not None
    st.bn_at_init = bool(st.init_checked and st.gamma.size and np.all(st.gamma == 1) and np.all(st.beta == 0))


# -- init-likeness ------------------------------------------------------------------------------

_K_UNIFORM, _K_TRUNC, _K_NORMAL = -1.2, -0.6356, 0.0   # excess kurtosis; truncated normal at ±2σ
_TRUNC = 0.87962566103423978                           # std of a standard normal truncated at ±2


def _candidates(fan_in: int, fan_out: int, layout: str, role: str):
    """``(name, std, bound, kurtosis, bias_bound)``: initializers of the framework whose layout
    the kernel has. Keras' normal initializers are truncated at 2 (scaled) std; PyTorch's are not."""
    fi, fo = max(fan_in, 1), max(fan_out, 1)
    out = []
    if layout == "last":
        for name, scale, n in (("glorot", 1.0, (fi + fo) / 2), ("he", 2.0, fi), ("lecun", 1.0, fi)):
            s = math.sqrt(scale / n)
            out.append((f"{name}_uniform", s, s * math.sqrt(3), _K_UNIFORM, 0.0))
            out.append((f"{name}_normal", s, 2 * s / _TRUNC, _K_TRUNC, 0.0))
        if role == "embedding":
            out.append(("random_uniform(-0.05, 0.05)", 0.05 / math.sqrt(3), 0.05, _K_UNIFORM, 0.0))
    else:
        b = 1 / math.sqrt(fi)
        out.append(("torch_default (kaiming_uniform, a=√5)", b / math.sqrt(3), b, _K_UNIFORM, b))
        for name, s in (("kaiming_normal (fan_in)", math.sqrt(2 / fi)), ("kaiming_normal (fan_out)", math.sqrt(2 / fo)),
                        ("xavier_normal", math.sqrt(2 / (fi + fo)))):
            out.append((name, s, None, _K_NORMAL, 0.0))
        out.append(("kaiming_uniform (relu)", math.sqrt(2 / fi), math.sqrt(6 / fi), _K_UNIFORM, b))
        out.append(("xavier_uniform", math.sqrt(2 / (fi + fo)), math.sqrt(6 / (fi + fo)), _K_UNIFORM, 0.0))
        if role == "embedding":
            out.append(("normal(0, 1)", 1.0, None, _K_NORMAL, 0.0))
    return out


def _init_match(st: LayerStats, arrays: dict, kernel: np.ndarray, framework: str) -> tuple:
    """``(checked, InitMatch or None)``: does the kernel still look drawn from an initializer?

    A match needs, for ``n`` kernel values: the mean within 5 standard errors of 0; the std
    within 5 standard errors (+1 %) of the initializer's; the excess kurtosis within
    5·√(24/n) + 0.05 of the distribution's; for bounded distributions every value within the
    bound (+0.001 %) and the largest within 50/n of it (training moves values past the
    bound within a few steps); and the bias all zeros or, for PyTorch's default, within its bound."""
    k = st.arrays[st.kernel]
    n = k.size
    if n < INIT_MIN_SIZE or k.nan or k.inf or k.std == 0:
        return False, None
    bias_name = _pick(arrays, "bias", "b") if st.role != "embedding" else None
    bias = np.asarray(arrays[bias_name]) if bias_name is not None and np.asarray(arrays[bias_name]).ndim == 1 else None
    for name, std, bound, kurt, bias_bound in _candidates(st.fan_in, st.fan_out, st.layout, st.role):
        se_std = math.sqrt(max(kurt + 2, 0.2) / (4 * n))
        if abs(k.mean) > 5 * std / math.sqrt(n) + 1e-12:
            continue
        if abs(k.std / std - 1) > 5 * se_std + 0.01:
            continue
        if abs(k.kurtosis - kurt) > 5 * math.sqrt(24 / n) + 0.05:
            continue
        if bound is not None and not (bound * (1 - 50 / n) <= k.absmax <= bound * (1 + 1e-5)):
            continue
        how = "none"
        if bias is not None and bias.size:
            babs = float(np.max(np.abs(bias))) if np.all(np.isfinite(bias)) else math.inf
            if babs == 0:
                how = "zeros"
            elif bias_bound and babs <= bias_bound * (1 + 1e-5):
                how = "in init range"
            else:
                continue
        return True, InitMatch(initializer=name, expected_std=std, std=k.std, bound=bound, absmax=k.absmax,
                               kurtosis=k.kurtosis, expected_kurtosis=kurt, bias=how)
    return True, None


__all__ = ["WeightStore", "LayerStats", "ArrayStats", "InitMatch", "register_layer_analysis", "LAYER_ANALYSES",
           "layer_stats", "array_stats", "weights_for", "DEAD_FRACTION", "DUPLICATE_COSINE", "DUPLICATE_MAX_UNITS"]

"""Structured mutations of Keras model configs, in .json, .keras (zip) and .h5 (model_config).

Base configs: the seed CNN (Keras 3 Sequential, from examples/seed_cnn.keras), a small Keras 3
Functional model (tests/fixtures/fuzz/func.json), the seed's legacy .h5 model_config, and the
tf.keras 2.15 and Keras 1.2 dialects of tests/fixtures/legacy. Mutations: values replaced by
Infinity/NaN/-1/huge ints/strings/null/lists/deep nesting; keys dropped; layer names
duplicated; inbound indices out of range; unknown input_layers/output_layers; class_name
unknown or null; axis "a"; batch_shape "abc"; layer cycles; and a few heavy ones: 100k-deep
lists, 3,000 nested Sequentials, 5,000 layers, 5,000-digit numbers, duplicate JSON keys, BOMs,
lone surrogates and terminal escapes in names, and code that must never run (a Lambda's
marshalled bytecode, a custom layer's module that creates a marker when imported).
"""

from __future__ import annotations

import base64
import copy
import json
import marshal
import zipfile
from pathlib import Path

import h5py

from .corpus import EXAMPLES, FIXTURES, FUZZ_FIXTURES, Gen, file_case, write_h5, write_zip


class Raw:
    """A JSON literal written as is (NaN/Infinity spellings, numbers Python cannot print)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self):
        return f"Raw({self.text[:20]!r}{'...' if len(self.text) > 20 else ''})"


def deep_list(depth: int):
    return Raw("[" * depth + "]" * depth)


HOSTILE = [float("inf"), float("-inf"), float("nan"), -1, 0, -2 ** 31, 2 ** 63, 2 ** 64 + 1, 10 ** 30,
           Raw("1" + "0" * 400), Raw("1e999"), Raw("-1e999"), 1e-300, 1.5, "abc", "", "a", None, [], {}, True,
           [None] * 64, [-1, -1], [0, 0], [2 ** 40, 2 ** 40], "\u0000", "x" * 10000, {"class_name": None},
           deep_list(60), ["abc", "def"], [[1, 2], [3, 4]], "relu", "same", "channels_first", -0.0]

#: layer config keys worth corrupting
LAYER_KEYS = ("filters", "units", "kernel_size", "strides", "pool_size", "dilation_rate", "padding", "activation",
              "axis", "batch_shape", "batch_input_shape", "rate", "groups", "depth_multiplier", "data_format",
              "target_shape", "dims", "cropping", "size", "epsilon", "momentum", "use_bias", "trainable", "dtype",
              "name", "output_dim", "input_dim", "keepdims", "center", "scale", "return_sequences", "n",
              "input_shape", "shape")


# ---------------------------------------------------------------------------------------------
# JSON text
# ---------------------------------------------------------------------------------------------

def dumps(obj) -> str:
    raws = []

    def swap(o):
        if isinstance(o, Raw):
            raws.append(o.text)
            return f"\x00RAW{len(raws) - 1}\x00"
        if isinstance(o, dict):
            return {k: swap(v) for k, v in o.items()}
        if isinstance(o, list):
            return [swap(v) for v in o]
        return o

    text = json.dumps(swap(obj), allow_nan=True)
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00RAW{i}\x00"), raw, 1)
    return text


# ---------------------------------------------------------------------------------------------
# base configs
# ---------------------------------------------------------------------------------------------

def base_configs() -> dict:
    with zipfile.ZipFile(EXAMPLES / "seed_cnn.keras") as zf:
        seed = json.loads(zf.read("config.json"))
    with h5py.File(EXAMPLES / "seed_cnn.h5", "r") as f:
        seed_h5 = json.loads(f.attrs["model_config"])
    legacy = FIXTURES / "legacy"
    return {
        "seed": seed,
        "func": json.loads((FUZZ_FIXTURES / "func.json").read_text()),
        "seed_h5": seed_h5,
        "tf215": json.loads((legacy / "functional_tf215.json").read_text()),
        "keras12": json.loads((legacy / "functional_keras12.json").read_text()),
        "rnn": json.loads((legacy / "rnn_tf215.json").read_text()),
    }


def training_config() -> str:
    with h5py.File(FUZZ_FIXTURES / "func.h5", "r") as f:
        value = f.attrs.get("training_config")
        return value.decode() if isinstance(value, bytes) else str(value)


def layers_of(cfg) -> list:
    try:
        layers = cfg["config"]["layers"]
        return layers if isinstance(layers, list) else []
    except (KeyError, TypeError):
        return []


def nodes(obj, path=()):
    """(parent, key, value) of every node below obj."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield obj, k, v
            yield from nodes(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield obj, i, v
            yield from nodes(v, path + (i,))


def _history_lists(cfg):
    """Lists naming a producing layer: Keras 3 keras_history, Keras 2 inbound entries, input/output_layers."""
    out = []
    for parent, key, value in nodes(cfg):
        if key == "keras_history" and isinstance(value, list) and len(value) >= 3:
            out.append(value)
        elif key in ("inbound_nodes", "input_layers", "output_layers") and isinstance(value, list):
            for node in value:
                if isinstance(node, list) and node and isinstance(node[0], str) and len(node) >= 3:
                    out.append(node)
                elif isinstance(node, list):
                    for entry in node:
                        if isinstance(entry, list) and entry and isinstance(entry[0], str) and len(entry) >= 3:
                            out.append(entry)
    return out


# ---------------------------------------------------------------------------------------------
# mutations: (cfg, rng, ctx) -> description; cfg is mutated in place
# ---------------------------------------------------------------------------------------------

def m_value(cfg, rng, ctx):
    all_nodes = [(p, k) for p, k, _v in nodes(cfg)]
    parent, key = rng.choice(all_nodes)
    value = rng.choice(HOSTILE)
    parent[key] = copy.deepcopy(value)
    return f"[{key!r}] = {value!r}"[:200]


def m_key_value(cfg, rng, ctx):
    layers = layers_of(cfg)
    spots = [(layer["config"], k) for layer in layers if isinstance(layer, dict) and isinstance(layer.get("config"), dict)
             for k in layer["config"] if k in LAYER_KEYS]
    if not spots:
        return m_value(cfg, rng, ctx)
    conf, key = rng.choice(spots)
    value = rng.choice(HOSTILE)
    conf[key] = copy.deepcopy(value)
    return f"{conf.get('name', '?')!r}.{key} = {value!r}"[:200]


def m_drop_key(cfg, rng, ctx):
    dicts = [(p, k) for p, k, v in nodes(cfg) if isinstance(p, dict)]
    parent, key = rng.choice(dicts)
    del parent[key]
    return f"key {key!r} dropped"


def m_drop_structural(cfg, rng, ctx):
    layers = layers_of(cfg)
    choices = ["layers", "input_layers", "output_layers", "name", "config", "class_name"]
    key = rng.choice(choices)
    if key in ("layers", "input_layers", "output_layers", "name") and isinstance(cfg.get("config"), dict):
        cfg["config"].pop(key, None)
        return f"config.{key} dropped"
    if layers:
        layer = rng.choice(layers)
        if isinstance(layer, dict):
            layer.pop(rng.choice(["config", "class_name", "name", "inbound_nodes"]), None)
        return "a layer's key dropped"
    cfg.pop(key, None)
    return f"{key} dropped"


def m_dup_names(cfg, rng, ctx):
    layers = [l for l in layers_of(cfg) if isinstance(l, dict)]
    if len(layers) < 2:
        return m_value(cfg, rng, ctx)
    a, b = rng.sample(range(len(layers)), 2)
    name = layers[a].get("name") or layers[a].get("config", {}).get("name")
    layers[b]["name"] = name
    if isinstance(layers[b].get("config"), dict):
        layers[b]["config"]["name"] = name
    return f"layer {b} renamed to layer {a}'s name {name!r}"


def m_inbound_oob(cfg, rng, ctx):
    hist = _history_lists(cfg)
    if not hist:
        return m_value(cfg, rng, ctx)
    h = rng.choice(hist)
    i = rng.choice([1, 2])
    h[i] = rng.choice([99, -1, 2 ** 40, -(2 ** 63), "0", None, 1.5])
    return f"history {h[0]!r} index {i} = {h[i]!r}"


def m_unknown_io(cfg, rng, ctx):
    conf = cfg.get("config")
    if not isinstance(conf, dict):
        return m_value(cfg, rng, ctx)
    key = rng.choice(["input_layers", "output_layers"])
    value = rng.choice([[["ghost", 0, 0]], ["ghost", 0, 0], [["ghost", 5, 7]], [], "ghost", [[None, 0, 0]],
                        [[0, 0, 0]], [["image", 0, 99]]])
    conf[key] = copy.deepcopy(value)
    return f"{key} = {value!r}"


def m_class_name(cfg, rng, ctx):
    targets = [l for l in layers_of(cfg) if isinstance(l, dict)] + [cfg]
    t = rng.choice(targets)
    value = rng.choice(["NoSuchLayer", None, 7, "", "Functional", "Sequential", "Lambda", "__lambda__",
                        "TFOpLambda", "InputLayer", ["Dense"], "Dense"])
    t["class_name"] = value
    return f"class_name of {t.get('name', 'model')!r} = {value!r}"


def m_axis(cfg, rng, ctx):
    layers = [l for l in layers_of(cfg) if isinstance(l, dict) and isinstance(l.get("config"), dict)]
    if not layers:
        return m_value(cfg, rng, ctx)
    with_axis = [l for l in layers if "axis" in l["config"]] or layers
    layer = rng.choice(with_axis)
    value = rng.choice(["a", [1, "a"], 99, -99, [], None, 2 ** 63])
    layer["config"]["axis"] = value
    return f"{layer['config'].get('name')!r}.axis = {value!r}"


def m_batch_shape(cfg, rng, ctx):
    spots = [(p, k) for p, k, v in nodes(cfg) if k in ("batch_shape", "batch_input_shape", "shape", "input_shape")]
    value = rng.choice(["abc", [None, "abc", 3], [None, -5, 16, 3], [None, 0, 0, 3], [None, 2 ** 40, 2 ** 40, 3],
                        [], [None], [None] * 40, [None, 16.5, 16, 3], {"a": 1}, [None, [16], 16, 3],
                        [None, float("inf"), 16, 3], [None, float("nan"), 16, 3], Raw("[null, 1e999, 16, 3]")])
    if not spots:
        return m_value(cfg, rng, ctx)
    parent, key = rng.choice(spots)
    parent[key] = copy.deepcopy(value)
    return f"{key} = {value!r}"


def m_cycle(cfg, rng, ctx):
    """Make a layer consume a later layer's output (a cycle), or its own."""
    layers = [l for l in layers_of(cfg) if isinstance(l, dict)]
    hist_layers = [(i, l) for i, l in enumerate(layers) if _history_lists({"x": l.get("inbound_nodes")})]
    if len(hist_layers) < 2:
        return m_dup_names(cfg, rng, ctx)
    i, layer = rng.choice(hist_layers[:-1])
    later = [l for l in layers[i:] if isinstance(l, dict)]
    target = rng.choice(later)
    tname = target.get("name") or target.get("config", {}).get("name")
    for h in _history_lists({"x": layer.get("inbound_nodes")}):
        h[0] = tname
    return f"{layer.get('name')!r} now reads {tname!r} ({'itself' if target is layer else 'a later layer'})"


def m_swap_type(cfg, rng, ctx):
    layers = layers_of(cfg)
    if not layers:
        return m_value(cfg, rng, ctx)
    i = rng.randrange(len(layers))
    what = rng.choice(["config", "inbound_nodes", "layer"])
    value = rng.choice(["abc", 5, [], None, [[["x"]]], {"args": "x"}, [{"args": [{"class_name": "__keras_tensor__"}]}]])
    if what == "layer":
        layers[i] = copy.deepcopy(value)
    elif isinstance(layers[i], dict):
        layers[i][what] = copy.deepcopy(value)
    return f"layer {i} {what} = {value!r}"


MUTATIONS = {"value": (m_value, 100), "key_value": (m_key_value, 80), "drop_key": (m_drop_key, 30),
             "drop_structural": (m_drop_structural, 12), "dup_names": (m_dup_names, 15),
             "inbound_oob": (m_inbound_oob, 20), "unknown_io": (m_unknown_io, 15), "class_name": (m_class_name, 20),
             "axis": (m_axis, 8), "batch_shape": (m_batch_shape, 15), "cycle": (m_cycle, 12),
             "swap_type": (m_swap_type, 12)}


# ---------------------------------------------------------------------------------------------
# special cases (fixed count): text -> (description)
# ---------------------------------------------------------------------------------------------

def _dense(name, units=2):
    return {"class_name": "Dense", "config": {"name": name, "units": units, "activation": "linear"}}


def _seq(layers, name="s", build_input_shape=None):
    config = {"name": name, "layers": layers}
    if build_input_shape is not None:
        config["build_input_shape"] = build_input_shape
    return {"class_name": "Sequential", "config": config}


def _sp_deep_list(g, cid, bases):
    deep = copy.deepcopy(bases["seed"])
    layers_of(deep)[1]["config"]["axis"] = "\x00DEEP\x00"
    return (dumps(deep).replace(json.dumps("\x00DEEP\x00"), "[" * 100_000 + "]" * 100_000),
            "axis = a 100,000-deep list")


def _sp_deep_dict(g, cid, bases):
    deep = copy.deepcopy(bases["func"])
    deep["config"]["layers"][1]["config"]["kernel_size"] = "\x00DEEP\x00"
    return (dumps(deep).replace(json.dumps("\x00DEEP\x00"), '{"a":' * 50_000 + "1" + "}" * 50_000),
            "kernel_size = a 50,000-deep object")


def _sp_nested_sequential(g, cid, bases):
    inner = _seq([{"class_name": "InputLayer", "config": {"batch_shape": [None, 8], "name": "in"}}, _dense("d0")],
                 "s0")
    for i in range(1, 3000):
        inner = _seq([inner, _dense(f"d{i}")], f"s{i}")
    return dumps_deep(inner), "3,000 nested Sequentials"


def _sp_nested_sequential_300(g, cid, bases):
    """Deep enough for a recursive graph builder, shallow enough for json to parse (900 levels)."""
    inner = _seq([{"class_name": "InputLayer", "config": {"batch_shape": [None, 8], "name": "in"}}, _dense("d0")],
                 "s0")
    for i in range(1, 300):
        inner = _seq([inner, _dense(f"d{i}")], f"s{i}", build_input_shape=[None, 8])
    return dumps_deep(inner), "300 nested Sequentials (parseable JSON)"


def _sp_nested_functional_200(g, cid, bases):
    """Functional models nested 200 deep, each calling the one inside it."""
    def functional(name, inner):
        layers = [{"class_name": "InputLayer", "name": f"{name}_in",
                   "config": {"batch_shape": [None, 8], "name": f"{name}_in"}, "inbound_nodes": []}]
        last = f"{name}_in"
        if inner is not None:
            inner = dict(inner, name=inner["config"]["name"], inbound_nodes=[[[last, 0, 0, {}]]])
            layers.append(inner)
            last = inner["name"]
        layers.append(dict(_dense(f"{name}_d"), name=f"{name}_d", inbound_nodes=[[[last, 0, 0, {}]]]))
        return {"class_name": "Functional", "config": {"name": name, "layers": layers,
                                                        "input_layers": [[f"{name}_in", 0, 0]],
                                                        "output_layers": [[f"{name}_d", 0, 0]]}}
    model = None
    for i in range(200):
        model = functional(f"f{i}", model)
    return dumps_deep(model), "200 nested Functional models (parseable JSON)"


def _sp_layers_5000(g, cid, bases):
    big = _seq([{"class_name": "InputLayer", "config": {"batch_shape": [None, 8], "name": "in"}}]
               + [_dense(f"d{i}", 8) for i in range(5000)], "big")
    return json.dumps(big), "5,000 Dense layers in a Sequential"


def _sp_int_5000(g, cid, bases):
    return (dumps(bases["seed"]).replace('"filters": 32', '"filters": 1' + "0" * 5000, 1),
            "filters = a 5,000-digit integer (over Python's 4,300-digit limit)")


def _sp_int_4000(g, cid, bases):
    return (dumps(bases["func"]).replace('"units": 3', '"units": ' + "9" * 4000, 1),
            "units = a 4,000-digit integer (under Python's 4,300-digit limit)")


def _sp_duplicate_keys(g, cid, bases):
    return (dumps(bases["func"]).replace('"class_name": "Functional", ', '"class_name": "Functional", '
                                         '"class_name": "Bogus", "config": 5, ', 1),
            "duplicate JSON keys at the top")


def _sp_bom(g, cid, bases):
    return "\ufeff" + dumps(bases["seed"]), "UTF-8 byte-order mark"


def _sp_utf16(g, cid, bases):
    return dumps(bases["seed"]).encode("utf-16"), "UTF-16 encoded"


def _sp_invalid_utf8(g, cid, bases):
    return (dumps(bases["seed"]).replace('"name": "conv2d_1"', '"name": "conv\udcff"', 1)
            .encode("utf-8", "surrogateescape"), "invalid UTF-8 in a layer name")


def _sp_lone_surrogate(g, cid, bases):
    lone = copy.deepcopy(bases["func"])
    lone["config"]["layers"][1]["config"]["name"] = "stem\ud800"
    lone["config"]["layers"][1]["name"] = "stem\ud800"
    return json.dumps(lone), "a lone surrogate (\\ud800) in a layer name"


def _sp_terminal_escape(g, cid, bases):
    esc = copy.deepcopy(bases["seed"])
    layers_of(esc)[2]["config"]["name"] = "conv\x1b[2J\x1b]0;pwned\x07\nsecond line"
    return json.dumps(esc), "terminal escapes and a newline in a layer name"


def _sp_top_list(g, cid, bases):
    return "[" + dumps(bases["seed"]) + "]", "a list at the top level"


def _sp_top_null(g, cid, bases):
    return "null", "null at the top level"


def _sp_top_number(g, cid, bases):
    return "1e999", "Infinity at the top level"


def _sp_no_layers(g, cid, bases):
    empty = copy.deepcopy(bases["func"])
    empty["config"]["layers"] = []
    return json.dumps(empty), "Functional with no layers"


def _sp_lambda(g, cid, bases):
    marker = g.marker(cid)
    code = compile(f"open({str(marker)!r}, 'w').close()", "<lambda>", "exec")
    payload = base64.b64encode(marshal.dumps(code)).decode()
    lam = copy.deepcopy(bases["seed"])
    layers_of(lam).insert(2, {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
                              "config": {"name": "evil", "trainable": True,
                                         "function": {"class_name": "__lambda__",
                                                      "config": {"code": payload, "defaults": None, "closure": None}},
                                         "arguments": {}}})
    return json.dumps(lam), "a Keras 3 Lambda whose bytecode creates a marker", [marker]


def _sp_lambda_keras2(g, cid, bases):
    marker = g.marker(cid)
    code = compile(f"open({str(marker)!r}, 'w').close()", "<lambda>", "exec")
    lam = copy.deepcopy(bases["keras12"])
    layers_of(lam).insert(2, {"class_name": "Lambda", "name": "evil2", "inbound_nodes": [[["input_1", 0, 0]]],
                              "config": {"name": "evil2",
                                         "function": [base64.b64encode(marshal.dumps(code)).decode(), None, None],
                                         "function_type": "lambda", "output_shape": None, "arguments": {}}})
    return json.dumps(lam), "a Keras 2 Lambda (function, function_type) whose bytecode creates a marker", [marker]


def _sp_custom_module(g, cid, bases):
    marker = g.marker(cid)
    modname = "fuzz_evil_" + cid.rsplit("-", 1)[-1]
    custom = copy.deepcopy(bases["func"])
    layer = custom["config"]["layers"][2]
    layer.update({"module": modname, "class_name": "Evil", "registered_name": f"{modname}>Evil"})
    files = {f"{modname}.py": f"open({str(marker)!r}, 'w').close()\nclass Evil: pass\n".encode()}
    return (json.dumps(custom), f"a custom layer whose module ({modname}.py, next to the model) creates a marker "
            "when imported", [marker], files)


SPECIALS = {"deep_list_100k": _sp_deep_list, "deep_dict_50k": _sp_deep_dict,
            "nested_sequential_3000": _sp_nested_sequential, "nested_sequential_300": _sp_nested_sequential_300,
            "nested_functional_200": _sp_nested_functional_200, "layers_5000": _sp_layers_5000,
            "int_5000_digits": _sp_int_5000, "int_4000_digits": _sp_int_4000, "duplicate_keys": _sp_duplicate_keys,
            "bom_utf8": _sp_bom, "utf16": _sp_utf16, "invalid_utf8": _sp_invalid_utf8,
            "lone_surrogate": _sp_lone_surrogate, "terminal_escape": _sp_terminal_escape, "top_list": _sp_top_list,
            "top_null": _sp_top_null, "top_number": _sp_top_number, "no_layers": _sp_no_layers,
            "lambda_bytecode": _sp_lambda, "lambda_bytecode_keras2": _sp_lambda_keras2,
            "custom_module_import": _sp_custom_module}


def dumps_deep(obj) -> str:
    """json.dumps of a deeply nested object (raises the recursion limit while writing)."""
    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 100_000))
    try:
        return json.dumps(obj)
    finally:
        sys.setrecursionlimit(old)


# ---------------------------------------------------------------------------------------------
# containers
# ---------------------------------------------------------------------------------------------

def write_container(path: Path, kind: str, text, training: str) -> Path:
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if kind == "json":
        path.write_bytes(data)
    elif kind == "keras":
        meta = json.dumps({"keras_version": "3.15.1", "date_saved": "2025-01-01@00:00:00"}).encode()
        write_zip(path, [("metadata.json", meta), ("config.json", data, zipfile.ZIP_DEFLATED)])
    else:
        try:
            text_attr = data.decode("utf-8")
            attrs = {"model_config": text_attr, "keras_version": "3.15.1", "backend": "tensorflow"}
        except UnicodeDecodeError:
            import numpy as np
            attrs = {"model_config": np.void(data), "keras_version": "3.15.1"}
        if training:
            attrs["training_config"] = training
        write_h5(path, attrs)
    return path


KINDS = ("json", "keras", "h5")


def _cmd(rng) -> tuple:
    if rng.random() < 0.5:
        return "summary", (["--format", "json"] if rng.random() < 0.3 else [])
    return "check", (["--format", rng.choice(["json", "sarif", "github", "text"])] if rng.random() < 0.5 else [])


def cases(g: Gen) -> list:
    bases = base_configs()
    training = training_config()
    weights = {"seed": 3, "func": 3, "seed_h5": 2, "tf215": 1, "keras12": 2, "rnn": 1}
    out = []
    names = list(weights)
    for mname, (fn, count) in MUTATIONS.items():
        for i in range(g.n(count)):
            cid = f"keras_config/{mname}/{i:03d}"
            rng = g.rng(cid)
            bname = rng.choices(names, weights=[weights[n] for n in names])[0]
            cfg = copy.deepcopy(bases[bname])
            what = [fn(cfg, rng, None)]
            if rng.random() < 0.25:  # sometimes two mutations
                what.append(rng.choice([m for m, _c in MUTATIONS.values()])(cfg, rng, None))
            kind = KINDS[i % 3]
            path = write_container(g.dir(cid) / f"model.{kind}", kind, dumps(cfg), training if kind == "h5" else "")
            cmd, extra = _cmd(rng)
            if kind == "json" and rng.random() < 0.25:  # the --config route: a weights-only .h5 + this JSON
                wfile = write_h5(path.parent / "weights.h5", {"layer_names": [b"conv2d_1", b"dense_1"]})
                case = file_case(g, "keras_config", cid, wfile, cmd=cmd, extra=extra + ["--config", str(path)],
                                 note=f"weights-only .h5 with --config; {bname}: " + "; ".join(what))
                case.names += [str(path), path.name]
                out.append(case)
                continue
            out.append(file_case(g, "keras_config", cid, path, cmd=cmd, extra=extra,
                                 note=f"{bname}: " + "; ".join(what)))
    for sname, fn in SPECIALS.items():
        for kind in KINDS:
            cid = f"keras_config/special/{sname}-{kind}"
            made = tuple(fn(g, cid, bases))
            text, what = made[0], made[1]
            markers = made[2] if len(made) > 2 else []
            files = made[3] if len(made) > 3 else {}
            folder = g.dir(cid)
            for fname, content in files.items():
                (folder / fname).write_bytes(content)
            path = write_container(folder / f"model.{kind}", kind, text, training if kind == "h5" else "")
            cmd, extra = _cmd(g.rng(cid))
            out.append(file_case(g, "keras_config", cid, path, cmd=cmd, extra=extra, note=what, markers=markers,
                                 sys_path=[str(folder)] if files else []))
    return out

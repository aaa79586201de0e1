#!/usr/bin/env python3
"""Generate oracle fixtures for every model in ``keras.applications``.

For each application constructor exported by ``keras.applications`` (found
by inspecting the module, not from a hard-coded list), this script:

1. builds the model with ``weights=None`` and otherwise default arguments
   (``include_top=True``, 1000 classes, default input size) -- nothing is
   ever downloaded;
2. saves it with ``model.save`` to a temporary directory both as ``.keras``
   and as legacy ``.h5``, then extracts ``config.json`` from the ``.keras``
   zip and the root attribute ``model_config`` from the ``.h5`` file;
3. records the *truth as reported by Keras itself*: ``model.count_params()``,
   the summed sizes of ``model.trainable_weights`` and
   ``model.non_trainable_weights``, and for every layer of ``model.layers``
   (in order) its name, class name and output shape(s) taken from
   ``layer.output.shape`` (``None`` for the batch dimension; a list of
   shapes when a layer has several outputs);
4. writes ``tests/fixtures/keras_apps/<ConstructorName>.json.gz`` (gzip
   level 9, compact JSON, mtime 0 so reruns are byte-identical) containing::

       {"model": ..., "keras_version": ..., "backend": ...,
        "keras_config": <parsed config.json>,
        "h5_model_config": <parsed model_config>,
        "expected": {"total": ..., "trainable": ..., "non_trainable": ...,
                     "layers": [{"name", "class_name", "output_shape"}, ...],
                     "operations": [same, for every model.operations entry]}}

   ``operations`` is a superset of ``layers``: Keras 3 functional models
   also serialize raw ops such as ``keras.ops.add`` (not Layers, so not in
   ``model.layers``) as entries of ``config["layers"]``.

and finally rewrites ``tests/fixtures/keras_apps/README.md``.

The fixtures are oracles for modellint's tests: counts and shapes come from
Keras, never from modellint.  Temporary files are deleted after each model.

Usage (needs a Python with Keras 3 + a backend + h5py installed; it is run
by hand, not in CI)::

    TF_CPP_MIN_LOG_LEVEL=3 python tools/make_keras_app_fixtures.py
    python tools/make_keras_app_fixtures.py --only ResNet50 VGG16
    python tools/make_keras_app_fixtures.py --skip-existing

Rerunning is idempotent: fixtures are regenerated deterministically
(``keras.backend.clear_session()`` before each build resets auto-generated
layer names) and written atomically.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import inspect
import io
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "keras_apps"
SCRIPT_REL = "tools/make_keras_app_fixtures.py"


def discover_constructors(apps) -> list[str]:
    """Return names of the model constructors exported by keras.applications.

    Submodules (``resnet``, ``imagenet_utils`` ...) are skipped; what remains
    are public callables whose signature accepts ``weights``.
    """
    names = []
    for name in sorted(dir(apps)):
        if name.startswith("_"):
            continue
        obj = getattr(apps, name)
        if inspect.ismodule(obj) or not callable(obj):
            continue
        try:
            params = inspect.signature(obj).parameters
        except (TypeError, ValueError):
            continue
        if "weights" in params:
            names.append(name)
    return names


def _shape(shape) -> list:
    return [None if d is None else int(d) for d in shape]


def output_shape(layer):
    """Output shape(s) of ``layer`` from its (first-call) KerasTensor output."""
    return output_shape_of(layer.output)


def output_shape_of(t):
    if hasattr(t, "shape"):
        return _shape(t.shape)
    if isinstance(t, dict):
        return {k: output_shape_of(v) for k, v in t.items()}
    return [output_shape_of(x) for x in t]


def canonicalize_shared_ids(config):
    """Renumber ``shared_object_id`` values 1, 2, ... by first appearance.

    Keras' ``.keras`` serializer tags objects shared between layers (e.g.
    one ``DTypePolicy`` used by many layers) with ``shared_object_id`` set
    to the Python ``id()`` of the object, which changes on every run.  The
    renumbering keeps equal ids equal (the only property the loader uses)
    and makes fixtures reproducible.  Returns the number of distinct ids.
    """
    mapping: dict = {}

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "shared_object_id" and isinstance(value, int):
                    node[key] = mapping.setdefault(value, len(mapping) + 1)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(config)
    return len(mapping)


def n_weights(weights) -> int:
    total = 0
    for w in weights:
        size = 1
        for d in w.shape:
            size *= int(d)
        total += size
    return total


def build_fixture(apps, name: str, tmp: Path) -> dict:
    import h5py
    import keras

    keras.backend.clear_session()
    model = getattr(apps, name)(weights=None)

    keras_path = tmp / f"{name}.keras"
    h5_path = tmp / f"{name}.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy-HDF5 deprecation notice
        model.save(keras_path)
        model.save(h5_path)

    with zipfile.ZipFile(keras_path) as zf:
        keras_config = json.loads(zf.read("config.json").decode("utf-8"))
    with h5py.File(h5_path, "r") as f:
        raw = f.attrs["model_config"]
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    h5_config = json.loads(raw)
    canonicalize_shared_ids(keras_config)
    canonicalize_shared_ids(h5_config)

    trainable = n_weights(model.trainable_weights)
    non_trainable = n_weights(model.non_trainable_weights)
    total = int(model.count_params())
    if total != trainable + non_trainable:
        raise AssertionError(
            f"{name}: count_params {total} != {trainable} + {non_trainable}"
        )
    layers = [
        {
            "name": layer.name,
            "class_name": layer.__class__.__name__,
            "output_shape": output_shape(layer),
        }
        for layer in model.layers
    ]
    # Keras 3 functional configs also list raw ops (e.g. ``keras.ops.add``
    # -> class ``Add`` from ``keras.src.ops.numpy``) which are not Layers and
    # so are absent from ``model.layers``; ``model.operations`` has them all.
    operations = [
        {
            "name": op.name,
            "class_name": op.__class__.__name__,
            "output_shape": output_shape(op),
        }
        for op in model.operations
    ]
    fixture = {
        "model": name,
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "keras_config": keras_config,
        "h5_model_config": h5_config,
        "expected": {
            "total": total,
            "trainable": trainable,
            "non_trainable": non_trainable,
            "layers": layers,
            "operations": operations,
        },
    }
    del model
    keras.backend.clear_session()
    return fixture


def write_gz(path: Path, obj) -> int:
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    buf = io.BytesIO()
    # mtime=0 and no filename in the header -> byte-identical reruns.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9,
                       mtime=0) as gz:
        gz.write(data)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)
    return len(buf.getvalue())


def write_readme(out: Path, keras_version: str, backend: str,
                 rows: list[tuple[str, int, int]],
                 failures: dict[str, str]) -> None:
    today = datetime.date.today().isoformat()
    lines = [
        "# keras.applications fixtures",
        "",
        "One `<ConstructorName>.json.gz` per constructor exported by",
        "`keras.applications`, generated by `" + SCRIPT_REL + "`",
        f"with Keras {keras_version} (backend: {backend}) on {today}.",
        "",
        "Each model was built offline with `weights=None` and default",
        "arguments (`include_top=True`, 1000 classes, default input size),",
        "saved with `model.save` as `.keras` and as legacy `.h5`; the files",
        "hold gzip-compressed (level 9) compact JSON:",
        "",
        "- `model`, `keras_version`, `backend`",
        "- `keras_config`: parsed `config.json` from the `.keras` zip",
        "- `h5_model_config`: parsed root attribute `model_config` of the `.h5`",
        "- `expected`: `total` (`model.count_params()`), `trainable` /",
        "  `non_trainable` (summed sizes of `model.trainable_weights` /",
        "  `model.non_trainable_weights`) and `layers`: for every layer of",
        "  `model.layers` in order, `name`, `class_name` and `output_shape`",
        "  (from `layer.output.shape`, `null` for the batch dimension; a list",
        "  of shapes for multi-output layers); `operations`: the same for",
        "  every entry of `model.operations`, which in Keras 3 also includes",
        "  non-Layer ops such as `keras.ops.add` (serialized in the configs",
        "  with `module: keras.src.ops.numpy`, class `Add`) that",
        "  `model.layers` omits.",
        "",
        "The configs are stored as Keras wrote them, with one exception: the",
        "`shared_object_id` values in `keras_config` (Python `id()`s of",
        "objects shared between layers, different on every run) are",
        "renumbered 1, 2, ... in order of first appearance so that reruns",
        "produce byte-identical fixtures; equal ids stay equal.",
        "",
        "**Purpose:** these are oracles. Parameter counts and output shapes",
        "come from Keras itself, never from modellint; tests should parse",
        "`keras_config` / `h5_model_config` with modellint and compare its",
        "figures with `expected`.",
        "",
        "Regenerate (needs Keras 3 + a backend + h5py; run by hand, not in CI):",
        "",
        "    TF_CPP_MIN_LOG_LEVEL=3 python " + SCRIPT_REL,
        "",
        "| model | total params | trainable | non-trainable | layers | fixture bytes |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, total, trainable, non_trainable, n_layers, size in rows:
        lines.append(f"| {name} | {total:,} | {trainable:,} | "
                     f"{non_trainable:,} | {n_layers} | {size:,} |")
    lines.append("")
    if failures:
        lines.append("Constructors that could not be built offline (skipped):")
        lines.append("")
        for name, err in sorted(failures.items()):
            lines.append(f"- `{name}`: {err}")
    else:
        lines.append("Every exported constructor built offline; none skipped.")
    lines.append("")
    (out / "README.md").write_text("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*", help="constructor names to build")
    ap.add_argument("--skip-existing", action="store_true",
                    help="do not rebuild models whose fixture already exists")
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args(argv)

    import keras
    from keras import applications as apps

    names = discover_constructors(apps)
    if args.only:
        unknown = set(args.only) - set(names)
        if unknown:
            ap.error(f"unknown constructors: {sorted(unknown)}")
        names = [n for n in names if n in args.only]

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rows, failures = [], {}
    print(f"Keras {keras.__version__} ({keras.backend.backend()}); "
          f"{len(names)} constructors -> {out}")
    print(f"{'model':<20} {'params':>13} {'fixture':>10} {'secs':>6}")
    for name in names:
        path = out / f"{name}.json.gz"
        t0 = time.time()
        if args.skip_existing and path.exists():
            with gzip.open(path, "rt") as f:
                fx = json.load(f)
            size = path.stat().st_size
        else:
            tmp = Path(tempfile.mkdtemp(prefix=f"kapp-{name}-"))
            try:
                fx = build_fixture(apps, name, tmp)
            except Exception as e:  # record and skip
                msg = f"{type(e).__name__}: {e}".splitlines()[0][:300]
                failures[name] = msg
                print(f"{name:<20} FAILED: {msg}", flush=True)
                traceback.print_exc(file=sys.stderr)
                continue
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            size = write_gz(path, fx)
        e = fx["expected"]
        rows.append((name, e["total"], e["trainable"], e["non_trainable"],
                     len(e["layers"]), size))
        print(f"{name:<20} {e['total']:>13,} {size:>10,} "
              f"{time.time() - t0:>6.1f}", flush=True)

    total_size = sum(r[-1] for r in rows)
    print(f"{len(rows)} fixtures, {total_size:,} bytes; "
          f"{len(failures)} failed: {sorted(failures) or 'none'}")
    if not args.no_readme and not args.only:
        write_readme(out, keras.__version__, keras.backend.backend(), rows,
                     failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

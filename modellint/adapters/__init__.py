"""Adapters: every model source becomes a :class:`~modellint.graph.Graph`.

:func:`load_graph` picks the adapter. Files are recognised by their first bytes,
never by their suffix (an HDF5 file named ``.keras`` is read as HDF5).

Bad input (corrupt, truncated, of the wrong format, hostile) raises
:class:`~modellint.errors.InputError`, one line naming the file and the problem:
the readers check what they can with a precise message, and :func:`load_file`
turns anything else a reader raises into "<format> file is malformed: ...". Every
graph is then checked for absurd sizes (:func:`.common.check_graph`) before a
rule sees it.
"""

from __future__ import annotations

import os
import re
import stat
import struct
import sys
from pathlib import Path
from typing import Optional

from ..errors import InputError, ModelLintError, NeedsTrust
from ..graph import Graph

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
PICKLE_PROTOCOLS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")

# Suffixes of model files, for directory search and the pre-commit hook.
MODEL_SUFFIXES = (".h5", ".hdf5", ".keras", ".json", ".pt", ".pt2", ".pth", ".onnx")

#: Entries listed in one zip archive. A .keras archive holds three (config,
#: metadata, weights) plus its assets, a PyTorch checkpoint one per tensor
#: storage (thousands for the largest models). zipfile keeps ~0.5 KiB per entry,
#: so a 100 MB archive of 1.2 million empty entries would cost ~650 MiB before
#: anything is read; the count is read from the end record first.
MAX_ZIP_ENTRIES = 100_000
#: The longest problem text of an error line: one line, readable in a terminal.
MAX_PROBLEM_CHARS = 240

_FORMAT_NAMES = {"hdf5": "HDF5", "zip": "zip archive", "json": "JSON", "pickle": "pickle", "onnx": "ONNX"}


def sniff(path: Path) -> str:
    """The format of a file from its content: ``hdf5``, ``zip``, ``json``, ``pickle`` or ``unknown``."""
    with open(path, "rb") as f:
        head = f.read(2048 + 8)
    if not head:
        return "empty"
    # HDF5 allows a user block: the signature sits at 0, 512, 1024, 2048, ...
    for offset in (0, 512, 1024, 2048):
        if head[offset:offset + 8] == HDF5_MAGIC:
            return "hdf5"
    if head[:4] in ZIP_MAGICS:
        return "zip"
    if head[:2] in PICKLE_PROTOCOLS:
        return "pickle"
    if head[:1] == b"\x08" and len(head) > 1 and 1 <= head[1] <= 32:
        return "onnx"  # a ModelProto starts with ir_version: field 1 as a varint (0x08), then a small number
    if head.lstrip()[:1] in (b"{", b"["):
        return "json"
    return "unknown"


def _check_path(path: Path) -> None:
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a directory, expected a model file")
    if not os.access(path, os.R_OK):
        raise InputError(path, "permission denied")


def _zip_entry_count(path: Path) -> Optional[int]:
    """Entries the archive's end record declares (None when there is none to read)."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        tail_len = min(size, 22 + 65535)      # end record + the longest comment
        f.seek(size - tail_len)
        tail = f.read(tail_len)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or at + 22 > len(tail):
            return None
        total = struct.unpack_from("<H", tail, at + 10)[0]
        if total != 0xFFFF or at < 20 or tail[at - 20:at - 16] != b"PK\x06\x07":
            return total
        # zip64: the locator before the end record points to the zip64 end record
        offset = struct.unpack_from("<Q", tail, at - 20 + 8)[0]
        if offset + 56 > size:
            return None
        f.seek(offset)
        rec = f.read(56)
        if rec[:4] != b"PK\x06\x06":
            return None
        return struct.unpack_from("<Q", rec, 32)[0]


def check_zip(path: Path, infos) -> None:
    """Refuse an archive whose listing is hostile: two entries with one name (a
    reader and a scanner may pick different ones; a published malicious .keras
    hides a pickle in a second ``model.weights.npz``), absolute paths or ``..``
    (an extracting reader such as Keras' own loader would write outside its
    folder), links and other non-regular entries."""
    seen = set()
    for info in infos:
        name = info.filename
        if name in seen:
            raise InputError(path, f"zip archive has two entries named {name!r} (refused: a reader may "
                             "take either; a known attack hides code in the second)")
        seen.add(name)
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
            raise InputError(path, f"zip archive entry {name!r} has an absolute path or '..' (refused)")
        kind = stat.S_IFMT(info.external_attr >> 16)
        if info.create_system == 3 and kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            what = "a symbolic link" if kind == stat.S_IFLNK else "not a regular file"
            raise InputError(path, f"zip archive entry {name!r} is {what} (refused)")


def _is_keras_zip(path: Path) -> bool:
    import zipfile

    count = _zip_entry_count(path)
    if count is not None and count > MAX_ZIP_ENTRIES:
        raise InputError(path, f"zip archive lists {count:,} entries, more than the {MAX_ZIP_ENTRIES:,} "
                         "a model archive may have")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, UnicodeDecodeError):
        return True  # let the Keras reader report the damage
    if len(infos) > MAX_ZIP_ENTRIES:
        raise InputError(path, f"zip archive lists {len(infos):,} entries, more than the {MAX_ZIP_ENTRIES:,} "
                         "a model archive may have")
    check_zip(path, infos)
    return any(i.filename == "config.json" for i in infos)


def _one_line(text: str, limit: int = MAX_PROBLEM_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def load_file(path, *, config: Optional[os.PathLike] = None, trust_pickle: bool = False,
              input_shape: Optional[tuple] = None) -> Graph:
    """Read a model file into a graph, choosing the reader by the file's content.

    ``config`` pairs a weights-only ``.h5`` with its architecture JSON;
    ``trust_pickle`` allows unpickling a whole PyTorch module (runs code from the
    file); ``input_shape`` sizes models whose files carry no input shape
    (TorchScript, pickled modules).
    """
    path = Path(path)
    _check_path(path)
    if config is not None:
        _check_path(Path(config))
    try:
        kind = sniff(path)
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror or exc})") from None
    try:
        graph = _load_kind(path, kind, config, trust_pickle, input_shape)
    except InputError as exc:
        if "\n" in exc.problem or len(exc.problem) > MAX_PROBLEM_CHARS:
            raise type(exc)(exc.source, _one_line(exc.problem)) from None  # the same kind (NoArchitecture...)
        raise
    except ModelLintError:
        raise
    except (Exception, RecursionError, MemoryError) as exc:
        # The backstop: whatever a reader did not foresee is still bad input, said in one line.
        fmt = _FORMAT_NAMES.get(kind, "model")
        detail = _one_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, 160)
        raise InputError(path, f"{fmt} file is malformed: {detail}") from None
    return graph


def _load_kind(path: Path, kind: str, config, trust_pickle: bool, input_shape) -> Graph:
    if kind == "empty":
        raise InputError(path, "empty file")
    if kind == "hdf5":
        from .keras_files import read_h5

        return read_h5(path, Path(config) if config is not None else None)
    if kind == "zip" and _is_keras_zip(path):
        from .keras_files import read_keras_zip

        return read_keras_zip(path)
    if kind in ("zip", "pickle"):
        from .torch_files import read_torch_file

        try:
            return assume_loss(read_torch_file(path, trust_pickle=trust_pickle, input_shape=input_shape))
        except InputError as exc:
            if not trust_pickle and type(exc) is InputError and _needs_trust(exc.problem):
                raise NeedsTrust(exc.source, exc.problem) from None
            raise
    if (kind == "unknown" and _is_summary_text(path)) or (kind == "json" and _is_summary_text(path, sniff_only=True)):
        return read_summary_file(path)
    if kind == "json":
        from .keras_files import read_json

        return read_json(path)
    if kind == "onnx" or path.suffix.lower() == ".onnx":
        from .onnx_file import read_onnx

        graph = read_onnx(path)
        return assume_loss(graph) if exported_by_pytorch(graph) else graph
    raise InputError(path, "unrecognised file format (not HDF5, a zip archive, JSON, a pickle, ONNX, "
                           "or the text of a model summary)")


def _needs_trust(problem: str) -> bool:
    """The reader's problem asks for ``--trust-pickle``, and is no refusal: the file's
    scan named no dangerous global (those say that modellint refuses to load it)."""
    from .torch_files import REFUSES

    return "--trust-pickle" in problem and REFUSES.strip("; ") not in problem


def _is_summary_text(path: Path, sniff_only: bool = False) -> bool:
    """Text that holds (or claims to hold) a model.summary() table, or any .txt file; a text
    starting with ``[`` or ``{`` (``[site]: datascience``) only when a table header is in it."""
    from .summary_text import sniff_text

    if not sniff_only and path.suffix.lower() in (".txt", ".text", ".md"):
        return True
    with open(path, "rb") as f:
        return sniff_text(f.read(1 << 20))


def read_summary_file(path: Path) -> Graph:
    """A pasted model.summary() / torchinfo table in a text file (``modellint check summary.txt``)."""
    from .summary_text import MAX_TEXT_CHARS, read_summary_text

    with open(path, "rb") as f:
        data = f.read(MAX_TEXT_CHARS + 1)
    if b"\x00" in data[:4096]:
        raise InputError(path, "binary file, not a model file or the text of a model summary")
    return read_summary_text(data.decode("utf-8", errors="replace"), path)


def load_text(text: str, source: str = "<stdin>") -> Graph:
    """A graph from the text of a model summary (``modellint check -`` reads stdin)."""
    from .common import GraphError, check_graph
    from .summary_text import read_summary_text

    graph = read_summary_text(text, source)
    try:
        check_graph(graph)
    except GraphError as exc:
        raise InputError(source, _one_line(str(exc))) from None
    return graph


def is_keras_model(obj) -> bool:
    """A keras.Model (also a user subclass), recognised without importing Keras."""
    keras_base = any((c.__module__ or "").startswith(("keras", "tf_keras", "tensorflow"))
                     for c in type(obj).__mro__)
    return keras_base and hasattr(obj, "get_config") and hasattr(obj, "layers")


def is_torch_module(obj) -> bool:
    torch = sys.modules.get("torch")  # a live module means torch is already imported
    return torch is not None and isinstance(obj, torch.nn.Module)


def assume_loss(graph: Graph) -> Graph:
    """A PyTorch model carries no loss. When its output is a softmax, record the
    usual assumption (nn.CrossEntropyLoss, which expects logits) so rules can say
    what follows from it; the finding names the assumption, and --loss overrides it."""
    from ..graph import TrainingConfig

    if graph.training is None and graph.output_activation() == "softmax":
        graph.training = TrainingConfig(loss="CrossEntropyLoss", assumed=True)
        graph.notes.append("loss assumed: nn.CrossEntropyLoss (expects logits); pass --loss to state yours")
    return graph


def exported_by_pytorch(graph: Graph) -> bool:
    """An ONNX graph whose producer is PyTorch (``torch.onnx.export``): its user trains with
    PyTorch's losses, so the same stated-loss default applies."""
    return graph.framework == "onnx" and "torch" in (graph.framework_version or "").lower()


def pytorch_convention(graph: Graph) -> bool:
    """A PyTorch model, or an ONNX file PyTorch exported: its losses, layer names and prose are PyTorch's."""
    return graph.framework == "torch" or exported_by_pytorch(graph)


CODE_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def load_graph(source, *, config=None, trust_pickle: bool = False, input_shape=None, example_inputs=None,
               training=None) -> Graph:
    """A :class:`Graph` from a model file path, a ``module:factory`` code target, or a
    live ``keras.Model`` / ``torch.nn.Module``.

    ``input_shape`` (e.g. ``(1, 3, 128, 128)``, batch included, in the model's own
    layout) or ``example_inputs`` size PyTorch models; ``training`` (a
    :class:`~modellint.graph.TrainingConfig`) states the loss/optimizer where the
    source has none.

    >>> g = load_graph("examples/seed_cnn.h5")        # doctest: +SKIP
    >>> g.total_params                                 # doctest: +SKIP
    168793
    """
    if isinstance(source, Graph):
        return _with_training(source, training)
    if isinstance(source, str) and CODE_TARGET.match(source) and not Path(source).exists():
        from .code_target import load_target

        where = source
        graph = load_target(source, input_shape=input_shape)
    elif isinstance(source, (str, os.PathLike)):
        where = source
        graph = load_file(source, config=config, trust_pickle=trust_pickle, input_shape=input_shape)
    elif is_keras_model(source):
        from .keras_live import graph_from_keras_model

        where = getattr(source, "name", "model")
        graph = graph_from_keras_model(source)
    elif is_torch_module(source):
        from .torch_live import graph_from_module

        where = type(source).__name__
        graph = assume_loss(graph_from_module(source, input_shape=input_shape, example_inputs=example_inputs))
    else:
        raise InputError(repr(type(source).__name__), "not a model file path or a supported model object")
    from .common import GraphError, check_graph

    try:
        check_graph(graph)
    except GraphError as exc:
        raise InputError(where, _one_line(str(exc))) from None
    return _with_training(graph, training)


def _with_training(graph: Graph, training) -> Graph:
    if training is not None:
        graph.training = training
    return graph

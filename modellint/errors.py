"""Errors that modellint reports to users as one line (exit code 2)."""

from __future__ import annotations


class ModelLintError(Exception):
    """Base class: anything the CLI turns into a one-line error and exit 2."""


class InputError(ModelLintError):
    """A model file (or object) that cannot be read: names the file and the problem."""

    def __init__(self, source, problem: str):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


class ConfigError(ModelLintError):
    """Bad configuration or command-line usage."""


class MissingDependency(ModelLintError):
    """An optional package a command needs is not installed: says which extra installs it."""


class NoArchitecture(InputError):
    """A readable file that holds no model architecture: a PyTorch state_dict or other
    weights-only / data-only pickle, a Keras weights-only ``.h5``, an HDF5 file that is no
    Keras model. Not damaged: ``modellint check --hook`` skips it with a note."""


class MissingFramework(InputError, MissingDependency):
    """A model file whose reading needs an optional framework (torch, onnx) that is not
    installed. ``modellint check --hook`` skips it with a note."""


class NeedsTrust(InputError):
    """A PyTorch file that modellint reads only with ``--trust-pickle`` (a whole pickled
    ``nn.Module``, a TorchScript or ``.pt2`` archive holding pickled Python objects), and
    whose scan found no dangerous global. ``modellint check --hook`` skips it with a note;
    a file whose scan names a dangerous global is refused (a plain InputError) and still
    fails the hook."""


#: import name -> (what pip installs, the modellint extra that brings it)
OPTIONAL = {"PIL": ("Pillow", "probes"), "sklearn": ("scikit-learn", "probes"), "keras": ("Keras", "keras"),
            "torch": ("torch", "torch"), "onnx": ("onnx", "onnx"),
            "ray": ("ray", "ray")}


def need(module: str, what: str):
    """Import ``module`` for ``what`` (e.g. "the probes"), or raise a one-line MissingDependency."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        package, extra = OPTIONAL[module]
        raise MissingDependency(f"{what}: {package} is not installed (pip install 'modellint[{extra}]')") from None

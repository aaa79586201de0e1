"""Keep the command line's stderr to modellint's own lines.

TensorFlow, Keras and PyTorch write to stderr on their own: TensorFlow's C++ start-up notices (absl's
``WARNING: All log messages before absl::InitializeLog() is called are written to STDERR``,
``cpu_feature_guard`` "This TensorFlow binary is optimized to use ...", oneDNN notices), Python
``logging`` records and ``warnings`` (Keras' and scikit-learn's, e.g. a ConvergenceWarning of the
linear baseline). The frameworks read their log settings from the environment
once, when they are first imported, so :func:`quiet_frameworks` must run before any of them is
imported: ``modellint.cli.main`` calls it first thing (``import modellint`` and parsing the command
line import no framework), unless ``--verbose`` is given.

Measured with TensorFlow 2.21: ``TF_CPP_MIN_LOG_LEVEL=3`` alone silences all three C++ lines above,
the absl one included (absl's pre-initialisation sink honours TensorFlow's minimum level), so stderr
is not redirected.

Only the command line calls this. The Python API (``modellint.analyze``, ``run_probes``) never
changes the caller's environment, logging or warning filters: a program or notebook that wants the
frameworks quiet sets ``TF_CPP_MIN_LOG_LEVEL`` itself before importing them (or calls this function,
knowing that it changes ``os.environ``, the frameworks' loggers and the warning filters of the
process).
"""

from __future__ import annotations

import logging
import os
import warnings

#: What the frameworks read from the environment when imported. TF_CPP_MIN_LOG_LEVEL=3: TensorFlow's
#: C++ logging (and absl's, before absl::InitializeLog) keeps only FATAL; TORCH_CPP_LOG_LEVEL: c10's
#: C++ logging keeps only errors; GRPC_VERBOSITY: gRPC (linked into TensorFlow) keeps only errors.
ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "TORCH_CPP_LOG_LEVEL": "ERROR", "GRPC_VERBOSITY": "ERROR"}

#: Python loggers of the frameworks: only CRITICAL records pass (modellint reports what fails itself).
LOGGERS = ("tensorflow", "absl", "keras", "torch", "h5py", "onnx", "onnxruntime", "jax", "PIL")


def quiet_frameworks() -> None:
    """Silence the frameworks' own stderr output for the rest of this process (see the module docstring).

    Overrides values already in the environment: a user who wants the frameworks' logs passes
    ``--verbose``, which does not call this."""
    os.environ.update(ENVIRONMENT)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore")  # the frameworks' and the user's model code's warnings
    warnings.filterwarnings("default", module=r"modellint(\.|$)")  # modellint's own (it raises none today)

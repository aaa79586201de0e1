import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLES = ROOT / "examples"
SHARED = ROOT.parent / "shared"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run_cli(*args, cwd=None, env=None):
    """Run ``python -m modellint ARGS`` in a fresh interpreter."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "modellint", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, env=full_env, timeout=300)


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def have_keras() -> bool:
    try:
        import keras  # noqa: F401
    except Exception:
        return False
    return True


keras_only = pytest.mark.skipif(not have_keras(), reason="Keras not installed")

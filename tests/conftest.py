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


@pytest.fixture
def one_thread():
    """Tiny torch batches: one intra-op thread is faster and immune to a busy second core."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def import_source(tmp_path, monkeypatch, name: str, source: str):
    """Write ``source`` as module ``name`` under tmp_path and import it (code targets name a module)."""
    import importlib

    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module(name)

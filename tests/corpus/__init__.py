"""The labelled diagnosis corpus of issue 11: buggy/fixed pairs of real kinds of
deep-learning faults and sound reference designs, in Keras and PyTorch.

``manifest`` holds the labels (no framework import); ``runner`` builds a case and
analyses it the way a user would; the family modules hold the factories. Used by
``benchmarks/bench_diagnosis.py`` (the numbers) and ``tests/test_corpus.py`` (the
corpus itself). Import it with ``tests/`` on ``sys.path`` (``import corpus``), as
pytest does for the test files.
"""

from .manifest import ALL, CATEGORIES, PAIRS, SOUND, TASKS, Pair, Sound, by_id  # noqa: F401

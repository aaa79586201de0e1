"""A deterministic fuzz suite for modellint's promise on bad input (issue 10).

``corpus.generate(root, seed)`` builds the cases, ``runner.Pool`` runs them in persistent worker
processes and checks the invariants, ``runner.format_failures`` lists what failed. Entry points:
``tests/test_fuzz.py`` (CI) and ``benchmarks/bench_fuzz.py`` (counts, timings, bigger corpora).
"""

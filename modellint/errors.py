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

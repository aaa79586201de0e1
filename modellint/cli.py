"""The ``modellint`` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from . import __version__
from .errors import ModelLintError

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors: one line, exit 2
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="modellint",
                     description="Tells you what is wrong with a neural-network model and how to improve it.")
    parser.add_argument("--version", action="version", version=f"modellint {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("summary", help="layer table with shapes, params, receptive field and MACs",
                       description="Print a layer table of MODEL: output shapes, parameters, receptive "
                                   "field and MACs per layer, with totals. Reads Keras .h5/.keras/JSON "
                                   "without importing Keras or TensorFlow.")
    p.add_argument("model", metavar="MODEL", help="model file (.h5, .hdf5, .keras, or to_json() .json)")
    p.add_argument("--config", metavar="JSON", help="architecture JSON for a weights-only .h5")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    p.set_defaults(func=cmd_summary)
    return parser


def cmd_summary(args) -> int:
    from .adapters import load_graph
    from .reports.summary import render_json, render_text, summarize

    graph = load_graph(args.model, config=args.config)
    summary = summarize(graph)
    print(render_json(summary) if args.format == "json" else render_text(summary))
    return EXIT_OK


def main(argv: Optional[list] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_ERROR
    try:
        return args.func(args)
    except ModelLintError as exc:
        print(f"modellint: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("modellint: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # never a traceback for users; say it is our fault
        print(f"modellint: internal error: {type(exc).__name__}: {exc} (please report; "
              "MODELLINT_DEBUG=1 shows the traceback)", file=sys.stderr)
        import os

        if os.environ.get("MODELLINT_DEBUG"):
            raise
        return EXIT_ERROR

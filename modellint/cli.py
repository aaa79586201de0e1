"""The ``modellint`` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from . import __version__
from .analysis.task import TASKS
from .errors import ConfigError, ModelLintError

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors: one line, exit 2
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


VERBOSE_HELP = ("keep TensorFlow's, PyTorch's and Keras' own log lines and warnings on stderr (silenced by default), "
                "and show the traceback of an internal error (as MODELLINT_DEBUG=1 does)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="modellint",
                     description="Tells you what is wrong with a neural-network model and how to improve it.")
    parser.add_argument("--version", action="version", version=f"modellint {__version__}")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    # --verbose after the command too (``modellint probe ... --verbose``); SUPPRESS keeps the global value
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("summary", parents=[common], help="layer table with shapes, params, receptive field and MACs",
                       description="Print a layer table of MODEL: output shapes, parameters, receptive "
                                   "field and MACs per layer, with totals. Reads Keras .h5/.keras/JSON "
                                   "without importing Keras or TensorFlow.")
    p.add_argument("model", metavar="MODEL",
                   help="model file (.h5, .hdf5, .keras, to_json() .json, .pt2, TorchScript .pt, .onnx), "
                        "a code target package.module:factory, or the text of a pasted model.summary() / "
                        "torchinfo table (a .txt file, or - for stdin)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    p.add_argument("--explain", action="store_true",
                   help="explain every number: each row's parameter arithmetic (3·3·3·32 + 32 = 896), output "
                        "shape (padding, stride, pooling), receptive-field step and MACs, then what the totals "
                        "mean and where parameters and compute concentrate")
    _model_options(p)
    p.set_defaults(func=cmd_summary)

    c = sub.add_parser("check", parents=[common], help="find problems in models, with evidence and fixes",
                       description="Check model files for problems an expert reviewer would flag. Exit "
                                   "codes: 0 clean, 1 findings at or above --fail-on, 2 bad input or "
                                   "configuration.")
    c.add_argument("paths", nargs="+", metavar="PATH",
                   help="model files, globs, directories, code targets package.module:factory, or the text "
                        "of a pasted model.summary() / torchinfo table (a .txt file, or - for stdin)")
    sel = c.add_argument_group("rule selection (codes, code prefixes like ML1, or categories)")
    sel.add_argument("--select", action="append", default=[], metavar="RULES",
                     help="comma-separated; replaces the default (all rules)")
    sel.add_argument("--extend-select", action="append", default=[], metavar="RULES",
                     help="comma-separated; added to the selection")
    sel.add_argument("--ignore", action="append", default=[], metavar="RULES", help="comma-separated")
    data = c.add_argument_group("dataset facts (rules that need them are skipped without them)")
    data.add_argument("--samples", type=int, metavar="N", help="number of training images")
    data.add_argument("--classes", type=int, metavar="C", help="number of classes")
    data.add_argument("--image-size", metavar="HxW", help="training image size, e.g. 128x128")
    data.add_argument("--data", metavar="DIR", help="folder of class sub-folders (counted, not loaded)")
    out = c.add_argument_group("output")
    out.add_argument("--format", choices=("text", "json", "sarif", "github"), default="text")
    out.add_argument("--output-file", metavar="FILE", help="write the report here instead of stdout")
    out.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report to FILE")
    out.add_argument("--fail-on", choices=("error", "warning", "info"),
                     help="lowest severity that makes the exit code 1 (default: warning)")
    out.add_argument("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    out.add_argument("--explain", action="store_true",
                     help="also list rules that did not run and why, and print the page of every rule that "
                          "reported something (what it does, why it matters, the fix, examples)")
    out.add_argument("--quiet", "-q", action="store_true", help="only the finding lines")
    _model_options(c)
    c.add_argument("--settings", metavar="TOML",
                   help="configuration file (default: nearest modellint.toml or pyproject.toml "
                        "with [tool.modellint])")
    c.add_argument("--no-settings", action="store_true", help="ignore configuration files")
    w = c.add_argument_group("weights (the weight rules, category 'weights', read the trained weights)")
    w.add_argument("--weights", metavar="FILE",
                   help="a PyTorch state_dict (.pt/.pth/.bin, or .safetensors) whose weights the weight rules "
                        "read, for a code target package.module:factory or a model file without weights; loaded "
                        "with torch.load(weights_only=True) only, never a full unpickler (a .safetensors header "
                        "and bytes with numpy). Weights in the model file itself (Keras .h5/.keras, ONNX "
                        "initializers, a .pt2's program) are read without it")
    w.add_argument("--no-weights", action="store_true",
                   help="do not read the weights: the weight rules are skipped (faster on very large files)")
    c.add_argument("--hook", action="store_true",
                   help="pre-commit mode (the hook passes it): a file that holds no architecture (a PyTorch "
                        "state_dict or other weights-only file, a Keras weights-only .h5, an HDF5 file that "
                        "is no Keras model) or that needs a framework that is not installed (torch, onnx) is "
                        "skipped with a note on stderr and does not change the exit code, as is a file "
                        "readable only with --trust-pickle (a whole pickled nn.Module) whose scan found "
                        "nothing dangerous; a damaged file, or one whose pickle names a dangerous global, "
                        "still exits 2")
    c.set_defaults(func=cmd_check)

    pr = sub.add_parser("probe", parents=[common], help="train briefly on your data and report what happens",
                        description="Run short, measured experiments on MODEL with the images in --data "
                                    "(a folder of class sub-folders or an .npz): loss at init, overfitting one "
                                    "batch, a learning-rate range test, gradient/update ratios, dead units, "
                                    "a data-scaling curve and a linear baseline; then report them as findings "
                                    "together with the static rules. Results are cached.")
    pr.add_argument("model", metavar="MODEL", help="a Keras file, or a PyTorch/Keras code target package.module:factory")
    pr.add_argument("--data", required=True, metavar="DIR", help="folder of class sub-folders, or an .npz with x/y")
    pr.add_argument("--budget", type=float, default=180.0, metavar="SECONDS",
                    help="seconds from the command's start: loading the model and data, then the probes (default "
                         "180); a verdict about learning needs about 100 training steps, and the run says before "
                         "training when the budget cannot hold them")
    pr.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    pr.add_argument("--probes", metavar="LIST", help="comma-separated subset of: init_loss, overfit_batch, "
                                                     "lr_range, train_dynamics, zero_input, data_scaling, "
                                                     "linear_baseline")
    pr.add_argument("--lr", type=float, help="learning rate to probe with (default: the model's, else 1e-3)")
    pr.add_argument("--max-images", type=int, metavar="N", help="use at most N images (stratified)")
    pr.add_argument("--plan", metavar="REPORT.json",
                    help="replay the step plan of an earlier run (its --format json output) instead of planning "
                         "from this machine's timings: the same seed and plan give the same numbers; with "
                         "another model, a comparison after the same steps")
    pr.add_argument("--compare", metavar="OTHER",
                    help="also train OTHER (a model file, a code target, or the word fix: the output of "
                         "modellint fix) and MODEL on the same class-stratified split and subset, with the same "
                         "seeds (3 when the budget allows) and steps, and report which is better and how sure: "
                         "the difference in validation accuracy and loss with its spread across seeds. With the "
                         "probes selected, the comparison plans for 60 %% of the budget left after loading; "
                         "--probes none gives it all")
    pr.add_argument("--executor", default="inprocess", metavar="NAME",
                    help="where the comparison's runs run: inprocess (default, one after another) or ray "
                         "(Ray tasks; pip install 'modellint[ray]'; RAY_ADDRESS joins a cluster)")
    pr.add_argument("--no-cache", action="store_true", help="ignore and do not write cached results")
    pr.add_argument("--format", choices=("text", "json", "sarif", "github"), default="text")
    pr.add_argument("--output-file", metavar="FILE")
    pr.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report to FILE")
    pr.add_argument("--fail-on", choices=("error", "warning", "info"), default="warning")
    pr.add_argument("--exit-zero", action="store_true")
    pr.add_argument("--quiet", "-q", action="store_true")
    pr.add_argument("--explain", action="store_true")
    _model_options(pr)
    pr.set_defaults(func=cmd_probe)

    fx = sub.add_parser("fix", parents=[common], help="write the model with the rules' fixes applied",
                        description="Apply the mechanical fixes of the rules that fire on MODEL and write the "
                                    "improved model in its own framework: Keras OUT.keras and OUT.py (functional "
                                    "Keras code), PyTorch OUT.py (an nn.Module) and, when its weights were read (a live "
                                    "module, a .pt2, --weights), OUT.pt (the kept weights; build_model('OUT.pt') "
                                    "loads them). Prints each change as a diff of "
                                    "the layer table (params, MACs, receptive field) and says per layer whether "
                                    "its weights were kept, refolded or freshly initialised. Never overwrites "
                                    "MODEL. Exit codes: 0 written (or nothing to fix), 2 bad input or settings.")
    fx.add_argument("model", metavar="MODEL", help="a Keras or PyTorch model file, or a code target")
    fx.add_argument("-o", "--output", metavar="OUT",
                    help="output path stem (default: MODEL's name + _fixed, beside it); .keras/.py are added")
    fx.add_argument("--select", action="append", default=[], metavar="RULES",
                    help="comma-separated codes, prefixes or categories: apply only their fixes")
    fx.add_argument("--weights", metavar="FILE",
                    help="a PyTorch state_dict (torch.save, read with weights_only=True, or .safetensors) for a "
                         "code target: the weights kept or refolded go to OUT.pt beside OUT.py")
    fx.add_argument("--force", action="store_true", help="overwrite existing output files")
    fx.add_argument("--dry-run", action="store_true", help="print the changes, write nothing")
    fx.add_argument("--format", choices=("text", "json"), default="text")
    fdata = fx.add_argument_group("dataset facts (as for check)")
    fdata.add_argument("--samples", type=int, metavar="N", help="number of training images")
    fdata.add_argument("--classes", type=int, metavar="C", help="number of classes")
    fdata.add_argument("--image-size", metavar="HxW", help="training image size, e.g. 128x128")
    fdata.add_argument("--data", metavar="DIR",
                       help="folder of class sub-folders, or an .npz with x/y: counted, and the learning-rate "
                            "range test (probe lr_range) runs on it first, so that ML024's fix can set the "
                            "optimizer's learning rate to the test's confirmed suggestion (without --data that "
                            "fix does not apply)")
    fdata.add_argument("--budget", type=float, default=120.0, metavar="SECONDS",
                       help="with --data: seconds for loading the data and the range test (default 120; a range "
                            "test whose suggestion can be confirmed takes about 100 steps)")
    fdata.add_argument("--seed", type=int, default=0, help="with --data: the range test's random seed (default 0)")
    fdata.add_argument("--no-cache", action="store_true", help="with --data: ignore and do not write cached "
                                                               "probe results")
    _model_options(fx)
    fx.set_defaults(func=cmd_fix)

    d = sub.add_parser("data", parents=[common], help="dataset tools", description="Dataset tools.")
    dsub = d.add_subparsers(dest="data_command", metavar="ACTION", parser_class=_Parser)
    sy = dsub.add_parser("synth", parents=[common], help="write the synthetic 13-class stand-in for the seed's data",
                         description="Write PNG class folders whose classes differ only in shapes larger than "
                                     "a small receptive field can see. Deterministic for a seed.")
    sy.add_argument("out", metavar="OUT")
    sy.add_argument("--classes", type=int, default=13)
    sy.add_argument("--size", type=int, default=128)
    sy.add_argument("--count", type=int, default=8000)
    sy.add_argument("--seed", type=int, default=0)
    sy.set_defaults(func=cmd_data_synth)

    r = sub.add_parser("rules", parents=[common], help="list the rules, or show one rule's page",
                       description="List every rule, or print the documentation page of one.")
    r.add_argument("code", nargs="?", help="a rule code, e.g. ML101")
    r.add_argument("--format", choices=("text", "json"), default="text")
    r.set_defaults(func=cmd_rules)
    return parser


def _model_options(p) -> None:
    g = p.add_argument_group("reading models")
    g.add_argument("--config", metavar="JSON", help="architecture JSON for a weights-only Keras .h5")
    g.add_argument("--input-shape", metavar="N,C,H,W",
                   help="input shape for PyTorch models and code targets, batch included (e.g. 1,3,128,128)")
    g.add_argument("--trust-pickle", action="store_true",
                   help="allow unpickling a whole PyTorch module or pickled .pt2 members: this RUNS CODE "
                        "FROM THE FILE; only for files you trust (dangerous globals are still refused, but "
                        "that scan is a safety net, not a sandbox)")
    g.add_argument("--loss", metavar="NAME",
                   help="the training loss, where the model file has none: a Keras name "
                        "(sparse_categorical_crossentropy, mse) or a PyTorch class (CrossEntropyLoss, "
                        "BCEWithLogitsLoss, NLLLoss, MSELoss); an unknown name is refused")
    g.add_argument("--from-logits", action=argparse.BooleanOptionalAction, default=None,
                   help="with a Keras --loss: it takes logits (from_logits=True); a PyTorch loss class "
                        "already says what it takes")
    g.add_argument("--task", choices=sorted(TASKS), metavar="TASK",
                   help="what the model is trained to do, where the loss and head cannot tell: "
                        + ", ".join(sorted(TASKS)))


def _load(source, args):
    """Load one model with the reading options of the command line."""
    from .adapters import load_graph
    from .losses import stated_training

    shape = None
    if args.input_shape:
        try:
            shape = tuple(int(x) for x in args.input_shape.replace("x", ",").split(",") if x.strip())
        except ValueError:
            raise ConfigError(f"--input-shape {args.input_shape!r} is not a list of integers "
                              "like 1,3,128,128") from None
    if str(source) == "-":  # the text of a model.summary() on stdin
        from .adapters import load_text
        from .adapters.summary_text import MAX_TEXT_CHARS

        graph = load_text(sys.stdin.read(MAX_TEXT_CHARS + 1), "<stdin>")
    else:
        graph = load_graph(source, config=args.config, trust_pickle=args.trust_pickle, input_shape=shape)
    if args.loss:
        graph.training = stated_training(args.loss, args.from_logits, graph.training)
    return graph


def cmd_summary(args) -> int:
    from .reports.summary import render_json, render_text, summarize

    graph = _load(args.model, args)
    summary = summarize(graph, explain=getattr(args, "explain", False))
    print(render_json(summary) if args.format == "json" else render_text(summary))
    return EXIT_OK


def _split(values) -> list:
    return [v.strip() for value in values or () for v in value.split(",") if v.strip()]


def _expand_paths(patterns) -> list:
    """Files, globs and directories (searched for model files) -> a sorted list of paths."""
    import glob
    from pathlib import Path

    from .adapters import CODE_TARGET, MODEL_SUFFIXES

    out = []
    for pattern in patterns:
        p = Path(pattern)
        if CODE_TARGET.match(pattern) and not p.exists():
            out.append(pattern)  # package.module:factory
            continue
        if any(ch in pattern for ch in "*?[") and not p.exists():
            matches = sorted(glob.glob(pattern, recursive=True))
            out.extend(Path(m) for m in matches if Path(m).is_file())
            if not matches:
                out.append(p)  # reported as missing
        elif p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in MODEL_SUFFIXES
                           and f.suffix.lower() != ".json" and ".venv" not in f.parts)
            out.extend(found)
        else:
            out.append(p)
    return out


def _check_settings(args):
    """The configuration ``check`` reads: ``--settings``, else the nearest config file."""
    from pathlib import Path

    from . import config as cfg

    if args.settings:
        return cfg.load(Path(args.settings))
    if not args.no_settings:
        found = cfg.find_config(Path.cwd())
        if found:
            return cfg.load(found)
    return cfg.Settings()


class _PerPath:
    """Rules, dataset facts and --fail-on for each model path: the global settings with the
    ``per-file`` tables that match it, under the command-line flags. Worked out once per
    combination of tables, and a data folder is counted once."""

    def __init__(self, settings, args):
        from .dataset import facts_from_values

        self.settings, self.args = settings, args
        self.flag_facts = facts_from_values(args.samples, args.classes, args.image_size, source="flags",
                                            task=args.task)
        self.folders, self.cache = {}, {}
        self.get(None)  # the global settings: their errors come before any model is read

    def get(self, path) -> tuple:
        """(rules, dataset facts, fail-on) for ``path`` (None: the global settings)."""
        from .dataset import facts_from_values, merge
        from .engine import select_rules

        s = self.settings if path is None else self.settings.for_path(path)
        key = (s.matched, s.dataset_from)
        if key not in self.cache:
            args, ds = self.args, s.dataset
            rules = select_rules(select=_split(args.select) or s.select, ignore=s.ignore + _split(args.ignore),
                                 extend_select=s.extend_select + _split(args.extend_select))
            config_facts = facts_from_values(ds.get("samples"), ds.get("classes"), ds.get("image_size"),
                                             source=s.describe_dataset(), task=ds.get("task"))
            folder = args.data or ds.get("data")
            dataset = merge(config_facts, self._folder(folder) if folder else None, self.flag_facts)
            self.cache[key] = (rules, dataset, args.fail_on or s.fail_on)
        return self.cache[key]

    def _folder(self, folder):
        from .dataset import facts_from_folder

        if folder not in self.folders:
            facts = self.folders[folder] = facts_from_folder(folder)
            for note in (getattr(facts, "skipped", None), getattr(facts, "unreadable", None)):
                if note and not self.args.quiet:
                    print(f"modellint: note: {folder}: {note}", file=sys.stderr)
        return self.folders[folder]


def cmd_check(args) -> int:
    from pathlib import Path

    from .engine import run_rules
    from .errors import MissingFramework, NeedsTrust, NoArchitecture

    per_path = _PerPath(_check_settings(args), args)
    reports, failed = [], False
    paths = _expand_paths(args.paths)
    if not paths:
        raise ConfigError("no model files found in " + ", ".join(args.paths))
    for path in paths:
        if not args.no_weights and not args.weights:
            from .weights import prefetch

            prefetch(path)   # a Keras file's weights are read in a child while the architecture is
        try:
            graph = _load(path, args)
        except (NoArchitecture, MissingFramework, NeedsTrust) as exc:
            if not args.hook:
                print(f"modellint: error: {exc}", file=sys.stderr)
                failed = True
            else:  # weights only, a framework the hook's environment lacks, or a pickle the hook may not run
                print(f"modellint: note: skipped {exc}", file=sys.stderr)
            continue
        except ModelLintError as exc:
            print(f"modellint: error: {exc}", file=sys.stderr)
            failed = True
            continue
        rules, dataset, fail_on = per_path.get(path)
        try:
            weights = _weights(path, graph, args, rules)
        except ModelLintError as exc:
            print(f"modellint: error: {exc}", file=sys.stderr)
            failed = True
            continue
        dataset = _with_text_facts(graph, dataset)
        reports.append((run_rules(graph, rules, dataset, weights=weights), fail_on))
    fail_at = [fail_on for _, fail_on in reports]
    reports = [report for report, _ in reports]
    if failed and not reports:  # nothing read: the error lines say it all, and no file is written
        return EXIT_ERROR
    _write_html(reports, args)
    text = _render(reports, args)
    if args.output_file:
        try:
            Path(args.output_file).write_text(text + ("\n" if text and not text.endswith("\n") else ""),
                                              encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{args.output_file}: cannot write ({exc.strerror})") from None
    elif text:
        print(text)
    if failed:
        return EXIT_ERROR
    if args.exit_zero:
        return EXIT_OK
    return EXIT_FINDINGS if any(r.at_or_above(f) for r, f in zip(reports, fail_at)) else EXIT_OK


def _with_text_facts(graph, dataset):
    """Dataset facts a pasted question states around its summary table ("8000 images of size
    128x128", "13 classes"), under every fact given by flags, settings or --data."""
    facts = getattr(graph, "text_facts", None)
    if not facts:
        return dataset
    from .dataset import facts_from_values, merge

    try:
        said = facts_from_values(facts.get("samples"), facts.get("classes"), facts.get("image_size"),
                                 source="the text around the table: " + "; ".join(
                                     repr(s) for s in facts.get("said", [])))
    except ModelLintError:
        return dataset
    return merge(said, dataset)


def _weights(path, graph, args, rules):
    """The weights the weight rules read (a lazy WeightStore), or None: --no-weights, no weight
    rule selected, or a source that holds none. A --weights FILE that cannot be read is an error."""
    if getattr(args, "no_weights", False) or not any("weights" in r.needs for r in rules):
        if getattr(args, "weights", None) and getattr(args, "no_weights", False):
            raise ConfigError("--weights and --no-weights contradict each other")
        return None
    from .analysis.weights import weights_for

    store = weights_for(path, graph, getattr(args, "weights", None))
    if store is not None and getattr(args, "weights", None):
        store.stats()   # read now: a bad --weights file is bad input (exit 2), not a skipped rule
        if store.error:
            raise ConfigError(f"--weights {args.weights}: {store.error}")
        if store.empty:
            raise ConfigError(f"--weights {args.weights}: no weight in it belongs to a layer of {path}")
    return store


def _read_plan(path: str) -> dict:
    """The probe plan recorded in a JSON report (``modellint probe --format json``)."""
    import json
    from pathlib import Path

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        plan = data["reports"][0]["probes"]["settings"]["plan"] if "reports" in data else data
    except OSError as exc:
        raise ConfigError(f"--plan {path}: cannot read it ({exc.strerror})") from None
    except (ValueError, KeyError, IndexError, TypeError):
        raise ConfigError(f"--plan {path}: not a modellint probe JSON report with a recorded plan") from None
    from .probes.suite import check_plan

    try:
        return check_plan(plan)
    except ValueError as exc:
        raise ConfigError(f"--plan {path}: {exc}") from None


def _write_html(reports, args) -> None:
    """``--html FILE``: the HTML report, besides the usual output."""
    if not getattr(args, "html", None) or not reports:
        return
    from pathlib import Path

    from .reports.html import write

    try:
        write(reports, Path(args.html))
    except OSError as exc:
        raise ConfigError(f"{args.html}: cannot write ({exc.strerror})") from None


def _render(reports, args) -> str:
    import json

    if args.format == "json":
        from . import __version__ as version

        return json.dumps({"modellint": version, "reports": [r.to_dict() for r in reports]}, indent=2)
    if args.format == "sarif":
        from .reports.sarif import to_sarif

        return json.dumps(to_sarif(reports), indent=2)
    if args.format == "github":
        from .reports.github import render

        return render(reports)
    from .reports.text import render

    return render(reports, quiet=args.quiet, explain=args.explain)


def _progress(name: str, message: str) -> None:
    print(f"modellint probe: {name}: {message}", file=sys.stderr, flush=True)


def cmd_probe(args) -> int:
    from pathlib import Path

    from .engine import run_rules, select_rules
    from .losses import stated_training
    from .probes.api import probe_inputs, rule_facts, run_probes
    from .probes.suite import ALL_PROBES

    shape = None
    if args.input_shape:
        try:
            shape = tuple(int(x) for x in args.input_shape.replace("x", ",").split(",") if x.strip())
        except ValueError:
            raise ConfigError(f"--input-shape {args.input_shape!r} is not a list of integers") from None
    training = stated_training(args.loss, args.from_logits) if args.loss else None
    probes = tuple(_split([args.probes])) if args.probes else ALL_PROBES
    compare = getattr(args, "compare", None)
    if probes == ("none",):
        if not compare:
            raise ConfigError("--probes none leaves nothing to run without --compare")
        probes = ()
    if args.budget <= 0:
        raise ConfigError("--budget must be positive")
    plan = _read_plan(args.plan) if args.plan else None
    comparison = None
    if compare:
        comparison, other_graph = _compare(args, shape, bool(probes))
    if probes:
        budget = args.budget
        if comparison is not None:  # what the comparison left
            import time

            budget = args.budget - (time.perf_counter() - args.started)
            if budget <= 1:
                raise ConfigError(f"the comparison used the whole --budget of {args.budget:g} s; give a larger "
                                  "--budget, or --probes none")
        graph, dataset, report = run_probes(args.model, args.data, budget=budget, seed=args.seed, probes=probes,
                                            lr=args.lr, input_shape=shape, training=training, plan=plan,
                                            max_images=args.max_images, use_cache=not args.no_cache,
                                            clock_start=getattr(args, "started", None) if comparison is None else None,
                                            progress=None if args.quiet else _progress)
        result = run_rules(graph, select_rules(), rule_facts(dataset, f"--data {args.data}"),
                           probes=probe_inputs(report))
        result.probes = report
    else:
        graph = _load(args.model, args)
        result = run_rules(graph, select_rules())
        report = None
    if comparison is not None:
        from .probes.compare import apply_measured_effect

        apply_measured_effect(result, comparison, run_rules(other_graph, select_rules(), result.dataset))
        result.comparison = comparison
    _write_html([result], args)
    text = _render([result], args)
    if args.output_file:
        Path(args.output_file).write_text(text + "\n", encoding="utf-8")
    elif text:
        print(text)
    if report is not None and report.interrupted:
        return 130
    if args.exit_zero:
        return EXIT_OK
    return EXIT_FINDINGS if result.at_or_above(args.fail_on) else EXIT_OK


def _fixed_model(args) -> str:
    """``--compare fix``: the path of MODEL's fixed version, written by ``modellint.fix``.

    HOOK(--compare fix): calls ``modellint.fix(MODEL, out=DIR)`` when this modellint has it and compares
    with the model file it returns (a path, or an object with ``.path``/``.model_path``). Until ``fix``
    lands, ``--compare fix`` is refused with a clear error."""
    import tempfile

    import importlib

    import modellint

    fix = getattr(modellint, "fix", None)
    if fix is None and importlib.util.find_spec("modellint.fix") is not None:
        fix = importlib.import_module("modellint.fix")
    if fix is not None and not callable(fix):  # the module: its function of the same name
        fix = getattr(fix, "fix", None)
    if fix is None or not callable(fix):
        raise ConfigError("--compare fix needs `modellint fix`, which this version of modellint does not have "
                          "yet; write the fixed model and pass its file or code target to --compare")
    out = tempfile.mkdtemp(prefix="modellint-fix-")
    fixed = fix(args.model, out=out)
    for attr in ("path", "model_path", "out"):
        if hasattr(fixed, attr):
            fixed = getattr(fixed, attr)
            break
    return str(fixed)


def _compare(args, shape, with_probes: bool):
    """``--compare OTHER``: (the Comparison, OTHER's graph)."""
    import time

    from .probes import api
    from .probes.compare import COMPARE_SHARE, Source, compare

    other = _fixed_model(args) if args.compare == "fix" else args.compare
    other_graph = _load(other, args)  # refuses what cannot be read, before anything trains
    started = getattr(args, "started", None)
    budget = args.budget
    if with_probes:
        spent = time.perf_counter() - started if started is not None else 0.0
        budget = spent + COMPARE_SHARE * (args.budget - spent)
    sources = [Source(m, input_shape=shape, loss=args.loss, from_logits=args.from_logits) for m in (args.model, other)]
    comparison = api.compare(*sources, args.data, budget=budget, seed=args.seed, lr=args.lr,
                             max_images=args.max_images, executor=args.executor, clock_start=started,
                             progress=None if args.quiet else _progress)
    return comparison, other_graph


def cmd_fix(args) -> int:
    import json

    from .dataset import facts_from_values, merge
    from .engine import select_rules
    from .fixes import (apply_fixes, check_targets, default_out, out_paths, read_model_weights, render,
                        write)

    facts = facts_from_values(args.samples, args.classes, args.image_size, source="flags", task=args.task)
    select = _split(args.select)
    select_rules(select=select)  # a bad selector is refused before anything is read
    if args.budget <= 0:
        raise ConfigError("--budget must be positive")
    graph = _load(args.model, args)
    probes = None
    if args.data:
        probes, counted, not_run = _fix_range_test(args)
        facts = merge(counted, facts)
    weights, why = read_model_weights(args.model, graph, args.weights)
    paths = None
    if not args.dry_run:
        paths = out_paths(graph, args.output or default_out(args.model), weights=weights is not None)
        check_targets(paths, args.model, args.force)
    result = apply_fixes(graph, facts, select=select or None, weights=weights, probes=probes)
    if why:
        result.notes.append(why)
    if args.data and probes is None:
        result.notes.append(f"the learning-rate range test did not run on --data {args.data}: {not_run}")
    if paths and result.changes:
        write(result, paths)
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(render(result, args.model))
    return EXIT_OK


def _fix_range_test(args):
    """``fix --data``: run the learning-rate range test (probe lr_range) on the data; returns
    ``(probe results for the rules, the dataset facts counted from the data, None)``. When it cannot
    run (no training framework, unreadable images): ``(None, the folder counted, why)``."""
    from .dataset import facts_from_folder
    from .losses import stated_training
    from .probes.api import probe_inputs, rule_facts, run_probes

    shape = None
    if args.input_shape:
        shape = tuple(int(x) for x in args.input_shape.replace("x", ",").split(",") if x.strip())
    training = stated_training(args.loss, args.from_logits) if args.loss else None
    try:
        _, dataset, report = run_probes(args.model, args.data, budget=args.budget, seed=args.seed,
                                        probes=("lr_range",), input_shape=shape, training=training,
                                        use_cache=not args.no_cache,
                                        clock_start=getattr(args, "started", None), progress=_progress)
    except ModelLintError as exc:
        return None, facts_from_folder(args.data), str(exc)
    return probe_inputs(report), rule_facts(dataset, f"--data {args.data}"), None


def cmd_data_synth(args) -> int:
    from .probes.synth import write_synthetic

    if args.classes < 2 or args.size < 32 or args.count < args.classes:
        raise ConfigError("need --classes >= 2, --size >= 32 and --count >= --classes")
    write_synthetic(args.out, classes=args.classes, size=args.size, count=args.count, seed=args.seed)
    print(f"wrote {args.count} images in {args.classes} classes to {args.out}")
    return EXIT_OK


def cmd_rules(args) -> int:
    import json

    from .errors import ConfigError
    from .rules import all_rules, get_rule

    if args.code:
        rule = get_rule(args.code)
        if rule is None:
            raise ConfigError(f"no rule {args.code!r} (see: modellint rules)")
        from .rules.docs import render_rule_page

        print(render_rule_page(rule))
        return EXIT_OK
    rules = all_rules()
    if args.format == "json":
        print(json.dumps([{"code": r.code, "name": r.name, "category": r.category, "severity": r.severity,
                           "needs": list(r.needs)} for r in rules], indent=2))
        return EXIT_OK
    for r in rules:
        needs = f"  (needs {', '.join(r.needs)})" if r.needs else ""
        print(f"{r.code}  {r.name:<36} {r.category:<16} {r.severity}{needs}")
    return EXIT_OK


def main(argv: Optional[list] = None) -> int:
    import os
    import time

    started = time.perf_counter()  # what a time --budget counts from
    parser = build_parser()
    args = parser.parse_args(argv)
    args.started = started
    verbose = bool(getattr(args, "verbose", False))
    if not verbose:  # before any framework is imported: they read their log settings once, at import
        from .quiet import quiet_frameworks

        quiet_frameworks()
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
              "--verbose shows the traceback)", file=sys.stderr)
        if verbose or os.environ.get("MODELLINT_DEBUG"):
            raise
        return EXIT_ERROR

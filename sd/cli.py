"""Command line: ``sd run``, ``sd info`` (and the other subcommands).

Exit status: 0 success, 2 bad input or usage, 1 any other failure. Bad input
is reported in one paragraph without a traceback; ``--debug`` shows one.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from .errors import SdInputError, SdRuntimeError, printable


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so main() owns exit codes."""

    def error(self, message):
        raise _UsageError(f"{self.prog}: {message}\n{self.format_usage().strip()}")


class _UsageError(Exception):
    pass


def _version() -> str:
    from . import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sd", description="System-dynamics models of workshop clusters: "
                     "run Vensim .mdl files with PySD, calibrate and explore them.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"sd {_version()}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    # Every subcommand accepts --debug too (``sd run MODEL --debug``).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    run = sub.add_parser("run", parents=[common],
                         help="simulate a model (optionally a scenario) and write results")
    run.add_argument("model", help="Vensim .mdl file")
    run.add_argument("--scenario", metavar="FILE_OR_NAME",
                     help="a .cin or .toml file, or a scenario name from the *scenarios*.toml "
                          "beside the model (NAME@FILE.toml picks a file)")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                     help="override a constant (Vensim name); repeatable; applied after --scenario")
    run.add_argument("--out", metavar="DIR", help="output folder (default: results/<model>-<scenario>)")
    run.add_argument("--plot", nargs="+", default=[], metavar="VAR", help="variables to plot as PNG")
    run.add_argument("--engine", choices=("auto", "fast", "pysd"), default="auto",
                     help="simulation engine (default auto: the fast engine where it supports "
                          "the model, else PySD)")
    run.add_argument("--watch", action="store_true",
                     help="keep running: run again whenever the model, its scenario file or "
                          "its data files are saved (Ctrl-C to stop)")
    run.add_argument("--data", action="append", default=[], metavar="FILE",
                     help="a .tab or .csv file with the values of data variables that have "
                          "no equation (Vensim's data sources); repeatable")

    info = sub.add_parser("info", parents=[common],
                         help="list a model's stocks, flows, auxiliaries, constants and lookups")
    info.add_argument("model", help="Vensim .mdl file")

    cal = sub.add_parser("calibrate", parents=[common],
                         help="fit uncertain parameters to documented outcomes")
    cal.add_argument("spec", help="calibration spec (TOML), e.g. calibration/juarez_propane.toml")
    cal.add_argument("--data", metavar="CSV", help="documented outcomes replacing the spec's data")
    cal.add_argument("--out", metavar="DIR",
                     help="output folder (default: results/calibration-<spec stem>)")
    cal.add_argument("--resume", action="store_true",
                     help="continue from the checkpoint in DIR")
    cal.add_argument("--no-progress", action="store_true", help="no progress bar")

    check = sub.add_parser("check", parents=[common],
                           help="units check, documentation, diagram, feedback loops and reality "
                                "checks of a model (exit 1 when a check fails)")
    check.add_argument("model", help="Vensim .mdl file")
    check.add_argument("--tests", metavar="FILE",
                       help="extreme-condition tests and conservation declarations (TOML), "
                            "e.g. models/juarez_brick_kilns.tests.toml")
    check.add_argument("--no-sources", action="store_true",
                       help="do not require constants' comments to cite a source")
    check.add_argument("--max-loops", type=int, default=2000, metavar="N",
                       help="stop enumerating feedback loops after N (default 2000)")
    check.add_argument("--show-loops", type=int, default=50, metavar="N",
                       help="print at most N loops, shortest first (default 50)")

    diagram = sub.add_parser("diagram", parents=[common],
                             help="draw a model's Vensim diagram (all views, or one) to PNG/SVG/PDF")
    diagram.add_argument("model", help="Vensim .mdl file")
    diagram.add_argument("-o", "--out", required=True, metavar="FILE",
                         help="output file: .png, .svg or .pdf")
    diagram.add_argument("--view", metavar="NAME", help="draw only this view (default: all)")

    sens = sub.add_parser("sensitivity", parents=[common], help="Monte Carlo ensemble, Sobol and Morris "
                          "sensitivity analysis of a spec")
    sens.add_argument("spec", help="sensitivity spec (TOML), e.g. calibration/juarez_sensitivity.toml")
    sens.add_argument("--samples", type=int, metavar="N", help="Monte Carlo runs (overrides the spec)")
    sens.add_argument("--out", metavar="DIR",
                      help="output folder (default: results/sensitivity-<spec stem>)")
    sens.add_argument("--dask", metavar="ADDRESS|local",
                      help="run chunks on a Dask cluster (tcp://host:8786) or a new local one")
    sens.add_argument("--resume", action="store_true",
                      help="reuse the finished chunks of an interrupted run into DIR (checked "
                           "against the spec, model, scenario and seed)")
    sens.add_argument("--no-progress", action="store_true", help="no progress bar")

    exp = sub.add_parser("experiment", parents=[common],
                         help="run policies over each case's behaviour-consistent set and "
                              "test statements (e.g. the policy matrix)")
    exp.add_argument("spec", help="experiment spec (TOML), e.g. calibration/policy_matrix.toml")
    exp.add_argument("--out", metavar="DIR",
                     help="output folder (default: results/experiment-<spec stem>); a "
                          "calibration that has to run is kept in DIR/calibrations/ and reused "
                          "by the next experiment")

    comp = sub.add_parser("compare", parents=[common],
                         help="run named scenarios side by side: one figure, one table")
    comp.add_argument("model", help="Vensim .mdl file")
    comp.add_argument("scenarios", nargs="+", metavar="SCENARIO",
                      help="scenario names (from the *scenarios*.toml beside the model) or files")
    comp.add_argument("--out", metavar="DIR", help="output folder (default: results/compare-<model>)")
    comp.add_argument("--plot", nargs="+", metavar="VAR",
                      help="variables to plot and tabulate (default: the model's outputs)")
    comp.add_argument("--engine", choices=("auto", "fast", "pysd"), default="auto",
                      help="simulation engine")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sd`` command; returns the exit status."""
    parser = build_parser()
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    # A warning is one line for a user, no source line; only its format changes, so
    # whoever records warnings (a test, a caller) still receives them.
    formatwarning, warnings.formatwarning = warnings.formatwarning, _format_warning
    try:
        return _dispatch(parser, argv, debug)
    finally:
        warnings.formatwarning = formatwarning


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"sd: warning: {message}\n"


def _dispatch(parser, argv, debug: bool) -> int:
    command = None
    try:
        args = parser.parse_args(argv)
        command = args.command
        if command is None:
            parser.print_help()
            return 2
        return _COMMANDS[command](args)
    except SystemExit as exc:       # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except SdInputError as exc:
        if debug:
            raise
        print(f"sd: error: {printable(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `sd info MODEL | head`: the reader left; stop quietly, as Python's docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("sd: interrupted" + ("; the work finished so far is kept in the checkpoint "
                                   "folder: continue with the same command and --resume"
                                   if command == "calibrate" else ""), file=sys.stderr)
        return 130
    except SdRuntimeError as exc:
        if debug:
            raise
        print(f"sd: simulation failed: {printable(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if debug:
            raise
        print(f"sd: internal error: {type(exc).__name__}: {printable(exc)} (rerun with --debug "
              "for a traceback and report it)", file=sys.stderr)
        return 1


# -- sd run --------------------------------------------------------------------
def cmd_run(args) -> int:
    from .watch import Job, run_job, summary, watch

    job = Job(Path(args.model), args.scenario, tuple(args.sets),
              Path(args.out) if args.out else None, tuple(args.plot), args.engine,
              tuple(Path(d) for d in args.data))
    if args.watch:
        return watch(job)
    done = run_job(job)
    print(summary(done))
    for name in done.names:
        print(f"  wrote {done.out / name}")
    return 0


# -- sd info -------------------------------------------------------------------
_KIND_ORDER = ("stock", "flow", "auxiliary", "constant", "lookup", "control")


def cmd_info(args) -> int:
    from .model import load

    model = load(args.model)
    print(f"{model.path}")
    print(f"sha256 {model.sha256}")
    for kind in _KIND_ORDER:
        vars_ = [v for v in model.variables.values() if v.kind == kind]
        if not vars_:
            continue
        print(f"\n{kind.upper()}S ({len(vars_)})" if kind != "auxiliary" else f"\nAUXILIARIES ({len(vars_)})")
        width = max(len(v.name) for v in vars_)
        for v in sorted(vars_, key=lambda v: v.name.lower()):
            units = f"[{v.units}]" if v.units else "[no units]"
            comment = " ".join(v.comment.split())
            if len(comment) > 100:
                comment = comment[:97] + "..."
            print(f"  {v.name:<{width}}  {units:<16} {comment}")
    return 0


# -- sd calibrate ----------------------------------------------------------------
def cmd_calibrate(args) -> int:
    from ._common import safe_name
    from .calibration import SetResult, calibrate
    from .report.calibration import write_all
    from .report.folder import output_folder

    out = output_folder(args.out, Path("results") / f"calibration-{safe_name(Path(args.spec).stem)}")
    result = calibrate(args.spec, data=args.data, checkpoint=out / "checkpoint",
                       resume=args.resume, progress=not args.no_progress)
    if isinstance(result, SetResult):
        return _report_set(result, args, out)
    written = write_all(result, out)
    print(f"{Path(args.spec).name}: payoff {result.payoff:.6g}, {result.n_met}/"
          f"{len(result.targets)} documented outcomes met, {result.nfev} runs, "
          f"engine {result.provenance.get('engine')}")
    for path in written:
        print(f"  wrote {path}")
    if result.interrupted:
        print(f"sd: interrupted (Ctrl-C) during the {result.stage} stage: wrote the best fit so "
              f"far. Continue with: sd calibrate {args.spec} --out {out} --resume",
              file=sys.stderr)
        return 130
    return 0


def _report_set(result, args, out: Path) -> int:
    from .report.folder import staged
    from .report.set_calibration import write_set

    with staged(out, "fit.json") as folder:
        names = write_set(result, folder)
    import shutil

    shutil.rmtree(out / "checkpoint", ignore_errors=True)     # finished: nothing to resume
    m, scr = result.mass, result.screening
    print(f"{Path(args.spec).name}: {scr.draws:,} prior draws, {len(scr.accepted)} meet all "
          f"{len(result.rule.targets)} documented outcomes; the consistent set holds "
          f"{100 * m.share:.3g}% ± {100 * m.se:.2g}% of the prior; {len(result.members):,} "
          f"members from {len(set(result.groups.tolist()))} chains; {result.runs:,} runs in "
          f"{sum(result.seconds.values()):.1f} s, engine {result.provenance.get('engine')}"
          + (" (resumed)" if result.resumed else ""))
    if result.conclusions:
        import pandas as pd

        agree = result.spec.set.agree
        rows = pd.DataFrame([{"question": c.question[:90], "share": f"{c.share.share:.2f}",
                              "s.e.": f"{c.share.se:.2f}", "verdict": c.verdict(agree)}
                             for c in result.conclusions])
        print(rows.to_string(index=False))
    for v in result.variants:
        print(f"  variant {v.name}: {v.verdict} " + (
            f"(Bayes factor {v.ratio:.2g}, 95% [{v.ratio_bounds[0]:.2g}, "
            f"{v.ratio_bounds[1]:.2g}])" if v.search.found else
            "(no parameter set within the ranges meets every outcome)"))
    for name in names:
        print(f"  wrote {out / name}")
    return 0


# -- sd check / sd diagram -----------------------------------------------------
def cmd_check(args) -> int:
    from .model import load
    from .model.checks import check_model
    from .model.equations import read_equations
    from .model.loops import find_loops
    from .report.checks import check_report

    if args.max_loops < 1 or args.show_loops < 0:
        raise SdInputError("--max-loops must be at least 1 and --show-loops at least 0.")
    equations = read_equations(args.model)  # parsing only: no Python is built for these checks
    model = spec = None
    in_model = _model_reality_checks(equations.path)  # Vensim's :THE CONDITION: equations
    if args.tests or in_model:
        model = load(args.model)  # the reality checks run the model
    if args.tests:
        from .reality import load_tests
        spec = load_tests(args.tests, model)  # bad tests file: exit 2 before any run
    findings = check_model(equations.path, sources=not args.no_sources, equations=equations)
    loops = find_loops(equations, max_loops=args.max_loops)
    reality, sources = None, []
    if in_model:
        from .vensim_checks import run_model_checks
        reality = run_model_checks(in_model, model)  # names resolved before any run
        sources.append("the model's Reality Check equations")
    if spec is not None:
        from .reality import run_tests
        reality = (reality or []) + run_tests(spec, model, equations)
        sources.append(str(args.tests))
    text, failed = check_report(equations.path.name, len(equations.elements), findings, loops,
                                reality, "; ".join(sources), show_loops=args.show_loops)
    print(text)
    return 1 if failed else 0


def _model_reality_checks(path):
    """The test inputs and constraints written in a Vensim ``.mdl`` (None for XMILE)."""
    from .model.reality_syntax import read_reality_checks
    from .model.source import XMILE_SUFFIXES

    if Path(path).suffix.lower() in XMILE_SUFFIXES:
        return None
    return read_reality_checks(path) or None


_DIAGRAM_FORMATS = (".png", ".svg", ".pdf")


def cmd_diagram(args) -> int:
    from .errors import suggest
    from .model.sketch import parse_sketch
    from .plots import draw_sketch, save_diagram
    from .report.folder import output_file

    path, out = Path(args.model), output_file(args.out, "-o")
    if out.suffix.lower() not in _DIAGRAM_FORMATS:
        raise SdInputError(f"-o {out}: the diagram is written as {', '.join(_DIAGRAM_FORMATS)} "
                           "(chosen by the file's suffix).")
    if not path.is_file():
        raise SdInputError(f"{path}: no such model file.")
    if path.suffix.lower() != ".mdl":
        raise SdInputError(f"{path.name}: sd diagram draws the sketch of a Vensim .mdl; the views "
                           "of an XMILE file are not read.")
    sketch = parse_sketch(path)
    if not sketch.views:
        raise SdInputError(f"{path.name} has no sketch (no '\\\\\\---/// Sketch information' "
                           "section): there is no diagram to draw.")
    names = [v.name for v in sketch.views]
    if args.view is not None and args.view.lower() not in (n.lower() for n in names):
        raise SdInputError(f"{path.name} has no view named {args.view!r}."
                           + (suggest(args.view, names) or f" Views: {', '.join(names)}."))
    fig = draw_sketch(sketch, view=args.view)
    save_diagram(fig, out, fmt=out.suffix[1:].lower())
    views = [n for n in names if args.view is None or n.lower() == args.view.lower()]
    print(f"{path.name}: drew {len(views)} view(s) ({', '.join(views)})")
    print(f"  wrote {out}")
    return 0


# -- sd sensitivity / sd compare ------------------------------------------------
def cmd_sensitivity(args) -> int:
    from ._common import safe_name
    from .report.folder import CHECKPOINT, output_folder, staged
    from .report.sensitivity import write_sensitivity
    from .sensitivity_analysis import sensitivity

    out = output_folder(args.out, Path("results") / f"sensitivity-{safe_name(Path(args.spec).stem)}")
    try:
        with staged(out, "provenance.json", kind="sensitivity", resume=args.resume) as folder:
            result = sensitivity(args.spec, samples=args.samples, dask=args.dask,
                                 progress=not args.no_progress, store=folder / "ensemble.nc",
                                 checkpoint=folder / CHECKPOINT)
            names = write_sensitivity(result, folder)
    except KeyboardInterrupt:
        kept = any(out.glob(f".sd-sensitivity-*/{CHECKPOINT}/*.nc"))
        print("sd: interrupted" + (f"; the finished chunks are kept in {out}: continue with "
                                   f"sd sensitivity {args.spec} --out {out} --resume"
                                   if kept else " before any chunk finished"), file=sys.stderr)
        return 130
    spec = result.spec
    print(f"{spec.path.name}: {spec.n} Monte Carlo runs"
          + (f", Sobol {spec.sobol_runs()} runs" if spec.sobol_n else "")
          + (f", Morris {spec.morris_runs()} runs" if spec.morris_trajectories else "")
          + f" in {result.seconds:.1f} s" + (f" (dask {args.dask})" if args.dask else "")
          + f", engine {result.provenance.get('engine')}")
    resumed = result.provenance.get("resumed")
    if resumed:
        print(f"  resumed: {resumed['runs']} runs of {resumed['chunks']} finished chunks reused")
    elif args.resume:
        print(f"  --resume: no finished chunks of this spec in {out}; ran everything")
    for note in result.notes:
        print(f"  warning: {note}")
    for name in names:
        print(f"  wrote {out / name}")
    return 0


def cmd_experiment(args) -> int:
    from ._common import safe_name
    from .experiments import DEFAULT_SEARCH, experiment
    from .report.experiment import MANIFEST, verdict_table, write_experiment
    from .report.folder import output_folder, staged
    from .report.set_calibration import write_set

    out = output_folder(args.out, Path("results") / f"experiment-{safe_name(Path(args.spec).stem)}")
    kept = out / "calibrations"

    def keep(case, result):
        folder = kept / safe_name(result.spec.path.stem)
        with staged(folder, "fit.json", kind="calibrate") as scratch:
            write_set(result, scratch)
        return folder

    def log(line):
        print(f"sd: {printable(line)}", file=sys.stderr, flush=True)

    result = experiment(args.spec, search=((kept, ""), *DEFAULT_SEARCH),
                        on_calibrated=keep, log=log)
    with staged(out, MANIFEST, kind="experiment") as folder:
        names = write_experiment(result, folder)
    reused = sum(s.how == "reused" for s in result.sets)
    print(f"{Path(args.spec).name}: {len(result.spec.cases)} cases ({reused} sets reused, "
          f"{len(result.sets) - reused} calibrated now), {len(result.spec.policies)} policies "
          f"and {len(result.spec.statements)} statements; the sets in "
          f"{result.seconds['calibration']:.1f} s, {result.runs:,} policy runs in "
          f"{result.seconds['runs']:.1f} s")
    print("\n".join(verdict_table(result)[2:-2]))
    for name in names:
        print(f"  wrote {out / name}")
    return 0


def cmd_compare(args) -> int:
    from ._common import safe_name
    from .comparison import compare
    from .report.comparison import text_table, write_comparison
    from .report.folder import output_folder, staged

    out = output_folder(args.out, Path("results") / f"compare-{safe_name(Path(args.model).stem)}")
    result = compare(args.model, args.scenarios, variables=args.plot, engine=args.engine)
    with staged(out, "provenance.json", kind="compare") as folder:
        names = write_comparison(result, folder)
    print(printable(text_table(result.table)))
    for name in names:
        print(f"  wrote {out / name}")
    return 0


_COMMANDS = {"run": cmd_run, "info": cmd_info, "calibrate": cmd_calibrate, "check": cmd_check,
             "diagram": cmd_diagram, "sensitivity": cmd_sensitivity, "compare": cmd_compare,
             "experiment": cmd_experiment}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The text report of ``sd check``: findings, loops and reality checks as a readable list."""
from __future__ import annotations

_SHOW_LOOPS = 50


def check_report(name: str, n_variables: int, findings, loops=None, reality=None,
                 tests_path=None, show_loops: int = _SHOW_LOOPS) -> tuple[str, bool]:
    """Format everything ``sd check`` found.

    Parameters
    ----------
    name : str
        The model file's name (prefix of every line).
    n_variables : int
        Number of model variables, for the summary.
    findings : list of sd.model.checks.Finding
    loops : sd.model.loops.LoopReport, optional
    reality : list of sd.reality.CheckResult, optional
    tests_path : path or str, optional
        Where the reality checks came from (the tests file, the model's own
        Reality Check equations, or both).
    show_loops : int
        Print at most this many loops (shortest first).

    Returns
    -------
    (str, bool)
        The report and whether any check failed.
    """
    lines = []
    errors = [f for f in findings if f.severity == "error"]
    warnings = [f for f in findings if f.severity != "error"]
    for section in ("units", "documentation", "diagram"):
        mine = [f for f in findings if f.check == section]
        n_err = sum(f.severity == "error" for f in mine)
        state = "ok" if not mine else f"{n_err} error(s), {len(mine) - n_err} warning(s)"
        lines.append(f"{name}: {section.upper()}: {state}")
        lines += [f"  {'warning: ' if f.severity != 'error' else ''}{f.message}" for f in mine]
    if loops is not None:
        counts = loops.counts()
        bound = "" if loops.complete else (f" (enumeration stopped at {loops.max_loops} loops; the "
                                           "model has more: raise --max-loops to see them)")
        lines.append(f"{name}: FEEDBACK LOOPS: {len(loops.loops)} ({counts['R']} reinforcing, "
                     f"{counts['B']} balancing, {counts['U']} of unknown polarity){bound}")
        lines += [f"  {loop}" for loop in loops.loops[:show_loops]]
        if len(loops.loops) > show_loops:
            lines.append(f"  ... {len(loops.loops) - show_loops} longer loops not shown "
                         "(--show-loops N)")
    failed_reality = []
    if reality is not None:
        failed_reality = [r for r in reality if not r.passed]
        unchecked = sum(not r.checked for r in reality)
        lines.append(f"{name}: REALITY CHECKS ({tests_path}): "
                     f"{len(reality) - len(failed_reality) - unchecked} passed, "
                     f"{len(failed_reality)} failed"
                     + (f", {unchecked} not checked (unsupported construct)" if unchecked else ""))
        lines += [f"  {r}" for r in reality]
    failed = bool(errors or failed_reality)
    lines.append(f"{name}: {n_variables} variables; {len(errors)} error(s), {len(warnings)} "
                 f"warning(s)" + (f", {len(failed_reality)} failed reality check(s)"
                                  if reality is not None else "")
                 + (" -> FAILED" if failed else " -> OK"))
    return "\n".join(lines), failed

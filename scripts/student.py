"""Build the student edition of the chapters: solutions removed, a stub cell after each exercise.

The chapters in ``chapters/`` are the only source. A student notebook is derived from one:

* every solution is removed: the cells from the markdown cell holding
  ``{solution-start} LABEL`` to the one holding ``{solution-end}`` (the text before the
  start and after the end, in the same cells, is kept);
* the stub shown as indented text inside each exercise becomes a code cell placed right
  after the exercise. The cell imports what it needs, defines the function with the
  exercise's signature and a body that raises ``NotImplementedError``, and calls the
  checker, which answers "not attempted yet" until the learner fills it in;
* a first line says how to install ``mixlib``; outputs are stripped.

Usage::

    python scripts/student.py                     # every chapter into lab/ (overwrites)
    python scripts/student.py --out lab --missing-only
    python scripts/student.py --out lab 02        # one chapter, by number or name

The Sphinx extension ``_ext/student_edition.py`` calls :func:`student_notebook` to put the
same notebooks on the website.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"

INSTALL_LINE = (
    "**Student edition.** To run it you need `mixlib`: in a clone of the book's repository run "
    "`make lab` (it installs everything and opens this folder), or `pip install -e .` there."
)
YOUR_TURN = ("Write your answer in the code cell below this box and run it: "
             "the checker replies under the cell.")

_FENCE_OPTIONS = r"(?:[ \t]*:[^\n]*\n)*"
SOLUTION_START = re.compile(r"^(?P<fence>`{3,}|:{3,})\{solution-start\}[ \t]+(?P<label>\S+)[^\n]*\n"
                            + _FENCE_OPTIONS + r"(?P=fence)[ \t]*$", re.MULTILINE)
SOLUTION_END = re.compile(r"^(?P<fence>`{3,}|:{3,})\{solution-end\}[^\n]*\n" + _FENCE_OPTIONS
                          + r"(?P=fence)[ \t]*$", re.MULTILINE)
RUN_TIMES = "run-times.json"  # written by the book's build, beside the site's pages
BUILT_SITE = ROOT / "_build" / "html"
RUN_TIME_LINE = re.compile(r"^[*_]*Run time\b[^\n]*\n?", re.MULTILINE | re.IGNORECASE)
EXERCISE_OPEN = re.compile(r"^(?P<fence>`{3,}|:{3,})\{exercise\}[ \t]*(?P<title>[^\n]*)$", re.MULTILINE)


@dataclass
class Exercise:
    """One exercise of a chapter, as the student edition needs it."""

    label: str
    title: str
    stub: str | None = None                                   # the indented stub, dedented
    solution_code: list[str] = field(default_factory=list)    # code cells of its solution


# --------------------------------------------------------------------------- markdown

def _remove_solutions(text: str, inside: bool) -> tuple[str, bool, list[str]]:
    """Cut the solution parts out of one markdown text.

    ``inside`` says whether the text starts inside a solution. Returns the kept text,
    whether it ends inside a solution, and the labels of the solutions that start in it.
    """
    kept: list[str] = []
    labels: list[str] = []
    pos = 0
    while True:
        if inside:
            end = SOLUTION_END.search(text, pos)
            if end is None:
                return "".join(kept).strip("\n"), True, labels
            pos, inside = end.end(), False
        else:
            start = SOLUTION_START.search(text, pos)
            if start is None:
                kept.append(text[pos:])
                return "".join(kept).strip("\n"), False, labels
            kept.append(text[pos:start.start()])
            labels.append(start.group("label"))
            pos, inside = start.end(), True


def _exercise_blocks(text: str) -> list[tuple[int, int, str, str]]:
    """``(start, end, title, label)`` of every exercise directive in ``text``."""
    blocks = []
    for opening in EXERCISE_OPEN.finditer(text):
        fence = opening.group("fence")
        closing = re.compile(r"^" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}[ \t]*$", re.MULTILINE)
        close = closing.search(text, opening.end() + 1)
        end = close.end() if close else len(text)
        body = text[opening.end():end]
        label = re.search(r"^[ \t]*:label:[ \t]*(\S+)", body, re.MULTILINE)
        blocks.append((opening.start(), end, opening.group("title").strip(), label.group(1) if label else ""))
    return blocks


def _split_stub(body: str) -> tuple[str, str | None]:
    """Take the indented stub (a ``def`` shown as an indented code block) out of an exercise body.

    Returns the body with the stub replaced by a pointer to the code cell, and the stub's
    code (dedented), or ``None`` when the exercise shows no stub.
    """
    lines = body.split("\n")
    i = 0
    while i < len(lines):
        if lines[i].startswith("    ") and lines[i].strip() and (i == 0 or not lines[i - 1].strip()):
            j = i
            while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
                j += 1
            block = "\n".join(line[4:] for line in lines[i:j]).strip("\n")
            if re.search(r"^def \w+\(", block, re.MULTILINE):
                before = lines[:i]
                # drop an introducing paragraph such as "Copy this stub into a cell ...:"
                k = len(before)
                while k > 0 and not before[k - 1].strip():
                    k -= 1
                p = k
                while p > 0 and before[p - 1].strip():
                    p -= 1
                paragraph = " ".join(before[p:k])
                if "stub" in paragraph.lower() and paragraph.rstrip().endswith(":"):
                    before = before[:p]
                rest = lines[j:]
                new = "\n".join(before).rstrip("\n") + "\n\n" + YOUR_TURN + "\n"
                tail = "\n".join(rest).lstrip("\n")
                return new + ("\n" + tail if tail and not tail.startswith(("```", ":::")) else tail), block
            i = j
        else:
            i += 1
    return body, None


# --------------------------------------------------------------------------- code

def _parse(source: str) -> ast.Module | None:
    """Parse a code cell, ignoring IPython magics and shell escapes."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n"))
    try:
        return ast.parse(code)
    except SyntaxError:
        return None


def _chapter_imports(code_cells: list[str]) -> dict[str, tuple[str, str | None, str | None]]:
    """Map each name bound by a top-level import of the chapter to ``(module, name, asname)``.

    ``name`` is ``None`` for ``import module [as asname]``.
    """
    bound: dict[str, tuple[str, str | None, str | None]] = {}
    for source in code_cells:
        tree = _parse(source)
        if tree is None:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    bound[alias.asname or alias.name.split(".")[0]] = (alias.name, None, alias.asname)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    bound[alias.asname or alias.name] = (node.module, alias.name, alias.asname)
    return bound


def _import_lines(needed: list[tuple[str, str | None, str | None]]) -> list[str]:
    """Import statements, plain imports first, ``from`` imports grouped by module."""
    plain = sorted({f"import {m}" + (f" as {a}" if a else "") for m, n, a in needed if n is None})
    grouped: dict[str, set[str]] = {}
    for module, name, asname in needed:
        if name is not None:
            grouped.setdefault(module, set()).add(name + (f" as {asname}" if asname else ""))
    froms = [f"from {m} import {', '.join(sorted(names))}" for m, names in sorted(grouped.items())]
    return plain + froms


def _names_used(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _checker_calls(tree: ast.Module) -> list[tuple[str, str, str | None]]:
    """``(module, checker, argument)`` for every top-level ``chNN.check_x(arg, ...)`` call."""
    calls = []
    for node in tree.body:
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Attribute) and isinstance(node.value.func.value, ast.Name)
                and node.value.func.attr.startswith("check")):
            args = node.value.args
            arg = args[0].id if args and isinstance(args[0], ast.Name) else None
            calls.append((node.value.func.value.id, node.value.func.attr, arg))
    return calls


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def stub_cell_source(exercise: Exercise, imports: dict[str, tuple[str, str | None, str | None]]) -> str:
    """The code of the cell that follows an exercise: imports, the stub function, the checker call."""
    stub_tree = _parse(exercise.stub) if exercise.stub else None
    solution_trees = [t for t in (_parse(s) for s in exercise.solution_code) if t is not None]

    # the checker: the one the stub calls, else the one the solution calls
    calls = _checker_calls(stub_tree) if stub_tree else []
    if not calls:
        calls = [c for t in solution_trees for c in _checker_calls(t)]
    if not calls:
        raise ValueError(f"exercise {exercise.label}: neither its stub nor its solution calls a checker")
    module, checker, _ = calls[0]

    # the function: its signature from the stub, its docstring (if any) from the solution
    solution_defs = {name: fn for t in solution_trees for name, fn in _functions(t).items()}
    solution_name = next((arg for t in solution_trees for m, c, arg in _checker_calls(t)
                          if (m, c) == (module, checker)), None)
    solution_fn = solution_defs.get(solution_name or "")
    stub_fns = list(_functions(stub_tree).values()) if stub_tree else []
    fn = stub_fns[0] if stub_fns else solution_fn
    if fn is None:
        raise ValueError(f"exercise {exercise.label}: no function to write a stub for")
    name = fn.name
    note = None
    if name in imports:  # do not replace a library function the chapter imported under that name
        new = solution_name if solution_name and solution_name != name else f"my_{name}"
        note = f"# called {new}, so as not to replace the library's `{name}` imported above"
        name = new

    comments = []
    if exercise.stub and stub_fns:
        lines = exercise.stub.split("\n")
        for line in lines[stub_fns[0].body[0].lineno - 1: stub_fns[0].end_lineno]:
            if "#" in line:
                comments.append("# " + line.split("#", 1)[1].strip())
    if not comments:
        comments = ["# your code here"]
    docstring = ast.get_docstring(solution_fn) if solution_fn else None
    if not docstring:
        docstring = f"{exercise.title}: see the exercise above."

    header = f"def {name}({ast.unparse(fn.args)})" + (f" -> {ast.unparse(fn.returns)}" if fn.returns else "") + ":"
    body = [f'    """{docstring}"""'] + ["    " + c for c in comments] + ["    raise NotImplementedError"]

    used = {"torch"} | _names_used(fn) | (_names_used(solution_fn) if solution_fn else set())
    needed = [imports[n] for n in sorted(used) if n in imports and n not in (module, fn.name)
              and not imports[n][0].startswith("mixlib.exercises")]
    if ("torch", None, None) not in needed:
        needed.append(("torch", None, None))
    lines = [f"# Exercise: {exercise.title}"]
    lines += _import_lines(needed)
    lines.append(f"from mixlib.exercises import {module}")
    lines += ["", ""] + ([note] if note else []) + [header] + body + ["", ""]
    lines.append(f"{module}.{checker}({name})")
    return "\n".join(lines)


# --------------------------------------------------------------------------- notebook

def _cell_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)[:64]


def student_notebook(source: Path | str, runtime_note: str | None = None) -> nbformat.NotebookNode:
    """The student edition of the chapter notebook at ``source``.

    ``runtime_note``, if given, is added under the install line (the website passes the
    run time its build measured).
    """
    source = Path(source)
    nb = nbformat.read(source, as_version=4)
    student = copy.deepcopy(nb)
    code_cells = [c.source for c in nb.cells if c.cell_type == "code"]
    imports = _chapter_imports(code_cells)

    # A stub cell needs its exercise's solution code, which follows the exercise: it is
    # placed when the next cell outside the solution comes (or at the end).
    exercises: dict[str, Exercise] = {}
    out: list[nbformat.NotebookNode] = []
    inside: str | None = None          # label of the solution we are in
    pending: list[Exercise] = []       # exercises whose stub cell is still to be placed

    def flush() -> None:
        for ex in pending:
            cell = nbformat.v4.new_code_cell(stub_cell_source(ex, imports))
            cell.id = _cell_id("stub-" + ex.label)
            out.append(cell)
        pending.clear()

    for cell in nb.cells:
        if inside is not None and cell.cell_type == "code":
            exercises[inside].solution_code.append(cell.source)
            continue
        if cell.cell_type != "markdown":
            flush()
            new = copy.deepcopy(cell)
            if new.cell_type == "code":
                new.outputs, new.execution_count = [], None
            out.append(new)
            continue
        kept, still_inside, labels = _remove_solutions(cell.source, inside is not None)
        # cut the kept text after each exercise, so that its stub cell follows it
        pieces: list[tuple[str, Exercise | None]] = []
        pos = 0
        for start, end, title, label in _exercise_blocks(kept):
            body, stub = _split_stub(kept[start:end])
            ex = exercises.setdefault(label, Exercise(label, title))
            ex.stub = stub
            pieces.append((kept[pos:start] + body, ex))
            pos = end
        pieces.append((kept[pos:], None))
        for text, ex in pieces:
            if text.strip():
                flush()
                new = copy.deepcopy(cell)
                new.source = text.strip("\n")
                if len(pieces) > 1:
                    new.id = _cell_id(f"{cell.get('id', 'md')}-{len(out)}")
                out.append(new)
            if ex is not None:
                pending.append(ex)
        if labels:
            inside = labels[-1] if still_inside else None
            for label in labels:
                exercises.setdefault(label, Exercise(label, label))
        elif not still_inside:
            inside = None
    if inside is not None:
        raise ValueError(f"{source.name}: solution {inside} is never closed by a solution-end")
    flush()  # the last exercise's stub
    student.cells = out

    head = [nbformat.v4.new_markdown_cell(INSTALL_LINE)]
    head[0].id = "install-mixlib"
    if runtime_note:
        # the measured run time replaces one the chapter may state in its opening
        for cell in out:
            if cell.cell_type == "markdown" and RUN_TIME_LINE.search(cell.source):
                cell.source = re.sub(r"\n{3,}", "\n\n", RUN_TIME_LINE.sub("", cell.source)).strip("\n")
                break
        note = nbformat.v4.new_markdown_cell(runtime_note)
        note.id = "run-time"
        head.append(note)
    student.cells = head + student.cells
    student.metadata["mixlib"] = {"edition": "student", "source": f"chapters/{source.name}"}
    nbformat.validate(student)
    return student


def format_runtime(seconds: float) -> str:
    """``about 40 s``, ``about 2 min``: a run time rounded as a reader would say it."""
    if seconds < 60:
        return f"about {max(5, round(seconds / 5) * 5)} s"
    return f"about {max(1, round(seconds / 60))} min"


def runtime_sentence(seconds: float | None, cores: int) -> str | None:
    """The one sentence that states a chapter's run time, on its page and in its student edition."""
    if seconds is None:
        return None
    return (f"Run time: {format_runtime(seconds)} from a fresh kernel on {cores} CPU core{'s' if cores != 1 else ''}, "
            "measured when this site was built.")


def write_run_times(path: Path, seconds: dict[str, float], cores: int) -> None:
    """Store the build's measured run times (seconds per page name, e.g. ``chapters/02_mixup``)."""
    path.write_text(json.dumps({"cores": cores, "seconds": seconds}, indent=1, sort_keys=True) + "\n")


def runtime_note(source: Path, site: Path = BUILT_SITE) -> str | None:
    """The run-time line the built site gives ``source``, or None when no build has measured it."""
    try:
        stored = json.loads((site / RUN_TIMES).read_text())
    except (OSError, ValueError):
        return None
    sentence = runtime_sentence(stored.get("seconds", {}).get(f"chapters/{source.stem}"), stored.get("cores", 1))
    return f"*{sentence}*" if sentence else None


def chapter_paths(selection: list[str] | None = None, chapters: Path = CHAPTERS) -> list[Path]:
    """The chapter notebooks, or those whose name starts with one of ``selection`` (e.g. ``02``)."""
    paths = sorted(chapters.glob("[0-9]*.ipynb"))
    if not selection:
        return paths
    chosen = []
    for item in selection:
        stem = Path(item).stem
        if stem.isdigit():
            stem = f"{int(stem):02d}"  # CH=2 means chapter 02
        matches = [p for p in paths if p.stem == stem or p.stem.startswith(stem + "_") or p.stem.startswith(stem)]
        if not matches:
            raise SystemExit(f"no chapter matches {item!r}; chapters: {', '.join(p.stem for p in paths)}")
        chosen += [m for m in matches[:1] if m not in chosen]
    return chosen


def write_student(source: Path, target: Path, runtime_note: str | None = None) -> Path:
    """Write the student edition of ``source`` to ``target`` (a file path)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(student_notebook(source, runtime_note), target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter numbers or names (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "lab", help="folder for the notebooks (default: lab/)")
    parser.add_argument("--check", action="store_true",
                        help="only derive each edition in memory and fail on a chapter the generator cannot handle")
    parser.add_argument("--missing-only", action="store_true",
                        help="leave notebooks that are already there alone (the learner's work)")
    args = parser.parse_args(argv)
    if args.check:
        for path in chapter_paths(args.chapters):
            try:
                student_notebook(path)
            except Exception as exc:  # noqa: BLE001 - every failure is reported the same way
                print(f"{path.name}: the student edition cannot be derived: {exc}")
                return 1
        return 0
    for path in chapter_paths(args.chapters):
        target = args.out / path.name
        if args.missing_only and target.exists():
            print(f"kept      {target} (your copy; `make reset CH={path.stem[:2]}` starts it afresh)")
            continue
        write_student(path, target, runtime_note(path))
        print(f"written   {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
import os
import re
import shutil
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"

INSTALL_LINE = (
    "**Student edition.** To run it you need `mixlib`. From the chapter's zip on the website: "
    "`pip install \"mixlib-*.whl[notebooks]\"` next to this file (its `README.txt` has the five steps). "
    "In the course's folder (the course download, or a clone): `make lab`, or `pip install -e .` there. "
    "Open it in JupyterLab with the `jupyterlab-myst` extension (both routes install it): other notebook "
    "viewers show the exercise boxes and equations as raw text."
)
YOUR_TURN = ("Write your answer in the code cell below this box and run it: "
             "the checker replies under the cell.")

_FENCE_OPTIONS = r"(?:[ \t]*:[^\n]*\n)*"
SOLUTION_START = re.compile(r"^(?P<fence>`{3,}|:{3,})\{solution-start\}[ \t]+(?P<label>\S+)[^\n]*\n"
                            + _FENCE_OPTIONS + r"(?P=fence)[ \t]*$", re.MULTILINE)
SOLUTION_END = re.compile(r"^(?P<fence>`{3,}|:{3,})\{solution-end\}[^\n]*\n" + _FENCE_OPTIONS
                          + r"(?P=fence)[ \t]*$", re.MULTILINE)
BACKUP = ".backup"  # where `make reset` keeps the copy it replaces (inside lab/)
RUN_TIMES = "run-times.json"  # written by the book's build, beside the site's pages
BUILT_SITE = Path(os.environ.get("BOOK_SITE", ROOT / "_build" / "html"))  # as the tests read it
RUN_TIME_LINE = re.compile(r"^[*_]*Run time\b[^\n]*\n?", re.MULTILINE | re.IGNORECASE)
EXERCISE_OPEN = re.compile(r"^(?P<fence>`{3,}|:{3,})\{exercise\}[ \t]*(?P<title>[^\n]*)$", re.MULTILINE)


@dataclass
class Exercise:
    """One exercise of a chapter, as the student edition needs it."""

    label: str
    title: str
    stub: str | None = None                                   # the indented stub, dedented
    follow_up: str = ""                                       # "Then use it on ..." / "answer in words"
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

FOLLOW_UP = re.compile(r"(?:^|(?<=[.?!)]\s))(Then\b[^\n]*?(?:[.?!](?=\s|$)|$)(?:\s+[A-Z][^\n]*?[.?!](?=\s|$))*)",
                       re.DOTALL)


def follow_up(body: str) -> str:
    """The part of an exercise that comes after the function: "Then use it on ...", "Then answer in words ..."."""
    text = re.sub(r"\s+", " ", re.sub(r"^[ \t]*:[\w-]+:.*$", "", body.replace(YOUR_TURN, ""), flags=re.MULTILINE))
    text = re.sub(r"[`:]{3,}\{?[\w:-]*\}?", " ", text)
    found = FOLLOW_UP.search(text)
    return found.group(1).strip() if found else ""


def follow_up_cells(ex: Exercise) -> list[nbformat.NotebookNode]:
    """A cell for the "Then ..." part of an exercise, and one for the answer in words, so both have a place."""
    if not ex.follow_up:
        return []
    prompt = nbformat.v4.new_markdown_cell(
        f"**{ex.title}: after the function.** {ex.follow_up} Use the code cell below, then write what you "
        "found in the answer cell under it (double-click it to edit).")
    code = nbformat.v4.new_code_cell(f"# {ex.title}: the next step (use your function from the cell above)\n")
    answer = nbformat.v4.new_markdown_cell("*Your answer, in words:* ...")
    for cell, name in ((prompt, "then"), (code, "then-code"), (answer, "then-answer")):
        cell.id = _cell_id(f"{name}-{ex.label}")
    answer.metadata["mixlib"] = {"answer": ex.label}
    return [prompt, code, answer]


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
            out.extend(follow_up_cells(ex))
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
            ex.follow_up = follow_up(body)
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
    read_like_the_site(student)
    student.metadata.update(kernel_metadata())
    student.metadata["mixlib"] = {"edition": "student", "source": f"chapters/{source.name}"}
    nbformat.validate(student)
    return student


# --------------------------------------------------------------------------- reading like the site
# JupyterLab renders MyST one notebook at a time: a citation, a reference to another chapter or a
# number (Exercise 4.1, eq. (4.1), Lemma 4.1) would show as "not found" or be numbered from 1. The
# student edition therefore writes them as the website shows them. The numbers are computed from the
# chapters in the order of _toc.yml, as Sphinx numbers them; tests compare them with the built site.

NUMBERED_KINDS = {"exercise": "Exercise", "prf:theorem": "Theorem", "prf:lemma": "Lemma",
                  "prf:corollary": "Corollary", "prf:proposition": "Proposition", "prf:definition": "Definition"}
DIRECTIVE_OPEN = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<kind>exercise|prf:\w+)\}[ \t]*(?P<title>[^\n]*)\n"
                            r"(?P<options>(?:[ \t]*:[\w-]+:[^\n]*\n)*)", re.MULTILINE)
LABELLED_MATH = re.compile(r"\$\$(?P<body>(?:(?!\$\$).)+?)\$\$[ \t]*\((?P<label>[\w-]+)\)", re.DOTALL)
SECTION_LABEL = re.compile(r"^\((?P<label>[\w-]+)\)=[ \t]*\n+#+[ \t]+(?P<title>[^\n]+)$", re.MULTILINE)
ROLE = re.compile(r"\{(?P<role>[\w:-]+)\}`(?P<content>[^`]*)`")
EXPLICIT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.DOTALL)
TOC = ROOT / "_toc.yml"


@dataclass
class SiteNumbers:
    """What the website calls each labelled thing: ``Theorem 4.1``, ``(4.1)``, a section's title."""

    names: dict[str, str] = field(default_factory=dict)       # label -> "Exercise 4.1" / "(4.1)" / title
    titles: dict[str, str] = field(default_factory=dict)      # label of a numbered directive -> its title
    documents: dict[str, str] = field(default_factory=dict)   # docname -> page title


def _markdown_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        nb = nbformat.read(path, as_version=4)
        return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return path.read_text(encoding="utf8")


def _toc_documents(toc: Path = TOC) -> list[tuple[str, bool]]:
    """``(docname, numbered)`` for every page of the table of contents, in order."""
    import yaml  # a dependency of Jupyter Book

    data = yaml.safe_load(toc.read_text())
    docs = [(data["root"], False)]
    for part in data.get("parts", []):
        for chapter in part.get("chapters", []):
            docs.append((chapter["file"], bool(part.get("numbered"))))
    return docs


def site_numbers(root: Path = ROOT) -> SiteNumbers:
    """Number every exercise, theorem-like block and labelled equation as the website does."""
    numbers = SiteNumbers()
    chapter = 0
    for docname, numbered in _toc_documents(root / "_toc.yml"):
        matches = [root / f"{docname}{suffix}" for suffix in (".ipynb", ".md")]
        path = next((p for p in matches if p.exists()), None)
        if path is None:
            continue
        text = _markdown_of(path)
        title = re.search(r"^#[ \t]+([^\n]+)$", text, re.MULTILINE)
        numbers.documents[docname] = title.group(1).strip() if title else docname
        for match in SECTION_LABEL.finditer(text):
            numbers.names.setdefault(match.group("label"), match.group("title").strip())
        if not numbered:
            continue
        chapter += 1
        counters: dict[str, int] = {}
        for match in DIRECTIVE_OPEN.finditer(text):
            kind, options = match.group("kind"), match.group("options")
            label = re.search(r":label:[ \t]*(\S+)", options)
            if kind not in NUMBERED_KINDS or ":nonumber:" in options or label is None:
                continue
            counters[kind] = counters.get(kind, 0) + 1
            numbers.names[label.group(1)] = f"{NUMBERED_KINDS[kind]} {chapter}.{counters[kind]}"
            numbers.titles[label.group(1)] = match.group("title").strip()
        for k, match in enumerate(LABELLED_MATH.finditer(text), start=1):
            numbers.names[match.group("label")] = f"({chapter}.{k})"
    return numbers


def _bibliography(path: Path = ROOT / "references.bib") -> dict[str, tuple[str, str, str]]:
    """``key -> (authors as cited, year, the full reference)`` from references.bib."""
    from pybtex.database import parse_file  # a dependency of sphinxcontrib-bibtex

    accents = {"'": "\u0301", '"': "\u0308", "`": "\u0300", "^": "\u0302", "~": "\u0303"}

    def plain(text: str) -> str:
        text = re.sub(r"\\(['\"`^~])\s*\{?(\w)\}?",
                      lambda m: unicodedata.normalize("NFC", m.group(2) + accents[m.group(1)]), text)
        return re.sub(r"[{}\\]", "", text).replace("--", "–").strip()

    entries = {}
    for key, entry in parse_file(str(path)).entries.items():
        people = entry.persons.get("author", [])
        last = [plain(" ".join(p.prelast_names + p.last_names)) for p in people]
        cited = (last[0] if len(last) == 1 else f"{last[0]} and {last[1]}" if len(last) == 2
                 else f"{last[0]} et al." if last else plain(entry.fields.get("title", key)))
        names = ", ".join(plain(" ".join(p.first_names + p.middle_names + p.prelast_names + p.last_names))
                          for p in people)
        fields = entry.fields
        venue = next((plain(fields[f]) for f in ("booktitle", "journal", "howpublished", "publisher")
                      if f in fields), "")
        where = f" {venue}." if venue else ""
        link = (f" <{fields['url']}>" if "url" in fields
                else f" arXiv:{fields['eprint']}." if "eprint" in fields else "")
        full = f"{names}. {plain(fields.get('title', ''))}.{where} {fields.get('year', '')}.{link}"
        entries[key] = (cited, fields.get("year", ""), re.sub(r"\s+", " ", full).strip())
    return entries


def _citation(role: str, keys: list[str], bib: dict[str, tuple[str, str, str]], cited: list[str]) -> str:
    missing = [k for k in keys if k not in bib]
    if missing:
        raise ValueError(f"citation keys not in references.bib: {', '.join(missing)}")
    cited += [k for k in keys if k not in cited]
    if role == "cite:t":
        return "; ".join(f"{bib[k][0]} ({bib[k][1]})" for k in keys)
    return "(" + "; ".join(f"{bib[k][0]}, {bib[k][1]}" for k in keys) + ")"


def _as_on_the_site(text: str, numbers: SiteNumbers, bib: dict, cited: list[str], where: str) -> str:
    """``text`` (MyST markdown) with its roles, numbered blocks and equation labels resolved."""

    def directive(match: re.Match) -> str:
        kind, title = match.group("kind"), match.group("title").strip()
        options = match.group("options")
        label = re.search(r":label:[ \t]*(\S+)", options)
        # the label stays (JupyterLab gives the box that id); numbering options go with the directive
        kept = "".join(line + "\n" for line in options.splitlines() if re.match(r"[ \t]*:(class|label):", line))
        if kind == "prf:proof":
            heading = "Proof"
        elif label and label.group(1) in numbers.names:
            heading = numbers.names[label.group(1)] + (f" ({title})" if title else "")
        else:
            heading = NUMBERED_KINDS.get(kind, kind.split(":")[-1].title()) + (f" ({title})" if title else "")
        css = {"exercise": "exercise"}.get(kind, "proof")
        if ":class:" not in kept:
            kept += f":class: {css}\n"
        return f"{match.group('fence')}{{admonition}} {heading}\n{kept}"

    def equation(match: re.Match) -> str:
        label = match.group("label")
        number = numbers.names.get(label, "")
        tag = f" \\tag{{{number.strip('()')}}}" if number else ""
        return f"$${match.group('body').rstrip()}{tag}\n$$"

    def role(match: re.Match) -> str:
        name, content = match.group("role"), match.group("content")
        explicit = EXPLICIT.match(content)
        text, target = (explicit.group("text"), explicit.group("target")) if explicit else (None, content)
        if name in ("cite", "cite:p", "cite:t", "cite:ps", "cite:ts"):
            return _citation("cite:t" if name.startswith("cite:t") else "cite:p",
                             [k.strip() for k in content.split(",")], bib, cited)
        if name == "eq":
            if target not in numbers.names:
                raise ValueError(f"{where}: equation {target!r} is not numbered anywhere in the book")
            return numbers.names[target]
        if name in ("ref", "prf:ref", "numref", "term"):
            if text is not None:
                return text
            if name == "term":
                return target
            if target not in numbers.names:
                raise ValueError(f"{where}: {{{name}}} target {target!r} is not a label of the book")
            return numbers.names[target]
        if name == "doc":
            if text is not None:
                return text
            return numbers.documents.get(target.strip("/"), target)
        if name in ("func", "class", "meth", "mod", "attr", "obj", "data", "exc"):
            shown = (text or target).lstrip("~")
            return f"`{shown.rsplit('.', 1)[-1] if target.startswith('~') else shown}`"
        return match.group(0)

    text = DIRECTIVE_OPEN.sub(directive, text)
    text = LABELLED_MATH.sub(equation, text)
    return ROLE.sub(role, text)


def read_like_the_site(nb: nbformat.NotebookNode, numbers: SiteNumbers | None = None,
                       bib: dict | None = None) -> nbformat.NotebookNode:
    """Resolve every markdown cell of ``nb`` as the website would, and add a References cell."""
    numbers = numbers if numbers is not None else site_numbers()
    bib = bib if bib is not None else _bibliography()
    cited: list[str] = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = _as_on_the_site(cell.source, numbers, bib, cited, cell.get("id", "a cell"))
    if cited:
        entries = "\n".join(f"- {bib[k][2]}" for k in sorted(cited, key=lambda k: bib[k][0].lower()))
        cell = nbformat.v4.new_markdown_cell(f"## References\n\n{entries}")
        cell.id = "references"
        nb.cells.append(cell)
    return nb


def kernel_metadata() -> dict:
    """The kernelspec and language_info a Python kernel writes, so a fresh notebook opens unmodified."""
    from ipykernel.ipkernel import IPythonKernel

    info = dict(IPythonKernel.language_info)
    info["version"] = sys.version.split()[0]
    return {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": info}


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
        if target.exists():  # `make reset`: the learner's copy is kept, never silently lost
            backup = target.parent / BACKUP / f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}.ipynb"
            backup.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(target, backup)
            print(f"kept      your previous copy as {backup}")
        write_student(path, target, runtime_note(path))
        print(f"written   {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

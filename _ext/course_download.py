"""Local Sphinx extension: the course as files a reader can take home.

At the end of an HTML build it writes, into ``downloads/`` of the site:

* ``mixup-course-<version>.zip``: the repository's tracked files at the built commit
  (``git archive``), everything ``make book`` and ``make lab`` need;
* ``mixlib-<version>-py3-none-any.whl``: the library, built from this checkout;
* ``<chapter>.zip`` for every chapter with exercises: its student edition, the wheel and a
  five-line ``README.txt``, enough on a machine that has only Python 3.11 and pip.

The intro links the first two (the ``{course-download}`` role); the line under each
chapter's title links the chapter's zip.
A build outside a git checkout, or one that cannot build the wheel, fails: the pages link
these files.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging
from sphinx.util.osutil import relative_uri

logger = logging.getLogger(__name__)
DOWNLOADS = "downloads"
_ROOT = Path(__file__).resolve().parents[1]


def version() -> str:
    """``mixlib.__version__``, read without importing torch."""
    for line in (_ROOT / "mixlib" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    raise ExtensionError("mixlib/__init__.py defines no __version__")


def course_name() -> str:
    return f"mixup-course-{version()}.zip"


def wheel_name() -> str:
    return f"mixlib-{version()}-py3-none-any.whl"


def chapter_zip(docname: str) -> str:
    """Where the zip of ``docname`` goes, relative to the output folder."""
    return f"{DOWNLOADS}/{docname.rsplit('/', 1)[-1]}.zip"


def chapter_readme(student: str, wheel: str) -> str:
    """The five lines that take a machine with Python 3.11 and pip to a running chapter."""
    return (f"1. python3.11 -m venv mixup && source mixup/bin/activate   (Windows: mixup\\Scripts\\activate)\n"
            "2. pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu   (the CPU build)\n"
            f"3. pip install \"{wheel}[notebooks]\"   (mixlib, JupyterLab and what the notebook uses)\n"
            f"4. jupyter lab {student}\n"
            "5. Run the cells from the top; under each exercise, write your answer and run its cell.\n")


def _run(command: list[str]) -> None:
    done = subprocess.run(command, cwd=_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise ExtensionError(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def _write_downloads(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir) / DOWNLOADS
    out.mkdir(parents=True, exist_ok=True)
    _run(["git", "archive", "--format=zip", f"--prefix=mixup-course-{version()}/", "-o", str(out / course_name()),
          "HEAD"])
    for old in out.glob("mixlib-*.whl"):
        old.unlink()
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check",
          "-w", str(out), str(_ROOT)])
    wheel = out / wheel_name()
    if not wheel.exists():
        raise ExtensionError(f"pip wheel did not write {wheel.name} (found {[p.name for p in out.glob('*.whl')]})")
    student_dir = Path(app.outdir) / "_student"
    written = 0
    for student in sorted(student_dir.glob("*_student.ipynb")):
        docname = "chapters/" + student.name.removesuffix("_student.ipynb")
        with zipfile.ZipFile(Path(app.outdir) / chapter_zip(docname), "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(student, student.name)
            archive.write(wheel, wheel.name)
            archive.writestr("README.txt", chapter_readme(student.name, wheel.name))
        written += 1
    logger.info(f"downloads written: the course, the mixlib wheel and {written} chapter zips (in {DOWNLOADS}/)")


def download_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{course-download}`course``` or ``wheel``: a link to that file of ``downloads/``."""
    files = {"course": course_name(), "wheel": wheel_name()}
    if text not in files:
        message = inliner.reporter.error(f"course-download takes one of {sorted(files)}, not {text!r}", line=lineno)
        return [inliner.problematic(rawtext, rawtext, message)], [message]
    env = inliner.document.settings.env
    target = relative_uri(env.app.builder.get_target_uri(env.docname), f"{DOWNLOADS}/{files[text]}")
    link = nodes.reference(rawtext, "", nodes.literal(text=files[text]), refuri=target, classes=["download-" + text])
    return [link], []


def _repository_button(app: Sphinx, config) -> None:
    """The theme's repository button only where ``_config.yml`` names a repository."""
    options = dict(config.html_theme_options or {})
    options["use_repository_button"] = bool(options.get("repository_url"))
    config.html_theme_options = options


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _repository_button)
    app.add_role("course-download", download_role)
    # after the student editions (student_edition.py, default priority 500) are written
    app.connect("build-finished", _write_downloads, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""Release metadata: licences, citation, changelog and version agree with each other."""

from __future__ import annotations

import re

import pytest
import tomllib
from conftest import ROOT, SITE
from site_helpers import require

import mixlib


def test_the_version_lives_in_one_place():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    citation = (ROOT / "CITATION.cff").read_text()
    assert re.search(rf"^version: {re.escape(mixlib.__version__)}$", citation, re.M), "CITATION.cff's version"
    first = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert first and first.group(1) == mixlib.__version__, "CHANGELOG.md's newest entry is not mixlib.__version__"


def test_the_package_names_its_licence_the_spdx_way():
    text = (ROOT / "pyproject.toml").read_text()
    data = tomllib.loads(text)
    assert data["project"]["license"] == "MIT"
    assert data["project"]["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    requires = data["build-system"]["requires"]
    assert any(r.startswith("setuptools") and "<" in r for r in requires), "setuptools needs an upper bound"


@pytest.mark.parametrize("name", ["LICENSE", "LICENSE-text.md", "CITATION.cff", "CHANGELOG.md"])
def test_release_files_exist(name):
    assert (ROOT / name).is_file() and (ROOT / name).read_text().strip()


def test_the_footer_names_both_licences():
    page = SITE / "intro.html"
    require(page.exists(), "the book is not built: run `make book`")
    html = page.read_text()
    assert "CC BY 4.0" in html and "MIT licence" in html


def _script(name: str):
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"mixlib_book_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_output_check_finds_a_stored_output_and_strips_it(tmp_path, capsys):
    import nbformat
    check = _script("check_notebooks")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    nb.cells[0].execution_count = 1
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    assert check.main([str(path)]) == 1 and "outputs stored in 1 cells" in capsys.readouterr().out
    assert check.main(["--fix", str(path)]) == 0
    assert check.main([str(path)]) == 0
    assert check.main([str(p) for p in sorted((ROOT / "chapters").rglob("*.ipynb"))]) == 0


def test_the_pre_commit_hooks_are_local_and_run_what_exists():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    assert all(repo["repo"] == "local" for repo in config["repos"]), "hook repositories cannot be cloned here"
    assert {h["id"] for h in hooks} >= {"ruff", "notebooks-without-outputs", "student-editions", "lock-in-sync"}
    for hook in hooks:
        for word in hook["entry"].split():
            if word.startswith(("scripts/", ".venv/bin/")):
                assert (ROOT / word).exists() or word.startswith(".venv/"), f"{hook['id']}: {word} is missing"

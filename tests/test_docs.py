"""The project's documents stand on their own: every relative link and
every path they name resolves inside the repository, and none points
outside it (a user who clones the project has nothing else)."""

import glob
import os
import re

import pytest

from conftest import ROOT

DOCS = sorted({*glob.glob(os.path.join(ROOT, "*.md")),
               *glob.glob(os.path.join(ROOT, "docs", "**", "*.md"),
                          recursive=True)})
# Text files that users read or run and that name paths.
SOURCES = DOCS + sorted(glob.glob(os.path.join(ROOT, "scripts", "*")))
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _rel(path):
    return os.path.relpath(path, ROOT)


def test_the_documents_exist():
    names = {_rel(p) for p in DOCS}
    assert {"README.md", "CONTRIBUTING.md", "BENCHMARKS.md",
            os.path.join("docs", "gpu.md")} <= names, names


@pytest.mark.parametrize("path", SOURCES, ids=_rel)
def test_nothing_points_outside_the_repository(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    outside = [m.group(0) for m in re.finditer(r"\.\./[\w.-]+/", text)]
    assert not outside, f"{_rel(path)} points outside the project: {outside}"


@pytest.mark.parametrize("path", DOCS, ids=_rel)
def test_relative_links_resolve(path):
    with open(path, encoding="utf-8") as f:
        links = LINK.findall(f.read())
    missing = []
    for link in links:
        if re.match(r"^[a-z]+:", link):  # http:, https:, mailto:
            continue
        target = os.path.normpath(os.path.join(os.path.dirname(path), link))
        if not target.startswith(ROOT + os.sep) or not os.path.exists(target):
            missing.append(link)
    assert not missing, f"{_rel(path)}: links that do not resolve: {missing}"


def test_fetch_wheels_script_is_executable_and_strict():
    script = os.path.join(ROOT, "scripts", "fetch-wheels.sh")
    assert os.access(script, os.X_OK)
    with open(script) as f:
        text = f.read()
    assert "set -euo pipefail" in text and "keras-tuner" in text

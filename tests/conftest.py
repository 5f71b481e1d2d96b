"""Shared test configuration.

Environment variables understood by the test-suite:

* ``FGLN_BOOK_DIR`` - run the notebook validation against chapters in another
  directory (default: ``<repo>/book``); used to test the harness itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
BOOK_DIR = Path(os.environ.get("FGLN_BOOK_DIR", REPO_ROOT / "book")).resolve()

# Keep progress bars out of test output and executed notebooks; prefer the
# kernelspec registered inside the active virtual environment.
os.environ.setdefault("FGLN_PROGRESS", "0")
os.environ.setdefault("JUPYTER_PREFER_ENV_PATH", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def book_dir() -> Path:
    return BOOK_DIR


def toc_files(toc_path: Path) -> list[str]:
    """Every file of a Jupyter Book table of contents (root first), in order."""
    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                files.append(e["file"])
            walk(e.get("sections"))
            walk(e.get("chapters"))

    walk(toc.get("chapters"))
    for part in toc.get("parts") or []:
        walk(part.get("chapters"))
    return files


def pytest_xdist_make_scheduler(config, log):
    """Under ``pytest -n``, every test of one executed chapter (``tests/test_notebooks.py``,
    parametrized by the chapter) runs in the same worker, so that each chapter is executed
    once, not once per worker; every other test is scheduled on its own. (pytest-xdist's own
    ``xdist_group`` marks have no effect with pytest 9.2, which derives a node's id from
    elsewhere than where pytest-xdist writes the group.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ChapterScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith("tests/test_notebooks.py::") and nodeid.endswith("]"):
                return "chapter-" + nodeid[nodeid.rindex("[") + 1:-1]
            return nodeid

    return ChapterScheduling(config, log)

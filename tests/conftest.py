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


def pytest_collection_modifyitems(config, items):
    """Under ``pytest -n`` (``--dist loadgroup``), every test of one executed chapter runs in
    the same worker, so that each chapter is executed once, not once per worker."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "executed_chapter" in callspec.params:
            name = callspec.params["executed_chapter"]
            item.add_marker(pytest.mark.xdist_group(name=f"chapter-{name}"))

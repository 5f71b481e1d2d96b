"""Chapters executed by the tests in forks of a process that has imported what they import.

The notebook tests execute every chapter again under nbval, and the mutation tests execute
chapters with an error injected. Each of these used to start a new pytest process and a new
kernel, which import pytest, nbval, torch, matplotlib, IPython and :mod:`fgln` again: 5-6 s of
a 2-core machine per chapter before it computes anything. Here each test process starts one
helper process (:func:`_host`, spawned once) that imports all of it
(:func:`fgln.book.forked_kernels.preload`); every execution then runs in a fork of that
helper (:func:`fgln.book.forked_kernels.call_in_fork`), and its kernel is forked in turn
(:class:`~fgln.book.forked_kernels.BlockingForkedKernelManager` for nbval,
:class:`~fgln.book.forked_kernels.ForkedKernelManager` for papermill). Every chapter still
runs in a process and a kernel of its own, from the same state.

Where kernels cannot be forked (:func:`fgln.book.forked_kernels.can_fork` is false, e.g.
``FGLN_FORK_KERNELS=0``), nbval runs in a new pytest process and papermill starts its kernel
as Jupyter does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

TESTS_DIR = str(Path(__file__).resolve().parent)

# what the executions import besides the chapters' own modules (PRELOAD)
_TOOLS = ("pytest", "nbval.plugin", "nbval.kernel", "papermill", "jupytext", "nbformat",
          "nbclient", "nbval_glue")

_HOST: ProcessPoolExecutor | None = None


def forking() -> bool:
    """Whether chapters are executed in forks here (else as Jupyter starts kernels)."""
    from fgln.book.forked_kernels import can_fork

    return can_fork("python3")


def _prepare() -> None:
    """The helper's initializer: import everything once."""
    from fgln.book.forked_kernels import PRELOAD, preload

    if TESTS_DIR not in sys.path:
        sys.path.insert(0, TESTS_DIR)
    preload(modules=PRELOAD + _TOOLS)


def _host() -> ProcessPoolExecutor:
    global _HOST
    if _HOST is None:
        _HOST = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"),
                                    initializer=_prepare)
    return _HOST


def _forked(fn, /, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a fork of the helper (one at a time per test process)."""
    from fgln.book.forked_kernels import call_in_fork

    return _host().submit(call_in_fork, fn, *args, **kwargs).result()


def _nbval_child(args: list[str], cwd: str, env: dict[str, str]) -> tuple[int, str, str]:
    """In the fork: ``pytest args`` in ``cwd`` with ``env`` added, its kernels forked from
    this process; (exit code, stdout, stderr)."""
    import tempfile

    import pytest

    os.chdir(cwd)
    os.environ.update(env, FGLN_NBVAL_FORK="1")  # nbval_glue: forked kernels
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        os.dup2(out.fileno(), 1)  # the kernel writes here too
        os.dup2(err.fileno(), 2)
        code = pytest.main(list(args))
        sys.stdout.flush()
        sys.stderr.flush()
        out.seek(0)
        err.seek(0)
        return int(code), out.read(), err.read()


def run_pytest(args: list[str], cwd: str | os.PathLike, env: dict[str, str], *,
               fork: bool = True) -> subprocess.CompletedProcess:
    """``python -m pytest args`` in ``cwd``, with ``env`` added to this environment (and this
    folder on ``PYTHONPATH``): in a fork of the helper where kernels can be forked and
    ``fork``, else in a new process (whose kernels Jupyter starts).

    Returns
    -------
    subprocess.CompletedProcess
        Its exit code, stdout and stderr (text).
    """
    if fork and forking():
        code, out, err = _forked(_nbval_child, list(args), str(cwd), dict(env))
        return subprocess.CompletedProcess(args, code, out, err)
    path = os.pathsep.join(filter(None, [TESTS_DIR, os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd,
                          capture_output=True, text=True,
                          env=dict(os.environ, **env, PYTHONPATH=path))


def _papermill_child(input_path: str, output_path: str, kwargs: dict) -> None:
    import papermill as pm

    from fgln.book.forked_kernels import ForkedKernelManager

    pm.execute_notebook(input_path, output_path, kernel_manager_class=ForkedKernelManager,
                        **kwargs)


def execute_notebook(input_path: str | os.PathLike, output_path: str | os.PathLike,
                     **kwargs) -> None:
    """``papermill.execute_notebook(input_path, output_path, **kwargs)`` (its exceptions
    too): in a fork of the helper, with a forked kernel, where kernels can be forked."""
    if forking():
        _forked(_papermill_child, str(input_path), str(output_path), kwargs)
    else:
        import papermill as pm

        pm.execute_notebook(str(input_path), str(output_path), **kwargs)

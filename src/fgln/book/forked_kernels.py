"""Jupyter kernels forked from a process that has already imported the book's modules.

Every page of the book runs in a kernel of its own, and every kernel used to start by
importing torch, numpy, scipy, matplotlib, IPython and :mod:`fgln`: 4-5 s of a 2-core machine
per page (a fifth of the quick build) before the page computes anything. The executor's
worker processes (:func:`fgln.book.execute.execute_book`) import these once
(:func:`preload`), and each page's kernel is then a ``fork`` of its worker
(:class:`ForkedKernelManager`, a ``jupyter_client`` kernel manager whose provisioner forks
instead of starting a new interpreter): a new process for every page, with the modules
already imported. The worker never executes page code, so every kernel starts from the same
state, as a new interpreter would; in the child the random modules are reseeded from the
system's entropy, the process leaves the worker's session, event loop and process identity
(it is not a daemonic pool worker), its working directory, environment and ``sys.path[0]`` are the
kernel's own, and torch uses the ``OMP_NUM_THREADS`` of that environment.

The same holds for other work that executes notebooks: :func:`call_in_fork` computes a
function in a fork of a prepared process (the notebook tests run nbval and papermill so,
each in a fork of one process that imported everything once), and
:class:`BlockingForkedKernelManager` is the fork provisioner's blocking kernel manager, as
nbval uses.

Forking applies only where :func:`can_fork` says so: ``os.fork`` exists, the kernelspec
starts ``ipykernel_launcher`` with this very interpreter, and ``FGLN_FORK_KERNELS`` is not
``0``. Anything else starts kernels as Jupyter does.
"""
from __future__ import annotations

import importlib
import os
import signal
import sys
import uuid
from typing import Any, Callable

from jupyter_client.manager import AsyncKernelManager, KernelManager
from jupyter_client.provisioning.local_provisioner import LocalProvisioner

__all__ = ["PRELOAD", "INLINE_BACKEND", "ForkedKernelManager", "BlockingForkedKernelManager",
           "ForkedProcess", "ForkProvisioner", "can_fork", "preload", "call_in_fork"]

#: Modules a worker imports before forking kernels: what every page imports.
PRELOAD: tuple[str, ...] = (
    "numpy", "torch", "scipy.special", "scipy.stats", "matplotlib", "matplotlib.pyplot",
    "IPython", "ipykernel.ipkernel", "ipykernel.kernelapp", "myst_nb",
    "fgln", "fgln.book.chapter", "fgln.book.decisions", "fgln.book.plotting",
    "fgln.book.run_info", "fgln.book.sweep",
)

#: The matplotlib backend ipykernel selects; set before matplotlib is imported, so that the
#: forked kernels draw inline as a new kernel does.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"

_LAUNCHER = "ipykernel_launcher"


def can_fork(kernel_name: str = "python3") -> bool:
    """Whether the kernels of ``kernel_name`` can be forked from this process.

    Parameters
    ----------
    kernel_name : str
        The kernelspec's name.

    Returns
    -------
    ok : bool
        ``os.fork`` exists, ``FGLN_FORK_KERNELS`` is not ``"0"``, and the kernelspec runs
        ``-m ipykernel_launcher`` with ``sys.executable``.
    """
    if not hasattr(os, "fork") or os.environ.get("FGLN_FORK_KERNELS", "1") == "0":
        return False
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv = KernelSpecManager().get_kernel_spec(kernel_name).argv
    except NoSuchKernel:
        return False
    return (bool(argv) and os.path.abspath(argv[0]) == os.path.abspath(sys.executable)
            and _LAUNCHER in argv)


def preload(threads: int | None = None, modules: tuple[str, ...] | None = None) -> None:
    """Prepare this process to fork kernels: set the thread count and the inline backend,
    then import ``modules``.

    Parameters
    ----------
    threads : int or None
        ``OMP_NUM_THREADS`` of the kernels (each kernel passes it to
        ``torch.set_num_threads``: the OpenMP runtime read its own count when torch was
        first imported, perhaps before); None leaves the environment as it is.
    modules : tuple of str or None
        Modules to import (None: :data:`PRELOAD`).
    """
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    # ipykernel's choice (the environment's MPLBACKEND, else inline), also where matplotlib
    # was imported before (it reads MPLBACKEND only then): a kernel forked with another
    # backend would not show its figures
    backend = os.environ.setdefault("MPLBACKEND", INLINE_BACKEND)
    for name in PRELOAD if modules is None else modules:
        importlib.import_module(name)
    if "matplotlib" in sys.modules:
        sys.modules["matplotlib"].rcParams["backend"] = backend


class ForkedProcess:
    """What a kernel provisioner uses of a ``subprocess.Popen``, for a forked child.

    Parameters
    ----------
    pid : int
        The child's process id (a child of this process).
    """

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The child's exit code, without waiting.

        Returns
        -------
        code : int or None
            The exit code (``-signal`` if a signal ended it), None while the child runs.
        """
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child's end.

        Parameters
        ----------
        timeout : float or None
            Ignored (the provisioner polls before it waits).

        Returns
        -------
        code : int
            The exit code (``-signal`` if a signal ended it).
        """
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        """Send a signal to the child, if it still runs.

        Parameters
        ----------
        signum : int
            The signal.
        """
        if self.returncode is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        """SIGKILL."""
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM."""
        self.send_signal(signal.SIGTERM)


def _become_main_process() -> None:
    """Make multiprocessing see this forked child as a main process, as in a new interpreter
    (not the executor's daemonic worker, which may not start processes of its own)."""
    import itertools
    import multiprocessing.process as mpp

    cur = mpp.current_process()
    cur._config = {**cur._config, "daemon": False, "authkey": os.urandom(32)}
    cur._config["authkey"] = mpp.AuthenticationString(cur._config["authkey"])
    cur._identity, cur._name, cur._parent_pid, cur._popen = (), "MainProcess", None, None
    mpp._parent_process = None
    mpp._children = set()
    mpp._process_counter = itertools.count(1)


def _reseed() -> None:
    """Fresh seeds from the system's entropy for ``random`` and numpy's global generator."""
    import random

    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()


def _kernel_child(argv: list[str], env: dict | None, cwd: str | None) -> None:
    """In the forked child: become a fresh IPython kernel, then exit (never returns)."""
    code = 1
    try:
        os.setsid()  # its own process group, as Jupyter starts kernels
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        threads = os.environ.get("OMP_NUM_THREADS", "")
        if threads.isdigit() and int(threads) > 0 and "torch" in sys.modules:
            # the OpenMP runtime read its thread count when torch was first imported
            sys.modules["torch"].set_num_threads(int(threads))
        if cwd:
            os.chdir(cwd)
            sys.path[0] = os.path.abspath(cwd)  # as `python -m ipykernel_launcher` there
        import asyncio

        # the worker's event loop (running: it is starting this kernel) is not the kernel's
        asyncio.events._set_running_loop(None)
        asyncio.set_event_loop_policy(None)
        _become_main_process()
        _reseed()
        from ipykernel.kernelapp import IPKernelApp

        app = IPKernelApp.instance()
        app.initialize(argv)
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            # pyplot may have chosen its backend in the worker already; choose it again, now
            # that IPython runs, so that the inline backend hooks its figures into the output
            plt.switch_backend(os.environ.get("MPLBACKEND") or INLINE_BACKEND)
        app.start()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    except BaseException:
        import traceback

        traceback.print_exc(file=sys.__stderr__)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class ForkProvisioner(LocalProvisioner):
    """``LocalProvisioner`` that starts an ``ipykernel_launcher`` command as a fork of this
    process (any other command as Jupyter does)."""

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):
        """Start the kernel of ``cmd`` as a fork of this process (``ipykernel_launcher``
        commands; others as ``LocalProvisioner`` does).

        Parameters
        ----------
        cmd : list of str
            The kernel's command line (its arguments after ``ipykernel_launcher`` are
            passed to ``IPKernelApp``).
        **kwargs
            The launch options of ``jupyter_client``; ``env`` and ``cwd`` are used.

        Returns
        -------
        connection_info : dict
            The kernel's connection information.
        """
        if _LAUNCHER not in cmd:
            return await super().launch_kernel(cmd, **kwargs)
        # as jupyter_client's launcher: the kernel ends with its parent (and prints no banner)
        argv = [*cmd[cmd.index(_LAUNCHER) + 1:], f"--IPKernelApp.parent_handle={os.getpid()}"]
        env, cwd = kwargs.get("env"), kwargs.get("cwd")
        if env is not None:
            env = {**env, "JPY_PARENT_PID": str(os.getpid())}
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _kernel_child(argv, env, None if cwd is None else str(cwd))
        self.process = ForkedProcess(pid)
        self.pid = self.pgid = pid
        self.cwd = cwd
        return self.connection_info


class _ForkingManager:
    """What both kernel managers below add to ``jupyter_client``'s: the fork provisioner."""

    async def _async_pre_start_kernel(self, **kw: Any):
        if self.provisioner is None:
            self.kernel_id = self.kernel_id or kw.pop("kernel_id", str(uuid.uuid4()))
            self.provisioner = ForkProvisioner(kernel_id=self.kernel_id,
                                               kernel_spec=self.kernel_spec, parent=self)
        return await super()._async_pre_start_kernel(**kw)


class ForkedKernelManager(_ForkingManager, AsyncKernelManager):
    """``AsyncKernelManager`` whose kernels are forks of this process (:class:`ForkProvisioner`);
    pass it to ``nbclient`` as ``kernel_manager_class``."""


class BlockingForkedKernelManager(_ForkingManager, KernelManager):
    """The blocking ``KernelManager`` (as nbval uses) whose kernels are forks of this process
    (:class:`ForkProvisioner`)."""


def call_in_fork(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` computed in a fork of this process, which then exits.

    The child is a main process of its own, with fresh random seeds, as a forked kernel is;
    whatever it changes (modules imported, working directory, environment, file descriptors)
    ends with it. A process that has imported what the work needs (:func:`preload`) can thus
    start each piece of work from the same state without paying for the imports again.

    Parameters
    ----------
    fn : callable
        A function whose result (or exception) can be pickled.
    *args, **kwargs
        Its arguments.

    Returns
    -------
    result : object
        What ``fn`` returned in the child.

    Raises
    ------
    Exception
        What ``fn`` raised in the child, or ``ChildProcessError`` if the child ended without
        an answer (killed, or an unpicklable result) or by ``SystemExit`` or
        ``KeyboardInterrupt`` (which would end this process too if raised here).
    """
    import pickle

    name = getattr(fn, "__name__", repr(fn))
    read, write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            _become_main_process()
            _reseed()
            try:
                answer = (True, fn(*args, **kwargs))
            except Exception as exc:  # noqa: BLE001 - passed to the parent
                answer = (False, exc)
            except BaseException as exc:  # noqa: BLE001 - not to end the parent too
                answer = (False, ChildProcessError(f"{name} ended the fork by {exc!r}"))
            try:
                data = pickle.dumps(answer)
            except Exception as exc:  # noqa: BLE001
                what = "result" if answer[0] else f"exception ({answer[1]!r})"
                data = pickle.dumps((False, ChildProcessError(
                    f"the {what} of {name} cannot be pickled: {exc}")))
            with os.fdopen(write, "wb") as fh:
                fh.write(data)
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise ChildProcessError(f"the fork computing {name} ended without an answer "
                                f"(exit code {os.waitstatus_to_exitcode(status)})")
    ok, value = pickle.loads(data)
    if not ok:
        raise value
    return value

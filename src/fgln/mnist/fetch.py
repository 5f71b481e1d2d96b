"""Fetching the full MNIST with torchvision, giving up fast where no mirror answers.

:func:`download` asks torchvision to fill ``root/MNIST/raw`` only after
:func:`mirrors_reachable` has opened a connection to one of its mirrors within ``timeout``
seconds, so a machine without network (or with a hanging resolver) falls back at once.
"""
from __future__ import annotations

import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

__all__ = ["connect", "download", "mirrors_reachable"]


def connect(host: str, port: int, timeout: float) -> bool:
    """True iff a TCP connection to ``host:port`` opens within ``timeout`` seconds, name
    resolution included (run in a daemon thread: a hanging resolver cannot block us).

    Parameters
    ----------
    host : str
        Host name or address.
    port : int
        TCP port.
    timeout : float
        Seconds allowed for name resolution and connection together.

    Returns
    -------
    reachable : bool
        Whether the connection opened in time.
    """
    ok = []

    def attempt():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(timeout)
    return bool(ok)


def mirrors_reachable(timeout: float) -> bool:
    """Whether one of torchvision's MNIST mirrors accepts a connection within ``timeout``
    seconds.

    Parameters
    ----------
    timeout : float
        Seconds allowed per mirror.

    Returns
    -------
    reachable : bool
        True as soon as one mirror answers.
    """
    from torchvision.datasets import MNIST

    for url in MNIST.mirrors:
        u = urlparse(url)
        if u.hostname and connect(u.hostname, u.port or (443 if u.scheme == "https" else 80),
                                   timeout):
            return True
    return False


def download(root: Path, timeout: float) -> str | None:
    """Download MNIST into ``root/MNIST/raw`` with torchvision; None on success, else why not.

    Parameters
    ----------
    root : pathlib.Path
        Data folder; the files land in ``root/MNIST/raw``.
    timeout : float
        Seconds allowed to reach a mirror, then for every read of the download.

    Returns
    -------
    failure : str or None
        None when the files were downloaded, else a sentence saying why not.
    """
    if not mirrors_reachable(timeout):
        return f"no MNIST mirror reachable (connection timeout {timeout:g} s)"
    from urllib.error import URLError

    from torchvision.datasets import MNIST

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # every read of the download, not only the connection
    try:
        MNIST(str(root), train=True, download=True)
    except (RuntimeError, URLError, OSError) as exc:
        return f"download failed ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    finally:
        socket.setdefaulttimeout(old)
    return None

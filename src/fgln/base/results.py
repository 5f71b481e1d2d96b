"""One result type for every measurement: a mapping of named arrays with attribute access.

:class:`Result` is a ``dict`` (so the disk cache stores it and ``**result`` and ``result[key]``
work) whose fields also read as attributes, as scipy's ``OptimizeResult`` does. Field names
follow one vocabulary across the package: ``mean`` and ``se`` (a mean over replicates and its
standard error), ``count`` (the replicates a statistic used), ``log_s`` (log singular
values, index i last), ``depths`` (the depths measured), ``gamma`` (Lyapunov exponents).
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Result"]


class Result(dict):
    """A measurement's named fields, as a mapping and as attributes.

    Parameters
    ----------
    *args, **kwargs
        As for ``dict``: the fields and their values (arrays, numbers or strings).

    Examples
    --------
    >>> r = Result(mean=np.zeros(3), se=np.ones(3))
    >>> r.mean.shape, r["se"].sum()
    ((3,), np.float64(3.0))
    >>> sorted(r)
    ['mean', 'se']
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"this result has no field {name!r}; "
                                 f"its fields: {', '.join(self)}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(f"this result has no field {name!r}") from None

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self))

    def __repr__(self) -> str:
        def shape(v: Any) -> str:
            a = np.asarray(v) if not hasattr(v, "shape") else v
            return "x".join(map(str, a.shape)) if getattr(a, "ndim", 0) else repr(v)
        fields = ", ".join(f"{k}: {shape(v)}" for k, v in self.items())
        return f"Result({fields})"

    def __reduce__(self):
        return (Result, (dict(self),))

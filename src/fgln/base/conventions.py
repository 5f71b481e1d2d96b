"""The package's vocabulary: one name per concept, one order, one meaning per default.

:data:`CONVENTIONS` is the table every public signature follows (the package, the chapters,
the benchmarks and the tests are checked against it by ``tests/test_project.py``):

* a concept has one name (``L`` for a depth, never ``depth`` or ``Ls``; ``replicates`` for
  independent draws, never ``batch``, ``chains``, ``mc`` or ``samples``);
* the named parameters of a signature come in the table's order (the paper's object first,
  then ``k``, ``replicates``, then the keyword-only ``seed``, ``dtype``, ``device``,
  ``progress``);
* a parameter with a default has the table's default, whose meaning is stated once here
  (``seed=0``: the fixed stream, fresh entropy only when ``seed=None`` is passed; ``device=
  "cpu"``; ``progress=None``: on unless ``FGLN_PROGRESS=0``; ``reading``: the reading the
  book's numerics support).

:func:`signature_problems` checks one signature and is what the test calls.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

__all__ = ["Convention", "CONVENTIONS", "ALIASES", "PARAMETER_DOCS", "signature_problems",
           "call_problems", "source_problems", "shared_doc",
           "NO_DEFAULT", "ANY_DEFAULT"]

#: Marks a parameter that must have no default (it is required).
NO_DEFAULT = inspect.Parameter.empty


class _Any:
    def __repr__(self) -> str:
        return "any"


#: Marks a parameter whose default depends on the function (stated in its docstring).
ANY_DEFAULT = _Any()


@dataclass(frozen=True)
class Convention:
    """One concept: its name, what it means, its default and the names it must not take.

    Parameters
    ----------
    name : str
        The one name of the concept.
    meaning : str
        What the parameter holds.
    defaults : tuple
        The defaults allowed (:data:`NO_DEFAULT` for a required parameter, :data:`ANY_DEFAULT`
        when the function states its own).
    default_meaning : str
        What the default means, the same wherever the name appears.
    keyword_only : bool
        Whether the parameter must be keyword-only.
    aliases : tuple of str
        Other names of the same concept, refused everywhere.
    """

    name: str
    meaning: str
    defaults: tuple = (ANY_DEFAULT,)
    default_meaning: str = ""
    keyword_only: bool = False
    aliases: tuple[str, ...] = field(default=())


#: The table, in the order the parameters come in a signature (shown in full in README.md).
#:
#: :meta hide-value:
CONVENTIONS: tuple[Convention, ...] = (
    Convention("law", "the law of one layer, a LayerLaw (Definitions 5.1-5.2)",
               (NO_DEFAULT,)),
    Convention("product", "a product of L layers of one law, a Product (Sections 4-7)",
               (NO_DEFAULT,)),
    Convention("n", "the width of a square layer", aliases=("width",)),
    Convention("L", "a depth: the number of layers of a product or network",
               aliases=("depth", "Ls", "n_layers", "num_layers")),
    Convention("p", "the probability that a gate is open, in (0, 1]", aliases=("prob",)),
    Convention("sigma", "the standard deviation of the weights' entries",
               (None, NO_DEFAULT), "the paper's 1/sqrt(n) (LayerLaw.he for ReLU networks)",
               aliases=("std", "scale_w")),
    Convention("r", "the paper's minimum rank of a gate ((r, p)-gates, Definition 5.2)",
               (None, NO_DEFAULT), "plain p-gates", aliases=("min_rank",)),
    Convention("k", "how many leading singular values or vectors",
               (None, NO_DEFAULT, ANY_DEFAULT), "all of them (None)",
               aliases=("ks", "k_max", "n_top", "top_k")),
    Convention("replicates", "how many independent draws (products, networks, chains, runs)",
               aliases=("batch", "chains", "mc", "n_samples", "n_replicates", "draws")),
    Convention("seed", "start of the random stream (int >= 0); None: fresh entropy",
               (0, NO_DEFAULT), "the fixed stream 0", keyword_only=True),
    Convention("dtype", "floating type of the tensors", (torch.float64, None, NO_DEFAULT),
               "float64 (None where a function casts: keep the type it is given)",
               keyword_only=True),
    Convention("device", "where tensors live: 'cpu', 'cuda', 'auto' (CUDA where present)",
               ("cpu", NO_DEFAULT), "the CPU", keyword_only=True),
    Convention("progress", "show a progress bar", (None, NO_DEFAULT),
               "on unless the environment sets FGLN_PROGRESS=0", keyword_only=True),
    Convention("reading", "which reading of the paper: 'printed' or 'corrected' (or a named "
               "alternative)", ("corrected", "printed"),
               "the reading the book's numerics support", keyword_only=True,
               aliases=("sign", "transpose", "pairing")),
)

_BY_NAME = {c.name: c for c in CONVENTIONS}
_ORDER = {c.name: i for i, c in enumerate(CONVENTIONS)}
#: Refused names -> the conventional name.
#:
#: :meta hide-value:
ALIASES: dict[str, str] = {a: c.name for c in CONVENTIONS for a in c.aliases}


def _default_ok(conv: Convention, default: Any) -> bool:
    if ANY_DEFAULT in conv.defaults:
        return True
    return any(default is d or (d is not NO_DEFAULT and type(default) is type(d)
                                and default == d) for d in conv.defaults)


def signature_problems(fn: Callable, where: str = "") -> list[str]:
    """What in ``fn``'s signature breaks :data:`CONVENTIONS` (empty when nothing does).

    Checks names (no alias of a concept), order (conventional names in the table's order),
    defaults (the table's, with its meaning) and keyword-only parameters.

    Parameters
    ----------
    fn : callable
        A function or class (its ``__init__`` signature).
    where : str
        The name to report (default: ``fn.__qualname__``).

    Returns
    -------
    problems : list of str
        One sentence per breach, naming the function and the parameter.
    """
    where = where or getattr(fn, "__qualname__", repr(fn))
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return []
    problems = []
    last = -1
    for prm in params:
        if prm.name in ALIASES:
            problems.append(f"{where}: parameter {prm.name!r} names the concept "
                            f"{ALIASES[prm.name]!r}; call it {ALIASES[prm.name]!r}")
            continue
        conv = _BY_NAME.get(prm.name)
        if conv is None:
            continue
        pos = _ORDER[prm.name]
        if pos < last:
            problems.append(f"{where}: parameter {prm.name!r} comes after "
                            f"{CONVENTIONS[last].name!r}; the order is "
                            + ", ".join(c.name for c in CONVENTIONS))
        last = max(last, pos)
        if not _default_ok(conv, prm.default):
            want = " or ".join("no default" if d is NO_DEFAULT else repr(d)
                               for d in conv.defaults)
            problems.append(f"{where}: {prm.name}={prm.default!r}; the convention is "
                            f"{want} ({conv.default_meaning or conv.meaning})")
        if (conv.keyword_only and prm.default is not NO_DEFAULT
                and prm.kind is not inspect.Parameter.KEYWORD_ONLY):
            problems.append(f"{where}: {prm.name!r} must be keyword-only")
    return problems


def call_problems(keywords: list[str], where: str) -> list[str]:
    """Keyword arguments of a call (or parameters of a definition) that use a refused name.

    Parameters
    ----------
    keywords : list of str
        The keyword names used.
    where : str
        Where they were used, for the message.

    Returns
    -------
    problems : list of str
        One sentence per refused name.
    """
    return [f"{where}: {kw!r} names the concept {ALIASES[kw]!r}; call it {ALIASES[kw]!r}"
            for kw in keywords if kw in ALIASES]


#: The one description of each shared parameter, in numpydoc form (name line, then the
#: indented text). Docstrings insert them with ``%(name)s`` on a line of its own, through
#: :func:`shared_doc`.
#:
#: :meta hide-value:
PARAMETER_DOCS: dict[str, str] = {
    "law": """law : LayerLaw
    The law of every layer (Definitions 5.1-5.2): width ``n``, gate probability ``p``,
    weight scale ``sigma`` (None: ``1/sqrt(n)``) and minimum rank ``r`` (None: plain
    p-gates).""",
    "product": """product : Product
    ``L`` independent layers of one :class:`~fgln.base.laws.LayerLaw` under a convention
    (``"section5"``: every layer gated; ``"fgln"``: the last gate is I).""",
    "k": """k : int or None
    How many leading singular values (or vectors), in [1, n]; None: all of them.""",
    "replicates": """replicates : int
    How many independent draws, the leading dimension of the result (>= 1).""",
    "seed": """seed : int, torch.Generator or None
    Start of the random stream (int >= 0; default 0, the same numbers on every call), a
    generator to draw from, or None for fresh entropy (asked for explicitly).""",
    "dtype": """dtype : torch.dtype
    Floating type of the tensors (default float64).""",
    "device": """device : str or torch.device
    Where the tensors live: ``"cpu"`` (default), ``"cuda"``, or ``"auto"`` (CUDA where
    present, else the CPU).""",
    "progress": """progress : bool or None
    Show a progress bar: None (default) shows it unless the environment sets
    ``FGLN_PROGRESS=0``; True or False decide.""",
}


def shared_doc(fn: Callable) -> Callable:
    """Fill the ``%(name)s`` lines of ``fn``'s docstring from :data:`PARAMETER_DOCS`.

    Each placeholder stands on a line of its own and takes that line's indentation, so a
    parameter shared by many functions is described once.

    Parameters
    ----------
    fn : callable
        The function whose docstring to fill.

    Returns
    -------
    fn : callable
        The same function, its ``__doc__`` filled.

    Raises
    ------
    KeyError
        If a placeholder names no shared parameter.
    """
    doc = fn.__doc__
    if doc and "%(" in doc:
        out = []
        for line in doc.split("\n"):
            stripped = line.strip()
            if stripped.startswith("%(") and stripped.endswith(")s"):
                indent = line[: len(line) - len(line.lstrip())]
                text = PARAMETER_DOCS[stripped[2:-2]]
                out.extend(indent + t for t in text.split("\n"))
            else:
                out.append(line)
        fn.__doc__ = "\n".join(out)
    return fn


def source_problems(source: str, where: str) -> list[str]:
    """Breaches of :data:`CONVENTIONS` in Python source: definitions and calls into fgln.

    Every function defined in ``source`` is held to the table's names (no alias), and every
    call of a name imported from ``fgln`` (``from fgln... import f`` or ``import fgln...``)
    to the table's keywords, so a chapter, a benchmark or a test that still passes ``batch=``
    or ``min_rank=`` is caught.

    Parameters
    ----------
    source : str
        Python code (a module, or a notebook's code cells joined).
    where : str
        Its name, for the messages.

    Returns
    -------
    problems : list of str
        One sentence per breach, with the line number.
    """
    import ast

    tree = ast.parse(source)
    imported: set[str] = set()
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "fgln":
            imported.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            modules.update(a.asname or a.name.split(".")[0] for a in node.names
                           if a.name.split(".")[0] == "fgln")

    def from_fgln(func: ast.expr) -> bool:
        while isinstance(func, ast.Attribute):
            func = func.value
        if isinstance(func, ast.Call):
            return from_fgln(func.func)
        return isinstance(func, ast.Name) and (func.id in imported or func.id in modules)

    problems = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
            label = getattr(node, "name", "lambda")
            problems += call_problems(names, f"{where}:{node.lineno} def {label}")
        elif isinstance(node, ast.Call) and from_fgln(node.func):
            names = [kw.arg for kw in node.keywords if kw.arg]
            problems += call_problems(names, f"{where}:{node.lineno} call")
    return problems

"""nbval plugin of the notebook tests (``-p nbval_glue``): glued values are compared by name.

myst-nb moves the outputs of ``glue(...)`` (scrapbook records) out of the executed notebook
into a ``<chapter>.glue.json`` beside it, so the quick build's notebook has none left in its
cells. With this plugin nbval leaves them out of both sides of its per-cell comparison, and
appends those of the executed run, as ``{"name": ..., "data": {...}}`` lines, to the file
named by ``$FGLN_NBVAL_GLUE``; the notebook tests compare them with the reference's values.
With ``FGLN_NBVAL_FORK=1`` (``tests/forkhost.py``) nbval's kernel is a fork of its process.
"""

from __future__ import annotations

import json
import os


def glue_record(output: dict) -> tuple[str, dict] | None:
    """``(name, data)`` of a glue output (its MIME types without myst-nb's prefix), or
    ``None`` for any other output."""
    meta = output.get("metadata", {}).get("scrapbook")
    if not meta:
        return None
    prefix = meta.get("mime_prefix", "")
    data = {k[len(prefix):] if prefix and k.startswith(prefix) else k: v
            for k, v in output.get("data", {}).items()}
    return meta["name"], data


def pytest_configure(config):
    from nbval.plugin import IPyNbCell

    if os.environ.get("FGLN_NBVAL_FORK") == "1":  # tests/forkhost.py: fork the kernel
        import nbval.kernel

        from fgln.book.forked_kernels import BlockingForkedKernelManager

        nbval.kernel.KernelManager = BlockingForkedKernelManager

    compare = IPyNbCell.compare_outputs

    def compare_without_glue(self, test, ref, skip_compare=None):
        path = os.environ.get("FGLN_NBVAL_GLUE")
        if path:
            with open(path, "a", encoding="utf-8") as f:
                for rec in filter(None, map(glue_record, test)):
                    f.write(json.dumps({"name": rec[0], "data": rec[1]}) + "\n")
        return compare(self, [o for o in test if glue_record(o) is None],
                       [o for o in ref if glue_record(o) is None], skip_compare)

    IPyNbCell.compare_outputs = compare_without_glue

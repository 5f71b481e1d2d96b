"""The book's machinery: disk cache, claims ledger and the tests deciding a claim, ledger pages,
figure style, run line, pages executed on every core. Imports only fgln.base."""

from .cache import cache_counts, cached, cached_resumable, code_version
from .chapter import Chapter, fmt_estimate
from .claims import Ledger, load_ledgers
from .execute import (BookExecution, ExecutionFailed, book_pages, execute_book, executed_notebook,
                      store_dir)
from .decisions import Decision, equivalence, exact, family_quantile, sign_test, trend
from .plotting import band, new_figure, save_figure, use_style
from .run_info import glue_page_report, start_page

__all__ = [
    "Chapter", "fmt_estimate",
    # cache
    "cached", "cached_resumable", "cache_counts", "code_version",
    # decisions
    "Decision", "equivalence", "sign_test", "trend", "exact", "family_quantile",
    # claims
    "Ledger", "load_ledgers",
    # execute
    "execute_book", "BookExecution", "book_pages", "store_dir", "executed_notebook",
    "ExecutionFailed",
    # plotting
    "use_style", "new_figure", "band", "save_figure",
    # run_info
    "start_page", "glue_page_report",
]

"""The book's machinery: disk cache, claims ledger and the tests that decide a claim, pages
rendered from the ledgers, figure style, the run line of a page. Imports only fgln.base."""

from .cache import cache_counts, cached, cached_resumable, code_version
from .chapter import Chapter, fmt_estimate
from .claims import Ledger, load_ledgers
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
    # plotting
    "use_style", "new_figure", "band", "save_figure",
    # run_info
    "start_page", "glue_page_report",
]

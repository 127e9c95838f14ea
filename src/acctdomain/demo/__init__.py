"""Demo data: a seeded, realistic book of business written through the public service API."""

from acctdomain.demo.book import (
    DEMO_KPI_SETTINGS,
    BookSummary,
    ProgressCallback,
    eur_at_demo_rate,
    generate_book,
)

__all__ = [
    "DEMO_KPI_SETTINGS",
    "BookSummary",
    "ProgressCallback",
    "eur_at_demo_rate",
    "generate_book",
]

"""Demo data: a seeded, realistic book of business written through the public service API."""

from acctdomain.demo.book import BookSummary, ProgressCallback, eur_at_demo_rate, generate_book

__all__ = ["BookSummary", "ProgressCallback", "eur_at_demo_rate", "generate_book"]

"""Import from CRM exports: CSV formats for accounts, activities, deals, tickets and surveys.

See docs/import.md for the formats and the behaviour with bad rows.
"""

from acctdomain.importing.formats import FORMATS, Column, FileFormat
from acctdomain.importing.importer import (
    REJECTS_HEADER,
    FileSummary,
    ImportReport,
    RowError,
    import_files,
    write_rejects,
)

__all__ = [
    "FORMATS",
    "REJECTS_HEADER",
    "Column",
    "FileFormat",
    "FileSummary",
    "ImportReport",
    "RowError",
    "import_files",
    "write_rejects",
]

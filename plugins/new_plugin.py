"""Start a new acctdomain plugin from ``plugins/template``: copy it, replacing ``myplugin``.

    python plugins/new_plugin.py zebra                 # writes plugins/acctdomain-zebra
    python plugins/new_plugin.py zebra /some/where     # or there

``make plugin-template NAME=zebra`` runs this. The name becomes the entry point (``zebra``),
the module (``acctdomain_zebra``), the distribution (``acctdomain-zebra``), the command and
the prefix of what the plugin registers, in file contents and in paths alike.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

__all__ = ["NAME_PATTERN", "PLACEHOLDER", "TEMPLATE", "scaffold"]

TEMPLATE = Path(__file__).resolve().parent / "template"
PLACEHOLDER = "myplugin"
NAME_PATTERN = re.compile(r"[a-z][a-z0-9]{0,29}")
"""Lower-case letters and digits: valid as an entry point, a module suffix, a command name and
a registration-name prefix all at once."""

_IGNORED = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache", ".ruff_cache", "*.egg-info", "build"
)


def scaffold(name: str, destination: Path) -> Path:
    """Copy the template to ``destination`` (which must not exist) as plugin ``name``."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"{name!r}: expected lower-case letters and digits, starting with a letter"
        )
    if name == PLACEHOLDER:
        raise ValueError(f"{name!r} is the template's placeholder; choose your plugin's name")
    if destination.exists():
        raise FileExistsError(f"{destination} exists already")
    shutil.copytree(TEMPLATE, destination, ignore=_IGNORED)
    # Deepest paths first, so a directory is renamed after everything inside it.
    for path in sorted(destination.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            if PLACEHOLDER in text:
                path.write_text(text.replace(PLACEHOLDER, name), encoding="utf-8")
        if PLACEHOLDER in path.name:
            path.rename(path.with_name(path.name.replace(PLACEHOLDER, name)))
    return destination


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the plugin's name: lower-case letters and digits")
    parser.add_argument(
        "destination", nargs="?", type=Path, help="default: plugins/acctdomain-NAME"
    )
    arguments = parser.parse_args(argv)
    destination = arguments.destination or TEMPLATE.parent / f"acctdomain-{arguments.name}"
    try:
        scaffold(arguments.name, destination)
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {destination}; install it with: pip install -e {destination}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

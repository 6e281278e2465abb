"""Keeps the README's generated sections true: the configuration table comes from the Settings fields.

Run `python -m mixlm.docs` after changing Settings; tests/unit/mixlm/test_readme.py fails while they differ.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from mixlm.settings import settings_table

README = Path(__file__).resolve().parent.parent / "README.md"
_SECTION = re.compile(r"(<!-- settings-table:[^\n]*-->\n)(.*?)(<!-- /settings-table -->)", re.S)


def render(readme: str) -> str:
    """The README text with its settings table regenerated."""
    if not _SECTION.search(readme):
        raise ValueError("README has no <!-- settings-table --> markers")
    return _SECTION.sub(lambda m: m.group(1) + settings_table() + "\n" + m.group(3), readme)


def main() -> int:
    text = README.read_text()
    new = render(text)
    if new != text:
        README.write_text(new)
        print(f"updated {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

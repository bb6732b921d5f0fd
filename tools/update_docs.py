"""Splice the generated config reference into docs/config.md between its markers (`make docs`)."""

import re
import sys
from pathlib import Path

from corpus.config import reference_markdown

START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"

page = Path(__file__).resolve().parent.parent / "docs" / "config.md"
text = page.read_text(encoding="utf-8")
if START not in text or END not in text:
    sys.exit(f"{page}: markers {START} / {END} not found")
new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda m: f"{START}\n{reference_markdown()}\n{END}", text,
             flags=re.S)
page.write_text(new, encoding="utf-8")
print(f"{page}: config reference {'updated' if new != text else 'already current'}")

"""Splice the generated config reference into README.md between its markers (`make docs`)."""

import re
import sys
from pathlib import Path

from corpus.config import reference_markdown

START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"

readme = Path(__file__).resolve().parent.parent / "README.md"
text = readme.read_text(encoding="utf-8")
if START not in text or END not in text:
    sys.exit(f"{readme}: markers {START} / {END} not found")
new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda m: f"{START}\n{reference_markdown()}\n{END}", text,
             flags=re.S)
readme.write_text(new, encoding="utf-8")
print(f"{readme}: config reference {'updated' if new != text else 'already current'}")

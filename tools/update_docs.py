"""Splice the generated references into docs/ between their markers (`make docs`): the config reference into
docs/config.md, the stage registry's table into docs/stages.md. Tests fail when either is stale."""

import re
import sys
from pathlib import Path

from corpus.config import reference_markdown
from corpus.stages import registry_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"
GENERATED = [("config.md", "config-reference", reference_markdown), ("stages.md", "stage-registry", registry_markdown)]

for name, marker, make in GENERATED:
    page = DOCS / name
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    text = page.read_text(encoding="utf-8")
    if start not in text or end not in text:
        sys.exit(f"{page}: markers {start} / {end} not found")
    new = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda m: f"{start}\n{make()}\n{end}", text, flags=re.S)
    page.write_text(new, encoding="utf-8")
    print(f"{page}: {marker} {'updated' if new != text else 'already current'}")

"""Write the generated docs (`make docs`): the config reference into docs/config.md and the stage registry's table
into docs/stages.md, between their markers; a page per stage in docs/stages/. Tests fail when any is stale."""

import re
import sys
from pathlib import Path

from corpus.config import reference_markdown
from corpus.stages import STAGES, registry_markdown, stage_page

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

# a page per stage, generated whole: docs/stages/<stage>.md
pages = DOCS / "stages"
pages.mkdir(exist_ok=True)
for name in STAGES:
    page = pages / f"{name}.md"
    new = stage_page(name)
    if not page.exists() or page.read_text(encoding="utf-8") != new:
        page.write_text(new, encoding="utf-8")
        print(f"{page}: written")
stale = sorted(p.name for p in pages.glob("*.md") if p.stem not in STAGES)
if stale:
    sys.exit(f"{pages}: {', '.join(stale)} name no stage of the registry: remove them")

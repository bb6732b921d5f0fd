"""Config sections of the `apis` package's stage, beside its code; :mod:`corpus.config` assembles them into
the run config (and re-exports them, so ``from corpus.config import ...`` keeps working)."""

from __future__ import annotations


from pydantic import (
    ByteSize,
    Field,
)

from corpus.sections import Section


class IngestApisSection(Section):
    max_spec_bytes: ByteSize = Field(
        ByteSize(64 * 1024**2),
        description="Spec files larger than this (on disk, "
        "or once gunzipped) are rejected (`too_large`). The largest installed spec, "
        "compute.alpha's discovery document, is 6 MB.",
    )
    time_limit_seconds: float = Field(
        120.0, gt=0, description="Per-file parse-and-render limit; a spec over it is rejected (`timeout`)."
    )
    html_pages: bool = Field(
        True,
        description="Read operations from HTML docs pages (.html, WARC) among the "
        "inputs: pydoc and Sphinx function entries, and `GET /path` endpoint headings.",
    )
    max_page_bytes: ByteSize = Field(
        ByteSize(8 * 1024**2), description="HTML pages larger than this are rejected (`too_large`)."
    )
    python_undocumented: bool = Field(
        False,
        description="`inputs.python`: also make tool docs of public "
        "functions, classes and methods without a docstring (a signature only); "
        "off: they are counted (`python_undocumented_skipped:<kind>`) and left out.",
    )
    max_python_file_bytes: ByteSize = Field(
        ByteSize(2 * 1024**2),
        description="`inputs.python`: modules larger than this are left out (counted): generated tables, not APIs.",
    )
    max_package_bytes: ByteSize = Field(
        ByteSize(256 * 1024**2),
        description="`inputs.python`: a distribution "
        "(installed, wheel or sdist) holding more Python source than this, once "
        "unpacked, is rejected (`too_large`), whatever its headers claim.",
    )

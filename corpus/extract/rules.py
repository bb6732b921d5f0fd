"""Rule-based instruction-response extractors: no model needed.

* ``qa``: question headings and FAQ blocks (a line that is a question, or ``Q:`` / ``Question:``), answered by the
  lines that follow, up to the next question or heading.
* ``code_example``: a description (a paragraph that starts and ends like a sentence) followed by a code example:
  Markdown code fences, doctest runs (``>>>`` lines) and indented blocks after a line ending in ``:`` when they
  look like code (manuals also indent wrapped prose).
* ``api_operation``: one API operation (an ingest-apis ``tool_doc`` record): "do Y with the X API" → how to call
  it (the SDK call or HTTP request with its required parameters) and what the parameters mean.

Each extractor returns ``(instruction, response)`` pairs; the stage checks them and records the extractor.
"""

from __future__ import annotations

import json
import re

Pair = tuple[str, str]

_QWORDS = (
    "How|What|Why|When|Where|Which|Who|Whom|Whose|Can|Could|Should|Is|Are|Was|Were|Do|Does|Did|Will|"
    "Would|May|Might|Must|Has|Have|Shall"
)
# a question on its own line: a heading, bold, Q:/Question:, a numbered item, or a line starting with a
# question word; one sentence, at most 150 characters
_QUESTION = re.compile(
    rf"^(?:(?:#+\s*|\*\*|Q\s*[:.]\s*|Question\s*[:.]\s*|\d+[.)]\s+)(?P<q1>[A-Z][^\n?]{{8,150}}\?)"
    rf"|(?P<q2>(?:{_QWORDS})\b[^\n?.!]{{8,150}}\?))(?:\*\*)?\s*$"
)
_QA_PREFIX = re.compile(r"^(?:Q|Question)\s*[:.]\s*", re.I)
_A_PREFIX = re.compile(r"^(?:A|Answer)\s*[:.]\s*", re.I)
_HEADING = re.compile(r"^(?:#+\s+.*|[A-Z][^.!?:;]{0,60})$")


def qa_pairs(text: str, limit: int = 50) -> list[Pair]:
    """Questions on their own line followed by their answer."""
    lines = text.split("\n")
    pairs: list[Pair] = []
    i = 0
    while i < len(lines) and len(pairs) < limit:
        m = _QUESTION.match(lines[i].strip())
        q = (m.group("q1") or m.group("q2")) if m else ""
        if not m or len(q.split()) < 4:
            i += 1
            continue
        question = _QA_PREFIX.sub("", q).strip()
        answer: list[str] = []
        j = i + 1
        while j < len(lines):
            line = lines[j].strip()
            if _QUESTION.match(line):
                break
            if not line:
                # a blank line then a heading ends the answer
                nxt = next((x.strip() for x in lines[j + 1 : j + 2]), "")
                if answer and nxt and _HEADING.match(nxt) and not _QUESTION.match(nxt):
                    break
            elif line.startswith("#") and answer:
                break
            else:
                answer.append(_A_PREFIX.sub("", line) if not answer else line)
            if sum(len(a) for a in answer) > 4000:
                break
            j += 1
        if answer:
            pairs.append((question, "\n".join(answer).strip()))
        i = j
    return pairs


_FENCE = re.compile(r"```[\w+-]*\n(?P<code>.*?)\n```", re.S)
_SENTENCE_END = re.compile(r"[.:!?]\s*$")


def _prose_before(text: str, end: int, limit: int = 400) -> str:
    """The paragraph just before ``end`` if it reads as prose (5+ words, ends like a sentence)."""
    before = text[max(0, end - 8 * limit) : end].rstrip()  # a window: the paragraph is near, the text may be long
    para = re.split(r"\n\s*\n", before)[-1].strip() if before else ""
    para = " ".join(para.split())
    if len(para.split()) < 5 or not _SENTENCE_END.search(para) or para.count("`") > 6 or not para[0].isupper():
        return ""
    if len(para) > limit:  # keep the last sentences
        cut = para[-limit:]
        para = cut[cut.find(". ") + 2 :] if ". " in cut else cut
    return para.rstrip(":").rstrip() + ("" if para.endswith((".", "?", "!")) else ".")


def _code_instruction(prose: str, context: str | None) -> str:
    where = f" (from the documentation of {context})" if context else ""
    return f"{prose}\n\nShow this with a short code example{where}."


# a doctest run on its own lines: `>>> stmt`, `... continuation` and output lines, up to a blank line
_DOCTEST_RUN = re.compile(r"(?P<run>(?:^>>> [^\n]*\n?)(?:^(?!\s*$)[^\n]*\n?)*)", re.M)


_CODE_LINE = re.compile(
    r"[(){}\[\];=<>$|\\]|^\s*(?:[$#>%]\s|\w+(?:\.\w+)+\(|(?:import|from|def|class|return|"
    r"curl|git|pip|npm|docker|kubectl|aws|gcloud|select|create|insert|update|delete)\b)",
    re.I,
)


def looks_like_code(block: str) -> bool:
    """Most lines carry code syntax, few read as sentences: indented text in manuals is often wrapped prose."""
    lines = [line for line in block.split("\n") if line.strip()]
    if not lines:
        return False
    code = sum(1 for line in lines if _CODE_LINE.search(line))
    prose = sum(1 for line in lines if len(line.split()) >= 6 and line.rstrip().endswith((".", ",")))
    return code >= 0.5 * len(lines) and prose <= 0.3 * len(lines)


# a line ending in ':' then an indented block; anchored at line starts (unanchored, `[^\n]+:` backtracks over
# every position of a long line)
_INDENTED = re.compile(r"^(?P<intro>[^\n]*:)[ \t]*\n\n?(?P<code>(?:(?: {4}|\t)[^\n]*\n?)+)", re.M)


def code_example_pairs(text: str, context: str | None = None, limit: int = 50) -> list[Pair]:
    pairs: list[Pair] = []
    for m in _FENCE.finditer(text):
        prose = _prose_before(text, m.start())
        code = m.group("code").strip("\n")
        if prose and code.strip():
            pairs.append((_code_instruction(prose, context), code))
    # doctest runs on their own lines; the prose before them is the description. (Doctests that trafilatura
    # flattened into one table cell, as pydoc pages have them, are left alone: with no line breaks there is no
    # reliable end to a statement's output.)
    for m in _DOCTEST_RUN.finditer(text):
        prose = _prose_before(text, m.start())
        if not prose:
            line_start = text.rfind("\n", 0, max(0, m.start() - 1)) + 1
            intro = " ".join(text[line_start : m.start()].split())
            prose = (
                intro.rstrip(":") + "."
                if (len(intro.split()) >= 5 and intro.endswith(":") and intro[0].isupper())
                else ""
            )
        code = m.group("run").strip("\n")
        if prose and len(pairs) < limit:
            pairs.append((_code_instruction(prose, context), code))
    # indented blocks after a line ending with ':'
    for m in _INDENTED.finditer(text):
        prose = " ".join(m.group("intro").split())
        code = "\n".join(line[4:] if line.startswith("    ") else line[1:] for line in m.group("code").split("\n"))
        if len(prose.split()) >= 5 and prose[0].isupper() and looks_like_code(code) and len(pairs) < limit:
            pairs.append((_code_instruction(prose.rstrip(":") + ".", context), code.strip("\n")))
    return pairs[:limit]


# ---------------------------------------------------------------------------------------------- API operations


def imperative(sentence: str) -> str:
    """'Describes one or more filters.' → 'Describe one or more filters'; a description already written as a
    command ('Create a new distribution.') stays as it is; '' when the first word cannot be a verb ('Information
    about…'). The verb's base form comes from lemminflect's dictionary and rules (so 'Analyzes' → 'Analyze',
    'Does' → 'Do')."""
    words = sentence.strip().rstrip(".").split(" ", 1)
    if not words or not words[0] or not words[0][0].isalpha():
        return ""
    verb, rest = words[0], (words[1] if len(words) > 1 else "")
    base = verb_base(verb)
    if not base:
        return ""
    if verb[0].isupper():
        base = base[0].upper() + base[1:]
    return f"{base} {rest}".strip()


def verb_base(word: str) -> str:
    """The base form of ``word`` when it is a verb in the base or third-person form, else ''."""
    from lemminflect import getAllLemmas, getInflection

    low = word.lower()
    lemmas = getAllLemmas(low).get("VERB")
    if not lemmas:
        return ""
    lemma = lemmas[0]
    if low == lemma or low in (getInflection(lemma, tag="VBZ") or ()):
        return lemma
    return ""


def _first_sentence(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    m = re.search(r"(?<=[.!?])\s", text)
    return (text[: m.start()] if m else text)[:limit]


def _placeholder(p: dict) -> str:
    if p.get("enum"):
        return json.dumps(p["enum"][0])
    if p.get("default") not in (None, ""):
        return p["default"]
    t = (p.get("type") or "string").lower()
    if t in ("integer", "int", "long", "number", "double", "float"):
        return "1"
    if t in ("boolean", "bool"):
        return "True"
    return json.dumps(f"<{p['name']}>")


def documented_example(tool: dict) -> dict | None:
    """The operation's first documented example (botocore's ``examples-1.json``: a title, a description, the input
    and usually the output), else None."""
    for raw in tool.get("examples") or []:
        try:
            e = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            continue
        if isinstance(e, dict) and isinstance(e.get("input"), dict) and (e.get("title") or e.get("description")):
            return e
    return None


def example_pair(tool: dict, example: dict) -> Pair | None:
    """A pair from a documented example: its title as the request (with the example's values), answered with the
    call on those values, the documented response and what the operation does."""
    title = " ".join(str(example.get("title") or "").split()).rstrip(".")
    request = (
        re.sub(r"^To\s+", "", title)
        if title.lower().startswith("to ")
        else imperative(re.sub(r"^(The following|This) example\s+", "", str(example.get("description") or "")).strip())
    )
    if not request:
        return None
    api = tool.get("api_title") or tool.get("api") or ""
    api = api if api.lower().endswith("api") else f"{api} API"
    values = "; ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in example["input"].items())
    instruction = f"{request[0].upper()}{request[1:]} with the {api}" + (f" ({values})." if values else ".")
    sdk = tool.get("sdk_name") or ""
    args = ", ".join(f"{k}={v!r}" for k, v in example["input"].items())
    if tool.get("spec_format") == "botocore" and "." in sdk:
        client, _, method = sdk.partition(".")
        code = f"import boto3\n\nclient = boto3.client({client!r})\nresponse = client.{method}({args})"
    elif sdk and re.fullmatch(r"[A-Za-z_][\w.]*", sdk):
        code = f"response = {sdk}({args})"
    else:
        return None
    response = f"```python\n{code}\n```"
    if example.get("output"):
        shown = json.dumps(example["output"], ensure_ascii=False, indent=2)
        response += f"\n\nThe documented response:\n\n```json\n{shown[:3000]}\n```"
    described = " ".join(str(example.get("description") or "").split())
    desc = _first_sentence(tool.get("description") or "")
    return instruction, response + "".join(f"\n\n{t}" for t in (described, desc) if t)


def api_operation_pair(tool: dict, without_example: bool = False) -> Pair | None:
    """One pair for an API operation record (the tool_doc schema's fields): from its documented example when it
    has one; otherwise (only with ``without_example``) a template that restates the operation's documentation."""
    example = documented_example(tool)
    if example is not None:
        return example_pair(tool, example)
    if not without_example:
        return None
    desc = _first_sentence(tool.get("description") or "")
    action = imperative(desc)
    if not action:
        return None
    api = tool.get("api_title") or tool.get("api") or ""
    api = api if api.lower().endswith("api") else f"{api} API"
    instruction = f"{action[0].upper()}{action[1:]} with the {api}."
    params = tool.get("parameters") or []
    required = [p for p in params if p.get("required")]
    lines = []
    sdk = tool.get("sdk_name")
    args = ", ".join(
        f"{p['name']}={_placeholder(p)}"
        for p in required
        if p.get("location") not in ("header", "cookie", "path") or tool.get("spec_format") != "html"
    )
    if sdk and tool.get("spec_format") == "botocore":
        client, _, method = sdk.partition(".")
        lines.append(
            f"With boto3:\n\n```python\nimport boto3\n\nclient = boto3.client({client!r})\n"
            f"response = client.{method}({args})\n```"
        )
    elif sdk and tool.get("spec_format") == "discovery":
        name, _, chain = sdk.partition(".")
        lines.append(
            f"With google-api-python-client:\n\n```python\nfrom googleapiclient.discovery import build\n\n"
            f"service = build({name!r}, {tool.get('version') or 'v1'!r})\n"
            f"response = service.{chain}({args}).execute()\n```"
        )
    elif sdk and re.fullmatch(r"[A-Za-z_][\w.]*", sdk):
        lines.append(f"Call `{sdk}`:\n\n```python\n{sdk}({args})\n```")
    if tool.get("method") and tool.get("path"):
        base = (tool.get("base_url") or "").rstrip("/")
        lines.append(f"{'Or send' if sdk else 'Send'} `{tool['method']} {base}{tool['path']}`.")
    if not lines:
        return None
    explained = [
        f"- `{p['name']}` ({p.get('type') or 'value'}, {p.get('location') or 'argument'}"
        f"{', required' if p.get('required') else ''}): {_first_sentence(p.get('description') or '', 200)}"
        for p in params[:20]
    ]
    response = "\n\n".join(lines)
    response += f"\n\n{desc}" if desc else ""
    if explained:
        response += "\n\nParameters:\n" + "\n".join(e.rstrip(": ") for e in explained)
    return instruction, response

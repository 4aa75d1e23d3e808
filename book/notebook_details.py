"""Folded answers and evidence blocks (``<details>``) made to render as JupyterLab shows them.

The notebooks fold a question's answer or a claim's evidence in raw HTML,
``<details><summary>Answer</summary>text with $math$</details>``. JupyterLab renders the
Markdown and the math inside the block. CommonMark (and so MyST) reads a ``<details>`` line as
the start of an HTML block that runs to the next blank line, and passes it through verbatim:
the math stays raw TeX and the Markdown unparsed. ``open_details`` sets the block's body off
by blank lines, at the block's own indentation (so that an answer stays inside its list
item), which makes MyST parse the body as Markdown between the two raw tags; the browser then
nests it in the ``<details>``, closed until the reader opens it. Code spans and fenced code
are left alone.
"""
from __future__ import annotations

import re
import textwrap

TOKENS = re.compile(r"(?P<fence>^[ \t]*```.*?^[ \t]*```)|(?P<code>`[^`\n]+`)"
                    r"|(?P<details>^(?P<indent>[ \t]*)(?P<head><details[^>]*>[ \t]*<summary>.*?</summary>)"
                    r"(?P<body>.*?)</details>)", re.DOTALL | re.MULTILINE)


def _block(m: re.Match) -> str:
    """One ``<details>`` block with its body between blank lines, at the block's indentation."""
    indent = m.group("indent")
    first, _, rest = m.group("body").partition("\n")
    body = (first.strip() + "\n" + textwrap.dedent(rest)).strip("\n")
    lines = [indent + line if line.strip() else "" for line in body.splitlines()]
    middle = "\n\n" + "\n".join(lines) + "\n\n" if lines else "\n\n"
    return f"{indent}{m.group('head')}{middle}{indent}</details>"


def open_details(text: str) -> str:
    """``text`` (a Markdown cell) with the body of every ``<details>`` block that starts a line
    set off by blank lines, so that MyST parses it as Markdown; a blank line also follows the
    closing tag (an HTML block runs to the next blank line and would swallow the next line)."""
    def fix(m: re.Match) -> str:
        if m.group("details") is None:
            return m.group(0)
        after = text[m.end():]
        end = "" if not after.strip() or after.startswith(("\n\n", "\n \n")) else "\n"
        return _block(m) + end
    return TOKENS.sub(fix, text)

"""Notebook Markdown made to parse as JupyterLab shows it, before MyST reads it.

JupyterLab takes the TeX out of a Markdown cell before parsing the Markdown, so math may do
things that CommonMark would read otherwise; MyST (like every CommonMark parser) parses first.
Two such habits of the notebooks:

* inline math broken over lines, where the next line starts with ``+`` or ``-`` (a list item
  for CommonMark, which ends the paragraph and leaves a raw ``$``): the line breaks inside
  ``$...$`` become spaces, which TeX reads the same way;
* a ``$$`` display block straight after a line of text: it is set off by blank lines.

Code spans and fenced code are left alone.
"""
from __future__ import annotations

import re

# Fenced code, code spans, display math, inline math: tried in that order at each position.
TOKENS = re.compile(r"(?P<fence>^```.*?^```)|(?P<code>`[^`\n]+`)|(?P<display>\$\$.+?\$\$)"
                    r"|(?P<inline>(?<![\\$])\$(?:[^$\n]|\n(?![ \t]*\n))+?(?<!\\)\$)",
                    re.DOTALL | re.MULTILINE)


def jupyter_math(text: str) -> str:
    """``text`` (a Markdown cell) with its math laid out so that CommonMark keeps it whole."""
    def fix(m: re.Match) -> str:
        s = m.group(0)
        if m.lastgroup == "inline":
            return s.replace("\n", " ")
        if m.lastgroup == "display":
            before, after = text[:m.start()], text[m.end():]
            if before.endswith("\n") and before.strip() and not before.endswith("\n\n"):
                s = "\n" + s      # the line above is text: start a new block
            if after.startswith("\n") and after.strip() and not after.startswith("\n\n"):
                s = s + "\n"      # the line below is text: end the block
        return s
    return TOKENS.sub(fix, text)

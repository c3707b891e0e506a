"""Text from data or a study file, made safe where the paper puts it: in the Markdown pandoc reads, and in a
message on the terminal.

pandoc's Markdown takes raw HTML, images and links (which `--embed-resources` fetches and embeds), citations,
maths, emphasis, headings and lists, and the build fills `{{ ... }}` placeholders: a team named
`<img src="/etc/hostname" onerror="alert(1)">` made pandoc embed that file in the page and kept a live
attribute, and a period label `<script>...</script>` emptied a table header. Every value substituted into a
manuscript (a label, a title, a table cell, a warning) goes through `markdown` (or `code`), so that it prints as
the text it is; the Markdown written around it, by the author or the generator, stays Markdown.

Apostrophes and "..." are left to pandoc's typography (’ and …), as in the author's text.
"""

from __future__ import annotations

import re

# control characters: a line break would end a table row or start a block, a tab would start a code block
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# What means something anywhere in a line: backslash escapes, code, emphasis, links and images, spans and
# attributes (and the build's own placeholders), raw HTML and autolinks, entities, citations, maths,
# superscripts, subscripts and strikeout, table cells, straight quotes (pandoc curls them); and a run of
# dashes, which pandoc turns into an en or em dash, a rule or a YAML block.
INLINE = re.compile(r"""([\\`*_\[\]{}<&@$^~|"]|-(?=-)|(?<=-)-)""")
# What starts a block when it starts a line (a text may be put at the start of a paragraph or a list item): a
# heading, a block quote, a definition or a fenced div, a setext underline, a title block, a bullet, a table's
# caption, an ordered list's marker (a number, a letter or a roman numeral, before "." or ")" or in brackets).
# The backslash goes where the match ends.
MARKER = r"(?:\d+|[A-Za-z]|[ivxlcdm]+|[IVXLCDM]+)"
START = re.compile(rf"^(?=[#>:=%]|[-+](?:\s|$)|\({MARKER}\)(?:\s|$))|^Table(?=:)|^{MARKER}(?=[.)](?:\s|$))")


def markdown(text: object) -> str:
    """`text` escaped for pandoc's Markdown: it prints literally wherever it stands, in a sentence, at the start
    of a paragraph or list item, or in a pipe table's cell. Digits are never escaped, so that the check for
    numbers typed by hand sees a declared text as declared."""
    text = INLINE.sub(r"\\\1", CONTROL.sub(" ", str(text)).strip())
    return START.sub(lambda match: match.group(0) + "\\", text, count=1)


def code(text: object) -> str:
    """`text` as a code span (a model's formula, a condition, a file name), with a fence longer than any run of
    backticks in it. A code span cannot escape `{{` or `}}`, which the build would fill as a placeholder: such a
    text is written as escaped text instead."""
    text = CONTROL.sub(" ", str(text)).strip()
    if "{{" in text or "}}" in text:
        return markdown(text)
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def terminal(message: str) -> str:
    """A message for the terminal as printable text: a character the terminal would act on (an escape sequence,
    a bell, a direction override) is written as its Python escape, such as \\x1b."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in message)

"""Escaping for the report's pages: every string a user controls goes through here before it becomes HTML.

Two layers. `escape` (and `styled` for pandas tables) makes user text inert where the report builds HTML; then
`sanitize_notebook` cleans every HTML and markdown output of an executed notebook with bleach's allowlist before
nbconvert writes the page, so a table or a `display(Markdown(...))` that forgot to escape still cannot run script.
"""

from __future__ import annotations

import html as _html
import re

# what the report's own outputs use; anything else is shown as escaped text, never interpreted
ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "details", "div", "em", "h1", "h2",
    "h3", "h4", "h5", "h6", "hr", "i", "li", "ol", "p", "pre", "small", "span", "strong", "style", "sub",
    "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
})
ALLOWED_ATTRIBUTES = {"*": ["class", "id", "title", "colspan", "rowspan", "style"], "a": ["href", "title"]}
ALLOWED_PROTOCOLS = frozenset({"http", "https"})  # plus relative links; no javascript:, no data:
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def escape(value) -> str:
    """Any value as inert HTML text (quotes included, so it is safe inside an attribute too)."""
    return _html.escape("" if value is None else str(value), quote=True)


def markdown_text(value) -> str:
    """A user string for the inside of a markdown paragraph or heading: HTML-escaped, and markdown's
    punctuation backslash-escaped, so a backtick or an asterisk in a task name cannot break the structure."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", escape(value).replace("\n", " "))


def styled(frame, **format_kwargs):
    """`frame.style` with cells, index and column labels escaped (pandas' Styler escapes nothing by default)."""
    style = frame.style.format(escape="html", **format_kwargs)
    for axis in (0, 1):
        style = style.format_index(escape="html", axis=axis)
    return style


def sanitize_fragment(fragment: str) -> str:
    """An HTML fragment reduced to the allowlist: script, event handlers, javascript: links, images, iframes
    and forms do not survive (disallowed tags are kept as visible, escaped text)."""
    import bleach
    from bleach.css_sanitizer import CSSSanitizer

    return bleach.clean(fragment, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, protocols=ALLOWED_PROTOCOLS,
                        css_sanitizer=CSSSanitizer(), strip=False, strip_comments=True)


def sanitize_markdown(source: str) -> str:
    """Markdown rendered to HTML (as nbconvert would) and then sanitized."""
    import mistune

    return sanitize_fragment(mistune.html(source))


def _joined(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def sanitize_notebook(nb) -> None:
    """Clean, in place, every output a browser would interpret: text/html is sanitized, text/markdown becomes
    sanitized HTML, JavaScript and SVG outputs are dropped (images stay: PNG data is not interpreted)."""
    for cell in nb.cells:
        for output in cell.get("outputs", []) or []:
            data = output.get("data")
            if not data:
                continue
            for mime in [m for m in list(data) if "javascript" in m or m in ("image/svg+xml", "text/latex")
                         or m.startswith("application/vnd.jupyter.widget")]:
                del data[mime]
            if "text/markdown" in data:
                data["text/html"] = sanitize_markdown(_joined(data.pop("text/markdown")))
            elif "text/html" in data:
                data["text/html"] = sanitize_fragment(_joined(data["text/html"]))
        if cell.get("outputs"):
            cell["outputs"] = [o for o in cell["outputs"] if "data" not in o or o["data"]]  # nothing left to show

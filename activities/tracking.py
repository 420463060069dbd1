"""Open and click tracking for the HTML part of an email.

`track_html` rewrites every web link (`<a href="http(s)://...">`) to a signed click URL,
`{public_url}/t/c/{token}`, and adds a 1x1 open pixel, `{public_url}/t/o/{token}`, before
`</body>`. The original URLs come back in order as `links`; the send activity stores them on the
claimed message row, and a click token names only an index into that list, so `/t/c` can never
redirect anywhere the template did not link to.

Left alone: `mailto:`, `tel:`, `#anchors` and other schemes (a redirect would break them), and
the unsubscribe link (it must work without our tracking in the way, and a tracked unsubscribe
would count as a click on the content).

The text part is not touched: it has no pixel to carry, and a plain-text reader sees the URL
itself, so it should read as the real destination, not as an opaque redirect.

No HTML library is installed (no lxml, no BeautifulSoup), so the stdlib `HTMLParser` finds the
real `<a>` start tags (skipping comments, `<script>` and `<style>`, which it understands) and
reports where each starts; only the `href` attribute inside that tag's own text is replaced.
Everything else in the document is kept byte for byte.

The tokens name the message id and the link's index, so composing the same message again (a
retry) gives the same links, in the same order, behind tokens that decode to the same claims.
They are not byte-identical: `journeyman.signing` stamps each token with the second it was
signed (for its expiry), like the Date header and the unsubscribe token of the same email. Only
one composition is ever sent (the claim), and every token of every attempt stays valid.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser

from activities.channels.base import Outgoing
from journeyman.signing import Signer, click_token, open_token

OPEN_PATH = "/t/o/"
CLICK_PATH = "/t/c/"

# One attribute of a start tag: its name, then maybe `=` and a double-quoted, single-quoted or
# unquoted value (the three forms HTML allows). Scanning attributes in order (rather than
# searching for "href=") keeps an "href=" written inside another attribute's value untouched.
_ATTRIBUTE = re.compile(
    r"""[\s/]*(?P<name>[^\s"'>/=]+)(?:\s*=\s*(?P<value>"[^"]*"|'[^']*'|[^\s"'=<>`]+))?"""
)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_TRACKED_SCHEMES = ("http://", "https://")


@dataclass(frozen=True)
class TrackedHtml:
    html: str
    # The original URLs, in order of appearance; index i is what click token i redirects to.
    links: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TrackedOutgoing(Outgoing):
    """An email ready to send, with the links its tracking URLs stand for."""

    links: tuple[str, ...] = ()


def tracked_links(outgoing: Outgoing) -> list[str]:
    """What the send activity stores on the message row: the links behind the click tokens."""
    return list(outgoing.links) if isinstance(outgoing, TrackedOutgoing) else []


def open_url(public_url: str, signer: Signer, message_id: str) -> str:
    return f"{public_url.rstrip('/')}{OPEN_PATH}{open_token(signer, message_id)}"


def click_url(public_url: str, signer: Signer, message_id: str, index: int) -> str:
    return f"{public_url.rstrip('/')}{CLICK_PATH}{click_token(signer, message_id, index)}"


def track_html(
    document: str,
    *,
    message_id: str,
    public_url: str,
    signer: Signer,
    keep: frozenset[str] = frozenset(),
) -> TrackedHtml:
    """Rewrite the web links of `document` to click URLs and add the open pixel.

    `keep` holds URLs never rewritten (the unsubscribe link), compared after unescaping.
    """
    finder = _AnchorFinder()
    finder.feed(document)
    finder.close()
    offsets = _line_offsets(document)
    links: list[str] = []
    pieces: list[str] = []
    done = 0
    for (line, column), tag in finder.anchors:
        start = offsets[line - 1] + column
        if not document.startswith(tag, start):  # never expected; leave the link as it is
            continue
        replaced = _rewrite_tag(
            tag, keep, lambda url: _click(url, links, message_id, public_url, signer)
        )
        if replaced == tag:
            continue
        pieces.append(document[done:start])
        pieces.append(replaced)
        done = start + len(tag)
    pieces.append(document[done:])
    rewritten = "".join(pieces)
    pixel = (
        f'<img src="{html.escape(open_url(public_url, signer, message_id))}"'
        ' width="1" height="1" alt="">'
    )
    ends = list(_BODY_END.finditer(rewritten))
    if ends:
        at = ends[-1].start()
        rewritten = f"{rewritten[:at]}{pixel}{rewritten[at:]}"
    else:  # a fragment without <body>: the pixel goes last
        rewritten = f"{rewritten}{pixel}"
    return TrackedHtml(html=rewritten, links=links)


def _click(url: str, links: list[str], message_id: str, public_url: str, signer: Signer) -> str:
    links.append(url)
    return click_url(public_url, signer, message_id, len(links) - 1)


def _rewrite_tag(tag: str, keep: frozenset[str], track: Callable[[str], str]) -> str:
    """The start tag with its `href` replaced, or the tag unchanged if not tracked."""
    value = _href(tag)
    if value is None:
        return tag
    start, end = value
    raw = tag[start:end]
    quoted = raw[:1] in {'"', "'"}
    url = html.unescape(raw[1:-1] if quoted else raw).strip()
    if not url.lower().startswith(_TRACKED_SCHEMES) or url in keep:
        return tag
    return f'{tag[:start]}"{html.escape(track(url), quote=True)}"{tag[end:]}'


def _href(tag: str) -> tuple[int, int] | None:
    """Where the value of the first `href` attribute of a start tag (`<a ...>`) lies."""
    position = 2  # past "<a"
    while (match := _ATTRIBUTE.match(tag, position)) is not None and match.end() > position:
        if match.group("name").lower() == "href" and match.group("value") is not None:
            return match.start("value"), match.end("value")
        position = match.end()
    return None


class _AnchorFinder(HTMLParser):
    """Collects the position and exact source text of every `<a>` start tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[tuple[int, int], str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        text = self.get_starttag_text()
        if tag == "a" and text:
            self.anchors.append((self.getpos(), text))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)


def _line_offsets(document: str) -> list[int]:
    """The index in `document` where each line starts (HTMLParser reports line and column).

    HTMLParser counts lines by "\\n" only, so splitting on anything else would drift.
    """
    offsets = [0]
    for match in re.finditer("\n", document):
        offsets.append(match.end())
    return offsets

"""The few HTML pages the API shows to people (not to backends): unsubscribe, for now.

One Jinja2 environment, built with the app, autoescaping everything: these pages echo what a
link carried. Operators may restyle a page by putting their own under
`<JOURNEYMAN_TEMPLATES_DIR>/pages/`; the built-in ones fill in the rest.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined

from activities.rendering import brand_from_sender
from journeyman.settings import PROJECT_ROOT, Settings

BUILT_IN = PROJECT_ROOT / "templates" / "pages"
# The URL holds the token: keep it out of caches, referrers and search engines.
PRIVATE_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}


class Pages:
    def __init__(self, settings: Settings) -> None:
        self._environment = Environment(
            loader=ChoiceLoader(
                [FileSystemLoader(settings.templates_dir / "pages"), FileSystemLoader(BUILT_IN)]
            ),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._brand = brand_from_sender(settings.email_from)

    def render(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        html = self._environment.get_template(name).render(brand=self._brand, **context)
        return HTMLResponse(html, status_code=status_code, headers=PRIVATE_PAGE_HEADERS)

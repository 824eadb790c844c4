"""The web console's local sign-in: a route only the local CDN serves, beside the console's page
(`/console/local-only/token`), so a developer signs in with a name and no identity provider.

GET answers 200 (the page shows its local sign-in only then); POST `{"sub": "<name>"}`, as JSON, answers
`{"token", "subject", "expiresIn"}`: a token signed by the local cloud's key for its own issuer, as `python -m local
token --sub <name>` prints. A deployed distribution has no such route: there the path reads a missing object and the
page offers its OIDC sign-in instead. A page on another origin cannot read the answer: the JSON content type forces a
CORS preflight, which the console's behaviour does not admit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from components.console import CONSOLE_PREFIX

TOKEN_PATH = f"/{CONSOLE_PREFIX}local-only/token"
MAX_BODY_BYTES = 1024
TOKEN_SECONDS = 3600
SUBJECT = re.compile(r"[A-Za-z0-9._@:+-]{1,128}")

Minter = Callable[[str, int], str]
"""Signs a token for (subject, lifetime in seconds)."""


def token_answer(method: str, content_type: str, body: bytes, mint: Minter) -> tuple[int, dict[str, object]]:
    """The status and JSON body answering one request to TOKEN_PATH."""
    if method in ("GET", "HEAD"):
        return 200, {"localOnly": True, "usage": 'POST {"sub": "<name>"} as application/json for a token'}
    if method != "POST":
        return 405, {"message": f"{method} is not supported here: GET or POST"}
    if content_type.split(";", maxsplit=1)[0].strip().lower() != "application/json":
        return 415, {"message": "send the request as application/json"}
    try:
        subject = json.loads(body or b"null").get("sub")
    except (ValueError, AttributeError):
        return 400, {"message": 'the body must be a JSON object: {"sub": "<name>"}'}
    if not isinstance(subject, str) or not SUBJECT.fullmatch(subject):
        return 400, {"message": "sub must be 1 to 128 letters, digits or . _ @ : + -"}
    return 200, {"token": mint(subject, TOKEN_SECONDS), "subject": subject, "expiresIn": TOKEN_SECONDS}

"""One rule for showing a URL in logs, states and APIs without its secrets."""

from __future__ import annotations

import re

_PASSWORD = re.compile(r"(//[^:/@]+:)[^@/]+@")
_SECRET_QUERY = re.compile(
    r"([?&;](?:[\w.-]*(?:key|token|secret|passw(?:or)?d|pass|pwd|sig(?:nature)?|auth)[\w.-]*)=)"
    r"[^&;#]*",
    re.IGNORECASE,
)


def redact_url(url: str) -> str:
    """``url`` with the password of its user part and the values of query parameters that
    name a secret (``apikey``, ``token``, ``access_token``, ``sig`` ...) replaced by ``***``."""
    return _SECRET_QUERY.sub(r"\1***", _PASSWORD.sub(r"\1***@", url))

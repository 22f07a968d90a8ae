"""Model-API endpoints on hosts that are not the model makers' own: what a relay's documentation gives.

Why: a relay's docs page rarely says whom it serves or what it costs. It says "set base_url to
https://api.<its host>/v1 and use the key from our console", next to GPT, Claude and Gemini. That
address is the offer: the page hands out access to US models through a third party. Measured on
real pages collected for tests/fixtures/real_web (README, "Measured quality"), about four in ten
seller pages name such an endpoint in their opening and about one negative page in thirty does
(a review that quotes a relay's address). So it is one feature of the learned decision
(index.evidence, ``api_endpoint``), not a rule.

Not endpoints: the providers' own hosts (the watchlist's domains of US clouds and model makers),
code and package hosts, and the placeholders of self-hosted gateway docs (localhost, private
addresses, "your-domain").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from tld import get_fld

from index.entities import on_domains

_URL = re.compile(r"https?://([a-z0-9][a-z0-9.-]*\.[a-z]{2,})(?::\d+)?(/[^\s\"'<>)\]]*)?")
# An API path, or words just before the address that name it as the address to call.
_API_PATH = re.compile(r"/v1(?:\b|/)|/api(?:\b|/)")
_NAMED_AS_ENDPOINT = re.compile(
    r"base[_ ]?url|api[_ ]?base|endpoint|接口地址|请求地址|api ?地址|代理地址|调用地址|域名")
CONTEXT_CHARS = 40
# Hosts of code, packages and model hubs: an address there is a project page, not an endpoint.
_DEVELOPER_HOSTS = ("github.com", "githubusercontent.com", "gitee.com", "npmjs.com", "pypi.org", "docker.com",
                    "huggingface.co")
_PLACEHOLDERS = ("localhost", "127.0.0.1", "0.0.0.0", "192.168.", "10.0.", "example", "your", "xxx", "domain")


def third_party_endpoints(text: str, provider_domains: Iterable[str]) -> list[str]:
    """The API addresses in ``text`` on hosts that are neither a provider's nor a placeholder."""
    lowered = text.lower()
    official = (*provider_domains, *_DEVELOPER_HOSTS)
    found = []
    for match in _URL.finditer(lowered):
        host, path = match.group(1), match.group(2) or ""
        if on_domains(host, official) or any(word in host for word in _PLACEHOLDERS):
            continue
        before = lowered[max(0, match.start() - CONTEXT_CHARS):match.start()]
        if _API_PATH.search(path) or _NAMED_AS_ENDPOINT.search(before):
            found.append(host + path)
    return found


def site_of(host: str) -> str:
    """The registered domain (``docs.relay.com.cn`` -> ``relay.com.cn``), from the public suffix list
    the ``tld`` package ships (never fetched); the host itself where there is none."""
    return get_fld(host, fix_protocol=True, fail_silently=True) or host


def serves_itself(url: str, endpoints: Iterable[str]) -> bool:
    """Whether one of the endpoints is on the page's own site: a relay's docs giving its own address.
    A review quoting a relay gives someone else's; a domestic platform's docs give its own too, which
    is why this is a feature weighed with the others, not a verdict."""
    page_site = site_of((urlsplit(url).hostname or "").lower())
    return bool(page_site) and any(site_of(endpoint.split("/", 1)[0]) == page_site for endpoint in endpoints)

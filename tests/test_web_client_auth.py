"""Basic authentication on a request: ``auth=(user, password)``, sent to the URL's origin
only (HC2), refused beside an Authorization header of the caller's own."""

from __future__ import annotations

import base64

import pytest

from asyncnet.web import Client, WebConfigurationError

from .web_client_peers import Seen, aiohttp_server

pytestmark = pytest.mark.timeout(30)


async def test_auth_is_sent_to_the_origin_and_dropped_on_a_redirect_away() -> None:
    """HC2: the credentials reach the first origin, not the second one."""
    here, there = Seen(), Seen()
    async with (
        aiohttp_server(here) as first,
        aiohttp_server(there) as second,
        Client(timeout=10, trust_env=False) as client,
    ):
        response = await client.fetch(f"{first}redirect?to={second}", auth=("alice", "s3cret"))
    assert response.text() == "hello"
    assert here.authorization == ["Basic " + base64.b64encode(b"alice:s3cret").decode()]
    assert there.authorization == [None]


async def test_auth_and_an_authorization_header_are_refused_together() -> None:
    seen = Seen()
    async with aiohttp_server(seen) as url, Client(timeout=10, trust_env=False) as client:
        with pytest.raises(WebConfigurationError, match="not both"):
            await client.fetch(url, auth=("a", "b"), headers={"Authorization": "Bearer x"})
        with pytest.raises(WebConfigurationError, match="cannot hold ':'"):
            await client.fetch(url, auth=("a:b", "c"))
    assert seen.paths == []

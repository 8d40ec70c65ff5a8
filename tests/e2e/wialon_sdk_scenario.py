"""Drives TokenHub with the `wialon` SDK from PyPI (Golden M's WialonSdk and AsyncWialonSdk).

Run by tests/e2e/test_wialon_clients.py with the interpreter of a virtualenv that holds the SDK
(it needs Python >= 3.13, and its module is named `wialon` like python-wialon's, so it cannot live
in the project's environment). It prints one JSON object: what each step answered, or the SDK's
error code for a step that failed; the test makes the assertions.

    python wialon_sdk_scenario.py GATEWAY_URL USER PASSWORD CHILD_ID STRANGER STRANGER_PASSWORD
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

# Imported by name: under the project's own type checker `wialon` is python-wialon's module.
wialon: Any = importlib.import_module("wialon")


def outcome(step: Callable[[], Any]) -> Any:
    """What a step answered, or {"sdk_error": code} when the SDK raised WialonError."""
    try:
        return step()
    except wialon.WialonError as exc:
        return {"sdk_error": int(exc._code)}


async def async_outcome(step: Callable[[], Awaitable[Any]]) -> Any:
    try:
        return await step()
    except wialon.WialonError as exc:
        return {"sdk_error": int(exc._code)}


def password_session(url: str, user: str, password: str) -> tuple[Any, dict[str, Any]]:
    """The SDK logs in only with a token (`login`); a core/login session is handed to it the way its
    own login() keeps a token login's `eid`."""
    sdk = wialon.WialonSdk(url=url)
    login = sdk.core_login({"user": user, "password": password})
    sdk._session_id = login["eid"]
    return sdk, login


def main() -> None:
    url, user, password, child_id, stranger, stranger_password = sys.argv[1:7]
    seen: dict[str, Any] = {}
    sdk, seen["core_login"] = password_session(url, user, password)

    # create -> token/login with the new h -> token/list shows it with ll -> update -> delete
    spec = {"app": "wialon-sdk", "at": 0, "dur": 0, "fl": -1, "p": '{"from": "wialon-sdk"}'}
    created = sdk.token_update({"callMode": "create", **spec})
    seen["created"] = created
    with_token = wialon.WialonSdk(url=url)
    seen["token_login"] = with_token.login(created["h"])
    seen["token_session_list"] = outcome(lambda: with_token.token_list({}))
    seen["listed"] = sdk.token_list({})
    seen["updated"] = sdk.token_update(
        {"callMode": "update", "h": created["h"], **spec, "app": "wialon-sdk-2", "dur": 3600}
    )
    seen["token_session_after_update"] = outcome(lambda: with_token.token_list({}))
    seen["deleted"] = sdk.token_update({"callMode": "delete", "h": created["h"]})
    seen["login_after_delete"] = outcome(lambda: wialon.WialonSdk(url=url).login(created["h"]))

    # a token with fl 0x100 cannot manage tokens
    tracking = sdk.token_update({"callMode": "create", **spec, "fl": 0x100})
    limited = wialon.WialonSdk(url=url)
    limited.login(tracking["h"])
    seen["limited_list"] = outcome(lambda: limited.token_list({}))
    seen["limited_create"] = outcome(
        lambda: limited.token_update({"callMode": "create", **spec, "fl": 0x100})
    )
    seen["limited_logout"] = limited.logout()

    # sub-users: allowed for a child, refused for a stranger
    for_child = sdk.token_update({"callMode": "create", **spec, "userId": child_id})
    seen["child_token_owner"] = wialon.WialonSdk(url=url).login(for_child["h"])["user"]["id"]
    seen["child_tokens"] = sdk.token_list({"userId": child_id})
    outsider, _ = password_session(url, stranger, stranger_password)
    seen["stranger_list"] = outcome(lambda: outsider.token_list({"userId": child_id}))
    seen["stranger_create"] = outcome(
        lambda: outsider.token_update({"callMode": "create", **spec, "userId": child_id})
    )
    seen["stranger_delete"] = outcome(
        lambda: outsider.token_update({"callMode": "delete", "h": for_child["h"], "userId": child_id})
    )

    # the asynchronous client: token login, a list, a batch, logout
    async def run_async() -> None:
        client = wialon.AsyncWialonSdk(url=url)
        await client.login(for_child["h"])
        seen["async_list"] = await client.token_list({})
        seen["async_batch"] = await client.core_batch(
            {"params": [{"svc": "token/list", "params": {}}, {"svc": "no/such", "params": {}}], "flags": 0}
        )
        seen["async_logout"] = await client.logout()
        seen["async_after_logout"] = await async_outcome(lambda: client.token_list({}))

    asyncio.run(run_async())
    seen["logout"] = sdk.logout()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()

"""Real Wialon client libraries from PyPI, pointed at TokenHub, must not notice the difference.

- `python-wialon` (Gurtam's, module `wialon`) runs here, from the project's environment;
- `wialon` (Golden M's SDK, also module `wialon`, Python >= 3.13) runs in a subprocess, from a
  virtualenv this module creates (tests/e2e/wialon_sdk_scenario.py).

Each drives the issue's scenario: core/login, token/update create, token/login with the new h,
token/list showing it with `ll`, update, delete, token/login failing with 7; a token with fl 0x100
refused token management; sub-user management allowed for a child and refused for a stranger.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from wialon import Wialon, WialonError  # type: ignore[import-untyped]  # python-wialon has no types

from tests.e2e.harness import Cluster
from tests.e2e.wialon_client import SESSION_ID, TOKEN, TOKEN_FIELDS, WialonUser, new_user

pytestmark = pytest.mark.e2e

SCENARIO = Path(__file__).with_name("wialon_sdk_scenario.py")
WIALON_SDK = "wialon==1.2.0"


@pytest.fixture(scope="module")
def family(environment: dict[str, str]) -> dict[str, WialonUser]:
    parent = new_user(environment, "clients-parent")
    child = new_user(environment, "clients-child", parent=parent.name)
    stranger = new_user(environment, "clients-stranger")
    return {"parent": parent, "child": child, "stranger": stranger}


def code_of(exc: pytest.ExceptionInfo[Any]) -> int:
    """python-wialon's WialonError keeps the code only in `_code`."""
    code: int = exc.value._code
    return code


def python_wialon(cluster: Cluster, sid: str | None = None) -> Any:
    url = urlsplit(cluster.gateway_url)
    return Wialon(scheme="http", host=url.hostname, port=url.port, sid=sid)


def password_login(cluster: Cluster, user: WialonUser) -> Any:
    api = python_wialon(cluster)
    login = api.core_login(user=user.name, password=user.password)
    assert SESSION_ID.fullmatch(login["eid"])
    api.sid = login["eid"]
    return api


SPEC = {"app": "python-wialon", "at": 0, "dur": 0, "fl": -1, "p": "{}"}


def test_python_wialon_scenario(cluster: Cluster, family: dict[str, WialonUser]) -> None:
    api = password_login(cluster, family["parent"])

    created = api.token_update(callMode="create", **SPEC)
    assert set(created) == TOKEN_FIELDS
    assert TOKEN.fullmatch(created["h"])
    with_token = python_wialon(cluster)
    login = with_token.token_login(token=created["h"])  # python-wialon adds appName itself
    assert login["th"] == created["h"]
    assert login["user"]["id"] == family["parent"].id
    with_token.sid = login["eid"]
    assert created["h"] in {t["h"] for t in with_token.token_list({})}
    listed = {t["h"]: t for t in api.token_list({})}[created["h"]]
    assert listed["ll"] >= created["ct"]
    assert listed["ll"] > 0

    updated = api.token_update(callMode="update", h=created["h"], **{**SPEC, "app": "renamed", "dur": 3600})
    assert (updated["h"], updated["app"], updated["dur"]) == (created["h"], "renamed", 3600)
    with pytest.raises(WialonError) as ended:
        with_token.token_list({})  # the update ended the token's sessions
    assert code_of(ended) == 1

    deleted = api.token_update(callMode="delete", h=created["h"])
    assert deleted["h"] == created["h"]
    with pytest.raises(WialonError) as refused:
        python_wialon(cluster).token_login(token=created["h"])
    assert code_of(refused) == 7

    # A call without arguments, as python-wialon's README logs out: params "[]".
    assert api.core_logout() == {"error": 0}
    with pytest.raises(WialonError) as dead:
        api.token_list({})
    assert code_of(dead) == 1


def test_python_wialon_a_tracking_token_cannot_manage_tokens(
    cluster: Cluster, family: dict[str, WialonUser]
) -> None:
    api = password_login(cluster, family["parent"])
    tracking = api.token_update(callMode="create", **{**SPEC, "fl": 0x100})
    limited = python_wialon(cluster)
    limited.sid = limited.token_login(token=tracking["h"])["eid"]
    calls: list[Callable[[], Any]] = [
        lambda: limited.token_list({}),
        lambda: limited.token_update(callMode="create", **{**SPEC, "fl": 0x100}),
        lambda: limited.token_update(callMode="delete", h=tracking["h"]),
    ]
    for call in calls:
        with pytest.raises(WialonError) as denied:
            call()
        assert code_of(denied) == 7
    assert tracking["h"] in {t["h"] for t in api.token_list({})}


def test_python_wialon_sub_users(cluster: Cluster, family: dict[str, WialonUser]) -> None:
    parent = password_login(cluster, family["parent"])
    child_id = family["child"].id
    for_child = parent.token_update(callMode="create", userId=str(child_id), **SPEC)
    assert for_child["h"] in {t["h"] for t in parent.token_list({"userId": child_id})}
    assert python_wialon(cluster).token_login(token=for_child["h"])["user"]["id"] == child_id

    stranger = password_login(cluster, family["stranger"])
    calls: list[Callable[[], Any]] = [
        lambda: stranger.token_list({"userId": child_id}),
        lambda: stranger.token_update(callMode="create", userId=child_id, **SPEC),
        lambda: stranger.token_update(callMode="delete", h=for_child["h"], userId=child_id),
    ]
    for call in calls:
        with pytest.raises(WialonError) as denied:
            call()
        assert code_of(denied) == 7
    # A batch with python-wialon: the list form of params.
    results = parent.core_batch([{"svc": "token/list", "params": {"userId": child_id}}])
    assert for_child["h"] in {t["h"] for t in results[0]}


# --- the `wialon` SDK, in a virtualenv of its own ---------------------------------------------------


def _version(python: str) -> tuple[int, int] | None:
    try:
        result = subprocess.run(
            [python, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return None
    match = re.fullmatch(r"(\d+) (\d+)\s*", result.stdout)
    if result.returncode != 0 or match is None:
        return None  # e.g. a pyenv shim for a version that is not selected
    return int(match[1]), int(match[2])


def sdk_interpreter() -> tuple[str, list[str]]:
    """A Python the SDK supports (>= 3.13): $WIALON_SDK_PYTHON, python3.13+ on the PATH, or a pyenv
    version. Without one, this interpreter, installing with --ignore-requires-python: the SDK's
    code runs on 3.11 (it takes `Self` from typing), so the test still drives the real client."""
    pyenv = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates = [
        os.environ.get("WIALON_SDK_PYTHON"),
        shutil.which("python3.14"),
        shutil.which("python3.13"),
        *sorted(glob.glob(f"{pyenv}/versions/3.1[3-9]*/bin/python3"), reverse=True),
    ]
    for python in candidates:
        if python and (_version(python) or (0, 0)) >= (3, 13):
            return python, []
    return sys.executable, ["--ignore-requires-python"]


@pytest.fixture(scope="module")
def sdk_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The interpreter of a fresh virtualenv holding the `wialon` SDK from PyPI."""
    venv = tmp_path_factory.mktemp("wialon-sdk") / "venv"
    python, pip_options = sdk_interpreter()
    created = subprocess.run([python, "-m", "venv", str(venv)], capture_output=True, text=True, check=False)
    assert created.returncode == 0, created.stderr
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         *pip_options, WIALON_SDK],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return str(venv / "bin" / "python")


def test_wialon_sdk_scenario(cluster: Cluster, family: dict[str, WialonUser], sdk_python: str) -> None:
    parent, child, stranger = family["parent"], family["child"], family["stranger"]
    run = subprocess.run(
        [sdk_python, str(SCENARIO), cluster.gateway_url, parent.name, parent.password, str(child.id),
         stranger.name, stranger.password],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    seen: dict[str, Any] = json.loads(run.stdout)

    assert seen["core_login"]["user"]["id"] == parent.id
    created = seen["created"]
    assert set(created) == TOKEN_FIELDS
    assert TOKEN.fullmatch(created["h"])
    assert json.loads(created["p"]) == {"from": "wialon-sdk"}
    assert seen["token_login"]["th"] == created["h"]
    assert seen["token_login"]["user"]["id"] == parent.id
    assert json.loads(seen["token_login"]["token"])["app"] == "wialon-sdk"
    assert created["h"] in {t["h"] for t in seen["token_session_list"]}
    listed = {t["h"]: t for t in seen["listed"]}[created["h"]]
    assert listed["ll"] >= created["ct"]
    assert listed["ll"] > 0
    assert (seen["updated"]["h"], seen["updated"]["app"], seen["updated"]["dur"]) == (
        created["h"],
        "wialon-sdk-2",
        3600,
    )
    assert seen["token_session_after_update"] == {"sdk_error": 1}
    assert seen["deleted"]["h"] == created["h"]
    assert seen["login_after_delete"] == {"sdk_error": 7}

    assert seen["limited_list"] == {"sdk_error": 7}
    assert seen["limited_create"] == {"sdk_error": 7}
    assert seen["limited_logout"] == {"error": 0}

    assert seen["child_token_owner"] == child.id
    assert len(seen["child_tokens"]) >= 1
    assert seen["stranger_list"] == {"sdk_error": 7}
    assert seen["stranger_create"] == {"sdk_error": 7}
    assert seen["stranger_delete"] == {"sdk_error": 7}

    assert isinstance(seen["async_list"], list)
    assert isinstance(seen["async_batch"][0], list)
    assert seen["async_batch"][1] == {"error": 2}
    assert seen["async_logout"] == {"error": 0}
    assert seen["async_after_logout"] == {"sdk_error": 1}
    assert seen["logout"] == {"error": 0}

"""Real Zabbix client libraries from PyPI, pointed at TokenHub, must not notice the difference
(whether TokenHub keeps its sessions in one Redis or in a Redis Cluster)."""

from __future__ import annotations

import re
import secrets

import pytest
from pyzabbix.api import ZabbixAPI as PyZabbixAPI
from pyzabbix.api import ZabbixAPIException
from zabbix_utils import ZabbixAPI
from zabbix_utils.exceptions import APIRequestError

from tests.conftest import ADMIN_PASSWORD
from tests.e2e.harness import Cluster

pytestmark = pytest.mark.e2e


def test_zabbix_utils_scenario(cluster_on_each_redis: Cluster) -> None:
    cluster = cluster_on_each_redis
    api = ZabbixAPI(url=cluster.gateway_url, skip_version_check=False)
    assert str(api.api_version()) == "6.0.14"
    api.login(user="Admin", password=ADMIN_PASSWORD)
    name = f"zu-{secrets.token_hex(4)}"

    created = api.token.create(name=name, description="from zabbix_utils", expires_at="0")
    token_id = created["tokenids"][0]
    generated = api.token.generate(token_id)
    secret = generated[0]["token"]
    assert re.fullmatch(r"[0-9a-f]{64}", secret)

    found = api.token.get(output="extend", filter={"name": name})
    assert [t["tokenid"] for t in found] == [token_id]
    assert found[0]["description"] == "from zabbix_utils"
    assert found[0]["status"] == "0"

    api.token.update(tokenid=token_id, description="changed", status="1")
    changed = api.token.get(output=["description", "status"], tokenids=[token_id])
    assert changed == [{"description": "changed", "status": "1"}]

    # A disabled token cannot log in; enabled again, it can, and sees its owner's tokens.
    api.token.update(tokenid=token_id, status="0")
    with_token = ZabbixAPI(url=cluster.gateway_url)
    with_token.login(token=secret)
    mine = with_token.token.get(output=["tokenid", "lastaccess"], tokenids=token_id)
    assert mine[0]["tokenid"] == token_id
    assert int(mine[0]["lastaccess"]) > 0

    api.token.delete(token_id)
    assert api.token.get(tokenids=[token_id]) == []
    with pytest.raises(APIRequestError, match="No permissions to referred object or it does not exist!"):
        api.token.delete(token_id)
    api.logout()


def test_pyzabbix_scenario(cluster_on_each_redis: Cluster) -> None:
    cluster = cluster_on_each_redis
    zapi = PyZabbixAPI(cluster.gateway_url)
    zapi.login("Admin", ADMIN_PASSWORD)
    assert zapi.api_version() == "6.0.14"
    names = [f"pz-{secrets.token_hex(4)}" for _ in range(3)]

    created = zapi.token.create(*[{"name": n, "userid": "1"} for n in names])
    ids = created["tokenids"]
    assert len(ids) == 3
    secrets_by_id = {t["tokenid"]: t["token"] for t in zapi.token.generate(*ids)}
    assert set(secrets_by_id) == set(ids)

    searched = zapi.token.get(output=["name"], search={"name": "PZ-"}, startSearch=True, sortfield="name")
    assert {t["name"] for t in searched} >= set(names)
    counted = zapi.token.get(countOutput=True, tokenids=ids)
    assert counted == "3"
    keyed = zapi.token.get(output=["name"], tokenids=ids, preservekeys=True)
    assert sorted(keyed) == sorted(ids)

    zapi.token.update({"tokenid": ids[0], "name": names[0] + "-renamed"})
    assert zapi.token.get(output=["name"], tokenids=ids[0])[0]["name"] == names[0] + "-renamed"
    with pytest.raises(ZabbixAPIException, match="already exists"):
        zapi.token.create(name=names[1], userid="1")

    token_api = PyZabbixAPI(cluster.gateway_url)
    token_api.login(api_token=secrets_by_id[ids[1]])
    assert token_api.token.get(output=["tokenid"], tokenids=ids[1]) == [{"tokenid": ids[1]}]

    zapi.token.delete(*ids)
    assert zapi.token.get(tokenids=ids) == []
    with pytest.raises(ZabbixAPIException, match="Not authorized"):
        token_api.token.get(output=["tokenid"])

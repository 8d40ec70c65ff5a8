"""TODO(issue 14): the registry's zabbix_tokens endpoints, their models and client methods."""

from __future__ import annotations

from shared.contracts.client import ServiceClient
from shared.contracts.endpoint import Endpoint, Message

ENDPOINTS: tuple[Endpoint[Message, Message], ...] = ()


class ZabbixTokensClient(ServiceClient):
    pass

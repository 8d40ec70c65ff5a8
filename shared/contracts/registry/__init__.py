"""The registry's internal API, one module per area; `RegistryClient` combines their clients."""

from __future__ import annotations

from shared.contracts.endpoint import Api
from shared.contracts.registry import accounts, admin, vouchers, wialon_tokens, zabbix_tokens

REGISTRY_API = Api(
    "registry",
    (
        *accounts.ENDPOINTS,
        *zabbix_tokens.ENDPOINTS,
        *wialon_tokens.ENDPOINTS,
        *vouchers.ENDPOINTS,
        *admin.ENDPOINTS,
    ),
)


class RegistryClient(
    accounts.AccountsClient,
    zabbix_tokens.ZabbixTokensClient,
    wialon_tokens.WialonTokensClient,
    vouchers.VouchersClient,
    admin.AdminClient,
):
    """Every registry call, typed: `await registry.get_user(7)`."""

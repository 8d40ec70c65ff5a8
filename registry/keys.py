"""Every key the registry's application holds, typed."""

from __future__ import annotations

from aiohttp import web

from registry.admin import AdminStore
from registry.store import Store
from registry.vouchers import VoucherStore
from registry.wialon_tokens import WialonTokens
from registry.zabbix_tokens import ZabbixTokens
from shared.settings import Settings

settings_key: web.AppKey[Settings] = web.AppKey("settings")
store_key = web.AppKey("store", Store)
voucher_store_key = web.AppKey("voucher_store", VoucherStore)
zabbix_tokens_key = web.AppKey("zabbix_tokens", ZabbixTokens)
wialon_tokens_key = web.AppKey("wialon_tokens", WialonTokens)
admin_store_key = web.AppKey("admin_store", AdminStore)

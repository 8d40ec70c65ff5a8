"""Zabbix API 6.0 over JSON-RPC 2.0 — `POST /api_jsonrpc.php` (DESIGN §2.1).

- `envelope`: the JSON-RPC envelope, method lookup and authentication;
- `validator`: Zabbix's input validation, with its error texts;
- `errors`: Zabbix's errors, and the tables that say domain errors in them;
- `user`, `token`: the methods, one function each, reading like the API reference.

The methods are registered here, in one table, and nowhere else.
"""

from gateway.dialects.zabbix import token, user
from gateway.dialects.zabbix.envelope import JsonRpc, MethodSpec

METHODS: dict[str, MethodSpec] = {
    "apiinfo.version": MethodSpec(user.apiinfo_version, needs_auth=False),
    "user.login": MethodSpec(user.login, needs_auth=False),
    "user.logout": MethodSpec(user.logout),
    "user.checkAuthentication": MethodSpec(user.check_authentication, needs_auth=False),
    "token.create": MethodSpec(token.create),
    "token.update": MethodSpec(token.update),
    "token.delete": MethodSpec(token.delete),
    "token.generate": MethodSpec(token.generate),
    "token.get": MethodSpec(token.get),
}

handle = JsonRpc(METHODS).handle

__all__ = ["METHODS", "handle"]

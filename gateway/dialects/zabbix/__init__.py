"""Zabbix API 6.0 over JSON-RPC 2.0 — `POST /api_jsonrpc.php` (DESIGN §2.1).

- `envelope`: the JSON-RPC envelope, method lookup and authentication;
- `validator`: Zabbix's input validation, with its error texts;
- `user`, `token`: the methods, one function each, reading like the API reference.
"""

from gateway.dialects.zabbix import token, user
from gateway.dialects.zabbix.envelope import handle

__all__ = ["handle", "token", "user"]

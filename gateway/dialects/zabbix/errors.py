"""Zabbix API errors: a JSON-RPC code and Zabbix's own `data` text; and the way domain errors of the
services become them: each call site names a declarative table (`ErrorTable`) of what it says for
which domain error, and `saying(table)` applies it. What no table says is the envelope's to say."""

from __future__ import annotations

from gateway.dialects.common import ErrorTable, JsonObject

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602  # Zabbix's ZBX_API_ERROR_PARAMETERS and ZBX_API_ERROR_NO_AUTH
INTERNAL_ERROR = -32603
APPLICATION_ERROR = -32500  # Zabbix's ZBX_API_ERROR_PERMISSIONS and ZBX_API_ERROR_INTERNAL

MESSAGES = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid request.",
    METHOD_NOT_FOUND: "Method not found.",
    INVALID_PARAMS: "Invalid params.",
    INTERNAL_ERROR: "Internal error.",
    APPLICATION_ERROR: "Application error.",
}

NOT_A_REQUEST = "The received JSON is not a valid JSON-RPC request."
PARSE_ERROR_DATA = "Invalid JSON. An error occurred on the server while parsing the JSON text."
NO_PERMISSIONS = "No permissions to referred object or it does not exist!"
UNAVAILABLE = "Service temporarily unavailable, try again later."
INTERNAL_ERROR_DATA = "Internal JSON-RPC error."

# A JSON-RPC id as Zabbix accepts it.
CallId = str | int | float | None


class ApiError(Exception):
    def __init__(self, code: int, data: str) -> None:
        super().__init__(data)
        self.code = code
        self.data = data

    def reply(self, call_id: CallId, method: str) -> JsonObject:
        """The error object answering a call of `method` (as the client wrote it)."""
        return error_reply(self.code, self.data, call_id)


class NoCallPermission(ApiError):
    """The caller may not call this method: Zabbix names the method as the client wrote it, which
    only the envelope knows, so the text is made when the reply is."""

    def __init__(self) -> None:
        super().__init__(APPLICATION_ERROR, "No permissions to call the method.")

    def reply(self, call_id: CallId, method: str) -> JsonObject:
        return error_reply(self.code, f'No permissions to call "{method}".', call_id)


def error_reply(code: int, data: str, call_id: CallId) -> JsonObject:
    return {"jsonrpc": "2.0", "error": {"code": code, "message": MESSAGES[code], "data": data}, "id": call_id}


def invalid_param(path: str, problem: str) -> ApiError:
    return ApiError(INVALID_PARAMS, f'Invalid parameter "{path}": {problem}.')


def params_error(text: str) -> ApiError:
    return ApiError(INVALID_PARAMS, text)


def not_authorized() -> ApiError:
    return ApiError(INVALID_PARAMS, "Not authorized.")


def session_terminated() -> ApiError:
    return ApiError(INVALID_PARAMS, "Session terminated, re-login, please.")


def no_system_access() -> ApiError:
    return ApiError(INVALID_PARAMS, "No permissions for system access.")


def no_permissions() -> ApiError:
    return ApiError(APPLICATION_ERROR, NO_PERMISSIONS)


# A table's entries: each makes the Zabbix error for one domain error.
Errors = ErrorTable[ApiError]

"""ChatApp-style access/refresh pairs — `/v1/tokens`, `/v1/tokens/refresh`, `/v1/tokens/check`,
`DELETE /v1/tokens` and the forward-auth `GET /v1/auth` (DESIGN §2.4, docs/chatapp.md).

- `envelope`: the reply and error envelope, ChatApp's errors, and the tables from domain errors to
  them;
- `params`: reading the body, the fields of tokens.make, tokens in headers;
- `handlers`: the methods, one function each, reading like the API reference.
"""

from gateway.dialects.chatapp.envelope import (
    ApiError,
    failure,
    invalid_credentials,
    invalid_token,
    rate_limit_headers,
    refuse_other_methods,
    service_unavailable,
    tokens_limit,
    too_many_attempts,
    validation_error,
)
from gateway.dialects.chatapp.handlers import (
    forward_auth,
    pair_data,
    tokens_check,
    tokens_make,
    tokens_refresh,
    tokens_revoke,
)
from gateway.dialects.chatapp.params import make_params, plausible, token_from_header

__all__ = [
    "ApiError",
    "failure",
    "forward_auth",
    "invalid_credentials",
    "invalid_token",
    "make_params",
    "pair_data",
    "plausible",
    "rate_limit_headers",
    "refuse_other_methods",
    "service_unavailable",
    "token_from_header",
    "tokens_check",
    "tokens_limit",
    "tokens_make",
    "tokens_refresh",
    "tokens_revoke",
    "too_many_attempts",
    "validation_error",
]

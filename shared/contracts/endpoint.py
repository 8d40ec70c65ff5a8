"""What one internal call is: a path, a request model, a reply model. Both sides use the same
`Endpoint` object — the caller's typed client sends with it (`shared/internal.py`), the callee's
app registers its handler under it (`shared/contracts/server.py`) — so a path is written once, and a
route cannot exist on one side only.

Every internal call is a POST with a JSON body, whatever it does: one shape to send, log, balance
and retry. Whether a call may be repeated safely is a property of the call, said here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict


class Message(BaseModel):
    """A request. Unknown fields are refused: a caller's typo is an error, not a no-op."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Reply(Message):
    """A reply. Unknown fields are ignored, so a callee may add one before its callers read it (a
    rolling upgrade updates the registry before the gateways)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Empty(Reply):
    """A reply that says only that the call succeeded."""


Req = TypeVar("Req", bound=Message)
Rep = TypeVar("Rep", bound=Message)
# An endpoint only hands its models out, so an Endpoint[OpenSession, SessionOpened] is an
# Endpoint[Message, Message]: that is what lets one table list them all.
_Req_co = TypeVar("_Req_co", bound=Message, covariant=True)
_Rep_co = TypeVar("_Rep_co", bound=Message, covariant=True)


@dataclass(frozen=True)
class Endpoint(Generic[_Req_co, _Rep_co]):
    path: str
    request: type[_Req_co]
    reply: type[_Rep_co]
    status: int = 200
    # Reads, verifications, session checks: asking twice answers the same and changes nothing the
    # caller can tell. A client may retry these on another replica; never a write.
    idempotent: bool = False


@dataclass(frozen=True)
class Api:
    """One service's internal API: every endpoint it serves."""

    service: str
    endpoints: tuple[Endpoint[Message, Message], ...]

    def __post_init__(self) -> None:
        paths = [endpoint.path for endpoint in self.endpoints]
        if len(paths) != len(set(paths)):
            raise ValueError(f"{self.service}: an internal path is listed twice")

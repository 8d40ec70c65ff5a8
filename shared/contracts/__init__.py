"""The typed contract between TokenHub's services.

Every internal call is an `Endpoint` (path, request model, reply model) listed in its service's
`Api`: `issuer.ISSUER_API`, `registry.REGISTRY_API`. Callers use the typed clients (`IssuerClient`,
`RegistryClient`) over one transport (`shared/internal.py`); callees register their handlers with
`shared/contracts/server.py`, which refuses an app that serves more or less than its `Api`. Errors
are the typed classes of `shared/errors.py`. The gateway never sees a dict from a backend.
"""

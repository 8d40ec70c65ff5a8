"""The admin API (issue 17): `models` (public JSON), `service` (typed functions, the console's entry
point), `api` (the `/admin/v1/` routes and their table), `openapi` (the document's generated part)."""

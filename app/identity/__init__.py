"""Identity: who is asking — users and their roles, passwords, API keys and access tokens.

Owns authentication and user administration, in these modules:

- ``roles``: ``Role``, the grid-scoped and network-wide role sets, the caller (``AuthenticatedUser``) and
  grid-area scoping (``grid_area_scope``, ``can_access_grid_area``);
- ``errors``: the 401/403 errors and their ``ERROR_STATUSES``;
- ``passwords``: argon2id hashing and verification (also of API-key secrets) and the cost profiles;
- ``api_keys``: API-key creation, shape check and verification (with the verified-key memory);
- ``tokens``: JWT access tokens, issued and verified (with the verified-signature cache);
- ``auth``: password sign-in and the FastAPI dependencies every router uses (``CurrentUser``, ``AdminUser``,
  ``require_roles``, ``require_grid_area``, ``require_owner``); it re-exports the public names of the modules
  above, so the rest of the app imports them from ``app.identity.auth``;
- ``users``: user and API-key administration, shared by the API and the CLI.

May import ``app.platform`` and ``app.settings`` (and ``design_rules``/``gis``); never another business context
or ``app.api``.
"""

"""Identity: who is asking — users and their roles, passwords, API keys and access tokens.

Owns authentication (``auth``: OAuth2 password flow, JWTs, API keys, the role and grid-area checks every
router uses) and user administration (``users``). May import ``app.platform`` (and ``design_rules``/``gis``);
never another business context or ``app.api``.
"""

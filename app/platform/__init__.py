"""Platform: the infrastructure every business context stands on, and nothing about the business.

Owns the database engine and the ORM schema (``db``, ``models``, ``migrate``), the error table and handlers
(``errors``), logging and metrics (``observability``), time helpers (``clock``), the audit log (``audit``),
idempotent requests (``idempotency``), periodic jobs (``jobs``), notifications (``notifications``), upload
storage (``uploads``), rate limits (``ratelimit``) and the request dependencies (``deps``).
May import ``app.settings``, ``design_rules`` and ``gis`` only — never a business context or ``app.api``.
"""

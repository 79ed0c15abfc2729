"""Design: turning a customer's pin into a stored, versioned design — source, route, job class, BOM, drawing.

Owns the design service (``service``: run the rules of ``design_rules`` on the network snapshot, store and
load versions, ETags) and the survey package a project manager's terminal opens (``survey``). May import
``app.network``, ``app.identity``, ``app.platform``, ``design_rules`` and ``gis``; never ``app.api``,
``app.lifecycle`` or ``app.planning``.
"""

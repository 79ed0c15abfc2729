"""Lifecycle: an application from intake to power-on — forms, the state machine, stages, deadlines, contracts.

Owns applications (``applications``: intake, 1+1 assignment, survey adjustments, confirmation, stage
reports, cancellation and their JSON views), the supply-contract versions (``contracts``) and the deadline
watch job (``deadlines``). May import ``app.design``, ``app.network``, ``app.identity``, ``app.platform``,
``design_rules`` and ``gis``; never ``app.api`` or ``app.planning``.
"""

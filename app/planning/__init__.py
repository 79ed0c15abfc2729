"""Planning: what planners and the public see of the network's capacity.

Owns the capacity snapshot and its per-generation cache (``capacity``), the map snapshot behind the
planner map, features and vector tiles (``mapdata``, ``tiles``) and the public capacity disclosure
(``disclosure``). May import ``app.network``, ``app.identity``, ``app.platform``, ``design_rules`` and
``gis``; never ``app.api``, ``app.design`` or ``app.lifecycle``.
"""

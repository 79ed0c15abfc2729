"""Network: the grid assets Sanling designs against and the capacity booked on them.

Owns the generation counters that tell workers the network or its loads changed (``generations``), reading
the network into memory (``reading``), the per-worker siting engine and its snapshots (``siting``), capacity
bookings (``reservations``), loading GIS files into the database (``loading``, the binary-COPY ``sink``) and
the background import jobs of the import API (``import_jobs``). May import ``app.platform``,
``app.identity``, ``design_rules`` and ``gis``; never ``app.api`` or the contexts built on it (design,
lifecycle, planning).
"""

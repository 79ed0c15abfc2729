"""Accountability reports (R8; issue 14): the annex-2 project detail table and the annex-1 "1+1" roster.

``project_detail`` and ``roster`` build the rows from stored data as pure functions; ``queries`` reads the
database; ``writers`` streams a table as XLSX (openpyxl write-only), CSV (UTF-8 with BOM) or JSON. The router is
``app/api/reports.py``; docs/reporting.md.
"""

"""The shared ``Reason`` record every rule returns beside its decision (STYLE 5)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reason:
    """One readable, citable reason behind a rule's decision (理由).

    Parameters
    ----------
    code : str
        Stable, UPPER_SNAKE machine code, e.g. ``"SERVICE_DROP_WITHIN_LIMITS"``.
        Codes are part of the API: never rename one, add a new one instead.
    message : str
        Human-readable explanation; Chinese text quoted from the seed is welcome.
    source : str
        Where the rule or number comes from: seed and clause (``"CQ-32 §1"``),
        a DOMAIN.md section (``"DOMAIN §1.1"``) or a requirement (``"R3"``).
        Empty only for purely computational notes.

    Examples
    --------
    >>> r = Reason("EXCLUDED_CATEGORY", "居民住宅小区不适用", "CQ-32 §1")
    >>> r.code
    'EXCLUDED_CATEGORY'
    >>> r.to_dict()["source"]
    'CQ-32 §1'
    """

    code: str
    message: str
    source: str = ""

    def to_dict(self) -> dict[str, str]:
        """Return ``{code, message, source}`` for JSON answers.

        Examples
        --------
        >>> Reason("A", "b", "c").to_dict()
        {'code': 'A', 'message': 'b', 'source': 'c'}
        """
        return {"code": self.code, "message": self.message, "source": self.source}

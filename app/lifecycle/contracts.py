"""Supply-contract versions a customer accepts online at application (R1.4), read from ``contracts.toml``."""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field

from app.platform.errors import ErrorStatuses
from gis.errors import InvalidInputError, SanlingError

CONTRACTS_FILE = "contracts.toml"


class ContractDataError(SanlingError):
    """``app/lifecycle/contracts.toml`` is malformed (a deployment fault, HTTP 500)."""

    code = "CONTRACT_DATA_INVALID"
    default_message = "The supply-contract file is invalid."


class ContractMismatchError(InvalidInputError):
    """The customer accepted an unknown contract version or a text other than the one on file (HTTP 422)."""

    code = "CONTRACT_MISMATCH"
    default_message = "The accepted contract is not the current text; reload the contract and accept it again."


#: HTTP statuses of this module's errors (collected by ``app.wiring.error_table``).
ERROR_STATUSES: ErrorStatuses = ((ContractDataError, 500), (ContractMismatchError, 422))


class Contract(BaseModel):
    """One contract version: its text and the SHA-256 (hex) of that text in UTF-8."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    title_zh: str = Field(min_length=1)
    source: str = Field(min_length=3)
    current: bool = False
    text_zh: str = Field(min_length=20)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def sha256(self) -> str:
        """SHA-256 of the UTF-8 text, as the customer's app computes it over the text it displayed."""
        return hashlib.sha256(self.text_zh.encode("utf-8")).hexdigest()


@lru_cache(maxsize=1)
def contracts() -> Mapping[str, Contract]:
    """Every contract version, keyed by version (read once; immutable)."""
    raw = tomllib.loads(resources.files("app.lifecycle").joinpath(CONTRACTS_FILE).read_text(encoding="utf-8"))
    out: dict[str, Contract] = {}
    for version, entry in raw.get("versions", {}).items():
        try:
            out[version] = Contract(version=version, **entry)
        except ValidationError as exc:
            error = exc.errors()[0]
            raise ContractDataError(file=CONTRACTS_FILE, entry=version,
                                    field=".".join(str(p) for p in error["loc"]), reason=error["msg"]) from exc
    if sum(c.current for c in out.values()) != 1:
        raise ContractDataError(file=CONTRACTS_FILE, field="current", reason="exactly one version must be current")
    return MappingProxyType(out)


def current_contract() -> Contract:
    """The version new applications accept."""
    return next(c for c in contracts().values() if c.current)


def check_acceptance(version: str, sha256: str) -> Contract:
    """Return the current contract if ``version`` and ``sha256`` name it, else raise ``CONTRACT_MISMATCH``."""
    contract = current_contract()
    if version != contract.version or sha256.strip().lower() != contract.sha256:
        raise ContractMismatchError(field="contract_sha256", current_version=contract.version,
                                    current_sha256=contract.sha256)
    return contract

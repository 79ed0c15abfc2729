"""Roles, the authenticated caller (:class:`AuthenticatedUser`) and grid-area scoping (MISSION R5.1, docs/auth.md)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import Row

from app.platform.models import ApiKey, User


class Role(StrEnum):
    """The roles of issue 5; ``admin`` passes every role check (see :func:`app.identity.auth.require_roles`)."""

    CUSTOMER = "customer"
    CUSTOMER_MANAGER = "customer_manager"
    PROJECT_MANAGER = "project_manager"
    PLANNER = "planner"
    GIS_ADMIN = "gis_admin"
    ADMIN = "admin"


# Roles whose work is limited to the grid areas listed on their user (MISSION R5.1, the "1+1" team).
GRID_SCOPED_ROLES = frozenset({Role.CUSTOMER_MANAGER, Role.PROJECT_MANAGER})
# Roles that see the whole network (planners read it, GIS administrators import it, admins do everything).
NETWORK_WIDE_ROLES = frozenset({Role.PLANNER, Role.GIS_ADMIN, Role.ADMIN})


@dataclass(frozen=True)
class AuthenticatedUser:
    """The caller of a request, detached from the database session.

    Attributes
    ----------
    id, username, role, full_name, phone
        From the ``users`` row (the role is read from the database, not trusted from the token).
    grid_area_codes : tuple of str
        Grid areas of a customer manager or project manager; empty for other roles.
    auth_method : {"password", "api_key"}
        ``password``: a JWT from the password flow; ``api_key``: a terminal's API key.
    api_key_id : int or None
        The key used, when ``auth_method`` is ``api_key``.
    """

    id: int
    username: str
    role: Role
    full_name: str | None = None
    grid_area_codes: tuple[str, ...] = ()
    phone: str | None = None
    auth_method: Literal["password", "api_key"] = "password"
    api_key_id: int | None = None

    @property
    def is_admin(self) -> bool:
        """Whether the user is an administrator."""
        return self.role is Role.ADMIN

    def has_role(self, *roles: Role) -> bool:
        """Return whether the user holds one of ``roles`` (administrators hold every role)."""
        return self.is_admin or self.role in roles

    @classmethod
    def from_row(cls, user: User | Row[Any], *, api_key: ApiKey | None = None) -> AuthenticatedUser:
        """Build from a ``users`` row and, for API-key requests, the key row.

        ``user`` is an entity or a row of :data:`app.identity.auth._USER_COLUMNS`.
        """
        return cls(id=user.id, username=user.username, role=Role(user.role), full_name=user.full_name,
                   grid_area_codes=tuple(user.grid_area_codes or ()), phone=user.phone,
                   auth_method="api_key" if api_key is not None else "password",
                   api_key_id=api_key.id if api_key is not None else None)


# --- scoping helpers ----------------------------------------------------------------------------------------


def grid_area_scope(user: AuthenticatedUser) -> frozenset[str] | None:
    """Return the grid areas whose work the user may see, or None for the whole network.

    Parameters
    ----------
    user : AuthenticatedUser
        The caller.

    Returns
    -------
    frozenset of str or None
        None for planners, GIS administrators and admins; the user's own codes for customer managers and
        project managers; the empty set for customers (they are scoped by ownership, not by area).
    """
    if user.role in NETWORK_WIDE_ROLES:
        return None
    if user.role in GRID_SCOPED_ROLES:
        return frozenset(user.grid_area_codes)
    return frozenset()


def can_access_grid_area(user: AuthenticatedUser, code: str | None) -> bool:
    """Return whether grid area ``code`` is inside the user's scope (see :func:`grid_area_scope`).

    This checks scope only; whether the role may perform the action at all is
    :func:`app.identity.auth.require_roles`' job.

    Parameters
    ----------
    user : AuthenticatedUser
        The caller.
    code : str or None
        The grid area code of the object (None: not yet assigned to an area, visible network-wide only).

    Returns
    -------
    bool
        True when the user may act on work in that grid area.
    """
    scope = grid_area_scope(user)
    return scope is None or (code is not None and code in scope)


"""Errors of the application lifecycle, and their HTTP statuses (``ERROR_STATUSES``, collected by ``app.wiring``)."""

from __future__ import annotations

from app.platform.errors import ErrorStatuses
from gis.errors import InvalidInputError, NotFoundError, SanlingError


class ApplicationNotFoundError(NotFoundError):
    """No application has this id (HTTP 404)."""

    code = "APPLICATION_NOT_FOUND"
    default_message = "No application has this id."


class ApplicationStateError(SanlingError):
    """The application's state does not allow this action (HTTP 409)."""

    code = "APPLICATION_STATE_INVALID"
    default_message = "The application's state does not allow this action."


class ApplicationClosedError(ApplicationStateError):
    """The application is powered on or cancelled (HTTP 409)."""

    code = "APPLICATION_CLOSED"
    default_message = "The application is closed (powered on or cancelled)."


class AlreadyAssignedError(ApplicationStateError):
    """The application is already in progress with exactly this grid area and team (HTTP 409).

    An admin re-assigns an open application to another team freely; the same assignment twice (two admins, a
    double tap, N concurrent requests) changes nothing, so only the first one wins.
    """

    code = "APPLICATION_ALREADY_ASSIGNED"
    default_message = "The application is already assigned to this grid area and team."


class NotAssignedError(ApplicationStateError):
    """Field work needs the 1+1 team first; the application waits in the admin queue (HTTP 409)."""

    code = "APPLICATION_NOT_ASSIGNED"
    default_message = "The application has no 1+1 team yet; an admin must assign it first."


class StepOutOfOrderError(ApplicationStateError):
    """A step was reported before the steps that come before it (R5.2; HTTP 409)."""

    code = "STEP_OUT_OF_ORDER"
    default_message = "Steps are completed in order; an earlier step is still open."


class StepAlreadyCompletedError(ApplicationStateError):
    """The step was completed before; its time cannot be changed (R5.3; HTTP 409)."""

    code = "STEP_ALREADY_COMPLETED"
    default_message = "This step is already completed; its time is final."


class StepNotInPlanError(ApplicationStateError):
    """The step is not part of this application's plan (e.g. 行政审批 without excavation; HTTP 409)."""

    code = "STEP_NOT_IN_PLAN"
    default_message = "This step is not part of this application's plan."


class ConfirmRequiredError(ApplicationStateError):
    """外线设计并生成物料清单 is completed by confirming the design, not by a stage report (HTTP 409)."""

    code = "CONFIRM_REQUIRED"
    default_message = "Confirm the design to complete 外线设计并生成物料清单."


class DesignFrozenError(ApplicationStateError):
    """The design was confirmed; it and its BOM are frozen (HTTP 409)."""

    code = "DESIGN_FROZEN"
    default_message = "The design is confirmed and frozen; it can no longer be adjusted."


class ConstructionAlreadyStartedError(ApplicationStateError):
    """The start of construction was recorded before; its time is final (R5.3; HTTP 409)."""

    code = "CONSTRUCTION_ALREADY_STARTED"
    default_message = "The start of construction is already recorded; its time is final."


class AccountNumberRequiredError(InvalidInputError):
    """装表接电 is reported with the account number (户号) the meter is energised under (annex 2 #3; HTTP 422)."""

    code = "ACCOUNT_NUMBER_REQUIRED"
    default_message = "The power-on report needs the account number (户号)."


class DocumentMissingError(InvalidInputError):
    """A required document is missing (R1.2: the ID always; the property proof before power-on; HTTP 422)."""

    code = "DOCUMENT_MISSING"
    default_message = "A required document is missing."


class PhotoRequiredError(InvalidInputError):
    """This stage report needs at least one photo (HTTP 422)."""

    code = "PHOTO_REQUIRED"
    default_message = "This stage report needs at least one site photo."


class AssignmentInvalidError(InvalidInputError):
    """An admin assignment names an unknown grid area or users without that role and grid area (HTTP 422)."""

    code = "ASSIGNMENT_INVALID"
    default_message = "The assignment is not valid."


#: HTTP statuses of this module's errors (collected by ``app.wiring.error_table``).
ERROR_STATUSES: ErrorStatuses = ((ApplicationStateError, 409),)

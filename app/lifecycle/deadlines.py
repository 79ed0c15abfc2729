"""Deadline watch (R5.4): mark open steps at risk or overdue and notify the responsible managers.

The periodic job ``deadline_watch`` (listed in ``app.wiring.service_jobs``); ``sanling jobs run deadline_watch``
runs it once.
A warning (``at_risk``) goes to the manager who does the step: the customer manager for 受理申请并签约,
the project manager for the field steps. Escalation (``overdue``) goes to both members of the 1+1 team; an
application still waiting for its team escalates to every active admin. Each notification carries a dedupe
key naming the application, step, status and deadline, so a manager is told once per step and status.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.design.service import work_calendar
from app.identity.auth import Role
from app.lifecycle.states import OPEN_STATUSES, china_date, lock_or_skip
from app.platform.audit import record_change
from app.platform.models import Application, ApplicationStep, User
from app.platform.notifications import notify
from app.settings import Settings
from design_rules.deadline_watch import DeadlineStatus, deadline_status
from design_rules.profiles import StepCode

#: Open steps whose deadline is further than this are on time whatever the calendar (covers the longest break).
HORIZON = timedelta(days=45)
JOB_NAME = "deadline_watch"


@dataclass
class WatchReport:
    """What one run changed."""

    checked: int = 0
    at_risk: int = 0
    overdue: int = 0
    notifications: int = 0
    changed_steps: list[tuple[int, str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, int]:
        """Counts, for the job runner and the CLI."""
        return {"checked": self.checked, "at_risk": self.at_risk, "overdue": self.overdue,
                "notifications": self.notifications}


def _recipients(session: Session, application: Application, step_code: str, status: DeadlineStatus) -> list[int]:
    team = [application.customer_manager_user_id, application.project_manager_user_id]
    if application.project_manager_user_id is None and application.customer_manager_user_id is None:
        if status is DeadlineStatus.AT_RISK:
            return []
        return list(session.scalars(select(User.id).where(User.role == Role.ADMIN.value, User.is_active.is_(True))
                                    .order_by(User.id)))
    if status is DeadlineStatus.OVERDUE:
        wanted: Iterable[int | None] = team
    elif step_code == StepCode.ACCEPT_AND_SIGN:
        wanted = [application.customer_manager_user_id]
    else:
        wanted = [application.project_manager_user_id]
    return sorted({user_id for user_id in wanted if user_id is not None})


def watch_deadlines(session: Session, settings: Settings, *, now: datetime | None = None) -> WatchReport:
    """Update the deadline status of every open step of open applications and notify (flushes, never commits).

    Race-safe against the transitions (issue 13): a step is marked and chased only under its application's
    row lock, re-read (``app.lifecycle.states.lock_or_skip``); the locks are held until the caller commits.
    """
    now = now or datetime.now(UTC)
    today = china_date(now)
    calendar = work_calendar()
    report = WatchReport()
    rows = session.execute(
        select(ApplicationStep, Application).join(Application, Application.id == ApplicationStep.application_id)
        .where(Application.status.in_([s.value for s in OPEN_STATUSES]), ApplicationStep.completed_at.is_(None),
               ApplicationStep.deadline <= today + HORIZON)
        .order_by(ApplicationStep.deadline, ApplicationStep.application_id, ApplicationStep.seq)).all()
    locked: dict[int, bool] = {}
    for step, application in rows:
        status = deadline_status(step.deadline, today, calendar,
                                 at_risk_working_days=settings.deadline_at_risk_working_days)
        if status is not DeadlineStatus.ON_TIME or status.value != step.deadline_status:
            # About to write or notify: take the application's row lock first, as every transition does, and
            # re-read under it. One that a transition holds right now is skipped (the next run sees it), so
            # the watch never waits; a step completed, or an application cancelled, since the read above is
            # neither marked nor chased.
            if application.id not in locked:
                locked[application.id] = lock_or_skip(session, application.id) is not None
            if not locked[application.id]:
                continue
            session.refresh(step)
            if application.status not in OPEN_STATUSES or step.completed_at is not None:
                continue
        report.checked += 1
        if status is DeadlineStatus.AT_RISK:
            report.at_risk += 1
        elif status is DeadlineStatus.OVERDUE:
            report.overdue += 1
        if status.value != step.deadline_status:
            record_change(session, actor_user_id=None, actor_role=None, entity="application_step",
                          entity_id=str(step.id), action="deadline_status_changed",
                          before={"deadline_status": step.deadline_status},
                          after={"deadline_status": status.value, "application_id": application.id,
                                 "step_code": step.step_code, "deadline": step.deadline})
            step.deadline_status = status.value
            report.changed_steps.append((application.id, step.step_code, status.value))
        if status is DeadlineStatus.ON_TIME:
            continue
        report.notifications += _notify(session, application, step, status, today)
    session.flush()
    return report


def _notify(session: Session, application: Application, step: ApplicationStep, status: DeadlineStatus,
            today: date) -> int:
    name = StepCode(step.step_code).label_zh
    if status is DeadlineStatus.AT_RISK:
        kind, subject = "deadline_at_risk", f"预警：申请 {application.id}「{name}」将于 {step.deadline} 到期"
    else:
        kind, subject = "deadline_overdue", f"催办：申请 {application.id}「{name}」已超期（时限 {step.deadline}）"
    body = (f"{application.applicant_name}，{application.address}；环节「{name}」时限 {step.deadline.isoformat()}，"
            f"今日 {today.isoformat()}；承诺送电日 {application.promised_power_on}。")
    sent = 0
    for user_id in _recipients(session, application, step.step_code, status):
        row = notify(session, user_id=user_id, kind=kind, subject=subject, body=body, entity="application",
                     entity_id=str(application.id),
                     dedupe_key=f"{kind}:{application.id}:{step.step_code}:{step.deadline.isoformat()}")
        sent += row is not None
    return sent


def deadline_watch_job(session_factory: sessionmaker[Session], settings: Settings) -> dict[str, int]:
    """Job function: one watch run in its own transaction."""
    with session_factory() as session:
        report = watch_deadlines(session, settings)
        session.commit()
    return report.to_dict()

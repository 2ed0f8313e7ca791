"""The reviewer inbox: server-rendered pages for people and a JSON API for scripts, on one store.

Pages sign in with a reviewer token once and then ride a signed session cookie; every form carries the
session's CSRF token. The API takes the token as a bearer header on every call and never reads the
cookie, so a page on another site cannot make it act. Both paths decide through ``review.decide``,
which checks the policy and audits refusals: the web layer only shows what the policy allows and maps
outcomes to HTTP.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from orchestration_pipelines import review
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.review.policy import ACTIONS
from orchestration_pipelines.review.web.evidence import evidence_file
from orchestration_pipelines.review.web.security import (
    CSRF_FIELD,
    SecurityHeadersMiddleware,
    csrf_token,
    csrf_valid,
    session_secret,
)
from orchestration_pipelines.settings import paths

HERE = Path(__file__).parent
SESSION_COOKIE = "review_session"
SESSION_MAX_AGE = 8 * 3600  # one working day; signing in again is cheap
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
DUE_FILTERS = ("all", "overdue", "today")
QUEUE_LIMIT = 200  # the soonest-due items a page or an API call returns (a person works from the top)
API_MAX_LIMIT = 1000


def create_app(
    store_url: str,
    policy: review.ReviewPolicy | None = None,
    *,
    evidence_dir: Path | None = None,
    data_dir: Path | None = None,
    allowed_hosts: list[str] | None = None,
    secure_cookie: bool = False,
) -> Starlette:
    """The inbox app on the operational store at ``store_url``.

    ``evidence_dir`` is the only folder evidence images are served from (default ``OP_EVIDENCE_DIR``);
    ``data_dir`` holds the generated session secret; ``allowed_hosts`` are the Host headers answered
    (loopback names by default, which also defeats DNS rebinding); ``secure_cookie`` marks the session
    cookie HTTPS-only, for a server reached through TLS.
    """
    layout = paths()
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["when"] = _when
    inbox = _Inbox(
        store=OpStore(store_url),
        policy=policy or review.load_review_policy(),
        evidence_dir=evidence_dir or layout.evidence,
        templates=templates,
    )
    routes = [
        Route("/", inbox.home),
        Route("/signin", inbox.signin_form, methods=["GET"]),
        Route("/signin", inbox.signin, methods=["POST"]),
        Route("/signout", inbox.signout, methods=["POST"]),
        Route("/inbox", inbox.queue),
        Route("/items/{item_id}", inbox.item_page),
        Route("/items/{item_id}/decisions", inbox.decide_form, methods=["POST"]),
        Route("/items/{item_id}/evidence", inbox.evidence),
        Route("/api/items", inbox.api_items),
        Route("/api/items/{item_id}", inbox.api_item),
        Route("/api/items/{item_id}/decisions", inbox.api_decide, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeadersMiddleware),
        Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or LOOPBACK_HOSTS),
        Middleware(
            SessionMiddleware,
            secret_key=session_secret(data_dir or layout.data_dir),
            session_cookie=SESSION_COOKIE,
            max_age=SESSION_MAX_AGE,
            same_site="strict",
            https_only=secure_cookie,
        ),
    ]
    handlers = {HTTPException: inbox.error, OperationalError: inbox.store_unreachable}
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
    app.state.inbox = inbox
    return app


def _now() -> datetime:
    return datetime.now(UTC)


def _end_of_day(moment: datetime) -> datetime:
    return datetime.combine(moment.date() + timedelta(days=1), time.min, tzinfo=UTC)


def _when(stamp: str | None) -> str:
    """A stored ISO 8601 UTC time as people read it, to the minute."""
    return datetime.fromisoformat(stamp).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if stamp else ""


def _overdue(item: review.ReviewItem, now: datetime) -> bool:
    return item.status in review.OPEN_STATUSES and datetime.fromisoformat(item.deadline_at) < now


def _context_sections(context: dict[str, Any]) -> dict[str, Any]:
    """The item's context split for the page: numbers (scores, amounts), reason codes, the drafted reply
    and the articles it cites, and everything else as plain key/value pairs."""
    codes = context.get("reason_codes") or []
    articles = context.get("article_ids") or []
    shown = {"reason_codes", "reply", "article_ids", "evidence_path"}
    numbers = {k: v for k, v in context.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return {
        "scores": numbers,
        "reason_codes": codes.split(";") if isinstance(codes, str) else list(codes),
        "reply": context.get("reply"),
        "articles": articles.split(";") if isinstance(articles, str) else list(articles),
        "other_context": {k: v for k, v in context.items() if k not in shown and k not in numbers},
    }


def _jsonable(value: Any) -> Any:
    """Dataclasses (items, events) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(value)
    return value


@dataclasses.dataclass
class _Inbox:
    """The request handlers, sharing one store, policy and template set."""

    store: OpStore
    policy: review.ReviewPolicy
    evidence_dir: Path
    templates: Jinja2Templates

    # -- who is asking ------------------------------------------------------------------------

    async def _session_reviewer(self, request: Request) -> review.Reviewer | None:
        """The signed-in reviewer, looked up on every request so a disabled one is out at once."""
        reviewer_id = request.session.get("reviewer_id")
        if not reviewer_id:
            return None
        reviewer = await run_in_threadpool(review.get_reviewer, self.store, reviewer_id)
        if reviewer is None or reviewer.disabled_at:
            request.session.clear()
            return None
        return reviewer

    async def _bearer_reviewer(self, request: Request) -> review.Reviewer:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "send the reviewer token as 'Authorization: Bearer <token>'")
        reviewer = await run_in_threadpool(review.authenticate, self.store, token.strip())
        if reviewer is None:
            raise HTTPException(401, "unknown or disabled reviewer token")
        return reviewer

    async def _checked_form(self, request: Request) -> dict[str, Any]:
        """The posted form, refused with 403 unless it carries this session's CSRF token."""
        form = await request.form()
        if not csrf_valid(request.session, form.get(CSRF_FIELD)):
            raise HTTPException(403, "the form's CSRF token is missing or does not match this session")
        return dict(form)

    def _render(self, request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        context.setdefault("reviewer", None)
        context["notice"] = request.session.pop("notice", None)  # what the last decision did, shown once
        return self.templates.TemplateResponse(
            request, name, {**context, "csrf_token": csrf_token(request.session)}, status_code=status_code
        )

    async def error(self, request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
        if exc.status_code == 401:
            return RedirectResponse("/signin", status_code=303)
        return self._render(request, "error.html", exc.status_code, message=exc.detail)

    async def store_unreachable(self, request: Request, exc: OperationalError) -> Response:
        """The store is down or refuses connections: say so (503) instead of a stack trace."""
        return await self.error(
            request, HTTPException(503, "the review store is unreachable; try again shortly")
        )

    # -- sign-in ------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/inbox", status_code=303)

    async def signin_form(self, request: Request) -> Response:
        return self._render(request, "signin.html")

    async def signin(self, request: Request) -> Response:
        form = await self._checked_form(request)
        token = str(form.get("token", "")).strip()
        reviewer = await run_in_threadpool(review.authenticate, self.store, token)
        if reviewer is None:
            return self._render(request, "signin.html", 401, message="Unknown or disabled reviewer token.")
        request.session.clear()  # a fresh session (and CSRF token) on every sign-in: no fixation
        request.session["reviewer_id"] = reviewer.reviewer_id
        return RedirectResponse("/inbox", status_code=303)

    async def signout(self, request: Request) -> Response:
        await self._checked_form(request)
        request.session.clear()
        return RedirectResponse("/signin", status_code=303)

    async def _page_reviewer(self, request: Request) -> review.Reviewer:
        reviewer = await self._session_reviewer(request)
        if reviewer is None:
            raise HTTPException(401)
        return reviewer

    # -- pages --------------------------------------------------------------------------------

    def _queue_filters(self, request: Request, reviewer: review.Reviewer) -> tuple[str, str, str]:
        """(role, workflow, due) from the query; a role the reviewer does not hold is refused."""
        role = request.query_params.get("role") or ""
        workflow = request.query_params.get("workflow") or ""
        due = request.query_params.get("due") or "all"
        if role and role not in reviewer.roles:
            raise HTTPException(403, f"you do not hold the role {role!r}")
        if due not in DUE_FILTERS:
            raise HTTPException(400, f"due must be one of {', '.join(DUE_FILTERS)}")
        return role, workflow, due

    def _queue_items(self, reviewer: review.Reviewer, role: str, workflow: str, due: str) -> list:
        """Items waiting for the reviewer's roles (or one of them), soonest deadline first."""
        now = _now()
        due_before = {"overdue": now, "today": _end_of_day(now)}.get(due)
        items = {
            item.item_id: item
            for queue_role in ([role] if role else sorted(reviewer.roles))
            for item in review.list_items(
                self.store, role=queue_role, workflow=workflow or None, due_before=due_before
            )
        }
        return sorted(items.values(), key=lambda i: (i.deadline_at, i.item_id))

    async def queue(self, request: Request) -> Response:
        reviewer = await self._page_reviewer(request)
        role, workflow, due = self._queue_filters(request, reviewer)
        queue = await run_in_threadpool(self._queue_items, reviewer, role, workflow, due)
        items, now = queue[:QUEUE_LIMIT], _now()
        return self._render(
            request,
            "inbox.html",
            reviewer=reviewer,
            items=items,
            total=len(queue),
            overdue={i.item_id for i in items if _overdue(i, now)},
            role=role,
            workflow=workflow,
            due=due,
            due_filters=DUE_FILTERS,
            workflows=sorted({i.workflow for i in queue} | ({workflow} if workflow else set())),
        )

    def _allowed_actions(self, item: review.ReviewItem, reviewer: review.Reviewer) -> list[str]:
        """What the policy lets the reviewer's roles do to this item now (a closed item takes comments)."""
        allowed = self.policy.kind(item.kind).allowed_actions(reviewer.roles)
        if item.status not in review.OPEN_STATUSES:
            allowed &= {"comment"}
        return [action for action in ACTIONS if action in allowed]

    def _visible_item(self, reviewer: review.Reviewer, item_id: str) -> review.ReviewItem:
        """The item, if the reviewer's roles have any part in its kind (its context is customer data)."""
        item = review.get_item(self.store, item_id)
        if item is None:
            raise HTTPException(404, f"no review item {item_id!r}")
        if not self.policy.kind(item.kind).allowed_actions(reviewer.roles):
            raise HTTPException(403, f"your roles have no part in {item.kind} items")
        return item

    def _item_view(self, reviewer: review.Reviewer, item_id: str) -> dict[str, Any]:
        item = self._visible_item(reviewer, item_id)
        return {
            "item": item,
            "allowed_actions": self._allowed_actions(item, reviewer),
            "correct_values": self.policy.kind(item.kind).label_values,
            **_context_sections(item.context),
            "history": review.item_history(self.store, item_id),
            "story": review.case_story(self.store, item.case_id),
            "has_evidence": evidence_file(self.evidence_dir, item.context.get("evidence_path")) is not None,
            "overdue": _overdue(item, _now()),
        }

    async def item_page(self, request: Request) -> Response:
        reviewer = await self._page_reviewer(request)
        view = await run_in_threadpool(self._item_view, reviewer, request.path_params["item_id"])
        return self._render(request, "item.html", reviewer=reviewer, **view)

    async def decide_form(self, request: Request) -> Response:
        reviewer = await self._page_reviewer(request)
        form = await self._checked_form(request)
        item_id = request.path_params["item_id"]
        outcome = await run_in_threadpool(self._decide, reviewer, item_id, form)
        done = f"{outcome.event.action} recorded for case {outcome.item.case_id}"
        request.session["notice"] = f"{done}; waiting for {outcome.awaiting}" if outcome.awaiting else done
        if form.get("action") in ("comment", "assign"):
            return RedirectResponse(f"/items/{item_id}", status_code=303)
        return RedirectResponse("/inbox", status_code=303)

    def _decide(
        self, reviewer: review.Reviewer, item_id: str, body: dict[str, Any]
    ) -> review.DecisionOutcome:
        """One decision through ``review.decide`` (which checks the policy and records refusals).

        HTTP status of a refusal: 403 when the reviewer's roles lack the right, 409 when the item is no
        longer open or changed since the ``version`` the reviewer saw, 422 for any other reason.
        """
        action, value, comment = body.get("action"), body.get("value"), body.get("comment")
        if action not in ACTIONS:
            raise HTTPException(400, f"'action' must be one of {', '.join(ACTIONS)}")
        if not all(v is None or isinstance(v, str) for v in (value, comment)):
            raise HTTPException(400, "'value' and 'comment' must be strings")
        try:
            seen_version = int(body["version"]) if body.get("version") not in (None, "") else None
        except (TypeError, ValueError):
            raise HTTPException(400, "'version' must be an integer") from None
        item = review.get_item(self.store, item_id)
        if item is None:
            raise HTTPException(404, f"no review item {item_id!r}")
        kind = self.policy.kind(item.kind)
        role_allows = kind.allowed(reviewer.roles, action)
        try:
            return review.decide(
                self.store, item_id, reviewer, action, value or None, comment or None,
                policy=self.policy, expected_version=seen_version,
            )  # fmt: skip
        except review.DecisionRefused as refused:
            if not role_allows:
                raise HTTPException(403, refused.reason) from None
            current = review.get_item(self.store, item_id)
            if (
                current is None
                or current.status not in review.OPEN_STATUSES
                or seen_version not in (None, current.version)
            ):
                raise HTTPException(409, refused.reason) from None
            raise HTTPException(422, refused.reason) from None

    async def evidence(self, request: Request) -> Response:
        reviewer = await self._page_reviewer(request)
        item = await run_in_threadpool(self._visible_item, reviewer, request.path_params["item_id"])
        path = evidence_file(self.evidence_dir, item.context.get("evidence_path"))
        if path is None:
            raise HTTPException(404, "no evidence image for this item")
        return FileResponse(path, media_type="image/png")

    # -- JSON API -----------------------------------------------------------------------------

    async def api_items(self, request: Request) -> Response:
        reviewer = await self._bearer_reviewer(request)
        role, workflow, due = self._queue_filters(request, reviewer)
        try:
            limit = int(request.query_params.get("limit") or QUEUE_LIMIT)
        except ValueError:
            raise HTTPException(400, "limit must be an integer") from None
        if not 1 <= limit <= API_MAX_LIMIT:
            raise HTTPException(400, f"limit must be between 1 and {API_MAX_LIMIT}")
        queue = await run_in_threadpool(self._queue_items, reviewer, role, workflow, due)
        return JSONResponse({"items": _jsonable(queue[:limit]), "total": len(queue)})

    async def api_item(self, request: Request) -> Response:
        reviewer = await self._bearer_reviewer(request)
        view = await run_in_threadpool(self._item_view, reviewer, request.path_params["item_id"])
        return JSONResponse(
            {
                "item": _jsonable(view["item"]),
                "allowed_actions": view["allowed_actions"],
                "history": _jsonable(view["history"]),
                "story": _jsonable(view["story"]),
            }
        )

    async def api_decide(self, request: Request) -> Response:
        reviewer = await self._bearer_reviewer(request)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise HTTPException(415, "send the decision as application/json")
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(400, "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise HTTPException(400, "the body must be a JSON object")
        outcome = await run_in_threadpool(self._decide, reviewer, request.path_params["item_id"], body)
        return JSONResponse(
            {
                "item": _jsonable(outcome.item),
                "event": _jsonable(outcome.event),
                "actions": outcome.action_keys,
                "awaiting": outcome.awaiting,
            }
        )

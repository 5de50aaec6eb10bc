"""HTTP view for a data subject's access request (GDPR Art. 15), privacy officers only."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView

from referrals.api.context import authenticated, caller, unit_of_work
from referrals.api.docs import problems
from referrals.api.inputs import Blueprint
from referrals.api.schemas.subject_access import SubjectAccessBody, SubjectAccessOut
from referrals.audit.actions import AuditAction
from referrals.auth.principal import Scope
from referrals.services import subject_access
from referrals.web import printable

blp = Blueprint("privacy", __name__, url_prefix="/api/v1", description="Privacy")

_NO_STORE = {"Cache-Control": "no-store"}
HTML = "text/html"
# The one answer in two forms: flask-smorest documents the JSON one, this adds the other.
PRINTABLE = {
    "responses": {
        "200": {
            "description": "The export: JSON, or with Accept: text/html a printable document "
            "for the person, in Swedish or English by Accept-Language.",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/SubjectAccessOut"}},
                HTML: {"schema": {"type": "string"}},
            },
        }
    }
}


@blp.route("/privacy/subject-access")
class SubjectAccess(MethodView):
    @authenticated(Scope.PRIVACY, audit=AuditAction.PRIVACY_SUBJECT_ACCESS)
    @blp.arguments(SubjectAccessBody)
    @blp.response(200, SubjectAccessOut)
    @problems(blp, 401, 403, 422)
    @blp.doc(**PRINTABLE)
    def post(self, body: dict[str, Any]) -> Any:
        """Everything held about one person across all units (GDPR Art. 15): referrals with
        their personal fields, timelines, shared notes (internal ones counted, withheld
        by the rule in ``internal_notes_rule``), recipients and access logs.

        ``Accept: text/html`` answers with a printable document for the person instead of
        JSON.  The export is audited as one event naming every referral it disclosed."""
        wants_html = request.accept_mimetypes.best_match(["application/json", HTML]) == HTML
        with unit_of_work() as uow:
            export = subject_access.export(uow, caller(), body["personal_number"])
        if wants_html:
            headers = {**_NO_STORE, "Content-Security-Policy": printable.content_security_policy()}
            return Response(printable.subject_access(export), mimetype=HTML, headers=headers)
        return export, 200, _NO_STORE

"""Mutation check of the authorization and audit rules: remove or negate each stated
condition and show that at least one test fails.

Not part of the default suite (no ``test_`` file): run it by hand, from the repository root,

    .venv/bin/python tests/mutation/run_mutations.py [--both-backends] [NAME ...]

Each mutation replaces one exact snippet (it must occur exactly once in its file), runs the
tests named for it with ``-x``, puts the file back, and the script prints a table: which
test caught the mutation, or SURVIVED.  It exits non-zero when any mutation survives.
By default only the SQLite half of each parametrized test runs (the rules are the same
on PostgreSQL; the run is half as long).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

POLICY = "referrals/auth/policy.py"
AUTHENTICATE = "referrals/auth/authenticate.py"
DECORATOR = "referrals/api/context.py"
RECORDER = "referrals/audit/recorder.py"
UOW = "referrals/services/uow.py"
GROUP_COMMIT = "referrals/audit/group.py"
TOKEN_CACHE = "referrals/auth/tokens.py"
ACCESS = "referrals/services/access.py"
PAGES = "referrals/web/pages.py"
DISCLOSURE_RULE = "referrals/domain/disclosure.py"
REFERRAL_SERVICE = "referrals/services/referrals.py"
RECORDS = "referrals/services/records.py"
REVEAL_SERVICE = "referrals/services/disclosure.py"
CONSENT_SERVICE = "referrals/services/consent.py"

MATRIX = "tests/api/test_authorization_matrix.py"
GLASS = "tests/audit/test_break_glass.py"
SCOPE = "tests/services/test_scope_regressions.py"
LIFECYCLE = "tests/api/test_lifecycle.py"
RECORDING = "tests/audit/test_recording.py"
TOKENS = "tests/auth/test_scopes_and_roles.py"
ATTACKS = "tests/auth/test_token_attacks.py"
ACR = "tests/auth/test_login_assurance.py"
WEB = "tests/web/test_audit_parity.py"
WEB_PAGES = "tests/web/test_referral_pages.py"
WEB_AUDITOR = "tests/web/test_auditor_pages.py"
ROLES = "tests/auth/test_role_beats_scope.py"
POLICY_RULES = "tests/auth/test_policy_invariants.py"
REDIRECT_TESTS = "tests/api/test_redirect_and_deadlines.py"
DISCLOSURE = "tests/api/test_disclosure.py"
DISCLOSURE_PAGES = "tests/web/test_disclosure_pages.py"
CONSENT = "tests/api/test_consent_withdrawal.py"
STAFF = "referrals/services/staff.py"
ASSIGNMENT = "referrals/services/assignment.py"
CASELOADS = "tests/api/test_caseloads.py"
CASELOAD_RULES = "tests/auth/test_caseload_policy.py"
GROUP_TESTS = "tests/audit/test_group_commit.py"
FIRST_WRITE = "referrals/db/first_write.py"
FIRST_WRITE_TESTS = "tests/db/test_first_write.py"
CACHE_TESTS = "tests/auth/test_token_cache.py"


@dataclass(frozen=True)
class Mutation:
    name: str
    rule: str
    path: str
    original: str
    mutated: str
    tests: tuple[str, ...]


MUTATIONS = (
    Mutation(
        "unit-lead-is-receiving-staff",
        "a unit lead works as a caseworker of its unit",
        POLICY,
        "RECEIVING_ROLES = frozenset({Role.CASEWORKER, Role.UNIT_LEAD})",
        "RECEIVING_ROLES = frozenset({Role.CASEWORKER})",
        (CASELOAD_RULES, CASELOADS),
    ),
    Mutation(
        "assignee-is-known-staff",
        "only a known caseworker or unit lead of the unit is assigned",
        STAFF,
        "    if known is None or not policy.may_be_assigned(known.role):",
        "    if known is None:",
        (CASELOAD_RULES, CASELOADS),
    ),
    Mutation(
        "caseworker-moves-own-only",
        "a caseworker does not take a colleague's referral",
        POLICY,
        "return principal.has_role(Role.UNIT_LEAD) or held_by_caller_or_nobody",
        "return True",
        (CASELOAD_RULES, CASELOADS),
    ),
    Mutation(
        "reassign-lead-only",
        "only a unit lead reassigns a caseload",
        POLICY,
        "return principal.has_role(Role.UNIT_LEAD) and principal.unit is not None",
        "return principal.unit is not None",
        (CASELOAD_RULES, CASELOADS),
    ),
    Mutation(
        "reassign-names-every-referral",
        "the reassignment's audit event names every referral it moved",
        ASSIGNMENT,
        "    uow.audit_disclosed(moved)",
        "    pass",
        (CASELOADS,),
    ),
    Mutation(
        "case-roles-need-a-unit",
        "case content only for case roles with a unit",
        POLICY,
        "return bool(principal.roles & CASE_ROLES) and principal.unit is not None",
        "return bool(principal.roles & CASE_ROLES)",
        (GLASS, MATRIX, SCOPE),
    ),
    Mutation(
        "case-roles-only",
        "auditors and admins never see case content",
        POLICY,
        "return bool(principal.roles & CASE_ROLES) and principal.unit is not None",
        "return principal.unit is not None",
        (ROLES, MATRIX),
    ),
    Mutation(
        "open-referral-youth-worker",
        "only youth workers open referrals",
        POLICY,
        "return principal.has_role(Role.YOUTH_WORKER) and principal.unit is not None",
        "return principal.unit is not None",
        (ROLES, MATRIX),
    ),
    Mutation(
        "manage-units-admin",
        "only admins manage units",
        POLICY,
        "def may_manage_units(principal: Principal) -> bool:\n"
        "    return principal.has_role(Role.ADMIN)",
        "def may_manage_units(principal: Principal) -> bool:\n    return True",
        (ROLES, MATRIX),
    ),
    Mutation(
        "manage-routing-admin",
        "only admins manage routing and deliveries",
        POLICY,
        '    """Routing rules and webhook deliveries are operator business."""\n'
        "    return principal.has_role(Role.ADMIN)",
        '    """Routing rules and webhook deliveries are operator business."""\n    return True',
        (MATRIX, "tests/api/test_routing.py"),
    ),
    Mutation(
        "erase-admin",
        "only admins erase",
        POLICY,
        '    """Erasure is an operator\'s act on a referral it cannot read."""\n'
        "    return principal.has_role(Role.ADMIN)",
        '    """Erasure is an operator\'s act on a referral it cannot read."""\n    return True',
        (MATRIX, "tests/services/test_erase.py"),
    ),
    Mutation(
        "audit-auditor",
        "only auditors read the trail",
        POLICY,
        "return principal.has_role(Role.AUDITOR)",
        "return bool(principal.roles)",
        (ROLES, MATRIX, RECORDING),
    ),
    Mutation(
        "list-units-known-role",
        "the unit directory needs a known role",
        POLICY,
        "    return bool(principal.roles)\n\n\ndef side_of",
        "    return True\n\n\ndef side_of",
        (TOKENS, MATRIX),
    ),
    Mutation(
        "glass-caseworker",
        "only receiving staff (caseworkers, unit leads) break the glass",
        POLICY,
        "        works_for_receiving_unit(principal)\n        and caller_unit_kind",
        "        principal.unit is not None\n        and caller_unit_kind",
        (GLASS,),
    ),
    Mutation(
        "glass-receiving-unit",
        "only registered receiving units break the glass",
        POLICY,
        "        and caller_unit_kind == UnitKind.RECEIVER\n",
        "",
        (GLASS,),
    ),
    Mutation(
        "glass-never-a-draft",
        "the glass never opens a draft",
        POLICY,
        "        and caller_unit_kind == UnitKind.RECEIVER\n"
        "        and referral.status != Status.DRAFT\n",
        "        and caller_unit_kind == UnitKind.RECEIVER\n",
        (GLASS,),
    ),
    Mutation(
        "sender-own-unit",
        "the sending side is the sending unit's youth workers",
        POLICY,
        "principal.has_role(Role.YOUTH_WORKER) and referral.sending_unit_id == principal.unit",
        "principal.has_role(Role.YOUTH_WORKER)",
        (MATRIX, SCOPE),
    ),
    Mutation(
        "receiver-own-unit",
        "the receiving side is the receiving unit's caseworkers",
        POLICY,
        "        and referral.receiving_unit_id == principal.unit\n",
        "",
        (MATRIX, SCOPE),
    ),
    Mutation(
        "receiver-no-drafts",
        "receivers see a referral only once submitted",
        POLICY,
        "        and referral.receiving_unit_id == principal.unit\n"
        "        and referral.status != Status.DRAFT\n",
        "        and referral.receiving_unit_id == principal.unit\n",
        # Equivalent through the API: a draft names no receiving unit (routing sets it in
        # the same step that makes the referral "requested", and nothing leads back to
        # draft), so no HTTP test can tell the mutant apart.  The rule guards rows the
        # use cases do not write today; the policy test states it on the pure function.
        (POLICY_RULES, MATRIX, SCOPE, LIFECYCLE),
    ),
    Mutation(
        "internal-notes-own-side",
        "internal notes stay with their author's side and unit",
        POLICY,
        "return reader_side is author_side and reader_unit is not None "
        "and reader_unit == author_unit",
        "return reader_unit is not None and reader_unit == author_unit",
        # Not equivalent, though it differs only when one unit is on both sides of a
        # referral: a unit has one kind, but an admin may re-register a referring unit as
        # a receiving one and the referral be redirected to it (the redirect test); the
        # policy test states the rule on the pure function too.
        (REDIRECT_TESTS, POLICY_RULES, MATRIX, SCOPE, GLASS, LIFECYCLE),
    ),
    Mutation(
        "internal-notes-own-unit",
        "after a redirect the new unit does not read the old unit's internal notes",
        POLICY,
        "return reader_side is author_side and reader_unit is not None "
        "and reader_unit == author_unit",
        "return reader_side is author_side",
        (GLASS, SCOPE, REDIRECT_TESTS),
    ),
    Mutation(
        "edit-sender-only",
        "drafts are edited by the sender only",
        POLICY,
        "return side is Side.SENDER",
        "return side is not None",
        (MATRIX, LIFECYCLE),
    ),
    Mutation(
        "assignee-receiver-only",
        "the sender does not learn the assignee",
        POLICY,
        "return side is Side.RECEIVER",
        "return side is not None",
        (MATRIX, LIFECYCLE),
    ),
    Mutation(
        "scope-check",
        "a token needs one of the endpoint's scopes",
        AUTHENTICATE,
        "if scopes and not any(scope in principal.scopes for scope in scopes):",
        "if False:",
        (TOKENS, MATRIX),
    ),
    Mutation(
        "no-token-in-url",
        "tokens in the query string are refused",
        AUTHENTICATE,
        'if "access_token" in query_keys:',
        "if False:",
        (ATTACKS, TOKENS),
    ),
    Mutation(
        "acr-step-up",
        "a role's required acr is enforced",
        AUTHENTICATE,
        'if accepted is not None and token.get("acr") not in accepted:',
        "if False:",
        (ACR,),
    ),
    Mutation(
        "refusals-recorded",
        "every refused API call is audited (authenticated decorator)",
        DECORATOR,
        "rt.record_refusal(pending, status_for(exc))",
        "pass",
        (RECORDING, MATRIX),
    ),
    Mutation(
        "refusal-names-verified-actor",
        "a 403/step-up refusal is recorded under the verified actor",
        DECORATOR,
        "if isinstance(exc, ScopeMissing | StepUpRequired):",
        "if False:",
        (RECORDING, TOKENS, ACR),
    ),
    Mutation(
        "unrecorded-answer-fails-closed",
        "an answer without its audit event fails closed",
        DECORATOR,
        '                raise AuditUnavailable("the request was not recorded")',
        "                pass",
        (RECORDING,),
    ),
    Mutation(
        "audit-in-the-same-commit",
        "the use case's commit writes the audit event",
        UOW,
        "                record(self.session, audit, audit.success_status, now)",
        "                pass",
        (RECORDING, LIFECYCLE),
    ),
    Mutation(
        "read-event-in-group-commit",
        "a read's audit event is written by the group commit that answers it",
        UOW,
        "        record(session, *events[0], alone=True)",
        "        pass",
        (RECORDING, GROUP_TESTS),
    ),
    Mutation(
        "read-waits-for-its-batch",
        "no read answers before the commit holding its own event",
        GROUP_COMMIT,
        "            while self._writing and not mine.done:",
        "            while False:",
        (GROUP_TESTS,),
    ),
    Mutation(
        "read-that-wrote-commits-alone",
        "a request that wrote anything commits its event with its change",
        UOW,
        " and not self.session.info.get(WROTE):",
        ":",
        (GROUP_TESTS,),
    ),
    Mutation(
        "write-begins-transaction",
        "a write after reads is never committed on its own (PostgreSQL; --both-backends)",
        FIRST_WRITE,
        "    if _plain_read(context, statement):\n        return\n",
        "    return\n",
        (FIRST_WRITE_TESTS,),
    ),
    Mutation(
        "text-is-not-a-read",
        "a statement not built as a select() begins the transaction (--both-backends)",
        FIRST_WRITE,
        "return False  # text(), a driver",
        "return True  # text(), a driver",
        (FIRST_WRITE_TESTS,),
    ),
    Mutation(
        "row-lock-begins-transaction",
        "a locking read holds its lock until the unit of work ends (--both-backends)",
        FIRST_WRITE,
        'if getattr(built, "_for_update_arg", None) is not None:',
        "if False:",
        (FIRST_WRITE_TESTS,),
    ),
    Mutation(
        "advisory-lock-begins-transaction",
        "a transaction-scoped function begins the transaction (--both-backends)",
        FIRST_WRITE,
        "return not any(name in lowered for name in _TRANSACTION_SCOPED)",
        "return True",
        (FIRST_WRITE_TESTS,),
    ),
    Mutation(
        "first-write-only-read-committed",
        "reads leave the transaction only under READ COMMITTED (--both-backends)",
        FIRST_WRITE,
        'return (chosen or getattr(dialect, "default_isolation_level", None)) == "READ COMMITTED"',
        "return True",
        (FIRST_WRITE_TESTS,),
    ),
    Mutation(
        "copy-commits-with-its-event",
        "rows written by COPY commit with their audit event, never alone (--both-backends)",
        "referrals/db/inserts.py",
        "    first_write.begin_now(session.connection())\n",
        "",
        ("tests/services/test_bulk_rows.py",),
    ),
    Mutation(
        "disclosures-commit-together",
        "an event naming several referrals never commits alone (--both-backends)",
        RECORDER,
        "alone=alone and not targets",
        "alone=alone",
        (FIRST_WRITE_TESTS,),
    ),
    Mutation(
        "token-cache-whole-digest",
        "the verified-token cache is keyed by the digest of the whole token",
        TOKEN_CACHE,
        'hashlib.sha256(token_string.encode("ascii")).digest()',
        'hashlib.sha256(token_string.rpartition(".")[0].encode("ascii")).digest()',
        (CACHE_TESTS,),
    ),
    Mutation(
        "token-cache-key-still-published",
        "a cached token counts only while its key is published",
        TOKEN_CACHE,
        "                if key is hit.key:",
        "                if True:",
        (CACHE_TESTS,),
    ),
    Mutation(
        "actor-verified-flag",
        "an event says whether its actor was verified",
        RECORDER,
        '"actor_verified": actor is not None and pending.actor_verified,',
        '"actor_verified": True,',
        (RECORDING, TOKENS),
    ),
    Mutation(
        "case-door-role-check",
        "open_referral refuses roles without case access",
        ACCESS,
        "    if not policy.may_work_with_cases(ctx.principal):\n"
        '        raise Forbidden("this role has no access to case content")',
        "    pass",
        (MATRIX, GLASS),
    ),
    Mutation(
        "glass-read-only",
        "broken glass never opens writes",
        ACCESS,
        "if row is not None and side is None and read_only:",
        "if row is not None and side is None:",
        (GLASS,),
    ),
    Mutation(
        "glass-needs-a-reason",
        "the glass opens only with a reason",
        ACCESS,
        "if grant is None and ctx.break_glass is not None:",
        "if grant is None:",
        (GLASS,),
    ),
    Mutation(
        "routing-receivers-only",
        "a referral is routed only to a unit that receives referrals",
        "referrals/services/routing.py",
        "if kinds.get(decision.unit) != UnitKind.RECEIVER:",
        "if decision.unit is None:",
        ("tests/api/test_routing.py",),
    ),
    Mutation(
        "referring-unit-check",
        "referrals are opened from registered referring units",
        ACCESS,
        "    if kind != UnitKind.REFERRER:",
        "    if kind is None:",
        (MATRIX, SCOPE, "tests/api/test_routing.py"),
    ),
    Mutation(
        "web-signed-in",
        "pages need a signed-in caller (web signed_in)",
        PAGES,
        "            if caller_ is None:\n                if audit is not None:",
        "            if False:\n                if audit is not None:",
        (WEB, WEB_PAGES),
    ),
    Mutation(
        "web-refusal-401-recorded",
        "a page refused for no session is audited",
        PAGES,
        "                    _refuse(rt, audit, kwargs, None, 401)",
        "                    pass",
        (WEB,),
    ),
    Mutation(
        "web-refusal-403-recorded",
        "a page refused for scope is audited under the actor",
        PAGES,
        "                    _refuse(rt, audit, kwargs, exc.principal, 403)",
        "                    pass",
        (WEB, WEB_AUDITOR),
    ),
    Mutation(
        "legal-hold-roles",
        "only privacy officers and auditors place holds and read the retention report",
        POLICY,
        "    return principal.has_role(Role.PRIVACY_OFFICER) or principal.has_role(Role.AUDITOR)",
        "    return True",
        ("tests/auth/test_retention_roles.py",),
    ),
    Mutation(
        "erase-refuses-held",
        "no erasure, by retention or by hand, while a legal hold stands",
        "referrals/services/referrals.py",
        "    if legal_holds.active(uow.session, row.id) is not None:\n"
        "        # A hold stops every erasure, by retention or by hand",
        "    if False:\n        # A hold stops every erasure, by retention or by hand",
        ("tests/services/test_retention.py",),
    ),
    Mutation(
        "draft-delete-refuses-held",
        "deleting a draft under a legal hold is refused (it erases the draft)",
        "referrals/services/referrals.py",
        "    if legal_holds.active(uow.session, row.id) is not None:\n"
        "        # Deleting a draft erases it",
        "    if False:\n        # Deleting a draft erases it",
        ("tests/services/test_retention.py",),
    ),
    # Two-phase disclosure and consent withdrawal (issue 12, items 1 and 7).
    Mutation(
        "disclosure-decision-view",
        "the receiving unit sees no identity before it accepts or reveals",
        DISCLOSURE_RULE,
        "    return Disclosure.DECISION",
        "    return Disclosure.FULL",
        (DISCLOSURE, DISCLOSURE_PAGES),
    ),
    Mutation(
        "disclosure-search-undisclosed",
        "search does not confirm an undisclosed identity",
        REFERRAL_SERVICE,
        "if side is None or disclosure(ctx, row, side) is not Disclosure.FULL:",
        "if side is None:",
        (DISCLOSURE,),
    ),
    Mutation(
        "disclosure-redirect-resets",
        "a redirect takes the disclosure away from the unit",
        REFERRAL_SERVICE,
        "        row.identity_disclosed_to = None\n",
        "",
        (DISCLOSURE,),
    ),
    Mutation(
        "disclosure-notes-withheld",
        "another unit's note text is withheld before disclosure",
        RECORDS,
        "withheld = reader_unit is not None and note.author_unit != reader_unit",
        "withheld = False",
        (DISCLOSURE,),
    ),
    Mutation(
        "disclosure-reveal-receiver-only",
        "only the receiving unit reveals",
        REVEAL_SERVICE,
        "    if side is not Side.RECEIVER:",
        "    if side is None:",
        (DISCLOSURE, MATRIX),
    ),
    Mutation(
        "consent-sender-only",
        "only the sender records a withdrawal of consent",
        CONSENT_SERVICE,
        "    if side is not Side.SENDER:",
        "    if side is None:",
        (CONSENT, MATRIX),
    ),
)


def run(mutation: Mutation, both_backends: bool) -> tuple[str, float]:
    path = ROOT / mutation.path
    source = path.read_text()
    count = source.count(mutation.original)
    if count != 1:
        return f"SNIPPET FOUND {count} TIMES", 0.0
    started = time.monotonic()
    try:
        path.write_text(source.replace(mutation.original, mutation.mutated))
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rf"]
        if not both_backends:
            command += ["-k", "not postgresql"]
        result = subprocess.run(
            [*command, *mutation.tests], cwd=ROOT, capture_output=True, text=True, timeout=900
        )
    finally:
        path.write_text(source)
    elapsed = time.monotonic() - started
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", result.stdout, re.MULTILINE)
    if failed:
        return failed[0], elapsed
    if result.returncode == 0:
        return "SURVIVED", elapsed
    return f"pytest exit {result.returncode} (no failing test named)", elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="only these mutations")
    parser.add_argument("--both-backends", action="store_true")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if not args.names or m.name in args.names]
    survived = 0
    out = sys.stdout
    out.write("| mutation | rule | file | caught by | seconds |\n|---|---|---|---|---|\n")
    for mutation in chosen:
        caught, elapsed = run(mutation, args.both_backends)
        survived += not caught.startswith("tests/")
        out.write(
            f"| {mutation.name} | {mutation.rule} | {mutation.path} | {caught} | {elapsed:.0f} |\n"
        )
        out.flush()
    out.write(f"\n{len(chosen) - survived} of {len(chosen)} mutations caught\n")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())

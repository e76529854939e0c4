"""Pure decisions about flow writes: parsing a ``Definition``, what an update makes, which revision runs.

Revisions (Switchboard's reading of Studio, documented in the README):

* Create makes revision 1 with the given ``Status``.
* Update makes a **new revision** (latest + 1) when the ``Definition`` differs
  from the latest revision's or the ``Status`` differs from the latest
  revision's; the new revision carries the update's ``CommitMessage``.
  Otherwise (only ``FriendlyName`` or nothing changed) the latest revision is
  rewritten in place with the new name; revision numbers do not move.
* Older revisions keep their status; ``LatestPublished`` is the highest
  revision whose status is ``published``.
* An execution runs the latest published revision; a contact listed in the
  flow's ``TestUsers`` runs the latest revision, draft or not
  (``FlowCatalog.revision_for``). Which revision an execution runs is fixed
  when it starts. Test users live on the latest revision's record and are
  carried to every new revision.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from shared.flow import FlowDefinitionError, ValidationIssue
from shared.ids import is_sid
from shared.messages import FlowRecord
from shared.validation import validate_definition

from .errors import ApiError

__all__ = ["VALIDATION_FAILED", "definition_error", "parse_author_sid", "parse_definition_text", "parse_status",
           "plan_update", "validated_definition"]

VALIDATION_FAILED = "Flow definition validation failed"


def definition_error(issues: list[ValidationIssue]) -> ApiError:
    """Studio's 81022 error with ``details.errors[]`` (``property_path`` + ``message`` each)."""
    return ApiError(400, 81022, VALIDATION_FAILED, {"errors": [issue.as_dict() for issue in issues]})


def parse_definition_text(text: str, max_bytes: int) -> Any:
    """The ``Definition`` form value as JSON; too large or not JSON → 81022 at path ``#``."""
    if len(text.encode()) > max_bytes:
        raise definition_error([ValidationIssue("#", f"the definition is larger than {max_bytes} bytes")])
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise definition_error([ValidationIssue("#", f"not valid JSON: {exc}")]) from exc


def validated_definition(text: str, max_bytes: int) -> dict[str, Any]:
    """Parse and validate a ``Definition``; every problem is reported with its property path (81022)."""
    value = parse_definition_text(text, max_bytes)
    try:
        validate_definition(value)
    except FlowDefinitionError as exc:
        raise definition_error(list(exc.issues)) from exc
    return value  # type: ignore[no-any-return]


def parse_status(value: str) -> str:
    if value not in ("draft", "published"):
        raise ApiError(400, 20001, f"Status must be 'draft' or 'published', not {value!r}")
    return value


def parse_author_sid(value: str) -> str:
    """``AuthorSid``: the ``US…`` sid of the user who made the change (kept on the revision, never checked)."""
    if value and not is_sid(value, "US"):
        raise ApiError(400, 20001, f"AuthorSid must be a US… sid, not {value!r}")
    return value


def plan_update(latest: FlowRecord, status: str, definition: dict[str, Any] | None, friendly_name: str | None,
                commit_message: str | None, now: float, author_sid: str = "") -> FlowRecord:
    """The record an update writes: a new revision, or the latest one rewritten (see the module docs)."""
    name = friendly_name or latest.friendly_name
    changed = (definition is not None and definition != latest.definition) or status != latest.status
    if not changed:
        return dataclasses.replace(latest, friendly_name=name, date_updated=now)
    return dataclasses.replace(
        latest, revision=latest.revision + 1, friendly_name=name, status=status, author_sid=author_sid,
        definition=latest.definition if definition is None else definition,
        commit_message=commit_message or "", valid=True, errors=[], warnings=[],
        date_created=now, date_updated=now,
    )


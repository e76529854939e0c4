"""The CLI's connection to Switchboard: the official ``twilio`` client pointed at the ingress.

The CLI speaks only Studio's v2 API, the same way any program would, so
everything it does can be done with ``twilio`` or ``curl`` too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from shared.settings import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN

__all__ = ["CliError", "Connection", "describe", "load_definition", "settings_from_env"]


class CliError(Exception):
    """A failure to report to the user (no traceback), with optional detail lines."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message, self.details = message, details or []


def settings_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """Defaults for ``--url``, ``--account-sid``, ``--auth-token`` (what ``make run`` uses if unset)."""
    return {
        "url": env.get("SWITCHBOARD_URL") or env.get("SWITCHBOARD_PUBLIC_BASE_URL") or "http://127.0.0.1:8080",
        "account_sid": env.get("SWITCHBOARD_ACCOUNT_SID") or DEV_ACCOUNT_SID,
        "auth_token": env.get("SWITCHBOARD_AUTH_TOKEN") or DEV_AUTH_TOKEN,
    }


def load_definition(path: Path) -> dict[str, Any]:
    """A flow definition from a file: Studio's export (the definition itself) or a Flow resource (``definition``)."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise CliError(f"{path} is not JSON: {exc}") from exc
    if isinstance(data, dict) and "states" not in data and isinstance(data.get("definition"), dict):
        data = data["definition"]
    if not isinstance(data, dict):
        raise CliError(f"{path} does not hold a flow definition (a JSON object)")
    return data


def describe(exc: TwilioRestException) -> CliError:
    """Twilio's error body as a message plus one line per validation problem (``property_path: message``)."""
    message = exc.msg.split(": ", 1)[1] if exc.msg.startswith("Unable to ") and ": " in exc.msg else exc.msg
    lines = []
    details = exc.details if isinstance(exc.details, dict) else {}
    for error in details.get("errors", []) if isinstance(details.get("errors"), list) else []:
        if isinstance(error, dict):
            lines.append(f"{error.get('property_path', '#')}: {error.get('message', '')}")
    return CliError(f"error {exc.code or exc.status}: {message}", lines)


@dataclass
class Connection:
    url: str
    account_sid: str
    auth_token: str

    def __post_init__(self) -> None:
        self.client = Client(self.account_sid, self.auth_token)
        self.client.studio.base_url = self.url.rstrip("/")  # the documented way to aim twilio-python elsewhere
        self.studio = self.client.studio.v2

    def flow_sid(self, ref: str) -> str:
        """A flow sid, or the sid of the one flow with that friendly name."""
        if ref.startswith("FW") and len(ref) == 34:
            return ref
        matches = [f.sid for f in self.studio.flows.stream(page_size=1000) if f.friendly_name == ref]
        if not matches:
            raise CliError(f"no flow named {ref!r} (use a FW… sid, or see `switchboard flows list`)")
        if len(matches) > 1:
            raise CliError(f"{len(matches)} flows are named {ref!r}; use its sid: {', '.join(str(m) for m in matches)}")
        return str(matches[0])

"""The ``switchboard`` command (click).

    switchboard flows list | import FILE | export FLOW | validate FILE | revisions FLOW | test-users FLOW | delete FLOW
    switchboard run FLOW --to +1555… --from +1555… --param name=Ann      start an execution and follow it
    switchboard executions list FLOW | show FLOW FN… | end FLOW FN… | delete FLOW FN…
    switchboard steps show FLOW FN…                                      steps as a table, then the context
    switchboard simulate call|sms|twiml-app …                            the Twilio simulator (devtools.simulator)

FLOW is a ``FW…`` sid or a flow's friendly name. Where to connect comes from
``--url``/``--account-sid``/``--auth-token`` or ``SWITCHBOARD_URL`` (else
``SWITCHBOARD_PUBLIC_BASE_URL``), ``SWITCHBOARD_ACCOUNT_SID``,
``SWITCHBOARD_AUTH_TOKEN`` — the defaults match ``make run``. Colour and the
"waiting" indicator appear only when the output is a terminal.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import requests
from twilio.base import values
from twilio.base.exceptions import TwilioRestException

from .api import CliError, Connection, describe, load_definition, settings_from_env
from .render import execution_status, json_block, step_line, table, timestamp

__all__ = ["cli", "main"]

_DEFAULTS = settings_from_env(os.environ)


class _Group(click.Group):
    """Turns API and connection errors into a short message on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TwilioRestException as exc:
            _fail(describe(exc))
        except CliError as exc:
            _fail(exc)
        except requests.ConnectionError:
            url = ctx.obj.url if isinstance(ctx.obj, Connection) else "the configured URL"
            _fail(CliError(f"cannot reach Switchboard at {url} (is it running? `make run`)"))


def _fail(error: CliError) -> None:
    click.secho(f"Error: {error.message}", fg="red", err=True)
    for line in error.details:
        click.echo(f"  {line}", err=True)
    sys.exit(1)


@click.group(cls=_Group)
@click.option("--url", default=_DEFAULTS["url"], show_default=True, help="Switchboard's base URL (the ingress).")
@click.option("--account-sid", default=_DEFAULTS["account_sid"], help="Basic-auth user (account SID or API key).")
@click.option("--auth-token", default=_DEFAULTS["auth_token"], help="Basic-auth password (auth token or key secret).")
@click.option("--color/--no-color", default=None, help="Force colour on or off (default: only on a terminal).")
@click.pass_context
def cli(ctx: click.Context, url: str, account_sid: str, auth_token: str, color: bool | None) -> None:
    """Switchboard: run Twilio Studio flows on your own Kafka."""
    ctx.color = color
    ctx.obj = Connection(url, account_sid, auth_token)


def main() -> None:
    cli(prog_name="switchboard")


pass_connection = click.make_pass_decorator(Connection)


# -- flows ------------------------------------------------------------------------------------------------


@cli.group()
def flows() -> None:
    """Import, export and validate flows."""


@flows.command("list")
@pass_connection
def flows_list(conn: Connection) -> None:
    """Every flow, newest first."""
    rows = [[f.sid, f.friendly_name or "", execution_status(f.status), str(f.revision), timestamp(f.date_updated)]
            for f in conn.studio.flows.stream(page_size=1000)]
    click.echo(table(["SID", "NAME", "STATUS", "REVISION", "UPDATED"], rows) if rows else "No flows yet.")


@flows.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="Friendly name (default: the file name).")
@click.option("--status", type=click.Choice(["published", "draft"]), default="published", show_default=True)
@click.option("--message", "commit_message", help="Commit message of the revision.")
@click.option("--flow", "flow_ref", help="Update this flow (sid or name) with a new revision instead of creating one.")
@pass_connection
def flows_import(conn: Connection, file: Path, name: str | None, status: str, commit_message: str | None,
                 flow_ref: str | None) -> None:
    """Create a flow from a Studio export (or a new revision of an existing flow with --flow)."""
    definition = load_definition(file)
    extra = {"commit_message": commit_message} if commit_message else {}
    if flow_ref:
        flow = conn.studio.flows(conn.flow_sid(flow_ref)).update(status=status, definition=definition,
                                                                 friendly_name=name or values.unset, **extra)
        click.echo(f"Updated {flow.sid} {flow.friendly_name!r}: revision {flow.revision} ({flow.status})")
    else:
        flow = conn.studio.flows.create(friendly_name=name or file.stem, status=status, definition=definition, **extra)
        click.echo(f"Imported {flow.sid} {flow.friendly_name!r}: revision {flow.revision} ({flow.status})")
    click.echo(f"Webhook URL: {flow.webhook_url}")


@flows.command("export")
@click.argument("flow_ref", metavar="FLOW")
@click.option("--revision", default="LatestRevision", show_default=True,
              help="A revision number, LatestPublished or LatestRevision.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write to this file instead of standard output.")
@pass_connection
def flows_export(conn: Connection, flow_ref: str, revision: str, output: Path | None) -> None:
    """Print a flow's definition as JSON (what `flows import` reads back)."""
    record = conn.studio.flows(conn.flow_sid(flow_ref)).revisions(revision).fetch()
    text = json.dumps(record.definition, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"Wrote revision {record.revision} of {record.sid} to {output}", err=True)


@flows.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_connection
def flows_validate(conn: Connection, file: Path) -> None:
    """Check a definition with the server's validator; each problem is printed with its property path."""
    definition = load_definition(file)
    try:
        conn.studio.flow_validate.update(friendly_name=file.stem, status="draft", definition=definition)
    except TwilioRestException as exc:
        error = describe(exc)
        click.secho(f"{file}: invalid — {error.message}", fg="red")
        for line in error.details:
            click.echo(f"  {line}")
        sys.exit(1)
    click.secho(f"{file}: valid", fg="green")


@flows.command("revisions")
@click.argument("flow_ref", metavar="FLOW")
@pass_connection
def flows_revisions(conn: Connection, flow_ref: str) -> None:
    """A flow's revisions, newest first."""
    rows = [[str(r.revision), execution_status(r.status), timestamp(r.date_created), r.commit_message or ""]
            for r in conn.studio.flows(conn.flow_sid(flow_ref)).revisions.stream(page_size=1000)]
    click.echo(table(["REVISION", "STATUS", "CREATED", "MESSAGE"], rows))


@flows.command("test-users")
@click.argument("flow_ref", metavar="FLOW")
@click.argument("users", nargs=-1)
@click.option("--clear", is_flag=True, help="Remove every test user.")
@pass_connection
def flows_test_users(conn: Connection, flow_ref: str, users: tuple[str, ...], clear: bool) -> None:
    """Show a flow's test users, or set them (they run the latest revision even if it is a draft)."""
    resource = conn.studio.flows(conn.flow_sid(flow_ref)).test_users()
    wanted = list(users) or ([""] if clear else None)  # a single empty value clears the list
    current = resource.fetch() if wanted is None else resource.update(test_users=wanted)
    click.echo("\n".join(current.test_users or []) or "No test users.")


@flows.command("delete")
@click.argument("flow_ref", metavar="FLOW")
@click.confirmation_option(prompt="Delete the flow, every revision and all its executions?")
@pass_connection
def flows_delete(conn: Connection, flow_ref: str) -> None:
    """Delete a flow with every revision and execution."""
    sid = conn.flow_sid(flow_ref)
    conn.studio.flows(sid).delete()
    click.echo(f"Deleted {sid}")


# -- run --------------------------------------------------------------------------------------------------


def _parameters(params: tuple[str, ...], parameters_json: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if parameters_json:
        try:
            loaded = json.loads(parameters_json)
        except json.JSONDecodeError as exc:
            raise CliError(f"--parameters is not JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise CliError("--parameters must be a JSON object")
        data.update(loaded)
    for item in params:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"--param wants name=value, not {item!r}")
        data[name] = value
    return data


@cli.command()
@click.argument("flow_ref", metavar="FLOW")
@click.option("--to", required=True, help="The contact (becomes {{contact.channel.address}}).")
@click.option("--from", "from_", required=True, help="Your number or Messaging Service (becomes {{flow.channel.address}}).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A {{flow.data.NAME}} value (repeatable).")
@click.option("--parameters", "parameters_json", metavar="JSON", help="All of flow.data as one JSON object.")
@click.option("--follow/--no-follow", default=True, show_default=True, help="Print each step as it happens.")
@click.option("--timeout", default=120.0, show_default=True, help="Stop following after this many seconds.")
@click.option("--interval", default=0.3, show_default=True, help="Seconds between polls while following.")
@pass_connection
def run(conn: Connection, flow_ref: str, to: str, from_: str, params: tuple[str, ...], parameters_json: str | None,
        follow: bool, timeout: float, interval: float) -> None:
    """Start an execution of FLOW and follow it step by step until it ends."""
    sid = conn.flow_sid(flow_ref)
    data = _parameters(params, parameters_json)
    execution = conn.studio.flows(sid).executions.create(to=to, from_=from_, parameters=data)
    click.echo(f"Started {click.style(execution.sid, bold=True)} (revision {execution.flow_version}) for {to}")
    if not follow:
        return
    resource = conn.studio.flows(sid).executions(execution.sid)
    printed, waiting_shown, interactive = 0, False, sys.stdout.isatty()
    deadline = time.monotonic() + timeout
    while True:
        current = resource.fetch()  # first the status, then the steps: an ended execution's steps are complete
        steps = list(reversed(resource.steps.list(page_size=1000)))
        done, late = current.status == "ended", time.monotonic() > deadline
        if waiting_shown and (printed < len(steps) or done or late):
            click.echo("\r\033[K", nl=False)  # erase the "waiting" line before real output
            waiting_shown = False
        for number, step in enumerate(steps[printed:], start=printed + 1):
            click.echo(step_line(number, step))
        printed = len(steps)
        if done:
            break
        if late:
            click.echo(f"Still active after {timeout:g}s; follow it with "
                       f"`switchboard steps show {sid} {execution.sid}`")
            return
        if interactive and not waiting_shown:
            click.echo(click.style("… waiting", dim=True), nl=False)
            waiting_shown = True
        time.sleep(interval)
    context = current.context or {}
    error = context.get("error") if isinstance(context, dict) else None
    if isinstance(error, dict):
        click.secho(f"Ended with error {error.get('code')}: {error.get('message')}", fg="red")
    else:
        click.secho(f"Ended after {printed} steps", fg="green")
    variables = context.get("flow", {}).get("variables") if isinstance(context, dict) else None
    if variables:
        click.echo("flow.variables:")
        click.echo(json_block(variables))


# -- executions -------------------------------------------------------------------------------------------


@cli.group()
def executions() -> None:
    """List, show, end and delete executions."""


@executions.command("list")
@click.argument("flow_ref", metavar="FLOW")
@click.option("--status", type=click.Choice(["active", "ended"]))
@click.option("--since", help="Created at or after (ISO 8601, e.g. 2024-05-01T10:00:00Z).")
@click.option("--until", help="Created at or before (ISO 8601).")
@click.option("--limit", default=20, show_default=True, help="Show at most this many (newest first).")
@pass_connection
def executions_list(conn: Connection, flow_ref: str, status: str | None, since: str | None, until: str | None,
                    limit: int) -> None:
    """A flow's executions, newest first."""
    filters: dict[str, Any] = {k: v for k, v in (("status", status), ("date_created_from", since),
                                                 ("date_created_to", until)) if v}
    items = conn.studio.flows(conn.flow_sid(flow_ref)).executions.list(limit=limit, page_size=min(limit, 1000), **filters)
    rows = [[e.sid, execution_status(e.status), e.contact_channel_address or "", str(e.flow_version),
             timestamp(e.date_created), timestamp(e.date_updated)] for e in items]
    click.echo(table(["SID", "STATUS", "CONTACT", "REVISION", "CREATED", "UPDATED"], rows) if rows else "No executions.")


@executions.command("show")
@click.argument("flow_ref", metavar="FLOW")
@click.argument("execution_sid", metavar="EXECUTION")
@pass_connection
def executions_show(conn: Connection, flow_ref: str, execution_sid: str) -> None:
    """One execution with its context."""
    e = conn.studio.flows(conn.flow_sid(flow_ref)).executions(execution_sid).fetch()
    for label, value in (("Execution", e.sid), ("Flow", f"{e.flow_sid} (revision {e.flow_version})"),
                         ("Status", execution_status(e.status)), ("Contact", e.contact_channel_address),
                         ("Initiated by", e.initiated_by), ("Created", timestamp(e.date_created)),
                         ("Updated", timestamp(e.date_updated))):
        click.echo(f"{label + ':':<14}{value}")
    click.echo("Context:")
    click.echo(json_block(e.context or {}))


@executions.command("end")
@click.argument("flow_ref", metavar="FLOW")
@click.argument("execution_sid", metavar="EXECUTION")
@pass_connection
def executions_end(conn: Connection, flow_ref: str, execution_sid: str) -> None:
    """End an active execution."""
    e = conn.studio.flows(conn.flow_sid(flow_ref)).executions(execution_sid).update(status="ended")
    click.echo(f"{e.sid} {execution_status(e.status)}")


@executions.command("delete")
@click.argument("flow_ref", metavar="FLOW")
@click.argument("execution_sid", metavar="EXECUTION")
@pass_connection
def executions_delete(conn: Connection, flow_ref: str, execution_sid: str) -> None:
    """Delete an execution and its steps (ending it first if active)."""
    conn.studio.flows(conn.flow_sid(flow_ref)).executions(execution_sid).delete()
    click.echo(f"Deleted {execution_sid}")


# -- steps ------------------------------------------------------------------------------------------------


@cli.group()
def steps() -> None:
    """Inspect the steps of an execution."""


@steps.command("show")
@click.argument("flow_ref", metavar="FLOW")
@click.argument("execution_sid", metavar="EXECUTION")
@click.option("--step-context/--no-step-context", default=False, help="Also print each step's own context.")
@pass_connection
def steps_show(conn: Connection, flow_ref: str, execution_sid: str, step_context: bool) -> None:
    """A table of an execution's steps, oldest first, then the execution's context."""
    resource = conn.studio.flows(conn.flow_sid(flow_ref)).executions(execution_sid)
    execution = resource.fetch()
    ordered = list(reversed(resource.steps.list(page_size=1000)))
    rows = [[str(n), s.transitioned_from or "", s.name or "", s.transitioned_to or "", s.type or "",
             timestamp(s.date_created)] for n, s in enumerate(ordered, start=1)]
    click.echo(f"{execution.sid}  {execution_status(execution.status)}  {len(ordered)} steps")
    click.echo(table(["#", "WIDGET", "EVENT", "NEXT", "TYPE", "STARTED"], rows))
    if step_context:
        for number, step in enumerate(ordered, start=1):
            click.echo(f"\nStep {number} {step.transitioned_from} ({step.sid}):")
            click.echo(json_block(resource.steps(step.sid).step_context().fetch().context or {}))
    click.echo("\nContext:")
    click.echo(json_block(resource.execution_context().fetch().context or {}))


# -- simulate ---------------------------------------------------------------------------------------------


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_connection
def simulate(conn: Connection, args: tuple[str, ...]) -> None:
    """Play Twilio's side of a call or SMS against a flow (devtools.simulator; `simulate --help` for its options)."""
    try:
        from devtools import simulator
    except ImportError as exc:
        raise CliError("the Twilio simulator (devtools.simulator) is not available in this installation") from exc
    argv = ["--base-url", conn.url, "--account-sid", conn.account_sid, "--auth-token", conn.auth_token, *args]
    sys.exit(simulator.main(argv, prog="switchboard simulate"))

"""What the client-side commands share: the API options, the client they build, JSON and table output."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from tensorq.client import TensorQClient
from tensorq.client_errors import TensorQClientError

DEFAULT_URL = "http://127.0.0.1:8000"


def _one_line(exc: TensorQClientError) -> click.ClickException:
    """A client error as ``Error: <code>: <message>`` (and its details), exit status 1."""
    code = getattr(exc, "code", type(exc).__name__)
    message = getattr(exc, "message", str(exc))
    details = getattr(exc, "details", None)
    if details:
        message += f"\n  details: {json.dumps(details, default=str)[:2000]}"
    return click.ClickException(f"{code}: {message}")


class ApiGroup(click.Group):
    """A command group whose commands turn client errors into one clear line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a client error becomes ``Error: <code>: <message>``."""
        try:
            return super().invoke(ctx)
        except TensorQClientError as exc:
            raise _one_line(exc) from exc


class ApiCommand(click.Command):
    """A single command that turns client errors into one clear line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a client error becomes ``Error: <code>: <message>``."""
        try:
            return super().invoke(ctx)
        except TensorQClientError as exc:
            raise _one_line(exc) from exc


def api_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--url``, ``--key`` and ``--json`` to a command and hand it a ``Cli`` instead."""

    @click.option(
        "--url", envvar="TENSORQ_URL", default=DEFAULT_URL, show_default=True, help="API base URL [env TENSORQ_URL]"
    )
    @click.option("--key", envvar="TENSORQ_KEY", required=True, help="API key [env TENSORQ_KEY]")
    @click.option("--json", "as_json", is_flag=True, help="print JSON for scripts instead of text")
    @functools.wraps(command)
    def wrapper(url: str, key: str, as_json: bool, **kwargs: Any) -> Any:
        with TensorQClient(url, key) as client:
            return command(Cli(client, as_json), **kwargs)

    return wrapper


def to_jsonable(value: Any) -> Any:
    """A client dataclass (or list of them) as JSON-ready values, datetimes in ISO 8601."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def short_time(value: datetime | None) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SS`` (UTC), or ``-``."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


@dataclasses.dataclass
class Cli:
    """One invocation's client and output mode: rich on a terminal, plain text when piped, JSON on request."""

    client: TensorQClient
    as_json: bool
    console: Console = dataclasses.field(default_factory=Console)

    @property
    def interactive(self) -> bool:
        """Whether stdout is a terminal (and not JSON): progress bars, colours and tables."""
        return self.console.is_terminal and not self.as_json

    def json(self, value: Any) -> None:
        """Print ``value`` as indented JSON."""
        click.echo(json.dumps(to_jsonable(value), indent=2, sort_keys=True))

    def emit(self, value: Any, text: str) -> None:
        """``value`` as JSON with ``--json``, else ``text``: the one ending of a command that shows one thing."""
        if self.as_json:
            self.json(value)
        else:
            click.echo(text)

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
        """A rich table on a terminal, else tab-separated lines with a header line."""
        rows = [[("-" if cell is None else str(cell)) for cell in row] for row in rows]
        if self.interactive:
            table = Table(*headers, title=title)
            for row in rows:
                table.add_row(*row)
            self.console.print(table)
            return
        click.echo("\t".join(headers))
        for row in rows:
            click.echo("\t".join(row))

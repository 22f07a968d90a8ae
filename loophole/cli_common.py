"""What every ``loophole`` command module shares: the settings a command runs with, and how
it fails (one line on stderr, exit code 2).

Apart from loophole/cli.py because cli.py imports the command modules (cli_web, cli_lists,
cli_alerts) to register them; they import this module at the top instead of reaching back
into cli.py at call time.
"""

from __future__ import annotations

import typer

from ground.config import ConfigError, Settings, load_settings


def fail(message: str, code: int = 2) -> typer.Exit:
    """Say what is wrong in one line on stderr and give the exit to raise: a bad argument or
    file ends a command with code 2 and a message, never a traceback."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def command_settings(create: bool = True) -> Settings:
    """The settings, with the data directory in place (every command may open the store) unless
    ``create`` is false (``eval`` works in a temporary one and must leave the user's untouched).
    A configuration or data directory error ends the command with exit code 2 and one message,
    not a traceback."""
    try:
        settings = load_settings()
        if create:
            settings.ensure_dirs()
    except ConfigError as exc:
        typer.echo(f"configuration error\n{exc}", err=True)
        raise typer.Exit(2) from exc
    except OSError as exc:
        raise fail(f"the data directory cannot be used: {exc}") from exc
    return settings

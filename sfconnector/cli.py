"""The `sfconnector` command line: a thin click layer over the library.

Subcommands are imported only when invoked, so `sfconnector run` never loads the
emulator and `--help` stays fast. Only this layer turns errors into exit codes.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# name -> (module, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": (
        "sfconnector.commands.run",
        "run",
        "Run the daemon (systemd Type=notify; SIGTERM drains, exit 0).",
    ),
    "status": (
        "sfconnector.commands.status",
        "status",
        "Checkpoints, outbox depth, dead letters, last errors.",
    ),
    "check": (
        "sfconnector.commands.check",
        "check",
        "Online preflight: login, fields, channels, API allocation.",
    ),
    "explain": (
        "sfconnector.commands.explain",
        "explain",
        "Dry-run the rules on an event file or a lead id.",
    ),
    "demo": ("sfconnector.commands.demo", "demo", "The whole loop on the embedded emulator, in one command."),
    "deadletters": ("sfconnector.commands.deadletters", "deadletters", "List, retry or drop dead letters."),
    "validate": (
        "sfconnector.commands.validate",
        "validate",
        "Check the config offline (exit 2 on problems).",
    ),
    "reconcile": (
        "sfconnector.commands.reconcile",
        "reconcile",
        "Sweep the org for referrals and rewards the stream missed; queue repairs.",
    ),
    "report": (
        "sfconnector.commands.report",
        "report",
        "Referral funnel, top advocates, reward liability, routing overrides (table, CSV, JSON).",
    ),
    "schema": ("sfconnector.commands.schema", "schema", "Print the JSON Schema of the config."),
    "init": (
        "sfconnector.commands.init",
        "init",
        "Write a starter config, mapping, rules and systemd units for a new org.",
    ),
    "state": (
        "sfconnector.commands.state",
        "state",
        "The state file: `state backup PATH` copies it safely while the daemon runs.",
    ),
    "emulator": (
        "sfemulator.cli",
        "emulator_command",
        "Run the local Salesforce emulator (HTTPS) until stopped.",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands live in modules imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module = importlib.import_module(spec[0])
        command: click.Command = getattr(module, spec[1])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="sfconnector")
def main(**_: Any) -> None:
    """sfconnector: advocate-ownership routing, attribution and rewards for Salesforce referral programs."""

"""The `phaeton` command: `run`, `demo`, `check-config`, `plan`, `fleet`, `update`.

`check-config` lives here. The other subcommands only parse their arguments and hand them to
`run_from_cli(args)` of the module that implements them, imported when the subcommand is used
(so `phaeton check-config` works on a machine where the service's dependencies are not all
importable). Exit codes: 0 ok, 1 invalid config, 2 usage error, unreadable file or a missing
part of phaeton.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from phaeton import __version__

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNUSABLE = 2

DEFAULT_CONFIG_PATH = "/data/phaeton/config.yaml"

# numpy's BLAS (OpenBLAS in the pip wheels) starts one thread per core when numpy is imported;
# they spin for a while after the start and after each call. The planner's arrays are a few
# hundred numbers, too small for a second thread to pay, and on a GX those threads take CPU
# from Victron's own services. An owner's own setting is kept.
SINGLE_THREADED_BLAS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}

# subcommand -> module whose run_from_cli(args) implements it
SUBCOMMAND_MODULES = {
    "run": "phaeton.app",
    "demo": "phaeton.sim.demo",
    "plan": "phaeton.planner.cli",
    "replay": "phaeton.replay.cli",
    "fleet": "phaeton.fleet.operator",
    "update": "phaeton.update.cli",
}


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535 (0 = any free port), got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (the command line's shape)."""
    parser = argparse.ArgumentParser(
        prog="phaeton", description="EV charger controller for Victron Venus OS (GX devices).")
    parser.add_argument("--version", action="version", version=f"phaeton {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run the service on the GX's system D-Bus")
    run.add_argument("--config", default=DEFAULT_CONFIG_PATH, metavar="PATH",
                     help=f"config file (default {DEFAULT_CONFIG_PATH})")

    demo = commands.add_parser(
        "demo", help="run a complete simulated GX with a simulated charger and the web UI")
    demo.add_argument("--speed", type=_positive_float, default=1.0, metavar="N",
                      help="simulated seconds per real second (default 1)")
    demo.add_argument("--ocpp", action="store_true",
                      help="simulate an OCPP 1.6J charger instead of an Alfen (Modbus TCP)")
    demo.add_argument("--port", type=_port, default=8088, metavar="N",
                      help="web UI port (default 8088, 0 = any free port)")
    demo.add_argument("--chargers", type=int, choices=(1, 2, 3), default=1, metavar="N",
                      help="1 (default) one charger; 2 an Alfen double station (two sockets, a "
                           "car each); 3 that station and an OCPP charge point (a third car), "
                           "all below a 'garage' circuit")
    demo.add_argument("--seconds", type=_positive_float, default=None, metavar="S",
                      help="stop by itself after S real seconds (for scripts and tests)")

    check = commands.add_parser("check-config", help="validate a config file")
    check.add_argument("path", metavar="PATH", help="the config.yaml to check")

    plan = commands.add_parser("plan", help="print the charging and battery plan")
    plan.add_argument("--config", default=DEFAULT_CONFIG_PATH, metavar="PATH",
                      help=f"config file (default {DEFAULT_CONFIG_PATH})")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    replay = commands.add_parser(
        "replay", help="replay a recorded house through the planner in closed loop and "
                       "compare what it would have paid")
    replay.add_argument("--config", default=DEFAULT_CONFIG_PATH, metavar="PATH",
                        help=f"config file: battery, site, tariff (default {DEFAULT_CONFIG_PATH})")
    replay.add_argument("--history", required=True, metavar="FILE",
                        help="the house's record: energy_history.csv (start_s,load_kwh,pv_kwh)")
    replay.add_argument("--from", dest="from_date", required=True, metavar="YYYY-MM-DD",
                        help="first day replayed (local time of planner.site.tz)")
    replay.add_argument("--days", type=_positive_int, required=True, metavar="N",
                        help="days replayed")
    replay.add_argument("--mode", choices=("dess_schedule", "setpoint", "all"), default="all",
                        help="how the plan is executed (default: all)")
    replay.add_argument("--fill-gaps", action="store_true",
                        help="fill unmeasured gaps longer than 2 h in the replayed days from "
                             "the same time on the day before (default: refuse them)")
    replay.add_argument("--json", action="store_true", help="print the result as JSON")
    plan.add_argument("--assumed", action="store_true",
                      help="plan from the config's assumed SoCs and knobs, without asking the GX "
                           "(default: the battery SoC, the planner knobs and whether a car is "
                           "plugged in are read from the GX when its D-Bus is there)")

    fleet = commands.add_parser(
        "fleet", help="operator tools: push schedules to sites and watch their acks over MQTT "
                      "(docs/fleet.md)")
    fleet_commands = fleet.add_subparsers(dest="fleet_command", metavar="FLEET_COMMAND",
                                          required=True)
    broker = argparse.ArgumentParser(add_help=False)      # the options every fleet command takes
    broker.add_argument("--broker", default="127.0.0.1:1883", metavar="HOST:PORT",
                        help="the broker (default 127.0.0.1:1883; port 8883 with TLS if omitted)")
    broker.add_argument("--username", metavar="NAME", help="broker login")
    broker.add_argument("--password", metavar="SECRET", help="broker password")
    broker.add_argument("--ca-file", metavar="PEM",
                        help="CA of the broker's certificate (turns on TLS)")
    broker.add_argument("--cert-file", metavar="PEM",
                        help="client certificate (turns on TLS)")
    broker.add_argument("--key-file", metavar="PEM", help="the client certificate's key")
    broker.add_argument("--topic-prefix", default="phaeton/fleet", metavar="PREFIX",
                        help="first levels of every topic (default phaeton/fleet)")

    push = fleet_commands.add_parser(
        "push", parents=[broker], help="sign a schedule for each site and publish it (QoS 1)")
    push.add_argument("schedule", metavar="SCHEDULE.json",
                      help="the schedule body (docs/fleet-examples/schedule.json); its site "
                           "field is set per site")
    sites = push.add_mutually_exclusive_group(required=True)
    sites.add_argument("--site", metavar="ID", help="one site, signed with --key")
    sites.add_argument("--sites", metavar="CSV",
                       help="many sites: a CSV file with the header site_id,hmac_key")
    push.add_argument("--key", metavar="KEY", help="the site's hmac_key (with --site)")
    push.add_argument("--timeout", type=_positive_float, default=10.0, metavar="S",
                      help="give up when the broker cannot be reached for S seconds "
                           "(default 10)")

    watch = fleet_commands.add_parser(
        "watch", parents=[broker], help="follow the sites' status and acks in a live table")
    watch.add_argument("--client-id", metavar="ID",
                       help="a persistent session under this id: acks sent while the watcher "
                            "was away arrive when it is back (default: a clean session)")
    watch.add_argument("--until-acked", type=_positive_int, metavar="N",
                       help="exit once N sites accepted or refused the newest schedule")
    watch.add_argument("--schedule-id", metavar="ID",
                       help="with --until-acked: this schedule (its newest version) instead of "
                            "the newest seen")
    watch.add_argument("--timeout", type=_positive_float, default=None, metavar="S",
                       help="stop after S seconds; with --until-acked, exit 1 if not reached")

    status = fleet_commands.add_parser(
        "status", parents=[broker], help="summarise the sites' retained status messages")
    status.add_argument("--wait", type=_positive_float, default=2.0, metavar="S",
                        help="seconds to collect the retained statuses (default 2)")
    status.add_argument("--json", action="store_true", help="print the summary as JSON")
    status.add_argument("--timeout", type=_positive_float, default=10.0, metavar="S",
                        help="give up when the broker cannot be reached in S seconds "
                             "(default 10)")

    update = commands.add_parser(
        "update", help="self-update from published, signed releases: check, apply, rollback "
                       "(docs/update.md)")
    update_commands = update.add_subparsers(dest="update_command", metavar="UPDATE_COMMAND",
                                            required=True)
    install = argparse.ArgumentParser(add_help=False)     # the options every update command takes
    install.add_argument("--root", metavar="PREFIX",
                         help="the install in PREFIX/data/phaeton, as install.sh --root (default: "
                              "the install this phaeton runs from, else /data/phaeton)")
    install.add_argument("--config", metavar="PATH",
                         help="config file (default: config.yaml in the install)")
    update_commands.add_parser("check", parents=[install],
                               help="is a newer release available? (changes nothing)")
    update_apply = update_commands.add_parser(
        "apply", parents=[install], help="download, verify, install beside, switch, health "
                                         "check; roll back by itself when unhealthy")
    update_apply.add_argument("--version", dest="target_version", metavar="V",
                              help="install exactly version V (also an older one)")
    update_apply.add_argument("--trigger", choices=("cli", "web", "auto"), default="cli",
                              help=argparse.SUPPRESS)
    update_commands.add_parser("rollback", parents=[install],
                               help="switch back to the previous version, with the health check")
    update_status = update_commands.add_parser(
        "status", parents=[install], help="versions installed, last check, last update")
    update_status.add_argument("--json", action="store_true", help="print it as JSON")
    update_commands.add_parser("recover", parents=[install],
                               help="undo a switch whose apply or rollback process died")
    return parser


def check_config(path: str) -> int:
    """Print every problem of the config at `path` as `PATH:LINE: key: message`."""
    from phaeton.config import ConfigError, ConfigUnreadable, load_config

    try:
        load_config(path)
    except ConfigUnreadable as exc:
        for problem in exc.problems:
            print(problem.format(path), file=sys.stderr)
        return EXIT_UNUSABLE
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem.format(path))
        count = len(exc.problems)
        print(f"{path}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        return EXIT_INVALID
    print(f"{path}: OK")
    return EXIT_OK


def _dispatch(command: str, args: argparse.Namespace) -> int:
    """Import the subcommand's module and run it; a missing module is a clear exit 2."""
    module_name = SUBCOMMAND_MODULES[command]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or module_name
        print(f"phaeton {command}: not available: module {missing} cannot be imported ({exc})",
              file=sys.stderr)
        return EXIT_UNUSABLE
    run_from_cli = getattr(module, "run_from_cli", None)
    if not callable(run_from_cli):
        print(f"phaeton {command}: not available: module {module_name} has no run_from_cli()",
              file=sys.stderr)
        return EXIT_UNUSABLE
    result = run_from_cli(args)
    return EXIT_OK if result is None else int(result)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `phaeton` console script; returns the exit code."""
    for name, value in SINGLE_THREADED_BLAS.items():   # before anything imports numpy
        os.environ.setdefault(name, value)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_UNUSABLE
    if args.command == "check-config":
        return check_config(args.path)
    try:
        return _dispatch(args.command, args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

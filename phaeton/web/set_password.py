"""Set the web UI password: `python -m phaeton.web.set_password --config /data/phaeton/config.yaml`.

Asks for the password twice (or reads one line from stdin with --stdin), stores only its scrypt
hash as web.password_hash, and saves the config atomically (the previous file is kept as .bak).
Restart phaeton afterwards. Exit status 0 saved, 1 refused or failed.
"""
from __future__ import annotations

import argparse
import getpass
import sys

import yaml

from phaeton.config import ConfigError, load_config, save_config
from phaeton.web.passwords import hash_password


def set_password(config_path: str, password: str) -> None:
    """Hash `password` into web.password_hash of the config at `config_path` and save it.

    Raises ValueError (bad password), ConfigError (invalid config) or OSError."""
    new_hash = hash_password(password)
    load_config(config_path)  # refuse to rewrite a file that does not validate
    with open(config_path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    web = data.get("web")
    if not isinstance(web, dict):
        web = data["web"] = {}
    web["password_hash"] = new_hash
    save_config(config_path, data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phaeton.web.set_password",
                                     description="Set the password the web UI asks for writes.")
    parser.add_argument("--config", required=True, help="path of phaeton's config.yaml")
    parser.add_argument("--stdin", action="store_true",
                        help="read the password from the first line of stdin")
    args = parser.parse_args(argv)
    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("New web password: ")
        if getpass.getpass("Repeat it: ") != password:
            print("the two passwords differ; nothing changed", file=sys.stderr)
            return 1
    try:
        set_password(args.config, password)
    except ConfigError as exc:
        print(f"{exc}\nnothing changed", file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:
        print(f"{exc}; nothing changed", file=sys.stderr)
        return 1
    print(f"web password saved in {args.config}; restart phaeton to use it")
    return 0


if __name__ == "__main__":
    sys.exit(main())

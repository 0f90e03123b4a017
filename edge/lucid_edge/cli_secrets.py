"""Secret values a `lucid` command takes (URIs with passwords, signing keys), kept out of argv.

A value given as an argument is readable by every user of the machine while the command runs
(`ps`, /proc/<pid>/cmdline is world-readable) and stays in the shell's history. So each secret
option `--x` comes with two other sources:

    --x-file PATH      the value is the file's content (one trailing newline dropped);
                       `-` reads it from standard input (pipe it in: `... --x-file - < file`)
    LUCID_X            an environment variable (/proc/<pid>/environ is readable by its user only)

in that order, then the command's default. `--x VALUE` still works for scripts that use it, but
is left out of `--help` and warns on standard error (never echoing the value). No message of
this module quotes a value: a wrong one is described by where it came from and what it lacks.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lucid_edge.cli_config import CommandError

__all__ = ["JWT_KEY", "MONGODB_URI", "REDIS_URI", "SecretOption", "add_secret_option", "resolve"]

STDIN = "-"


def _scheme(*schemes: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if value.startswith(schemes):
            return None
        return "does not start with any of " + ", ".join(schemes)

    return check


def _redis_parse(value: str) -> object:
    from lucid.store.resp import parse_uri  # the functions' own client (lucid.store.resp)

    return parse_uri(value)


def _mongodb_parse(value: str) -> object:
    from pymongo.uri_parser import parse_uri

    # A mongodb+srv:// URI is resolved in DNS by the parser: not checked beyond its scheme here.
    return parse_uri(value) if value.startswith("mongodb://") else None


def _uri(driver: str, parse: Callable[[str], object], *schemes: str) -> Callable[[str], str | None]:
    """The scheme check, then the driver's own parser: a URI the functions' client would refuse
    (lucid.store.unusable, a 503 on every route that needs it) is refused here, before it is
    written anywhere. The driver's error class only: its message can quote part of the URI."""
    scheme = _scheme(*schemes)

    def check(value: str) -> str | None:
        problem = scheme(value)
        if problem is not None:
            return problem
        try:
            parse(value)
        except Exception as error:  # ValueError, pymongo's ConfigurationError
            return (
                f"is refused by {driver} ({type(error).__name__}): check the scheme, host and "
                "port, and that the user name and password are percent-escaped"
            )
        return None

    return check


def _long_key(value: str) -> str | None:
    # What the functions refuse at cold start outside the local stage (lucid.config, Settings).
    if len(value.encode()) < 32:
        return "is shorter than 32 bytes, which the functions refuse outside the local stage"
    return None


@dataclass(frozen=True)
class SecretOption:
    """One secret-valued option: `--<flag>`, `--<flag>-file`, and the environment variable."""

    flag: str  # "redis-uri"
    env: str  # "LUCID_REDIS_URI"
    what: str  # "the Redis URI", for help and errors
    check: Callable[[str], str | None]  # what is wrong with a value (never the value), or None

    @property
    def dest(self) -> str:
        return self.flag.replace("-", "_")


# The layer's Redis client's schemes (lucid.store.resp); pymongo's. The layer reads nothing else
# (lucid.store).
REDIS_URI = SecretOption(
    "redis-uri",
    "LUCID_REDIS_URI",
    "the Redis URI",
    _uri("the functions' Redis client", _redis_parse, "redis://", "rediss://", "unix://"),
)
MONGODB_URI = SecretOption(
    "mongodb-uri",
    "LUCID_MONGODB_URI",
    "the MongoDB URI",
    _uri("pymongo", _mongodb_parse, "mongodb://", "mongodb+srv://"),
)
JWT_KEY = SecretOption("jwt-key", "LUCID_JWT_KEY", "the JWT signing key", _long_key)


def add_secret_option(parser: argparse.ArgumentParser, option: SecretOption, default: str) -> None:
    """Add `--x-file` (and the hidden `--x`); `default` says what applies without either."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        f"--{option.flag}-file",
        dest=f"{option.dest}_file",
        metavar="PATH",
        help=f"read {option.what} from PATH ('-': standard input), or set {option.env} "
        f"(default: {default})",
    )
    # The old way, kept working but not shown: the value would be visible in `ps`.
    group.add_argument(f"--{option.flag}", dest=option.dest, help=argparse.SUPPRESS)


def _read(option: SecretOption, path: str) -> str:
    where = "standard input" if path == STDIN else path
    try:
        if path == STDIN:
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as file:
                text = file.read()
    except OSError as error:
        raise CommandError(f"cannot read {option.what} from {where}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise CommandError(f"{option.what} in {where} is not UTF-8 text") from None
    # One trailing line end, as `echo` and editors leave it; anything else is the value's own.
    return text.removesuffix("\n").removesuffix("\r")


def resolve(
    args: argparse.Namespace, options: Sequence[SecretOption], prog: str
) -> dict[str, str | None]:
    """Each option's value (None: not given anywhere, the command's default applies).

    Raises `CommandError` (naming the source, never the value) for an unreadable file, an empty
    or malformed value, or standard input named twice.
    """
    stdin_users = [o for o in options if getattr(args, f"{o.dest}_file") == STDIN]
    if len(stdin_users) > 1:
        flags = " and ".join(f"--{o.flag}-file" for o in stdin_users)
        raise CommandError(f"{flags} cannot both read standard input: give one of them a file")
    values: dict[str, str | None] = {}
    for option in options:
        path = getattr(args, f"{option.dest}_file")
        given = getattr(args, option.dest)
        if path is not None:
            value, source = _read(option, path), f"--{option.flag}-file"
        elif given is not None:
            print(
                f"{prog}: warning: --{option.flag} puts {option.what} where other users can read "
                f"it (ps, /proc) and in your shell history; use --{option.flag}-file or "
                f"{option.env}",
                file=sys.stderr,
            )
            value, source = given, f"--{option.flag}"
        elif os.environ.get(option.env):
            value, source = os.environ[option.env], option.env
        else:
            values[option.dest] = None
            continue
        problem = "is empty" if not value.strip() else option.check(value)
        if problem:
            raise CommandError(f"{option.what} from {source} {problem}")
        values[option.dest] = value
    return values

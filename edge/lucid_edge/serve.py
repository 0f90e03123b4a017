"""`lucid serve`: run the local edge on 127.0.0.1 with several worker processes.

The parent validates the template (failing loudly), takes the port (failing, naming it, before
anything starts or claims to be up), shares one JWT secret with all workers on the local stage,
imports every function once as a worker will (failing in one line on what a worker would
refuse), starts the embedded Redis when REDIS_URI is unset, points AUTH_SERVICE_URL at the
address it serves, creates the files the workers share (throttle buckets, reserved
concurrency), prints the URL and route table, then hands the listening socket to uvicorn's
workers. SIGINT, SIGTERM or SIGHUP stops the workers and everything the parent started,
whatever the worker count.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from lucid.config import LOCAL_STAGE, ephemeral_secret
from lucid_edge import logs, metrics, metrics_workers, server
from lucid_edge.cli_config import recording_gateway
from lucid_edge.loader import HandlerLoadError, load_handler
from lucid_edge.local import start_mongo_server, start_redis
from lucid_edge.model import Template
from lucid_edge.routing import RouteTable
from lucid_edge.template import TemplateError, apply_environment, load_template, parse_overrides

DEFAULT_WORKERS = 2
# How long a worker may go without answering uvicorn's health check before it is killed (_serve).
WORKER_HEALTHCHECK_SECONDS = 30
_SERVICE_URL = "AUTH_SERVICE_URL"


def _port(text: str) -> int:
    """A TCP port, 0-65535 (argparse's usage error otherwise, not bind()'s OverflowError)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535)")
    return port


def register(subparsers: Any) -> None:
    """Add the `serve` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve", help="serve the SAM template's HTTP API locally (no Docker)"
    )
    # Every option says its default (argparse's %(default)s): `--help` was the one place a
    # user could not learn the port or the worker count without reading the code.
    parser.add_argument(
        "--template",
        default="infra/template.yaml",
        type=Path,
        help="the SAM template to serve (default: %(default)s)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", default=8080, type=_port, help="0 picks a free port (default: %(default)s)"
    )
    parser.add_argument(
        "--workers",
        default=DEFAULT_WORKERS,
        type=int,
        help="worker processes sharing the port (default: %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        default=server.DEFAULT_CONCURRENCY,
        type=int,
        help="concurrent invocations per worker of the functions without "
        "ReservedConcurrentExecutions (the local account-wide cap); more wait their turn "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        help="reload a function's code when its files change (default: off)",
    )
    parser.add_argument(
        "--parameter-overrides",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="template parameter values, as sam deploy takes them (default: the template's)",
    )
    parser.add_argument(
        "--metrics-path",
        default=metrics.DEFAULT_PATH,
        help="where the edge answers Prometheus's scrapes (its own endpoint, not a route of the "
        "template: refused if a route would answer it; '' serves none) (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def _check_handlers(template: Template) -> None:
    # Cheap parent-side check so a missing handler file fails before any worker starts.
    for spec in template.functions.values():
        module = spec.handler.rpartition(".")[0].replace(".", "/")
        if not (spec.code_uri / f"{module}.py").is_file():
            raise TemplateError(
                f"Resources.{spec.logical_id}.Properties.Handler: no {module}.py in {spec.code_uri}"
            )


class FunctionStartError(RuntimeError):
    """A function the workers would fail to start (its import refuses a setting, ...)."""


def check_functions_start(template: Template, overrides: dict[str, str]) -> None:
    """Start every function first, as each worker will (the template's environment under what
    is already set, then each handler imported), so that what a worker would refuse fails
    before anything claims the edge is up: one line naming the function and its reason (a
    setting the layer refuses names the setting and the value it wants), not a worker's
    traceback after the banner, or, with several workers, uvicorn restarting each failed
    worker until killed. In a process of its own: an import configures the layer's logging and
    caches its settings and clients, which must not leak into this parent (with one worker,
    uvicorn serves in this very process). Costs one more Python start and import of every
    function (~1.5 s on this machine) before the workers import them."""
    checked = subprocess.run(  # noqa: S603 - this interpreter, this module
        [sys.executable, "-m", "lucid_edge.serve", str(template.path), json.dumps(overrides)],
        capture_output=True,
        text=True,
        check=False,
    )
    if checked.returncode != 0:
        said = (checked.stdout.strip().splitlines() or checked.stderr.strip().splitlines())[-1:]
        raise FunctionStartError(said[0] if said else f"exit status {checked.returncode}")


def _start_functions(template_path: str, overrides: str) -> int:
    """The check's own process: 0 when every handler imports, else 1 and the reason on stdout."""
    template = load_template(Path(template_path), json.loads(overrides))
    apply_environment(template)
    for spec in template.functions.values():
        try:
            load_handler(spec.code_uri, spec.handler)
        except HandlerLoadError as err:
            reason = str(err.__cause__ or err).strip().splitlines()
            print(
                f"{spec.logical_id} cannot start: " + (reason[0] if reason else type(err).__name__)
            )
            return 1
    return 0


def _route_table(template: Template) -> str:
    lines = []
    for route in template.api.routes:
        auth = route.authorizer or "NONE"
        lines.append(f"  {route.route_key:<32} -> {route.function:<20} auth={auth}")
    return "\n".join(lines)


class PortInUseError(OSError):
    """The address to serve on cannot be taken."""


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on `host`:`port` (0: a free port); `PortInUseError` names it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)  # connections wait in the backlog until a worker accepts them
    except OSError as err:
        sock.close()
        raise PortInUseError(f"cannot listen on {host} port {port}: {err.strerror}") from err
    return sock


def served_url(sock: socket.socket) -> str:
    """The base URL clients reach the edge at (a wildcard address means this machine)."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):  # noqa: S104 - naming it, not binding it
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"  # noqa: S104
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def service_url_is_default(template: Template, overrides: dict[str, str]) -> bool:
    """True when AUTH_SERVICE_URL should name the served address: nobody chose one, in the
    shell or through a parameter override that changes the template's value."""
    if _SERVICE_URL in os.environ:
        return False
    if not overrides:
        return True
    try:
        defaults = load_template(template.path)
    except TemplateError:
        return False  # the template needs overrides to load at all: they are deliberate
    return defaults.environment.get(_SERVICE_URL) == template.environment.get(_SERVICE_URL)


def _stop(signum: int, frame: FrameType | None) -> None:
    # Safe only outside the event loop (before the server starts, while the parent cleans up):
    # while uvicorn serves in this thread, _OneWorkerServer.capture_signals takes SIGHUP.
    raise KeyboardInterrupt  # unwinds to run()'s cleanup, as Ctrl+C does


@contextmanager
def _signals_stop_cleanly() -> Iterator[None]:
    # SIGTERM's default action kills the process on the spot, skipping every cleanup; uvicorn
    # re-raises the signal it caught once its server has stopped, so the same holds after it.
    # SIGHUP (the terminal running `make run` closed) is a stop too, with one worker or many
    # (metrics_workers.WorkerSupervisor): killed by it, the parent left redis-server running.
    stopping = (signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, _stop) for signum in stopping}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _OneWorkerServer(uvicorn.Server):
    """uvicorn's server run in this process (one worker): SIGHUP asks it to exit, as uvicorn's
    own handler does for SIGINT and SIGTERM, instead of raising from the handler.

    A signal handler runs in whatever the main thread is executing, and while uvicorn serves
    that is often a request's task: a KeyboardInterrupt raised there is caught by uvicorn's
    `run_asgi` (`except BaseException`: logged as "Exception in ASGI application", then the
    server serves on; uvicorn 0.55.0 protocols/http/httptools_impl.py:418-425, h11_impl.py
    alike). The stop was lost in 6 of 23 runs signalled just after the edge answered one
    request, and in 6 of 7 with requests in flight (tests/e2e/test_edge_processes.py).
    uvicorn's `handle_exit` only sets `should_exit`, which `main_loop` reads every 0.1 s before
    the graceful `shutdown` (server.py `capture_signals`, `handle_exit`, `main_loop`,
    `on_tick`). With several workers the parent is not exposed: uvicorn's supervisor only
    queues the signals it gets (supervisors/multiprocess.py, `Multiprocess.__init__`).
    """

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's SIGINT/SIGTERM handling, with SIGHUP a stop too while the server runs."""
        with super().capture_signals():
            previous = signal.signal(signal.SIGHUP, self._hang_up)
            try:
                yield
            finally:
                signal.signal(signal.SIGHUP, previous)

    def _hang_up(self, signum: int, frame: FrameType | None) -> None:
        self.should_exit = True


def _serve(args: argparse.Namespace, sock: socket.socket, metrics_directory: Path) -> int:
    config = uvicorn.Config(
        "lucid_edge.server:create_app",
        factory=True,
        workers=args.workers,
        access_log=False,
        server_header=False,
        # The app sends the Date: a function's own, else the edge's (lucid_edge.responses, (9)).
        date_header=False,
        http="lucid_edge.http_protocol:EdgeHttpProtocol",  # its own 400s keep a Date
        # uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1 clients: the source
        # IP must be the socket peer, as API Gateway's is.
        proxy_headers=False,
        log_level="warning",
        # uvicorn's own lines (a malformed request, a worker that died) as JSON, like the rest.
        log_config=logs.uvicorn_log_config("warning"),
        timeout_graceful_shutdown=5,
        # uvicorn's parent pings each worker every 0.5 s and SIGKILLs one that has not answered
        # within this many seconds (0.55.0 supervisors/multiprocess.py `keep_subprocess_alive`,
        # `Process.is_alive`); a new worker answers only once its spawned interpreter has
        # imported uvicorn and started its pong thread (`Process.target`). uvicorn's 5 s was too
        # short for a laptop under load: CI under load 7-9 saw workers killed mid-run ("died
        # (signal 9)"), their requests in flight lost. A worker that is truly hung still goes.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )
    if args.workers > 1:
        supervisor = metrics_workers.WorkerSupervisor(config, [sock], metrics_directory)
        supervisor.run()
        if supervisor.gave_up is not None:
            print(f"lucid serve: {supervisor.gave_up}", file=sys.stderr)
            return 1
        if any(p.exitcode == 3 for p in supervisor.processes):  # uvicorn's STARTUP_FAILURE
            print(
                "lucid serve: a worker could not start: stopped (its ERROR line says why)",
                file=sys.stderr,
            )
            return 1
        return 0
    uvicorn_server = _OneWorkerServer(config)
    uvicorn_server.run(sockets=[sock])
    return 0 if uvicorn_server.started else 1


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; returns the process exit code."""
    with _signals_stop_cleanly():
        stack = ExitStack()
        try:
            return _run(args, stack)
        except KeyboardInterrupt:
            return 0
        finally:
            # A second signal must not cut short the stopping of what the parent started.
            stopping = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
            previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in stopping}
            try:
                stack.close()
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)


def _run(args: argparse.Namespace, stack: ExitStack) -> int:
    try:
        overrides = parse_overrides(args.overrides)
        template = load_template(args.template, overrides)
        _check_handlers(template)
    except TemplateError as err:
        print(f"lucid serve: {err}", file=sys.stderr)
        return 2
    try:
        routes = RouteTable(template.api.routes, template.api.stage)
        metrics.check_path(args.metrics_path, lambda m, p: routes.match(m, p) is not None)
    except metrics.MetricsPathError as err:
        print(f"lucid serve: {err}", file=sys.stderr)
        return 2
    if args.workers < 1 or args.concurrency < 1:
        print("lucid serve: --workers and --concurrency must be at least 1", file=sys.stderr)
        return 2
    try:
        sock = stack.enter_context(listen(args.host, args.port))
    except PortInUseError as err:
        print(f"lucid serve: {err}", file=sys.stderr)
        return 1
    url = served_url(sock)
    stage = os.environ.get("STAGE") or template.environment.get("STAGE")
    if stage == LOCAL_STAGE and service_url_is_default(template, overrides):
        # The sign-in messages name the address served. On another stage they name the
        # request's domain, as the deployed function does (lucid.config, Settings.sign_in_url).
        os.environ[_SERVICE_URL] = url
    has_secret = any(
        os.environ.get(name) or template.environment.get(name)
        for name in ("JWT_SECRET_KEY", "JWT_SECRET_ARN", "JWT_SECRET_PARAM")
    )
    ephemeral_key = stage == LOCAL_STAGE and not has_secret
    if ephemeral_key:
        os.environ["JWT_SECRET_KEY"] = ephemeral_secret()
    # Before the embedded stores start: nothing started, one line. The functions read their
    # store URIs on first use, not at import, so the URIs set below change nothing here.
    try:
        check_functions_start(template, overrides)
    except FunctionStartError as err:
        print(f"lucid serve: {err}", file=sys.stderr)
        return 2
    redis_uri = mongo_uri = None
    if not os.environ.get("REDIS_URI") and not template.environment.get("REDIS_URI"):
        redis = stack.enter_context(start_redis())
        os.environ["REDIS_URI"] = redis_uri = redis.uri
    # One in-memory store served over the wire to every worker; per-process stores would
    # let a user signed in through one worker be unknown to the next.
    if not os.environ.get("MONGODB_URI") and not template.environment.get("MONGODB_URI"):
        mongo = stack.enter_context(start_mongo_server())
        os.environ["MONGODB_URI"] = mongo_uri = mongo.uri
    buckets = server.create_bucket_file(len(template.api.routes))
    stack.callback(buckets.unlink, missing_ok=True)
    slots = server.create_slot_file(server.reservations(template))
    stack.callback(slots.unlink, missing_ok=True)
    os.environ.update(
        {
            server.ENV_TEMPLATE: str(template.path),
            server.ENV_PARAMETERS: json.dumps(overrides),
            server.ENV_CONCURRENCY: str(args.concurrency),
            server.ENV_BUCKETS: str(buckets),
            server.ENV_SLOTS: str(slots),
            server.ENV_RELOAD: "1" if args.reload else "0",
            server.ENV_METRICS_PATH: args.metrics_path,
        }
    )
    if ephemeral_key:
        print(
            "WARNING: JWT_SECRET_KEY is unset: using a random key shared by all workers of this "
            "run; tokens stop working when the edge stops",
            file=sys.stderr,
        )
    # Before any worker starts: prometheus-client picks its mode when a worker imports it.
    metrics_directory = stack.enter_context(metrics_workers.multiprocess_directory())
    # A named stage serves only below /{stage}, as on AWS: the printed URL is the API's base.
    stage_path = "" if template.api.stage == "$default" else f"/{template.api.stage}"
    print(
        f"Lucid edge on {url}{stage_path} (stage {template.api.stage}, {args.workers} "
        f"worker{'s' if args.workers > 1 else ''}, up to {args.concurrency} concurrent "
        "invocations each)"
    )
    if redis_uri is not None:
        print(f"embedded Redis at {redis_uri}")
    if mongo_uri is not None:
        print(f"in-memory MongoDB at {mongo_uri} (NOTHING IS PERSISTED)")
    print(_route_table(template), flush=True)
    if template.deploy_only:
        # Named once here, in the parent: each worker loads the template again, silently.
        print("deploy-only, not emulated locally: " + "; ".join(template.deploy_only), flush=True)
    # `lucid login` and the other commands find this gateway while it runs (lucid_edge.cli_config).
    stack.enter_context(recording_gateway(url + stage_path))
    if args.metrics_path:
        print(f"Prometheus metrics of every worker at {url}{args.metrics_path}")
    print("sign in from another terminal: .venv/bin/lucid keygen, then .venv/bin/lucid login")
    print("from here on every line is JSON, joined per request by its id (README: Logs)")
    sys.stdout.flush()
    return _serve(args, sock, metrics_directory)


if __name__ == "__main__":  # pragma: no cover - run by check_functions_start, in its process
    sys.exit(_start_functions(*sys.argv[1:3]))

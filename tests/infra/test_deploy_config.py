"""Deploying as the README says works as written: samconfig.toml read by SAM CLI's own code gives
every environment all it needs, for deploy and for per-function sync; the make targets and the
README's commands exist; sam local gets an env.json it can use; the LocalStack compose file is
complete.

Nothing here reaches AWS or Docker (neither exists on these machines): SAM CLI itself (the copy
`make test` installs in .venv-sam) reads the configuration and accepts the local commands up to
the point where it needs a container runtime.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from bench import scenarios
from lucid.config import Settings
from lucid.secret_store import REFERENCES
from lucid_edge.cli import build_parser, main
from lucid_edge.cli_sam_env import declared_variables
from lucid_edge.template import load_template
from tests.infra.sam_tools import decode

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
SAM = ROOT / ".venv-sam" / "bin" / "sam"
SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"
DEPLOYED = ("dev", "prod", "localstack")
# What an environment must set itself rather than inherit from the template's defaults.
REQUIRED = {
    "Stage",
    "CorsOrigins",
    "CorsAllowCredentials",
    "ThrottlingBurstLimit",
    "ThrottlingRateLimit",
    "AuthorizerTtlSeconds",
    "BackendParameterPath",
    "AccountAlarms",
}

# Runs in SAM CLI's interpreter: its own samconfig reader and its own --parameter-overrides
# parser, one fresh reader per question (SamConfig.get_all merges into the document it read).
_READ_AS_SAM = """
import json, sys
from pathlib import Path
from samcli.cli.types import CfnParameterOverridesType
from samcli.lib.config.samconfig import SamConfig
answers = {}
for env, command in json.loads(sys.argv[1]):
    table = SamConfig(Path("."), "samconfig.toml").get_all(command.split(), "parameters", env)
    overrides = table.get("parameter_overrides")
    if overrides is not None:
        table["parameter_overrides"] = CfnParameterOverridesType().convert(overrides, None, None)
    answers[env + " " + command] = table
print(json.dumps(answers))
"""


@pytest.fixture(scope="module")
def sam_reads() -> dict[str, dict[str, Any]]:
    """What SAM CLI reads from samconfig.toml for each environment and command."""
    questions = [[env, command] for env in DEPLOYED for command in ("deploy", "sync")]
    questions += [["default", "local start-api"], ["default", "local invoke"]]
    completed = subprocess.run(
        [str(SAM_PYTHON), "-c", _READ_AS_SAM, json.dumps(questions)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    answers: dict[str, dict[str, Any]] = json.loads(completed.stdout)
    return answers


def _template_parameters() -> dict[str, Any]:
    template, _ = decode(str(TEMPLATE))
    assert template is not None
    return dict(template["Parameters"])


@pytest.mark.parametrize("env", DEPLOYED)
@pytest.mark.parametrize("command", ["deploy", "sync"])
def test_every_environment_is_complete_for_deploy_and_per_function_sync(
    sam_reads: dict[str, dict[str, Any]], env: str, command: str
) -> None:
    # GIVEN what `sam deploy --config-env <env>` / `sam sync --config-env <env> --code
    # --resource-id <Function>` read, as SAM CLI reads it
    table = sam_reads[f"{env} {command}"]
    # THEN each has its stack, region, capabilities, a template and every parameter it needs
    assert table["stack_name"] == f"lucid-api-gateway-{env}"
    assert table["region"]
    assert "CAPABILITY_IAM" in table["capabilities"]
    expected_template = (
        ".aws-sam/build/template.yaml" if command == "deploy" else "infra/template.yaml"
    )
    assert table["template_file"] == expected_template  # deploy ships what sam build made
    overrides: dict[str, str] = table["parameter_overrides"]
    assert overrides["Stage"] == env
    assert set(overrides) >= REQUIRED, REQUIRED - set(overrides)
    parameters = _template_parameters()
    assert set(overrides) <= set(parameters), set(overrides) - set(parameters)
    secret_values = {name for name, spec in parameters.items() if spec.get("NoEcho")}
    assert not secret_values & set(overrides), "secrets never live in samconfig.toml"
    if command == "sync":
        assert table["dependency_layer"] is False  # ship the layer sam build makes
    # AND CloudFormation would accept them: the template's Rules and constraints hold
    template = load_template(TEMPLATE, overrides)
    # AND the sign-in URL is the API's own (unset) or a public https:// one: the auth function
    # refuses any other outside the local stage (lucid.config)
    if "AuthServiceUrl" in overrides:
        url = urlsplit(overrides["AuthServiceUrl"])
        assert url.scheme == "https", overrides["AuthServiceUrl"]
        assert url.hostname not in {"127.0.0.1", "localhost"}, url.hostname
    assert (
        env
        == Settings(
            STAGE=env, AUTH_SERVICE_URL=template.environment.get("AUTH_SERVICE_URL", "")
        ).STAGE
    )
    assert template.api.cors is not None
    assert template.api.cors.allow_credentials is (overrides["CorsAllowCredentials"] == "true")


def test_one_stack_per_account_and_region_deploys_the_account_alarms(
    sam_reads: dict[str, dict[str, Any]],
) -> None:
    # GIVEN where each environment deploys: the account of its credentials (the `profile` it
    # names, else the default ones) or, for `localstack`, LocalStack's own; and its Region
    owners: dict[tuple[str, str], set[str]] = {}
    for env in DEPLOYED:
        for command in ("deploy", "sync"):
            table = sam_reads[f"{env} {command}"]
            account = "LocalStack" if env == "localstack" else table.get("profile", "default")
            place = owners.setdefault((account, table["region"]), set())
            if table["parameter_overrides"]["AccountAlarms"] == "true":
                place.add(env)
    # THEN the alarms on an account's own metrics are deployed once in each: dev shares prod's
    # account and Region, and prod owns them (one page per incident, to prod's on-call)
    assert owners == {
        ("default", "us-east-1"): {"prod"},
        ("LocalStack", "us-east-1"): {"localstack"},
    }


def test_sam_local_reads_the_built_template_and_the_generated_env_json(
    sam_reads: dict[str, dict[str, Any]],
) -> None:
    for command in ("local start-api", "local invoke"):
        table = sam_reads[f"default {command}"]
        assert table["template_file"] == ".aws-sam/build/template.yaml", command
        assert table["env_vars"] == ".lucid/env.json", command
        assert table["parameter_overrides"]["Stage"] == "local", command


def test_env_json_overrides_only_what_the_template_declares(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN `lucid env-json` writes the file `make local-api` gives sam local
    output = tmp_path / "lucid" / "env.json"
    assert main(["env-json", "--template", str(TEMPLATE), "--output", str(output)]) == 0
    document = json.loads(output.read_text())
    # THEN it sets the three secret values, each a variable some function declares (sam local
    # ignores the others), Redis and MongoDB on the host, one shared key; readable by you only
    values = document["Parameters"]
    assert set(values) == set(REFERENCES) - {"JWT_PUBLIC_KEY"}  # a public key is no secret
    assert set(values) <= declared_variables(TEMPLATE)
    assert values["REDIS_URI"].startswith("redis://host.docker.internal:")
    assert values["MONGODB_URI"].startswith("mongodb://host.docker.internal:")
    assert len(values["JWT_SECRET_KEY"]) >= 32
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert values["JWT_SECRET_KEY"] not in capsys.readouterr().out


def test_env_json_never_writes_the_key_into_a_file_others_can_read(tmp_path: Path) -> None:
    # GIVEN an env.json left readable by everyone (0644), opened by another user's process,
    # and one that is a symlink to a shared, world-readable file
    world_readable = tmp_path / "old" / "env.json"
    world_readable.parent.mkdir()
    world_readable.write_text("{}\n")
    world_readable.chmod(0o644)
    shared = tmp_path / "shared.json"
    shared.write_text("shared\n")
    shared.chmod(0o644)
    linked = tmp_path / "linked" / "env.json"
    linked.parent.mkdir()
    linked.symlink_to(shared)
    with world_readable.open() as opened_by_another:
        # WHEN `lucid env-json` writes both
        for output in (world_readable, linked):
            assert main(["env-json", "--template", str(TEMPLATE), "--output", str(output)]) == 0
        # THEN what the other process holds never received the new key
        assert opened_by_another.read() == "{}\n"
    # AND the symlink's target is untouched; each output is a new private regular file
    assert shared.read_text() == "shared\n"
    assert stat.S_IMODE(shared.stat().st_mode) == 0o644
    for output in (world_readable, linked):
        assert not output.is_symlink()
        assert stat.S_IMODE(output.stat().st_mode) == 0o600
        assert "JWT_SECRET_KEY" in json.loads(output.read_text())["Parameters"]


def test_env_json_on_an_unreadable_template_exits_2(tmp_path: Path) -> None:
    assert main(["env-json", "--template", str(tmp_path / "none.yaml")]) == 2


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, flags=re.MULTILINE))


def _readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.DOTALL)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            command = line.split("#", 1)[0].strip()
            if command:
                commands.append(command)
    return commands


def test_every_command_of_the_readme_exists() -> None:
    # GIVEN every shell command of the README's code blocks
    targets = _make_targets()
    problems = []
    for command in _readme_commands():
        words = shlex.split(command)
        for index, word in enumerate(words):
            # THEN each `make X` is a target, each program under .venv* is one make installs
            target = words[index + 1] if word == "make" and index + 1 < len(words) else "="
            if "=" not in target and target not in targets:
                problems.append(f"{command}: no make target {target!r}")
            if word.startswith((".venv/bin/", ".venv-sam/bin/")) and not (ROOT / word).exists():
                problems.append(f"{command}: {word} does not exist after make")
    assert problems == []
    assert {"deploy", "sync", "local-api", "invoke", "sam-build", "run", "test"} <= targets


def test_every_benchmark_the_readme_names_exists() -> None:
    # GIVEN the README's list of `make bench` scenarios and the BENCH_* variables it names
    readme = (ROOT / "README.md").read_text()
    listed = re.search(r"\(the scenarios: ((?:`\w+`,? ?)+)\)", " ".join(readme.split()))
    assert listed is not None
    named = re.findall(r"`(\w+)`", listed.group(1))
    variables = set(re.findall(r"\bBENCH_[A-Z_]+\b", readme))
    # THEN the scenarios are exactly the bench's, and each variable is one the bench reads
    assert named == list(scenarios.ALL)
    bench_code = "".join(path.read_text() for path in (ROOT / "bench").glob("*.py"))
    read = set(re.findall(r"environ\.get\(\s*\"(BENCH_[A-Z_]+)\"", bench_code))
    assert len(variables) >= 5
    assert variables <= read


def _readme_lucid_commands() -> list[list[str]]:
    """Every `lucid ...` the README shows, as words after `lucid`: in its code blocks and in its
    inline code (joined across line breaks), `[...]` groups and `a|b` alternatives spelled out."""
    readme = (ROOT / "README.md").read_text()
    inline = re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", readme, flags=re.DOTALL))
    commands = []
    for text in [*_readme_commands(), *(" ".join(span.split()) for span in inline)]:
        text = text.removeprefix(".venv/bin/")
        if not text.startswith("lucid "):
            continue
        words = shlex.split(re.sub(r"[\[\]]", "", text))[1:]
        choices = next((word for word in words if "|" in word), None)
        if choices is None:
            commands.append(words)
            continue
        at = words.index(choices)
        commands += [[*words[:at], choice, *words[at + 1 :]] for choice in choices.split("|")]
    return commands


def _lucid_refuses(words: list[str], capsys: pytest.CaptureFixture[str]) -> str | None:
    try:
        build_parser().parse_args(words)
    except SystemExit:
        return capsys.readouterr().err.strip().splitlines()[-1]
    return None


def test_every_lucid_command_of_the_readme_is_accepted_by_lucid(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN every `lucid` command line the README shows (e.g. `lucid routes --write`)
    commands = _readme_lucid_commands()
    assert len(commands) > 20
    refused = []
    for words in commands:
        # WHEN the real command line parses it (parsing runs nothing); what prose names alone,
        # `lucid call` or `lucid serve --port`, may lack the value it takes
        error = _lucid_refuses(words, capsys)
        if error is not None and error.endswith(
            ("required: method, path", "expected one argument")
        ):
            completed = [*words, "GET", "/users/me"] if words == ["call"] else [*words, "1"]
            error = _lucid_refuses(completed, capsys)
        if error is not None:
            refused.append(f"lucid {shlex.join(words)}: {error}")
    # THEN each names a subcommand and options that exist
    assert refused == []


def test_every_make_target_names_the_projects_samconfig() -> None:
    # GIVEN the SAM commands each make target runs (make -n prints the recipes, runs none)
    completed = subprocess.run(
        ["make", "-n", "deploy", "sync", "local-api", "invoke", "FUNCTION=UsersFunction"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    commands = [line for line in completed.stdout.splitlines() if ".venv-sam/bin/sam " in line]
    subcommands = {line.split(".venv-sam/bin/sam ")[1].split(" --")[0] for line in commands}
    assert {"validate", "build", "deploy", "sync", "local start-api"} <= subcommands
    assert any(name.startswith("local invoke") for name in subcommands)
    # THEN every one reads the root samconfig.toml by its absolute path, whatever its template
    # option: one rule for all, rather than sam-cli's cwd / beside-the-template lookup
    config = f"--config-file {ROOT / 'samconfig.toml'}"
    assert [line for line in commands if config not in line] == []


def test_the_deploy_section_never_overrides_samconfig_on_the_command_line() -> None:
    commands = [c for c in _readme_commands() if re.search(r"\bsam (deploy|sync)\b", c)]
    assert all("--parameter-overrides" not in command for command in commands)


def test_no_readme_aws_command_passes_a_url_as_an_argument_value() -> None:
    # GIVEN every AWS CLI command of the README's code blocks
    commands = [c for c in _readme_commands() if c.startswith("aws ")]
    assert any("put-parameter" in command for command in commands)
    # THEN none gives an argument a value starting with http:// or https://: AWS CLI v1 (what
    # `pip install awscli` installs) GETs such a URL and sends the page it answers in its place,
    # or fails if the URL does not answer (awscli/paramfile.py, `cli_follow_urlparam`, default
    # true; v2 removed it). A URL goes in through --cli-input-json, read as JSON by both.
    assert [c for c in commands if re.search(r"\s--[a-z-]+[ =]['\"]?https?://", c)] == []


@pytest.mark.parametrize(
    "args",
    [
        ["local", "invoke", "UsersFunction", "--event", "events/users.json"],
        ["local", "start-api"],
    ],
    ids=["make invoke", "make local-api"],
)
def test_sam_local_accepts_the_make_targets_commands_up_to_the_container_runtime(
    args: list[str], tmp_path: Path
) -> None:
    # GIVEN the command the make target runs, on a built template, with a generated env.json
    built = tmp_path / "build"
    built.mkdir()
    (built / "template.yaml").write_text(TEMPLATE.read_text())  # what sam local needs: its shape
    env_json = tmp_path / "env.json"
    assert main(["env-json", "--output", str(env_json)]) == 0
    command = [
        str(SAM),
        *args,
        "--template",
        str(built / "template.yaml"),
        "--env-vars",
        str(env_json),
        "--add-host",
        "host.docker.internal:host-gateway",
    ]
    completed = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"},
    )
    # THEN SAM CLI takes every option and file, and stops only for want of Docker
    assert completed.returncode == 1, completed.stderr
    assert "requires a container runtime" in completed.stderr, completed.stderr[-2000:]


def test_localstack_compose_says_what_http_apis_need_and_waits_for_health() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.localstack.yml").read_text())
    services = compose["services"]
    assert {"localstack", "redis", "mongo"} <= set(services)
    localstack = services["localstack"]
    # API Gateway v2 (HTTP APIs) is in LocalStack's Pro image only, which needs an auth token
    assert localstack["image"].startswith("localstack/localstack-pro:")
    assert localstack["environment"]["LOCALSTACK_AUTH_TOKEN"].startswith(
        "${LOCALSTACK_AUTH_TOKEN:?"
    )
    enabled = set(localstack["environment"]["SERVICES"].split(","))
    assert {"apigateway", "lambda", "cloudformation", "secretsmanager", "ssm", "iam"} <= enabled
    for name, service in services.items():
        assert ":" in service["image"], f"{name} image must be pinned to a tag"
        assert service["healthcheck"]["test"], f"{name} needs a healthcheck"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} must only listen on loopback"
    assert "/_localstack/health" in " ".join(localstack["healthcheck"]["test"])
    for dependency in ("redis", "mongo"):
        assert localstack["depends_on"][dependency] == {"condition": "service_healthy"}


# The LocalStack service each of the template's resource types is created through (SAM's types
# through what the transform makes of them). A type missing here fails the test below: say
# which service it needs.
_LOCALSTACK_SERVICE = {
    "AWS::Serverless::Function": "lambda",
    "AWS::Serverless::LayerVersion": "lambda",
    "AWS::Serverless::HttpApi": "apigateway",
    "AWS::IAM::Role": "iam",
    "AWS::IAM::ManagedPolicy": "iam",
    "AWS::Logs::LogGroup": "logs",
    "AWS::Logs::MetricFilter": "logs",
    "AWS::CloudWatch::Alarm": "cloudwatch",
    "AWS::CloudWatch::Dashboard": "cloudwatch",
}


def test_localstack_enables_every_service_the_stack_creates_resources_in() -> None:
    # GIVEN the services docker-compose.localstack.yml lets LocalStack load: with SERVICES set,
    # it loads only those (and their mandatory dependencies), STRICT_SERVICE_LOADING being on
    # by default (localstack/localstack, localstack-core/localstack/utils/bootstrap.py
    # get_enabled_apis; config.py STRICT_SERVICE_LOADING = is_env_not_false(...)); a call to any
    # other service fails as not implemented
    compose = yaml.safe_load((ROOT / "docker-compose.localstack.yml").read_text())
    environment = compose["services"]["localstack"]["environment"]
    enabled = set(environment["SERVICES"].split(","))
    assert "STRICT_SERVICE_LOADING" not in environment
    # WHEN `samlocal deploy --config-env localstack` creates the template's resources
    template, _ = decode(str(TEMPLATE))
    assert template is not None
    kinds = {resource["Type"] for resource in template["Resources"].values()}
    unknown = kinds - set(_LOCALSTACK_SERVICE)
    assert unknown == set(), f"say which LocalStack service creates {unknown}"
    needed = {_LOCALSTACK_SERVICE[kind] for kind in kinds} | {"cloudformation", "s3", "sts"}
    # THEN LocalStack serves each service they are created through (and the functions' reads)
    assert needed | {"ssm", "secretsmanager", "kms"} <= enabled

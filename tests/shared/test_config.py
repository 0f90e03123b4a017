"""Settings refuse what would be unsafe in a deployment and read the seed's variables."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from lucid.auth.revocation import LEEWAY_SECONDS
from lucid.config import (
    MAX_JWT_LEEWAY_SECONDS,
    Settings,
    SettingsError,
    default_of,
    ephemeral_secret,
    get_settings,
    with_local_signing_key,
)
from lucid.log_masking import MASK, MaskSecrets
from lucid_edge.template import load_template

STRONG_KEY = "k" * 32


def test_seed_defaults_hold_when_nothing_is_configured() -> None:
    settings = Settings(JWT_SECRET_KEY=STRONG_KEY)
    assert settings.RATE_LIMIT_PUBLIC == 100
    assert settings.RATE_LIMIT_AUTHENTICATED == 1000
    assert settings.RATE_LIMIT_ADMIN == 10000
    assert settings.TOKEN_EXPIRE_MINUTES == 15
    assert settings.JWT_ALGORITHM == "HS256"
    assert settings.is_local


def test_comma_separated_lists_and_empty_strings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ADMIN_ADDRESSES", "TAdminOne, TAdminTwo,")
    monkeypatch.setenv("BLOCKCHAIN_SERVICE_URL", "")
    settings = Settings()
    assert settings.ADMIN_ADDRESSES == ["TAdminOne", "TAdminTwo"]
    assert settings.BLOCKCHAIN_SERVICE_URL is None
    monkeypatch.setenv("ADMIN_ADDRESSES", "")
    assert Settings().ADMIN_ADDRESSES == []


@pytest.mark.parametrize("placeholder", ["changeme", "SECRET", "your-secret-key"])
def test_placeholder_secrets_are_refused_on_every_stage(placeholder: str) -> None:
    with pytest.raises(SettingsError, match="placeholder"):
        Settings(JWT_SECRET_KEY=placeholder)


def test_outside_local_a_function_that_handles_no_token_needs_no_key() -> None:
    # Only sign-in and the authorizer get a key (infra/needs.yaml); they refuse to start
    # without one (tests/shared/auth/test_keys.py).
    assert Settings(STAGE="prod", JWT_SECRET_KEY=None).JWT_SECRET_KEY is None


def test_outside_local_a_short_hs256_key_is_refused() -> None:
    with pytest.raises(SettingsError, match="32 bytes"):
        Settings(STAGE="prod", JWT_SECRET_KEY="short-but-not-a-placeholder")
    # the local stage takes it (tokens there never leave the machine)
    local = Settings(STAGE="local", JWT_SECRET_KEY="short-but-not-a-placeholder").JWT_SECRET_KEY
    assert local is not None
    assert local.get_secret_value() == "short-but-not-a-placeholder"


@pytest.mark.parametrize(("algorithm", "least"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_outside_local_an_hmac_key_shorter_than_its_hash_is_refused(
    algorithm: str, least: int
) -> None:
    # RFC 7518 section 3.2: a key of the hash's size or larger MUST be used with HMAC-SHA-*.
    # GIVEN a key one byte short of the algorithm's hash, on a deployed stage THEN refused
    with pytest.raises(SettingsError, match=f"at least {least} bytes for {algorithm}"):
        Settings(STAGE="prod", JWT_ALGORITHM=algorithm, JWT_SECRET_KEY="k" * (least - 1))
    # AND one of exactly that size is enough
    Settings(STAGE="prod", JWT_ALGORITHM=algorithm, JWT_SECRET_KEY="k" * least)


def test_outside_local_a_secret_reference_is_enough() -> None:
    settings = Settings(
        STAGE="prod", JWT_SECRET_KEY=None, JWT_SECRET_ARN="arn:aws:secretsmanager:x"
    )
    assert not settings.is_local


def test_secrets_do_not_show_in_the_settings_repr() -> None:
    settings = Settings(JWT_SECRET_KEY=STRONG_KEY, MONGODB_URI="mongodb://u:pw@db/x")
    assert STRONG_KEY not in repr(settings)
    assert "pw@" not in repr(settings)
    # A set secret shows as set, masked; an unset one as None
    assert "JWT_SECRET_KEY=Secret('**********')" in repr(settings)
    assert "JWT_PREVIOUS_SECRET_KEY=None" in repr(settings)
    # ...and a secret formatted into a message or a log line is the mask too
    assert f"uri={settings.MONGODB_URI}" == "uri=**********"


def test_settings_compare_and_show_as_a_dataclass_would() -> None:
    # GIVEN two settings built from the same values, and a third from others
    # (Settings writes its __repr__/__eq__/__hash__ itself instead of the dataclass machinery)
    first, same, other = Settings(STAGE="a"), Settings(STAGE="a"), Settings(STAGE="b")
    # THEN they compare by their fields, and against nothing else
    assert first == same
    assert first != other
    assert first.__eq__("a") is NotImplemented
    # ...show every field by name, in order
    shown = ", ".join(f"{f.name}={getattr(first, f.name)!r}" for f in dataclasses.fields(first))
    assert repr(first) == f"Settings({shown})"
    # ...and hash as a frozen dataclass's (its list field makes that a TypeError)
    with pytest.raises(TypeError, match="unhashable type: 'list'"):
        hash(first)


def test_ephemeral_secrets_are_long_and_distinct() -> None:
    first, second = ephemeral_secret(), ephemeral_secret()
    assert first != second
    assert len(first.encode()) >= 32


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TOKEN_EXPIRE_MINUTES", "0", "TOKEN_EXPIRE_MINUTES: must be at least 1 (got 0)"),
        ("TOKEN_EXPIRE_MINUTES", "ten", "TOKEN_EXPIRE_MINUTES: must be a whole number (got 'ten')"),
        ("REDIS_TIMEOUT_MS", "1001", "REDIS_TIMEOUT_MS: must be at most 1000 (got 1001)"),
        ("BREAKER_FAILURE_RATE", "0", "BREAKER_FAILURE_RATE: must be greater than 0 (got 0.0)"),
        ("PROXY_READ_TIMEOUT_SECONDS", "nan", "must be a finite number (got 'nan')"),
        ("RATE_LIMIT_ENABLED", "maybe", "RATE_LIMIT_ENABLED: must be true or false (got 'maybe')"),
        ("LOG_LEVEL", "info", "LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        (
            "JWT_ALGORITHM",
            "none",
            "JWT_ALGORITHM: must be one of HS256, HS384, HS512, RS256, ES256",
        ),
        ("POWERTOOLS_METRICS_NAMESPACE", "x" * 256, "must be at most 255 characters long"),
        ("STAGE", "", "STAGE: is empty: give it a value or leave the variable unset"),
    ],
)
def test_a_bad_value_in_the_environment_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    # GIVEN a deployment whose environment sets one variable to something unusable
    monkeypatch.setenv(variable, value)
    # WHEN the settings are read THEN they are refused with what is wrong and where
    with pytest.raises(SettingsError) as refused:
        Settings(JWT_SECRET_KEY=STRONG_KEY)
    assert message in str(refused.value)


def test_every_bad_value_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXY_RETRIES", "9")
    monkeypatch.setenv("RATE_LIMIT_FAIL_MODE", "sideways")
    with pytest.raises(SettingsError) as refused:
        Settings()
    assert str(refused.value) == (
        "2 invalid settings: PROXY_RETRIES: must be at most 5 (got 9); "
        "RATE_LIMIT_FAIL_MODE: must be one of open, closed (got 'sideways')"
    )
    assert [problem.split(":")[0] for problem in refused.value.problems] == [
        "PROXY_RETRIES",
        "RATE_LIMIT_FAIL_MODE",
    ]


def test_environment_strings_become_typed_values(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN what a template sets: every value a string
    for variable, value in {
        "RATE_LIMIT_ENABLED": "False",
        "RATE_LIMIT_PUBLIC": " 250 ",
        "BREAKER_FAILURE_RATE": "0.25",
        "PROXY_CONNECT_TIMEOUT_SECONDS": "3",
        "REDIS_URI": "redis://cache:6379/0",
        "JWT_PREVIOUS_KEY_ID": "",
    }.items():
        monkeypatch.setenv(variable, value)
    settings = Settings(RATE_LIMIT_ADMIN=5000.0)
    # THEN each setting has its type; "" is an optional setting left unset
    assert settings.RATE_LIMIT_ENABLED is False
    assert (settings.RATE_LIMIT_PUBLIC, settings.RATE_LIMIT_ADMIN) == (250, 5000)
    assert (settings.BREAKER_FAILURE_RATE, settings.PROXY_CONNECT_TIMEOUT_SECONDS) == (0.25, 3.0)
    assert settings.REDIS_URI is not None
    assert settings.REDIS_URI.get_secret_value() == "redis://cache:6379/0"
    assert settings.JWT_PREVIOUS_KEY_ID is None
    # ...and values passed in code win over the environment
    assert Settings(RATE_LIMIT_ENABLED="yes").RATE_LIMIT_ENABLED is True


def test_a_secret_of_the_wrong_type_is_refused_without_showing_it() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings(MONGODB_URI=b"mongodb://u:pw@db/x")
    assert str(refused.value) == "1 invalid setting: MONGODB_URI: must be a string"


def test_a_setting_name_that_does_not_exist_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="RATE_LIMT_PUBLIC"):
        Settings(RATE_LIMT_PUBLIC=5)


def test_settings_are_frozen() -> None:
    settings = Settings(JWT_SECRET_KEY=STRONG_KEY)
    with pytest.raises(AttributeError):
        settings.STAGE = "prod"  # type: ignore[misc]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",  # the old template default
        "https://127.0.0.1:8443",
        "https://localhost",
        "https://api.localhost",
        "https://[::1]:8080",
        "https://0.0.0.0",
        "http://api.lucid.example",  # not TLS
        "api.lucid.example",  # no scheme
    ],
)
def test_outside_local_a_sign_in_url_that_binds_no_public_site_is_refused(url: str) -> None:
    # GIVEN a deployed stage whose AUTH_SERVICE_URL is loopback, localhost or not https
    # WHEN its settings are built THEN they are refused, naming the variable
    with pytest.raises(SettingsError, match=r"^1 invalid setting: AUTH_SERVICE_URL must") as error:
        Settings(STAGE="dev", AUTH_SERVICE_URL=url)
    assert "leave it unset for the API's own URL" in str(error.value)


def test_the_sign_in_url_is_the_configured_one_else_the_apis_own() -> None:
    custom = Settings(STAGE="prod", AUTH_SERVICE_URL="https://api.lucid.example")
    assert custom.sign_in_url("https://abc.execute-api.us-east-1.amazonaws.com") == (
        "https://api.lucid.example"
    )
    # unset (the template's "" default) on a deployed stage: the URL the request came through
    deployed = Settings(STAGE="prod", AUTH_SERVICE_URL="")
    api = "https://abc.execute-api.us-east-1.amazonaws.com/v1"
    assert deployed.sign_in_url(api) == api
    with pytest.raises(RuntimeError, match="AUTH_SERVICE_URL is unset"):
        deployed.sign_in_url(None)
    # the local stage keeps its loopback default and takes any URL it is given
    assert Settings(STAGE="local").sign_in_url(api) == "http://127.0.0.1:8080"
    assert Settings(STAGE="local", AUTH_SERVICE_URL="http://127.0.0.1:3001").sign_in_url(None) == (
        "http://127.0.0.1:3001"
    )


def test_the_jwt_leeway_is_bounded_by_the_one_limit_wherever_it_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the largest leeway the settings accept
    assert Settings(JWT_LEEWAY_SECONDS=MAX_JWT_LEEWAY_SECONDS).JWT_LEEWAY_SECONDS == 30
    # WHEN one second more is given as a value, through dataclasses.replace or the environment
    # THEN each is refused, so a token check can use the setting as it is
    too_long = MAX_JWT_LEEWAY_SECONDS + 1
    with pytest.raises(SettingsError, match="JWT_LEEWAY_SECONDS: must be at most 30"):
        Settings(JWT_LEEWAY_SECONDS=too_long)
    with pytest.raises(SettingsError, match="JWT_LEEWAY_SECONDS"):
        dataclasses.replace(Settings(), JWT_LEEWAY_SECONDS=too_long)
    monkeypatch.setenv("JWT_LEEWAY_SECONDS", str(too_long))
    with pytest.raises(SettingsError, match="JWT_LEEWAY_SECONDS"):
        Settings()
    # AND revocations are kept for that same bound past a token's lifetime
    assert LEEWAY_SECONDS == MAX_JWT_LEEWAY_SECONDS


def _readme_settings_rows() -> list[tuple[list[str], str]]:
    """The README's Configuration table: each row's variables (`RATE_LIMIT_PUBLIC` / `_ADMIN`
    spelled out, `BREAKER_*` expanded) and its default column."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    fields = [field.name for field in dataclasses.fields(Settings)]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        names = re.findall(r"`([A-Z_][A-Z0-9_]*\*?)`", cells[0]) if line.startswith("| `") else []
        spelled: list[str] = []
        for name in names:
            if name.endswith("*"):
                spelled += [field for field in fields if field.startswith(name[:-1])]
            else:
                spelled.append(spelled[0].rsplit("_", 1)[0] + name if name[0] == "_" else name)
        if spelled:
            rows.append((spelled, cells[1]))
    return rows


def _as_written(value: object) -> str:
    if value is None:
        return "unset"
    if value == []:
        return "empty"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_the_readme_configuration_table_names_every_setting_with_its_default() -> None:
    # GIVEN the settings the functions read and the README's table of them
    defaults = {field.name: default_of(field) for field in dataclasses.fields(Settings)}
    rows = _readme_settings_rows()
    named = [name for names, _ in rows for name in names]
    # THEN every setting is in the table and the table names no setting that does not exist
    assert sorted(set(defaults) - set(named)) == []
    assert sorted(set(named) - set(defaults)) == []
    # AND where a row gives one default per variable, each is the code's
    compared = 0
    for names, written in rows:
        values = [v.strip(" `") for v in re.split(" / " if " / " in written else ", ", written)]
        values[-1] = values[-1].removesuffix(" per minute")
        if len(values) == len(names) and not any(" " in value for value in values):
            assert [_as_written(defaults[name]) for name in names] == values, names
            compared += len(names)
    assert compared >= 20


# A default stated in the README's prose: "`IDEMPOTENCY_TTL_SECONDS` (24 h)",
# "`AuthorizerTtlSeconds` (60 s)", "`RATE_LIMIT_LEASE_MAX`, 32", "`AlarmLatencyP99Ms` (1,000)",
# "`CorsAllowCredentials` (default `true`)": a setting or a template parameter, its value, its unit.
_PROSE_DEFAULT = re.compile(
    r"`([A-Za-z]\w*)`(?: \(|, )(?:default )?`?(\d[\d,]*|true|false)`?(?: (s|h|minutes|days)\b)?"
)
_IN_SECONDS = {None: 1, "s": 1, "minutes": 60, "h": 3600, "days": 86400}


def test_every_default_the_readme_states_in_prose_is_the_codes() -> None:
    # GIVEN the settings' defaults and the template parameters' (what a deployed stage gets)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    prose = " ".join(re.sub(r"```.*?```", "", readme, flags=re.DOTALL).split())
    code = {field.name: default_of(field) for field in dataclasses.fields(Settings)}
    template = load_template(Path(__file__).resolve().parents[2] / "infra" / "template.yaml")
    code |= dict(template.parameters)
    # WHEN the README names one of them followed by a value
    stated = [m.groups() for m in _PROSE_DEFAULT.finditer(prose) if m.group(1) in code]
    assert len(stated) >= 15
    # THEN that value, in the unit the name says (a *_SECONDS setting stated in hours), is it
    wrong = []
    for name, value, unit in stated:
        number = value.replace(",", "")
        if number.isdigit():
            in_seconds = name.upper().endswith("_SECONDS") or name.endswith("Seconds")
            written: object = int(number) * (_IN_SECONDS[unit] if in_seconds else 1)
        else:
            written = value
        if _as_written(code[name]) != str(written):
            wrong.append(f"{name}: README {value} {unit or ''}, code {code[name]!r}")
    assert wrong == []


# Each bounded setting's lowest and highest accepted value (None: no upper bound), as designed
# (the comments beside the fields, the README's Configuration section): one below the lowest and
# one above the highest stop the function at its cold start with a message naming the variable.
WHOLE_NUMBER_BOUNDS: dict[str, tuple[int, int | None]] = {
    "JWT_LEEWAY_SECONDS": (0, 30),
    "TOKEN_EXPIRE_MINUTES": (1, 1440),
    "REFRESH_TOKEN_EXPIRE_DAYS": (1, 90),
    "SIGNIN_CHALLENGE_TTL_SECONDS": (30, 3600),
    "MONGODB_TIMEOUT_MS": (50, 30000),
    "REDIS_TIMEOUT_MS": (1, 1000),
    "REDIS_CONNECT_TIMEOUT_MS": (1, 5000),
    "REDIS_MAX_CONNECTIONS": (1, None),
    "BACKEND_DISCOVERY_MAX_AGE_SECONDS": (1, 3600),
    "PROXY_RETRIES": (0, 5),
    "BREAKER_WINDOW_SECONDS": (1, None),
    "BREAKER_MIN_CALLS": (1, None),
    "BREAKER_OPEN_SECONDS": (1, None),
    "BREAKER_HALF_OPEN_CALLS": (1, None),
    "BREAKER_SYNC_MS": (0, 10000),
    "RATE_LIMIT_PUBLIC": (1, None),
    "RATE_LIMIT_AUTHENTICATED": (1, None),
    "RATE_LIMIT_ADMIN": (1, None),
    "RATE_LIMIT_WINDOW_SECONDS": (1, 3600),
    "RATE_LIMIT_SIGNIN_PER_IP": (1, None),
    "RATE_LIMIT_SIGNIN_PER_ADDRESS": (1, None),
    "RATE_LIMIT_LEASE_MAX": (0, 1000),
    "IDEMPOTENCY_TTL_SECONDS": (60, 7 * 24 * 3600),
}
# Numbers above an exclusive lower bound, up to an inclusive upper one.
NUMBER_BOUNDS: dict[str, tuple[float, float]] = {
    "PROXY_CONNECT_TIMEOUT_SECONDS": (0, 10),
    "PROXY_READ_TIMEOUT_SECONDS": (0, 28),
    "BREAKER_FAILURE_RATE": (0, 1),
}


def test_every_bounded_setting_takes_its_limits_and_refuses_one_beyond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN every setting with a bound (a bound added to a field must be added here too)
    bounded = {
        field.name
        for field in dataclasses.fields(Settings)
        if default_of(field).__class__ in (int, float)
    }
    assert bounded == set(WHOLE_NUMBER_BOUNDS) | set(NUMBER_BOUNDS)
    for name, (lowest, highest) in WHOLE_NUMBER_BOUNDS.items():
        # WHEN a deployment sets it to either limit THEN the function starts with that value
        for accepted in (lowest, highest) if highest is not None else (lowest, 10**9):
            monkeypatch.setenv(name, str(accepted))
            assert getattr(Settings(), name) == accepted, name
        # WHEN it sets one beyond THEN the settings are refused, naming the variable and limit
        monkeypatch.setenv(name, str(lowest - 1))
        with pytest.raises(SettingsError, match=rf"^1 invalid setting: {name}: must be at least "):
            Settings()
        if highest is not None:
            monkeypatch.setenv(name, str(highest + 1))
            with pytest.raises(
                SettingsError, match=rf"^1 invalid setting: {name}: must be at most "
            ):
                Settings()
        monkeypatch.delenv(name)
    for name, (above, top) in NUMBER_BOUNDS.items():
        for taken in (above + 0.001, top):
            monkeypatch.setenv(name, str(taken))
            assert getattr(Settings(), name) == taken, name
        monkeypatch.setenv(name, str(above))
        with pytest.raises(SettingsError, match=rf"^1 invalid setting: {name}: must be greater "):
            Settings()
        monkeypatch.setenv(name, str(top + 0.001))
        with pytest.raises(SettingsError, match=rf"^1 invalid setting: {name}: must be at most "):
            Settings()
        monkeypatch.delenv(name)


def test_a_name_setting_takes_one_character_and_an_empty_one_is_not_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the shortest names a deployment can give (the template's "" means "not configured")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "L")
    monkeypatch.setenv("JWT_ISSUER", "i")
    monkeypatch.setenv("JWT_AUDIENCE", "")
    settings = Settings(STAGE="dev", JWT_SECRET_KEY=STRONG_KEY)
    # THEN one character is a name, and an empty audience is the stage's default
    assert (settings.POWERTOOLS_METRICS_NAMESPACE, settings.JWT_ISSUER) == ("L", "i")
    assert settings.JWT_AUDIENCE == "lucid/dev"
    # AND an empty namespace, which has a default rather than none, stops the start
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "")
    with pytest.raises(SettingsError, match=r"^1 invalid setting: POWERTOOLS_METRICS_NAMESP"):
        Settings()


def test_the_readme_rows_written_in_words_give_the_codes_defaults() -> None:
    # GIVEN the rows the table test above cannot compare value by value
    defaults = {field.name: default_of(field) for field in dataclasses.fields(Settings)}
    rows = dict((tuple(names), written) for names, written in _readme_settings_rows())
    # THEN "unset" means no default, for every variable of the row
    for names, written in rows.items():
        if written == "unset":
            assert [defaults[name] for name in names] == [None] * len(names), names
    # AND the breaker's row gives each of its numbers in the order of its variables
    breaker = next(names for names in rows if names[0] == "BREAKER_WINDOW_SECONDS")
    numbers = [float(number) for number in re.findall(r"\d+(?:\.\d+)?", rows[breaker])]
    as_written = {"BREAKER_FAILURE_RATE": 100}  # "50 %"
    code = [float(str(defaults[name])) * as_written.get(name, 1) for name in breaker]
    assert numbers == code


@pytest.mark.parametrize(
    ("stage", "reference", "random_key"),
    [
        ("local", {}, True),  # nothing configured on a developer's machine: a key per process
        ("local", {"JWT_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:k"}, False),
        ("local", {"JWT_SECRET_PARAM": "/lucid/jwt"}, False),
        ("dev", {}, False),  # a deployed stage never makes one up: lucid.auth.keys refuses
        ("dev", {"JWT_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:k"}, False),
    ],
)
def test_only_the_local_stage_without_any_key_gets_a_random_one(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    stage: str,
    reference: dict[str, str],
    random_key: bool,
) -> None:
    # GIVEN a process whose environment names no key itself
    for name in ("JWT_SECRET_KEY", "JWT_SECRET_ARN", "JWT_SECRET_PARAM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STAGE", stage)
    for name, value in reference.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        # WHEN its settings are read, then what signs tokens asks for its key
        settings = get_settings()
        read = [r for r in caplog.records if "using a random key" in r.getMessage()]
        key = with_local_signing_key(settings).JWT_SECRET_KEY
    finally:
        get_settings.cache_clear()
    # THEN reading the settings makes up no key and says nothing (`lucid db init` and
    # `lucid openapi` read them and sign no token)
    assert settings.JWT_SECRET_KEY is None
    assert read == []
    # AND only the local stage with no key and no reference to one gets a random key, said so
    assert (key is not None) is random_key
    warned = [r for r in caplog.records if "using a random key" in r.getMessage()]
    assert len(warned) == int(random_key)
    # AND a random key is masked in a library's line, as a configured one is
    if key is not None:
        assert MaskSecrets().mask(f"key={key.get_secret_value()}") == f"key={MASK}"


TRUE_WORDS = ("1", "on", "t", "true", "y", "yes")
FALSE_WORDS = ("0", "off", "f", "false", "n", "no")


@pytest.mark.parametrize(
    ("word", "meaning"), [(w, True) for w in TRUE_WORDS] + [(w, False) for w in FALSE_WORDS]
)
def test_each_boolean_word_is_read_in_any_case_and_spacing(
    monkeypatch: pytest.MonkeyPatch, word: str, meaning: bool
) -> None:
    # GIVEN a deployment writing a switch as any of the words the settings document
    for written in (word, word.upper(), f" {word.title()} "):
        monkeypatch.setenv("RATE_LIMIT_ENABLED", written)
        # THEN it is read as what it means, never as the opposite or refused
        assert Settings().RATE_LIMIT_ENABLED is meaning, written


MUST_BE_BOOLEAN, MUST_BE_NUMBER = "RATE_LIMIT_ENABLED", "BREAKER_FAILURE_RATE"


@pytest.mark.parametrize(
    ("variable", "written", "must_be"),
    [(MUST_BE_BOOLEAN, word, "true or false") for word in ("2", "tru", "yess", "of", "nope", "-1")]
    + [(MUST_BE_NUMBER, word, "a finite number") for word in ("fast", "1,5", "0x10", "inf")],
)
def test_a_value_not_of_its_settings_kind_is_refused_saying_what_it_must_be(
    monkeypatch: pytest.MonkeyPatch, variable: str, written: str, must_be: str
) -> None:
    monkeypatch.setenv(variable, written)
    with pytest.raises(SettingsError) as refused:
        Settings()
    assert str(refused.value) == (
        f"1 invalid setting: {variable}: must be {must_be} (got {written!r})"
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("x" * 58, "'" + "x" * 58 + "'"),  # 60 characters quoted: shown whole
        ("x" * 59, "'" + "x" * 56 + "..."),  # one more: cut to 60 characters
        ("x" * 5000, "'" + "x" * 56 + "..."),
    ],
)
def test_a_refused_value_is_shown_in_at_most_60_characters(
    monkeypatch: pytest.MonkeyPatch, value: str, shown: str
) -> None:
    # GIVEN a variable set to a long wrong value (a pasted secret, a whole file)
    monkeypatch.setenv("LOG_LEVEL", value)
    # THEN the refusal quotes at most 60 characters of it, never a whole pasted secret or file
    with pytest.raises(SettingsError) as refused:
        Settings()
    assert str(refused.value) == (
        "1 invalid setting: LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL "
        f"(got {shown})"
    )


def test_a_name_takes_its_longest_length_and_refuses_one_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a CloudWatch namespace of 255 characters, the most CloudWatch takes
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "N" * 255)
    assert Settings().POWERTOOLS_METRICS_NAMESPACE == "N" * 255
    # WHEN it is one longer THEN the settings are refused, naming the bound
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "N" * 256)
    with pytest.raises(SettingsError) as refused:
        Settings()
    assert str(refused.value) == (
        "1 invalid setting: POWERTOOLS_METRICS_NAMESPACE: must be at most 255 characters long"
    )


def test_a_name_given_in_code_as_another_type_is_refused() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings(SERVICE_NAME=5)
    assert str(refused.value) == "1 invalid setting: SERVICE_NAME: must be a string (got 5)"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("RATE_LIMIT_PUBLIC", "must be a whole number (got True)"),
        ("BREAKER_FAILURE_RATE", "must be a number (got True)"),
    ],
)
def test_a_boolean_given_in_code_for_a_number_is_refused_not_read_as_1(
    name: str, expected: str
) -> None:
    # bool is an int in Python: True would otherwise be a quota of 1 or a failure rate of 100 %
    with pytest.raises(SettingsError) as refused:
        Settings(**{name: True})
    assert str(refused.value) == f"1 invalid setting: {name}: {expected}"


def test_a_switch_given_in_code_as_a_bool_0_or_1_is_that_and_other_numbers_are_refused() -> None:
    for given in (False, True):
        assert Settings(RATE_LIMIT_ENABLED=given).RATE_LIMIT_ENABLED is given
    assert (
        Settings(RATE_LIMIT_ENABLED=0).RATE_LIMIT_ENABLED,
        Settings(RATE_LIMIT_ENABLED=1).RATE_LIMIT_ENABLED,
    ) == (False, True)
    for number in (2, -1, 0.5):
        with pytest.raises(SettingsError) as refused:
            Settings(RATE_LIMIT_ENABLED=number)
        assert str(refused.value) == (
            f"1 invalid setting: RATE_LIMIT_ENABLED: must be true or false (got {number})"
        )


def test_a_list_setting_given_in_code_is_a_list_of_strings_or_refused() -> None:
    # GIVEN admin addresses given as a list or a tuple in code THEN they are that list
    assert Settings(ADMIN_ADDRESSES=("TA", "TB")).ADMIN_ADDRESSES == ["TA", "TB"]
    # WHEN they are not strings, or not a list at all THEN the settings are refused
    for given, shown in (([7], "[7]"), (["TA", None], "['TA', None]"), ({"TA"}, "{'TA'}")):
        with pytest.raises(SettingsError) as refused:
            Settings(ADMIN_ADDRESSES=given)
        assert str(refused.value) == (
            f"1 invalid setting: ADMIN_ADDRESSES: must be a comma-separated list (got {shown})"
        )

"""Command line: `settings` with secrets masked, and the `apikey` commands on the in-memory database."""

import json
import os
import subprocess
import sys

import httpx
import pytest

from app.__main__ import APIKEY_ACTIONS, build_parser
from app.redaction import MASK, mask_url

BASE = "/ux/nccm/os-image"
SECRET_ENV = {
    "MONGODB_URL": "mongodb://admin:m0ngo-pass@db1:27017,db2:27017/os?replicaSet=rs0&tlsCertificateKeyFilePassword=tls-pass",
    "REDIS_URL": "redis://:r3dis-pass@cache:6379/0",
    "API_KEY": "osi_local-secret-key",
    "QUEUE_NAME": "jobs:test",
}


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("mongodb://127.0.0.1:27017", "mongodb://127.0.0.1:27017"),
        ("mongodb://user:pw@host/db", f"mongodb://user:{MASK}@host/db"),
        ("mongodb+srv://user:p%40ss@cluster.example.net/?retryWrites=true",
         f"mongodb+srv://user:{MASK}@cluster.example.net/?retryWrites=true"),
        ("mongodb://u:p:q@h1:1,h2:2/?replicaSet=rs", f"mongodb://u:{MASK}@h1:1,h2:2/?replicaSet=rs"),
        ("mongodb://x509-user@host/?authMechanism=MONGODB-X509",
         "mongodb://x509-user@host/?authMechanism=MONGODB-X509"),
        ("redis://:secret@cache:6379/0", f"redis://:{MASK}@cache:6379/0"),
        ("redis://default:secret@cache:6379/0", f"redis://default:{MASK}@cache:6379/0"),
        ("redis://cache:6379/0?password=secret&db=1", f"redis://cache:6379/0?password={MASK}&db=1"),
        ("rediss://cache/0?ssl_cert_reqs=none", "rediss://cache/0?ssl_cert_reqs=none"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def run_settings_command(*arguments: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("MONGODB_URL", "REDIS_URL")}
    env.update(SECRET_ENV)
    return subprocess.run(
        [sys.executable, "-m", "app", "settings", *arguments], env=env, capture_output=True,
        text=True, timeout=60,
    )


def test_settings_masks_secrets() -> None:
    result = run_settings_command()
    assert result.returncode == 0, result.stderr
    for secret in ("m0ngo-pass", "tls-pass", "r3dis-pass", "osi_local-secret-key"):
        assert secret not in result.stdout
        assert secret not in result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert f"admin:{MASK}@db1:27017,db2:27017/os?replicaSet=rs0" in lines["MONGODB_URL"]
    assert f"tlsCertificateKeyFilePassword={MASK}" in lines["MONGODB_URL"]
    assert f"redis://:{MASK}@cache:6379/0" in lines["REDIS_URL"]
    assert lines["API_KEY"].split()[1] == MASK
    assert not lines["QUEUE_NAME"].endswith("(default)")
    assert lines["MONGODB_DATABASE"].split()[1:] == ["os_image", "(default)"]
    assert lines["ALLOWED_FILE_TYPES"].split()[1].startswith(".bin,.swi,")
    assert lines["LOG_FORMAT"].split()[1] == "text"


def test_settings_json_output() -> None:
    result = run_settings_command("--json")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["API_KEY"] == MASK
    assert values["REDIS_URL"] == f"redis://:{MASK}@cache:6379/0"
    assert values["QUEUE_NAME"] == "jobs:test"
    assert values["WORKER_METRICS_PORT"] == 9101
    assert values["ALLOWED_FILE_TYPES"][:2] == [".bin", ".swi"]
    assert "r3dis-pass" not in result.stdout


def test_settings_rejects_invalid_value() -> None:
    env = dict(os.environ, LOG_FORMAT="xml")
    result = subprocess.run(
        [sys.executable, "-m", "app", "settings"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "invalid setting" in result.stderr
    assert "log_format" in result.stderr


async def run_apikey(capsys: pytest.CaptureFixture[str], *arguments: str) -> str:
    """Run `python -m app apikey ...` in this process, on the database the app fixture set up."""
    args = build_parser().parse_args(["apikey", *arguments])
    await APIKEY_ACTIONS[args.apikey_command](args)
    return capsys.readouterr().out


async def test_apikey_create_list_revoke(
    app: object, client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    created = await run_apikey(capsys, "create", "--organization", "acme", "--name", "network-ui")
    heading, key, notice = created.splitlines()
    assert heading.startswith("API key for organization 'acme' (id ")
    assert key.startswith("osi_")
    assert "shown only this once" in notice
    key_id = heading.split("(id ", 1)[1].split(",", 1)[0]
    assert (await client.get(f"{BASE}/", headers={"Authorization": key})).status_code == 200

    (listed,) = (await run_apikey(capsys, "list")).splitlines()
    assert listed.split()[:3] == [key_id, "acme", "network-ui"]
    assert listed.split()[3] == key[:10] + "…"
    assert listed.endswith("active")
    assert key not in listed

    revoked = await run_apikey(capsys, "revoke", key_id)
    assert revoked.strip() == f"revoked API key {key_id} (acme/network-ui)"
    (listed,) = (await run_apikey(capsys, "list")).splitlines()
    assert " revoked 20" in listed
    assert (await client.get(f"{BASE}/", headers={"Authorization": key})).status_code == 401


@pytest.mark.parametrize("key_id", ["0123456789abcdef01234567", "not-an-id"])
async def test_apikey_revoke_unknown_id(
    app: object, capsys: pytest.CaptureFixture[str], key_id: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        await run_apikey(capsys, "revoke", key_id)
    assert str(exited.value) == f"error: no API key with id {key_id!r}; 'apikey list' shows the ids"


async def test_apikey_list_sorted_by_organization(app: object, capsys: pytest.CaptureFixture[str]) -> None:
    await run_apikey(capsys, "create", "--organization", "zeta", "--name", "a")
    await run_apikey(capsys, "create", "--organization", "acme", "--name", "b")
    organizations = [line.split()[1] for line in (await run_apikey(capsys, "list")).splitlines()]
    assert organizations == ["acme", "zeta"]


def test_apikey_create_rejects_long_organization() -> None:
    env = dict(os.environ, MONGODB_URL="mongodb://127.0.0.1:1/")
    result = subprocess.run(
        [sys.executable, "-m", "app", "apikey", "create", "--organization", "o" * 26, "--name", "ui"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "--organization is longer than 25 characters" in result.stderr

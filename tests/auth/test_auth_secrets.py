"""Secret redaction (table-driven: what must go, what an ML engineer must still see) and
secret references."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopstack.auth import (
    REDACTED,
    is_secret_ref,
    looks_like_secret_key,
    redact,
    redact_mapping,
    resolve_secret_ref,
)
from loopstack.errors import Invalid, NotFound

R = REDACTED
HEX32 = "3f7a9b1c2d3e4f5a6b7c8d9e0f1a2b3c"
B64_40 = "Zk9xT2xRcWp5N3ZtR2hLc0V4YjJwTmE4VXdEZg=="
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0\n"
    "-----END RSA PRIVATE KEY-----"
)

# Keys that name a credential: whatever the value, it goes.
SECRET_KEYS = [
    "password",
    "PASSWORD",
    "db_password",
    "DB_PASSWORD",
    "dbPassword",
    "PGPASSWORD",
    "mysql_root_password",
    "passwd",
    "user_passwd",
    "pwd",
    "db_pwd",
    "passphrase",
    "ssh_passphrase",
    "secret",
    "SECRET",
    "client_secret",
    "clientSecret",
    "AWS_SECRET_ACCESS_KEY",
    "aws_secret_access_key",
    "secret_key",
    "SECRET_KEY",
    "django_secret",
    "webhook_secret",
    "api_key",
    "API_KEY",
    "apiKey",
    "apikey",
    "x-api-key",
    "X-Api-Key",
    "OPENAI_API_KEY",
    "WANDB_API_KEY",
    "access_key",
    "private_key",
    "privateKey",
    "signing_key",
    "encryption_key",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "account_key",
    "ssh_key",
    "master_key",
    "app_key",
    "token",
    "TOKEN",
    "hf_token",
    "HF_TOKEN",
    "GITHUB_TOKEN",
    "access_token",
    "accessToken",
    "refresh_token",
    "auth_token",
    "authToken",
    "session_token",
    "SLACK_BOT_TOKEN",
    "NPM_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "bearer_token",
    "credential",
    "credentials",
    "db_credentials",
    "GOOGLE_CREDENTIALS",
    "creds",
    "auth",
    "basic_auth",
    "authorization",
    "Authorization",
    "proxy_authorization",
    "cookie",
    "Cookie",
    "session_cookie",
    "DB_PASS",
    "smtp_pass",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_keys_hide_any_value(key: str) -> None:
    assert looks_like_secret_key(key)
    for value in ("hunter2", "s3cr3t value with spaces", "1234", "x"):
        assert redact(key, value) == R, (key, value)


# Keys an ML engineer logs all day: a plain value must come back unchanged.
PLAIN_KEYS = [
    "num_tokens",
    "max_tokens",
    "max_new_tokens",
    "maxNewTokens",
    "tokenizer",
    "tokenizer_name",
    "tokenizers_parallelism",
    "TOKENIZERS_PARALLELISM",
    "pad_token",
    "eos_token",
    "bos_token",
    "unk_token",
    "sep_token",
    "mask_token",
    "cls_token",
    "pad_token_id",
    "eos_token_id",
    "token_type_ids",
    "special_tokens",
    "add_special_tokens",
    "tokens_per_second",
    "token_limit",
    "token_count",
    "max_token",
    "context_tokens",
    "key",
    "keys",
    "key_column",
    "primary_key",
    "foreign_key",
    "sort_key",
    "partition_key",
    "join_key",
    "entity_key",
    "keyboard",
    "key_name",
    "dedup_key",
    "monkey",
    "author",
    "authors",
    "authored_by",
    "auth_type",
    "auth_method",
    "auth_enabled",
    "authentication_method",
    "PWD",
    "OLDPWD",
    "pass_rate",
    "pass_at_k",
    "pass@1",
    "bypass_cache",
    "num_passes",
    "passes",
    "compass",
    "secretary",
    "password_file",
    "PASSWORD_FILE",
    "secret_name",
    "secret_ref",
    "secret_arn",
    "password_min_length",
    "access_key_id",
    "AWS_ACCESS_KEY_ID",
    "private_key_path",
    "ssh_key_file",
    "token_id",
    "session_id",
    "learning_rate",
    "model_name",
    "s3_key",
    "object_key",
    "public_key",
    "n_estimators",
    "mlflow.runName",
    "cache_key",
    "hash",
    "content_hash",
    "artifact_sha256",
    "run_id",
    "signature",
]
PLAIN_VALUES = [
    "gpt2",
    "512",
    "0.001",
    "user_id",
    "bert-base-uncased",
    "/home/alice/project",
    "true",
    "s3://bucket/path/data.parquet",
    "id,ts,label",
    "production",
    "",
]


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_ml_keys_are_not_secret(key: str) -> None:
    assert not looks_like_secret_key(key)
    for value in PLAIN_VALUES:
        assert redact(key, value) == value, (key, value)


# Values that are never hidden, even under a secret key: they protect nothing.
@pytest.mark.parametrize(
    "value",
    [
        "",
        "true",
        "False",
        "on",
        "none",
        "env:DB_PASSWORD",
        "file:/run/secrets/db",
        "file:///etc/loopstack/token",
    ],
)
def test_booleans_empty_and_references_stay(value: str) -> None:
    assert redact("db_password", value) == value


# Weak hints: only a high-entropy value goes.
@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("key", HEX32, R),
        ("key", HEX32.upper() + HEX32, R),
        ("key", B64_40, R),
        ("cache_key", HEX32, R),
        ("signature", HEX32, R),
        ("salt", B64_40, R),
        ("session", HEX32, R),
        ("key", "user_id", "user_id"),
        ("key", "a" * 40, "a" * 40),  # long, but no entropy
        ("key", "feature_store_entity_key_column_name", "feature_store_entity_key_column_name"),
        ("key", "0123456789", "0123456789"),
        ("run_id", HEX32, HEX32),  # no hint: ids stay
        ("artifact_sha256", HEX32 * 2, HEX32 * 2),
        ("content_hash", B64_40, B64_40),
        ("token_id", HEX32, HEX32),
    ],
)
def test_high_entropy_values_only_with_a_hint(key: str, value: str, expected: str) -> None:
    assert redact(key, value) == expected


# Credential formats, under keys that say nothing: the credential goes, the rest stays.
@pytest.mark.parametrize(
    "value, expected",
    [
        ("AKIAIOSFODNN7EXAMPLE", R),
        ("ASIAY34FZKBOKMUTVV7A", R),
        ("aws key AKIAIOSFODNN7EXAMPLE in text", f"aws key {R} in text"),
        ("ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", R),
        ("gho_16C7e42F292c6912E7710c838347Ae178B4a", R),
        ("ghs_16C7e42F292c6912E7710c838347Ae178B4a", R),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGH", R),
        ("xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", R),
        ("xoxp-1234567890-abcdefghij", R),
        ("sk-proj-Abc123def456ghi789jkl012mno345", R),
        ("sk-ant-api03-Abc123def456ghi789jkl012mno345", R),
        ("sk-Abcdefghij1234567890KLMNOP", R),
        ("hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567", R),
        ("AIzaSyA-1234567890abcdefghijklmnopqrstu", R),
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", R),
        ("glpat-Abcdef1234567890xyzW", R),
        (JWT, R),
        ("token=" + JWT + "; path=/", f"token={R}; path=/"),
        (PEM, R),
        ("key:\n" + PEM + "\nrest", f"key:\n{R}\nrest"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU", R),
        ("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIE\n-----END ENCRYPTED PRIVATE KEY-----", R),
        ("postgresql://app:s3cret@db:5432/prod", f"postgresql://app:{R}@db:5432/prod"),
        ("postgresql+psycopg://app:p@ss@db/prod", f"postgresql+psycopg://app:{R}@db/prod"),
        ("redis://:hunter2@cache:6379/0", f"redis://:{R}@cache:6379/0"),
        ("https://user:tok@github.com/org/repo.git", f"https://user:{R}@github.com/org/repo.git"),
        ("jdbc:mysql://root:pw@h:3306/db", f"jdbc:mysql://root:{R}@h:3306/db"),
        ("Authorization: Bearer abcdef1234567890XYZabc", f"Authorization: Bearer {R}"),
        ("bearer eyJhbGciOiJIUzI1NiJ9xyz123", f"bearer {R}"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", f"Authorization: Basic {R}"),
        ("lst_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0u1v", R),
        ("curl -H 'X: lst_AbCdEfGhIjKlMnOpQrStUvWx' url", f"curl -H 'X: {R}' url"),
        ("PGPASSWORD=hunter2 psql -h db", f"PGPASSWORD={R} psql -h db"),
        ('{"db_password": "hunter2", "lr": 0.1}', f'{{"db_password": "{R}", "lr": 0.1}}'),
        ("https://h/api?client_secret=abc123&page=2", f"https://h/api?client_secret={R}&page=2"),
        (
            "Server=db;Database=x;User Id=sa;Password=p4ss;",
            f"Server=db;Database=x;User Id=sa;Password={R};",
        ),
        ("Driver={PG};Server=db;UID=sa;PWD=p4ss;", f"Driver={{PG}};Server=db;UID=sa;PWD={R};"),
        (
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=abc+def/ghi==;EndpointSuffix=x",
            f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={R};EndpointSuffix=x",
        ),
    ],
)
def test_credential_formats_in_any_value(value: str, expected: str) -> None:
    assert redact("note", value) == expected
    assert redact("note", expected) == expected  # idempotent


# Values that look a bit like credentials but are not.
@pytest.mark.parametrize(
    "value",
    [
        "sk-learn-pipeline-with-scaler",
        "sklearn.ensemble.RandomForestClassifier",
        "sk-12",
        "AKIA-not-a-key",
        "akiaiosfodnn7example",
        "ghp_short",
        "xoxb-1",
        "https://github.com/org/repo.git",
        "https://user@github.com/org/repo.git",
        "http://localhost:5000/api/2.0/mlflow",
        "s3://bucket/key@v2/file",
        "user@example.com",
        "Bearer authentication is required",
        "Bearer token",
        "Basic understanding",
        "eyJhbGciOiJIUzI1NiJ9",
        "hf_hub_download",
        "lst_short",
        "the tokenizer uses 32000 tokens",
        HEX32,
        B64_40,
        "a9f1" * 16,
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC public@host",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjAN\n-----END PUBLIC KEY-----",
        "postgresql://db:5432/x",
        "3.14159",
        "1e-3",
        "runs:/abc123/model",
        "models:/fraud@production",
    ],
)
def test_lookalikes_stay(value: str) -> None:
    assert redact("note", value) == value


def test_redact_mapping() -> None:
    params = {
        "learning_rate": "0.01",
        "max_new_tokens": "256",
        "db_password": "hunter2",
        "DATABASE_URL": "postgresql://u:pw@h/d",
        "OPENAI_API_KEY": "sk-Abc123def456ghi789jkl",
        "tokenizer_name": "gpt2",
        "HF_TOKEN": "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567",
    }
    assert redact_mapping(params) == {
        "learning_rate": "0.01",
        "max_new_tokens": "256",
        "db_password": R,
        "DATABASE_URL": f"postgresql://u:{R}@h/d",
        "OPENAI_API_KEY": R,
        "tokenizer_name": "gpt2",
        "HF_TOKEN": R,
    }
    assert params["db_password"] == "hunter2"  # a new dict; the input is untouched
    assert redact_mapping({}) == {}


# -- references -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("env:DB_PASSWORD", True),
        ("env:_X1", True),
        ("file:/run/secrets/db", True),
        ("file:relative.txt", True),
        ("file:///etc/x", True),
        ("env:", False),
        ("env:1BAD", False),
        ("env:A-B", False),
        ("file:", False),
        ("ENV:X", False),
        ("hunter2", False),
        ("", False),
        ("vault:secret/x", False),
    ],
)
def test_is_secret_ref(text: str, expected: bool) -> None:
    assert is_secret_ref(text) is expected


def test_resolve_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LS_TEST_SECRET", "s3cr3t")
    assert resolve_secret_ref("env:LS_TEST_SECRET") == "s3cr3t"
    monkeypatch.delenv("LS_TEST_SECRET")
    with pytest.raises(NotFound, match="'LS_TEST_SECRET'.*is not set"):
        resolve_secret_ref("env:LS_TEST_SECRET")
    with pytest.raises(Invalid, match="environment variable name"):
        resolve_secret_ref("env:not-a-name")


def test_resolve_file(tmp_path: Path) -> None:
    secret = tmp_path / "db"
    secret.write_text("p4ss word\n")
    assert resolve_secret_ref(f"file:{secret}") == "p4ss word"
    assert resolve_secret_ref(f"file://{secret}") == "p4ss word"
    (tmp_path / "crlf").write_bytes(b"abc\r\n")
    assert resolve_secret_ref(f"file:{tmp_path / 'crlf'}") == "abc"
    with pytest.raises(NotFound, match="does not exist"):
        resolve_secret_ref(f"file:{tmp_path / 'missing'}")
    with pytest.raises(Invalid, match="is a directory"):
        resolve_secret_ref(f"file:{tmp_path}")
    with pytest.raises(Invalid, match="local path"):
        resolve_secret_ref("file://host/x")
    with pytest.raises(Invalid, match="must be 'env:NAME' or 'file:/path'"):
        resolve_secret_ref("hunter2")

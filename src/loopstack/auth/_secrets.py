"""Keep credentials out of params, tags, environments and logs; read secrets by reference.

``redact(key, value)`` hides a value when its key names a credential, and hides
the credential inside any value that carries one in a recognisable format.

Keys are split into word parts (``AWS_SECRET_ACCESS_KEY`` -> aws, secret,
access, key; ``apiKey`` -> api, key) and judged part by part, so the words an
ML engineer logs all day stay visible: ``max_new_tokens``, ``tokenizer_name``,
``pad_token``, ``key_column``, ``primary_key``, ``author``, ``PWD``:

* a part that is a credential word (password, passwd, pwd, passphrase, secret,
  credential(s), apikey, ...) redacts the value, unless the last part says the
  value only describes the secret (``password_file``, ``secret_name``,
  ``access_key_id``, ``password_min_length``);
* ``token`` and ``auth``/``authorization``/``cookie`` count only as the last
  part (``hf_token``, ``basic_auth``), and ``token`` not after a special-token
  word (``pad_token``, ``eos_token``);
* ``key`` counts only after a credential qualifier (``api_key``,
  ``private_key``, ``account_key``), and ``pass`` only as the last of several
  parts (``DB_PASS``, not ``pass_rate`` or ``bypass``);
* weaker hints (a bare ``key``, ``signature``, ``salt``, ``session``, ...)
  redact only a high-entropy value (32+ hex or base64 characters).

Booleans, empty values and secret references (``env:NAME``, ``file:/path``) are
never hidden: they protect nothing. Whatever the key, values are scanned for
credential formats: AWS key ids, GitHub, Slack, Hugging Face, Google, Stripe,
OpenAI-style ``sk-`` keys, JWTs, PEM private keys, Bearer tokens, loopstack's
own ``lst_`` tokens, passwords in connection strings, and URLs with
``user:password@`` (only the password goes).
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

from loopstack.errors import Invalid, NotFound

__all__ = [
    "REDACTED",
    "is_secret_ref",
    "looks_like_secret_key",
    "redact",
    "redact_mapping",
    "resolve_secret_ref",
]

REDACTED = "***REDACTED***"

# -- keys ----------------------------------------------------------------------------------
_PARTS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
#: a part that is a credential word wherever it stands
_STRONG_PARTS = frozenset(
    {
        "password",
        "passwords",
        "passwd",
        "pwd",
        "passphrase",
        "passcode",
        "secret",
        "secrets",
        "credential",
        "credentials",
        "creds",
        "apikey",
        "apikeys",
        "privatekey",
        "secretkey",
        "accesskey",
        "accesstoken",
        "authtoken",
        "refreshtoken",
        "sessiontoken",
        "bearertoken",
        "apitoken",
        "clientsecret",
        "secretaccesskey",
        "xapikey",
    }
)
#: credential words that may be glued to others inside one part ("dbpassword", "appsecret")
_STRONG_SUBSTRINGS = ("password", "passwd", "passphrase", "secret")
#: a last part saying the value describes a secret rather than being one
_DESCRIPTIVE_LAST = frozenset(
    {
        "id",
        "ids",
        "name",
        "names",
        "path",
        "paths",
        "file",
        "files",
        "filename",
        "dir",
        "type",
        "types",
        "kind",
        "size",
        "len",
        "length",
        "bits",
        "count",
        "format",
        "version",
        "arn",
        "ref",
        "env",
        "var",
        "required",
        "enabled",
        "disabled",
        "policy",
        "min",
        "max",
        "rotation",
        "ttl",
        "expiry",
        "expires",
        "expiration",
        "prefix",
        "provider",
        "manager",
        "store",
        "backend",
        "mode",
        "scope",
        "scopes",
        "header",
        "url",
        "uri",
        "endpoint",
        "location",
        "field",
        "column",
        "label",
        "hint",
    }
)
#: a "key" after one of these is a credential: api_key, private_key, account_key, ...
_KEY_QUALIFIERS = frozenset(
    {
        "api",
        "access",
        "secret",
        "private",
        "signing",
        "encryption",
        "ssh",
        "master",
        "client",
        "account",
        "app",
        "consumer",
        "hmac",
        "sas",
        "shared",
        "license",
        "session",
        "auth",
        "storage",
        "service",
        "deploy",
        "crypto",
        "jwt",
        "gpg",
        "pgp",
        "webhook",
        "admin",
        "subscription",
        "write",
    }
)
#: a "token" after one of these is a vocabulary entry, not a credential: pad_token, eos_token
_VOCAB_WORDS = frozenset(
    {
        "pad",
        "eos",
        "bos",
        "unk",
        "sep",
        "mask",
        "cls",
        "start",
        "end",
        "stop",
        "special",
        "image",
        "video",
        "audio",
        "begin",
        "decoder",
        "sentinel",
        "placeholder",
        "think",
        "tool",
        "extra",
        "additional",
        "boi",
        "eoi",
        "eot",
        "boa",
        "eoa",
        "im",
        "default",
        "first",
        "last",
        "next",
        "new",
        "max",
        "min",
        "num",
        "n",
        "prompt",
        "context",
        "prefix",
        "suffix",
        "middle",
        "fim",
        "vision",
        "label",
        "unknown",
        "padding",
        "sot",
    }
)
_AUTH_LAST = frozenset({"auth", "authorization", "authentication", "cookie", "cookies"})
#: hints too weak alone: they redact only a high-entropy value
_WEAK_LAST = frozenset(
    {
        "key",
        "keys",
        "sig",
        "signature",
        "salt",
        "nonce",
        "session",
        "cred",
        "seed",
        "hmac",
        "bearer",
    }
)

_BOOLISH = frozenset({"true", "false", "yes", "no", "on", "off", "none", "null", "0", "1"})
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _parts(key: str) -> list[str]:
    return [p.lower() for p in _PARTS.findall(key)]


def _key_strength(key: str) -> str | None:
    """ "strong" (the value is a credential), "weak" (only a high-entropy value is), or None."""
    parts = _parts(key)
    if not parts:
        return None
    last = parts[-1]
    if key.strip() in ("PWD", "OLDPWD"):  # the shell's working directory, not a password
        return None
    descriptive = last in _DESCRIPTIVE_LAST and len(parts) > 1
    for i, part in enumerate(parts):
        if part in _STRONG_PARTS or (
            any(s in part for s in _STRONG_SUBSTRINGS) and not part.startswith("secretar")
        ):
            return None if descriptive else "strong"
        if part == "key" and i > 0 and parts[i - 1] in _KEY_QUALIFIERS:
            return None if descriptive else "strong"
    if last == "token" and (len(parts) == 1 or parts[-2] not in _VOCAB_WORDS):
        return "strong"
    if last in _AUTH_LAST or (last == "pass" and len(parts) > 1):
        return "strong"
    if last in _WEAK_LAST:
        return "weak"
    return None


def looks_like_secret_key(key: str) -> bool:
    """Whether ``key`` names a credential (so its value is hidden whatever it looks like)."""
    return _key_strength(key) == "strong"


# -- values --------------------------------------------------------------------------------
def _mixed(text: str) -> bool:
    """Random-looking: digits and letters, or upper and lower case (not a hyphenated word)."""
    has_digit = any(c.isdigit() for c in text)
    has_upper = any(c.isupper() for c in text)
    has_lower = any(c.islower() for c in text)
    return (has_digit and (has_upper or has_lower)) or (has_upper and has_lower)


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _high_entropy(value: str) -> bool:
    v = value.strip()
    if len(v) < 32:
        return False
    if re.fullmatch(r"[0-9a-fA-F]{32,}", v):
        return _entropy(v) >= 3.0
    if re.fullmatch(r"[A-Za-z0-9+/_\-]{32,}={0,2}", v):
        return _mixed(v) and _entropy(v) >= 3.5
    return False


_START = r"(?<![A-Za-z0-9_\-])"
_END = r"(?![A-Za-z0-9_\-])"

# (pattern, replacement, accept): the replacement may use groups; ``accept``, when given,
# must pass on the matched text (random-looking, not a hyphenated word) for it to go.
_VALUE_PATTERNS: list[tuple[re.Pattern[str], str, Callable[[str], bool] | None]] = [
    # PEM private key blocks, to the END line (or the end of the text, if cut short)
    (
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----.*?"
            r"(?:-----END [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----|\Z)",
            re.S,
        ),
        REDACTED,
        None,
    ),
    # scheme://user:password@host -> only the password goes
    (
        re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*:)[^/?#\s]+(?=@)"),
        r"\g<head>" + REDACTED,
        None,
    ),
    # password=..., "client_secret": "...", PGPASSWORD=... in command lines and config dumps
    (
        re.compile(
            r"(?P<head>\b\w*(?:password|passwd|passphrase|secret)\w*[\"']?\s*[=:]\s*"
            r"(?P<q>[\"']?))[^;&,'\"\s}]+",
            re.I,
        ),
        r"\g<head>" + REDACTED,
        None,
    ),
    # Pwd=...; AccountKey=...; in connection strings (ODBC, ADO.NET, Azure)
    (
        re.compile(
            r"(?P<head>(?:^|(?<=;))\s*(?:pwd|accountkey|sharedaccesskey|"
            r"sharedaccesssignature)\s*=\s*)[^;]+",
            re.I,
        ),
        r"\g<head>" + REDACTED,
        None,
    ),
    # Authorization: Bearer <token> / Basic <base64>
    (
        re.compile(r"(?P<head>\bBearer\s+)[A-Za-z0-9\-._~+/]{16,}=*", re.I),
        r"\g<head>" + REDACTED,
        lambda m: _mixed(m.split()[-1]),
    ),
    (
        re.compile(
            r"(?P<head>\bauthorization\b[\"']?\s*[:=]\s*[\"']?Basic\s+)[A-Za-z0-9+/]+=*", re.I
        ),
        r"\g<head>" + REDACTED,
        None,
    ),
    # JSON Web Tokens: header.payload.signature, both base64url JSON objects
    (
        re.compile(_START + r"eyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*"),
        REDACTED,
        None,
    ),
    # AWS access key ids
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}\b"), REDACTED, None),
    # GitHub tokens (classic and fine-grained)
    (
        re.compile(_START + r"(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})" + _END),
        REDACTED,
        None,
    ),
    # GitLab personal access tokens
    (re.compile(_START + r"glpat-[A-Za-z0-9_\-]{20,}" + _END), REDACTED, None),
    # Slack bot / user / app tokens
    (re.compile(_START + r"xox[baprse]-[A-Za-z0-9\-]{10,}" + _END), REDACTED, None),
    # Hugging Face tokens
    (re.compile(_START + r"hf_[A-Za-z0-9]{30,}" + _END), REDACTED, None),
    # Google API keys
    (re.compile(_START + r"AIza[0-9A-Za-z_\-]{35}" + _END), REDACTED, None),
    # Stripe secret and restricted keys
    (re.compile(_START + r"[sr]k_(?:live|test)_[A-Za-z0-9]{16,}" + _END), REDACTED, None),
    # OpenAI / Anthropic style sk-... keys (random-looking only: not "sk-learn-pipeline-...")
    (re.compile(_START + r"sk-[A-Za-z0-9_\-]{20,}" + _END), REDACTED, _mixed),
    # loopstack's own API tokens
    (re.compile(_START + r"lst_[A-Za-z0-9_\-]{20,}" + _END), REDACTED, None),
]


def _scan(value: str) -> str:
    for pattern, replacement, accept in _VALUE_PATTERNS:
        if accept is None:
            value = pattern.sub(replacement, value)
        else:

            def sub(
                m: re.Match[str], r: str = replacement, ok: Callable[[str], bool] = accept
            ) -> str:
                return m.expand(r) if ok(m.group(0)) else m.group(0)

            value = pattern.sub(sub, value)
    return value


def redact(key: str, value: str) -> str:
    """``value``, or ``"***REDACTED***"`` where it holds a credential.

    >>> redact("db_password", "hunter2")
    '***REDACTED***'
    >>> redact("max_new_tokens", "256")
    '256'
    >>> redact("DATABASE_URL", "postgresql://app:s3cret@db:5432/prod")
    'postgresql://app:***REDACTED***@db:5432/prod'
    """
    if not isinstance(value, str) or not value:
        return value
    stripped = value.strip()
    if stripped.lower() in _BOOLISH or is_secret_ref(stripped):
        return value
    strength = _key_strength(key) if isinstance(key, str) else None
    if strength == "strong":
        return REDACTED
    if strength == "weak" and _high_entropy(stripped):
        return REDACTED
    if _NUMBER.fullmatch(stripped):
        return value
    return _scan(value)


def redact_mapping(d: Mapping[str, str]) -> dict[str, str]:
    """``redact`` applied to every item: a new dict, the keys unchanged."""
    return {k: redact(k, v) for k, v in d.items()}


# -- references ----------------------------------------------------------------------------
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_secret_ref(text: str) -> bool:
    """Whether ``text`` is a secret reference: ``env:NAME`` or ``file:/path``."""
    if not isinstance(text, str):
        return False
    if text.startswith("env:"):
        return bool(_ENV_NAME.fullmatch(text[4:]))
    if text.startswith("file:"):
        return len(text) > 5 and not text[5:].isspace()
    return False


def resolve_secret_ref(ref: str) -> str:
    """The secret a reference points at: ``env:NAME`` reads an environment variable,
    ``file:/path`` (or ``file:///path``) a file, without its trailing newline.

    >>> resolve_secret_ref("env:HOME") != ""
    True
    """
    if not isinstance(ref, str) or not ref.startswith(("env:", "file:")):
        raise Invalid(
            f"a secret reference must be 'env:NAME' or 'file:/path'; got {ref!r} instead",
            field="secret",
        )
    if ref.startswith("env:"):
        name = ref[4:]
        if not _ENV_NAME.fullmatch(name):
            raise Invalid(
                "'env:' must be followed by an environment variable name (letters, "
                f"digits, '_'); got {name!r} instead",
                field="secret",
            )
        if name not in os.environ:
            raise NotFound(f"the environment variable {name!r} named by {ref!r} is not set")
        return os.environ[name]
    raw = ref[5:]
    if raw.startswith("//"):
        if not raw.startswith("///"):
            raise Invalid(
                f"a file URI must name a local path ('file:///path'); got {ref!r}", field="secret"
            )
        raw = raw[2:]
    if not raw.strip():
        raise Invalid(f"'file:' must be followed by a path; got {ref!r}", field="secret")
    path = Path(raw).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"the secret file {str(path)!r} named by {ref!r} does not exist") from None
    except IsADirectoryError:
        raise Invalid(f"the secret file {str(path)!r} is a directory", field="secret") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise Invalid(f"cannot read the secret file {str(path)!r}: {exc}", field="secret") from exc
    return text.removesuffix("\n").removesuffix("\r")

"""A facility system's side of client_credentials with private_key_jwt, for the demo and the tests.

    python -m healthbook.auth.devidp.client dev-idp/demo-hospital.private.jwk.json \\
        http://127.0.0.1:8080/dev-idp/token

prints an access token of the demo hospital (SMART Backend Services, RFC 7523 client assertion).
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from pathlib import Path

import httpx
from joserfc import jwt
from joserfc.jwk import Key, KeySet

from healthbook.auth.devidp.service import ASSERTION_TYPE, DEMO_CLIENT_ID


def client_assertion(
    key: Key, client_id: str, token_url: str, *, alg: str = "RS384", lifetime: int = 240
) -> str:
    """A signed JWT that authenticates `client_id` at `token_url` (iss = sub = client_id, aud, exp, jti)."""
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": now,
        "exp": now + lifetime,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[alg])


def token_form(key: Key, client_id: str, token_url: str, scope: str = "system/*.rs") -> dict[str, str]:
    """The body of a client_credentials token request."""
    return {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(key, client_id, token_url),
    }


def main(argv: list[str]) -> int:
    """Ask the token endpoint for a token with the private JWK in a file; print the access token."""
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)  # noqa: T201
        return 2
    key = KeySet.import_key_set({"keys": [json.loads(Path(argv[0]).read_text())]}).keys[0]
    client_id = argv[2] if len(argv) > 2 else DEMO_CLIENT_ID
    scope = argv[3] if len(argv) > 3 else "system/*.rs"
    resp = httpx.post(argv[1], data=token_form(key, client_id, argv[1], scope), timeout=10)
    if resp.status_code != 200:
        print(resp.text, file=sys.stderr)  # noqa: T201
        return 1
    print(resp.json()["access_token"])  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

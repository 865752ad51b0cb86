"""`healthbook serve` says when its access settings leave the server open, or closed to everyone."""

from __future__ import annotations

import pytest

from healthbook.cli import main
from healthbook.config import Settings


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"auth": "off"}, "Access control is off"),
        ({"auth": "required", "oidc_issuers": []}, "no OpenID Connect issuer is trusted"),
        ({"auth": "required", "dev_idp": True}, None),
        ({"auth": "required", "oidc_issuers": "https://sso.example.vn"}, None),
    ],
)
def test_access_warning(
    monkeypatch: pytest.MonkeyPatch, changes: dict[str, object], expected: str | None
) -> None:
    lines: list[str] = []
    monkeypatch.setattr(main.console, "print", lambda text, *a, **k: lines.append(str(text)))
    main._warn_about_access(Settings(database_url="sqlite://", **changes))  # type: ignore[arg-type]
    if expected is None:
        assert lines == []
    else:
        assert len(lines) == 1 and expected in lines[0]


def test_access_control_is_on_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEALTHBOOK_AUTH", raising=False)
    assert Settings(database_url="sqlite://").auth == "required"

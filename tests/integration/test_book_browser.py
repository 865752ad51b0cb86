"""The health-book page in a real browser: Debian's Chromium, headless, against a running server."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from healthbook.app import build_services, create_app
from healthbook.config import Settings
from healthbook.db.migrate import upgrade
from tests.book_samples import HOSPITAL, clinical, facilities, patient, transaction

from .conftest import ServerProcess

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no chromium binary on PATH (Debian: apt-get install chromium) to render the page",
    ),
    pytest.mark.xdist_group("book_browser"),
]
CCCD_NUMBER = "001190012345"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`healthbook serve` with the pages on, over a SQLite file holding one hand-built book."""
    workdir = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{workdir / 'book.db'}"
    settings = Settings(database_url=url)
    services = build_services(settings)
    upgrade(services.fhir.db)
    with TestClient(create_app(settings, services)) as client:
        bundle = transaction(
            [*facilities("b"), patient("b1", cccd=CCCD_NUMBER, prefix="b"), *clinical("b1", prefix="b")]
        )
        assert (
            client.post("/fhir", json=bundle, headers={"content-type": "application/fhir+json"}).status_code
            == 200
        )
    services.fhir.db.dispose()
    server = ServerProcess(url, workdir, env={"HEALTHBOOK_BOOK_PAGES": "true"})
    server.start()
    yield server
    server.stop()


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


def _page(server: ServerProcess, query: str = "") -> str:
    return server.base.removesuffix("/fhir") + f"/so-suc-khoe/{CCCD_NUMBER}{query}"


def test_page_renders_in_chromium(live: ServerProcess, tmp_path: Path) -> None:
    done = _chromium(tmp_path / "profile", "--dump-dom", _page(live))
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert '<html lang="vi">' in dom
    for text in (
        "Nguyễn Thị Ánh",
        "Thông tin hành chính",
        "Tiền sử",
        "Các lần khám chữa bệnh",
        "Tóm tắt hồ sơ",
        HOSPITAL,
    ):
        assert text in dom
    english = _chromium(tmp_path / "profile", "--dump-dom", _page(live, "?lang=en")).stdout
    assert "Medical history" in english and "Care episodes" in english


def test_page_prints_to_pdf(live: ServerProcess, tmp_path: Path) -> None:
    pdf = tmp_path / "book.pdf"
    done = _chromium(tmp_path / "profile", "--no-pdf-header-footer", f"--print-to-pdf={pdf}", _page(live))
    assert pdf.exists(), done.stderr[-2000:]
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 10_000
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        return  # the PDF exists; its text is checked where poppler-utils is installed
    text = subprocess.run(
        [pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Sổ sức khỏe điện tử" in text and "Nguyễn Thị Ánh" in text and "Tiền sử" in text
    assert "English" not in text  # the language switch is not printed


def test_page_renders_at_phone_width(live: ServerProcess, tmp_path: Path) -> None:
    shot = tmp_path / "phone.png"
    done = _chromium(
        tmp_path / "profile",
        "--hide-scrollbars",
        "--window-size=390,1600",
        f"--screenshot={shot}",
        _page(live),
    )
    assert shot.exists(), done.stderr[-2000:]
    assert shot.read_bytes().startswith(b"\x89PNG")

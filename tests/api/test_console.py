"""The web console's pages: served from the package under a strict CSP, no inline code, and ``/v1/whoami``."""

from __future__ import annotations

import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path

from api.console import STATIC

ROOT = Path(__file__).resolve().parents[2]
ASSETS = sorted(p for p in STATIC.rglob("*") if p.is_file())
SCRIPTS = [p for p in ASSETS if p.suffix == ".js" and "vendor" not in p.parts]


class _Page(HTMLParser):
    """Every tag with its attributes, and whether any script or style element holds inline text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._open: str | None = None
        self.inline_code: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._open = tag

    def handle_data(self, data: str) -> None:
        if self._open in ("script", "style") and data.strip():
            self.inline_code.append(data.strip())

    def handle_endtag(self, tag: str) -> None:
        self._open = None


def _page(client) -> tuple[object, _Page]:  # type: ignore[no-untyped-def]
    response = client.get("/console/")
    parser = _Page()
    parser.feed(response.get_data(as_text=True))
    return response, parser


def test_the_console_page_is_served_with_a_strict_csp(client) -> None:
    response, _ = _page(client)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    csp = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))
    assert csp["default-src"] == "'self'"
    assert csp["script-src"] == "'self'"
    assert csp["style-src"] == "'self'"
    assert csp["img-src"] == "'self' blob: data:"
    assert csp["frame-ancestors"] == "'none'"
    assert csp["form-action"] == "'none'"
    assert csp["base-uri"] == "'none'"
    assert "unsafe" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "Set-Cookie" not in response.headers


def test_console_without_the_slash_redirects_to_it(client) -> None:
    response = client.get("/console")
    assert response.status_code in (301, 308)
    assert response.headers["Location"].endswith("/console/")


def test_the_page_has_no_inline_script_style_or_handler_and_loads_only_local_files(client) -> None:
    _, page = _page(client)
    assert page.inline_code == []
    for tag, attrs in page.tags:
        assert "style" not in attrs, tag
        assert not [name for name in attrs if name.startswith("on")], tag
        for name in ("src", "href"):
            value = attrs.get(name)
            if value and tag in ("script", "link"):
                assert not re.match(r"^[a-z]+:|^//", value), f"{tag} {name}={value} is not a local file"
                assert client.get(f"/console/{value}").status_code == 200, value


def test_scripts_build_the_page_without_markup_strings_or_eval() -> None:
    for path in SCRIPTS:
        source = path.read_text()
        for pattern in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert pattern not in source, f"{path.name} uses {pattern}"
        assert ".style." not in source, f"{path.name} writes a style"
        assert 'setAttribute("style"' not in source, f"{path.name} writes a style"
        for pattern in ("localStorage", "document.cookie"):
            assert pattern not in source, f"{path.name} keeps state beyond the tab"


def test_every_module_import_resolves_to_a_packaged_file() -> None:
    for path in SCRIPTS:
        for target in re.findall(r'from "(\.[^"]+)"', path.read_text()):
            assert (path.parent / target).resolve().is_file(), f"{path.name} imports a missing {target}"


def test_the_chart_library_is_vendored_with_its_licence(client) -> None:
    library = client.get("/console/static/vendor/chart.umd.min.js")
    assert library.status_code == 200
    assert b"Chart.js v4" in library.data[:200]
    assert "javascript" in library.mimetype
    assert b"MIT License" in (STATIC / "vendor" / "chart.js-LICENSE.md").read_bytes()


def test_static_files_do_not_escape_their_folder(client) -> None:
    for path in ("/console/static/../__init__.py", "/console/static/%2e%2e/__init__.py", "/console/static/nope.js"):
        assert client.get(path).status_code == 404


def test_whoami_names_the_tenant_and_the_scope_of_the_key(client, db, auth) -> None:
    answer = client.get("/v1/whoami", headers=auth)
    assert answer.status_code == 200
    assert answer.json["tenant"] == "acme"
    assert answer.json["read_only"] is False
    assert set(answer.json) == {"tenant", "tenant_id", "key_id", "read_only"}
    read_only = {"Authorization": f"Bearer {db.keys.create('acme', read_only=True)}"}
    assert client.get("/v1/whoami", headers=read_only).json["read_only"] is True
    assert client.get("/v1/whoami").status_code == 401


def test_package_data_declares_every_console_file() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["api.console"]
    package = STATIC.parent
    declared = {p for pattern in patterns for p in package.glob(pattern) if p.is_file()}
    assert ASSETS
    assert [str(p.relative_to(ROOT)) for p in ASSETS if p not in declared] == []

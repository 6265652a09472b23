"""The documentation site builds strictly, documents every public name, needs nothing
from the network, and typesets its formulas in a real browser.

The default tier builds the site once without running the demos
(`NEURODYN_GALLERY=none`, as `make docs-quick`); the gallery with one demo run is in
the slow tier."""

import functools
import http.server
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading

import pytest

import neurodyn as nd
import neurodyn.discrete as ndd
from neurodyn._demos import demo_files

from .test_public_names import public_names


REPO = pathlib.Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def build_site(out: pathlib.Path, gallery: str) -> str:
    """`mkdocs build --strict` into `out`; the build log."""
    env = {**os.environ, "NEURODYN_GALLERY": gallery}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-5000:]
    return log


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    log = build_site(out, gallery="none")
    return out, log


def html_ids(folder: pathlib.Path) -> set[str]:
    return {
        anchor
        for page in folder.rglob("*.html")
        for anchor in re.findall(r'\bid="([^"]+)"', page.read_text())
    }


def test_strict_build_has_no_warning(site):
    _, log = site
    assert "WARNING" not in log, log
    assert "MkDocs 2" not in log  # the banner of mkdocs-material >= 9.7.2


@pytest.mark.parametrize("module", [nd, ndd], ids=lambda m: m.__name__)
def test_every_public_name_has_an_api_entry(site, module):
    out, _ = site
    ids = html_ids(out / "api")
    missing = {
        name for name in public_names(module) if f"{module.__name__}.{name}" not in ids
    }
    assert not missing, f"no API entry for {sorted(missing)}"


def test_every_demo_has_a_gallery_page(site):
    out, _ = site
    for name, path in demo_files().items():
        page = (out / "gallery" / name / "index.html").read_text()
        # the script is on its page (its `run` definition, highlighted)
        run = r'def</span>(<span class="w"> </span>)?<span class="nf">run<'
        assert re.search(run, page), name


def test_no_page_loads_anything_from_the_network(site):
    out, _ = site
    for page in out.rglob("*.html"):
        text = page.read_text()
        remote = re.findall(
            r'<(?:script|link|img)\b[^>]*(?:src|href)="(https?:)?//', text
        )
        assert not remote, page
        assert '_static/mathjax/tex-svg.js"' in text, page


def served(folder: pathlib.Path):
    """An HTTP server of `folder` on 127.0.0.1 and the log of (path, status) it
    answered."""
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_request(self, code="-", size="-"):
            requests.append((self.path, int(code)))

    handler = functools.partial(Handler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, requests


def rendered_dom(url: str, tmp_path: pathlib.Path) -> str:
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu"]
        + [f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=10000"]
        + ["--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.skipif(
    CHROMIUM is None, reason="needs chromium (apt-get install chromium)"
)
@pytest.mark.parametrize("page", ["theory/", "api/neurodyn/relax/"])
def test_formulas_typeset_and_images_load_in_chromium(site, page, tmp_path):
    out, _ = site
    server, requests = served(out)
    try:
        dom = rendered_dom(f"http://127.0.0.1:{server.server_port}/{page}", tmp_path)
    finally:
        server.shutdown()
    maths = dom.count('class="arithmatex"')
    assert maths > 0
    assert dom.count("<mjx-container") >= maths  # every formula typeset
    assert "data-mjx-error" not in dom and "<mjx-merror" not in dom
    assert ("/_static/mathjax/tex-svg.js", 200) in requests
    assert all(code == 200 for _, code in requests), requests
    for src in re.findall(r'<img [^>]*src="([^"]+)"', dom):
        fetched = (out / page / src).resolve().relative_to(out.resolve())
        assert (f"/{fetched}", 200) in requests, src


@pytest.mark.slow
def test_gallery_embeds_a_current_run(tmp_path):
    """With one demo run, its gallery page shows that run's figures and metrics."""
    out = tmp_path / "site"
    build_site(out, gallery="first-order")
    page = (out / "gallery" / "first-order" / "index.html").read_text()
    run = REPO / ".cache" / "gallery" / "first-order"
    pngs = sorted(run.glob("*.png"))
    assert pngs
    for png in pngs:
        assert f'<img alt="{png.stem}" src="{png.name}" />' in page
        assert (out / "gallery" / "first-order" / png.name).read_bytes() == (
            png.read_bytes()
        )
    assert "<code>E_total</code>" in page  # the metrics table
    stamp = (REPO / ".cache" / "gallery" / "first-order.fingerprint").read_text()
    sys.path.insert(0, str(REPO / "docs" / "_hooks"))
    try:
        from gallery import code_fingerprint
    finally:
        sys.path.pop(0)
    assert stamp == code_fingerprint()


def test_getting_started_shows_the_example_code(site):
    out, _ = site
    page = (out / "getting_started" / "index.html").read_text()
    code = (REPO / "docs" / "examples" / "first_example.py").read_text()
    assert "8&lt;" not in page  # no unexpanded include
    for name in re.findall(r"nd\.(\w+)\(", code):  # every call of the example
        assert f'<span class="n">{name}</span>' in page, name

"""minicnn report RUN_DIR: one self-contained HTML page per run, opened in headless Chromium
(Debian's chromium, which .ci/run installs): it renders with no console error and every image
loads; and the check itself catches a broken image and a script error."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from minicnn.cli import main

MNIST = os.environ.get("MINICNN_DATA", "")
needs_mnist = pytest.mark.skipif(not os.path.isdir(MNIST),
                                 reason="needs MNIST: set MINICNN_DATA")
# After the page loaded: how many images it has, and how many of them did not decode.
CHECK = """<script>window.addEventListener("load", () => {
const images = Array.from(document.images);
const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).length;
document.body.setAttribute("data-images", images.length + ":" + broken); });</script>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def render(page: str, tmp_path) -> tuple[int, int, list[str]]:
    """(images, broken images, console errors) of `page` in headless Chromium."""
    path = tmp_path / "checked.html"
    path.write_text(page.replace("</body>", CHECK + "</body>"), encoding="utf-8")
    proc = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", "--virtual-time-budget=10000", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=180)
    found = re.search(r'data-images="(\d+):(\d+)"', proc.stdout)
    assert found, f"the page did not finish loading: {proc.stderr[-2000:]}"
    errors = [line for line in proc.stderr.splitlines()
              if "CONSOLE" in line and ("Uncaught" in line or "rror" in line)]
    return int(found.group(1)), int(found.group(2)), errors


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    if not os.path.isdir(MNIST):
        pytest.skip("needs MNIST: set MINICNN_DATA")
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--epochs", "1", "--limit", "600", "--out", str(out),
                 "--verbose", "0"]) == 0
    assert main(["report", str(out), "--limit", "300"]) == 0
    return out


@needs_mnist
def test_the_report_is_self_contained(run_dir):
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    for section in ("Training", "Gradient flow", "Inside the model", "Results on the test set"):
        assert f"<h2>{section}</h2>" in page
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources), sources
    assert "Total params" in page  # the model summary


@needs_mnist
def test_the_report_renders_in_chromium_with_every_image(run_dir, tmp_path):
    images, broken, errors = render((run_dir / "report.html").read_text(encoding="utf-8"),
                                    tmp_path)
    assert images >= 7 and broken == 0 and not errors, (images, broken, errors)


def test_the_chromium_check_catches_a_broken_image_and_a_script_error(tmp_path):
    page = ("<!DOCTYPE html><html><body><img src=\"data:image/png;base64,AAAA\">"
            "<script>throw new Error('planted')</script></body></html>")
    images, broken, errors = render(page, tmp_path)
    assert (images, broken) == (1, 1) and any("planted" in e for e in errors)


def test_report_errors_are_one_line(capsys, tmp_path):
    assert main(["report", str(tmp_path / "nothing")]) != 0
    assert "does not exist" in capsys.readouterr().err

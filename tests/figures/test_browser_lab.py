"""Notebook 01 live in JupyterLab: run it in headless Chromium, move the beta slider with the
keyboard, and check that the figure is redrawn.

JupyterLab serves a temporary copy of the notebook on 127.0.0.1 with a random token; the
kernel uses the cached base (REFIMPL_CACHE, trained first by the cpu_base fixture).
"""
from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser_support import chromium_page, require_chromium

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "01_dpo_from_rlhf.ipynb"
# Open the notebook through JupyterLab's own commands, start its kernel, run every cell.
RUN_ALL_JS = """async ([path, limit_ms]) => {
  const app = window.jupyterapp;
  await app.restored;
  const panel = await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
  await panel.context.ready;
  await panel.sessionContext.ready;
  app.shell.activateById(panel.id);
  const timeout = new Promise((_, fail) => setTimeout(() => fail(new Error('run-all timed out')), limit_ms));
  return await Promise.race([app.commands.execute('notebook:run-all-cells'), timeout]);
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {proc.returncode}:\n"
                               + log.read_text()[-2000:])
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"jupyter lab did not answer at {url} within {limit_s} s")


def _redrawn(figure, before_src: str, limit_s: float = 120) -> str:
    """The figure's src once it differs from ``before_src`` (the img element is replaced)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if figure.count() and (src := figure.get_attribute("src")) and src != before_src:
            return src
        time.sleep(0.25)
    raise AssertionError(f"the figure was not redrawn within {limit_s} s of moving the slider")


@pytest.fixture
def lab(tmp_path, cpu_base):
    """(url of a JupyterLab serving a copy of notebook 01, its log); stopped afterwards."""
    require_chromium()
    if importlib.util.find_spec("jupyterlab") is None:
        pytest.skip("JupyterLab is not installed (pip install -r requirements.txt)")
    from refimpl.core.utils import cache_dir
    work = tmp_path / "lab"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, work / NOTEBOOK)
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "REFIMPL_CACHE": str(cache_dir()),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={work}", "--LabApp.expose_app_in_browser=True",
         "--ServerApp.allow_root=True", "--LabApp.news_url=None",
         "--LabApp.extension_manager=readonly",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(f"{base}/api/status?token={token}", proc, tmp_path / "lab.log")
        yield f"{base}/lab?token={token}", tmp_path / "lab.log"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_beta_slider_redraws_the_figure(lab):
    url, log = lab
    with chromium_page() as (page, problems):
        page.set_default_timeout(120_000)
        page.goto(url)
        page.wait_for_function("() => !!window.jupyterapp")
        assert page.evaluate(RUN_ALL_JS, [NOTEBOOK, 300_000]) is True, \
            f"a cell of {NOTEBOOK} failed in JupyterLab; server log:\n{log.read_text()[-3000:]}"
        label = page.locator(".widget-label", has_text=re.compile(r"^\s*beta"))
        slider = page.locator(".widget-slider").filter(has=label)
        assert slider.count() == 1, "expected one slider whose description starts with 'beta'"
        interact = page.locator(".widget-interact").filter(has=slider)
        figure = interact.locator(".jp-OutputArea-output img").last
        readout = slider.locator(".widget-readout")
        figure.wait_for()
        page.wait_for_function("el => el.textContent.trim() !== ''", arg=readout.element_handle())
        before_src, before_value = figure.get_attribute("src"), readout.text_content().strip()

        slider.locator(".noUi-handle").first.focus()
        for _ in range(3):
            page.keyboard.press("ArrowRight")
        page.wait_for_function("([el, v]) => el.textContent.trim() !== v", timeout=20_000,
                               arg=[readout.element_handle(), before_value])  # the value moved
        after_src = _redrawn(figure, before_src)
        assert after_src.startswith("data:image/png") and after_src != before_src
        print(f"\nbeta {before_value} -> {readout.text_content().strip()}: figure redrawn "
              f"({len(before_src)} -> {len(after_src)} base64 characters)")
        if problems:
            print("browser notes:\n" + "\n".join(problems[:20]))

"""`zoo serve`: what the page does with each kind of model (in-process), and the page itself in a real
browser: headless Debian Chromium driven by Playwright, against `zoo serve` started on a free port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch

from tests.conftest import FAST_TRAINER, ROOT
from zoo.cli.serve.models import (
    classify_image,
    generate_text,
    image_batch,
    interpolation,
    kind_of,
    open_model,
    predict_rows,
    reconstructions,
    samples,
)
from zoo.errors import ZooError

# What the page test serves: a pretrained name, or None for a checkpoint this module trains in seconds.
# Once zoo ships weights for a names LM and a digits VAE, name them here (e.g. "lm": "transformer-names").
SERVED = {"image": "cnn-digits", "lm": None, "vae": None}
FIXTURE_CKPT = ROOT / "tests" / "fixtures" / "pre_move" / "iris_mlp_run" / "checkpoints" / "last.ckpt"
QUICK = {"lm": ("names_rnn", ["model.hidden=32", "model.embed_dim=32", "trainer.max_epochs=1", "data.batch_size=256"]),
         "vae": ("digits_vae", ["model.channels=[8,16]", "trainer.max_epochs=2",
                                "trainer.limit_test_batches=0"])}  # no test pass: no judge to train for FID


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> dict[str, str]:
    """The name or checkpoint path of each model the page test opens."""
    from zoo.fit import fit, resolve

    runs, out = tmp_path_factory.mktemp("runs"), dict(SERVED)
    trainer = [f"trainer.{k}={str(v).lower()}" for k, v in FAST_TRAINER.items()]
    for kind, name in SERVED.items():
        if name is None:
            experiment, overrides = QUICK[kind]
            cfg, _ = resolve([str(ROOT / "configs" / "experiment" / f"{experiment}.yaml")],
                             [f"run.dir={runs}", "logger=false", "callbacks.samples_every_n_epochs=0", *trainer,
                              *overrides])
            out[kind] = fit(cfg)["best_ckpt"]
    return out


# -- the actions, without a browser ------------------------------------------------------------------


def stroke_canvas(draw, size: int = 800, transparent: bool = False) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (size, size), (255, 255, 255, 0 if transparent else 255))
    draw(ImageDraw.Draw(img))
    return np.asarray(img)


DIGITS = {  # thick strokes, as the sketchpad's brush draws them
    "0": lambda d: d.ellipse([(250, 150), (550, 650)], outline="black", width=50),
    "1": lambda d: d.line([(400, 150), (400, 650)], fill="black", width=50),
    "3": lambda d: (d.arc([(250, 150), (550, 400)], 225, 135, fill="black", width=50),
                    d.arc([(250, 400), (550, 650)], 270, 180, fill="black", width=50)),
}


def test_drawn_digits_are_classified():
    m = open_model("cnn-digits")
    assert m.kind == "image" and m.metrics["test/acc"] > 0.98
    for digit, draw in DIGITS.items():
        probs = classify_image(m, {"composite": stroke_canvas(draw), "layers": [], "background": None})
        assert max(probs, key=probs.get) == digit, (digit, probs)
        assert abs(sum(probs.values()) - 1) < 1e-4
    # a stroke on a transparent canvas is the same picture as on white paper
    spec = m.model.spec
    assert torch.equal(image_batch(stroke_canvas(DIGITS["1"], transparent=True), spec),
                       image_batch(stroke_canvas(DIGITS["1"]), spec))
    x = image_batch(stroke_canvas(DIGITS["0"]), spec)
    assert x.shape == (1, 1, 8, 8) and x.max() == 1 and x.min() == 0  # ink in [0, 1], as the digits are
    with pytest.raises(ZooError, match="empty"):
        image_batch(stroke_canvas(lambda d: None), spec)


def test_open_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(FIXTURE_CKPT.read_bytes()[:1000])
    for name, message in (("/nonexistent/model.ckpt", "not found"), (str(bad), "corrupt"),
                          ("cnn-digitz", "Did you mean 'cnn-digits'"), ("", "Give a checkpoint")):
        with pytest.raises(ZooError, match=message) as e:
            open_model(name)
        assert len(str(e.value).splitlines()) == 1


def test_tabular_rows():
    m = open_model("mlp-iris")
    assert m.kind == "tabular"
    first, table = predict_rows(m, [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    assert max(first, key=first.get) == "setosa" and list(table["prediction"]) == ["setosa", "virginica"]
    with pytest.raises(ZooError, match="must be a number"):
        predict_rows(m, [["a", 3.5, 1.4, 0.2]])
    with pytest.raises(ZooError, match="Expected 4 columns"):
        predict_rows(m, [[1.0, 2.0]])


def test_generative_and_lm_actions(served):
    lm = open_model(served["lm"])
    assert lm.kind == "lm"
    texts = generate_text(lm, "ma", 5, 0.8, 0, 12, 0).splitlines()
    assert len(texts) == 5 and all(t.startswith("ma") for t in texts)
    assert generate_text(lm, "ma", 5, 0.8, 0, 12, 0) == generate_text(lm, "ma", 5, 0.8, 0, 12, 0)  # seeded
    vae = open_model(served["vae"])
    assert vae.kind == "vae" and kind_of(open_model("cnn-digits").model) == "image"
    grid = samples(vae, 16, 0)
    assert grid.dtype == np.uint8 and grid.ndim == 3 and min(grid.shape[:2]) >= 384  # enlarged for the page
    assert reconstructions(vae, 4).shape[1] > reconstructions(vae, 4).shape[0]  # one row: 4 pairs
    at_t, strip = interpolation(vae, 0, 1, 0.5)
    assert at_t.ndim == 3 and strip.shape[1] > strip.shape[0]
    with pytest.raises(ZooError, match="go from 0"):
        interpolation(vae, 0, 10**6, 0.5)


def test_every_kind_gets_its_tab():
    """Untrained models of the other kinds: a text classifier, a conditional GAN, and the diffusion model in
    the same tab as the GAN (both only sample)."""
    from zoo.cli.serve.models import KINDS, Loaded, classify_text
    from zoo.registry import DATA, MODELS

    def loaded(model: str, data: str, **kwargs) -> Loaded:
        datamodule = DATA.build(data)
        datamodule.prepare_data()
        m = MODELS.build(model, spec=datamodule.spec.to_dict(), **kwargs).eval()
        return Loaded(model, m, kind_of(m), {"data": {"name": data}}, None, {})

    text = loaded("rnn", "names_gender", hidden=16, embed_dim=8)
    probs = classify_text(text, "Mary")
    assert text.kind == "text" and len(probs) == 2 and abs(sum(probs.values()) - 1) < 1e-4
    gan = loaded("gan", "digits", conditional=True, channels=[8, 16])
    assert gan.kind == "gan"
    assert samples(gan, 8, 0, "3").shape == samples(gan, 8, 1, "any").shape
    with pytest.raises(ZooError, match="Unknown class 'x'"):
        samples(gan, 8, 0, "x")
    assert loaded("diffusion", "digits").kind == "gan" and "diffusion" in KINDS["gan"]
    assert kind_of(loaded("mlp", "diabetes").model) == "tabular"


# -- the page in a real browser ----------------------------------------------------------------------

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update"]  # FACTS.md: a closed network


def chromium() -> str:
    """Return the system Chromium's path, or skip with the reason."""
    pytest.importorskip("playwright.sync_api", reason="the browser test needs the playwright package")
    for name in (os.environ.get("ZOO_CHROMIUM"), "chromium", "chromium-browser"):
        path = name and shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium: install Debian's chromium (`make test` does it when run as root) for the browser test")


class ProxyRecorder:
    """A fake HTTP(S) proxy on 127.0.0.1 that records who tries to reach outside, and answers nothing."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.requests.append(conn.recv(200).decode(errors="replace").splitlines()[0])
                except (OSError, IndexError):
                    self.requests.append("(connection)")


def settled_box(page, selector: str) -> dict:
    """Return an element's bounding box once the page's layout has stopped moving it."""
    page.wait_for_selector(selector)
    box = None
    for _ in range(40):
        new = page.locator(selector).first.bounding_box()
        if new == box:
            return box
        box = new
        page.wait_for_timeout(250)
    return box


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # a server subprocess and a browser
def test_page_in_a_browser(served, tmp_path):
    executable = chromium()
    from playwright.sync_api import expect, sync_playwright

    proxy, port = ProxyRecorder(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    env.update({k: proxy.url for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")})
    for var in ("GRADIO_ANALYTICS_ENABLED", "HF_HUB_DISABLE_TELEMETRY", "HF_HUB_OFFLINE"):
        env.pop(var, None)  # zoo serve must switch them off itself
    env["GRADIO_TEMP_DIR"] = str(tmp_path / "gradio")  # the images the page shows, kept out of /tmp/gradio
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "zoo", "serve", served["image"], served["lm"], served["vae"],
                               "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url, bad = f"http://127.0.0.1:{port}/", tmp_path / "corrupt.ckpt"
    bad.write_bytes(Path(served["vae"]).read_bytes()[:2000])
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "zoo serve did not answer"
                time.sleep(0.5)
        requests: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url)
            # the page's start-up requests have all been answered (its scripts load slowly on a busy 2-core machine)
            page.wait_for_load_state("networkidle", timeout=120000)

            # draw a vertical stroke on the sketchpad: a "1" for the digits CNN
            page.locator("#image-pad button[aria-label='Brush']").first.click()
            box = settled_box(page, "#image-pad canvas")
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.2
            page.mouse.move(x, y)
            page.mouse.down()
            for i in range(1, 21):
                page.mouse.move(x, y + i * box["height"] * 0.03, steps=2)
            page.mouse.up()
            page.screenshot(path=tmp_path / "drawn.png", full_page=True)
            expect(page.locator("#image-label")).to_contain_text("%", timeout=60000)
            predicted = page.locator("#image-label").inner_text().split("\n")
            assert predicted[1] == "1", predicted  # the heading is the top class
            page.screenshot(path=tmp_path / "digit.png", full_page=True)

            page.get_by_role("tab", name="Language model").click()
            page.fill("#lm-prompt textarea", "ma")
            page.click("#lm-generate")
            expect(page.locator("#lm-output textarea")).not_to_have_value("", timeout=60000)
            names = page.locator("#lm-output textarea").input_value().splitlines()
            assert len(names) == 8 and all(n.startswith("ma") for n in names), names
            page.screenshot(path=tmp_path / "names.png", full_page=True)

            page.get_by_role("tab", name="VAE").click()
            image = page.locator("#vae-samples img")
            expect(image).to_be_visible(timeout=60000)
            assert image.evaluate("e => e.complete && e.naturalWidth") >= 384
            page.screenshot(path=tmp_path / "vae.png", full_page=True)

            for path, message in (("/nonexistent/model.ckpt", "not found"), (str(bad), "corrupt")):
                page.fill("#open-box input", path)
                page.keyboard.press("Enter")
                page.click("#open-button")
                expect(page.locator("#open-status")).to_contain_text(message, timeout=60000)
            page.screenshot(path=tmp_path / "bad-path.png", full_page=True)
            page.fill("#open-box input", "mlp-iris")  # the server is still there, and opens the next model
            page.keyboard.press("Enter")
            page.click("#open-button")
            expect(page.locator("#open-status")).to_contain_text("Opened", timeout=60000)
            page.click("#tabular-predict")
            expect(page.locator("#tabular-label")).to_contain_text("%", timeout=60000)
            page.screenshot(path=tmp_path / "iris.png", full_page=True)
            browser.close()
        assert server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    outside = sorted({u for u in requests if urlparse(u).scheme not in ("data", "blob")
                      and urlparse(u).netloc != f"127.0.0.1:{port}"})
    assert not outside, f"the page loaded from outside: {outside}"
    assert requests and not proxy.requests, f"the server tried to reach outside: {proxy.requests}"

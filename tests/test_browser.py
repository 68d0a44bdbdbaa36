"""The demo page in a real headless Chromium (Debian's chromium and chromium-driver, driven by
selenium): every panel's outputs equal the Python LiteRT Interpreter's on the same inputs.

Needs `chromium`, `chromium-driver` and `npm ci --prefix web`; without them these tests skip, except
with CI=true, where they fail.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_images

from aigc_keras.cli import main
from aigc_keras.demo import WEB, PageRandom
from aigc_keras.export.runtime import LiteRTModel

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CORPUS = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
          "ROMEO:\nYou are all resolved rather to die than to famish?\n\n") * 12
SCREENSHOTS = os.environ.get("AIGC_KERAS_SCREENSHOTS")  # a folder to keep each panel's screenshot in


def missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    if not (WEB / "node_modules" / "@litertjs" / "core").is_dir():
        return "LiteRT.js is missing (npm ci --prefix web)"
    return None


@pytest.fixture(scope="module")
def browser():
    why = missing()
    if why and os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run on CI: {why}")
    if why:
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1100,1500"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(180)
    try:
        yield driver
    finally:
        driver.quit()


def train_and_export(root: Path, exports: Path, families: tuple[str, ...]):
    images, labels = make_images()
    np.savez(root / "data.npz", images=images, labels=labels)
    (root / "corpus.txt").write_text(CORPUS)
    common = ["--epochs", "1", "--steps-per-epoch", "3", "--strategy", "default"]
    runs = {
        "gan": (["train", "gan", "--data", f"npz:{root / 'data.npz'}", "--conditional", "--latent-dim", "8",
                 "--base-filters", "8", "--batch-size", "16", *common], ["--batch", "3"]),
        "diffusion": (["train", "diffusion", "--data", f"npz:{root / 'data.npz'}", "--conditional", "--objective",
                       "flow", "--patch", "2", "--base-filters", "8", "--levels", "2", "--batch-size", "16", *common],
                      ["--steps", "4", "--sampler", "heun", "--batch", "2"]),
        "vae": (["train", "vae", "--data", f"npz:{root / 'data.npz'}", "--latent-dim", "3", "--base-filters", "4",
                 "--batch-size", "16", *common], ["--batch", "4"]),
        "text": (["train", "text", "--data", f"text:{root / 'corpus.txt'}", "--arch", "transformer", "--units", "16",
                  "--layers", "1", "--heads", "2", "--seq-len", "16", "--batch-size", "8", *common],
                 ["--length", "48", "--prompt-length", "8"]),
    }
    for family in families:
        train, export = runs[family]
        for args in ([*train, "--model-dir", str(root / family)],
                     ["export", family, "--model", str(root / family), "--out", str(exports / family), "--tflite",
                      *export]):
            with pytest.raises(SystemExit) as done:
                main(args)
            assert done.value.code == 0, args


class Demo:
    """`aigc-keras demo` in a process of its own, on a free port."""

    def __init__(self, exports: Path):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aigc_keras.cli", "demo", "--exports", str(exports), "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.process.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert found, line + self.process.stdout.read()
        self.url = found.group(1)

    def close(self):
        self.process.kill()
        self.process.wait()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    exports = root / "exports"
    train_and_export(root, exports, ("gan", "diffusion", "vae", "text"))
    demo = Demo(exports)
    yield demo, exports
    demo.close()


def press(driver, panel: str, action: str) -> None:
    """Click a panel's button and wait until the panel says it is done."""
    driver.execute_script(f"window.demo.{panel}.done = false")
    driver.find_element("css selector", f"#{panel} button[data-action='{action}']").click()
    deadline = time.time() + 180
    while not driver.execute_script(f"return window.demo.{panel}.done === true"):
        assert time.time() < deadline, f"{panel} {action} did not finish"
        time.sleep(0.05)
    message = driver.find_element("css selector", f"#{panel} [data-role=message]").text
    assert "failed" not in message, message


def page_value(driver, expression: str):
    """A value of the page as Python data (typed arrays become lists)."""
    return driver.execute_script(f"const v = {expression}; return v && v.BYTES_PER_ELEMENT ? Array.from(v) : v;")


def screenshot(driver, panel: str, folder: Path):
    folder = Path(SCREENSHOTS) if SCREENSHOTS else folder
    folder.mkdir(parents=True, exist_ok=True)
    driver.find_element("css selector", f"#{panel}").screenshot(str(folder / f"demo-{panel}.png"))


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_panels_equal_the_python_interpreter_on_the_same_inputs(browser, site, tmp_path):
    demo, exports = site
    browser.get(demo.url)
    assert browser.execute_async_script("window.demo.ready.then(arguments[0])") is True
    for panel, count in (("gan", 16), ("diffusion", 4), ("vae", 16)):  # a first picture on load, as many as asked
        assert len(page_value(browser, f"window.demo.{panel}.images")) == count * 16 * 16, panel
    assert page_value(browser, "window.demo.text.done") is True

    # GAN: 7 images in calls of 3, every class in turn.
    browser.find_element("css selector", "#gan [data-role=seed]").clear()
    browser.find_element("css selector", "#gan [data-role=seed]").send_keys("5")
    browser.find_element("css selector", "#gan [data-role=count]").clear()
    browser.find_element("css selector", "#gan [data-role=count]").send_keys("7")
    press(browser, "gan", "generate")
    noise = np.array(page_value(browser, "window.demo.gan.noise"), np.float32)
    np.testing.assert_allclose(noise, PageRandom(5).normal(7 * 8), atol=1e-6)  # the Python twin draws the same
    labels = np.array(page_value(browser, "window.demo.gan.labels"), np.int32)
    assert labels.tolist() == [0, 1, 0, 1, 0, 1, 0]
    python = LiteRTModel(exports / "gan" / "model.tflite")
    want = []
    for start in range(0, 7, 3):
        rows = np.minimum(np.arange(start, start + 3), 6)
        want.append(python.run("generate", z=noise.reshape(7, 8)[rows], label=labels[rows])["images"])
    want = np.concatenate(want)[:7]
    got = np.array(page_value(browser, "window.demo.gan.images"), np.uint8).reshape(want.shape)
    np.testing.assert_array_equal(got, want)
    screenshot(browser, "gan", tmp_path)

    # Diffusion: the whole sampler in one call, then step by step through denoise_step.
    meta = json.loads((exports / "diffusion" / "metadata.json").read_text())
    python = LiteRTModel(exports / "diffusion" / "model.tflite")
    press(browser, "diffusion", "generate")
    noise = np.array(page_value(browser, "window.demo.diffusion.noise"), np.float32).reshape(4, 16, 16, 1)
    labels = np.array(page_value(browser, "window.demo.diffusion.labels"), np.int32)
    want = np.concatenate([python.run("generate", noise=noise[i:i + 2], label=labels[i:i + 2],
                                      guidance=np.float32(1.5))["images"] for i in (0, 2)])
    got = np.array(page_value(browser, "window.demo.diffusion.images"), np.uint8).reshape(want.shape)
    np.testing.assert_array_equal(got, want)
    press(browser, "diffusion", "steps")  # the 4 images asked for, 2 per call of denoise_step
    assert browser.find_element("css selector", "#diffusion [data-role=counter]").text == "step 4 of 4"
    x = np.array(page_value(browser, "window.demo.diffusion.stepNoise"), np.float32).reshape(4, 16, 16, 1)
    np.testing.assert_array_equal(x, noise)  # where `generate` started
    step_labels = np.array(page_value(browser, "window.demo.diffusion.stepLabels"), np.int32)
    assert step_labels.tolist() == labels.tolist()
    times = meta["timesteps"] + [0.0]
    trajectory = browser.execute_script("return window.demo.diffusion.trajectory.map(a => Array.from(a))")
    assert len(trajectory) == len(meta["timesteps"]) == 4
    for i, page_images in enumerate(trajectory):
        outs = [python.run("denoise_step", x=x[k:k + 2], t=np.float32(times[i]), t_prev=np.float32(times[i + 1]),
                           label=step_labels[k:k + 2], guidance=np.float32(1.5)) for k in (0, 2)]
        want = np.concatenate([out["images"] for out in outs])
        np.testing.assert_array_equal(np.array(page_images, np.uint8).reshape(4, 16, 16, 1), want)
        x = np.concatenate([out["x_prev"] for out in outs])
    np.testing.assert_allclose(np.array(page_value(browser, "window.demo.diffusion.finalX")).reshape(x.shape), x,
                               atol=1e-5)
    screenshot(browser, "diffusion", tmp_path)

    # VAE: 5 images in calls of 4, then a row of 10 codes from one N(0, I) draw to another.
    python = LiteRTModel(exports / "vae" / "model.tflite")
    for action, count in (("generate", 5), ("morph", 10)):
        if action == "generate":
            browser.find_element("css selector", "#vae [data-role=count]").clear()
            browser.find_element("css selector", "#vae [data-role=count]").send_keys(str(count))
        press(browser, "vae", action)
        z = np.array(page_value(browser, "window.demo.vae.noise"), np.float32).reshape(count, 3)
        if action == "generate":
            np.testing.assert_allclose(z.reshape(-1), PageRandom(0).normal(count * 3), atol=1e-6)
        else:
            ends = PageRandom(0).normal(6).reshape(2, 3)
            np.testing.assert_allclose(z, ends[0] + np.linspace(0, 1, 10)[:, None] * (ends[1] - ends[0]), atol=1e-5)
        padded = np.concatenate([z, np.repeat(z[-1:], -count % 4, axis=0)])
        want = np.concatenate([python.run("generate", z=padded[i:i + 4])["images"] for i in range(0, count, 4)])
        got = np.array(page_value(browser, "window.demo.vae.images"), np.uint8).reshape(want[:count].shape)
        np.testing.assert_array_equal(got, want[:count])
    screenshot(browser, "vae", tmp_path)

    # Text: streamed through step (sampling in JavaScript), and generate in one call, 40 characters
    # past the 16-token context.
    for role, value in (("prompt", "All:"), ("length", "40"), ("temperature", "0.9"), ("top-k", "8"),
                        ("top-p", "0.95"), ("seed", "3")):
        field = browser.find_element("css selector", f"#text [data-role={role}]")
        field.clear()
        field.send_keys(value)
    press(browser, "text", "write")
    streamed = page_value(browser, "window.demo.text.streamedIds")
    uniform = np.array(page_value(browser, "window.demo.text.uniform"), np.float32)
    np.testing.assert_array_equal(uniform, PageRandom(3).uniform(40))
    text_meta = json.loads((exports / "text" / "metadata.json").read_text())
    prompt = [text_meta["vocabulary"].index(c) for c in "All:"]
    padded = np.zeros(8, np.int32)
    padded[:4] = prompt
    padded_uniform = np.zeros(48, np.float32)
    padded_uniform[:40] = uniform
    python = LiteRTModel(exports / "text" / "model.tflite")
    want = python.run("generate", prompt_ids=padded, prompt_length=np.int32(4), uniform=padded_uniform,
                      temperature=np.float32(0.9), top_k=np.int32(8), top_p=np.float32(0.95))["ids"][:40]
    assert streamed == want.tolist()
    press(browser, "text", "one-call")
    assert page_value(browser, "window.demo.text.generatedIds") == want.tolist()
    shown = browser.find_element("css selector", "#text [data-role=output]").text
    assert shown == "All:" + "".join(text_meta["vocabulary"][i] for i in want)
    screenshot(browser, "text", tmp_path)
    for panel in ("gan", "diffusion", "vae", "text"):
        assert "ms per" in browser.find_element("css selector", f"#{panel} [data-role=timing]").text
    assert console_errors(browser) == []


def test_the_edit_panel_completes_a_picture_and_a_drawing_as_python_litert_does(browser, site, tmp_path):
    from selenium.webdriver import ActionChains

    demo, exports = site
    browser.get(demo.url)
    assert browser.execute_async_script("window.demo.ready.then(arguments[0])") is True
    python = LiteRTModel(exports / "diffusion" / "model.tflite")

    def page_edit():
        """What the panel fed `edit` and drew, against Python's LiteRT on the same inputs (2 images per call)."""
        image = np.array(page_value(browser, "window.demo.edit.image"), np.uint8).reshape(16, 16, 1)
        mask = np.array(page_value(browser, "window.demo.edit.mask"), np.uint8).reshape(16, 16, 1)
        noise = np.array(page_value(browser, "window.demo.edit.noise"), np.float32).reshape(-1, 16, 16, 1)
        labels = np.array(page_value(browser, "window.demo.edit.labels"), np.int32)
        strength = np.float32(page_value(browser, "window.demo.edit.strength"))
        count = len(noise)
        want = np.concatenate([
            python.run("edit", image=np.repeat(image[None], 2, 0), mask=np.repeat(mask[None], 2, 0),
                       noise=noise[rows], strength=strength, label=labels[rows], guidance=np.float32(1.5))["images"]
            for rows in (np.minimum(np.arange(k, k + 2), count - 1) for k in range(0, count, 2))])[:count]
        got = np.array(page_value(browser, "window.demo.edit.images"), np.uint8).reshape(want.shape)
        np.testing.assert_array_equal(got, want)  # byte for byte
        kept = mask[..., 0] == 0
        np.testing.assert_array_equal(got[:, kept], np.repeat(image[None], count, 0)[:, kept])
        return image, mask, strength, count

    # On load: the diffusion panel's first picture, its top half masked and drawn anew.
    image, mask, strength, count = page_edit()
    first = np.array(page_value(browser, "window.demo.diffusion.images"), np.uint8)[:256].reshape(16, 16, 1)
    np.testing.assert_array_equal(image, first)
    assert strength == 1 and count == 4 and mask[:8].all() and not mask[8:].any()

    # A drawing made with the mouse: a stroke of ink, then a stroke of mask, three edits of it.
    press(browser, "edit", "clear")
    sketch = browser.find_element("css selector", "#edit [data-role=sketch]")
    for tool, start, step in (("draw", (-40, -40), (8, 8)), ("mask", (30, -50), (0, 10))):
        browser.find_element("css selector", f"#edit [data-role=tool-{tool}]").click()
        stroke = ActionChains(browser).move_to_element_with_offset(sketch, *start).click_and_hold()
        for _ in range(8):
            stroke = stroke.move_by_offset(*step)
        stroke.release().perform()
    browser.find_element("css selector", "#edit [data-role=count]").clear()
    browser.find_element("css selector", "#edit [data-role=count]").send_keys("3")
    press(browser, "edit", "edit")
    image, mask, strength, count = page_edit()
    assert count == 3 and strength == 1  # painting a mask sets strength 1
    assert 10 <= np.count_nonzero(image) < 120 and 5 <= np.count_nonzero(mask) < 80  # one stroke each
    assert "ms per" in browser.find_element("css selector", "#edit [data-role=timing]").text
    screenshot(browser, "edit", tmp_path)
    assert console_errors(browser) == []


def test_a_missing_export_says_how_to_make_it(browser, site, tmp_path):
    _, exports = site
    only_gan = tmp_path / "only_gan"
    only_gan.mkdir()
    shutil.copytree(exports / "gan", only_gan / "gan")
    demo = Demo(only_gan)
    try:
        browser.get(demo.url)
        assert browser.execute_async_script("window.demo.ready.then(arguments[0])") is True
        for panel in ("diffusion", "vae", "text"):
            message = browser.find_element("css selector", f"#{panel} [data-role=message]").text
            assert message.startswith(f"No {panel} export in") and f"aigc-keras export {panel} --tflite" in message
        message = browser.find_element("css selector", "#edit [data-role=message]").text
        assert message.startswith("No export with an edit signature in") and "aigc-keras export diffusion" in message
        assert "export/gan" in browser.find_element("css selector", "#gan [data-role=message]").text
        assert console_errors(browser) == []
    finally:
        demo.close()


def test_the_server_refuses_paths_outside_what_it_serves(site):
    import urllib.error
    import urllib.request

    demo, _ = site
    for path in ("exports/gan/saved_model/saved_model.pb", "vendor/@litertjs/../../package.json",
                 "vendor/@litertjs/core/../../../../README.md", "../aigc_keras/demo.py", "exports/../config.json"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(demo.url + path)
        assert refused.value.code == 404, path
    assert urllib.request.urlopen(demo.url + "exports/gan/metadata.json").status == 200


def test_a_colour_64x64_export_draws_in_the_page_as_in_python(browser, tmp_path):
    images, labels = make_images(n=32, size=64, channels=3)
    np.savez(tmp_path / "colour.npz", images=images, labels=labels)
    exports = tmp_path / "exports"
    for args in (["train", "gan", "--data", f"npz:{tmp_path / 'colour.npz'}", "--model-dir", str(tmp_path / "gan"),
                  "--latent-dim", "8", "--base-filters", "4", "--batch-size", "8", "--epochs", "1",
                  "--steps-per-epoch", "2", "--strategy", "default"],
                 ["export", "gan", "--model", str(tmp_path / "gan"), "--out", str(exports / "gan"), "--tflite",
                  "--batch", "2"]):
        with pytest.raises(SystemExit) as done:
            main(args)
        assert done.value.code == 0, args
    demo = Demo(exports)
    try:
        browser.get(demo.url)
        assert browser.execute_async_script("window.demo.ready.then(arguments[0])") is True
        browser.find_element("css selector", "#gan [data-role=count]").clear()
        browser.find_element("css selector", "#gan [data-role=count]").send_keys("3")
        press(browser, "gan", "generate")
        noise = np.array(page_value(browser, "window.demo.gan.noise"), np.float32).reshape(3, 8)
        labels = np.array(page_value(browser, "window.demo.gan.labels"), np.int32)
        python = LiteRTModel(exports / "gan" / "model.tflite")
        want = np.concatenate([python.run("generate", z=noise[rows], label=labels[rows])["images"]
                               for rows in ([0, 1], [2, 2])])[:3]
        got = np.array(page_value(browser, "window.demo.gan.images"), np.uint8).reshape(want.shape)
        assert want.shape == (3, 64, 64, 3)
        np.testing.assert_array_equal(got, want)
        canvas = browser.find_element("css selector", "#gan [data-role=canvas]")
        assert int(canvas.get_attribute("width")) >= 2 * 64 and console_errors(browser) == []
    finally:
        demo.close()


def test_a_few_step_students_export_draws_in_the_page_as_in_python(browser, tmp_path):
    """A student distilled by reflow (`train --distill-from`): its export's one-graph Euler in 4 calls."""
    images, labels = make_images()
    np.savez(tmp_path / "data.npz", images=images, labels=labels)
    common = ["--epochs", "1", "--batch-size", "16", "--strategy", "default"]
    teacher, student, exports = tmp_path / "teacher", tmp_path / "student", tmp_path / "exports"
    for args in (["train", "diffusion", "--data", f"npz:{tmp_path / 'data.npz'}", "--patch", "2", "--base-filters",
                  "8", "--levels", "1", "--steps-per-epoch", "3", "--model-dir", str(teacher), *common],
                 ["train", "diffusion", "--distill-from", str(teacher), "--distill-pairs", "32", "--steps-per-epoch",
                  "2", "--model-dir", str(student), *common],
                 ["export", "diffusion", "--model", str(student), "--out", str(exports / "fast"), "--tflite",
                  "--batch", "2"]):
        with pytest.raises(SystemExit) as done:
            main(args)
        assert done.value.code == 0, args
    meta = json.loads((exports / "fast" / "metadata.json").read_text())
    assert (meta["sampler"], meta["steps"], meta["conditional"]) == ("euler", 4, True)
    demo = Demo(exports)
    try:
        browser.get(demo.url)
        assert browser.execute_async_script("window.demo.ready.then(arguments[0])") is True
        press(browser, "diffusion", "generate")
        assert "euler x4" in browser.find_element("css selector", "#diffusion [data-role=message]").text
        noise = np.array(page_value(browser, "window.demo.diffusion.noise"), np.float32).reshape(4, 16, 16, 1)
        labels = np.array(page_value(browser, "window.demo.diffusion.labels"), np.int32)
        python = LiteRTModel(exports / "fast" / "model.tflite")
        want = np.concatenate([python.run("generate", noise=noise[i:i + 2], label=labels[i:i + 2],
                                          guidance=np.float32(1.5))["images"] for i in (0, 2)])
        got = np.array(page_value(browser, "window.demo.diffusion.images"), np.uint8).reshape(want.shape)
        np.testing.assert_array_equal(got, want)
        assert console_errors(browser) == []
    finally:
        demo.close()

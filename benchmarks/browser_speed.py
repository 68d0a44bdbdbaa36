"""Generation speed in a real browser: the demo page (LiteRT.js 2.5.3 on its WebAssembly CPU path, in
Debian's headless Chromium) on the given exports, beside the Python LiteRT CompiledModel figure for
the same call. Needs chromium, chromium-driver, selenium and `npm ci --prefix web`.

    python benchmarks/browser_speed.py --exports export      # export/gan, export/diffusion, export/vae, export/text

Prints a table and saves results.json, table.md and a screenshot of each panel (demo-PANEL.png) in --out.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import median_ms  # noqa: E402

from aigc_keras.demo import exports_index  # noqa: E402
from aigc_keras.export.runtime import LiteRTModel  # noqa: E402


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1100,1500"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_script_timeout(600)
    return driver


def press(driver, panel: str, action: str):
    driver.execute_script(f"window.demo.{panel}.done = false")
    driver.find_element("css selector", f"#{panel} button[data-action='{action}']").click()
    while not driver.execute_script(f"return window.demo.{panel}.done === true"):
        time.sleep(0.05)


def python_ms(folder: Path, signature: str, meta: dict) -> float:
    """Median ms of one call in Python's LiteRT CompiledModel, on zeros-like inputs of the right shapes."""
    runner = LiteRTModel(folder / "model.tflite", "compiled")
    rng = np.random.default_rng(0)
    inputs = {}
    for name, t in meta["signatures"][signature]["inputs"].items():
        inputs[name] = rng.standard_normal(t["shape"]).astype(np.float32) if t["dtype"] == "float32" else \
            np.zeros(t["shape"], t["dtype"])
    if signature == "denoise_step":
        inputs["t"] = np.array(meta["timesteps"][1], inputs["t"].dtype)
        inputs["t_prev"] = np.array(meta["timesteps"][2], inputs["t"].dtype)
    if signature == "edit":  # every row runs at any strength (skipped rows are selected away): the full cost
        inputs["mask"][:] = 255
        inputs["strength"] = np.float32(1.0)
    if signature == "generate" and "uniform" in inputs:
        inputs.update(uniform=rng.random(inputs["uniform"].shape).astype(np.float32), prompt_length=np.int32(6),
                      temperature=np.float32(0.8), top_k=np.int32(40), top_p=np.float32(0.95))
        inputs["prompt_ids"][:6] = 1
    return median_ms(lambda: runner.run(signature, **inputs), repeats=10)


class Page:
    """The demo page on the exports in `exports`, in a headless browser: `ms(panel, action, key)` is the
    median over `repeats` presses of what the page measured of one call."""

    def __init__(self, exports: Path):
        self.server = subprocess.Popen([sys.executable, "-m", "aigc_keras.cli", "demo", "--exports", str(exports),
                                        "--port", "0"], stdout=subprocess.PIPE, text=True)
        url = re.search(r"(http://\S+/)", self.server.stdout.readline()).group(1)
        self.driver = browser()
        self.driver.get(url)
        assert self.driver.execute_async_script("window.demo.ready.then(arguments[0])")
        self.version = self.driver.execute_script("return navigator.userAgent")

    def ms(self, panel: str, action: str, key: str, repeats: int) -> float:
        times = []
        for _ in range(repeats):
            press(self.driver, panel, action)
            value = self.driver.execute_script(f"return window.demo.{panel}.{key}")
            times.append(statistics.median(value) if isinstance(value, list) else value)
        return statistics.median(times)

    def close(self):
        self.driver.quit()
        self.server.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exports", type=Path, default=Path("export"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/browser_speed"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    exports, _ = exports_index(args.exports)  # (runnable exports, broken ones)
    found = {e["metadata"]["family"]: (args.exports / e["name"], e["metadata"]) for e in exports}
    page = Page(args.exports)
    rows, shot = [], set()
    try:
        for family, panel, action, key, signature, per in (
                ("gan", "gan", "generate", "msPerCall", "generate", "image"),
                ("diffusion", "diffusion", "generate", "msPerCall", "generate", "image"),
                ("diffusion", "diffusion", "steps", "msPerStep", "denoise_step", "step"),
                ("diffusion", "edit", "edit", "msPerCall", "edit", "image"),
                ("vae", "vae", "generate", "msPerCall", "generate", "image"),
                ("text", "text", "write", "msPerStep", "step", "character (streamed)"),
                ("text", "text", "one-call", "msPerGeneratedId", "generate", "character (one call)")):
            if family not in found and not (family == "text" and "lstm" in found):
                continue
            folder, meta = found.get(family) or found["lstm"]
            browser_ms = page.ms(panel, action, key, args.repeats)
            python = python_ms(folder, signature, meta)
            batch = meta.get("batch", 1)
            if per == "image":
                browser_ms, python = browser_ms / batch, python / batch
            if per == "character (one call)":
                python = python / meta["length"]
            if panel not in shot:  # each panel as its first action left it
                page.driver.find_element("css selector", f"#{panel}").screenshot(str(args.out / f"demo-{panel}.png"))
                shot.add(panel)
            rows.append({"export": folder.name, "signature": signature, "per": per, "browser_ms": browser_ms,
                         "python_compiled_ms": python, "steps": meta.get("steps")})
            print(json.dumps(rows[-1]), flush=True)
    finally:
        page.close()
    lines = [f"Browser: {page.version}; LiteRT.js 2.5.3, WebAssembly CPU path, single thread.", "",
             "| export | signature | ms per | browser (LiteRT.js wasm) | Python LiteRT CompiledModel |",
             "|---|---|---|---|---|"]
    for r in rows:
        steps = f" ({r['steps']} steps)" if r["steps"] and r["signature"] == "generate" else ""
        lines.append(f"| {r['export']} | {r['signature']}{steps} | {r['per']} | {r['browser_ms']:.2f} | "
                     f"{r['python_compiled_ms']:.2f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    (args.out / "table.md").write_text(table)
    (args.out / "results.json").write_text(json.dumps({"browser": page.version, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

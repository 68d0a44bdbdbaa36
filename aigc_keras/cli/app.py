"""The click command tree."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .. import families
from ..commands import config_argv, parity_text, quality_text
from ..version import __version__
from . import evaluate


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="aigc-keras")
def cli():
    """Train, sample, export and inspect generative Keras models.

    \b
    Examples:
    aigc-keras train gan                               # DCGAN on the embedded MNIST
    aigc-keras sample gan --num 64 --out digits.png    # a PNG grid of generated digits
    aigc-keras export gan --tflite                     # SavedModel + LiteRT for on-device use
    aigc-keras evaluate saved_models/gan               # FID/KID and mode coverage
    aigc-keras info saved_models/gan                   # options and last metrics of a model
    """


@cli.group(epilog="""\b
Examples:
  aigc-keras train gan
  aigc-keras train diffusion
  aigc-keras train text            # also `train lstm`
  aigc-keras train classifier --data mnist
  aigc-keras train gan --help      # every option of the family""")
def train():
    """Train a model family (the same command again resumes an interrupted run)."""


@cli.group(epilog="""\b
Examples:
  aigc-keras sample gan --num 64 --seed 0 --out digits.png
  aigc-keras sample diffusion --steps 25 --out d.png
  aigc-keras sample text --prompt "ROMEO:" --temperature 0.8 --top-p 0.95""")
def sample():
    """Generate from a trained model."""


@cli.group(epilog="""\b
Examples:
  aigc-keras export gan --tflite
  aigc-keras export diffusion --tflite --steps 8
  aigc-keras export text --tflite""")
def export():
    """Export a trained model as a SavedModel and a LiteRT .tflite file."""


GROUPS = {"train": train, "sample": sample, "export": export}
for _name in (*families.NAMES, *families.ALIASES):  # every family's commands, under each of its names
    for _verb, _command in families.cli(_name).commands(_name).items():
        GROUPS[_verb].add_command(_command)
cli.add_command(evaluate.evaluate)


@cli.command(epilog="""\b
Examples:
  aigc-keras demo                           # the exports in export/, on http://127.0.0.1:8765/
  aigc-keras demo --exports my_exports --port 0""")
@click.option("--exports", default="export", show_default=True, help="folder whose export folders the page runs")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to serve on (127.0.0.1: this machine)")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="port (0: a free one)")
@click.option("--web", help="the demo page's folder [default: web/ of this checkout]")
def demo(exports, host, port, web):
    """Serve the demo page: every export generates in your browser with LiteRT.js (WebAssembly)."""
    import time

    from ..demo import exports_index, serve

    server = serve(exports, host, port, web)
    found, broken = exports_index(server.exports_folder)
    listed = ", ".join(f"{e['name']} ({e['metadata']['family']})" for e in found)
    address, bound = server.server_address[:2]
    click.echo(f"serving the demo on http://{address}:{bound}/ (exports: {listed or 'none yet'}); Ctrl-C stops it")
    for entry in broken:
        click.echo(f"warning: {exports}/{entry['name']} cannot run in the page: {entry['why']}", err=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()


@cli.command(epilog="""\b
Examples:
  aigc-keras info saved_models/gan
  aigc-keras info saved_models/gan --json
  aigc-keras info export/gan
  aigc-keras info samples.png          # how a picture was made, and the command that makes it again""")
@click.argument("model_dir", default="saved_models/gan")
@click.option("--json", "as_json", is_flag=True, help="print config, data and history as JSON")
def info(model_dir, as_json):
    """Show a trained model's options, data, progress and last metrics, what an export folder holds, or
    how a PNG or GIF that aigc-keras wrote was made."""
    from ..folders import marked_kind
    from ..model_dir import ModelDir

    if Path(model_dir).suffix.lower() in (".png", ".gif") and not Path(model_dir).is_dir():
        return picture_info(Path(model_dir), as_json)
    if marked_kind(Path(model_dir)) == "export":
        return export_info(Path(model_dir), as_json)
    md = ModelDir(model_dir)
    record, config, history = md.record(), md.config(), md.history()
    if as_json:
        click.echo(json.dumps({**record, "history": history}, indent=2))
        return
    data = record["data"]
    done = history[-1]["epoch"] if history else 0
    state = "finished" if md.model.exists() else "not finished (rerun its train command to resume)"
    click.echo(f"family:   {record['family']}")
    click.echo(f"folder:   {md.path} ({state})")
    click.echo(f"data:     {data.get('spec', '?')} ({describe_data(data)})")
    click.echo(f"epochs:   {done} of {config.epochs} ({sum(h['seconds'] for h in history):.0f} s)")
    if history:
        last = history[-1]
        metrics = "  ".join(f"{k} {v:.4g}" if isinstance(v, (int, float)) else f"{k} {v}"
                            for k, v in last.items() if k not in ("epoch", "seconds"))
        click.echo(f"metrics:  {metrics}  (epoch {last['epoch']})")
    argv = config_argv(config)
    click.echo(f"command:  aigc-keras train {record['family']} --model-dir {md.path} {' '.join(argv)}")
    if md.model.exists():
        click.echo(f"model:    {md.model} ({md.model.stat().st_size / 1e6:.1f} MB)")


def picture_info(path: Path, as_json: bool) -> None:
    from ..folders import MODEL_FILE
    from ..provenance import fingerprint, read

    made = read(path)
    if as_json:
        click.echo(json.dumps(made, indent=2, ensure_ascii=False))
        return
    settings = {k: v for k, v in made.items()
                if k not in ("generated", "generator", "family", "model", "model_fingerprint", "command")}
    click.echo(f"picture:  {path} (generated by a {made['family']} model; written by {made.get('generator', '?')})")
    expected = made.get("model_fingerprint")
    now = fingerprint(Path(made.get("model", "")) / MODEL_FILE)
    if expected is None:
        state = ""
    elif now == expected:
        state = f" (fingerprint {expected}: that folder holds this model now)"
    elif now is None:
        state = f" (fingerprint {expected}: no model is there now)"
    else:
        state = f" (fingerprint {expected}: that folder now holds another model, {now})"
    click.echo(f"model:    {made.get('model', '?')}{state}")
    click.echo(f"settings: {', '.join(f'{k} {v}' for k, v in settings.items()) or 'none'}")
    click.echo(f"command:  {made['command']}" if "command" in made else
               "command:  none makes it again (a training preview: its epoch's weights changed on)")
    click.echo("note:     this record is open and removable (re-encoding drops it), not a watermark")


def export_info(folder: Path, as_json: bool) -> None:
    from ..export import read_metadata

    meta = read_metadata(folder)
    if as_json:
        click.echo(json.dumps(meta, indent=2))
        return
    files = meta["files"]
    tflite = f", model.tflite ({files['tflite_bytes'] / 1e6:.2f} MB, quantize={meta.get('quantize')})" \
        if "tflite" in files else " (no model.tflite: export with --tflite for apps and the demo)"
    click.echo(f"family:   {meta['family']}")
    click.echo(f"folder:   {folder} (an export of {meta.get('source', '?')})")
    click.echo(f"files:    saved_model/{tflite}")
    click.echo(f"batch:    {meta.get('batch', '?')}")
    click.echo(f"signatures: {', '.join(meta['signatures'])}")
    if "parity" in meta:
        click.echo(f"parity:   {parity_text(meta)}")
    quality = meta.get("quality") or {}
    if quality.get("measured"):
        click.echo(f"quality:  {quality_text(quality)}")
    click.echo(f"versions: {', '.join(f'{k} {v}' for k, v in meta.get('versions', {}).items())}")


def describe_data(data: dict) -> str:
    if "num_characters" in data:
        kind = (data.get("tokenizer") or {}).get("kind", "?")
        return f"{data['num_characters']} characters, {data.get('vocab_size', '?')} token ids ({kind})"
    shape = "x".join(str(d) for d in data.get("image_shape", []))
    return f"{data.get('num_examples', '?')} images {shape}, {len(data.get('class_names', [])) or 'no'} classes"

"""`train classifier` (the feature network of the image metrics) and `evaluate`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from .. import fileio
from ..console import import_tensorflow_quietly
from ..diffusion.config import SAMPLERS
from ..errors import AigcError, reason
from ..metrics.config import ClassifierConfig
from .common import train_command
from .options import FiniteFloat

train_classifier = train_command(
    ClassifierConfig,
    "Train the small CNN whose features FID/KID use for small images (e.g. --data idx:fashion/).",
    [" --data mnist --model-dir saved_models/classifier",
     " --data idx:data/fashion_mnist --model-dir saved_models/fashion-classifier"],
)


@click.command(epilog="""\b
Examples:
  aigc-keras evaluate saved_models/gan --num 10000
  aigc-keras evaluate saved_models/diffusion --sampler ddim --steps 50 --num 2000
  aigc-keras evaluate saved_models/gan --classifier saved_models/fashion-classifier --precision-recall
  aigc-keras evaluate saved_models/lstm
  aigc-keras evaluate saved_models/lstm --data text:held_out.txt
  aigc-keras evaluate export/gan --num 2000                # what the .tflite generates, run in LiteRT""")
@click.argument("model_dir")
@click.option("--num", type=click.IntRange(min=4),
              help="images: samples to draw, and real images in each reference set [default: 1000]")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="noise and subset seed")
@click.option("--classifier", "classifier_dir",
              help="feature classifier folder [default: the shipped one for mnist, else InceptionV3]")
@click.option("--subsets", default=10, show_default=True, type=click.IntRange(min=1), help="KID subsets")
@click.option("--subset-size", default=1000, show_default=True, type=click.IntRange(min=2),
              help="KID subset size (at most half of each set)")
@click.option("--precision-recall", is_flag=True, help="also k-NN precision and recall (k=3)")
@click.option("--sampler", type=click.Choice(SAMPLERS),
              help="diffusion: sampler [default: ddim for DDPM models, euler for flow models]")
@click.option("--steps", type=click.IntRange(min=1), help="diffusion: sampling steps [default: the sampler's]")
@click.option("--eta", type=FiniteFloat(0.0, 1.0), help="diffusion: DDIM noise")
@click.option("--guidance", type=FiniteFloat(), help="diffusion: classifier-free guidance weight (conditional models)")
@click.option("--data", "data_spec", help="text models: text spec to score [default: the validation split]")
@click.option("--json", "as_json", is_flag=True, help="print the metrics as JSON")
def evaluate(model_dir, num, seed, classifier_dir, subsets, subset_size, precision_recall, sampler, steps, eta,
             guidance, data_spec, as_json):
    """Measure a trained model, or an export's .tflite (run in LiteRT's CompiledModel API); print a
    table and write metrics.json beside it.

    Image models: FID and KID of --num samples against --num real training images, the same
    for two disjoint real sets (the floor a perfect model would reach at this size), and mode
    coverage where a classifier gives classes. Text models: bits per character and perplexity
    on the validation split (or --data), with characters outside the vocabulary counted.
    """
    from ..folders import marked_kind

    source = _export_source(model_dir) if marked_kind(Path(model_dir)) == "export" else _model_source(model_dir)
    family_name = source["family"]
    diffusion_options = {"sampler": sampler, "steps": steps, "eta": eta, "guidance": guidance}
    given = [f"--{k}" for k, v in diffusion_options.items() if v is not None]
    if family_name != "diffusion" and given:
        raise AigcError(f"{', '.join(given)} apply to diffusion models; {model_dir} holds a {family_name} model")
    if source["export"] and (sampler or steps or eta is not None):
        raise AigcError(f"{model_dir} is an export: its sampler and steps are fixed in the file "
                        f"({source['metadata'].get('sampler')}, {source['metadata'].get('steps')} steps)")
    if family_name == "lstm":
        if num is not None or classifier_dir or precision_recall:
            raise AigcError("--num, --classifier and --precision-recall apply to image models")
        return evaluate_text(source, data_spec, as_json)
    if data_spec:
        raise AigcError("--data applies to text models: image models are compared with their training data")
    if family_name not in ("gan", "diffusion"):
        raise AigcError(f"evaluate takes a generator (gan, diffusion or lstm); {model_dir} holds a {family_name} model")
    num = num or 1000
    import_tensorflow_quietly()
    from ..data import load_images
    from ..families import get_family
    from ..metrics.evaluate import evaluate_images, generate, real_sets
    from ..metrics.features import feature_net

    start = time.time()
    family = get_family(family_name)
    net = feature_net(source["data"], classifier_dir)
    if source["export"]:
        runner = source["runner"]()
        options = {"guidance": guidance}

        def sample(n, s):
            return family.litert_sample(runner, source["metadata"], n, s, **options)[0]
    else:
        model = source["model"]()
        options = {}
        if family_name == "diffusion":
            from ..diffusion.family import checked_sampler

            _, sampler, steps = checked_sampler(model, sampler, steps, eta or 0.0)
            options = {"sampler": sampler, "steps": steps, "eta": eta or 0.0, "guidance": guidance}

        def sample(n, s):
            return family.sample(model, n, s, **options)[0]
    real, floor = real_sets(load_images(source["data"]), num, seed)
    result = evaluate_images(generate(sample, num, seed), real, floor, net, subsets, subset_size, precision_recall,
                             seed)
    report = {**source["describe"], "family": family_name, "data": source["data"],
              "options": {"num": num, "seed": seed, **options}, **result, "seconds": round(time.time() - start, 1)}
    _write_report(source, report, as_json, format_report(report))


def _model_source(path) -> dict:
    """What `evaluate` needs of a trained model folder."""
    from ..training.model_dir import ModelDir

    md = ModelDir(path)
    run = md.run()
    return {"export": False, "family": run["family"], "data": run["data"]["spec"], "config": run["config"],
            "folder": md.path, "describe": {"model_dir": str(md.path)}, "model": lambda: md.load_model(run["family"])}


def _export_source(path) -> dict:
    """What `evaluate` needs of an export folder: its metadata and its .tflite in LiteRT."""
    folder = Path(path)
    try:
        metadata = fileio.read_json(folder / "metadata.json")
        family, config = metadata["family"], metadata["config"]
    except (OSError, ValueError, KeyError, TypeError):
        raise AigcError(f"{folder}/metadata.json is missing or corrupt: export the model again") from None
    tflite = folder / metadata.get("files", {}).get("tflite", "model.tflite")
    if not tflite.is_file():
        raise AigcError(f"{folder} has no model.tflite: export with --tflite to evaluate it")

    def runner():
        from ..export.runtime import LiteRTModel

        try:
            return LiteRTModel(tflite, "compiled")
        except Exception as e:
            raise AigcError(f"LiteRT cannot load {tflite}: {reason(e)}") from None

    return {"export": True, "family": family, "data": config["data"], "config": config, "folder": folder,
            "metadata": metadata, "runner": runner,
            "describe": {"export_dir": str(folder), "tflite": str(tflite), "quantize": metadata.get("quantize"),
                         "runtime": "LiteRT CompiledModel"}}


def _write_report(source: dict, report: dict, as_json: bool, table: str) -> None:
    fileio.write_json(source["folder"] / "metrics.json", report)
    click.echo(json.dumps(report, indent=2) if as_json else table)
    if not as_json:
        click.echo(f"wrote {source['folder'] / 'metrics.json'}")


def evaluate_text(source: dict, data_spec: str | None, as_json: bool) -> None:
    import_tensorflow_quietly()
    from ..data.text import load_text
    from ..families import get_family
    from ..metrics.text import text_metrics

    start = time.time()
    if data_spec:
        text, data = load_text(data_spec).text, data_spec
    else:
        split = source["config"]["validation_split"]
        text, data = load_text(source["data"]).split(split)[1], f"{source['data']} (last {split:.0%})"
    if source["export"]:
        metrics = get_family("lstm").litert_metrics(source["runner"](), source["metadata"], text)
    else:
        metrics = text_metrics(source["model"](), text)
    report = {**source["describe"], "family": "lstm", "data": data, **metrics, "seconds": round(time.time() - start, 1)}
    where = next(iter(source["describe"].values()))
    table = "\n".join([
        f"{source['config']['arch']} {where}; text {data}",
        f"bits per character  {report['bits_per_character']:.4f}   ({report['characters']} characters)",
        f"bits per token      {report['bits_per_token']:.4f}   ({report['tokens']} tokens)",
        f"perplexity          {report['perplexity']:.3f}   (per token)",
        f"unknown characters  {report['unknown_characters']}   (outside the vocabulary, scored as id 0)",
    ])
    _write_report(source, report, as_json, table)


def format_report(report: dict) -> str:
    """The image metrics as a small table."""
    options = ", ".join(f"{k} {v}" for k, v in report["options"].items() if v is not None)
    has_pr = "precision" in report["samples"]
    lines = [
        f"{report['family']} {report.get('model_dir') or report['tflite'] + ' in LiteRT'} ({options}); "
        f"data {report['data']}",
        f"features: {report['features']}; {report['num_samples']} samples against {report['num_real']} real images",
        "",
        f"{'':14}{'FID':>10}{'KID':>22}" + (f"{'precision':>11}{'recall':>8}" if has_pr else ""),
    ]
    for key, name in (("samples", "samples"), ("real_vs_real", "real vs real")):
        row = report[key]
        kid = f"{row['kid']:.4g} ± {row['kid_std']:.2g}"
        line = f"{name:14}{row['fid']:>10.3f}{kid:>22}"
        if has_pr:
            line += f"{row['precision']:>11.3f}{row['recall']:>8.3f}"
        lines.append(line)
    coverage = report.get("mode_coverage")
    if coverage:
        lines.append("")
        for key in ("samples", "real"):
            c = coverage[key]
            lines.append(f"mode coverage ({key}): entropy {c['entropy']:.3f}, smallest class "
                         f"{c['min_class_share']:.1%}, mean confidence {c['mean_confidence']:.3f}")
        shares = coverage["samples"]["class_share"]
        lines.append("class shares (samples): " + " ".join(f"{i}:{s:.1%}" for i, s in enumerate(shares)))
    lines.append(f"({report['seconds']:.0f} s)")
    return "\n".join(lines)

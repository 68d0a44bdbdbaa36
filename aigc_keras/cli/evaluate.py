"""`train classifier` (the feature network of the image metrics) and `evaluate`."""

from __future__ import annotations

import json
import time

import click

from .. import fileio
from ..console import import_tensorflow_quietly
from ..diffusion.config import SAMPLERS
from ..errors import AigcError
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
  aigc-keras evaluate saved_models/lstm --data text:held_out.txt""")
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
@click.option("--sampler", type=click.Choice(SAMPLERS), help="diffusion: sampler [default: ddim]")
@click.option("--steps", type=click.IntRange(min=1), help="diffusion: sampling steps [default: 50; T for ddpm]")
@click.option("--eta", type=FiniteFloat(0.0, 1.0), help="diffusion: DDIM noise")
@click.option("--guidance", type=FiniteFloat(), help="diffusion: classifier-free guidance weight (conditional models)")
@click.option("--data", "data_spec", help="text models: text spec to score [default: the validation split]")
@click.option("--json", "as_json", is_flag=True, help="print the metrics as JSON")
def evaluate(model_dir, num, seed, classifier_dir, subsets, subset_size, precision_recall, sampler, steps, eta,
             guidance, data_spec, as_json):
    """Measure a trained model; print a table and write metrics.json beside the model.

    Image models: FID and KID of --num samples against --num real training images, the same
    for two disjoint real sets (the floor a perfect model would reach at this size), and mode
    coverage where a classifier gives classes. Text models: bits per character and perplexity
    on the validation split (or --data), with characters outside the vocabulary counted.
    """
    from ..training.model_dir import ModelDir

    md = ModelDir(model_dir)
    run = md.run()
    family_name = run["family"]
    diffusion_options = {"sampler": sampler, "steps": steps, "eta": eta, "guidance": guidance}
    given = [f"--{k}" for k, v in diffusion_options.items() if v is not None]
    if family_name != "diffusion" and given:
        raise AigcError(f"{', '.join(given)} apply to diffusion models; {md.path} holds a {family_name} model")
    if family_name == "lstm":
        if num is not None or classifier_dir or precision_recall:
            raise AigcError("--num, --classifier and --precision-recall apply to image models")
        return evaluate_text(md, run, data_spec, as_json)
    if data_spec:
        raise AigcError("--data applies to text models: image models are compared with their training data")
    if family_name not in ("gan", "diffusion"):
        raise AigcError(f"evaluate takes a generator (gan, diffusion or lstm); {md.path} holds a {family_name} model")
    num = num or 1000
    import_tensorflow_quietly()
    from ..data import load_images
    from ..families import get_family
    from ..metrics.evaluate import evaluate_images, generate, real_sets
    from ..metrics.features import feature_net

    start = time.time()
    family = get_family(family_name)
    net = feature_net(run["data"]["spec"], classifier_dir)
    model = md.load_model(family_name)
    options = {}
    if family_name == "diffusion":
        sampler = sampler or "ddim"
        steps = steps or (model.schedule.timesteps if sampler == "ddpm" else 50)
        options = {"sampler": sampler, "steps": steps, "eta": eta or 0.0, "guidance": guidance}
    real, floor = real_sets(load_images(run["data"]["spec"]), num, seed)
    fake = generate(family, model, num, seed, **options)
    result = evaluate_images(fake, real, floor, net, subsets, subset_size, precision_recall, seed)
    report = {"model_dir": str(md.path), "family": family_name, "data": run["data"]["spec"],
              "options": {"num": num, "seed": seed, **options}, **result,
              "seconds": round(time.time() - start, 1)}
    fileio.write_json(md.path / "metrics.json", report)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))
    if not as_json:
        click.echo(f"wrote {md.path / 'metrics.json'}")


def evaluate_text(md, run: dict, data_spec: str | None, as_json: bool) -> None:
    import_tensorflow_quietly()
    from ..data.text import load_text
    from ..metrics.text import text_metrics

    start = time.time()
    model = md.load_model("lstm")
    if data_spec:
        text, source = load_text(data_spec).text, data_spec
    else:
        split = run["config"]["validation_split"]
        text, source = load_text(run["data"]["spec"]).split(split)[1], f"{run['data']['spec']} (last {split:.0%})"
    report = {"model_dir": str(md.path), "family": "lstm", "data": source, **text_metrics(model, text),
              "seconds": round(time.time() - start, 1)}
    fileio.write_json(md.path / "metrics.json", report)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{run['config']['arch']} model {md.path}; text {source}")
    click.echo(f"bits per character  {report['bits_per_character']:.4f}   ({report['characters']} characters)")
    click.echo(f"bits per token      {report['bits_per_token']:.4f}   ({report['tokens']} tokens)")
    click.echo(f"perplexity          {report['perplexity']:.3f}   (per token)")
    click.echo(f"unknown characters  {report['unknown_characters']}   (outside the vocabulary, scored as id 0)")
    click.echo(f"wrote {md.path / 'metrics.json'}")


def format_report(report: dict) -> str:
    """The image metrics as a small table."""
    options = ", ".join(f"{k} {v}" for k, v in report["options"].items() if v is not None)
    has_pr = "precision" in report["samples"]
    lines = [
        f"{report['family']} model {report['model_dir']} ({options}); data {report['data']}",
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

"""The click pieces every family's command module (`gan/cli.py`, ...) is built from: options made from
a config dataclass (so each option is declared once), the shared options, and the `train`/`export`
command builders that call the library. The command tree that gathers them is `cli/`.
TensorFlow-free: a command imports it when it runs.
"""

from __future__ import annotations

import math
import sys
import time
import typing
from pathlib import Path

import click

from .console import import_tensorflow_quietly
from .errors import Interrupted
from .export import QUANTIZATIONS
from .families import canonical
from .limits import MAX_LABEL, MAX_SEED


class FiniteFloat(click.FloatRange):
    """A bounded float option that refuses nan and inf (click's FloatRange lets nan through every bound)."""

    def convert(self, value, param, ctx):
        return _finite(super().convert(value, param, ctx), value, self, param, ctx)


class _AnyFiniteFloat(click.ParamType):
    name = "float"

    def convert(self, value, param, ctx):
        return _finite(click.FLOAT.convert(value, param, ctx), value, self, param, ctx)


FINITE = _AnyFiniteFloat()  # an unbounded float option that refuses nan and inf
SEED = click.IntRange(0, MAX_SEED)  # every --seed: what the seeded generators take
LABEL = click.IntRange(0, MAX_LABEL)


def _finite(number, value, kind, param, ctx):
    if not math.isfinite(number):
        kind.fail(f"{value!r} is not a finite number.", param, ctx)
    return number


def config_options(config_class):
    """Decorator adding one `--flag` per field of `config_class` (bools as --x/--no-x)."""

    def decorate(command):
        for field, hint in reversed(config_class.field_specs()):
            command = _option(field, hint)(command)
        return command

    return decorate


def _option(field, hint):
    meta = field.metadata
    name = field.name.replace("_", "-")
    optional = typing.get_origin(hint) is typing.Union
    base = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
    kwargs = {"default": field.default, "help": meta["help"], "show_default": field.default is not None}
    if base is bool:
        return click.option(f"--{name}/--no-{name}", field.name, **kwargs)
    if meta.get("choices"):
        kind = click.Choice(meta["choices"])
    elif base is int:
        kind = click.IntRange(min=meta.get("min"), max=meta.get("max"))
    elif base is float:
        bounded = meta.get("min") is not None or meta.get("max") is not None
        kind = FiniteFloat(min=meta.get("min"), max=meta.get("max")) if bounded else FINITE
    else:
        kind = str
    return click.option(f"--{name}", field.name, type=kind, **kwargs)


def config_argv(config) -> list[str]:
    """The flags that reproduce `config` (the inverse of `config_options`)."""
    return option_argv({field.name: getattr(config, field.name) for field, _ in config.field_specs()})


def option_argv(options: dict) -> list[str]:
    """The flags that set config `options` (field name -> value; None: left to its default)."""
    argv = []
    for field, value in options.items():
        name = field.replace("_", "-")
        if isinstance(value, bool):
            argv.append(f"--{name}" if value else f"--no-{name}")
        elif value is not None:
            argv += [f"--{name}", str(value)]
    return argv


def default_folder(root: str, family: str) -> str:
    """`root/NAME`, NAME the family's registered name, whatever name (an alias) the command was called by,
    so that `train lstm` and `sample text` meet in one folder."""
    return f"{root}/{canonical(family)}"


def model_option(family: str):
    return click.option(
        "--model", "model_dir", default=default_folder("saved_models", family), show_default=True,
        help="folder of a trained model",
    )


def model_dir_option(family: str):
    return click.option(
        "--model-dir", default=default_folder("saved_models", family), show_default=True,
        help="where the model, its checkpoints and TensorBoard logs go",
    )


overwrite_option = click.option(
    "--overwrite", is_flag=True,
    help="discard the run that --model-dir holds and start again (removes only what aigc-keras wrote)",
)


def force_option(what: str):
    return click.option(
        "--force", is_flag=True,
        help=f"write into {what} even though it holds files aigc-keras did not write (they are kept, never "
             "replaced)",
    )


def export_options(family: str):
    def decorate(command):
        command = click.option(
            "--quantize", type=click.Choice(QUANTIZATIONS), default="none", show_default=True,
            help="LiteRT file: none (float32), float16 or dynamic (int8) weights, or int8 weights and "
                 "activations calibrated on the training data",
        )(command)
        command = click.option("--tflite", is_flag=True,
                               help="also write model.tflite (LiteRT, builtin ops only)")(command)
        command = click.option(
            "--out", "out_dir", default=default_folder("export", family), show_default=True, help="export folder",
        )(command)
        command = force_option("the --out folder")(command)
        return model_option(family)(command)

    return decorate


def epilog(verb: str, name: str, examples: list[str]) -> str:
    return "\b\nExamples:\n" + "\n".join(f"  aigc-keras {verb} {name}{example}" for example in examples)


def quick_folder(family: str) -> str:
    """Where `train NAME --quick` trains by default: beside the full run's folder, never in it."""
    return f"{default_folder('saved_models', family)}-quick"


def train_command(config_class, name: str, summary: str, examples: list[str]) -> click.Command:
    """`train NAME`: every option of the family's config dataclass, plus --model-dir, --overwrite,
    --force and --quick. NAME is the family's name, or an alias of it (it also names the default folder)."""
    from click.core import ParameterSource

    @click.command(name, help=summary, epilog=epilog("train", name, [*examples, " --quick"]))
    @model_dir_option(name)
    @overwrite_option
    @force_option("--model-dir")
    @click.option("--quick", is_flag=True,
                  help=f"a short run of about a minute on 2 CPU cores, to see the family work (rough samples; into "
                       f"{quick_folder(name)}): " + " ".join(option_argv(config_class.QUICK)) +
                       ", unless given")
    @config_options(config_class)
    def train(model_dir, overwrite, force, quick, **options):
        if quick:
            ctx = click.get_current_context()
            options.update({k: v for k, v in config_class.QUICK.items()
                            if ctx.get_parameter_source(k) == ParameterSource.DEFAULT})
            if ctx.get_parameter_source("model_dir") == ParameterSource.DEFAULT:
                model_dir = quick_folder(name)
        run_training(config_class(**options), model_dir, overwrite, force, quick)

    return train


def export_command(family: str, name: str, summary: str, examples: list[str], options=()) -> click.Command:
    """`export NAME`: the shared export options plus the family's own `options` (click options,
    passed on to the family's `export_spec` by name)."""

    def export(model_dir, out_dir, force, tflite, quantize, **family_options):
        run_export(family, model_dir, out_dir, force, tflite, quantize, **family_options)

    for option in reversed(options):
        export = option(export)
    return click.command(name, help=summary, epilog=epilog("export", name, examples))(export_options(name)(export))


def batch_option(what: str):
    return click.option("--batch", default=1, show_default=True, type=click.IntRange(min=1),
                        help=f"{what} per call: a fixed size, as LiteRT's CompiledModel API and LiteRT.js need")


def sample_options(command):
    """--num, --seed, --label and --out, shared by the image families' `sample` commands."""
    for option in reversed([
        click.option("--num", default=64, show_default=True, type=click.IntRange(min=1), help="number of images"),
        click.option("--seed", default=0, show_default=True, type=SEED, help="noise seed"),
        click.option("--label", type=LABEL, help="class to draw (conditional models)"),
        click.option("--out", default="samples.png", show_default=True,
                     help=".png for an image grid, .npz for uint8 arrays [N, H, W, C]"),
    ]):
        command = option(command)
    return command


IMAGE_EVALUATE_OPTIONS = {  # evaluate's options for every image family, by parameter name
    "num": click.option("--num", type=click.IntRange(min=4),
                        help="images: samples to draw, and real images in each reference set [default: 1000]"),
    "classifier_dir": click.option(
        "--classifier", "classifier_dir",
        help="images: feature classifier folder [default: the shipped one for mnist, else InceptionV3]"),
    "subsets": click.option("--subsets", default=10, show_default=True, type=click.IntRange(1, 1000),
                            help="images: KID subsets"),
    "subset_size": click.option("--subset-size", default=1000, show_default=True, type=click.IntRange(min=2),
                                help="images: KID subset size (at most half of each set)"),
    "precision_recall": click.option("--precision-recall", is_flag=True,
                                     help="images: also k-NN precision and recall (k=3)"),
}


def load_for_sampling(model_dir: str, family: str):
    """(family implementation, trained model) for a `sample` command."""
    import_tensorflow_quietly()
    from .families import get_family
    from .model_dir import ModelDir

    return get_family(family), ModelDir(model_dir).load_model(family)


def write_images(out: str, images, labels, columns, made: dict | None = None) -> None:
    """Write what a `sample` command drew; a PNG carries `made` (`made_by`'s record)."""
    from .imaging import save_images

    save_images(out, images, labels, columns, made)
    click.echo(f"wrote {len(images)} images to {out}")


NOT_SETTINGS = ("model_dir", "out", "gif")  # options of a `sample` command that do not change the picture


def made_by(family: str, model_dir: str, **resolved) -> dict:
    """The provenance (`provenance.record`) of what the running `sample` command writes: its settings,
    with `resolved` for the ones whose defaults it settled (a sampler, its steps), and the command
    line that makes the same picture again."""
    from .provenance import record

    ctx = click.get_current_context()
    params = {**ctx.params, **resolved}
    settings = {k: v for k, v in params.items() if k not in NOT_SETTINGS}
    return record(family, model_dir, settings, command_line(ctx, params))


def command_line(ctx: click.Context, params: dict) -> str:
    """The command line of `ctx`'s command with every option set to `params` (None and off left out)."""
    import shlex

    words = ctx.command_path.split()
    for param in ctx.command.params:
        value = params.get(param.name)
        if not isinstance(param, click.Option) or value is None:
            continue
        if param.is_flag and param.secondary_opts:
            words.append(param.opts[0] if value else param.secondary_opts[0])
        elif param.is_flag:
            words += [param.opts[0]] if value else []
        else:
            words += [param.opts[0], str(value)]
    return shlex.join(words)


def run_training(config, model_dir: str, overwrite: bool, force: bool, quick: bool = False) -> None:
    from .model_dir import ModelDir

    if quick:
        click.echo(f"quick: a short run into {model_dir} to see {config.family} work in about a minute; its samples "
                   f"are rough (the full run is `aigc-keras train {config.family}`)")
    other = ModelDir(model_dir).other_name()
    if other and not Path(model_dir).exists():
        click.echo(f"note: {other} holds a run made under the family's other name; this one starts in {model_dir} "
                   f"(pass --model-dir {other} to train that one on)")
    import_tensorflow_quietly()
    from .training.runner import train

    start = time.time()
    try:
        train(config, model_dir, overwrite=overwrite, force=force, verbose=1 if sys.stdout.isatty() else 2,
              log=click.echo)
    except KeyboardInterrupt:
        raise Interrupted("interrupted: rerun the same command to resume after the last finished epoch") from None
    click.echo(f"done in {_duration(time.time() - start)}")
    from .families import get_family

    family = get_family(config.family)
    if quick:
        data_info = ModelDir(model_dir).record()["data"]
        steps = config.epochs * family.steps_per_epoch(config, data_info)
        full = type(config)(data=config.data)
        full_steps = full.epochs * family.steps_per_epoch(full, data_info)
        click.echo(f"this was a quick run of {steps:,} optimizer steps, and its samples are rough; the full run, "
                   f"`aigc-keras train {config.family}` ({full_steps:,} steps, into "
                   f"{default_folder('saved_models', config.family)}), gives the quality that README shows")
    click.echo(f"next: {family.next_command(model_dir)}")


def run_export(family: str, model_dir: str, out_dir: str, force: bool, tflite: bool, quantize: str,
               **options) -> None:
    import_tensorflow_quietly()
    from .export import export_trained

    try:
        meta = export_trained(family, model_dir, out_dir, tflite=tflite, quantize=quantize, force=force, **options)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: nothing was exported ({out_dir} is as it was)") from None
    click.echo(f"exported {out_dir}/saved_model (signatures: {', '.join(meta['signatures'])})")
    if tflite:
        click.echo(
            f"exported {out_dir}/model.tflite ({meta['files']['tflite_bytes'] / 1e6:.2f} MB, "
            f"quantize={quantize}); {parity_text(meta)}; the same in LiteRT's Interpreter and CompiledModel APIs"
        )
        quality = meta.get("quality")
        if quality and quality["measured"]:
            click.echo(f"quality: {quality_text(quality)}")
        elif quality:
            click.echo(f"note: what quantization cost was not measured: {quality['why']}", err=True)
        for warning in (quality or {}).get("warnings", []):
            click.echo(f"warning: {warning}", err=True)
    click.echo(f"exported {out_dir}/metadata.json")
    if tflite:
        out = Path(out_dir)
        exports = str(out.parent if out.name not in ("", "..") else out.resolve().parent)
        click.echo(f"next: aigc-keras demo{'' if exports == 'export' else f' --exports {exports}'}  (the page runs "
                   "it in a browser)")


def parity_text(meta: dict) -> str:
    """An export's LiteRT-vs-TF parity, as export prints it and `info` shows it."""
    diffs = ", ".join(f"{k} {v:.2g}" for k, v in meta["parity"]["max_abs_diff"].items())
    return f"LiteRT vs TF max|diff|: {diffs}"


def quality_text(quality: dict) -> str:
    """A measured export quality (metadata.json's `quality`), as export prints it and `info` shows it."""
    return f"{quality['metric']}: {quality['litert']:.4g} in LiteRT, {quality['keras']:.4g} for the Keras model"


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"

"""`evaluate`: one command for every family; each family adds its own options (`cli.EVALUATE_OPTIONS`)
and measures itself (`Family.evaluate`)."""

from __future__ import annotations

import json

import click
from click.core import ParameterSource

from .. import families, fileio
from ..commands import SEED
from ..console import import_tensorflow_quietly
from ..errors import AigcError, reason
from ..folders import METRICS_FILE


def _family_options() -> dict:
    """Every family's evaluate options by parameter name (a shared option is declared once), and the
    families that take each."""
    options, takers = {}, {}
    for name in families.NAMES:
        for param, option in families.cli(name).EVALUATE_OPTIONS.items():
            options.setdefault(param, option)
            takers.setdefault(param, []).append(name)
    return options, takers


OPTIONS, TAKERS = _family_options()


def _evaluate_command():
    def evaluate(model_dir, seed, as_json, **options):
        """Measure a trained model, or an export's .tflite (run in LiteRT's CompiledModel API); print a
        table and write metrics.json beside it.

        Image models: FID and KID of --num samples against --num real training images, the same
        for two disjoint real sets (the floor a perfect model would reach at this size), and mode
        coverage where a classifier gives classes. Text models: bits per character and perplexity
        on the validation split (or --data), with characters outside the vocabulary counted.
        """
        from ..metrics.evaluate import open_source

        source = open_source(model_dir)
        family = families.canonical(source.family)
        ctx = click.get_current_context()
        mine = families.cli(family).EVALUATE_OPTIONS
        foreign = [p for p in options if p not in mine and ctx.get_parameter_source(p) == ParameterSource.COMMANDLINE]
        if foreign:
            flags = ", ".join(next(o.opts[0] for o in ctx.command.params if o.name == p) for p in foreign)
            fits = sorted({t for p in foreign for t in TAKERS[p]})
            takers = " or ".join([", ".join(fits[:-1]), fits[-1]] if len(fits) > 1 else fits)
            verb = "apply" if len(foreign) > 1 else "applies"
            raise AigcError(f"{flags} {verb} to {takers} models; {model_dir} holds a {family} model")
        import_tensorflow_quietly()
        try:
            report, table = families.get_family(family).evaluate(source, seed, **{p: options[p] for p in mine})
        except (KeyError, TypeError, IndexError) as e:
            if not source.export:
                raise
            what = f"the entry {reason(e)}" if isinstance(e, KeyError) else "entries of the right kind"
            raise AigcError(f"{source.folder}/metadata.json lacks what evaluate needs ({what}): export the model "
                            "again") from None
        fileio.write_json(source.folder / METRICS_FILE, report)
        click.echo(json.dumps(report, indent=2) if as_json else table)
        if not as_json:
            click.echo(f"wrote {source.folder / METRICS_FILE}")

    for option in reversed(list(OPTIONS.values())):
        evaluate = option(evaluate)
    evaluate = click.option("--json", "as_json", is_flag=True, help="print the metrics as JSON")(evaluate)
    evaluate = click.option("--seed", default=0, show_default=True, type=SEED,
                            help="noise and subset seed")(evaluate)
    evaluate = click.argument("model_dir")(evaluate)
    return click.command("evaluate", epilog="""\b
Examples:
  aigc-keras evaluate saved_models/gan --num 10000
  aigc-keras evaluate saved_models/diffusion --sampler heun --steps 10 --num 2000
  aigc-keras evaluate saved_models/gan --classifier saved_models/fashion-classifier --precision-recall
  aigc-keras evaluate saved_models/text
  aigc-keras evaluate saved_models/text --data text:held_out.txt
  aigc-keras evaluate export/gan --num 2000                # what the .tflite generates, run in LiteRT""")(evaluate)


evaluate = _evaluate_command()

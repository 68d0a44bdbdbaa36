"""`train text`, `sample text` and `export text` (also named `lstm`; TensorFlow is imported only when a
command runs)."""

from __future__ import annotations

import sys

import click

from ..commands import (
    SEED,
    FiniteFloat,
    epilog,
    export_command,
    load_for_sampling,
    model_option,
    train_command,
)
from ..folders import check_output_file
from .config import EXPORT_LENGTH, EXPORT_PROMPT_LENGTH, SAMPLE_LENGTH, TextConfig

ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


class Escaped(click.ParamType):
    """Text with backslash escapes (\\n, \\t, \\r, \\\\, \\xHH, \\uHHHH); every other character, Chinese
    or accented ones included, stands for itself."""

    name = "text"

    def convert(self, value, param, ctx):
        out, i = [], 0
        while i < len(value):
            if value[i] != "\\":
                out.append(value[i])
                i += 1
                continue
            code = value[i + 1:i + 2]
            digits = {"x": 2, "u": 4}.get(code, 0)
            hex_part = value[i + 2:i + 2 + digits]
            if code in ESCAPES:
                out.append(ESCAPES[code])
            elif digits and len(hex_part) == digits and all(c in "0123456789abcdefABCDEF" for c in hex_part) \
                    and not 0xD800 <= int(hex_part, 16) <= 0xDFFF:  # a lone surrogate is no character
                out.append(chr(int(hex_part, 16)))
            else:
                self.fail(f"'{value}' has the escape '\\{code}' that is not one of \\n, \\t, \\r, \\\\, \\xHH "
                          "or \\uHHHH", param, ctx)
            i += 2 + digits
        return "".join(out)


EVALUATE_OPTIONS = {
    "data_spec": click.option("--data", "data_spec",
                              help="text: text spec to score [default: the validation split]"),
}


def commands(name: str = "text") -> dict:
    train = train_command(
        TextConfig, name, "Train a character language model (LSTM or Transformer); rerun the same command to resume.",
        ["", " --data text:my_corpus.txt --arch transformer --model-dir saved_models/transformer",
         " --tokenizer bytes --data text:chinese/ --model-dir saved_models/zh"],
    )

    @click.command(name, epilog=epilog("sample", name, [
        ' --prompt "ROMEO:" --length 400 --temperature 0.8 --top-k 40 --top-p 0.95 --seed 1',
        " --temperature 0 --length 200          # greedy",
        ' --model saved_models/transformer --stop "\\n\\n" --out scene.txt']))
    @model_option(name)
    @click.option("--prompt", default="\n", show_default=False, help="text to continue [default: a newline]")
    @click.option("--length", default=SAMPLE_LENGTH, show_default=True, type=click.IntRange(min=1),
                  help="tokens to generate")
    @click.option("--temperature", default=1.0, show_default=True, type=FiniteFloat(min=0.0),
                  help="softmax temperature; 0 is greedy")
    @click.option("--top-k", default=0, show_default=True, type=click.IntRange(min=0),
                  help="keep the k most likely tokens (0: off)")
    @click.option("--top-p", default=1.0, show_default=True, type=FiniteFloat(0.0, 1.0, min_open=True),
                  help="keep the smallest set of tokens whose probability reaches p (1: off)")
    @click.option("--seed", default=0, show_default=True, type=SEED, help="sampling seed")
    @click.option("--stop", type=Escaped(),
                  help="stop once the generated text contains this string (\\n for a newline, \\t, \\\\)")
    @click.option("--out", help="also write the prompt and the generated text to this file")
    def sample(model_dir, prompt, length, temperature, top_k, top_p, seed, stop, out):
        """Generate text from a trained language model, streamed to the terminal as it is generated."""
        if out:
            check_output_file(out)
        family, model = load_for_sampling(model_dir, "text")
        from .. import fileio

        click.echo(prompt, nl=False)

        def show(piece):
            click.echo(piece, nl=False)
            sys.stdout.flush()

        text = model.generate(prompt, length, temperature, top_k, top_p, seed, stop, show)
        click.echo()
        if out:
            fileio.write_bytes(out, (prompt + text).encode("utf-8"))
            click.echo(f"wrote {out}", err=True)

    export = export_command(
        "text", name,
        "Export a language model: signatures `step` (stream with explicit state) and `generate` (whole loop).",
        [" --tflite", " --tflite --length 1000 --out export/text_long", " --tflite --quantize dynamic --out export/q"],
        [click.option("--length", default=EXPORT_LENGTH, show_default=True, type=click.IntRange(min=1),
                      help="new ids per `generate` call (a fixed size; a longer text continues through `step`)"),
         click.option("--prompt-length", default=EXPORT_PROMPT_LENGTH, show_default=True, type=click.IntRange(min=1),
                      help="most prompt ids `generate` takes")],
    )
    return {"train": train, "sample": sample, "export": export}

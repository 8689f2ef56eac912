"""The one runner of every stage entry point: its parser, JSON arguments, logging, and
errors as exit codes.

    if __name__ == "__main__":
        cli.main(main)   # an analysis step
        step.run(main)   # an engine step: supervised (quantstudy/core/step.py), same runner inside

A rule passes its settings as JSON (`--settings {params.settings:q}`), parsed by `json_arg`;
a failure the step can name (a damaged input, a missing file) raises `StepError`, which ends
as one logged line and exit code 1, not a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


class StepError(Exception):
    """A failure the step names itself: logged as one line, exit code 1."""


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The entry point's parser; its module docstring (usage by hand) is the help text."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def json_arg(text: str):
    """argparse `type=` of a JSON argument: a rule's params arrive as JSON, never as shell fragments."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e.msg} at {e.pos}): {text[:120]!r}") from e


def run(main, argv=None) -> int:
    """Set up logging once, call `main(argv)`, and turn a StepError into exit code 1."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        return int((main() if argv is None else main(argv)) or 0)
    except StepError as e:
        logging.getLogger(_step_name(main)).error("%s", e)
        return 1


def _step_name(main) -> str:
    """The step's short name (`evaluate`), also under `python -m`, where the module is __main__."""
    module = sys.modules.get(main.__module__)
    spec = getattr(module, "__spec__", None)
    return (spec.name if spec else main.__module__).rpartition(".")[2]


def main(fn) -> None:
    """`if __name__ == "__main__": cli.main(main)`: never returns."""
    sys.exit(run(fn))

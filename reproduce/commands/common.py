"""What every command of ``python -m reproduce`` shares: the same flag means the same thing.

- ``--device``: ``auto`` by default everywhere (CUDA when present, else the CPU);
- ``-q/--quiet``: the one progress switch (no progress bars, no per-item lines);
- ``--version``: the package's version;
- ``--help``: the module's docstring as plain text (no reStructuredText markup), a one-line
  description for every sub-action, and copyable examples in an epilog (``EXAMPLES``).

``tests/test_cli_parity.py`` walks every command's and sub-action's parser and holds them to it.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path



class UserError(Exception):
    """An error the user can fix; printed as one line, exit status 2 (``reproduce.cli`` re-exports
    it, the name every command imports)."""


DEVICE_HELP = "auto (CUDA when present; the default), cpu, cuda or cuda:N"


def add_device(parser: argparse.ArgumentParser, what: str = "") -> None:
    """``--device``, default ``auto``."""
    parser.add_argument("--device", default="auto", help=(f"{what}: " if what else "") + DEVICE_HELP)


def add_quiet(parser: argparse.ArgumentParser, what: str = "no progress bars") -> None:
    """``-q/--quiet``: the one switch that turns progress output off."""
    parser.add_argument("-q", "--quiet", action="store_true", help=what)


def plain(text: str | None) -> str:
    """``text`` without reStructuredText's inline markup: ````x```` and ```x```` read as x."""
    if not text:
        return ""
    return re.sub(r"``(.+?)``", r"\1", text, flags=re.S)


def add_run(parser) -> None:
    """``--run runs/<stage>``: a trained stage's deploy net, final weights and widths."""
    parser.add_argument("--run", type=Path, metavar="RUN_DIR",
                        help="a stage's run folder (runs/<stage>): its net, final weights, widths and classes")


def apply_run(args: argparse.Namespace) -> None:
    """Fill ``--net``/``--weights``/``--widths``/``--num-classes`` from ``--run`` (explicit flags win)."""
    if getattr(args, "run", None) is None:
        if getattr(args, "weights", None) is None and getattr(args, "weights_required", True):
            raise UserError("give --weights W (with --net or --prototxt), or --run runs/<stage>")
        return
    if getattr(args, "prototxt", None) is not None:
        raise UserError("--run and --prototxt exclude each other (--run brings the run's deploy net)")
    from reproduce.training.run_folder import read_run

    found = read_run(args.run)
    args.net = found.model
    args.weights = args.weights or found.weights
    args.widths = found.widths
    args.num_classes = args.num_classes or found.num_classes


class phase:
    """A step of unknown length shown on stderr (``label … 12 s`` ticking on a terminal), then its time.

    For work with no natural unit (tracing a net for export, writing a graph): the user sees it
    is alive. The line appears once the step has run for ``after`` seconds (a quick step shows
    nothing, so a quick failure stays the one line of its error); a failed step's line is erased
    on a terminal. Nothing is shown when ``quiet``.
    """

    def __init__(self, label: str, quiet: bool = False, after: float = 1.0):
        self.label, self.quiet, self.after = label, quiet, after
        self.shown = False

    def __enter__(self):
        import sys
        import threading
        import time

        self.start = time.perf_counter()
        if self.quiet:
            return self
        self.done = threading.Event()
        self.lock = threading.Lock()
        tty = sys.stderr.isatty()

        def tick():
            if self.done.wait(self.after):
                return
            with self.lock:
                if not self.done.is_set():
                    print(f"{self.label} …", file=sys.stderr, end="" if tty else "\n", flush=True)
                    self.shown = True
            while tty and not self.done.wait(1.0):
                with self.lock:
                    if not self.done.is_set():
                        print(f"\r{self.label} … {time.perf_counter() - self.start:.0f} s", end="",
                              file=sys.stderr, flush=True)

        self.thread = threading.Thread(target=tick, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, kind, *_):
        import sys
        import time

        self.seconds = time.perf_counter() - self.start
        if self.quiet:
            return False
        with self.lock:
            self.done.set()
        self.thread.join()
        tty = sys.stderr.isatty()
        if kind is None and self.shown:
            print(f"{chr(13) if tty and self.shown else ''}{self.label} … done in {self.seconds:.1f} s",
                  file=sys.stderr, flush=True)
        elif tty and self.shown:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
        return False


# Two or three copyable command lines per command, shown under --help (as git and pip do).
EXAMPLES: dict[str, tuple[str, ...]] = {
    "convert": (
        "python -m reproduce convert weights/fcn8s-heavy-pascal.caffemodel -o fcn8s.pth",
        "python -m reproduce convert fcn8s.pth --prototxt prototxt_ref/fcn8s/deploy.prototxt -o fcn8s.caffemodel",
        "python -m reproduce convert VGG_ILSVRC_16_layers.caffemodel --prototxt prototxt_ref/fcn32s/train.prototxt "
        "-o vgg16-fcn.caffemodel",
    ),
    "inspect": (
        "python -m reproduce inspect weights/fcn8s-heavy-pascal.caffemodel",
        "python -m reproduce inspect prototxt_ref/fcn8s/deploy.prototxt",
    ),
    "forward": (
        "python -m reproduce forward --prototxt deploy.prototxt --weights w.caffemodel --input x.npz -o y.npz",
        "python -m reproduce forward --run runs/fcn8s --input x.npz",
        "python -m reproduce forward --prototxt vgg16-deploy.prototxt --weights vgg16.caffemodel --input x.npz --top 5",
    ),
    "train": (
        "python -m reproduce train --solver solver.prototxt --weights vgg16-fcn.caffemodel",
        "python -m reproduce train --solver solver.prototxt --resume latest",
        "python -m reproduce train --solver solver.prototxt --max-iter 100 --data sbdd_dir=data/sbdd/dataset",
    ),
    "prototxt": (
        "python -m reproduce prototxt",
        "python -m reproduce prototxt -o /tmp/prototxt",
    ),
    "stage": (
        "python -m reproduce stage fcn32s --init weights/VGG_ILSVRC_16_layers.caffemodel",
        "python -m reproduce stage fcn16s --init runs/fcn32s/final.caffemodel --device cuda",
        "python -m reproduce stage fcn32s --init vgg16.caffemodel --max-iter 100 --runs /tmp/runs --quiet",
    ),
    "verify": (
        "python -m reproduce verify",
        "python -m reproduce verify --stages fcn8s --sources official --limit 50",
        "python -m reproduce verify --demo --runs demo-run/runs --voc-dir demo-run/data/pascal/VOC2011",
    ),
    "paper": (
        "python -m reproduce paper",
        "python -m reproduce paper --plot runs/paper/fig5.png",
    ),
    "export": (
        "python -m reproduce export --net fcn8s --weights weights/fcn8s-heavy-pascal.pth -o fcn8s.onnx",
        "python -m reproduce export --run runs/fcn8s -o fcn8s.pt2",
        "python -m reproduce export --prototxt deploy.prototxt --weights w.caffemodel --input data=1,3,500,500 "
        "--static -o net.onnx",
    ),
    "infer": (
        "python -m reproduce infer --net fcn8s --weights weights/fcn8s-heavy-pascal.pth photo.jpg -o out",
        "python -m reproduce infer --run runs/fcn8s images/ -o out",
        "python -m reproduce infer --net fcn32s --weights weights/fcn32s-heavy-pascal.pth --dense 4 photo.jpg -o out",
    ),
    "weights": (
        "python -m reproduce weights --list",
        "python -m reproduce weights --only fcn8s-heavy-pascal",
        "python -m reproduce weights --from ~/caffemodels      # offline: a folder of the release's files",
    ),
    "data": (
        "python -m reproduce data fetch sbd voc2011",
        "python -m reproduce data fetch voc2011 --from /mnt/mirror      # offline: a folder of the archives",
        "python -m reproduce data check",
    ),
    "demo": (
        "python -m reproduce demo prepare --out demo-run",
        "python -m reproduce demo report --out demo-run",
    ),
    "pycaffe": (
        "python -m reproduce pycaffe --path",
        "PYTHONPATH=$(python -m reproduce pycaffe --path) python infer.py",
    ),
}


def epilog(name: str) -> str:
    lines = EXAMPLES.get(name, ())
    return "examples:\n" + "\n".join(f"  {line}" for line in lines) if lines else ""


def finish(parser: argparse.ArgumentParser, version: str) -> None:
    """``--version`` on ``parser`` and every sub-action; each sub-action's description is its help line."""
    for p in walk(parser):
        if "--version" not in p._option_string_actions:
            p.add_argument("--version", action="version", version=f"%(prog)s {version}")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                if not sub.description and helps.get(name):
                    sub.description = helps[name]
                sub.formatter_class = argparse.RawDescriptionHelpFormatter


def walk(parser: argparse.ArgumentParser):
    """``parser`` and every sub-action's parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from walk(sub)

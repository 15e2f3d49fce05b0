"""Check: the reference release's own scripts, run through the pycaffe shim, agree with the suite.

The release (shelhamer/fcn.berkeleyvision.org) is read at run time from ``--release DIR`` (a
checkout kept outside the project; nothing of it is bundled here). Its scripts are copied to a
temporary folder, converted by lib2to3 with the fixers the ``2to3`` command runs by default,
and otherwise left as they are. ``import caffe`` resolves to ``reproduce.pycaffe`` through the
shim folder (``python -m reproduce pycaffe --path``) put first on ``PYTHONPATH``. The data are
generated (``reproduce.data.synthetic``) in the release's ``data/`` layout, so the release's
relative paths (``../data/sbdd/dataset``, ``../data/pascal/VOC2011``, ``../data/segvalid11.txt``)
find them. Every run of release code is a fresh subprocess.

Checks (one table row each, with the measured difference):

``layers``
    ``voc_layers.py``'s ``SBDDSegDataLayer`` (the release's ``voc-fcn32s/train.prototxt``, SBD
    ``train``, seed 1337, randomized), ``VOCSegDataLayer`` (``val.prototxt``, ``seg11valid``, in
    order) and ``VOCSegDataLayer`` on the VOC ``train`` split (randomized) as Python layers
    feeding the net through the shim: every ``data`` and ``label`` top, forward after forward,
    equals what the project's own port of the layer (``reproduce.data.make_data_source``, which
    parses the param_str as a literal) gives for the same parameters (the release's layers
    ``eval`` it: the text is the release's own, or the split swapped here). The converted layer runs under Python 3, so it draws Python 3's
    ``randint`` stream; the port is asked for that stream (``sampler_flavor="python3"``;
    the suite's default is Python 2's, the order the published models were trained with).
``surgery``
    ``surgery.transplant`` + ``surgery.interp`` (the release's calls: the golden width-reduced
    VGG16 V1 classifier into the golden FCN-32s deploy net, every ``up`` layer bilinear), then
    ``net.save``: every parameter blob bit-identical to the golden
    ``fcn32s-transplanted-params.npz`` that Caffe's own run of that surgery held, the saved file
    byte-identical to ``fcn32s-transplanted.caffemodel``, and what surgery printed (copying /
    coercing / dropping, per layer and blob) the decisions of ``transplant_log.txt``.
``infer``
    ``infer.py`` as it is, in a folder laid out as it expects (``demo/image.jpg``,
    ``voc-fcn8s/deploy.prototxt``, ``voc-fcn8s/fcn8s-heavy-pascal.caffemodel`` — the golden
    width-reduced voc-fcn8s net and weights standing in for the released ones): its
    ``demo/output.png`` (VOC colours, read back to class indices) against the label map
    ``python -m reproduce infer --prototxt … --weights …`` writes for the same image. Twice: on
    the release's ``demo/image.jpg`` and on a generated image.
``solve``
    ``voc-fcn32s/solve.py`` + ``score.py``: ``python solve.py 0`` (through a wrapper that only
    saves ``solver.net`` when the script returns) with the release's ``solver.prototxt``,
    ``train.prototxt`` and ``val.prototxt`` (at the golden widths unless ``--widths full``: every
    hidden ``num_output`` mapped 64→4 … 4096→32, nothing else changed), ``random_seed: 1337``
    added (Caffe seeds dropout from the clock otherwise; ``--base-lr`` also replaces its 1e-10).
    Two starts (``--inits``): ``vgg16`` — ``../ilsvrc-nets/vgg16-fcn.caffemodel`` is Caffe's golden
    transplant of the VGG16 V1 classifier and the stage transplants that classifier itself, as
    the suite does (score_fr starts at zero); ``fcn32s`` — both start from the golden FCN-32s'
    random weights (score_fr not zero). The script's two
    constants ``solver.step(4000)`` and ``range(25)`` become ``--iters`` and ``--rounds`` (the
    only edits to a script; ``--iters 4000 --rounds 25`` leaves it as released). Against the
    suite's own stage (``reproduce.training.stages.run_stage``: fcn32s, same start, widths, data,
    base_lr and seed, ``test_interval`` =
    ``--iters``), drawing the training order of Python 3's ``randint`` as the converted layer does:
    every parameter after training bit for bit, the display lines' losses (``display: 20``), and
    the five ``seg_tests`` figures of every round (the loss within ``LOSS_ULPS`` float32 ulps,
    see there; the others exactly).

    python benchmarks/check_release_scripts.py --release DIR [--golden DIR] [--checks layers,surgery,infer,solve]
                                               [--iters 60] [--rounds 3] [--inits vgg16,fcn32s] [--base-lr LR] [--keep DIR]
    make check-release RELEASE=DIR

Exit status 0 when every check passes, 1 on a mismatch, 2 on bad input (one line naming it).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GOLDEN = ROOT.parent / "shared" / "caffe-golden"
CHECKS = ("layers", "surgery", "infer", "solve")
SEED = 1337

# what each check needs from the release checkout
RELEASE_FILES = {
    "layers": ("voc_layers.py", "voc-fcn32s/train.prototxt", "voc-fcn32s/val.prototxt"),
    "surgery": ("surgery.py",),
    "infer": ("infer.py", "vis.py", "demo/image.jpg"),
    "solve": ("voc_layers.py", "surgery.py", "score.py", "voc-fcn32s/solve.py",
              "voc-fcn32s/solver.prototxt", "voc-fcn32s/train.prototxt", "voc-fcn32s/val.prototxt"),
}
GOLDEN_FILES = {
    "layers": (),
    "surgery": ("vgg16-v1/deploy.prototxt", "vgg16-v1/weights.caffemodel", "voc-fcn32s/deploy.prototxt",
                "vgg16-v1/fcn32s-transplanted-params.npz", "vgg16-v1/fcn32s-transplanted.caffemodel",
                "vgg16-v1/transplant_log.txt"),
    "infer": ("voc-fcn8s/deploy.prototxt", "voc-fcn8s/weights.caffemodel"),
    "solve": ("vgg16-v1/weights.caffemodel", "vgg16-v1/fcn32s-transplanted.caffemodel",
              "voc-fcn32s/weights.caffemodel"),
}
# solve.py's ../ilsvrc-nets/vgg16-fcn.caffemodel, and the stage's --init for the same start
INITS = {
    "vgg16": ("vgg16-v1/fcn32s-transplanted.caffemodel", "vgg16-v1/weights.caffemodel",
              "Caffe's transplant of the VGG16 V1 classifier; the stage transplants the classifier itself"),
    "fcn32s": ("voc-fcn32s/weights.caffemodel", "voc-fcn32s/weights.caffemodel",
               "the golden FCN-32s' random weights, score_fr not zero, so that predictions vary"),
}
# the only edits made to a release script beyond 2to3 (each literal must occur exactly once)
SOLVE_CONSTANTS = {"iters": "solver.step(4000)", "rounds": "range(25)"}


class CheckError(Exception):
    """Bad input to the check (a missing file or folder): one line naming it."""


# ----------------------------------------------------------------------------- conversion


def convert_2to3(source: str, name: str = "<string>") -> str:
    """``source`` converted by lib2to3 with the fixers the ``2to3`` command runs by default
    (every fixer of ``lib2to3.fixes`` except the explicit-only ones: buffer, idioms,
    set_literal, ws_comma). A file lib2to3 cannot parse is a ``CheckError`` naming it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        try:
            from lib2to3 import pgen2, refactor
        except ImportError:
            raise CheckError(f"{name}: this Python ({sys.version.split()[0]}) has no lib2to3 (removed in "
                             f"3.13); run the check with Python 3.12 or older") from None

        tool = refactor.RefactoringTool(refactor.get_fixers_from_package("lib2to3.fixes"))
        text = source if source.endswith("\n") else source + "\n"
        try:
            tree = tool.refactor_string(text, name)
        except (pgen2.parse.ParseError, pgen2.tokenize.TokenError, IndentationError) as err:
            raise CheckError(f"{name}: lib2to3 cannot parse it ({err})") from None
    return str(tree)


def _replace_once(text: str, old: str, new: str, name: str) -> str:
    count = text.count(old)
    if count != 1:
        raise CheckError(f"{name}: expected {old!r} exactly once, found it {count} times "
                         f"(is this the release's script?)")
    return text.replace(old, new)


# ----------------------------------------------------------------------------- inputs


def is_git_dir(path: Path) -> bool:
    """A git directory itself (a bare clone or mirror: ``HEAD``, ``objects/``), not a checkout."""
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


def git(release: Path, *args: str) -> str | None:
    """``git --git-dir`` (a bare repository) or ``git -C`` (a checkout) output, None on failure."""
    where = ["--git-dir", str(release)] if is_git_dir(release) else ["-C", str(release)]
    try:
        done = subprocess.run(["git", *where, *args], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.decode(errors="replace").strip() if done.returncode == 0 else None


def release_tree(release: Path, work: Path) -> tuple[Path, str | None]:
    """``(folder of the release's files, commit)``: a checkout is used as it is; a git
    directory (a bare clone, a mirror) has its HEAD extracted into ``work/checkout`` by ``git archive``."""
    if not release.is_dir():
        raise CheckError(f"--release {release}: no such folder (give a checkout of "
                         f"shelhamer/fcn.berkeleyvision.org)")
    commit = git(release, "rev-parse", "--short", "HEAD")
    if not is_git_dir(release):
        return release, commit
    checkout = work / "checkout"
    checkout.mkdir(parents=True)
    archive = subprocess.run(["git", "--git-dir", str(release), "archive", "--format=tar", "HEAD"],
                             capture_output=True, timeout=300)
    if archive.returncode != 0:
        raise CheckError(f"--release {release}: a bare git repository whose HEAD git archive cannot "
                         f"read ({archive.stderr.decode(errors='replace').strip()[:200]})")
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(checkout, filter="data")
    return checkout, commit


def check_inputs(release: Path, golden: Path, checks) -> None:
    """The release checkout and the golden folder hold what the chosen checks read."""
    missing = sorted({f for c in checks for f in RELEASE_FILES[c] if not (release / f).is_file()})
    if missing:
        raise CheckError(f"--release {release}: not a checkout of fcn.berkeleyvision.org — "
                         f"missing {', '.join(missing)}")
    missing = sorted({f for c in checks for f in GOLDEN_FILES[c] if not (golden / f).is_file()})
    if missing:
        raise CheckError(f"--golden {golden}: missing {', '.join(missing)} (the golden fixtures "
                         f"of the real Caffe, ../shared/caffe-golden)")


def shim_dir() -> Path:
    from reproduce.commands.pycaffe import shim_path

    return shim_path()


def env_with(*paths: Path, cpu: bool = True) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    env["PYTHONHASHSEED"] = "0"
    if cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def run(cmd: list[str], cwd: Path, env: dict, log: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run ``cmd``; its stdout and stderr go to ``log``. A failure raises ``RuntimeError``
    with the tail of that log."""
    shown = " ".join("<wrapper>" if i and cmd[i - 1] == "-c" else a for i, a in enumerate(cmd))
    with open(log, "w") as out:
        try:
            done = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{shown} (in {cwd}) ran past {timeout:.0f} s; log {log}") from None
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
        raise RuntimeError(f"{shown} (in {cwd}) exited {done.returncode}: {last.strip()} — log {log}:\n{tail}")
    return done


# ----------------------------------------------------------------------------- the work folder


def tiny_prototxt(text: str, path: str) -> str:
    """The release's net at the golden widths: every hidden ``num_output`` of the width table
    (64→4, 128→8, 256→8, 512→16, 4096→32) mapped, everything else as it is."""
    from reproduce.caffe import text as prototxt
    from reproduce.models.widths import WIDTH_PRESETS

    table = WIDTH_PRESETS["tiny"]
    net = prototxt.parse(text, "NetParameter", path)
    for layer in net.layer:
        for field in ("convolution_param", "inner_product_param"):
            if layer.has(field) and getattr(layer, field).num_output in table:
                getattr(layer, field).num_output = table[getattr(layer, field).num_output]
    return prototxt.emit(net)


def prepare(work: Path, release: Path, golden: Path, args) -> dict:
    """Copy and convert the release's scripts into ``work/release`` and generate the data
    in its ``data/`` layout; returns what the checks need to know."""
    from reproduce.data.synthetic import make_synthetic_dataset

    tree = work / "release"
    tree.mkdir(parents=True)
    converted = []
    for script in ("voc_layers.py", "surgery.py", "score.py", "vis.py", "infer.py", "voc-fcn32s/solve.py"):
        source = release / script
        if not source.is_file():
            continue
        target = tree / script
        target.parent.mkdir(parents=True, exist_ok=True)
        text = convert_2to3(source.read_text(), str(source))
        if script == "voc-fcn32s/solve.py":
            text = _replace_once(text, SOLVE_CONSTANTS["iters"], f"solver.step({args.iters})", str(source))
            text = _replace_once(text, SOLVE_CONSTANTS["rounds"], f"range({args.rounds})", str(source))
        target.write_text(text)
        converted.append(script)
    net_dir = tree / "voc-fcn32s"
    for name in ("train.prototxt", "val.prototxt"):
        source = release / "voc-fcn32s" / name
        if source.is_file():
            text = source.read_text()
            (net_dir / name).write_text(text if args.widths == "full" else tiny_prototxt(text, str(source)))
    solver = release / "voc-fcn32s" / "solver.prototxt"
    if solver.is_file():
        text = solver.read_text()
        if args.base_lr is not None:
            text, count = re.subn(r"(?m)^base_lr:.*$", f"base_lr: {args.base_lr:g}", text)
            if count != 1:
                raise CheckError(f"{solver}: expected one base_lr line, found {count}")
        if re.search(r"(?m)^random_seed:", text):
            raise CheckError(f"{solver}: already sets random_seed (is this the release's solver?)")
        (net_dir / "solver.prototxt").write_text(text + f"random_seed: {SEED}\n")
        (net_dir / "snapshot").mkdir(exist_ok=True)
    data = make_synthetic_dataset(tree / "data", n_train=args.n_train, n_val=args.n_val, seed=args.data_seed)
    # solve.py reads ../data/segvalid11.txt (the release's name for the seg11valid list)
    shutil.copyfile(data.voc_dir / "ImageSets" / "Segmentation" / "seg11valid.txt",
                    tree / "data" / "segvalid11.txt")
    (tree / "ilsvrc-nets").mkdir()
    return {"tree": tree, "data": data, "converted": converted}


# ----------------------------------------------------------------------------- child processes
# Each runs in its own process: ``python check_release_scripts.py --child NAME JSON``.


def child_layers(spec: dict) -> dict:
    """Through the shim: the release's data layers in its nets; against the project's port."""
    import numpy as np

    import caffe   # the shim: reproduce.pycaffe
    from reproduce.caffe import text as prototxt
    from reproduce.data import make_data_source

    assert caffe.__name__ == "reproduce.pycaffe", caffe.__file__
    cases = []
    for file, phase, split in (("train.prototxt", caffe.TRAIN, None), ("val.prototxt", caffe.TEST, None),
                               ("val.prototxt", caffe.TEST, "train")):
        net_file = file
        if split is not None:   # the VOC layer on a 'train' split: randomized, seeded
            net = prototxt.read(file)
            layer = net.layer[0]
            if layer.python_param.param_str.count("'split': 'seg11valid'") != 1:
                raise RuntimeError(f"{file}: its data layer's param_str names no 'split': 'seg11valid' "
                                   f"({layer.python_param.param_str})")
            layer.python_param.param_str = layer.python_param.param_str.replace(
                "'split': 'seg11valid'", f"'split': '{split}'")
            net_file = "voc-train.prototxt"
            Path(net_file).write_text(prototxt.emit(net))
        net = caffe.Net(net_file, phase)
        layer = prototxt.read(net_file).layer[0]
        port = make_data_source(layer.python_param.module, layer.python_param.layer,
                                layer.python_param.param_str, base_dir=Path.cwd(),
                                sampler_flavor="python3")
        worst, equal, ids, mismatched = 0.0, True, [], []
        for _ in range(spec["forwards"]):
            ids.append(port.next_id)
            expected = port.next()
            net.forward()
            for top, want in zip(("data", "label"), expected):
                got = net.blobs[top].data
                if got.shape != np.shape(want):
                    equal = False
                    mismatched.append(f"{top} {got.shape} vs {np.shape(want)}")
                    continue
                diff = float(np.abs(got.astype(np.float64) - np.asarray(want, np.float64)).max())
                worst = max(worst, diff)
                equal &= bool(np.array_equal(got, want))
        cases.append({"check": f"layers: {layer.python_param.layer} {file}"
                               + (f" split {split}" if split else ""),
                      "ok": equal, "difference": f"max |diff| {worst:g} over {spec['forwards']} forwards "
                                                 f"({len(set(ids))} distinct samples)"
                                                 + (f"; {len(mismatched)} tops of another shape "
                                                    f"({mismatched[0]})" if mismatched else "")})
    return {"rows": cases}


def child_surgery(spec: dict) -> dict:
    """Through the shim: the release's surgery.transplant and surgery.interp, then net.save."""
    import contextlib
    import io

    import caffe
    import surgery   # the converted release copy

    golden = Path(spec["golden"])
    old = caffe.Net(str(golden / "vgg16-v1" / "deploy.prototxt"),
                    str(golden / "vgg16-v1" / "weights.caffemodel"), caffe.TEST)
    new = caffe.Net(str(golden / "voc-fcn32s" / "deploy.prototxt"), caffe.TEST)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        surgery.transplant(new, old)
        surgery.interp(new, [k for k in new.params if "up" in k])
    new.save(spec["out"])
    import numpy as np

    np.savez(spec["out"] + ".npz", **{f"param/{name}/{i}": blob.data for name, blobs in new.params.items()
                                      for i, blob in enumerate(blobs)})
    return {"printed": printed.getvalue()}


def child_stage(spec: dict) -> dict:
    """The suite's own stage (``run_stage``), its training order Python 3's ``randint``."""
    import reproduce.data.registry as registry
    from reproduce.training.stages import StageOptions, run_stage

    original = registry.make_data_source
    flavors = []

    def python3_order(*args, **kwargs):
        kwargs.setdefault("sampler_flavor", "python3")
        source = original(*args, **kwargs)
        flavors.append([source.name, source.sampler.flavor, source.sampler.randomize])
        return source

    registry.make_data_source = python3_order
    opts = StageOptions(model="fcn32s", init=Path(spec["init"]), sbd_dir=Path(spec["sbd_dir"]),
                        voc_dir=Path(spec["voc_dir"]), runs=Path(spec["runs"]), widths=spec["widths"],
                        device="cpu", max_iter=spec["iters"] * spec["rounds"], base_lr=spec["base_lr"],
                        test_interval=spec["iters"], snapshot=spec["iters"] * spec["rounds"],
                        seed=SEED, progress=False)
    result = run_stage(opts)
    return {"final": str(result.final), "flavors": flavors}


CHILDREN = {"layers": child_layers, "surgery": child_surgery, "stage": child_stage}


def child_main(name: str, spec_json: str) -> int:
    import reproduce

    if ROOT not in Path(reproduce.__file__).resolve().parents:   # not another checkout's package
        raise RuntimeError(f"the child imported reproduce from {reproduce.__file__}, not from {ROOT}")
    spec = json.loads(spec_json)
    result = CHILDREN[name](spec)
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


def call_child(name: str, spec: dict, cwd: Path, env: dict, work: Path, timeout: float,
               tag: str = "") -> dict:
    spec = dict(spec, result=str(work / f"{name}{tag}.result.json"))
    run([sys.executable, str(Path(__file__).resolve()), "--child", name, json.dumps(spec)],
        cwd, env, work / f"{name}{tag}.log", timeout)
    return json.loads(Path(spec["result"]).read_text())


# ----------------------------------------------------------------------------- the checks


def row(check: str, ok: bool, difference: str) -> dict:
    return {"check": check, "ok": bool(ok), "difference": difference}


def check_layers(ctx: dict) -> list[dict]:
    tree = ctx["tree"]
    env = env_with(ctx["shim"], tree, ROOT)
    result = call_child("layers", {"forwards": ctx["args"].forwards}, tree / "voc-fcn32s", env,
                        ctx["work"], ctx["args"].timeout)
    return [row(r["check"], r["ok"], r["difference"]) for r in result["rows"]]


def _decisions(lines, golden_format: bool):
    """(verb, layer, blob) of each line surgery printed, or of Caffe's transplant log."""
    out = []
    for line in lines:
        words = line.split()
        if not words:
            continue
        if words[0] == "dropping":
            out.append(("dropping", words[1], int(words[2]) if len(words) > 2 else None))
        elif words[0] == "coercing":
            out.append(("coercing", words[1], int(words[2])))
        elif words[0] == "copying":
            # release: "copying conv1_1  ->  conv1_1 0"; golden: "copying conv1_1 0 (…) -> (…)"
            out.append(("copying", words[1], int(words[2] if golden_format else words[4])))
        else:
            out.append(("?", line, None))
    return out


def check_surgery(ctx: dict) -> list[dict]:
    import numpy as np

    golden, work = ctx["golden"], ctx["work"]
    out = work / "surgery" / "transplanted.caffemodel"
    out.parent.mkdir()
    result = call_child("surgery", {"golden": str(golden), "out": str(out)}, out.parent,
                        env_with(ctx["shim"], ctx["tree"], ROOT), work, ctx["args"].timeout)
    reference = np.load(golden / "vgg16-v1" / "fcn32s-transplanted-params.npz")
    ours = np.load(str(out) + ".npz")
    differing = [k for k in reference.files if k not in ours.files
                 or not np.array_equal(ours[k], reference[k])]
    extra = sorted(set(ours.files) - set(reference.files))
    worst = max((float(np.abs(ours[k].astype(np.float64) - reference[k]).max())
                 for k in reference.files if k in ours.files and ours[k].shape == reference[k].shape),
                default=0.0)
    saved = out.read_bytes()
    want = (golden / "vgg16-v1" / "fcn32s-transplanted.caffemodel").read_bytes()
    first = next((i for i, (a, b) in enumerate(zip(saved, want)) if a != b), min(len(saved), len(want)))
    printed = _decisions(result["printed"].splitlines(), golden_format=False)
    logged = _decisions((golden / "vgg16-v1" / "transplant_log.txt").read_text().splitlines(), True)
    return [
        row("surgery: transplant + interp parameters", not differing and not extra,
            f"{len(reference.files) - len(differing)}/{len(reference.files)} blobs bit-identical, "
            f"max |diff| {worst:g}" + (f"; differ: {', '.join(differing[:4])}" if differing else "")
            + (f"; not in golden: {', '.join(extra[:4])}" if extra else "")),
        row("surgery: net.save vs fcn32s-transplanted.caffemodel", saved == want,
            "byte-identical" if saved == want else
            f"{len(saved)} vs {len(want)} bytes, first difference at byte {first}"),
        row("surgery: printed decisions vs transplant_log.txt", printed == logged,
            f"{len(printed)} decisions " + ("identical" if printed == logged else
                                            f"differ from the log's {len(logged)}")),
    ]


def _label_from_rgb(path: Path):
    """A VOC-coloured RGB image (vis.color_seg) back to class indices; a colour outside
    the palette is an error naming the file."""
    import numpy as np
    from PIL import Image

    from reproduce.evaluation.score import voc_palette

    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.int64)
    palette = np.asarray(voc_palette(), dtype=np.int64).reshape(256, 3)
    codes = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    lookup = {int(c): i for i, c in reversed(list(enumerate(codes)))}
    pixel = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    values, inverse = np.unique(pixel, return_inverse=True)
    unknown = [hex(int(v)) for v in values if int(v) not in lookup]
    if unknown:
        raise RuntimeError(f"{path}: colours outside the VOC palette: {', '.join(unknown[:4])}")
    return np.asarray([lookup[int(v)] for v in values])[inverse.reshape(pixel.shape)]


def check_infer(ctx: dict) -> list[dict]:
    import numpy as np
    from PIL import Image

    golden, work, tree, args = ctx["golden"], ctx["work"], ctx["tree"], ctx["args"]
    generated = ctx["data"].voc_dir / "JPEGImages" / f"{ctx['data'].val_ids[0]}.jpg"
    rows = []
    for label, image in (("release demo/image.jpg", ctx["release"] / "demo" / "image.jpg"),
                         (f"generated {generated.name}", generated)):
        folder = work / f"infer-{len(rows)}"
        (folder / "demo").mkdir(parents=True)
        (folder / "voc-fcn8s").mkdir()
        shutil.copyfile(tree / "infer.py", folder / "infer.py")
        shutil.copyfile(image, folder / "demo" / "image.jpg")
        shutil.copyfile(golden / "voc-fcn8s" / "deploy.prototxt", folder / "voc-fcn8s" / "deploy.prototxt")
        shutil.copyfile(golden / "voc-fcn8s" / "weights.caffemodel",
                        folder / "voc-fcn8s" / "fcn8s-heavy-pascal.caffemodel")
        run([sys.executable, "infer.py"], folder, env_with(ctx["shim"], tree, ROOT),
            work / f"infer-{len(rows)}.log", args.timeout)
        ours = folder / "project"
        run([sys.executable, "-m", "reproduce", "infer", "--prototxt", str(folder / "voc-fcn8s" / "deploy.prototxt"),
             "--weights", str(folder / "voc-fcn8s" / "fcn8s-heavy-pascal.caffemodel"),
             str(folder / "demo" / "image.jpg"), "-o", str(ours), "--quiet", "--no-overlay"],
            folder, env_with(ROOT), work / f"infer-{len(rows)}-project.log", args.timeout)
        theirs = _label_from_rgb(folder / "demo" / "output.png")
        project = np.asarray(Image.open(ours / "image.png"))
        same_shape = theirs.shape == project.shape
        differ = int((theirs != project).sum()) if same_shape else -1
        wrote_vis = (folder / "demo" / "visualization.jpg").is_file()
        rows.append(row(f"infer: infer.py vs reproduce infer ({label})",
                        same_shape and differ == 0 and wrote_vis,
                        (f"{differ} of {project.size:,} pixels differ, {len(np.unique(project))} classes"
                         if same_shape else f"shapes {theirs.shape} vs {project.shape}")
                        + ("" if wrote_vis else "; no demo/visualization.jpg")))
    return rows


SEG_LINE = re.compile(r">>> .* Iteration (\d+) (loss|overall accuracy|mean accuracy|mean IU|fwavacc) (\S+)$")
DISPLAY_LINE = re.compile(r"Iteration (\d+) \(.*\), loss = (\S+)$")
OUTPUT_LINE = re.compile(r"Train net output #0: loss = (\S+) ")
# score.py's seg_tests loss against the suite's: score.py sums the per-image float32 losses in
# float32 (at most half an ulp per image), and the suite scores under torch.no_grad, whose
# forward rounds a per-image loss a few ulps away from the autograd forward pycaffe runs
# (2 ulps seen); the other four figures come from the same histogram and must be identical.
LOSS_ULPS = 8
SEG_KEYS = {"loss": "loss", "overall accuracy": "overall_acc", "mean accuracy": "mean_acc",
            "mean IU": "mean_iu", "fwavacc": "fwavacc"}


def check_solve(ctx: dict) -> list[dict]:
    return [r for init in ctx["args"].inits for r in check_solve_from(ctx, init)]


def check_solve_from(ctx: dict, init: str) -> list[dict]:
    import numpy as np

    from reproduce.training.stagelog import read_records
    from reproduce.weights.convert import load_weights

    golden, work, tree, args = ctx["golden"], ctx["work"], ctx["tree"], ctx["args"]
    net_dir = tree / "voc-fcn32s"
    release_init, stage_init = golden / INITS[init][0], golden / INITS[init][1]
    print(f"  solve from {init}: {INITS[init][2]}", flush=True)
    shutil.copyfile(release_init, tree / "ilsvrc-nets" / "vgg16-fcn.caffemodel")
    final = work / f"solve-{init}-final.caffemodel"
    log_file = work / f"solve-{init}.log"
    wrapper = ("import logging, runpy, sys\n"
               "logging.basicConfig(level=logging.INFO, format='%(message)s', stream=sys.stdout)\n"
               "sys.argv = ['solve.py', '0']\n"
               "script = runpy.run_path('solve.py', run_name='__main__')\n"
               f"script['solver'].net.save({str(final)!r})\n")
    started = time.perf_counter()
    run([sys.executable, "-c", wrapper], net_dir, env_with(ctx["shim"], tree, ROOT), log_file, args.timeout)
    release_seconds = time.perf_counter() - started
    from reproduce.caffe import text as prototxt

    base_lr = float(prototxt.read(net_dir / "solver.prototxt", "SolverParameter").base_lr)
    runs = work / f"stage-runs-{init}"
    data = ctx["data"]
    started = time.perf_counter()
    stage = call_child("stage", {"init": str(stage_init),
                                 "sbd_dir": str(data.sbdd_dir), "voc_dir": str(data.voc_dir),
                                 "runs": str(runs), "widths": args.widths, "iters": args.iters,
                                 "rounds": args.rounds, "base_lr": base_lr},
                       work, env_with(ROOT), work, args.timeout, tag=f"-{init}")
    stage_seconds = time.perf_counter() - started
    rows = []
    train_flavors = [f for f in stage["flavors"] if f[2]]
    if not train_flavors or any(f[1] != "python3" for f in train_flavors):
        rows.append(row(f"solve from {init}: suite stage draws Python 3's randint order", False, f"sources {stage['flavors']}"))

    theirs, ours = load_weights(final), load_weights(Path(stage["final"]))
    blobs = [(name, i) for name in ours for i in range(len(ours[name]))]
    differing = [f"{n}/{i}" for n, i in blobs if n not in theirs or i >= len(theirs[n])
                 or not np.array_equal(np.asarray(theirs[n][i]), np.asarray(ours[n][i]))]
    missing = sorted(set(theirs) - set(ours))
    worst = max((float(np.abs(np.asarray(theirs[n][i], np.float64) - np.asarray(ours[n][i])).max())
                 for n, i in blobs if n in theirs and i < len(theirs[n])
                 and np.shape(theirs[n][i]) == np.shape(ours[n][i])), default=0.0)
    start = load_weights(release_init)
    moved = max(float(np.abs(np.asarray(ours[n][i], np.float64) - np.asarray(start[n][i])).max())
                for n, i in blobs if n in start)
    iterations = args.iters * args.rounds
    rows.append(row(f"solve from {init}: parameters after {iterations} iterations", not differing and not missing and moved > 0,
                    f"{len(blobs) - len(differing)}/{len(blobs)} blobs bit-identical, max |diff| {worst:g} "
                    f"(training moved them up to {moved:.3g})"
                    + (f"; differ: {', '.join(differing[:4])}" if differing else "")
                    + (f"; only in solve.py's: {', '.join(missing)}" if missing else "")))

    log = log_file.read_text(errors="replace").splitlines()
    records = read_records(runs / "fcn32s" / "log.jsonl")
    displayed: dict[int, dict] = {}   # iteration → the smoothed loss (%g) and the loss blob printed
    current = None
    for line in log:
        if m := DISPLAY_LINE.search(line):
            current = int(m.group(1))
            displayed[current] = {"smoothed": m.group(2)}
        elif (m := OUTPUT_LINE.search(line)) and current is not None:
            displayed[current]["loss"] = float(m.group(1))
    train = {int(r["iter"]): r for r in records if r.get("kind") == "train"}
    compared, worst, detail = 0, 0.0, []
    for it, shown in sorted(displayed.items()):
        want = train.get(it)
        if want is None or "loss" not in shown:
            detail.append(f"iteration {it}: {'no stage record' if want is None else 'no loss line'}")
            continue
        compared += 1
        worst = max(worst, abs(shown["loss"] - want["loss"]) / max(abs(want["loss"]), 1e-30))
        if shown["smoothed"] != "%g" % want["smoothed_loss"] or shown["loss"] != want["loss"]:
            detail.append(f"iteration {it}: loss {shown['loss']!r} smoothed {shown['smoothed']} vs "
                          f"{want['loss']!r} {'%g' % want['smoothed_loss']}")
    loss_ok = compared > 0 and not detail
    rows.append(row(f"solve from {init}: training loss (display lines)", loss_ok,
                    f"{compared} display iterations: loss blob max rel. diff {worst:.2g}, smoothed loss "
                    + ("identical as printed (%g)" if loss_ok else f"— {'; '.join(detail[:3])}")))

    printed: dict[int, dict] = {}
    for m in map(SEG_LINE.search, log):
        if m:
            key = SEG_KEYS[m.group(2)]
            # score.py's loss is a float32 (summed in float32), printed as its shortest repr
            value = float(np.float32(m.group(3))) if key == "loss" else float(m.group(3))
            printed.setdefault(int(m.group(1)), {})[key] = value
    tests = {int(r["iter"]): r for r in records if r.get("kind") == "test"}
    expected_iters = [args.iters * (k + 1) for k in range(args.rounds)]
    worst_ulps, exact, detail = 0.0, True, []
    for it in expected_iters:
        got, want = printed.get(it), tests.get(it)
        if got is None or want is None or set(got) != set(SEG_KEYS.values()):
            exact = False
            detail.append(f"iteration {it}: solve.py {'printed' if got else 'no'} seg_tests, "
                          f"stage {'tested' if want else 'did not test'}")
            continue
        ulp = float(np.spacing(np.float32(want["loss"])))
        worst_ulps = max(worst_ulps, abs(got["loss"] - want["loss"]) / ulp)
        for key in ("overall_acc", "mean_acc", "mean_iu", "fwavacc"):
            a, b = got[key], want[key]
            if not (a == b or (np.isnan(a) and np.isnan(b))):
                exact = False
                detail.append(f"iteration {it} {key}: {a!r} vs {b!r}")
    ok = exact and worst_ulps <= LOSS_ULPS and sorted(printed) == expected_iters
    ious = [tests[i]["mean_iu"] for i in expected_iters if i in tests]
    rows.append(row(f"solve from {init}: seg_tests × {args.rounds} (score.py vs suite)", ok,
                    f"acc/mean acc/mean IU/fwavacc {'identical' if exact else 'DIFFER'}, loss within "
                    f"{worst_ulps:.1f} float32 ulp (≤ {LOSS_ULPS}); mean IU "
                    + "/".join(f"{v:.3f}" for v in ious)
                    + (f"; {'; '.join(detail[:3])}" if detail else "")
                    + f" [{release_seconds:.0f} s + {stage_seconds:.0f} s]"))
    return rows


RUNNERS = {"layers": check_layers, "surgery": check_surgery, "infer": check_infer, "solve": check_solve}


# ----------------------------------------------------------------------------- main


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", type=Path, required=True,
                        help="a checkout of shelhamer/fcn.berkeleyvision.org (kept outside the project)")
    parser.add_argument("--golden", type=Path, default=DEFAULT_GOLDEN,
                        help=f"the golden fixtures of the real Caffe (default {DEFAULT_GOLDEN})")
    parser.add_argument("--checks", default=",".join(CHECKS), help=f"comma-separated, of {', '.join(CHECKS)}")
    parser.add_argument("--iters", type=int, default=60, help="solve.py's solver.step(4000) becomes step(ITERS)")
    parser.add_argument("--rounds", type=int, default=3, help="solve.py's range(25) becomes range(ROUNDS)")
    parser.add_argument("--base-lr", type=float,
                        help="replace the release solver.prototxt's base_lr (default: keep its 1e-10)")
    parser.add_argument("--inits", default=",".join(INITS),
                        help=f"solve check starts, comma-separated, of {', '.join(INITS)} (default both)")
    parser.add_argument("--widths", choices=("tiny", "full"), default="tiny",
                        help="tiny: the golden widths (default); full: the release's nets unchanged (slow)")
    parser.add_argument("--n-train", type=int, default=6, help="generated training images")
    parser.add_argument("--n-val", type=int, default=3, help="generated validation images")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the generated data")
    parser.add_argument("--forwards", type=int, default=8, help="forwards per data layer in the layers check")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per subprocess")
    parser.add_argument("--keep", type=Path, help="work in this (new) folder and keep it, logs included")
    args = parser.parse_args(argv)
    checks = [c.strip() for c in args.checks.split(",") if c.strip()]
    unknown = [c for c in checks if c not in CHECKS]
    if unknown or not checks:
        raise CheckError(f"--checks {args.checks}: choose from {', '.join(CHECKS)}")
    for name in ("iters", "rounds", "forwards", "n_train"):
        if getattr(args, name) < 1:
            raise CheckError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.n_val < 2:   # score.py iterates np.loadtxt's array: one line gives a 0-d array
        raise CheckError(f"--n-val must be at least 2 (score.py cannot iterate a one-line list), got {args.n_val}")
    if args.keep is not None and args.keep.exists():
        raise CheckError(f"--keep {args.keep}: already exists (give a new folder)")
    args.checks = checks
    inits = [i.strip() for i in args.inits.split(",") if i.strip()]
    if not inits or any(i not in INITS for i in inits):
        raise CheckError(f"--inits {args.inits}: choose from {', '.join(INITS)}")
    args.inits = inits
    return args


def print_table(rows: list[dict]) -> None:
    width = max(len(r["check"]) for r in rows)
    print(f"{'check':<{width}}  result  measured difference")
    for r in rows:
        print(f"{r['check']:<{width}}  {'PASS' if r['ok'] else 'FAIL':<6}  {r['difference']}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--child"]:
        sys.path.insert(0, str(ROOT))
        return child_main(argv[1], argv[2])
    try:
        args = parse_args(argv)
        if not args.release.is_dir():   # before any work folder is made
            raise CheckError(f"--release {args.release}: no such folder (give a checkout of "
                             f"shelhamer/fcn.berkeleyvision.org)")
    except CheckError as err:
        print(f"check_release_scripts: {err}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    work = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="fcn-release-check-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        try:
            golden = args.golden.resolve()
            release, commit = release_tree(args.release.resolve(), work)
            check_inputs(release, golden, args.checks)
            ctx = prepare(work, release, golden, args)
        except CheckError as err:
            print(f"check_release_scripts: {err}", file=sys.stderr)
            return 2
        ctx.update(work=work, release=release, golden=golden, args=args, shim=shim_dir())
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from host import describe

        print(f"machine: {describe()}")
        print(f"release {args.release}" + (f" at {commit}" if commit else "")
              + f"; converted by lib2to3: {', '.join(ctx['converted'])}; work folder {work}", flush=True)
        for name in args.checks:
            started = time.perf_counter()
            try:
                found = RUNNERS[name](ctx)
            except RuntimeError as err:
                found = [row(f"{name}: a script failed", False, str(err).splitlines()[0])]
                print(str(err), file=sys.stderr)
            rows.extend(found)
            print(f"  {name}: {sum(r['ok'] for r in found)}/{len(found)} pass "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print_table(rows)
    failed = [r for r in rows if not r["ok"]]
    print(f"\n{len(rows) - len(failed)}/{len(rows)} checks pass")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

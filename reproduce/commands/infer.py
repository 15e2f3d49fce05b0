"""Segment images with an FCN: ``<stem>.png`` (VOC-palette label map) and ``<stem>_overlay.png`` per image.

``python -m reproduce infer --net fcn8s --weights weights/fcn8s-heavy-pascal.pth IMAGE_OR_DIR… -o OUT``
runs the deploy net of ``--net`` (or the deploy prototxt ``--prototxt``) on each image at
its own size, with the reference ``infer.py`` preprocessing, and writes the argmax label map
and the ``vis.py`` overlay. Folders are searched (not recursively) for image files.
``--dense F`` scores by shift-and-stitch of the coarse net by ``F`` instead of the net's
upsampling (CVPR 2015 Sec. 3.2; ``reproduce.evaluation.dense``): ``F²`` coarse passes per image.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from reproduce.cli import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reproduce.commands.common import add_device, add_quiet, add_run

    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="images, or folders of images")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    parser.add_argument("--net", default="fcn8s",
                        help="model name: fcn32s fcn16s fcn8s fcn8s-atonce fcn-alexnet, or a release folder "
                             "with RGB input (nyud-fcn32s-color, siftflow-fcn8s, pascalcontext-fcn8s…)")
    parser.add_argument("--prototxt", type=Path, help="a deploy prototxt to use instead of --net")
    parser.add_argument("--weights", type=Path, help=".caffemodel, .caffemodel.h5 or .pth (required unless --run)")
    add_run(parser)
    parser.add_argument("--widths", default="auto", help="full, tiny, or auto (read off the weights; default)")
    parser.add_argument("--num-classes", type=int, help="classes (default: read off the weights' score_fr)")
    parser.add_argument("--dataset", type=Path, metavar="DIR",
                        help="your dataset (stage --dataset DIR): its class names, its palette and its mean")
    parser.add_argument("--classes", type=Path, metavar="FILE",
                        help="a classes.txt (`name` or `name R G B` a line): the class names and palette")
    add_device(parser)
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (default 0.5, as vis.py)")
    parser.add_argument("--no-overlay", action="store_true", help="write the label maps only")
    parser.add_argument("--no-legend", action="store_true",
                        help="overlays without the legend of the classes present (the picture vis.py draws)")
    add_quiet(parser, "no progress bar, no per-image lines")
    parser.add_argument("--dense", type=int, metavar="F",
                        help="score by shift-and-stitch of the coarse net by F (a divisor of its "
                             "stride, 32; F² passes) instead of the net's upsampling "
                             "(CVPR 2015 Sec. 3.2; FCN-32s and FCN-AlexNet)")
    parser.add_argument("--tile", type=int, help="segment images larger than TILE px (a multiple of 32) in "
                                                 "overlapping tiles; without it, an image whose forward "
                                                 "would not fit in memory is refused with the estimate")


def run(args: argparse.Namespace) -> int:
    from reproduce.evaluation.infer import collect_images, infer_images

    from reproduce.commands.common import apply_run

    apply_run(args)
    images = collect_images(args.inputs)
    if not images:
        raise UserError(f"no image files in {', '.join(map(str, args.inputs))}")
    mean, score_blob = _preprocessing(args)
    classes, release = _classes(args), None
    if classes is None and args.prototxt is None:   # a release net: its dataset's class names
        from reproduce.data.description import release_description
        from reproduce.models import MODELS

        release = release_description(MODELS[args.net].dataset)
    if classes is not None:
        if args.num_classes is not None and args.num_classes != classes.num_classes:
            raise UserError(f"--num-classes {args.num_classes} but the dataset has {classes.num_classes} classes")
        if args.dataset is not None or args.classes is not None:
            args.num_classes = classes.num_classes
        if args.dataset is not None:
            mean = classes.mean_bgr   # what its stages' data layers subtracted
    net = _build(args)
    if release is not None and _classes_of(net, score_blob) == release.num_classes:
        classes = release   # the release's class names (its palette is VOC's)
    try:
        results = infer_images(net, images, args.out, overlay=not args.no_overlay, alpha=args.alpha,
                               progress=not args.quiet, mean=mean, score_blob=score_blob,
                               dense=args.dense, tile=args.tile, legend=not args.no_legend,
                               palette=classes.palette() if classes is not None else None,
                               class_names=classes.classes if classes is not None else None)
    except ValueError as err:
        raise UserError(str(err)) from None
    if not args.quiet:
        for r in results:
            print(f"{r.image} → {r.label_png}" + (f", {r.overlay.name}" if r.overlay else "")
                  + f" (classes {', '.join(r.names or map(str, r.classes))})")
    print(f"segmented {len(results)} image(s) into {args.out}")
    return 0


def _preprocessing(args: argparse.Namespace):
    """The mean the net's data layer subtracted and the head to label by (SIFT Flow: semantic)."""
    from reproduce.evaluation.infer import INFER_MEAN_BGR

    if args.prototxt is not None:   # a deploy prototxt of the release: VOC mean, "score" blob
        return INFER_MEAN_BGR, "score"
    from reproduce.models import MODELS

    if args.net not in MODELS:
        raise UserError(f"unknown --net {args.net!r} (choose from {', '.join(MODELS)})")
    m = MODELS[args.net]
    if m.inputs != ("data",) or (m.modalities and m.modalities != ("color",)):
        raise UserError(f"--net {args.net} takes {', '.join(m.modalities or m.inputs)}, not an RGB image: "
                        f"run its deploy net with `python -m reproduce forward --prototxt "
                        f"prototxt_ref/{m.folder}/deploy.prototxt` and .npy inputs")
    from reproduce.data.description import release_description

    return release_description(m.dataset).deploy_mean(), m.heads[0].score


def _build(args: argparse.Namespace):
    from reproduce.weights.convert import load_weights
    from reproduce.weights.pretrained import load_net, resolve_device

    try:
        if args.prototxt is not None:
            from reproduce.net import Net

            net = Net(args.prototxt, phase="test")
            net.copy_from(load_weights(args.weights))
            return net.to(resolve_device(args.device))
        from reproduce.models import MODELS

        if args.net not in MODELS:
            raise UserError(f"unknown --net {args.net!r} (choose from {', '.join(MODELS)})")
        return load_net(args.net, args.weights, split="deploy", widths=args.widths, num_classes=args.num_classes,
                        device=args.device)
    except ValueError as err:  # NetError, shape mismatches, undetectable widths
        raise UserError(f"{args.weights}: {err}" if str(args.weights) not in str(err) else str(err)) from None


def _classes(args: argparse.Namespace):
    """The ``DatasetDescription`` whose names and colours label the pictures (``--dataset``,
    ``--classes``), or None (the VOC palette, class numbers)."""
    if args.dataset is None and args.classes is None:
        return None
    if args.dataset is not None and args.classes is not None:
        raise UserError("give --dataset DIR or --classes FILE, not both")
    from reproduce.data import DatasetError
    from reproduce.data.description import DatasetDescription, voc_colours
    from reproduce.data.folder import describe_folder, read_classes

    try:
        if args.dataset is not None:
            return describe_folder(args.dataset, num_classes=args.num_classes)
        names, colours = read_classes(args.classes)
    except (DatasetError, OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(str(err).splitlines()[0]) from None
    return DatasetDescription(args.classes.stem, str(args.classes), "classes", ("train", "val"), names,
                              colours or voc_colours(len(names)), judged=False)


def _classes_of(net, score_blob: str) -> int | None:
    """The class count of a built net's scores (None when it cannot tell)."""
    try:
        return int(net.blob_shapes[score_blob][1])
    except (AttributeError, KeyError, IndexError, TypeError):
        return None

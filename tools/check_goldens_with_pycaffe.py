"""Run golden layer fixtures in a (second) pycaffe and report how far it is from them.

For each ``<case>.npz`` of a fixture folder written by ``tools/make_layer_goldens.py`` or
``tools/make_fork_goldens.py``: the stored prototxt is built in the pycaffe on ``PYTHONPATH``
(or ``--caffe-python``) with the fixture's own parameter values, run forward (and backward where
the fixture has one), and the largest error relative to each stored array's largest magnitude
is printed — ``0`` is bit-identical. Each case runs in a child process, because Caffe aborts the
process on a layer it lacks or a check it fails; those cases print ``aborted`` or ``absent``.
Imports nothing of this project. Usage::

    PYTHONPATH=<caffe>/python python3 tools/check_goldens_with_pycaffe.py tests/golden_layers
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def relative(got, expected):
    import numpy as np
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    diff = float(np.abs(np.asarray(got, np.float64) - expected).max()) if expected.size else 0.0
    return diff / scale if scale > 0 else diff


def run_one(path: Path) -> str:
    import numpy as np
    import caffe
    caffe.set_mode_cpu()
    store = np.load(path)
    text = str(store["prototxt"])
    tmp = tempfile.mkdtemp()
    for key in [k for k in store.files if k.startswith("file/")]:
        name, value = key.split("/", 1)[1], store[key]
        blob_path = os.path.join(tmp, name + ".binaryproto")
        with open(blob_path, "wb") as f:
            f.write(caffe.io.array_to_blobproto(value.reshape((1, 1) + value.shape))
                    .SerializeToString())
        text = text.replace(f"@{name}@", blob_path)
    proto = os.path.join(tmp, "net.prototxt")
    with open(proto, "w") as f:
        f.write(text)
    net = caffe.Net(proto, caffe.TRAIN)
    for layer, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            blob.data[...] = store[f"param/{layer}/{i}"]
            blob.diff[...] = 0
    net.forward()
    forward = max([relative(net.blobs[k[5:]].data, store[k])
                   for k in store.files if k.startswith("blob/")] or [0.0])
    backward = "-"
    if int(store["has_backward"]):
        net.backward()
        backward = "%.2e" % max([relative(net.params[k.split("/")[1]][int(k.split("/")[2])].diff,
                                          store[k]) for k in store.files if k.startswith("diff/")]
                                or [0.0])
    return f"forward {forward:.2e} backward {backward}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--caffe-python", help="directory holding pycaffe's caffe package")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)   # the child's work
    args = parser.parse_args(argv)
    if args.caffe_python:
        sys.path.insert(0, args.caffe_python)
    if args.one:
        print(run_one(args.one))
        return
    env = dict(os.environ, GLOG_minloglevel="3")
    if args.caffe_python:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.caffe_python,
                                                          env.get("PYTHONPATH")]))
    identical = total = 0
    for path in sorted(args.folder.glob("*.npz")):
        child = subprocess.run([sys.executable, __file__, str(args.folder), "--one", str(path)],
                               capture_output=True, text=True, env=env)
        lines = child.stdout.strip().splitlines()
        if child.returncode == 0 and lines:
            result = lines[-1]
            total += 1
            identical += result == "forward 0.00e+00 backward 0.00e+00" or \
                result == "forward 0.00e+00 backward -"
        else:
            errors = child.stderr.strip().splitlines() or ["?"]
            fatal = [line for line in errors if line[:1] == "F" and line[1:5].isdigit()]
            message = (fatal or errors)[-1].split("] ", 1)[-1]
            why = "absent" if "Unknown layer type" in message else "aborted"
            result = f"{why}: {message[:110]}"
        print(f"{path.stem:28s} {result}", flush=True)
    print(f"{identical} of {total} cases that ran are bit-identical")


if __name__ == "__main__":
    main()

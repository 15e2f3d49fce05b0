"""A stage's run folder as a model to run: ``forward``/``infer``/``export --run runs/<stage>``.

``stage`` writes ``<runs>/<stage>/`` with ``deploy.prototxt`` (beside ``train``/``val``),
``config.json`` (the model, widths and classes it was trained with) and, when finished,
``final.pth``/``final.caffemodel``. ``read_run`` gathers those three — deploy net, final
weights, widths — so that a model just trained runs with one flag; it names what is missing
(an unfinished run's newest snapshot included) in one line.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


class RunFolderError(ValueError):
    """A ``--run`` folder that is not a finished stage run; the message names the fix."""


@dataclass(frozen=True)
class RunModel:
    folder: Path
    model: str                 # the stage's net name (reproduce.models)
    widths: str                # "full" or "tiny"
    num_classes: int | None    # None: the release's
    weights: Path              # final.pth (else final.caffemodel)
    deploy: Path | None        # deploy.prototxt, None for a run written before stages wrote it

    def net_param(self):
        """The deploy NetParameter: the run's ``deploy.prototxt``, else built from its config."""
        if self.deploy is not None:
            from reproduce.caffe import read_net

            return read_net(self.deploy)
        from reproduce.models import net_param

        return net_param(self.model, "deploy", self.num_classes, self.widths)


def read_run(folder: Path) -> RunModel:
    folder = Path(folder)
    if not folder.is_dir():
        raise RunFolderError(f"--run {folder}: no such run folder (stage writes <runs>/<stage>/)")
    config = _json(folder / "config.json")
    done = _json(folder / "done.json")
    if config is None and done is None:
        raise RunFolderError(f"--run {folder}: not a stage run folder (no config.json or done.json)")
    info = {**(config or {}), **(done or {})}
    model = info.get("model")
    if not model:
        raise RunFolderError(f"--run {folder}: config.json names no model")
    weights = next((folder / name for name in ("final.pth", "final.caffemodel") if (folder / name).is_file()), None)
    if weights is None:
        snapshots = sorted((folder / "snapshot").glob("*_iter_*.caffemodel"),
                           key=lambda p: int(p.stem.rsplit("_", 1)[-1]) if p.stem.rsplit("_", 1)[-1].isdigit() else -1)
        hint = (f"; its newest snapshot is {snapshots[-1]} (use --prototxt {folder / 'deploy.prototxt'} "
                f"--weights {snapshots[-1]})" if snapshots else "")
        raise RunFolderError(f"--run {folder}: the stage has not finished (no final.pth or final.caffemodel)"
                             f"{hint}; run the stage to the end first")
    deploy = folder / "deploy.prototxt"
    classes = (config or {}).get("num_classes")
    return RunModel(folder=folder, model=str(model), widths=str(info.get("widths") or "full"),
                    num_classes=int(classes) if isinstance(classes, int) else None, weights=weights,
                    deploy=deploy if deploy.is_file() else None)


def _json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise RunFolderError(f"{path}: unreadable ({err})") from None
    return data if isinstance(data, dict) else None

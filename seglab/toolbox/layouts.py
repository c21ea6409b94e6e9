"""The on-disk layouts the datasets expect: which dataset a folder holds, where SBD sits in it, and the checks that
turn a wrong ``--data`` folder into a one-line error naming the fix (missing folder, archive extracted one level too
deep, a sub-folder instead of the root, an empty split). ``seglab.data`` calls them before it lists any file."""
from __future__ import annotations

from pathlib import Path

from seglab.errors import SeglabError

CITYSCAPES_LAYOUT = "<root>/leftImg8bit/<split>/<city>/*_leftImg8bit.png with <root>/gtFine/<split>/<city>/*_gtFine_labelIds.png"
VOC_LAYOUT = "<root>/VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation}"
SBD_LAYOUT = "<root>/benchmark_RELEASE/dataset/{img,cls,train.txt,val.txt}"


def require_dir(path: Path, what: str, layout: str, synth: str) -> None:
    if not path.is_dir():
        raise SeglabError(f"{what} not found: {path} does not exist; expected {layout} "
                          f"(create the synthetic one with `python -m seglab synth {synth} --out DIR`)")


def check_not_nested(root: Path, marker: str, layout: str, synth: str) -> None:
    """Explain the common 'zip extracted one level too deep' and 'pointed at a sub-folder' mistakes."""
    if (root / marker).is_dir():
        return
    nested = sorted(p.parent for p in root.glob(f"*/{marker}"))
    if nested:
        raise SeglabError(f"{root} holds the dataset one level deeper, in {nested[0]} (extracted one level too deep?); "
                          f"pass --data {nested[0]} or move its contents up")
    for parent in root.parents[:3]:
        if (parent / marker).is_dir():
            raise SeglabError(f"{root} is inside the dataset; pass its root {parent} instead")
    require_dir(root / marker, f"{marker}/ folder", layout, synth)


def empty_split(split: str, root: Path, layout: str) -> SeglabError:
    return SeglabError(f"split {split!r} of {root} has no samples; expected {layout}")


def find_sbd_root(root: str | Path) -> Path | None:
    """The SBD ``dataset`` folder under ``root`` (itself, ``dataset/`` or ``benchmark_RELEASE/dataset/``), if any."""
    root = Path(root)
    for candidate in (root, root / "dataset", root / "benchmark_RELEASE" / "dataset"):
        if (candidate / "cls").is_dir() and (candidate / "img").is_dir():
            return candidate
    return None


DATASET_NAMES = {"cityscapes": "Cityscapes", "voc": "Pascal VOC"}


def dataset_layout(root: str | Path) -> str | None:
    """'cityscapes' or 'voc' when ``root`` holds that dataset's top folders (leftImg8bit/, or VOCdevkit/ or SBD) and
    not the other's, else None."""
    root = Path(root)
    found = {"cityscapes": (root / "leftImg8bit").is_dir(),
             "voc": (root / "VOCdevkit").is_dir() or find_sbd_root(root) is not None}
    return next(k for k, v in found.items() if v) if sum(found.values()) == 1 else None

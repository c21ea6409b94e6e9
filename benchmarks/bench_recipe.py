"""Time to accuracy: seglab's demo recipe against a seed-style recipe on the same MiniCity, in one run.

* seglab: the demo recipe, the preset ``minicity_demo`` (seglab/presets/minicity_demo.toml, the one place it is
  written; notebook 07 trains it), run by seglab's ``Trainer`` (its crops, loss, schedule and precision);
* seed-style: what the older repositories did: fp32, Adam at a fixed learning rate, whole frames resized to 256x256
  with horizontal flips and 90-degree rotations, plain cross-entropy (ignore 255), batch 8, the same model.

Each arm trains for ``--budget`` CPU-seconds of this process (``time.process_time``: every thread, data loading
included, as the loaders run in-process; building the model and the datasets counts too) and is validated every
``--eval-every`` CPU-seconds on the validation split at native resolution (the seed-style arm predicts at its 256x256
training geometry and its logits are resized to the label size, as those repositories evaluated). Validation time is
not counted. Writes ``recipe.csv`` (one row per validation), ``recipe.png`` (mIoU against CPU-seconds, both arms),
``recipe_ablation.csv`` with ``--ablation`` (the demo recipe with one lever changed at a time,
``--ablation-budget`` CPU-seconds each; every row with the first of ``--ablation-seeds``, the ``--top`` best rows
also with the others), and prints as its last line
``time-to-accuracy: seglab reaches the seed-style best mIoU X in A s vs B s: N.Nx``.

    .venv/bin/python benchmarks/bench_recipe.py --out outputs/benchmarks [--budget CPU_S] [--ablation [--ablation-budget CPU_S]]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout even before `pip install -e .`
from benchmarks.common import (DEFAULT_OUT, machine, ratio_row, record_ratios, save_plot,  # noqa: E402,I001
                               write_csv)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

from seglab.config import TrainConfig, load_preset  # noqa: E402
from seglab.data import build_dataset  # noqa: E402
from seglab.engine import Trainer, lr_lambda  # noqa: E402
from seglab.infer import evaluate  # noqa: E402
from seglab.labels import IGNORE_INDEX  # noqa: E402
from seglab.transforms import to_float_normalized  # noqa: E402

PRESET = "minicity_demo"
SEED_SIZE = (256, 256)
# Each ablation row changes one lever of the demo recipe: what it adds (or costs) in the same budget.
ABLATION = {
    "demo recipe (minicity_demo)": {},
    "half of the crops class-uniform instead of all": {"class_uniform": 0.5},
    "no class-uniform crops": {"class_uniform": 0.0},
    "no cat_max_ratio": {"cat_max_ratio": 1.0},
    "no class weights": {"class_weights": "none"},
    "median-frequency weights instead of ENet": {"class_weights": "median_frequency"},
    "native scale, crop 256x256": {"train_resize": 1.0, "crop": (256, 256), "zoom_range": (0.5, 2.0)},
    "+ OHEM loss": {"loss": "ohem"},
    "+ Lovász-softmax 0.5": {"lovasz_weight": 0.5},
    "constant LR (no warm-up, no decay)": {"schedule_off": True},
    "40 training frames instead of 300": {"train_frames": 40},
    "frames decoded at every step instead of kept in memory": {"in_memory": False},
}


def demo_recipe() -> dict:
    """The TrainConfig fields the demo preset sets."""
    return load_preset(PRESET)


# ------------------------------------------------------------------------------------------------ scoring
class SquashedInput(torch.nn.Module):
    """The seed-style geometry at test time: the image squeezed to SEED_SIZE, the logits resized back."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.model(F.interpolate(images, size=SEED_SIZE, mode="bilinear", align_corners=False))
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


def native_miou(model: torch.nn.Module, val_set) -> tuple[float, int]:
    """Validation mIoU at native resolution (seglab's own evaluation) and the number of classes with IoU > 0."""
    matrix, _ = evaluate(model, val_set, channels_last=True, progress=False)
    model.train()
    return matrix.miou(), int((matrix.iou() > 0).sum())


# ------------------------------------------------------------------------------------------------ the two arms
def forever(make_loader: Callable[[int], torch.utils.data.DataLoader]) -> Iterator:
    epoch = 1
    while True:
        yield from make_loader(epoch)
        epoch += 1


def train_for(arm: str, step: Callable[[], None], score: Callable[[], tuple[float, int]], budget: float,
              eval_every: float, setup: float) -> list[dict]:
    """Call ``step`` until ``budget`` CPU-seconds of it (and of the ``setup`` before it) have passed, scoring every
    ``eval_every`` seconds."""
    rows, spent, steps, next_eval = [], setup, 0, eval_every
    while spent < budget:
        start = time.process_time()
        step()
        spent += time.process_time() - start
        steps += 1
        if spent >= next_eval or spent >= budget:
            miou, learned = score()
            rows.append({"arm": arm, "steps": steps, "cpu_seconds": round(spent, 1), "miou": miou,
                         "classes_learned": learned})
            print(f"  {arm}: {steps} steps, {spent:.0f} CPU-s: val mIoU {miou:.4f}, {learned} classes > 0", flush=True)
            next_eval += eval_every
    return rows


def seglab_arm(data: Path, work: Path, args, overrides: dict, name: str) -> list[dict]:
    """The demo recipe (with ``overrides``) through seglab's Trainer, the schedule sized to the budget."""
    values = {**demo_recipe(), **overrides}
    constant = values.pop("schedule_off", False)
    config = TrainConfig.from_dict({**values, "data": str(data), "out": str(work / "seglab"), "workers": 0,
                                    "progress": False, "tensorboard": False, "seed": args.seed, "val_resize": 1.0})
    start = time.process_time()
    trainer = Trainer(config, overwrite=True)
    setup = time.process_time() - start  # building the model and the datasets (decoding them, with in_memory)
    # the schedule spans the steps the budget buys (measured on a first step), as a run of that length would
    first = time.process_time()
    batches = forever(trainer._loader)
    images, targets = next(batches)
    trainer.train_step(images, targets)
    total = max(2, int(args.budget / (time.process_time() - first)))
    if constant:
        trainer.scheduler = torch.optim.lr_scheduler.LambdaLR(trainer.optimizer, lambda step: 1.0)
    else:
        warmup = min(total - 1, int(config.warmup_epochs * trainer.steps_per_epoch))
        trainer.scheduler = torch.optim.lr_scheduler.LambdaLR(trainer.optimizer,
                                                              lr_lambda(total, warmup, config.schedule))

    def step() -> None:
        trainer.train_step(*next(batches))

    return train_for(name, step, lambda: native_miou(trainer.model, trainer.val_set), args.budget, args.eval_every,
                     setup)


class RandomRot90(v2.Transform):
    """Rotate image and mask together by a random multiple of 90 degrees (square inputs keep their size)."""

    def make_params(self, flat_inputs):
        return {"k": int(torch.randint(0, 4, ()))}

    def transform(self, inpt, params):
        if not isinstance(inpt, (tv_tensors.Image, tv_tensors.Mask)):
            return inpt
        return tv_tensors.wrap(torch.rot90(inpt.as_subclass(torch.Tensor), params["k"], dims=(-2, -1)), like=inpt)


def seed_style_arm(data: Path, args, model_name: str, model_options: dict) -> list[dict]:
    """fp32, Adam at a fixed LR, whole frames resized to 256x256 with flips and 90-degree rotations, plain CE."""
    from seglab.models import build_model

    start = time.process_time()
    torch.manual_seed(args.seed)
    transforms = v2.Compose([v2.Resize(SEED_SIZE), v2.RandomHorizontalFlip(), RandomRot90(), *to_float_normalized()])
    train_set = build_dataset("cityscapes", data, "train", transforms)
    val_set = build_dataset("cityscapes", data, "val")
    model = build_model(model_name, train_set.num_classes, **model_options)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.seed_lr)
    generator = torch.Generator().manual_seed(args.seed)
    batches = forever(lambda epoch: torch.utils.data.DataLoader(train_set, batch_size=8, shuffle=True, drop_last=True,
                                                                generator=generator))
    model.train()
    setup = time.process_time() - start

    def step() -> None:
        images, targets = next(batches)
        loss = F.cross_entropy(model(images), targets, ignore_index=IGNORE_INDEX)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return train_for("seed-style", step, lambda: native_miou(SquashedInput(model), val_set), args.budget,
                     args.eval_every, setup)


def run_ablation(data: Path, work: Path, args) -> list[dict]:
    """Every ABLATION row once with the first seed, then the ``--top`` best rows again with each further seed."""
    def row(name: str, seed: int) -> dict:
        overrides = dict(ABLATION[name])
        frames = overrides.pop("train_frames", None)
        row_data = data
        if frames:  # the same generator and val split, fewer training frames
            from seglab.toolbox.synth import generate_minicity

            row_data = work / f"minicity_{frames}"
            if not row_data.exists():
                generate_minicity(row_data, train=frames, val=args.val_frames, test=0, seed=args.seed)
        seeded = argparse.Namespace(**{**vars(args), "seed": seed, "eval_every": args.ablation_budget,
                                       "budget": args.ablation_budget})
        result = seglab_arm(row_data, work, seeded, overrides, name)[-1]
        return {"recipe": name, "seed": seed, **{k: result[k] for k in ("miou", "classes_learned", "cpu_seconds")}}

    first, *more = args.ablation_seeds
    results = [row(name, first) for name in ABLATION]
    top = sorted(results, key=lambda r: -r["miou"])[:args.top]
    results += [row(r["recipe"], seed) for seed in more for r in top]
    return results


# ------------------------------------------------------------------------------------------------ results
def time_to_reach(rows: list[dict], target: float) -> float:
    """CPU-seconds at the first validation at or above ``target`` (inf if never)."""
    return next((r["cpu_seconds"] for r in rows if r["miou"] >= target), float("inf"))


def plot(table, path: Path, headline: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    for arm, rows in table.groupby("arm", sort=False):
        ax.plot(rows["cpu_seconds"], rows["miou"], marker="o", label=f"{arm} (best {rows['miou'].max():.3f})")
    ax.set_xlabel("training CPU-seconds (this process, data loading included)")
    ax.set_ylabel("val mIoU at native resolution")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(headline, fontsize=9)
    fig.suptitle(f"MiniCity time to accuracy on {machine()}", fontsize=10)
    save_plot(fig, path)


def run(args) -> str:
    import pandas as pd

    from seglab.toolbox.synth import generate_minicity

    recipe = demo_recipe()
    with tempfile.TemporaryDirectory(prefix="bench_recipe_") as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "minicity"
            generate_minicity(data, train=args.train_frames, val=args.val_frames, test=0, seed=args.seed)
        print(f"recipe of the preset {PRESET}: {recipe}", flush=True)
        rows = seed_style_arm(data, args, recipe.get("model", "unet"), recipe.get("model_options", {}))
        rows += seglab_arm(data, Path(tmp), args, {}, "seglab")
        ablation = run_ablation(data, Path(tmp), args) if args.ablation else []
    table = pd.DataFrame(rows)
    write_csv(table, args.out / "recipe.csv")
    seed_rows, seglab_rows = (table[table["arm"] == a].to_dict("records") for a in ("seed-style", "seglab"))
    target = max(r["miou"] for r in seed_rows)
    seed_time, seglab_time = time_to_reach(seed_rows, target), time_to_reach(seglab_rows, target)
    headline = (f"time-to-accuracy: seglab reaches the seed-style best mIoU {target:.3f} in {seglab_time:.0f} s vs "
                f"{seed_time:.0f} s: {seed_time / seglab_time:.1f}x")
    plot(table, args.out / "recipe.png", headline)
    if ablation:
        frame = pd.DataFrame(ablation)
        write_csv(frame, args.out / "recipe_ablation.csv")
        print(frame.groupby("recipe", sort=False)[["miou", "classes_learned"]].agg(["mean", "min", "max"]).to_string())
    record_ratios(args.out, [ratio_row("recipe", f"CPU-seconds to the seed-style best val mIoU {target:.3f}",
                                       seglab_time, seed_time, "s", higher_is_better=False,
                                       peer_name="seed-style recipe", target=5.0,
                                       detail=f"best mIoU seglab {max(r['miou'] for r in seglab_rows):.3f} vs "
                                              f"{target:.3f} in {args.budget:.0f} CPU-s each")])
    print(headline, flush=True)
    return headline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=960,
                        help="training CPU-seconds per arm (960: about what notebook 07's training uses on 2 cores)")
    parser.add_argument("--eval-every", type=float, default=20, help="CPU-seconds between validations")
    parser.add_argument("--seed-lr", type=float, default=1e-3, help="the seed-style arm's fixed Adam learning rate")
    parser.add_argument("--data", type=Path, default=None, help="a Cityscapes-layout root (default: a fresh MiniCity)")
    parser.add_argument("--train-frames", type=int, default=300)
    parser.add_argument("--val-frames", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ablation", action="store_true", help="also train each ablation row (--ablation-budget each)")
    parser.add_argument("--ablation-budget", type=float, default=240, help="training CPU-seconds per ablation row")
    parser.add_argument("--ablation-seeds", type=lambda t: [int(s) for s in t.split(",")], default=[0, 1],
                        help="every row runs with the first seed, the --top best rows also with the others")
    parser.add_argument("--top", type=int, default=3, help="rows repeated with every --ablation-seeds seed")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    run(parser.parse_args())


if __name__ == "__main__":
    main()

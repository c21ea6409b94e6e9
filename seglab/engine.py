"""Training: ``fit(config)`` runs epochs of training and validation with AMP, channels_last, checkpoints and DDP.

Randomness of every epoch (shuffling, augmentation, dropout) is derived from (seed, epoch), so a run resumed from
``last.pt`` repeats exactly what an uninterrupted run does, and `torchrun` processes agree on it.
"""
from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from seglab.checkpoint import Checkpoint, unwrap
from seglab.config import HISTORY_COLUMNS, TrainConfig
from seglab.data import class_frequencies, denormalize, train_dataset, val_dataset, weights_from_counts
from seglab.errors import SeglabError
from seglab.infer import iter_predictions, predict_labels, score_predictions
from seglab.labels import get_label_set
from seglab.losses import SegmentationLoss
from seglab.metrics import all_reduce, summary
from seglab.models import build_model
from seglab.toolbox.interrupts import CleanStop
from seglab.toolbox.loss_watch import LossWatch
from seglab.toolbox.run_folder import check_run_dir, write_json, write_table
from seglab.toolbox.runtime import (autocast, cleanup_distributed, epoch_order, init_distributed, seed_everything,
                                    training_speed, tune_kernels_for_fixed_shapes, wrap_for_training)
from seglab.toolbox.tensorboard_log import TensorBoardLog
from seglab.viz import triptych

# Validation image panels go to TensorBoard at this many epochs (the first, the last, evenly between): one set per
# epoch made a 40-epoch demo run's event file 37 MB.
PANEL_EPOCHS = 5


# ------------------------------------------------------------------------------------------------ pieces
def panel_epochs(epochs: int) -> set[int]:
    """The PANEL_EPOCHS epochs whose validation predictions TensorBoard shows, the first and the last included."""
    if epochs <= PANEL_EPOCHS:
        return set(range(1, epochs + 1))
    return {1 + round(index * (epochs - 1) / (PANEL_EPOCHS - 1)) for index in range(PANEL_EPOCHS)}


def lr_lambda(total_steps: int, warmup_steps: int, schedule: str):
    """Per-step LR factor: linear warm-up, then poly (power 0.9) or cosine decay to zero."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        return (1 - progress) ** 0.9
    return factor


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or SGD (Nesterov momentum); no weight decay on norms and biases."""
    params = [param for param in model.parameters() if param.requires_grad]
    groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=config.lr)


def _number(value: float | None) -> float:
    """A metric for the history table: undefined (None) becomes NaN."""
    return float("nan") if value is None else float(value)


# ------------------------------------------------------------------------------------------------ the trainer
class Trainer:
    """Holds a run's model, data, optimiser and history; ``run()`` trains the remaining epochs.

    The host reads the loss every ``read_every`` steps (progress bar, TensorBoard, the non-finite check), not after
    each step, so a GPU is never left waiting for Python between steps; set it to 1 to read every step."""

    read_every: int = 10

    def __init__(self, config: TrainConfig, resume: bool = False, overwrite: bool = False) -> None:
        config.check()
        self.config, self.out = config, Path(config.out)
        self.dist, self.device = init_distributed(config.device)
        self.precision, self.channels_last = training_speed(config.precision, config.memory_format, self.device,
                                                            config.batch_size * config.crop[0] * config.crop[1])
        tune_kernels_for_fixed_shapes(self.device)  # every training batch has the crop's shape
        label_set = self.label_set = get_label_set(config.dataset)
        self.class_names, self.num_classes = list(label_set.classes), label_set.num_classes
        seed_everything(config.seed)
        model = build_model(config.model, self.num_classes, **config.model_options)  # bad names fail first
        check_run_dir(self.out, resume, overwrite)

        self.train_set, self.val_set = train_dataset(config), val_dataset(config)
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=self.memory_format)
        # DDP and SyncBatchNorm under torchrun, torch.compile when asked: the module the step calls
        self.train_model = wrap_for_training(self.model, self.dist, self.device, config.sync_bn, config.compile)

        weights = (weights_from_counts(class_frequencies(self.train_set), config.class_weights)
                   if config.class_weights != "none" else None)
        self.criterion = SegmentationLoss(config, weights).to(self.device)
        self.optimizer = make_optimizer(model, config)
        self.steps_per_epoch = self._steps_per_epoch()
        self.total_steps = self.steps_per_epoch * config.epochs
        self.warmup_steps = min(self.total_steps - 1, int(config.warmup_epochs * self.steps_per_epoch))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(self.total_steps, self.warmup_steps, config.schedule))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.history: dict[str, list] = {column: [] for column in HISTORY_COLUMNS}
        self.start_epoch, self.best_miou = 1, -1.0
        self.log: TensorBoardLog | None = None  # opened by run() on rank 0 when config.tensorboard
        if resume:
            self._resume()

    # ---------------------------------------------------------------------------------------- set-up helpers
    def _steps_per_epoch(self) -> int:
        per_rank = math.ceil(len(self.train_set) / self.dist.world_size)
        steps = per_rank // self.config.batch_size
        if steps == 0:
            raise SeglabError(f"batch size {self.config.batch_size} is larger than the {per_rank} training images "
                              "per process; lower --batch-size")
        return min(steps, self.config.max_steps) if self.config.max_steps else steps

    def _resume(self) -> None:
        record = Checkpoint.load(self.out / "last.pt", map_location=self.device)
        spec = unwrap(self.model).seglab_spec
        if (record.spec["name"], record.spec["num_classes"]) != (spec["name"], spec["num_classes"]):
            raise SeglabError(f"{self.out / 'last.pt'} holds a {record.spec['name']!r} model with "
                              f"{record.spec['num_classes']} classes; resume it with --model {record.spec['name']} "
                              "on the same dataset, or choose another --out")
        self.model.load_state_dict(record.model)
        self.optimizer.load_state_dict(record.optimizer)
        self.scheduler.load_state_dict(record.scheduler)
        if record.scaler:
            self.scaler.load_state_dict(record.scaler)
        self.history = {column: list(record.history[column]) for column in HISTORY_COLUMNS}
        self.start_epoch, self.best_miou = record.epoch + 1, record.best_miou

    def _loader(self, epoch: int) -> DataLoader:
        """A loader whose order and augmentation depend only on (seed, epoch, rank); it yields exactly the epoch's
        ``steps_per_epoch`` batches (the first ones of the full shuffle when ``max_steps`` caps the epoch)."""
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch * 1_009 + self.dist.rank)
        order = epoch_order(len(self.train_set), self.dist, self.config.seed, epoch,
                            self.steps_per_epoch * self.config.batch_size, generator)
        return DataLoader(self.train_set, batch_size=self.config.batch_size, sampler=order, generator=generator,
                          num_workers=self.config.workers, drop_last=True, pin_memory=self.device.type == "cuda",
                          persistent_workers=False)

    # ---------------------------------------------------------------------------------------- epochs
    def train_one_epoch(self, epoch: int) -> float:
        """One pass over the training data; returns the mean loss (across processes)."""
        torch.manual_seed(self.config.seed * 7_919 + epoch)
        self.train_model.train()
        # iter() first: given a DataLoader, tqdm.auto's asyncio mixin calls iter() on it in __init__ and iterates it
        # again in __iter__, starting a second set of workers that prefetch for nothing and are never shut down.
        bar = tqdm(iter(self._loader(epoch)), total=self.steps_per_epoch, desc=f"epoch {epoch}/{self.config.epochs}",
                   disable=not (self.config.progress and self.dist.is_main), leave=False)
        watch = LossWatch(self.read_every, self.device, self.steps_per_epoch - 1, epoch, self.out / "last.pt",
                          show=lambda step, loss, lr: self._show_loss(bar, epoch, step, loss, lr))
        for step, (images, targets) in enumerate(bar):
            lr = self.optimizer.param_groups[0]["lr"]
            loss = self.train_step(images, targets)
            watch.add(step, loss, lr)  # read on the host every read_every steps; stops on NaN / inf
        return watch.mean()

    def _show_loss(self, bar, epoch: int, step: int, loss: float, lr: float) -> None:
        bar.set_postfix(loss=f"{loss:.3f}")
        if self.log:
            self.log.step((epoch - 1) * self.steps_per_epoch + step + 1, loss, lr)

    def train_step(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """One optimisation step on a batch (autocast, channels_last, loss scaling, clipping, LR schedule); returns the
        detached loss, still on the device, so nothing here waits for the GPU (``train_one_epoch`` reads it later)."""
        images = images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        targets = targets.to(self.device, non_blocking=True)
        with autocast(self.device, self.precision):
            logits = self.train_model(images)
        loss = self.criterion(logits, targets)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.detach()

    def validate(self) -> tuple[dict, float]:
        """Metrics summary and mean loss on the validation split, merged across processes."""
        if self.dist.enabled:  # BN running statistics drift per process: validate with rank 0's, as saved
            for buffer in self.model.buffers():
                dist.broadcast(buffer, 0)
        indices = range(self.dist.rank, len(self.val_set), self.dist.world_size)
        predictions = iter_predictions(self.model, self.val_set, self.device, precision=self.precision, indices=indices,
                                       workers=min(self.config.workers, 2), channels_last=self.channels_last,
                                       progress=self.config.progress and self.dist.is_main)
        matrix, loss = score_predictions(predictions, self.num_classes, self.device, self.criterion)
        all_reduce(matrix)
        if self.dist.enabled:
            pair = torch.tensor([loss * len(indices), len(indices)], device=self.device, dtype=torch.float64)
            dist.all_reduce(pair)
            loss = float(pair[0] / pair[1])
        return summary(matrix, self.class_names), loss

    @torch.inference_mode()
    def example_predictions(self, count: int = 3) -> list[np.ndarray]:
        """image | ground truth | prediction panels of the first ``count`` validation images (for TensorBoard)."""
        self.model.eval()
        panels = []
        for index in range(min(count, len(self.val_set))):
            image, target = self.val_set[index]
            prediction = predict_labels(self.model, image[None].to(self.device), precision=self.precision,
                                        channels_last=self.channels_last)[0].to(torch.uint8).cpu()
            panels.append(triptych(denormalize(image), target, prediction, self.label_set))
        return panels

    def _save(self, name: str, epoch: int, resumable: bool = True) -> None:
        """A checkpoint of the model; ``resumable`` adds the optimiser, schedule and scaler state (last.pt), which
        inference does not need (best.pt)."""
        state = dict(optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                     scaler=self.scaler.state_dict()) if resumable else {}
        Checkpoint(spec=unwrap(self.model).seglab_spec, class_names=self.class_names, config=self.config.to_dict(),
                   model=unwrap(self.model).state_dict(), epoch=epoch, history=self.history,
                   best_miou=self.best_miou, **state).save(self.out / name)

    def describe(self) -> str:
        """The start-up line: what trains where, in which precision, on how much data."""
        processes = f" x {self.dist.world_size} processes" if self.dist.enabled else ""
        start = f"resuming at epoch {self.start_epoch} of {self.config.epochs}" if self.start_epoch > 1 else \
            f"{self.config.epochs} epoch(s)"
        layout = "channels_last" if self.channels_last else "contiguous"
        return (f"training {self.config.model} on {self.device}{processes} in {self.precision}, {layout}: "
                f"{len(self.train_set)} training and {len(self.val_set)} validation images, {self.steps_per_epoch} "
                f"steps per epoch of batch {self.config.batch_size}, {start}; run folder {self.out}")

    def run(self) -> pd.DataFrame:
        """Train the remaining epochs; rank 0 writes history.csv, last.pt and best.pt after every epoch."""
        if self.start_epoch > self.config.epochs:
            if self.dist.is_main:
                print(f"nothing to train: {self.out} already holds all {self.config.epochs} epochs; pass a larger "
                      "--epochs with --resume to train on", flush=True)
            return pd.DataFrame(self.history, columns=HISTORY_COLUMNS)
        if self.dist.is_main:
            print(self.describe(), flush=True)
            self.out.mkdir(parents=True, exist_ok=True)
            write_json(self.out / "config.json", self.config.to_dict())
            if self.config.tensorboard:
                self.log = TensorBoardLog(self.out, first_step=(self.start_epoch - 1) * self.steps_per_epoch + 1)
        logging = contextlib.closing(self.log) if self.log else contextlib.nullcontext()
        with CleanStop() as signals, logging:
            for epoch in range(self.start_epoch, self.config.epochs + 1):
                started = time.perf_counter()
                lr = self.optimizer.param_groups[0]["lr"]
                train_loss = self.train_one_epoch(epoch)
                metrics, val_loss = self.validate()
                row = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "val_loss": val_loss,
                       **{key: _number(metrics[key]) for key in ("miou", "mdice", "mean_accuracy")},
                       "seconds": round(time.perf_counter() - started, 3)}
                for column in HISTORY_COLUMNS:
                    self.history[column].append(row[column])
                improved = row["miou"] > self.best_miou
                self.best_miou = max(self.best_miou, row["miou"])
                with signals.hold():  # on every rank, so a signal that arrived during the epoch stops it here
                    if self.dist.is_main:
                        self._record_epoch(row, metrics["per_class_iou"], improved)
        return pd.DataFrame(self.history, columns=HISTORY_COLUMNS)

    def _record_epoch(self, row: dict, per_class_iou, improved: bool) -> None:
        """Rank 0's end of an epoch: last.pt (and best.pt), history.csv, TensorBoard and the console line."""
        epoch = row["epoch"]
        self._save("last.pt", epoch)
        if improved:
            self._save("best.pt", epoch, resumable=False)
        write_table(self.out / "history.csv", pd.DataFrame(self.history, columns=HISTORY_COLUMNS))
        if self.log:
            panels = self.example_predictions() if epoch in panel_epochs(self.config.epochs) else []
            self.log.epoch(epoch * self.steps_per_epoch, row, per_class_iou, panels)
        print(f"epoch {epoch}: train_loss {row['train_loss']:.4f} val_loss {row['val_loss']:.4f} mIoU {row['miou']:.4f}"
              f" mDice {row['mdice']:.4f} mAcc {row['mean_accuracy']:.4f} ({row['seconds']:.1f}s)", flush=True)


def fit(config: TrainConfig, resume: bool = False, overwrite: bool = False) -> pd.DataFrame:
    """Train a model as ``config`` says (single process or under torchrun) and return the history table."""
    try:
        return Trainer(config, resume=resume, overwrite=overwrite).run()
    finally:
        cleanup_distributed()

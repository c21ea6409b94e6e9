"""ConfusionMatrix against torchmetrics and against the official Cityscapes evaluation (cityscapesscripts)."""
from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torchmetrics.classification import (MulticlassAccuracy, MulticlassF1Score, MulticlassJaccardIndex,
                                         MulticlassSpecificity)

from seglab.errors import SeglabError
from seglab.labels import CITYSCAPES_CATEGORIES, CITYSCAPES_CLASSES, CS_TRAIN_LABELS, ID_TO_TRAINID
from seglab.fast_confusion import byte_pair_counts
from seglab.metrics import (ConfusionMatrix, confusion_counts, evaluate_label_files, find_cityscapes_pairs,
                            official_cityscapes_eval)

C = 6
BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_eval.py"


def _bench_module():
    """benchmarks/bench_eval.py, whose frame writer and parity assertion the test shares."""
    spec = importlib.util.spec_from_file_location("bench_eval", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _data(seed: int = 0, only_predicted: bool = False):
    """Seeded (pred, target) with ~15% ignored pixels; class 5 absent from both (or only predicted)."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, C - 1, (3, 20, 24), generator=g)
    pred = torch.where(torch.rand(target.shape, generator=g) < 0.6, target,
                       torch.randint(0, C - 1 + only_predicted, target.shape, generator=g))
    target[torch.rand(target.shape, generator=g) < 0.15] = 255
    return pred, target


def _torchmetric(cls, pred, target, average):
    metric = cls(num_classes=C, ignore_index=255, average=average)
    metric.update(pred, target)
    return metric.compute().double().numpy()


def test_per_class_and_macro_agree_with_torchmetrics():
    pred, target = _data()
    cm = ConfusionMatrix(C).update(pred, target)
    present = cm.present()
    assert present.tolist() == [True] * (C - 1) + [False]
    # torchmetrics reports 0 for an absent class where we report NaN (undefined); the rest must agree
    for ours, cls in [(cm.iou(), MulticlassJaccardIndex), (cm.dice(), MulticlassF1Score),
                      (cm.class_accuracy(), MulticlassAccuracy), (cm.specificity_per_class(), MulticlassSpecificity)]:
        np.testing.assert_allclose(ours[present], _torchmetric(cls, pred, target, None)[present], atol=1e-6)
    assert np.isnan(cm.iou()[~present]).all() and np.isnan(cm.dice()[~present]).all()
    # torchmetrics' macro skips classes absent from truth and prediction, exactly like our macro means
    assert cm.miou() == pytest.approx(_torchmetric(MulticlassJaccardIndex, pred, target, "macro"), abs=1e-6)
    assert cm.mdice() == pytest.approx(_torchmetric(MulticlassF1Score, pred, target, "macro"), abs=1e-6)
    assert cm.mean_accuracy() == pytest.approx(_torchmetric(MulticlassAccuracy, pred, target, "macro"), abs=1e-6)
    assert cm.specificity() == pytest.approx(_torchmetric(MulticlassSpecificity, pred, target, "macro"), abs=1e-6)
    assert cm.pixel_accuracy() == pytest.approx(_torchmetric(MulticlassAccuracy, pred, target, "micro"), abs=1e-6)


def test_mean_accuracy_skips_classes_without_ground_truth():
    """A class that is only predicted has undefined recall: we leave it out, torchmetrics' macro counts it as 0."""
    pred, target = _data(only_predicted=True)
    cm = ConfusionMatrix(C).update(pred, target)
    has_gt = (cm.matrix.sum(dim=1) > 0).numpy()
    assert not has_gt[C - 1] and cm.present()[C - 1]
    recall = _torchmetric(MulticlassAccuracy, pred, target, None)
    assert cm.mean_accuracy() == pytest.approx(recall[has_gt].mean(), abs=1e-6)
    assert cm.class_accuracy()[C - 1] != cm.class_accuracy()[C - 1]  # NaN
    # IoU / Dice of a predicted-only class is a defined 0 and is averaged, as torchmetrics and Cityscapes do
    assert cm.iou()[C - 1] == 0.0
    assert cm.miou() == pytest.approx(_torchmetric(MulticlassJaccardIndex, pred, target, "macro"), abs=1e-6)


def test_fwiou_is_ground_truth_frequency_weighted_iou():
    pred, target = _data()
    cm = ConfusionMatrix(C).update(pred, target)
    frequency = np.bincount(target[target != 255].numpy(), minlength=C) / int((target != 255).sum())
    iou = _torchmetric(MulticlassJaccardIndex, pred, target, None)
    assert cm.fwiou() == pytest.approx(float((frequency * iou).sum()), abs=1e-6)  # torchmetrics is float32


def test_logits_and_numpy_inputs_match_class_indices():
    pred, target = _data()
    logits = torch.nn.functional.one_hot(pred, C).permute(0, 3, 1, 2).float() + 0.1 * torch.rand(3, C, 20, 24)
    by_index = ConfusionMatrix(C).update(pred, target)
    assert torch.equal(ConfusionMatrix(C).update(logits, target).matrix, by_index.matrix)
    assert torch.equal(ConfusionMatrix(C).update(logits[0], target[0]).matrix,
                       ConfusionMatrix(C).update(pred[0], target[0]).matrix)
    assert torch.equal(ConfusionMatrix(C).update(pred.numpy(), target.numpy()).matrix, by_index.matrix)


def test_byte_histogram_fast_path_equals_the_bincount():
    """The file-evaluation fast path (raw byte pairs, lut on the histogram) gives exactly the plain counts."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 34, size=(2, 40, 50), dtype=np.uint8)
    pred_ids = np.where(rng.random(ids.shape) < 0.7, ids, rng.integers(0, 34, size=ids.shape)).astype(np.uint8)
    per_pixel = confusion_counts(torch.from_numpy(ID_TO_TRAINID[pred_ids]), torch.from_numpy(ID_TO_TRAINID[ids]), 19)
    assert torch.equal(byte_pair_counts(pred_ids, ids, 19, ID_TO_TRAINID), per_pixel)
    assert per_pixel[:, -1].sum() > 0  # void predictions were counted as misses
    pred, target = _data(seed=3)
    pred[0, 0, :5] = 255  # predictions that are no class
    plain = ConfusionMatrix(C).update(pred, target)._counts
    assert torch.equal(byte_pair_counts(pred.to(torch.uint8).numpy(), target.to(torch.uint8).numpy(), C), plain)


def test_ignored_pixels_are_never_false_positives_and_void_predictions_are_misses():
    target = torch.tensor([[0, 0, 1, 255, 255]])
    pred = torch.tensor([[0, 255, 1, 1, 0]])
    cm = ConfusionMatrix(2).update(pred, target)
    assert cm.matrix.tolist() == [[1, 0], [0, 1]]
    assert cm.total == 3
    np.testing.assert_allclose(cm.iou(), [0.5, 1.0])  # class 0: tp 1, fn 1 (predicted 255), fp 0
    np.testing.assert_allclose(cm.specificity_per_class(), [1.0, 1.0])  # TN counts valid pixels only
    assert cm.pixel_accuracy() == pytest.approx(2 / 3)


def test_merge_of_halves_equals_whole(tmp_path):
    pred, target = _data(seed=1)
    whole = ConfusionMatrix(C).update(pred, target)
    first, second = ConfusionMatrix(C).update(pred[:1], target[:1]), ConfusionMatrix(C).update(pred[1:], target[1:])
    assert torch.equal(first.copy().merge(second).matrix, whole.matrix)
    assert torch.equal(first.matrix, ConfusionMatrix(C).update(pred[:1], target[:1]).matrix)  # copy() made a copy
    with pytest.raises(SeglabError, match="cannot merge a 6-class"):
        ConfusionMatrix(C + 1).merge(whole)


def test_bad_input_raises_one_clear_error():
    cm = ConfusionMatrix(19)
    with pytest.raises(SeglabError, match="label 26.*ID_TO_TRAINID"):
        cm.update(torch.zeros(4, 4, dtype=torch.uint8), torch.full((4, 4), 26, dtype=torch.uint8))
    with pytest.raises(SeglabError, match="label -1"):
        cm.update(torch.zeros(4, 4, dtype=torch.long), torch.full((4, 4), -1))
    with pytest.raises(SeglabError, match="shape"):
        cm.update(torch.zeros(2, 4, 4, dtype=torch.long), torch.zeros(2, 4, 5, dtype=torch.long))
    with pytest.raises(SeglabError, match="channels"):
        cm.update(torch.zeros(2, 5, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(SeglabError, match="class names"):
        cm.summary(["a", "b"])
    assert cm.total == 0  # nothing half-counted


def test_summary_follows_the_json_contract():
    pred, target = _data()
    cm = ConfusionMatrix(C).update(pred, target)
    names = [f"c{i}" for i in range(C)]
    summary = cm.summary(names, categories=(["low", "high"], [0, 0, 0, 1, 1, 1]))
    assert list(summary) == ["pixel_accuracy", "mean_accuracy", "miou", "mdice", "fwiou", "sensitivity",
                             "specificity", "per_class_iou", "per_class_dice", "category_iou"]
    assert summary["per_class_iou"]["c5"] is None  # absent class: null, not NaN
    assert summary["miou"] == pytest.approx(cm.miou()) and summary["sensitivity"] == summary["mean_accuracy"]
    json.dumps(summary, allow_nan=False)
    # a 2-category collapse: IoU of the block-summed matrix
    block = _torchmetric(MulticlassJaccardIndex, pred // 3, torch.where(target == 255, 255, target // 3), None)[:2]
    assert [summary["category_iou"]["low"], summary["category_iou"]["high"]] == pytest.approx(block.tolist())
    assert ConfusionMatrix(C).summary(names)["category_iou"] == {}
    table = cm.to_dataframe(names)
    assert list(table.columns) == ["iou", "dice", "accuracy", "specificity", "pixels", "predicted"]
    assert table["pixels"].sum() == cm.total and table.loc["c2", "iou"] == pytest.approx(cm.iou()[2])


def test_official_cityscapes_parity(tmp_path):
    """Class IoU, category IoU, mIoU and the confusion matrix equal cityscapesscripts' evalPixelLevelSemanticLabeling
    on labelIds PNGs with every id 0..33 (void ones included) and void predictions."""
    bench = _bench_module()
    preds, gts = bench.write_frames(tmp_path, frames=3, height=96, width=192, seed=7)
    assert find_cityscapes_pairs(tmp_path / "gtFine" / "val", tmp_path / "pred") == (preds, gts)
    gt_ids = np.concatenate([cv2.imread(str(path), cv2.IMREAD_UNCHANGED).ravel() for path in gts])
    assert set(np.unique(gt_ids)) == set(range(34))  # every label id, void ones included
    ours = evaluate_label_files(preds, gts)
    assert (ours.matrix.sum(dim=1) > 0).all()  # all 19 classes in the ground truth
    official = official_cityscapes_eval(preds, gts)
    bench.assert_same_scores(ours, official)
    summary = ours.summary(CITYSCAPES_CLASSES)
    assert list(summary["category_iou"]) == list(CITYSCAPES_CATEGORIES)
    assert summary["miou"] == pytest.approx(official["averageScoreClasses"], abs=1e-9)
    assert summary["category_iou"]["vehicle"] == pytest.approx(official["categoryScores"]["vehicle"], abs=1e-9)
    # the void-prediction column, counted by hand: ground truth of a class (not void) where the prediction is id 0
    pred_ids = np.concatenate([cv2.imread(str(path), cv2.IMREAD_UNCHANGED).ravel() for path in preds])
    void_column = np.bincount(ID_TO_TRAINID[gt_ids][pred_ids == 0], minlength=256)[:19]
    assert void_column.sum() > 0 and set(np.unique(pred_ids).tolist()) <= {lab.id for lab in CS_TRAIN_LABELS} | {0}
    np.testing.assert_array_equal(ours._counts[:, -1].numpy(), void_column)
    np.testing.assert_array_equal(bench.official_counts(official)[:, -1], void_column)


def test_official_evaluation_never_reaches_np_in1d(tmp_path, monkeypatch):
    """cityscapesscripts 2.3 calls np.in1d (removed in numpy 2.4) in its instance-level scores and its per-image
    pixel accuracy. official_cityscapes_eval, the one way seglab, notebook 08 and benchmarks/bench_eval.py call the
    official evaluation, turns both off, so it runs under the installed numpy (np.in1d removed here in any case).
    The instanceIds files exist, so the instance-level path, were it on, would get as far as np.in1d."""
    import copy

    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    bench = _bench_module()
    preds, gts = bench.write_frames(tmp_path, frames=2, height=32, width=64, seed=1)
    for gt in gts:  # labelIds as 16-bit instanceIds: no instance (id > 1000) is needed to reach np.in1d
        ids = cv2.imread(str(gt), cv2.IMREAD_UNCHANGED).astype(np.uint16)
        cv2.imwrite(str(gt).replace("labelIds", "instanceIds"), ids)
    monkeypatch.delattr(np, "in1d", raising=False)  # what numpy >= 2.4 looks like, whatever numpy is installed
    defaults = (official.args.evalInstLevelScore, official.args.evalPixelAccuracy)
    result = official_cityscapes_eval(preds, gts)
    assert 0 <= result["averageScoreClasses"] <= 1
    assert (official.args.evalInstLevelScore, official.args.evalPixelAccuracy) == defaults  # its global args untouched
    # the test can fail: the module's default arguments (instance level on) need np.in1d on the same files
    args = copy.copy(official.args)
    args.quiet, args.JSONOutput = True, False
    with pytest.raises(AttributeError, match="in1d"):
        official.evaluateImgLists([str(p) for p in preds], [str(g) for g in gts], args)


def test_file_evaluation_reports_bad_pairs(tmp_path):
    bench = _bench_module()
    preds, gts = bench.write_frames(tmp_path, frames=1, height=32, width=64)
    with pytest.raises(SeglabError, match="1 predictions for 2"):
        evaluate_label_files(preds, gts * 2)
    with pytest.raises(SeglabError, match="cannot read"):
        evaluate_label_files([tmp_path / "missing.png"], gts)
    with pytest.raises(SeglabError, match="no prediction"):
        find_cityscapes_pairs(tmp_path / "gtFine", tmp_path / "nowhere")


def _ddp_worker(rank: int, world: int, port: int, queue) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        pred, target = _data(seed=2)
        cm = ConfusionMatrix(C).update(pred[rank::world], target[rank::world]).all_reduce()
        queue.put((rank, cm._counts.tolist()))
    finally:
        dist.destroy_process_group()


def test_all_reduce_sums_over_processes_and_is_a_no_op_alone():
    pred, target = _data(seed=2)
    whole = ConfusionMatrix(C).update(pred, target)
    assert torch.equal(whole.copy().all_reduce()._counts, whole._counts)  # no process group: unchanged
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = torch.multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_ddp_worker, args=(rank, 2, port, queue)) for rank in range(2)]
    for worker in workers:
        worker.start()
    results = dict(queue.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    for rank in range(2):
        assert results[rank] == whole._counts.tolist()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_count_like_cpu():
    pred, target = _data()
    cpu = ConfusionMatrix(C).update(pred, target)
    gpu = ConfusionMatrix(C, device="cuda").update(pred.cuda(), target.cuda())
    assert torch.equal(gpu.matrix.cpu(), cpu.matrix)
    assert torch.equal(ConfusionMatrix(C).update(pred.cuda(), target.cuda()).matrix, cpu.matrix)


def test_byte_fast_path_counts_in_chunks(monkeypatch):
    """OpenCV's calcHist counts in float32, so big inputs go in chunks: the counts stay exact whatever the chunk."""
    import seglab.fast_confusion as fast_confusion

    pred, target = _data(seed=3)
    pred[0, 0, :3] = 255  # predictions that are not a class
    plain = ConfusionMatrix(C).update(pred, target)._counts
    monkeypatch.setattr(fast_confusion, "_CALCHIST_EXACT", 97)  # many chunks, the last one partial
    fast = byte_pair_counts(pred.to(torch.uint8).numpy(), target.to(torch.uint8).numpy(), C)
    assert torch.equal(fast, plain) and int(fast.sum()) == int((target != 255).sum())

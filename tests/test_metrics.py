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
from seglab.labels import CITYSCAPES_CATEGORIES, CITYSCAPES_CLASSES, ID_TO_TRAINID
from seglab.metrics import (ConfusionMatrix, all_reduce, confusion_counts, find_cityscapes_pairs,
                            official_cityscapes_eval, per_class_table, summary)

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


def test_one_bincount_is_the_matrix_a_loop_would_count():
    pred, target = _data(seed=3)
    loop = torch.zeros(C, C, dtype=torch.int64)
    for t, p in zip(target.flatten().tolist(), pred.flatten().tolist()):
        if t != 255:
            loop[t, p] += 1
    assert torch.equal(confusion_counts(pred, target, C), loop)
    assert torch.equal(ConfusionMatrix(C).update(pred, target).matrix, loop)


def test_ignored_pixels_are_never_false_positives_and_predictions_must_be_classes():
    target = torch.tensor([[0, 0, 1, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1, 7]])  # 7 on an ignored pixel is never looked at
    cm = ConfusionMatrix(2).update(pred, target)
    assert cm.matrix.tolist() == [[1, 1], [0, 1]] and int(cm.matrix.sum()) == 3
    np.testing.assert_allclose(cm.iou(), [0.5, 0.5])
    np.testing.assert_allclose(cm.specificity_per_class(), [1.0, 0.5])  # TN counts valid pixels only
    assert cm.pixel_accuracy() == pytest.approx(2 / 3)
    with pytest.raises(SeglabError, match="prediction holds label 255"):
        cm.update(torch.tensor([[0, 255]]), torch.tensor([[0, 1]]))
    assert int(cm.matrix.sum()) == 3  # nothing half-counted


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
        summary(cm, ["a", "b"])
    assert int(cm.matrix.sum()) == 0  # nothing half-counted


def test_summary_follows_the_json_contract():
    pred, target = _data()
    cm = ConfusionMatrix(C).update(pred, target)
    names = [f"c{i}" for i in range(C)]
    scores = summary(cm, names, categories=(["low", "high"], [0, 0, 0, 1, 1, 1]))
    assert list(scores) == ["pixel_accuracy", "mean_accuracy", "miou", "mdice", "fwiou", "sensitivity",
                             "specificity", "per_class_iou", "per_class_dice", "category_iou"]
    assert scores["per_class_iou"]["c5"] is None  # absent class: null, not NaN
    assert scores["miou"] == pytest.approx(cm.miou()) and scores["sensitivity"] == scores["mean_accuracy"]
    json.dumps(scores, allow_nan=False)
    # a 2-category collapse: IoU of the block-summed matrix
    block = _torchmetric(MulticlassJaccardIndex, pred // 3, torch.where(target == 255, 255, target // 3), None)[:2]
    assert [scores["category_iou"]["low"], scores["category_iou"]["high"]] == pytest.approx(block.tolist())
    assert summary(ConfusionMatrix(C), names)["category_iou"] == {}
    table = per_class_table(cm, names)
    assert list(table.columns) == ["iou", "dice", "accuracy", "specificity", "pixels", "predicted"]
    assert table["pixels"].sum() == int(cm.matrix.sum()) and table.loc["c2", "iou"] == pytest.approx(cm.iou()[2])


def test_official_cityscapes_parity(tmp_path):
    """Class IoU, category IoU, mIoU and the confusion matrix equal cityscapesscripts' evalPixelLevelSemanticLabeling
    on labelIds PNGs with every id 0..33 in the ground truth (void ones included)."""
    bench = _bench_module()
    preds, gts = bench.write_frames(tmp_path, frames=3, height=96, width=192, seed=7)
    assert find_cityscapes_pairs(tmp_path / "gtFine" / "val", tmp_path / "pred") == (preds, gts)
    gt_ids = np.concatenate([cv2.imread(str(path), cv2.IMREAD_UNCHANGED).ravel() for path in gts])
    assert set(np.unique(gt_ids)) == set(range(34))  # every label id, void ones included
    ours = ConfusionMatrix(19)
    for pred, gt in zip(preds, gts):
        ours.update(*(torch.from_numpy(ID_TO_TRAINID[cv2.imread(str(f), cv2.IMREAD_UNCHANGED)]) for f in (pred, gt)))
    assert (ours.matrix.sum(dim=1) > 0).all()  # all 19 classes in the ground truth
    official = official_cityscapes_eval(preds, gts)
    bench.assert_same_scores(ours, official)
    scores = summary(ours, CITYSCAPES_CLASSES)
    assert list(scores["category_iou"]) == list(CITYSCAPES_CATEGORIES)
    assert scores["miou"] == pytest.approx(official["averageScoreClasses"], abs=1e-9)
    assert scores["category_iou"]["vehicle"] == pytest.approx(official["categoryScores"]["vehicle"], abs=1e-9)


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


def test_pairing_reports_missing_predictions(tmp_path):
    bench = _bench_module()
    bench.write_frames(tmp_path, frames=1, height=32, width=64)
    with pytest.raises(SeglabError, match="no prediction"):
        find_cityscapes_pairs(tmp_path / "gtFine", tmp_path / "nowhere")


def _ddp_worker(rank: int, world: int, port: int, queue) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        pred, target = _data(seed=2)
        cm = all_reduce(ConfusionMatrix(C).update(pred[rank::world], target[rank::world]))
        queue.put((rank, cm.matrix.tolist()))
    finally:
        dist.destroy_process_group()


def test_all_reduce_sums_over_processes_and_is_a_no_op_alone():
    pred, target = _data(seed=2)
    whole = ConfusionMatrix(C).update(pred, target)
    assert torch.equal(all_reduce(ConfusionMatrix(C).update(pred, target)).matrix, whole.matrix)  # alone: unchanged
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
        assert results[rank] == whole.matrix.tolist()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_count_like_cpu():
    pred, target = _data()
    cpu = ConfusionMatrix(C).update(pred, target)
    gpu = ConfusionMatrix(C, device="cuda").update(pred.cuda(), target.cuda())
    assert torch.equal(gpu.matrix.cpu(), cpu.matrix)
    assert torch.equal(ConfusionMatrix(C).update(pred.cuda(), target.cuda()).matrix, cpu.matrix)

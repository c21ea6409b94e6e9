"""Each loss against a reference: torch's cross-entropy, the Lovász extension evaluated from its definition, the OHEM
rule applied by hand, and soft Dice at its extremes."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seglab.config import TrainConfig
from seglab.losses import SegmentationLoss, focal_loss, lovasz_softmax, ohem_cross_entropy, ohem_keep, soft_dice_loss
from seglab.labels import IGNORE_INDEX
from seglab.transforms import RandomScaleRotateCrop
from torchvision import tv_tensors


def _batch(seed=0, n=2, c=4, h=5, w=6):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=g) * 2
    target = torch.randint(0, c, (n, h, w), generator=g)
    target[0, 0, :3] = IGNORE_INDEX
    return logits, target


@pytest.mark.parametrize("weighted", [False, True])
def test_focal_with_gamma_zero_is_cross_entropy(weighted):
    logits, target = _batch()
    weight = torch.tensor([0.5, 1.0, 2.0, 3.0]) if weighted else None
    expected = F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(focal_loss(logits, target, gamma=0.0, weight=weight), expected)
    assert focal_loss(logits, target, gamma=2.0) < F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)


def _lovasz_from_definition(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean over present classes of the Lovász extension of the Jaccard loss of the per-pixel errors m, evaluated as
    the integral over t in [0, 1] of the Jaccard loss of the set {i : m_i >= t} (a piecewise-constant function)."""
    losses = []
    for c in np.unique(labels):
        truth = labels == c
        errors = np.abs(truth - probs[:, c])
        levels = np.concatenate([[0.0], np.unique(errors)])
        total = 0.0
        for low, high in zip(levels[:-1], levels[1:]):
            wrong = errors >= high  # the set {i : m_i >= t} for every t in (low, high]
            total += (high - low) * wrong.sum() / (truth | wrong).sum()
        losses.append(total)
    return float(np.mean(losses))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lovasz_equals_its_definition(seed):
    logits, target = _batch(seed, n=1, c=3, h=3, w=4)
    valid = target != IGNORE_INDEX
    probs = logits.double().softmax(1).permute(0, 2, 3, 1)[valid].numpy()
    expected = _lovasz_from_definition(probs, target[valid].numpy())
    assert float(lovasz_softmax(logits.double(), target)) == pytest.approx(expected, rel=1e-9)


def test_lovasz_is_zero_for_a_perfect_hard_prediction():
    target = torch.tensor([[[0, 1], [2, 1]]])
    logits = F.one_hot(target, 3).permute(0, 3, 1, 2).float() * 1e4
    assert float(lovasz_softmax(logits, target)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("thresh, min_kept", [(0.7, 0), (0.7, 20), (0.05, 5), (1.0, 0)])
def test_ohem_keeps_exactly_the_hard_pixels(thresh, min_kept):
    logits, target = _batch(3)
    valid = target != IGNORE_INDEX
    p_true = logits.softmax(1).gather(1, target.clamp(max=3).unsqueeze(1)).squeeze(1)
    hard = valid & (p_true < thresh)
    ranked = sorted(p_true[valid].tolist())
    if hard.sum() < min_kept:  # then the min_kept least confident valid pixels, as mmsegmentation
        hard = valid & (p_true < ranked[min(min_kept, len(ranked) - 1)])
    assert torch.equal(ohem_keep(logits, target, thresh, min_kept), hard)
    ce = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX, reduction="none")
    torch.testing.assert_close(ohem_cross_entropy(logits, target, thresh, min_kept), ce[hard].mean())


def test_soft_dice_at_a_perfect_and_a_worst_prediction():
    target = torch.tensor([[[0, 1, 1], [2, 2, IGNORE_INDEX]]])
    perfect = F.one_hot(target.clamp(max=2), 3).permute(0, 3, 1, 2).float() * 1e4
    assert float(soft_dice_loss(perfect, target, eps=0.0)) == pytest.approx(0.0, abs=1e-6)
    worst = F.one_hot((target.clamp(max=2) + 1) % 3, 3).permute(0, 3, 1, 2).float() * 1e4
    assert float(soft_dice_loss(worst, target, eps=0.0)) == pytest.approx(1.0, abs=1e-6)


def test_soft_dice_equals_the_one_hot_formula():
    """The index_add form equals the textbook one: 1 - mean_c (2 sum p_c g_c + eps) / (sum p_c + sum g_c + eps)."""
    logits, target = _batch()
    valid = (target != IGNORE_INDEX).unsqueeze(1)
    probs = logits.softmax(1) * valid
    one_hot = F.one_hot(target.clamp(max=logits.shape[1] - 1), logits.shape[1]).permute(0, 3, 1, 2) * valid
    inter, union = (probs * one_hot).sum((0, 2, 3)), probs.sum((0, 2, 3)) + one_hot.sum((0, 2, 3))
    torch.testing.assert_close(soft_dice_loss(logits, target), 1 - ((2 * inter + 1) / (union + 1)).mean())


def test_segmentation_loss_adds_the_configured_terms():
    logits, target = _batch()
    config = dataclasses.replace(TrainConfig(), loss="focal", focal_gamma=1.5, dice_weight=0.5, lovasz_weight=0.25)
    expected = (focal_loss(logits, target, 1.5) + 0.5 * soft_dice_loss(logits, target)
                + 0.25 * lovasz_softmax(logits, target))
    torch.testing.assert_close(SegmentationLoss(config)(logits, target), expected)


def test_cat_max_ratio_redraws_crops_dominated_by_one_class():
    label = torch.zeros(64, 64, dtype=torch.uint8)
    label[:, 48:] = 1  # class 1 only in the right quarter: most 16x16 crops hold class 0 alone
    image, mask = tv_tensors.Image(torch.zeros(3, 64, 64, dtype=torch.uint8)), tv_tensors.Mask(label)

    def dominated(ratio):  # crops in which class 0 covers more than 75 % (36 of 49 offsets without the rule)
        torch.manual_seed(0)
        crop = RandomScaleRotateCrop((16, 16), (64, 65), cat_max_ratio=ratio)
        return sum(float((crop(image, mask)[1] == 0).float().mean()) > 0.75 for _ in range(100))

    # 9 of 49 offsets pass (neither class above 75 %): ten tries all fail with probability (40/49)**10 = 13 %
    assert dominated(0.75) <= 25 and dominated(1.0) >= 60
    torch.manual_seed(0)
    plain = RandomScaleRotateCrop((16, 16), (64, 65))(image, mask)[1]
    torch.manual_seed(0)
    assert torch.equal(RandomScaleRotateCrop((16, 16), (64, 65), cat_max_ratio=1.0)(image, mask)[1], plain)


@pytest.mark.parametrize("degrees", [0.0, 10.0])
def test_class_uniform_crops_see_a_rare_class_half_the_time(degrees):
    label = torch.zeros(64, 128, dtype=torch.uint8)
    label[40:42, 100:102] = 1  # 4 pixels of class 1: a uniform 16x16 crop holds them in about 5 % of the draws
    image, mask = tv_tensors.Image(torch.zeros(3, 64, 128, dtype=torch.uint8)), tv_tensors.Mask(label)

    def with_rare(share):
        torch.manual_seed(0)
        crop = RandomScaleRotateCrop((16, 16), (64, 65), degrees=degrees, class_uniform=share)
        return sum(bool((crop(image, mask)[1] == 1).any()) for _ in range(400)) / 400

    # class 1 is drawn for half the class-uniform crops (two classes in the frame), and then always lands inside
    assert with_rare(0.0) < 0.08 and 0.45 <= with_rare(1.0) <= 0.65 and 0.2 <= with_rare(0.5) <= 0.4
    torch.manual_seed(0)
    plain = RandomScaleRotateCrop((16, 16), (64, 65))(image, mask)[1]
    torch.manual_seed(0)
    assert torch.equal(RandomScaleRotateCrop((16, 16), (64, 65), class_uniform=0.0)(image, mask)[1], plain)

"""One-line answer checks for the notebooks' exercises: ``check("03.1", answer)`` says whether an answer is right.

Each right answer is computed here from the library (never typed), so it cannot drift from the code it asks about.
The worked solutions in notebooks/solutions/ call the same checks.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from seglab.errors import SeglabError

ANSWERS: dict[str, tuple[Callable[[], Any], str]] = {}  # exercise id -> (computes the right answer, hint)


def answer(exercise: str, hint: str) -> Callable:
    """Register the function that computes the right answer of ``exercise`` (e.g. "03.1"), with a hint."""
    def register(compute: Callable[[], Any]) -> Callable[[], Any]:
        ANSWERS[exercise] = (compute, hint)
        return compute
    return register


def _same(given: Any, right: Any, rel: float) -> bool:
    if isinstance(right, (list, tuple)):
        return isinstance(given, (list, tuple)) and len(given) == len(right) and all(
            _same(g, r, rel) for g, r in zip(given, right))
    if isinstance(right, float) and isinstance(given, (int, float)):
        return math.isclose(given, right, rel_tol=rel, abs_tol=1e-9)
    return given == right


def check(exercise: str, given: Any, *inputs: Any, rel: float = 0.01) -> bool:
    """Print whether ``given`` answers ``exercise`` (numbers within ``rel``), with a hint when it does not.

    ``inputs`` are what the answer depends on when it is not fixed (e.g. the confusion matrix of your model)."""
    if exercise not in ANSWERS:
        raise SeglabError(f"no answer check for exercise {exercise!r}; checks exist for {', '.join(sorted(ANSWERS))}")
    compute, hint = ANSWERS[exercise]
    right = _same(given, compute(*inputs), rel)
    print(f"exercise {exercise}: " + ("right." if right else f"not yet. Hint: {hint}"))
    return right


# Answers, by notebook (an id's first two digits). Each computes what the exercise asks from the library itself.
@answer("00.2", hint="count_parameters(build_model('unet', 19)) / count_parameters(build_model('unet', 19, "
        "base_width=8))")
def _default_unet_parameter_ratio() -> float:
    return _parameters("unet") / _parameters("unet", base_width=8)


@answer("01.3", hint="in seglab.labels.CS_LABELS count the labels with 0 <= id <= 33 and trainId 255, and the "
        "distinct categories of those with trainId < 255")
def _untrained_ids_and_categories() -> list[int]:
    from seglab.labels import CS_LABELS

    ids = [label for label in CS_LABELS if 0 <= label.id <= 33]
    trained = [label for label in ids if label.trainId != 255]
    return [len(ids) - len(trained), len({label.category for label in trained})]


@answer("02.3", hint="the warp pads the image with 0 (black); normalisation maps 0 to (0 - mean) / std per channel "
        "(seglab.transforms.IMAGENET_MEAN, IMAGENET_STD)")
def _padded_pixel_normalised() -> list[float]:
    import torch
    from torchvision import tv_tensors

    from seglab.transforms import eval_transforms

    black = tv_tensors.Image(torch.zeros(3, 1, 1, dtype=torch.uint8))
    return eval_transforms()(black).flatten().tolist()  # what the model sees at a padded pixel, R, G, B


def _meta_model(name: str, num_classes: int = 19, **options: Any) -> Any:
    """Model ``name`` with ``options``, in eval mode on the meta device (shapes only, no memory)."""
    import torch

    from seglab.models import build_model

    with torch.device("meta"):
        return build_model(name, num_classes, **options).eval()


def _parameters(name: str, **options: Any) -> int:
    from seglab.models import count_parameters

    return count_parameters(_meta_model(name, **options))


@answer("03.1", hint="per level, the 2x2 transposed conv (4*c_in*c_out weights + c_out biases) becomes a 1x1 conv "
                     "(c_in*c_out) and a BatchNorm (2*c_out); count_parameters(MyUNet(19)) after the change")
def unet_bilinear_parameters() -> int:
    return _parameters("unet", upsample="bilinear")


@answer("03.2", hint="only the first 3x3 conv of each decoder block changes, from 2c to c input channels: "
                     "9*c*c fewer weights per level (c = 128, 64, 32, 16)")
def unet_skip_weights() -> int:
    first_convs = [block[0][0] for block in _meta_model("unet").decoder.blocks]
    return sum(conv.weight[:, : conv.in_channels // 2].numel() for conv in first_convs)  # the weights on the skip


@answer("04.1", hint="fc6 holds 7*7*512*c + c parameters, fc7 c*c + c and score_fr 19*c + 19 for fc_channels c; "
                     "nothing else depends on c")
def fcn_fc256_parameters() -> int:
    return _parameters("fcn8s", fc_channels=256)


@answer("04.2", hint="FCN-16s has no score_pool3, upscore_pool4 and upscore8, and one x16 up-sampling of "
                     "19*19*32*32 weights (no bias)")
def fcn16s_parameters() -> int:
    from seglab.models import count_parameters
    from seglab.models.fcn import bilinear_upsampler

    fcn8s = _meta_model("fcn8s")
    dropped = sum(count_parameters(getattr(fcn8s, name)) for name in ("score_pool3", "upscore_pool4", "upscore8"))
    return count_parameters(fcn8s) - dropped + count_parameters(bilinear_upsampler(19, 16))


@answer("05.1", hint="count_flops(model, 256, 512) for output_stride 16 and 8 (build them on the meta device) and "
                     "divide; layer3, layer4 and ASPP run on 4x the positions at OS8")
def deeplab_os8_flops_ratio() -> float:
    return _os8_flops_ratio(256, 512)


def _os8_flops_ratio(height: int, width: int) -> float:
    """FLOPs of DeepLabV3+ at output stride 8 over those at 16, for one ``height`` x ``width`` image."""
    from seglab.toolbox.profiling import count_flops

    os16, os8 = (_meta_model("deeplabv3plus", output_stride=s) for s in (16, 8))
    return count_flops(os8, height, width) / count_flops(os16, height, width)


@answer("05.2", hint="atrous_valid_weights((8, 16), rate) for rate = 1, 2, ...: the last rate whose share is "
                     "still >= 0.5")
def deeplab_largest_half_valid_rate() -> int:
    from seglab.anatomy import atrous_valid_weights

    return max(rate for rate in range(1, 17) if atrous_valid_weights((8, 16), rate) >= 0.5)


@answer("05.3", hint="the image-pooling branch (a 1x1 conv from 512 to 256 channels and its BatchNorm) and the "
                     "256 x 256 weights of the projection that read its output")
def deeplab_image_pooling_parameters() -> int:
    from seglab.models import count_parameters

    aspp = _meta_model("deeplabv3plus").aspp
    pooling, projection = aspp.convs[-1], aspp.project[0]
    return count_parameters(pooling) + projection.weight[:, -pooling[1].out_channels:].numel()


@answer("06.1", hint="RecurrentConv's weights do not depend on t; its forward calls self.conv once, then t more "
                     "times")
def r2unet_t3_parameters_and_runs() -> list[int]:
    import torch

    model = _meta_model("r2unet", t=3)
    runs = []
    model.encoder[0].body[0].conv.register_forward_hook(lambda *_: runs.append(1))
    model.eval()(torch.zeros(1, 3, 16, 16, device="meta"))
    return [_parameters("r2unet", t=3), len(runs)]


@answer("06.2", hint="count the zeros of dilated_sampling([2, 2, 2, 2]) and of dilated_sampling([1, 2, 2, 2, 2])")
def gridding_holes() -> list[int]:
    from seglab.anatomy import dilated_sampling

    return [int((dilated_sampling(rates) == 0).sum()) for rates in ([2, 2, 2, 2], [1, 2, 2, 2, 2])]


@answer("07.3", hint="in the warm-up the factor is (step + 1) / warmup_steps; after it, (1 - t) ** 0.9 times lr")
def _learning_rate_at_step_100(trainer) -> float:
    from seglab.engine import lr_lambda

    factor = lr_lambda(trainer.total_steps, trainer.warmup_steps, trainer.config.schedule)
    return trainer.config.lr * factor(100)


@answer("08.1", hint="normalise each row of M by its sum, zero the diagonal, and divmod the argmax by K")
def _most_confused_pair(matrix) -> list[int]:
    import torch

    m = torch.as_tensor(matrix).double()
    rates = (m / m.sum(dim=1, keepdim=True).clamp(min=1)).fill_diagonal_(0)
    return list(divmod(int(rates.argmax()), m.shape[0]))


@answer("10.2", hint="count the FLOPs of deeplabv3plus at 1024x2048 with output_stride 8 and 16 "
        "(seglab.toolbox.profiling.count_flops on models built under torch.device('meta')) and divide")
def _deeplab_os8_flops_factor() -> float:
    return _os8_flops_ratio(1024, 2048)


@answer("10.3", hint="channels x height x width x bytes per value (torch.finfo(dtype).bits / 8), over 2**20")
def _feature_map_mb() -> list[int]:
    import torch

    return [64 * 1024 * 2048 * torch.finfo(dtype).bits // 8 // 2**20 for dtype in (torch.float32, torch.bfloat16)]


@answer("11.1", hint="the spread of a row is scores.max(axis=1) - scores.min(axis=1); idxmax gives its image")
def _most_disputed_image(scores) -> str:
    return (scores.max(axis=1) - scores.min(axis=1)).idxmax()


@answer("12.1", hint="model.fc[0] is fc6; FLOPs per module from FlopCounterMode(...).get_flop_counts() on a "
        "model and a 1x3x320x320 input built under torch.device('meta')")
def _fcn8s_fc6_share() -> list[float]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = _meta_model("fcn8s", 21, backbone="vgg11_bn")
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 320, 320, device="meta"))
    fc6_flops = next(sum(c.values()) for name, c in counter.get_flop_counts().items() if name.endswith(".fc.0"))
    fc6_params = sum(p.numel() for p in model.fc[0].parameters())
    return [fc6_params / sum(p.numel() for p in model.parameters()), fc6_flops / counter.get_total_flops()]


"""`python -m seglab <command>`: thin argparse front-end; each command parses and calls the package functions.

Heavy modules are imported inside the command functions so that `--help` stays instant.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence

from seglab.config import DATASETS, PRECISIONS
from seglab.errors import SeglabError


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or a positive integer, got {text}")
    return value


def _output_file(text: str) -> str:
    """A file path to write: not a folder, and not below a file."""
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    _output_folder(os.path.dirname(text) or ".")
    return text


def _output_folder(text: str) -> str:
    """A folder to write into: an existing folder or one that can be created (no file in the way)."""
    ancestor = text  # the nearest part of the path (itself or a parent) that exists
    while ancestor and not os.path.exists(ancestor):
        parent = os.path.dirname(ancestor.rstrip(os.sep))
        if parent == ancestor:
            break
        ancestor = parent
    ancestor = ancestor or "."
    if not os.path.isdir(ancestor):
        where = f"{text} is a file" if ancestor == text else f"{ancestor} is a file, so {text} cannot be created"
        raise argparse.ArgumentTypeError(f"{where}; give a folder path")
    return text


def _fraction(text: str) -> float:
    """A number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}")
    return value


# ----------------------------------------------------------------------------------------------------- synth
def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="generate the synthetic MiniCity or MiniVOC dataset in the official layout")
    p.add_argument("dataset", choices=["minicity", "minivoc"])
    p.add_argument("--out", required=True, help="output folder (must be empty or missing unless --overwrite)")
    p.add_argument("--train", type=_non_negative_int, default=None, help="number of training images")
    p.add_argument("--val", type=_non_negative_int, default=None, help="number of validation images")
    p.add_argument("--test", type=_non_negative_int, default=None, help="number of test images (MiniCity)")
    p.add_argument("--sbd", type=_non_negative_int, default=None, help="number of SBD-only extra images (MiniVOC)")
    p.add_argument("--height", type=_positive_int, default=None, help="image height in pixels")
    p.add_argument("--width", type=_positive_int, default=None, help="image width in pixels")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same files")
    p.add_argument("--workers", type=_positive_int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    p.set_defaults(func=_cmd_synth)


def _cmd_synth(args: argparse.Namespace) -> None:
    from seglab.toolbox import synth

    wrong = {"minicity": "sbd", "minivoc": "test"}[args.dataset]
    if getattr(args, wrong) is not None:
        raise SeglabError(f"--{wrong} does not apply to {args.dataset} (MiniCity takes --test, MiniVOC takes --sbd)")
    keys = ("train", "val", "test", "sbd", "height", "width")
    options = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    generate = synth.generate_minicity if args.dataset == "minicity" else synth.generate_minivoc
    summary = generate(args.out, seed=args.seed, overwrite=args.overwrite, workers=args.workers, **options)
    print(summary)


# ----------------------------------------------------------------------------------------------------- masks
def _split_list(text: str) -> tuple[str, ...]:
    splits = tuple(part.strip() for part in text.split(","))
    if not all(splits):
        raise argparse.ArgumentTypeError(f"expected comma-separated split names like train,val, got {text!r}")
    return splits


def _add_masks(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("masks", help="Cityscapes polygons JSON -> labelIds / labelTrainIds / color PNGs")
    p.add_argument("--root", required=True, help="Cityscapes root holding gtFine/<split>/<city>/*_gtFine_polygons.json")
    p.add_argument("--out", type=_output_folder, default=None,
                   help="output folder (default: <root>/generated_gt), mirrors <split>/<city>/")
    p.add_argument("--splits", type=_split_list, default=("train", "val"), help="comma-separated (default: train,val)")
    p.add_argument("--workers", type=_positive_int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--compare", action="store_true",
                   help="also compare with the provided _gtFine_labelIds.png: CSV tables + comparison.png in --out")
    p.add_argument("--overwrite", action="store_true", help="regenerate frames whose three masks already exist")
    p.set_defaults(func=_cmd_masks)


def _cmd_masks(args: argparse.Namespace) -> None:
    from seglab import masks

    summary = masks.generate_masks(args.root, args.out, splits=args.splits, workers=args.workers,
                                   overwrite=args.overwrite)
    print(summary)
    if args.compare:
        comparison = masks.compare_masks(args.root, summary.out, splits=args.splits, workers=args.workers)
        agreement = comparison.per_image["agreement"]
        print(f"pixel agreement with the provided labelIds over {len(agreement)} images: "
              f"mean {agreement.mean():.4%}, min {agreement.min():.4%}")
        print(comparison.per_class.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        figure_path = summary.out / "comparison.png"
        worst = comparison.per_image.loc[agreement.idxmin()]  # the most instructive frame to look at
        masks.plot_comparison(args.root, summary.out, split=worst["split"], frame=worst["frame"], out_png=figure_path)
        print(f"tables: {summary.out / 'comparison_per_image.csv'}, {summary.out / 'comparison_per_class.csv'}; "
              f"figure: {figure_path}")


# ----------------------------------------------------------------------------------------------------- train
def _number_pair(kind: type) -> Callable[[str], tuple]:
    """A parser of 'A,B' (or one 'A' for A,A) into two numbers of ``kind``."""
    def parse(text: str) -> tuple:
        try:
            values = tuple(kind(part) for part in text.replace("x", ",").split(","))
        except ValueError:
            values = ()
        if len(values) not in (1, 2):
            raise argparse.ArgumentTypeError(f"expected A,B or A, got {text!r}")
        return values * (3 - len(values))
    return parse


def _size_pair(text: str) -> tuple[int, int]:
    """'H,W' or a single 'S' (square) -> (H, W) of positive ints."""
    size = _number_pair(int)(text)
    if min(size) <= 0:
        raise argparse.ArgumentTypeError(f"expected two positive sizes H,W, got {text!r}")
    return size


def _option(text: str) -> tuple[str, object]:
    """'key=value' with value parsed as JSON where possible (numbers, true/false), else kept as a string."""
    import json

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _config_argument(parser: argparse.ArgumentParser, field: dataclasses.Field, default: object) -> None:
    """One `--flag` for one TrainConfig field, typed by its annotation, with its help text and choices. A flag that
    is not given stays out of the parsed namespace, so that a --preset's value is kept."""
    shown = default if field.type != "bool" else str(default).lower()
    kwargs: dict = {"default": argparse.SUPPRESS, "help": f"{field.metadata['help']} (default: {shown})"}
    if field.type == "bool":
        kwargs["action"] = argparse.BooleanOptionalAction
    elif field.type == "dict":
        kwargs.update(type=_option, action="append", metavar="KEY=VALUE", help=field.metadata["help"])
    elif field.type.startswith("tuple"):
        kwargs.update(type=_number_pair(int if "int" in field.type else float), metavar="A,B")
    else:
        kwargs.update(type={"int": int, "float": float, "str": str}[field.type], choices=field.metadata["choices"])
    parser.add_argument("--" + field.name.replace("_", "-"), **kwargs)


def _add_train(sub: argparse._SubParsersAction) -> None:
    from seglab.config import TrainConfig, preset_names

    p = sub.add_parser("train", help="train a model (also under torchrun for DistributedDataParallel)",
                       description="Every TrainConfig field is a flag; notebooks take the same names. Flags given "
                                   "with --preset change that recipe's values.")
    p.add_argument("--preset", default="", metavar="NAME",
                   help=f"start from a recipe: {', '.join(preset_names())} (seglab/presets/), or a .toml file")
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        _config_argument(p, field, getattr(defaults, field.name))
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="start again in an --out that already holds a run")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> None:
    from seglab.config import TrainConfig, field_names
    from seglab.engine import fit

    values = {name: getattr(args, name) for name in field_names() if hasattr(args, name)}
    if "model_options" in values:
        values["model_options"] = dict(values["model_options"])
    config = TrainConfig.preset(args.preset, **values)
    history = fit(config, resume=args.resume, overwrite=args.overwrite)
    if len(history) and os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        best = history.loc[history["miou"].idxmax()]
        print(f"best mIoU {best['miou']:.4f} at epoch {int(best['epoch'])}; run saved in {config.out}")


# ----------------------------------------------------------------------------------------------------- evaluate
def _scale_list(text: str) -> tuple[float, ...]:
    """'0.5,1.0,1.5' -> positive finite resize factors."""
    from seglab.infer import check_tta_scales  # the one rule for test-time scales

    try:
        return tuple(check_tta_scales(tuple(float(part) for part in text.split(","))))
    except (ValueError, SeglabError):
        raise argparse.ArgumentTypeError(f"expected positive numbers like 0.75,1.0,1.25, got {text!r}") from None


def _add_model_source(p: argparse.ArgumentParser) -> None:
    """--checkpoint, or a registry --model (e.g. torchvision's pretrained weights) with its options and dataset."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a seglab checkpoint (best.pt / last.pt)")
    source.add_argument("--model", help="a registry model instead of a checkpoint, e.g. tv_deeplabv3_resnet101 with "
                                        "--model-options weights=DEFAULT (see `python -m seglab models`)")
    p.add_argument("--model-options", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="options of --model, repeatable")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="the classes of --model (default: voc); a checkpoint knows its own")


def _dataset(args: argparse.Namespace) -> str:
    """The label set of the model the arguments name: --dataset for a registry --model (voc when not given)."""
    return args.dataset or "voc"


def _model_source(args: argparse.Namespace):
    """(model, dataset name) from a checkpoint file, or from a registry model (built last: it may download weights)."""
    from seglab.checkpoint import model_from_checkpoint

    if args.checkpoint is not None:
        if args.model_options:
            raise SeglabError("--model-options goes with --model; a checkpoint already holds its model's options")
        model, record = model_from_checkpoint(args.checkpoint)
        if args.dataset is not None and args.dataset != record.dataset:
            from seglab.toolbox.layouts import DATASET_NAMES as names

            raise SeglabError(f"this checkpoint was trained on {names[record.dataset]} ({len(record.class_names)} "
                              f"classes), not {names[args.dataset]}; drop --dataset (a checkpoint knows its classes) "
                              f"or use a checkpoint trained on {names[args.dataset]}")
        return model, record.dataset
    from seglab.labels import get_label_set
    from seglab.models import build_model

    return build_model(args.model, get_label_set(_dataset(args)).num_classes, **dict(args.model_options)), _dataset(args)


def _add_inference_options(p: argparse.ArgumentParser) -> None:
    _add_model_source(p)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=PRECISIONS, default="auto")
    p.add_argument("--flip", action="store_true", help="horizontal-flip test-time augmentation")
    p.add_argument("--tta-scales", type=_scale_list, default=(1.0,), metavar="S,S,...",
                   help="multi-scale test-time augmentation: resize factors whose logits average, e.g. "
                        "0.5,0.75,1.0,1.25,1.5,1.75 (default: 1.0)")
    p.add_argument("--window", type=_size_pair, default=None, help="sliding-window tile H,W (default: whole image)")


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="metrics of a checkpoint at native resolution; optional benchmark export")
    _add_inference_options(p)
    p.add_argument("--data", required=True, help="dataset root")
    p.add_argument("--split", default="val")
    p.add_argument("--mask-dir", default="", metavar="DIR",
                   help="Cityscapes: evaluate against the labelTrainIds masks `seglab masks` wrote to DIR instead of "
                        "gtFine's labelIds")
    p.add_argument("--export", type=_output_folder, default=None,
                   help="write labelIds PNGs for the Cityscapes server here (+ .zip)")
    p.add_argument("--json", type=_output_file, default=None, help="write the metrics JSON here")
    p.add_argument("--workers", type=_non_negative_int, default=2)
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from seglab.data import build_dataset
    from seglab.toolbox.jobs import check_data_matches, evaluate_checkpoint, export_cityscapes
    from seglab.toolbox.run_folder import write_json

    export_error = "--export writes Cityscapes benchmark files; it needs a Cityscapes checkpoint and data"
    if args.model is not None:  # the data first: a registry model may download its weights
        if args.export is not None and _dataset(args) != "cityscapes":
            raise SeglabError(export_error)
        check_data_matches(_dataset(args), args.data)
        build_dataset(_dataset(args), args.data, args.split, mask_dir=args.mask_dir)
    source = _model_source(args)
    if args.export is not None and source[1] != "cityscapes":
        raise SeglabError(export_error)
    inference = dict(device=args.device, precision=args.precision, workers=args.workers, flip=args.flip,
                     window=args.window, tta_scales=args.tta_scales)
    report = evaluate_checkpoint(source, args.data, split=args.split, mask_dir=args.mask_dir, **inference)
    print(report.text())
    if args.json:
        write_json(args.json, report.summary)
        print(f"metrics JSON: {args.json}")
    if args.export is not None:
        print(f"benchmark export: {export_cityscapes(source, args.data, args.export, split=args.split, **inference)}")


# ----------------------------------------------------------------------------------------------------- predict
def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="segment a folder of your own images (label PNGs + colour overlays)")
    _add_inference_options(p)
    p.add_argument("--images", required=True, help="folder of .jpg/.png images (searched recursively), or one image")
    p.add_argument("--out", type=_output_folder, required=True, help="output folder")
    p.add_argument("--alpha", type=_fraction, default=0.5, help="overlay opacity, 0 to 1")
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> None:
    from seglab.toolbox.jobs import list_images, predict_checkpoint

    list_images(args.images)  # the images first: a registry model may download its weights
    result = predict_checkpoint(_model_source(args), args.images, args.out, device=args.device,
                                precision=args.precision, flip=args.flip, window=args.window, tta_scales=args.tta_scales,
                                alpha=args.alpha)
    print(f"wrote {len(result['written'])} prediction(s) to {args.out}")
    for path, why in result["skipped"]:
        print(f"skipped {path}: {why}")


# ----------------------------------------------------------------------------------------------------- export
def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model to ONNX (checked against PyTorch with onnxruntime)")
    _add_model_source(p)
    p.add_argument("--format", choices=["onnx"], default="onnx", help="file format (default: %(default)s)")
    p.add_argument("--out", type=_output_file, required=True, help="the file to write, e.g. model.onnx")
    p.add_argument("--height", type=_positive_int, default=512, help="input height the graph is fixed to")
    p.add_argument("--width", type=_positive_int, default=1024, help="input width the graph is fixed to")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> None:
    from seglab.toolbox.onnx_export import check_onnx, export_onnx

    model, _ = _model_source(args)
    path = export_onnx(model, args.out, args.height, args.width)
    check = check_onnx(model, path)
    print(f"wrote {path} (input 1x3x{args.height}x{args.width}); on a random image onnxruntime's logits are within "
          f"{check.max_difference:.1e} (relative) of PyTorch fp32's, the same class on {check.agreement:.4%} of the "
          f"pixels ({check.classes} classes predicted)")


# ----------------------------------------------------------------------------------------------------- profile
def _add_profile(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="latency, peak memory and FLOPs of models at a given input size")
    p.add_argument("--models", required=True, help="comma-separated model names (see `python -m seglab models`)")
    p.add_argument("--height", type=_positive_int, default=1024)
    p.add_argument("--width", type=_positive_int, default=2048)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--runs", type=_positive_int, default=5, help="timed runs (the median is reported)")
    p.add_argument("--warmup", type=_non_negative_int, default=2)
    p.add_argument("--num-classes", type=_positive_int, default=19)
    p.add_argument("--out", type=_output_file, default=None, help="write the table as CSV here")
    p.set_defaults(func=_cmd_profile)


def _cmd_profile(args: argparse.Namespace) -> None:
    from seglab.toolbox.profiling import profile_models
    from seglab.toolbox.run_folder import write_table

    names = [n.strip() for n in args.models.split(",") if n.strip()]
    if not names:
        raise SeglabError(f"--models needs comma-separated model names, got {args.models!r}")
    table = profile_models(names, num_classes=args.num_classes, height=args.height, width=args.width,
                           device=args.device, precision=args.precision, warmup=args.warmup, runs=args.runs)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.out:
        write_table(args.out, table)
        print(f"table: {args.out}")


# ------------------------------------------------------------------------------------------------------ models
def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the models build_model knows, with parameter counts and options")
    p.add_argument("--num-classes", type=_positive_int, default=19, help="classes for the parameter count")
    p.set_defaults(func=_cmd_models)


def _cmd_models(args: argparse.Namespace) -> None:
    from seglab.models import list_models

    rows = [(r.name, r.family, f"{r.params:,}", ", ".join(f"{k}={v!r}" for k, v in r.options.items()), r.paper)
            for r in list_models(args.num_classes)]
    header = ("model", "family", f"params@{args.num_classes}", "options (defaults)", "paper")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])


# ------------------------------------------------------------------------------------------------------ report
def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write <out>/README.md: links to executed notebooks, figures, GIFs, tables "
                                      "and the model comparison table")
    p.add_argument("--out", default="outputs", help="the outputs folder `make demo` filled (default %(default)s)")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> None:
    from seglab.toolbox.report import write_report

    print(f"wrote {write_report(args.out)}")


# ------------------------------------------------------------------------------------------------------ main
_COMMANDS = [_add_synth, _add_masks, _add_train, _add_evaluate, _add_predict, _add_export, _add_profile, _add_models,
             _add_report]


class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line error format (usage stays available through --help)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m seglab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for add in _COMMANDS:
        add(sub)
    return parser


def _one_line(exc: SeglabError) -> str:
    """The user-facing message; an error re-raised by a DataLoader worker carries a traceback: keep its last line."""
    text = str(exc).strip()
    if "Traceback" in text:
        text = text.splitlines()[-1].split("SeglabError: ", 1)[-1]
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; user errors become a single `error: ...` line on stderr and exit status 2."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else 2
    try:
        args.func(args)
    except SeglabError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; files are written atomically, so nothing partial was left "
              "(a training run continues from its last complete epoch with --resume)", file=sys.stderr)
        return 130
    return 0

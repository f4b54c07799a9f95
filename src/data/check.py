"""``python -m src.data.check data=<name> [key=value ...]``: validate a dataset's files, split by split.

Composes the same config as ``python -m src.train`` (Hydra compose API, same overrides), builds the
DataModule in report mode (every problem is recorded instead of raised), loads each split and then
reads every sample once, in ``--workers N`` forked processes (default: every available CPU; 0 reads
in this process), with a progress bar: counts, missing files, unreadable or truncated
images/pickles, empty texts, unknown labels, wrong shapes/dtypes, NaN/inf values, split ids absent
from the data, and samples shared by two splits. Prints a report per split and exits 1 when anything is wrong (repairs the
reference loaders always apply, such as MulT's ``-inf`` audio -> 0, are reported but do not fail
the check). Pickles are read by the restricted unpickler (``src.data.safe_pickle``): a file that
names code is reported, never run. Media files are decoded once: the DataModule's own decode at
load (``verify_media``, the training pre-flight) is off here, since reading the samples decodes them.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate

import src  # noqa: F401  (resolvers)
from src.data.base import SPLITS, FusionDataModule
from src.data.files import FileDataModule
from src.data.issues import MAX_EXAMPLES
from src.data.parallel import available_cpus, ordered_map
from src.data.validate import check_split_ids
from src.errors import DataFormatError, user_error_in, user_message
from src.spec import ModalitySpec
from src.tasks import MULTICLASS, MULTILABEL
from src.utils.resolvers import REPO_ROOT


def check_sample(
    sample: dict[str, Any], modalities: Mapping[str, ModalitySpec], task: str, n_classes: int
) -> list[tuple[str, str]]:
    """Problems of one decoded sample as (problem, message)."""
    problems = []
    for name, spec in modalities.items():
        value = sample[name]
        if isinstance(value, str):
            if not value.strip():
                problems.append(("empty_text", f"{name}: empty text"))
            continue
        shape = list(value.shape)
        expected = list(spec.shape)
        if spec.kind == "sequence":
            ok = len(shape) == 2 and shape[1] == expected[-1] and shape[0] <= expected[0]
        else:
            ok = shape == expected
        if not ok:
            problems.append(("bad_shape", f"{name}: shape {shape}, expected {expected} ({spec.kind})"))
        if spec.dtype == "uint8":  # pixel bytes: any uint8 value is a pixel
            if value.dtype != torch.uint8:
                problems.append(("bad_shape", f"{name}: dtype {value.dtype}, expected uint8 pixels"))
        elif not torch.is_floating_point(value):
            problems.append(("bad_shape", f"{name}: dtype {value.dtype}, expected a float dtype"))
        elif not torch.isfinite(value).all():
            problems.append(("nonfinite", f"{name}: {int((~torch.isfinite(value)).sum())} NaN/inf values"))
    labels = sample["labels"]
    if not torch.isfinite(labels.float()).all():
        problems.append(("unknown_label", f"labels not finite: {labels.tolist()}"))
    elif task == MULTILABEL and (labels.numel() != n_classes or not ((labels == 0) | (labels == 1)).all()):
        problems.append(
            ("unknown_label", f"multilabel labels {labels.tolist()} are not {n_classes} zeros/ones")
        )
    elif task == MULTICLASS and not 0 <= int(labels) < n_classes:
        problems.append(("unknown_label", f"class {int(labels)} outside 0..{n_classes - 1}"))
    return problems


def sample_problems(
    dataset: Any, modalities: Mapping[str, ModalitySpec], task: str, n_classes: int, workers: int, desc: str
) -> list[list[tuple[str, str]]]:
    """The problems of every sample of ``dataset`` (read once each, in ``workers`` processes), in order."""

    def problems_of(index: int) -> list[tuple[str, str]]:
        try:
            sample = dataset[index]
        except (ValueError, OSError) as err:
            return [("unreadable_file", f"{dataset.ids[index]}: {err}")]
        return check_sample(sample, modalities, task, n_classes)

    return list(ordered_map(problems_of, range(len(dataset)), workers, desc, unit="sample", chunksize=32))


def check(datamodule: FusionDataModule, workers: int = 0) -> tuple[dict[str, dict[str, Any]], bool]:
    """Per split: {samples, problems: {problem: count}, examples, fixed}; and whether all is clean.
    ``workers``: processes reading the samples (0: this one)."""
    report: dict[str, dict[str, Any]] = {}
    clean = True
    loaded = {}
    for split in SPLITS:
        try:
            dataset = loaded[split] = datamodule._ensure(split)
        except (ValueError, OSError) as err:
            report[split] = {
                "samples": 0,
                "problems": {"split_unreadable": 1},
                "examples": {"split_unreadable": [str(err)]},
                "fixed": {},
            }
            clean = False
            continue
        counts: dict[str, int] = defaultdict(int)
        examples: dict[str, list[str]] = defaultdict(list)
        fixed: dict[str, int] = {}
        issues = getattr(datamodule, "issues", None)
        if issues is not None:
            for problem, actions in issues.counts.get(split, {}).items():
                if "fixed" in actions:
                    fixed[problem] = actions["fixed"]
                else:
                    counts[problem] += sum(actions.values())
                    examples[problem].extend(issues.examples[split].get(problem, []))
        found_per_sample = sample_problems(
            dataset,
            datamodule.modalities,
            datamodule.task,
            len(datamodule.class_names),
            workers,
            f"check {split}",
        )
        for index, found in enumerate(found_per_sample):
            for problem, message in found:
                counts[problem] += 1
                if len(examples[problem]) < MAX_EXAMPLES:
                    examples[problem].append(f"{dataset.ids[index]}: {message}")
        clean = clean and not counts
        report[split] = {
            "samples": len(dataset),
            "problems": dict(counts),
            "examples": dict(examples),
            "fixed": fixed,
        }
    if len(loaded) == len(SPLITS):
        try:
            check_split_ids(f"{type(datamodule).__name__} sample ids", {s: d.ids for s, d in loaded.items()})
        except DataFormatError as err:
            report["all splits"] = {
                "samples": sum(len(d) for d in loaded.values()),
                "problems": {"split_overlap": 1},
                "examples": {"split_overlap": [str(err)]},
                "fixed": {},
            }
            clean = False
    return report, clean


def print_report(name: str, report: dict[str, dict[str, Any]], clean: bool) -> None:
    print(f"data check: {name}")
    for split, entry in report.items():
        status = "ok" if not entry["problems"] else "PROBLEMS"
        print(f"  {split}: {entry['samples']} samples  [{status}]")
        for what, n in entry["fixed"].items():
            print(f"    fixed {what}: {n}")
        for problem, n in sorted(entry["problems"].items()):
            print(f"    {problem}: {n}")
            for example in entry["examples"].get(problem, [])[:MAX_EXAMPLES]:
                print(f"      - {example}")
    print("result:", "clean" if clean else "problems found (exit 1)")


USAGE = "usage: python -m src.data.check data=<name> [data.key=value ...] [--workers N]"


def split_workers(argv: Sequence[str]) -> tuple[list[str], int]:
    """(the Hydra overrides, the ``--workers N`` / ``--workers=N`` value or every available CPU)."""
    overrides, workers, rest = [], available_cpus(), list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--workers" and rest:
            arg = f"--workers={rest.pop(0)}"
        if arg.startswith("--workers="):
            value = arg.split("=", 1)[1]
            if not value.isdigit():
                raise ValueError(f"--workers {value!r}: expected a number of processes (0: none)")
            workers = int(value)
        else:
            overrides.append(arg)
    return overrides, workers


def main(argv: list[str]) -> int:
    try:
        argv, workers = split_workers(argv)
    except ValueError as err:
        print(f"{err}\n{USAGE}", file=sys.stderr)
        return 2
    if not any(a.startswith("data=") for a in argv):
        print(USAGE, file=sys.stderr)
        return 2
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=argv)
    file_based = issubclass(get_class(cfg.data._target_), FileDataModule)
    options = {"report_problems": True, "verify_media": False} if file_based else {}
    try:
        datamodule = instantiate(cfg.data, **options)
    except (ValueError, OSError, InstantiationException) as err:
        user_error = user_error_in(err)
        if user_error is None:
            raise
        print(f"data check: {cfg.data._target_}: {user_message(user_error)}", file=sys.stderr)
        return 1
    report, clean = check(datamodule, workers)
    print_report(str(cfg.data._target_).rsplit(".", 1)[-1], report, clean)
    return 0 if clean else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

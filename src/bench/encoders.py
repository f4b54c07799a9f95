"""``python -m src.bench encoders``: throughput of the offline pretrained encoders (inference, frozen).

Texts/s of all-MiniLM-L6-v2 (mean pooling, plots of ~120 words truncated at ``--max-length``
tokens) and images/s of tf_efficientnet_lite0 (224x224 pooled features), on CPU with the given
thread count and on the GPU when one is present. Writes a Markdown table (``--out``) and prints it.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from src.models.encoders.image import TimmEncoder
from src.models.encoders.text import TransformerEncoder

PLOT = (
    "A retired detective is pulled back into the city's underworld when a young witness to a murder "
    "disappears. Racing against corrupt police officers and a ruthless crime family, he must decide "
    "whom to trust, while his estranged daughter, a journalist, uncovers a conspiracy that reaches the "
    "mayor's office. Old loyalties break, a love affair resurfaces, and a final confrontation at the "
    "harbour forces everyone to choose between justice and survival, as the storm closes in on the "
    "docks and the last ferry leaves without them."
)


def _timed(run: Callable[[], object], batches: int, sync: Callable[[], None]) -> float:
    """Seconds for ``batches`` calls after one warm-up call."""
    run()
    sync()
    start = time.perf_counter()
    for _ in range(batches):
        run()
    sync()
    return time.perf_counter() - start


def bench_device(device: str, batch_size: int, batches: int, max_length: int) -> list[dict[str, object]]:
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    texts = [f"{PLOT} (case {i})" for i in range(batch_size)]
    images = torch.rand(batch_size, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(device)
    text_encoder = TransformerEncoder([], "text", max_length=max_length).to(device).eval()
    image_encoder = TimmEncoder([3, 224, 224], "image").to(device).eval()
    rows = []
    with torch.inference_mode():
        for name, unit, run in (
            (f"all-MiniLM-L6-v2 (max_length {max_length})", "texts/s", lambda: text_encoder(texts)),
            ("tf_efficientnet_lite0 224x224", "images/s", lambda: image_encoder(images)),
        ):
            seconds = _timed(run, batches, sync)
            rows.append(
                {
                    "encoder": name,
                    "device": torch.cuda.get_device_name()
                    if device == "cuda"
                    else f"cpu ({platform.processor() or platform.machine()})",
                    "threads": torch.get_num_threads() if device == "cpu" else "-",
                    "batch": batch_size,
                    "throughput": f"{batches * batch_size / seconds:.1f} {unit}",
                    "ms/batch": f"{1000 * seconds / batches:.1f}",
                }
            )
    return rows


def to_markdown(rows: list[dict[str, object]]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(row[k]) for k in header) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.bench encoders", description=__doc__)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=5, help="timed batches after one warm-up batch")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's default)")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument(
        "--devices",
        nargs="+",
        default=["cpu", "cuda"],
        choices=["cpu", "cuda"],
        help="cuda is skipped when absent",
    )
    parser.add_argument("--out", type=Path, default=Path("bench_out/encoders.md"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for device in args.devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("no CUDA device: GPU rows skipped")
            continue
        rows += bench_device(device, args.batch_size, args.batches, args.max_length)
    table = to_markdown(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(table)
    print(f"written to {args.out}")
    return 0

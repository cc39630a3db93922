"""Training-step time of asr's BidirectionalLSTM against keras.layers.Bidirectional(keras.layers.LSTM).

Each path is a small keras.Model (stacked bidirectional layers, MSE on the outputs)
trained with `train_on_batch`, so the step is forward + backward + Adam update on
any backend. The paths alternate step by step in one process, so load from other
processes hits them alike; warm-up steps are excluded and the median is reported.

    python scripts/bench_layers.py                # batch 32, 400 frames, 80 inputs, 256 units, 2 layers
    python scripts/bench_layers.py --quick        # tiny smoke run
    KERAS_BACKEND=jax python scripts/bench_layers.py --padded
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402  (after the log level, which TensorFlow reads at import)
import numpy as np  # noqa: E402

from asr.layers import BidirectionalLSTM  # noqa: E402

PATHS = ("asr fused", "asr explicit", "keras reference")
QUICK = dict(batch=2, frames=12, features=6, units=8, layers=1, steps=3, warmup=1)


def build_model(path: str, args: argparse.Namespace) -> keras.Model:
    """Input (batch, frames, features) [+ mask] -> `args.layers` bidirectional layers."""
    features = keras.Input((None, args.features), name="features")
    mask = keras.Input((None,), dtype="bool", name="mask") if args.padded else None
    x = features
    for _ in range(args.layers):
        if path == "keras reference":
            layer = keras.layers.Bidirectional(keras.layers.LSTM(args.units, return_sequences=True))
        else:
            layer = BidirectionalLSTM(args.units, implementation=path.removeprefix("asr "))
        x = layer(x, mask=mask)
    model = keras.Model([features, mask] if args.padded else features, x)
    # XLA stays off except on JAX, where an un-jitted step would time Python, not the kernels.
    model.compile(optimizer="adam", loss="mse", jit_compile=keras.backend.backend() == "jax")
    return model


def make_batch(args: argparse.Namespace, seed: int = 0):
    """Random frames and zero targets; with --padded, lengths uniform in [frames/2, frames]."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((args.batch, args.frames, args.features)).astype("float32")
    target = np.zeros((args.batch, args.frames, 2 * args.units), "float32")
    if not args.padded:
        return x, target
    lengths = rng.integers(args.frames // 2, args.frames + 1, size=args.batch)
    lengths[0] = args.frames
    mask = np.arange(args.frames)[None, :] < lengths[:, None]
    return [x, mask], target


def benchmark(args: argparse.Namespace) -> dict[str, float]:
    """Median milliseconds per training step for each path."""
    inputs, target = make_batch(args)
    models = {path: build_model(path, args) for path in PATHS}
    for model in models.values():
        for _ in range(args.warmup):
            model.train_on_batch(inputs, target)
    times = {path: [] for path in PATHS}
    for _ in range(args.steps):
        for path, model in models.items():
            start = time.perf_counter()
            model.train_on_batch(inputs, target)
            times[path].append(time.perf_counter() - start)
    return {path: 1000 * statistics.median(seconds) for path, seconds in times.items()}


def format_table(medians: dict[str, float]) -> str:
    reference = medians["keras reference"]
    rows = [f"{'path':<16} {'ms/step':>9} {'vs keras':>9}"]
    rows += [f"{path:<16} {ms:>9.1f} {ms / reference:>8.2f}x" for path, ms in medians.items()]
    return "\n".join(rows)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--features", type=int, default=80)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per path (median)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per path (tracing, compilation)")
    parser.add_argument("--padded", action="store_true", help="random lengths, with a mask")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, few steps: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        vars(args).update(QUICK)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    print(
        f"backend {keras.backend.backend()}: batch {args.batch}, frames {args.frames}, "
        f"features {args.features}, units {args.units}, layers {args.layers}, "
        f"{'padded' if args.padded else 'unpadded'}; "
        f"median of {args.steps} steps after {args.warmup} warm-up"
    )
    print(format_table(benchmark(args)))


if __name__ == "__main__":
    main()

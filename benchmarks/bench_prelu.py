"""PReLU op benchmark: rectifiers.prelu vs torch.nn.functional.prelu vs torch.relu.

    python benchmarks/bench_prelu.py [--repeats 10] [--shape 64,64,56,56] [--dtypes float32,bfloat16]

Forward (no grad) and forward+backward, contiguous and channels_last, timed interleaved in one run;
the table gives the median and its ratio to ReLU and to torch's PReLU. The measurement lives in
`rectifiers.bench.prelu_op`, which `rectifiers bench prelu` runs too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rectifiers.bench.machine_info import machine_info
from rectifiers.bench.prelu_op import DEFAULT_OPS, OPS, bench_prelu_op, format_bench_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed repeats per op (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    parser.add_argument("--shape", default="64,64,56,56", help="input shape, channels on dim 1")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated dtypes")
    parser.add_argument("--formats", default="contiguous,channels_last", help="comma-separated formats")
    parser.add_argument(
        "--ops", default=",".join(DEFAULT_OPS), help=f"comma-separated, from: {', '.join(OPS)}"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args()

    shape = tuple(int(s) for s in args.shape.split(","))
    rows = bench_prelu_op(
        shape=shape,
        dtypes=args.dtypes.split(","),
        formats=args.formats.split(","),
        repeats=args.repeats,
        warmup=args.warmup,
        device=args.device,
        ops=args.ops.split(","),
    )
    info = machine_info(args.device)
    print(
        f"PReLU op, shape {shape}, {args.repeats} repeats (median), "
        + ", ".join(f"{k} {v}" for k, v in info.items())
    )
    print(format_bench_table(rows))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

"""Write random-init pretrained files at real size in the real layouts (no download).

Usage:
    python scripts/make_random_pretrained.py --out pretrained_random            # 1B, ~4 GB
    python scripts/make_random_pretrained.py --out /tmp/pre_tiny --size tiny    # tests

The output is a `pretrained_root` for the 1B configs (configs/_base_/models/sa2va_mba_1b.py):
`--cfg-options pretrained_root=pretrained_random`. It holds InternVL2_5-1B/ (config.json,
safetensors shards + index, a tokenizer with the real ids) and sam2_hiera_large.pt
({"model": state_dict}); mpr_cma/models/random_pretrained.py describes both. The weights
are random: use it to run every 1B command at real size (scripts/smoke_1b_cpu.sh) and to
measure time and memory, never for scores.
"""

import argparse
import sys
import time

import torch

from mpr_cma.models.random_pretrained import SIZES, write_random_pretrained


def main(argv: list[str] | None = None) -> int:
    """Parse the options, write the folder, print what was written."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder to write (the pretrained_root)")
    p.add_argument("--size", choices=SIZES, default="1b")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16",
                   help="dtype of the InternVL shards (the release is bf16)")
    p.add_argument("--shard-gb", type=float, default=1.0, help="largest InternVL shard")
    args = p.parse_args(argv)
    start = time.perf_counter()
    out = write_random_pretrained(
        args.out, args.size, args.seed, getattr(torch, args.dtype),
        int(args.shard_gb * 2**30), progress=lambda m: print(m, flush=True))
    files = sorted(f for f in out.rglob("*") if f.is_file())
    for f in files:
        print(f"{f.stat().st_size / 2**20:10.1f} MiB  {f.relative_to(out)}")
    print(f"wrote {len(files)} files to {out} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Print the effective config: every base merged, --cfg-options applied, references resolved.

Usage:
    python tools/print_config.py configs/mba_1b.py
    python tools/print_config.py configs/mba_1b.py --cfg-options max_epochs=2 mba.top_k=8
    python tools/print_config.py configs/mba_1b.py --save effective.py   # also write it

This is what tools/train.py, tools/test.py and tools/predict.py build from (the same
`mpr_cma.engine.config.load_config`); the training work dir keeps a copy of it. A
reference that does not resolve or an override that would be lost exits with status 1
and a message naming the key.
"""

import argparse
import os
import sys

from mmengine.config import DictAction

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mpr_cma.engine.config import ConfigReferenceError, load_config  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="config file")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        help="override config fields, key=value (configs/README.md)")
    parser.add_argument("--save", help="also write the effective config to this .py file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.cfg_options, import_custom_modules=False)
    except (ConfigReferenceError, FileNotFoundError) as err:
        print(f"error: {args.config}: {err}", file=sys.stderr)
        return 1
    print(cfg.pretty_text)
    if args.save:
        cfg.dump(args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train MPR-CMA (mmengine FlexibleRunner + DeepSpeed ZeRO-2; gloo on CPU, nccl on GPU).

Usage:
    # one process (DeepSpeed still runs, in a one-process world)
    python tools/train.py configs/tiny/train_tiny.py --work-dir work_dirs/tiny
    # torchrun, N processes (GPUs, or CPU processes with gloo); multi-node via NNODES,
    # NODE_RANK, MASTER_ADDR, PORT
    tools/dist_train.sh configs/mba_1b.py 4
    # resume: from the latest complete checkpoint of the work dir, or from a given one
    tools/dist_train.sh configs/mba_1b.py 4 --resume auto
    tools/dist_train.sh configs/mba_1b.py 4 --resume work_dirs/mba_1b/iter_2000.pth
    # override config fields (late-bound: every use follows, configs/README.md); the
    # effective config: python tools/print_config.py CONFIG --cfg-options ...
    python tools/train.py CONFIG --cfg-options max_epochs=2 lr=1e-4 use_tensorboard=True
    # read the datasets from another root: the same as --cfg-options data_root=DIR
    tools/dist_train.sh configs/tiny/demo.py 2 --data-root data/synthetic

Writes to the work dir (default work_dirs/<config name>): the dumped config, the logs
(<timestamp>/<timestamp>.log and vis_data/scalars.json: every loss term, lr, gamma, warm-up
scales, grad norm, samples/s), checkpoints iter_N.pth (DeepSpeed folders) and
last_checkpoint.
"""

import argparse
import os
import sys

from mmengine.config import DictAction

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mpr_cma.engine.config import ConfigReferenceError, load_config  # noqa: E402
from mpr_cma.engine.runner import build_runner, setup_config  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train MPR-CMA")
    parser.add_argument("config", help="training config file")
    parser.add_argument("--work-dir", help="folder for logs and checkpoints")
    parser.add_argument("--resume", nargs="?", const="auto", default=None,
                        metavar="auto|CHECKPOINT",
                        help="resume from the latest complete checkpoint of the work dir "
                             "('auto', the default when the flag has no value) or a path")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        help="override config fields, key=value (dotted keys); every use of "
                             "a top-level knob follows (configs/README.md)")
    parser.add_argument("--data-root",
                        help="the datasets' root: an alias of --cfg-options data_root=DIR")
    parser.add_argument("--launcher", choices=["none", "pytorch"], default="none",
                        help="'pytorch' under torchrun (tools/dist_train.sh)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0,
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    options = dict(args.cfg_options)
    if args.data_root is not None:
        if "data_root" in options:
            sys.exit("error: give --data-root or --cfg-options data_root=..., not both")
        options["data_root"] = args.data_root
    try:
        cfg = load_config(args.config, options)
    except (ConfigReferenceError, FileNotFoundError) as err:
        sys.exit(f"error: {args.config}: {err}")
    setup_config(cfg, work_dir=args.work_dir, resume=args.resume, launcher=args.launcher,
                 config_path=args.config)
    build_runner(cfg).train()


if __name__ == "__main__":
    main()

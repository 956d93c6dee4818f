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
    # override config fields
    python tools/train.py CONFIG --cfg-options train_cfg.max_epochs=2 use_tensorboard=True
    # read the datasets from another root (every dataset path under the config's data_root)
    tools/dist_train.sh configs/tiny/demo.py 2 --data-root data/synthetic

Writes to the work dir (default work_dirs/<config name>): the dumped config, the logs
(<timestamp>/<timestamp>.log and vis_data/scalars.json: every loss term, lr, gamma, warm-up
scales, grad norm, samples/s), checkpoints iter_N.pth (DeepSpeed folders) and
last_checkpoint.
"""

import argparse
import os
import sys

from mmengine.config import Config, DictAction

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mpr_cma.engine.data_root import replace_data_root  # noqa: E402
from mpr_cma.engine.runner import build_runner, setup_config  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train MPR-CMA")
    parser.add_argument("config", help="training config file")
    parser.add_argument("--work-dir", help="folder for logs and checkpoints")
    parser.add_argument("--resume", nargs="?", const="auto", default=None,
                        metavar="auto|CHECKPOINT",
                        help="resume from the latest complete checkpoint of the work dir "
                             "('auto', the default when the flag has no value) or a path")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction,
                        help="override config fields, key=value (dotted keys)")
    parser.add_argument("--data-root",
                        help="replace the config's data_root in every dataset path under it")
    parser.add_argument("--launcher", choices=["none", "pytorch"], default="none",
                        help="'pytorch' under torchrun (tools/dist_train.sh)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0,
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.data_root is not None:
        try:
            replace_data_root(cfg, args.data_root)
        except (KeyError, ValueError) as err:
            sys.exit(f"error: --data-root: {args.config}: {err}")
    setup_config(cfg, work_dir=args.work_dir, resume=args.resume, launcher=args.launcher,
                 config_path=args.config)
    build_runner(cfg).train()


if __name__ == "__main__":
    main()

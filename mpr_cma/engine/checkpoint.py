"""Crash-safe checkpoints for DeepSpeed training: atomic saves, a trustworthy latest, RNG.

A checkpoint is first written under `<name>.partial` (a DeepSpeed directory, or a single
file when the optimizer is not saved), flushed to disk, then renamed to `<name>` in one
`os.replace`, so a name without the suffix is always complete. `AtomicCheckpointHook`
prunes old checkpoints only after the new one exists and rewrites `last_checkpoint`
atomically; `find_latest_checkpoint` trusts complete names only, so a run killed while
saving resumes from the previous checkpoint. Every rank's Python / NumPy / torch RNG state
travels in the checkpoint and is restored on resume. The work dir must be on a file system
shared by all ranks (as DeepSpeed's ZeRO checkpoints already require).
"""

import os
import os.path as osp
import random
import re
import shutil

import numpy as np
import torch
import torch.distributed as dist
from mmengine.dist import get_world_size, is_distributed, is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.runner.checkpoint import find_latest_checkpoint as mmengine_last_pointer

from mpr_cma.registry import HOOKS

PARTIAL_SUFFIX = ".partial"
POINTER_FILE = "last_checkpoint"
_CKPT_NAME = re.compile(r"^(iter|epoch)_(\d+)\.pth$")


# ---------------------------------------------------------------------- RNG state
def capture_rng_state() -> dict:
    """Python, NumPy, torch CPU (and CUDA) generator states of this process."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of `capture_rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gather_rng_states() -> list[dict]:
    """RNG state of every rank, indexed by rank (collective when distributed)."""
    state = capture_rng_state()
    if not is_distributed():
        return [state]
    states: list = [None] * get_world_size()
    dist.all_gather_object(states, state)
    return states


# ---------------------------------------------------------------------- file helpers
def _fsync_tree(path: str) -> None:
    """Flush a file or every file of a directory tree to disk."""
    files = [path] if osp.isfile(path) else [osp.join(root, f) for root, _, names in
                                             os.walk(path) for f in names]
    for name in files:
        with open(name, "rb") as f:
            os.fsync(f.fileno())


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_path(path: str) -> None:
    """Delete a checkpoint file or DeepSpeed checkpoint directory if it exists."""
    if osp.isdir(path):
        shutil.rmtree(path)
    elif osp.lexists(path):
        os.remove(path)


def publish(partial: str, final: str) -> None:
    """Flush `partial` and rename it to `final` atomically (replacing an old `final`)."""
    _fsync_tree(partial)
    if osp.isdir(final):
        # os.replace cannot overwrite a non-empty directory: move the old one aside first.
        old = final + ".old"
        remove_path(old)
        os.replace(final, old)
        os.replace(partial, final)
        remove_path(old)
    else:
        os.replace(partial, final)
    _fsync_dir(osp.dirname(osp.abspath(final)))


def write_text_atomic(path: str, text: str) -> None:
    """Write a small text file via a temporary name and `os.replace`."""
    tmp = path + PARTIAL_SUFFIX
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def is_complete_checkpoint(path: str) -> bool:
    """A published (non-partial) checkpoint file, or DeepSpeed dir with its model states."""
    if path.endswith(PARTIAL_SUFFIX) or not osp.exists(path):
        return False
    if osp.isdir(path):
        return any(f.endswith("model_states.pt") for f in os.listdir(path))
    return True


def find_latest_checkpoint(work_dir: str) -> str | None:
    """The most advanced complete `iter_N.pth` / `epoch_N.pth` in `work_dir`, else None.

    Partial saves are ignored; `last_checkpoint` is only used for names of another form.
    """
    if not osp.isdir(work_dir):
        return None
    found = []
    for name in os.listdir(work_dir):
        match = _CKPT_NAME.match(name)
        path = osp.join(work_dir, name)
        if match and is_complete_checkpoint(path):
            found.append((match.group(1) == "iter", int(match.group(2)), path))
    if found:
        return max(found)[2]
    pointed = mmengine_last_pointer(work_dir) if osp.exists(
        osp.join(work_dir, POINTER_FILE)) else None
    return pointed if pointed and is_complete_checkpoint(pointed) else None


def barrier() -> None:
    if is_distributed():
        dist.barrier()


# ---------------------------------------------------------------------- hook
@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """CheckpointHook that prunes old checkpoints after saving, not before.

    mmengine deletes the oldest kept checkpoint before writing the new one, so a crash
    during the save can leave no checkpoint at all; here the new one is published first,
    `last_checkpoint` is replaced atomically, then stale ones are deleted. Arguments are
    CheckpointHook's.
    """

    def _save_checkpoint_with_step(self, runner, step, meta):
        stale = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                            and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                stale.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info("keep_ckpt_ids", list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info("last_ckpt", self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, ckpt_filename, self.file_client_args,
            save_optimizer=self.save_optimizer, save_param_scheduler=self.save_param_scheduler,
            meta=meta, by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        write_text_atomic(osp.join(runner.work_dir, POINTER_FILE), self.last_ckpt)
        for old in stale:
            remove_path(self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old)))

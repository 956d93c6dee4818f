"""Recording MBA's attention where the caller does not ask for it (SAM-2's video memory loop
calls MBA per frame), for `tools/predict.py` and the app."""

from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported by the caller; this module stays import-light
    import torch


@contextmanager
def record_attention(mba: "torch.nn.Module"):
    """Hooks on an MBA module that make every call return its attention info and keep it.

    The video path calls MBA inside SAM-2's memory loop without asking for attention, so
    the pre-hook sets `return_attention=True` and the post-hook strips the info again
    (the caller sees the tensor it expects). Yields the list of infos, one per call, as
    CPU tensors.
    """
    infos: list[dict] = []

    def pre(module, args, kwargs):
        return args, {**kwargs, "return_attention": True}

    def post(module, args, output):
        out, info = output
        infos.append({k: v.detach().cpu() for k, v in info.items()})
        return out

    handles = [mba.register_forward_pre_hook(pre, with_kwargs=True),
               mba.register_forward_hook(post)]
    try:
        yield infos
    finally:
        for handle in handles:
            handle.remove()

"""Interactive app: look at a checkpoint's answers, masks and MBA attention in the browser.

Usage:
    # the tiny model trained by `make demo` (CPU; `make app` runs this)
    python tools/app.py configs/tiny/demo.py --checkpoint work_dirs/demo/train \
        --max-new-tokens 32
    # the 1B model on a GPU: any checkpoint tools/test.py takes (HF folder, DeepSpeed
    # checkpoint or work dir, .pth file)
    python tools/app.py configs/mba_1b.py --checkpoint work_dirs/mba_1b/iter_5000.pth
    # override config fields (configs/README.md), e.g. an MBA without its mask gate
    python tools/app.py CONFIG --checkpoint CKPT --cfg-options mba.use_mask_gate=False

Open http://HOST:PORT (default http://127.0.0.1:7860), upload an image or a short video
(at most --max-frames frames, default 64; a longer one is refused with a message), type a
referring expression or a question and press Run: the page shows the answer, the mask over
each frame and, for MBA models, the attention maps without and with the mask gate (the
Fig. 5 view). Bad input (unreadable file, too long a video, empty text, an answer without
[SEG]) is a message in the page. The logic lives in `mpr_cma.apis`; this file is the UI
(docs/app.md).
"""

import argparse
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MAX_FRAMES = 64  # mpr_cma.apis.media.DEFAULT_MAX_FRAMES (checked in tests)
logger = logging.getLogger("mpr_cma.tools.app")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("config", help="mmengine config of the model")
    parser.add_argument("--checkpoint", required=True,
                        help="HF folder, DeepSpeed checkpoint or work dir, or .pth file "
                             "(the kinds tools/test.py takes)")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config fields (configs/README.md)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: CUDA if usable)")
    parser.add_argument("--max-frames", type=int, default=DEFAULT_MAX_FRAMES,
                        help=f"longest video accepted, in frames (default "
                             f"{DEFAULT_MAX_FRAMES}); a longer one is refused")
    parser.add_argument("--max-new-tokens", type=int, default=2048,
                        help="generation budget (Sa2VA: 2048)")
    parser.add_argument("--num-key-frames", type=int,
                        help="video frames shown to the MLLM (default: the config's "
                             "num_key_frames, else Sa2VA's 5)")
    parser.add_argument("--max-tiles", type=int, default=12, help="image tiles (Sa2VA: 12)")
    parser.add_argument("--answer", help='teacher-force this answer, e.g. "It is [SEG]." '
                                         "(untrained models)")
    args = parser.parse_args(argv)
    if args.max_frames < 1:
        parser.error("--max-frames must be >= 1")
    if args.num_key_frames is not None and args.num_key_frames < 1:
        parser.error(f"--num-key-frames must be a positive integer, got {args.num_key_frames}")
    return args


def respond(loaded, args: argparse.Namespace, upload, text: str):
    """One click of Run: (answer, status, overlay gallery, attention gallery)."""
    from mpr_cma.apis import run_request

    start = time.perf_counter()
    try:
        response = run_request(loaded, upload, text, answer=args.answer,
                               max_frames=args.max_frames,
                               max_new_tokens=args.max_new_tokens,
                               num_key_frames=args.num_key_frames, max_tiles=args.max_tiles)
    except Exception as err:  # a bug or out of memory: say so in the page, keep serving
        logger.exception("request failed")
        return "", f"Error: {type(err).__name__}: {err}", [], []
    if response.ok:
        frames = len(response.overlays)
        what = f"video, {frames} frames" if response.is_video else "image"
        seconds = time.perf_counter() - start
        status = "\n".join([f"Done in {seconds:.1f} s ({what}; mask pixels: "
                            f"{int(response.masks.sum())})."] + response.messages)
    else:
        status = response.message
    return response.answer, status, response.overlays, response.attention


def build_ui(loaded, args: argparse.Namespace):
    """The gradio page: upload + text -> answer, status, overlays, attention."""
    import gradio as gr

    from mpr_cma.apis import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    with gr.Blocks(title="MPR-CMA", analytics_enabled=False) as page:
        gr.Markdown(f"## MPR-CMA: masks and MBA attention\nModel: `{loaded.describe()}`. "
                    f"Videos: at most {args.max_frames} frames.")
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Image or short video", type="filepath",
                                 file_types=list(IMAGE_SUFFIXES + VIDEO_SUFFIXES),
                                 elem_id="upload")
                text = gr.Textbox(label="Referring expression or question", lines=1,
                                  placeholder="the dog on the left", elem_id="text")
                run = gr.Button("Run", variant="primary", elem_id="run")
            with gr.Column():
                answer = gr.Textbox(label="Answer", interactive=False, elem_id="answer")
                status = gr.Textbox(label="Status", interactive=False, lines=2,
                                    elem_id="status")
        overlays = gr.Gallery(label="Mask overlay (per frame)", columns=4, format="png",
                              fit_columns=False, object_fit="contain", interactive=False,
                              elem_id="overlays")
        attention = gr.Gallery(label="MBA attention: strongest routed token per pixel, "
                               "without and with the mask gate (Fig. 5)", columns=4,
                               format="png", fit_columns=False, object_fit="contain",
                               interactive=False, elem_id="attention")
        outputs = [answer, status, overlays, attention]
        run.click(lambda f, t: respond(loaded, args, f, t), [upload, text], outputs)
        text.submit(lambda f, t: respond(loaded, args, f, t), [upload, text], outputs)
    return page


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # No telemetry or version check: the app talks to nobody but its browser.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    sys.path.insert(0, str(REPO))  # mpr_cma of this checkout; configs' custom_imports
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from mpr_cma.apis import load_inference_model
    from mpr_cma.checkpoint.errors import CheckpointKeyError, CorruptCheckpointError
    from mpr_cma.engine.config import ConfigReferenceError

    try:
        loaded = load_inference_model(args.config, args.checkpoint, device=args.device,
                                      cfg_options=args.cfg_options)
    except (FileNotFoundError, CorruptCheckpointError, CheckpointKeyError,
            ConfigReferenceError, ValueError) as err:
        logger.error("%s", err)
        return 1
    logger.info("model: %s", loaded.describe())
    page = build_ui(loaded, args)
    page.queue(default_concurrency_limit=1)  # one model: one request at a time
    page.launch(server_name=args.host, server_port=args.port, share=False,
                show_error=True, inbrowser=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

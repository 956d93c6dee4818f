"""SAM2Grounding: Sa2VA's single decoder pass, the MBA two-pass path, video memory and
checkpoints, on a tiny SAM-2 built from the package's Hiera-L config by hydra overrides."""

import copy

import pytest
import torch
import torch.nn.functional as F

from mpr_cma.checkpoint.errors import CheckpointKeyError
from mpr_cma.models import MaskBiasedAttention
from mpr_cma.models.grounding import (
    GroundingFeatures,
    SAM2Grounding,
    load_sam2_checkpoint,
    tiny_sam2_overrides,
)
from mpr_cma.registry import MODELS

DIM, SIZE = 32, 64  # tiny SAM-2: C = 32, 64 px input -> 4 x 4 embedding, 16 x 16 masks
NO_OBJ_SCORE = -1024.0


def make_model(mba=True, gamma=0.0, seed=0, **kwargs):
    torch.manual_seed(seed)
    module = MaskBiasedAttention(dim=DIM, num_heads=4, top_k=3) if mba else None
    if module is not None:
        with torch.no_grad():
            module.gamma.fill_(gamma)
    model = SAM2Grounding(image_size=SIZE, hydra_overrides=tiny_sam2_overrides(DIM), mba=module,
                          **kwargs)
    # A random object-score head may call the object absent, which replaces every logit by
    # -1024 (no gradient, gate 0). Make the object present so the tests see real logits.
    with torch.no_grad():
        model.sam2_model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(20.0)
    return model


def make_inputs(frames=2, objects=3, tokens=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (frames, 3, 48, 80), dtype=torch.uint8, generator=g)
    prompt = torch.randn(objects, 1, DIM, generator=g)
    text = torch.randn(objects, tokens, DIM, generator=g)
    text_mask = torch.ones(objects, tokens, dtype=torch.bool)
    text_mask[0, 3:] = False
    return images, prompt, text, text_mask


@pytest.fixture(scope="module")
def model():
    return make_model(gamma=0.5)


def sa2va_reference(sam, visual, high_res, prompt):
    """Sa2VA's decoder call written out with SAM-2's modules: pad point + [SEG] token,
    no_mask_embed, multimask output, best IoU, object-score gating."""
    b = visual.shape[0]
    points = (torch.zeros(b, 1, 2), -torch.ones(b, 1, dtype=torch.int32))
    sparse, dense = sam.sam_prompt_encoder(points=points, boxes=None, masks=None)
    masks, ious, _, obj = sam.sam_mask_decoder(
        image_embeddings=visual, image_pe=sam.sam_prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=torch.cat([sparse, prompt], dim=1),
        dense_prompt_embeddings=dense, multimask_output=True, repeat_image=False,
        high_res_features=high_res)
    masks = torch.where(obj[:, :, None, None] > 0, masks, NO_OBJ_SCORE)
    return masks[torch.arange(b), ious.argmax(-1)].unsqueeze(1).float()


def test_build_freezes_sam2_but_decoder(model):
    assert model.hidden_dim == DIM and model.multimask_output  # Hiera-L rule, as Sa2VA
    sam = model.sam2_model
    assert not any(p.requires_grad for p in sam.image_encoder.parameters())
    assert not any(p.requires_grad for p in sam.memory_attention.parameters())
    assert not any(p.requires_grad for p in sam.sam_prompt_encoder.parameters())
    assert all(p.requires_grad for p in sam.sam_mask_decoder.parameters())
    model.train()
    assert sam.sam_mask_decoder.training and not sam.memory_attention.training
    frozen = make_model(mba=False, train_mask_decoder=False)
    assert not any(p.requires_grad for p in frozen.parameters())
    assert MODELS.get("SAM2Grounding") is SAM2Grounding
    built = MODELS.build(dict(type="SAM2Grounding", image_size=SIZE,
                              hydra_overrides=tiny_sam2_overrides(DIM),
                              mba=dict(type="MaskBiasedAttention", dim=DIM, num_heads=4)))
    assert isinstance(built.mba, MaskBiasedAttention)
    with pytest.raises(ValueError, match="hidden_dim"):
        SAM2Grounding(image_size=SIZE, hydra_overrides=tiny_sam2_overrides(DIM),
                      mba=MaskBiasedAttention(dim=16, num_heads=4))



def test_train_image_encoder_knob_trains_and_unfreezes_only_the_encoder():
    model = make_model(mba=False, train_image_encoder=True)
    sam = model.sam2_model
    assert all(p.requires_grad for p in sam.image_encoder.parameters())
    assert not any(p.requires_grad for p in sam.memory_attention.parameters())
    assert not any(p.requires_grad for p in sam.sam_prompt_encoder.parameters())
    model.train()
    assert sam.image_encoder.training and not sam.memory_encoder.training
    model.eval()
    assert not sam.image_encoder.training
    images, prompt, _, _ = make_inputs()
    feats = model.encode(model.preprocess(images))
    out = model.segment_images(feats, torch.tensor([0, 1, 1]), prompt)
    out["pred_masks"].float().square().mean().backward()
    trunk = [p.grad for p in sam.image_encoder.trunk.parameters()]
    assert all(g is not None for g in trunk) and sum(g.abs().sum() for g in trunk) > 0

def test_preprocess_resizes_and_normalises(model):
    images = torch.zeros(2, 3, 30, 40, dtype=torch.uint8)
    images[:, 0], images[:, 1], images[:, 2] = 124, 116, 104  # ~ ImageNet mean * 255
    x = model.preprocess(images)
    assert x.shape == (2, 3, SIZE, SIZE) and x.dtype == torch.float32
    assert x.abs().max() < 0.05  # bf16 statistics: 0.484375 for 0.485, ...
    assert torch.equal(x, x.bfloat16().float())  # Sa2VA feeds SAM-2 bf16 values
    frames = [img.permute(1, 2, 0).numpy() for img in images]  # HWC arrays work too
    assert torch.equal(model.preprocess(frames), x)
    with pytest.raises(ValueError, match="uint8"):
        model.preprocess(images.float())
    with pytest.raises(ValueError, match="3, H, W"):
        model.preprocess(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))


def test_image_path_shapes(model):
    images, prompt, text, text_mask = make_inputs()
    feats = model.encode(model.preprocess(images))
    assert isinstance(feats, GroundingFeatures)
    assert feats.image_embed.shape == (2, DIM, 4, 4)
    assert [tuple(h.shape) for h in feats.high_res] == [(2, DIM // 8, 16, 16),
                                                        (2, DIM // 4, 8, 8)]
    out = model.segment_images(feats, torch.tensor([0, 1, 1]), prompt, text, text_mask,
                               return_attention=True)
    assert out["pred_masks"].shape == out["pred_masks_pass1"].shape == (3, 1, 16, 16)
    assert out["decoder_features"].shape == out["image_features"].shape == (3, DIM, 4, 4)
    assert out["attention"]["gate"].shape == (3, 1, 4, 4)
    assert model.upsample_masks(out["pred_masks"], (48, 80)).shape == (3, 1, 48, 80)
    with pytest.raises(ValueError, match="prompt must be"):
        model.segment_images(feats, torch.tensor([0]), prompt, text, text_mask)
    with pytest.raises(ValueError, match="needs `text`"):
        model.segment_images(feats, torch.tensor([0, 1, 1]), prompt)


def test_without_mba_is_sa2va_single_pass():
    model = make_model(mba=False)
    images, prompt, _, _ = make_inputs()
    feats = model.encode(model.preprocess(images))
    sam = model.sam2_model
    assert torch.equal(feats.image_embed, feats.backbone + sam.no_mem_embed.view(1, -1, 1, 1))
    index = torch.tensor([1, 0, 1])
    out = model.segment_images(feats, index, prompt)
    ref = sa2va_reference(sam, feats.image_embed[index], [h[index] for h in feats.high_res],
                          prompt)
    torch.testing.assert_close(out["pred_masks"], ref, rtol=0, atol=0)
    assert out["pred_masks_pass1"] is out["pred_masks"]
    assert out["decoder_features"] is out["image_features"]


def test_gamma_zero_is_exactly_baseline_and_nonzero_differs():
    model = make_model(gamma=0.0)
    baseline = copy.deepcopy(model)
    baseline.mba = None
    images, prompt, text, text_mask = make_inputs()
    feats = model.encode(model.preprocess(images))
    index = torch.tensor([0, 1, 0])
    ref = baseline.segment_images(feats, index, prompt)["pred_masks"]
    out = model.segment_images(feats, index, prompt, text, text_mask)
    assert torch.equal(out["pred_masks"], ref)
    assert torch.equal(out["pred_masks_pass1"], ref)
    with torch.no_grad():
        model.mba.gamma.fill_(1.0)
    changed = model.segment_images(feats, index, prompt, text, text_mask)
    assert torch.equal(changed["pred_masks_pass1"], ref)  # pass 1 does not see MBA
    assert (changed["pred_masks"] - ref).abs().max() > 1e-3


@pytest.mark.parametrize("detach_prior", [False, True])
def test_mask_loss_gradient_flow(detach_prior):
    model = make_model(gamma=0.5, detach_prior=detach_prior)
    images, prompt, text, text_mask = make_inputs()
    prompt.requires_grad_(True)
    feats = model.encode(model.preprocess(images))
    out = model.segment_images(feats, torch.tensor([0, 1, 1]), prompt, text, text_mask)
    target = (torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(1)) > 0.5)
    F.binary_cross_entropy_with_logits(out["pred_masks"], target.float()).backward()
    sam = model.sam2_model
    assert all(p.grad is None for p in sam.image_encoder.parameters())
    assert all(p.grad is None for p in sam.sam_prompt_encoder.parameters())
    decoder = sam.sam_mask_decoder
    # Multimask output (Sa2VA's setting) trains the hypernetwork of the selected mask.
    hyper = [mlp.layers[0].weight.grad.abs().sum() for mlp in decoder.output_hypernetworks_mlps]
    assert max(hyper) > 0
    assert decoder.transformer.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
    assert decoder.conv_s0.weight.grad.abs().sum() > 0  # high-res path, trained as Sa2VA
    assert prompt.grad.abs().sum() > 0
    assert model.mba.gamma.grad.abs().sum() > 0
    assert model.mba.router.mlp[0].weight.grad.abs().sum() > 0



def test_detached_prior_runs_pass1_without_autograd_same_gradients():
    """detach_prior=True runs pass 1 under no_grad: the gradients equal a pass 1 with
    autograd whose logits are detached before the gate (the former implementation), and
    pass 1 leaves nothing saved for backward."""
    images, prompt, text, text_mask = make_inputs()
    target = (torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(1)) > 0.5)
    grads = {}
    for name in ("no_grad", "detach_after"):
        model = make_model(gamma=0.5, detach_prior=True)
        if name == "detach_after":
            heads = model._sam_heads

            def with_grad(*args, _heads=heads):
                with torch.enable_grad():  # pass 1 with autograd, its prior detached after
                    return _heads(*args)

            model._sam_heads = with_grad
        p = prompt.clone().requires_grad_(True)
        feats = model.encode(model.preprocess(images))
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t, _s=saved: _s.append(t) or t,
                                                      lambda t: t):
            out = model.segment_images(feats, torch.tensor([0, 1, 1]), p, text, text_mask)
        F.binary_cross_entropy_with_logits(out["pred_masks"], target.float()).backward()
        grads[name] = {"prompt": p.grad, **{n: q.grad for n, q in model.named_parameters()
                                            if q.grad is not None}}
        grads[name + "_saved"] = len(saved)
        if name == "no_grad":
            assert out["pred_masks_pass1"].grad_fn is None
            assert out["pred_masks"].grad_fn is not None
    assert grads["no_grad"].keys() == grads["detach_after"].keys()
    for key, grad in grads["no_grad"].items():
        torch.testing.assert_close(grad, grads["detach_after"][key], rtol=0, atol=0)
    assert grads["no_grad_saved"] < grads["detach_after_saved"]


def test_pass1_keeps_autograd_without_mba_and_with_its_prior():
    """No MBA (Sa2VA): pass 1 is the final pass, with gradients even if detach_prior."""
    images, prompt, _, _ = make_inputs()
    model = make_model(mba=False, detach_prior=True)
    feats = model.encode(model.preprocess(images))
    out = model.segment_images(feats, torch.tensor([0, 1, 1]), prompt.requires_grad_(True))
    assert out["pred_masks"].grad_fn is not None

def test_video_shapes_and_memory():
    model = make_model(gamma=0.5).eval()
    images, prompt, text, text_mask = make_inputs(frames=3, objects=2)
    pixels = model.preprocess(images)
    with torch.no_grad():
        feats = model.encode(pixels)
        out = model.segment_video(feats, prompt, [0], text, text_mask)
        assert out["pred_masks"].shape == out["pred_masks_pass1"].shape == (2, 3, 16, 16)
        assert out["object_score_logits"].shape == (2, 3)
        # Frame 0 is a key frame: no memory, the image path exactly.
        image = model.segment_images(feats, torch.tensor([0, 0]), prompt, text, text_mask)
        torch.testing.assert_close(out["pred_masks"][:, 0], image["pred_masks"][:, 0])
        # Frame 2 reads frame 1's memory: change frame 1's content, frame 2 changes.
        pixels[1] = pixels[1].flip(-1)
        edited = model.segment_video(model.encode(pixels), prompt, [0], text, text_mask)
        assert torch.equal(edited["pred_masks"][:, 0], out["pred_masks"][:, 0])
        assert (edited["pred_masks"][:, 2] - out["pred_masks"][:, 2]).abs().max() > 1e-4
        # Every frame a key frame = Sa2VA's per-frame path.
        allkey = model.segment_video(feats, prompt, [2, 0, 1], text, text_mask)
        for t in range(3):
            per_frame = model.segment_images(feats, torch.tensor([t, t]), prompt, text,
                                             text_mask)["pred_masks"][:, 0]
            torch.testing.assert_close(allkey["pred_masks"][:, t], per_frame)
        with pytest.raises(ValueError, match="key frame"):
            model.segment_video(feats, prompt, [], text, text_mask)


@pytest.mark.parametrize("key_frames", [[0], [0, 1]])
def test_video_gradient_flows_through_memory(key_frames):
    model = make_model(mba=False)
    images, prompt, _, _ = make_inputs(frames=2, objects=1)
    prompt.requires_grad_(True)
    pixels = model.preprocess(images).requires_grad_(True)
    out = model.segment_video(model.encode(pixels), prompt, key_frames)
    out["pred_masks"][:, 1].sum().backward()
    assert prompt.grad.abs().sum() > 0
    assert model.sam2_model.sam_mask_decoder.conv_s0.weight.grad.abs().sum() > 0
    # Frame 1's loss reaches frame 0 only through the memory (tracked frame 1 only).
    through_memory = pixels.grad[0].abs().sum() > 0
    assert through_memory == (key_frames == [0])
    assert all(p.grad is None for p in model.sam2_model.memory_encoder.parameters())


def test_bf16_autocast_matches_fp32():
    model = make_model(gamma=0.5).eval()
    images, prompt, text, text_mask = make_inputs()
    pixels = model.preprocess(images)
    index = torch.tensor([0, 1, 1])
    with torch.no_grad():
        ref = model.segment_images(model.encode(pixels), index, prompt, text, text_mask)
        model.autocast_dtype = torch.bfloat16
        out = model.segment_images(model.encode(pixels), index, prompt, text, text_mask)
    assert out["pred_masks"].dtype == torch.float32
    assert torch.isfinite(out["pred_masks"]).all()
    a, b = out["pred_masks"].flatten(), ref["pred_masks"].flatten()
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.95


def test_checkpoint_round_trip(tmp_path):
    source = make_model(mba=False, seed=1)
    path = tmp_path / "sam2_tiny.pt"
    torch.save({"model": source.sam2_model.state_dict()}, path)
    loaded = SAM2Grounding(image_size=SIZE, hydra_overrides=tiny_sam2_overrides(DIM),
                           ckpt_path=str(path))
    for key, value in source.sam2_model.state_dict().items():
        assert torch.equal(loaded.sam2_model.state_dict()[key], value), key


def test_checkpoint_key_errors(tmp_path):
    model = make_model(mba=False)
    state = model.sam2_model.state_dict()
    renamed = dict(state)
    renamed["no_mem_embed_renamed"] = renamed.pop("no_mem_embed")
    path = tmp_path / "renamed.pt"
    torch.save({"model": renamed}, path)
    with pytest.raises(CheckpointKeyError, match="no_mem_embed_renamed") as err:
        load_sam2_checkpoint(model.sam2_model, path)
    assert err.value.missing == ["no_mem_embed"] and err.value.file == path
    missing = tmp_path / "nope" / "sam2_hiera_large.pt"
    with pytest.raises(FileNotFoundError, match="nope/sam2_hiera_large.pt"):
        SAM2Grounding(image_size=SIZE, hydra_overrides=tiny_sam2_overrides(DIM),
                      ckpt_path=str(missing))
    torch.save(state, tmp_path / "flat.pt")
    with pytest.raises(ValueError, match="'model'"):
        load_sam2_checkpoint(model.sam2_model, tmp_path / "flat.pt")


@pytest.mark.parametrize("gating", ["pointer", "eval", "always", "never"])
def test_absent_object_gating(gating):
    model = make_model(mba=False, object_gating=gating)
    sam = model.sam2_model
    with torch.no_grad():  # make SAM-2 score every object absent
        sam.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(-20.0)
    images, prompt, _, _ = make_inputs()
    feats = model.encode(model.preprocess(images))
    index = torch.tensor([0, 1, 1])
    visual, high_res = feats.image_embed[index], [h[index] for h in feats.high_res]
    for training in (True, False):
        model.train(training)
        masks = model.segment_images(feats, index, prompt)["pred_masks"]
        gated = bool((masks == NO_OBJ_SCORE).all())
        both = gating == "always" or (gating == "eval" and not training)
        assert gated == both, (gating, training)
        # SAM-2's pointer rule for an absent object (fixed_no_obj_ptr): exactly no_obj_ptr;
        # Sa2VA ("pointer") keeps that substitution and drops the mask one.
        first, _, _, _ = model.decode(visual, high_res, prompt)
        is_no_obj = torch.equal(first.obj_ptr, sam.no_obj_ptr.expand(3, -1))
        assert is_no_obj == (both or gating == "pointer"), (gating, training)
    assert sam.pred_obj_scores  # the switch is restored after every call
    with pytest.raises(ValueError, match="object_gating"):
        make_model(mba=False, object_gating="sometimes")


def test_pointer_gating_keeps_present_objects_raw():
    """A present object's pointer is SAM-2's projection of its output token in every mode."""
    model = make_model(mba=False).eval()  # object score +20: present
    images, prompt, _, _ = make_inputs()
    feats = model.encode(model.preprocess(images))
    index = torch.tensor([0, 1, 1])
    visual, high_res = feats.image_embed[index], [h[index] for h in feats.high_res]
    pointer, _, _, _ = model.decode(visual, high_res, prompt)
    model.object_gating = "never"
    model.eval()
    raw, _, _, _ = model.decode(visual, high_res, prompt)
    assert torch.equal(pointer.obj_ptr, raw.obj_ptr)
    assert torch.equal(pointer.low_res, raw.low_res)


def test_preset_dim_widens_the_tiny_preset_only():
    wide = SAM2Grounding(image_size=SIZE, size_preset="tiny", preset_dim=64, mba=None)
    assert wide.hidden_dim == 64
    assert SAM2Grounding(image_size=SIZE, size_preset="tiny", mba=None).hidden_dim == 32
    with pytest.raises(ValueError, match="preset_dim"):
        SAM2Grounding(image_size=SIZE, hydra_overrides=tiny_sam2_overrides(DIM),
                      preset_dim=64, mba=None)


def test_preset_trunk_dim_widens_the_tiny_hiera_only():
    def stage1_width(model):
        return model.sam2_model.image_encoder.trunk.patch_embed.proj.out_channels

    wide = SAM2Grounding(image_size=SIZE, size_preset="tiny", preset_trunk_dim=16, mba=None)
    assert stage1_width(wide) == 16
    assert wide.hidden_dim == 32  # the decoder width is preset_dim's
    assert stage1_width(SAM2Grounding(image_size=SIZE, size_preset="tiny", mba=None)) == 8
    # The wider trunk still runs: encode one image.
    feats = wide.encode(torch.zeros(1, 3, SIZE, SIZE))
    assert feats is not None
    with pytest.raises(ValueError, match="preset_trunk_dim"):
        SAM2Grounding(image_size=SIZE, hydra_overrides=tiny_sam2_overrides(DIM),
                      preset_trunk_dim=16, mba=None)

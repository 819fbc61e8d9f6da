import subprocess
import sys

import pytest
import torch

from brainsegcli.models import count_parameters, create_model
from brainsegcli.models.sam.loader import sam_build_module


def test_sam_modules_load_without_torchvision():
    code = ("import sys, torch\n"
            "from brainsegcli.models import create_model\n"
            "m = create_model('lora-sam', num_classes=13, tiny=True)\n"
            "m(torch.rand(1, 5, 32, 32))\n"
            "assert 'torchvision' not in sys.modules, 'torchvision was imported'\n"
            "assert 'segment_anything' not in sys.modules, 'the package __init__ ran'\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


@pytest.fixture(scope="module")
def official_vit_b():
    """A state dict produced by the official vit_b builder (random weights; the checkpoint file itself
    is not available offline)."""
    torch.manual_seed(0)
    return sam_build_module().build_sam_vit_b().state_dict()


@pytest.mark.parametrize("image_size", [1024, 512])
def test_lora_sam_loads_official_vit_b_keys(official_vit_b, image_size):
    model = create_model("lora-sam", num_classes=13, image_size=image_size)
    model.load_base(official_vit_b)  # strict=True inside; only the listed new keys may be absent
    new = model.new_keys()
    assert {k for k in new if not k.startswith("lora.")} == {
        f"mask_decoder.output_hypernetworks_mlps.{i}.layers.{j}.{p}" for i in range(4, 13) for j in range(3)
        for p in ("weight", "bias")}
    sd = model.state_dict()
    assert torch.equal(sd["image_encoder.blocks.3.attn.qkv.weight"], official_vit_b["image_encoder.blocks.3.attn.qkv.weight"])
    assert torch.equal(sd["mask_decoder.mask_tokens.weight"][:4], official_vit_b["mask_decoder.mask_tokens.weight"])
    if image_size == 512:
        assert sd["image_encoder.pos_embed"].shape == (1, 32, 32, 768)
        assert sd["image_encoder.blocks.2.attn.rel_pos_h"].shape == (63, 64)


def test_lora_sam_parameter_counts_match_the_paper():
    model = create_model("lora-sam", num_classes=13)
    total, trainable = count_parameters(model)
    # paper: 5.92 M trainable (ViT-B, rank 16, 512 px). We freeze SAM's IoU head and mask-prompt
    # encoder, which no loss trains here; counted as the paper counts them, the figure matches.
    unused = sum(p.numel() for m in (model.mask_decoder.iou_prediction_head, model.prompt_encoder.mask_downscaling)
                 for p in m.parameters())
    assert round((trainable + unused) / 1e6, 2) == 5.92
    assert round(trainable / 1e6, 2) == 5.78
    assert 92e6 < total < 94e6


def test_brainsegnet_loads_official_encoder(official_vit_b):
    model = create_model("brainsegnet", num_classes=96)
    model.load_base(official_vit_b)
    assert torch.equal(model.state_dict()["image_encoder.blocks.0.mlp.lin1.weight"],
                       official_vit_b["image_encoder.blocks.0.mlp.lin1.weight"])
    assert all(not p.requires_grad for p in model.image_encoder.parameters())


def test_lora_starts_as_identity_and_is_the_only_encoder_change():
    torch.manual_seed(0)
    m = create_model("lora-sam", num_classes=13, tiny=True).eval()
    x = torch.rand(1, 5, 64, 64)
    with torch.no_grad():
        a = m(x)
        for lora in m.lora:
            lora.b_q.fill_(0.01)
        b = m(x)
    assert not torch.allclose(a, b)
    assert all(not p.requires_grad for n, p in m.named_parameters() if n.startswith("image_encoder."))
    unused = ("prompt_encoder.mask_downscaling.", "mask_decoder.iou_prediction_head.")
    assert all(p.requires_grad for n, p in m.named_parameters()
               if not n.startswith(("image_encoder.",) + unused))


def test_lora_sam_prompts_change_the_output():
    torch.manual_seed(0)
    m = create_model("lora-sam", num_classes=13, tiny=True).eval()
    x = torch.rand(1, 5, 64, 64)
    with torch.no_grad():
        plain = m(x)
        boxed = m(x, boxes=[torch.tensor([[10.0, 10.0, 40.0, 40.0]])])
        pointed = m(x, points=[(torch.tensor([[[20.0, 30.0]]]), torch.tensor([[1]]))])
    assert plain.shape == boxed.shape == pointed.shape == (1, 13, 64, 64)
    assert not torch.allclose(plain, boxed) and not torch.allclose(plain, pointed)


@pytest.mark.parametrize("flag", ["unet_skips", "aspp", "csa", "boundary"])
def test_brainsegnet_ablations(flag):
    m = create_model("brainsegnet", num_classes=13, tiny=True, **{flag: False}).train()
    out = m(torch.rand(2, 5, 64, 64))
    logits = out["logits"] if isinstance(out, dict) else out
    assert logits.shape == (2, 13, 64, 64)
    assert isinstance(out, dict) == (flag != "boundary")


def test_adapters_mix_along_the_slice_axis():
    torch.manual_seed(0)
    m = create_model("brainsegnet", num_classes=4, tiny=True).eval()
    for pair in m.adapters:
        for ad in pair:
            torch.nn.init.normal_(ad.up.weight, std=0.1)
    x = torch.rand(1, 5, 64, 64)
    y = x.clone()
    y[:, 0] = 0  # change only the outermost slice
    with torch.no_grad():
        assert not torch.allclose(m(x), m(y))  # information from other slices reaches the centre


def test_lora_sam_trains_from_a_base_and_stores_only_what_it_trained(tmp_path):
    """A tiny stand-in for an official SAM .pth (same key layout, 4 mask tokens): train from it,
    the checkpoint holds LoRA + prompt encoder + mask decoder and the base's sha256, and loading
    rebuilds from the base."""
    import json

    from safetensors.torch import load_file
    from typer.testing import CliRunner

    from brainsegcli.cli.main import app
    from brainsegcli.weights.checkpoint import load_checkpoint, sha256_file

    from test_training import write_pairs_csv

    torch.manual_seed(0)
    official_like = create_model("lora-sam", num_classes=4, tiny=True).state_dict()
    official_like = {k: v for k, v in official_like.items() if not k.startswith("lora.")}
    base = tmp_path / "sam_tiny.pth"
    torch.save(official_like, base)
    write_pairs_csv(tmp_path, 2)
    r = CliRunner().invoke(app, ["train", "--pairs", str(tmp_path / "pairs.csv"), "--out", str(tmp_path / "run"),
                                 "--model", "lora-sam", "--labelset", "subcortical", "--model-args",
                                 '{"variant": "tiny", "image_size": 64, "lora_rank": 4}', "--base-weights", str(base),
                                 "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--val", "1",
                                 "--views", "axial", "--device", "cpu", "--precision", "fp32", "--quiet"])
    assert r.exit_code == 0, r.output
    best = tmp_path / "run" / "best"
    stored = load_file(best / "model.safetensors")
    assert stored and not any(k.startswith("image_encoder.") for k in stored)
    assert any(k.startswith("lora.") for k in stored)
    cfg = json.loads((best / "config.json").read_text())
    assert cfg["base_model"]["sha256"] == sha256_file(base)
    model, _ = load_checkpoint(best)
    assert torch.equal(model.state_dict()["image_encoder.blocks.0.attn.qkv.weight"],
                       official_like["image_encoder.blocks.0.attn.qkv.weight"])
    base.write_bytes(base.read_bytes()[:-8] + b"corrupt!")
    from brainsegcli.types import BrainsegError

    with pytest.raises(BrainsegError, match="sha256"):
        load_checkpoint(best)


def test_brainsegnet_trains_with_edge_loss_and_ablation_flags(tmp_path):
    import json

    from typer.testing import CliRunner

    from brainsegcli.cli.main import app

    from test_training import write_pairs_csv

    write_pairs_csv(tmp_path, 2)
    common = ["--pairs", str(tmp_path / "pairs.csv"), "--model", "brainsegnet", "--labelset", "tissue",
              "--model-args", '{"variant": "tiny", "image_size": 64, "lora_rank": 2, '
                              '"decoder_channels": [16, 8, 8, 8, 8]}',
              "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--val", "1", "--views", "axial",
              "--device", "cpu", "--precision", "fp32", "--quiet"]
    r = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "full"), *common])
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "full" / "run.json").read_text())
    assert cfg["hp"]["edge_weight"] > 0 and cfg["recipe"] == "brainsegnet"
    r = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "abl"), "--no-aspp", "--no-boundary", *common])
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "abl" / "best" / "config.json").read_text())
    assert cfg["model_args"]["aspp"] is False and cfg["model_args"]["boundary"] is False
    r = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "x"), "--no-csa", *common[:2], "--model", "unet"])
    assert r.exit_code == 1 and "brainsegnet" in r.output

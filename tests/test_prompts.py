import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from brainsegcli.cli.main import app
from brainsegcli.inference.predictor import InferenceConfig, predict_labels
from brainsegcli.inference.prompts import PromptedNetwork, Prompts, boxes_from_labels, parse_prompts
from brainsegcli.labels import get_labelset
from brainsegcli.models import create_model, get_spec
from brainsegcli.types import BrainsegError, Plane
from brainsegcli.weights.checkpoint import CheckpointConfig, save_checkpoint


class Recorder(torch.nn.Module):
    accepts_prompts = True

    def __init__(self, n):
        super().__init__()
        self.n, self.calls = n, []

    def forward(self, x, points=None, boxes=None):
        self.calls.append((x.shape[0], points, boxes))
        out = torch.zeros(x.shape[0], self.n, *x.shape[-2:])
        out[:, 0] = 1
        return out


def test_prompts_reach_the_right_slices_in_every_view():
    vol = np.zeros((32, 32, 32), np.uint8)
    vol[8:24, 8:24, 8:24] = 100
    prompts = Prompts(points=[(np.array([10.0, 12.0, 14.0]), 1)],
                      boxes=[(np.array([9.0, 9.0, 9.0]), np.array([11.0, 20.0, 22.0]))])
    net = PromptedNetwork(Recorder(13), prompts)
    for plane in Plane:
        c = {0: 10, 1: 12, 2: 14}[plane.axis]
        pts, box = net.slice_prompts(plane, c)
        rows, cols = [i for i in range(3) if i != plane.axis]
        v = prompts.points[0][0]
        assert pts[0][0, 0].tolist() == [v[cols], v[rows]] and pts[1].tolist() == [[1]]
        lo, hi = prompts.boxes[0]
        assert box.tolist() == [[lo[cols], lo[rows], hi[cols], hi[rows]]]
        far = net.slice_prompts(plane, 30)
        assert far == (None, None)
    rec = Recorder(13)
    predict_labels(vol, PromptedNetwork(rec, prompts), get_labelset("subcortical"), InferenceConfig(batch_size=4))
    assert any(b is not None for _, _, boxes in rec.calls for b in boxes)
    assert sum(p is not None for _, pts, _ in rec.calls for p in pts) == 3  # one slice per view


def test_parse_prompts_coordinates():
    n2c = np.eye(4)
    n2c[:3, 3] = [5, 6, 7]
    aff = np.eye(4)
    p = parse_prompts(["1,2,3,1"], ["0,0,0,4,5,6"], "voxel", n2c, aff)
    assert p.points[0][0].tolist() == [6, 8, 10] and p.boxes[0][1].tolist() == [9, 11, 13]
    p = parse_prompts(["1,2,3,0"], [], "ras", n2c, aff)
    assert p.points[0][0].tolist() == [1, 2, 3] and p.points[0][1] == 0
    for bad in (["1,2,3"], ["1,2,3,5"], ["a,b,c,1"]):
        with pytest.raises(BrainsegError):
            parse_prompts(bad, [], "voxel", n2c, aff)
    lab = np.zeros((10, 10, 10), np.uint8)
    lab[2:4, 3:5, 4:6] = 3
    b = boxes_from_labels(lab, margin=0).boxes
    assert len(b) == 1 and b[0][0].tolist() == [2, 3, 4] and b[0][1].tolist() == [3, 4, 5]


def test_cli_prompts_with_lora_sam(phantom_t1, tmp_path):
    torch.manual_seed(0)
    d = tmp_path / "lora"
    args = dict(get_spec("lora-sam").default_args)
    args.update(get_spec("lora-sam").tiny_args)
    save_checkpoint(d, create_model("lora-sam", num_classes=13, **args),
                    CheckpointConfig(architecture="lora-sam", labelset="subcortical", model_args=args))
    runner = CliRunner()
    r = runner.invoke(app, ["parcellate", str(phantom_t1), "-o", str(tmp_path / "o"), "--weights", str(d), "-q",
                            "--views", "axial", "--points", "40,50,40,1", "--box", "30,40,30,50,60,50",
                            "--auto-boxes"])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "o" / "sub-01_T1w" / "report.json").read_text())
    assert rep["inference"]["prompts"]["points"] == 1 and rep["inference"]["prompts"]["auto_boxes"] is True
    assert rep["inference"]["flip_tta"] is False  # on by default, but not with prompts
    r = runner.invoke(app, ["parcellate", str(phantom_t1), "-o", str(tmp_path / "o2"), "--allow-untrained",
                            "--model", "unet", "--labelset", "tissue", "--points", "1,2,3,1"])
    assert r.exit_code == 1 and "promptable" in r.output
    r = runner.invoke(app, ["parcellate", str(phantom_t1), "-o", str(tmp_path / "o3"), "--weights", str(d),
                            "--points", "40,50,40,1", "--tta"])
    assert r.exit_code == 1 and "--tta" in r.output and "Traceback" not in r.output

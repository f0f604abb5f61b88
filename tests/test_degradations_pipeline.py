"""The degradation composition point: names, groups, labels, determinism, validation, configs."""

from __future__ import annotations

import json

import pytest
import torch

from rar.degradations import (
    AGENTICIR_DEGRADATIONS,
    AGENTICIR_GROUPS,
    DEGRADATIONS,
    SEVERITIES,
    DegradationLabel,
    apply_labels,
    combination_name,
    degrade,
    describe,
    display_name,
    sample_labels,
)
from rar.degradations.realesrgan import check_realesrgan, realesrgan, sample_realesrgan

# AgenticIR's dataset/degradations.txt, joined as their synthesize.py names the LQ folders
AGENTICIR_FOLDERS = {
    "A": [
        "rain+haze",
        "motion blur+low resolution",
        "dark+noise",
        "defocus blur+jpeg compression artifact",
        "noise+jpeg compression artifact",
        "rain+low resolution",
        "motion blur+dark",
        "defocus blur+haze",
    ],
    "B": ["motion blur+jpeg compression artifact", "haze+noise", "defocus blur+low resolution", "rain+dark"],
    "C": [
        "haze+motion blur+low resolution",
        "rain+noise+low resolution",
        "dark+defocus blur+jpeg compression artifact",
        "motion blur+defocus blur+noise",
    ],
}


def _img(b: int = 2, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    return (torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 255).round() / 255


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_groups_and_folder_names_match_agenticir():
    assert set(AGENTICIR_DEGRADATIONS) <= set(DEGRADATIONS) and len(AGENTICIR_DEGRADATIONS) == 8
    assert {g: [combination_name(c) for c in combos] for g, combos in AGENTICIR_GROUPS.items()} == AGENTICIR_FOLDERS
    assert display_name("motion_blur") == "motion blur"
    assert combination_name(["haze", "motion_blur", "low_resolution"]) == "haze+motion blur+low resolution"


def test_describe_with_and_without_severity():
    labels = [
        DegradationLabel("noise", {"kind": "gaussian", "sigma": 45.0}, "high"),
        DegradationLabel("haze", {"airlight": 0.8, "beta": 1.2}, "medium"),
    ]
    assert describe(labels) == "noise, haze"
    assert describe(labels, severity=True) == "high noise, medium haze"


@pytest.mark.parametrize("name", sorted(DEGRADATIONS))
def test_same_seed_identical_different_seed_different(name):
    img = _img(2, 32, 32)
    a = degrade(img, [name], _gen(3))
    b = degrade(img, [name], _gen(3))
    c = degrade(img, [name], _gen(4))
    assert torch.equal(a.lq, b.lq) and a.labels == b.labels
    if name == "low_resolution":  # no random parameters: the same for every seed
        assert torch.equal(a.lq, c.lq)
    else:
        assert a.labels != c.labels and not torch.equal(a.lq, c.lq)
    assert 0 <= a.lq.min() and a.lq.max() <= 1
    assert torch.equal(a.lq, (a.lq * 255).round() / 255)  # quantised like AgenticIR's uint8 steps
    expected = (8, 8) if name in ("low_resolution", "realesrgan") else (32, 32)
    assert a.lq.shape == (2, 3, *expected)


@pytest.mark.parametrize("group", sorted(AGENTICIR_GROUPS))
def test_every_combination_runs_with_per_image_labels(group):
    img = _img(2, 48, 48)
    for combo in AGENTICIR_GROUPS[group]:
        out = degrade(img, combo, _gen(0))
        assert [[lab.name for lab in row] for row in out.labels] == [list(combo)] * 2
        size = 12 if "low_resolution" in combo else 48
        assert out.lq.shape == (2, 3, size, size)
        assert not torch.equal(out.lq[0], out.lq[1])


def test_each_image_gets_its_own_parameters():
    labels = sample_labels(["motion_blur", "haze", "jpeg"], 6, _gen(0))
    for step in range(3):
        params = [json.dumps(row[step].params, sort_keys=True) for row in labels]
        assert len(set(params)) > 1


RANGES = {  # AgenticIR's ranges, written out independently of the specs
    "jpeg": lambda p: 10 <= p["quality"] <= 29 and isinstance(p["quality"], int),
    "noise": lambda p: 20 <= p["sigma"] <= 50 if p["kind"] == "gaussian" else 1 <= p["scale"] <= 3,
    "dark": lambda p: {
        "constant shift": lambda: 30 <= p.get("shift", -1) <= 49,
        "gamma correction": lambda: 0.5 <= p.get("gamma", -1) <= 0.7,
        "linear mapping": lambda: 100 <= p.get("max_value", -1) <= 149,
    }[p["method"]](),
    "haze": lambda p: 0.7 <= p["airlight"] <= 1.0 and 0.6 <= p["beta"] <= 1.8,
    "motion_blur": lambda p: (p["radius"], p["sigma"]) in [(10, 3), (15, 5), (15, 8)] and -90 <= p["angle"] <= 90,
    "defocus_blur": lambda p: (p["radius"], p["alias_sigma"]) in [(3, 0.1), (4, 0.5), (6, 0.5)],
    "rain": lambda p: 50 <= p["density"] <= 99 and 20 <= p["length"] <= 39 and -30 <= p["angle"] <= 29,
    "low_resolution": lambda p: p == {"factor": 4},
}


@pytest.mark.parametrize("name", sorted(RANGES))
def test_sampled_labels_in_range_with_severity_and_json_round_trip(name):
    rows = sample_labels([name], 200, _gen(1))
    labels = [row[0] for row in rows]
    assert all(RANGES[name](lab.params) for lab in labels)
    assert all(lab.severity in SEVERITIES for lab in labels)
    if name != "low_resolution":
        assert len({lab.severity for lab in labels}) >= 3  # severity follows the sample's place in its range
    restored = [DegradationLabel.from_dict(json.loads(json.dumps(lab.to_dict()))) for lab in labels]
    assert restored == labels
    if name == "jpeg":
        qualities = {lab.params["quality"] for lab in labels}
        assert min(qualities) == 10 and max(qualities) == 29
        worst = min(labels, key=lambda lab: lab.params["quality"])
        assert worst.severity == "very high"


def test_noise_label_matches_measured_noise():
    img = torch.full((16, 3, 48, 48), 0.5)
    out = degrade(img, ["noise"], _gen(2), quantize=False)
    for i, row in enumerate(out.labels):
        if row[0].params["kind"] == "gaussian":
            measured = (out.lq[i] - img[i]).std().item() * 255
            assert abs(measured - row[0].params["sigma"]) < 0.1 * row[0].params["sigma"]


def test_replaying_labels_reproduces_degrade():
    img = _img(3, 40, 40)
    names = ["rain", "noise", "low_resolution"]
    reference = degrade(img, names, _gen(5))
    g = _gen(5)
    labels = sample_labels(names, 3, g)
    assert torch.equal(apply_labels(img, labels, g).lq, reference.lq)


def test_haze_uses_a_given_depth_map():
    img = _img(2, 32, 32)
    near = degrade(img, ["haze"], _gen(0), depth=torch.full((2, 1, 8, 8), 1.0))
    with_gradient = degrade(img, ["haze"], _gen(0))
    assert not torch.equal(near.lq, with_gradient.lq)


def test_unknown_names_and_bad_inputs_raise_clear_errors():
    img = _img()
    with pytest.raises(ValueError, match=r"unknown degradation 'blurr'.*'motion_blur'"):
        degrade(img, ["blurr"], _gen(0))
    with pytest.raises(ValueError, match=r"sequence of degradation names.*\['noise'\]"):
        degrade(img, "noise", _gen(0))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        degrade(img[:, :1], ["noise"], _gen(0))
    with pytest.raises(ValueError, match="values in \\[0, 1\\]"):
        degrade(img * 2, ["noise"], _gen(0))
    with pytest.raises(ValueError, match="unknown degradation"):
        display_name("fog")


@pytest.mark.parametrize(
    "name,params,message",
    [
        ("jpeg", {"quality": 35}, r"quality = 35 is outside the allowed range \[10, 29\]"),
        ("jpeg", {"quality": 12.5}, r"quality must be an integer"),
        ("motion_blur", {"radius": 12, "sigma": 3, "angle": 0.0}, r"\(12, 3\) is not one of the allowed values"),
        ("motion_blur", {"radius": 10, "sigma": 3, "angle": 120.0}, r"angle = 120.0 is outside .*\[-90.0, 90.0\]"),
        (
            "dark",
            {"method": "gamma correction", "gamma": 0.9},
            r"gamma = 0.9 is outside the allowed range \[0.5, 0.7\]",
        ),
        ("dark", {"method": "invert", "shift": 30}, r"method = 'invert' is not one of"),
        ("noise", {"kind": "gaussian", "sigma": 5.0}, r"sigma = 5.0 is outside the allowed range \[20.0, 50.0\]"),
        ("haze", {"airlight": 0.8, "beta": 2.5}, r"beta = 2.5 is outside the allowed range \[0.6, 1.8\]"),
        ("rain", {"density": 50, "length": 45, "angle": 0}, r"length = 45 is outside the allowed range \[20, 39\]"),
        ("defocus_blur", {"radius": 3}, r"must have keys \['alias_sigma', 'radius'\]"),
        ("low_resolution", {"factor": 2}, r"factor = 2 is not one of the allowed values \[4\]"),
    ],
)
def test_out_of_range_params_raise(name, params, message):
    labels = [[DegradationLabel(name, params, "medium")]]
    with pytest.raises(ValueError, match=message):
        apply_labels(_img(1), labels, _gen(0))


def test_label_validation():
    with pytest.raises(ValueError, match="severity must be one of"):
        DegradationLabel("noise", {}, "extreme")
    with pytest.raises(ValueError, match=r"missing keys \['severity'\]"):
        DegradationLabel.from_dict({"name": "noise", "params": {}})


def test_realesrgan_scale4_shape_determinism_and_grouping():
    img = _img(4, 64, 64)
    params = sample_realesrgan(2, _gen(0)) + sample_realesrgan(2, _gen(1))  # two batch-level draws
    a = realesrgan(img, params, _gen(7))
    b = realesrgan(img, params, _gen(7))
    assert a.shape == (4, 3, 16, 16) and torch.equal(a, b)
    assert torch.equal(a, (a * 255).round() / 255)
    # the group processing equals processing each group alone (with the same generator stream)
    g = _gen(7)
    first = realesrgan(img[:2], params[:2], g)
    second = realesrgan(img[2:], params[2:], g)
    assert torch.equal(torch.cat([first, second]), a)
    for p in params:
        check_realesrgan(p)
        json.dumps(p)
    bad = dict(params[0], jpeg1=10)
    with pytest.raises(ValueError, match=r"jpeg1 = 10 is outside the allowed range \[30, 95\]"):
        check_realesrgan(bad)
    with pytest.raises(ValueError, match="divisible by scale 4"):
        realesrgan(_img(1, 30, 30), params[:1], _gen(0))

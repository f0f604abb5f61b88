"""DepictQA prompt assembly (string for string), records, the synthetic record generator, loss masks."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pytest
import torch

from rar.degradations import DegradationLabel
from rar.lqa.abstractor import Abstractor
from rar.lqa.datasets import SyntheticIQADataset, collate_lqa
from rar.lqa.factory import build_depictqa
from rar.lqa.prompts import (
    COMPARE_QUESTION,
    COMPARE_TASK,
    IDENTIFY_QUESTION,
    IDENTIFY_TASK,
    SINGLE_Q_TAIL,
    Turn,
    build_layout,
    query_layout,
)
from rar.lqa.records import parse_record, read_records, write_records
from rar.lqa.tiny import save_tiny_depictqa

# Assembled by hand from XPixelGroup/DepictQA src/model/depictqa.py (unique_tag=True):
#   get_system:      system_dict[task] + "\n\n" + ""              (PROMPT_START is "" for quality tasks)
#   fuse_vision_iqa: system + seps[1] + "Image: " + sov["img"] | image | ...  with seps = ("   ", " </s> ")
#   _tokenize_conv:  f'{eov}\n\n{seps[1]}USER: {q}\n{seps[0]}ASSISTANT: '  then  answer + "\n" + " </s>"
#   (conversations.py: prompt_base + prompt_quality; conv_vicuna_v1 sep " ", sep2 "</s>")
SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the human's questions. As an AI assistant, you are performing an image "
    "quality assessment task."
)
EXPECTED_IDENTIFY = (
    "<s>" + SYSTEM + "\n\n </s> Image: <Img><image></Img>\n\n </s> USER: What are the primary degradation(s) "
    "observed in the evaluated image? Answer the question using a single word or phrase.\n   ASSISTANT: "
    "Noise, haze\n </s>"
)
EXPECTED_COMPARE = (
    "<s>" + SYSTEM + "\n\n </s> Image A: <Img-A><image></Img-A>\n\n </s> Image B: <Img-B><image></Img-B>"
    "\n\n </s> USER: Which of the two images, Image A or Image B, do you consider to be of better quality? "
    "Answer the question using a single word or phrase.\n   ASSISTANT: Image A\n </s>"
)


def test_identification_prompt_matches_depictqa():
    layout = build_layout(IDENTIFY_TASK, [Turn("human", IDENTIFY_QUESTION + SINGLE_Q_TAIL), Turn("gpt", "Noise, haze")])
    assert layout.render() == EXPECTED_IDENTIFY
    assert layout.image_keys == ("image_A",)
    assert layout.answers == ["Noise, haze\n </s>"]


def test_comparison_prompt_matches_depictqa():
    layout = build_layout(COMPARE_TASK, [Turn("human", COMPARE_QUESTION + SINGLE_Q_TAIL), Turn("gpt", "Image A")])
    assert layout.render() == EXPECTED_COMPARE
    assert layout.image_keys == ("image_A", "image_B")


def test_query_and_multi_turn_layouts():
    query = query_layout(IDENTIFY_TASK, "Q?")
    assert query.render().endswith("</Img>\n\n </s> USER: Q?\n   ASSISTANT: ") and not query.answers
    turns = [Turn("human", "Q1"), Turn("gpt", "A1"), Turn("human", "Q2"), Turn("gpt", "A2")]
    text = build_layout(IDENTIFY_TASK, turns).render()
    assert text.endswith("ASSISTANT: A1\n </s>USER: Q2\n   ASSISTANT: A2\n </s>")  # DepictQA's later turns
    ref = build_layout("quality_compare", turns[:2]).render(image="#")
    assert "\n\n </s> Reference Image: <Img-Reference>#</Img-Reference>\n\n </s> Image A: <Img-A>#" in ref
    with pytest.raises(ValueError, match="task_type"):
        build_layout("quality_other", turns)
    with pytest.raises(ValueError, match="human"):
        build_layout(IDENTIFY_TASK, [Turn("gpt", "x")])


def test_records_round_trip_and_errors(tmp_path):
    obj = {"id": "r1", "image_ref": None, "image_A": "a.png", "image_B": "b.png", "task_type": COMPARE_TASK,
           "conversations": [{"from": "human", "value": "Which?"}, {"from": "gpt", "value": "Image B"}]}
    path = tmp_path / "meta.json"
    path.write_text(json.dumps([obj, {"id": "t", "image_ref": None, "image_A": "c.png", "image_B": None,
                                       "task_type": IDENTIFY_TASK, "query": "What?", "answer": "Noise"}]))
    records = read_records(path)
    assert records[0].image_paths() == ["a.png", "b.png"] and records[1].image_paths() == ["c.png"]
    assert records[1].layout().answers == ["Noise\n </s>"]
    assert read_records(write_records(records, tmp_path / "out.json"))[0] == records[0]
    with pytest.raises(ValueError, match="image_B"):
        parse_record(obj | {"image_B": None}, "x")
    with pytest.raises(ValueError, match="task_type"):
        parse_record(obj | {"task_type": "caption"}, "x")


@pytest.fixture(scope="module")
def tiny_lqa(tmp_path_factory):
    folder = save_tiny_depictqa(tmp_path_factory.mktemp("depictqa"), phrases=["noise", "haze", "dark"])
    return build_depictqa(str(folder / "llm"), Abstractor(64, 16, 1, 4, 128), str(folder / "vision"),
                          image_space="pixel")


def test_loss_mask_covers_only_the_answer_and_terminator(tiny_lqa):
    ident = build_layout(IDENTIFY_TASK, [Turn("human", IDENTIFY_QUESTION + SINGLE_Q_TAIL), Turn("gpt", "Noise, haze")])
    comp = build_layout(COMPARE_TASK, [Turn("human", COMPARE_QUESTION), Turn("gpt", "Image B")])
    tok = tiny_lqa.tokenize([ident, comp])
    tokenizer = tiny_lqa.tokenizer
    assert tok.input_ids[:, 0].tolist() == [tokenizer.bos_token_id] * 2
    assert tok.image_mask.sum(1).tolist() == [16, 32]
    for row, answer in ((0, "Noise, haze"), (1, "Image B")):
        ids = tok.labels[row][tok.labels[row] != -100].tolist()
        assert tokenizer.decode(ids) == answer + "\n </s>"
        assert ids[-1] == tokenizer.eos_token_id
        last = int(tok.attention_mask[row].sum())
        assert (tok.labels[row, last - len(ids) : last] != -100).all()  # the answer is the sequence's tail
    # everything before the answer (system, images, question, separators) carries no loss
    assert (tok.labels[tok.image_mask] == -100).all()
    assert tokenizer.decode(tok.input_ids[0, 1 : 1 + 10].tolist()).startswith("A chat between a curious human")


@dataclass
class _Pair:
    lq: torch.Tensor
    hq: torch.Tensor
    labels: list
    name: str


class _FakeSource(torch.utils.data.Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        hq = torch.rand(3, 16, 16, generator=g) * 0.5
        labels = [DegradationLabel("noise", {}, "low")] + ([DegradationLabel("haze", {}, "high")] if i % 2 else [])
        return _Pair(hq + 0.5, hq, labels, f"img{i}")


def test_synthetic_records_follow_depictqa_templates():
    ds = SyntheticIQADataset(_FakeSource(), p_compare=0.5, p_clean=0.2, p_single=0.5, seed=3)
    samples = [ds[i] for i in range(len(ds))]
    assert [s.id for s in samples[:8]] == [ds[i].id for i in range(8)]  # deterministic
    comps = [s for s in samples if s.layout.task_type == COMPARE_TASK]
    idents = [s for s in samples if s.layout.task_type == IDENTIFY_TASK]
    assert comps and idents
    assert {s.better for s in comps} == {0.0, 1.0}  # both orders
    for s in comps:
        answer = s.layout.answers[0]
        letter = "A" if s.better == 1.0 else "B"
        assert f"Image {letter}" in answer and f"Image {'B' if letter == 'A' else 'A'}" not in answer
        worse = s.images[1] if s.better == 1.0 else s.images[0]
        better = s.images[0] if s.better == 1.0 else s.images[1]
        assert float(worse.mean()) > float(better.mean())  # the LQ (hq + 0.5) is the worse one
    answers = {s.layout.answers[0] for s in idents}
    assert {"Noise\n </s>", "Noise, haze\n </s>"} & answers
    assert all(math.isnan(s.better) for s in idents)
    # ground-truth texts per image (describe's wording; "" for clean; None for blends)
    assert {s.image_texts[0] for s in idents} <= {"noise", "noise, haze", ""}
    for s in comps:
        worse = 1 if s.better == 1.0 else 0
        assert s.image_texts[worse] in ("noise", "noise, haze") and s.image_texts[1 - worse] in ("", None)
    batch = collate_lqa(samples[:6])
    assert batch.images.shape[0] == len(batch.image_texts) == sum(s.images.shape[0] for s in samples[:6])
    assert len(batch) == 6
    with pytest.raises(ValueError, match="p_clean"):
        SyntheticIQADataset(_FakeSource(), p_clean=1.5)

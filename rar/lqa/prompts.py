"""DepictQA's conversation format, reproduced string for string.

Source: XPixelGroup/DepictQA ``src/model/conversations.py`` (``conv_vicuna_v1``, ``system_dict``),
``src/model/utils/__init__.py`` (``VISION_TAGS``) and ``src/model/depictqa.py``
(``get_system``, ``fuse_vision_iqa``, ``_tokenize_conv``, ``tokenize_query``) with
``unique_tag: true`` (their released configs). For a no-reference identification record the
assembled sequence is::

    <s>{system}\\n\\n </s> Image: <Img>[image]</Img>\\n\\n </s> USER: {question}\\n   ASSISTANT: {answer}\\n </s>

and for a comparison record::

    <s>{system}\\n\\n </s> Image A: <Img-A>[A]</Img-A>\\n\\n </s> Image B: <Img-B>[B]</Img-B>\\n\\n </s> USER: ...

DepictQA tokenizes each text piece separately (no special tokens) and splices the image tokens
between them; we do the same. The loss covers only the assistant's answers and their terminator
``"\\n </s>"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SYSTEM_BASE = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
PROMPT_QUALITY = " As an AI assistant, you are performing an image quality assessment task."
PROMPT_REF = " A high-quality Reference Image is provided to assist the evaluation."

ROLES = ("USER", "ASSISTANT")
SEP, SEP2 = " ", "</s>"  # conv_vicuna_v1.sep / .sep2
SEPS = (f" {SEP} ", f" {SEP2} ")  # DepictQA's self.seps: ("   ", " </s> ")

SOV = {"img": "<Img>", "ref": "<Img-Reference>", "A": "<Img-A>", "B": "<Img-B>"}
EOV = {"img": "</Img>", "ref": "</Img-Reference>", "A": "</Img-A>", "B": "</Img-B>"}
VISION_TAGS = tuple(SOV.values()) + tuple(EOV.values())

SYSTEMS = {
    "quality_single_A": SYSTEM_BASE + PROMPT_QUALITY + PROMPT_REF,
    "quality_single_A_noref": SYSTEM_BASE + PROMPT_QUALITY,
    "quality_single_B": SYSTEM_BASE + PROMPT_QUALITY + PROMPT_REF,
    "quality_single_B_noref": SYSTEM_BASE + PROMPT_QUALITY,
    "quality_compare": SYSTEM_BASE + PROMPT_QUALITY + PROMPT_REF,
    "quality_compare_noref": SYSTEM_BASE + PROMPT_QUALITY,
}
TASK_TYPES = tuple(SYSTEMS)
IDENTIFY_TASK = "quality_single_A_noref"
COMPARE_TASK = "quality_compare_noref"

# build_datasets/scripts/constants_A_qr.py and gen_json_refAB_brief.py
SINGLE_Q_TAIL = " Answer the question using a single word or phrase."
BRIEF_GOOD = "The quality of the evaluated image is quite good without any distortion."
IDENTIFY_QUESTION = "What are the primary degradation(s) observed in the evaluated image?"
COMPARE_QUESTION = "Which of the two images, Image A or Image B, do you consider to be of better quality?"

# (question, brief answer with "{}" for the degradation text); a subset of DepictQA's qr_list
IDENTIFY_TEMPLATES: tuple[tuple[str, str], ...] = (
    (IDENTIFY_QUESTION, "The primary degradation in the evaluated image is {}."),
    ("What distortion(s) are most apparent in the evaluated image?",
     "The most apparent distortion in the evaluated image is {}."),
    ("Identify the chief degradation(s) in the evaluated image.",
     "The chief degradation in the evaluated image is {}."),
    ("Pinpoint the foremost image quality issue(s) in the evaluated image.", "The foremost image quality issue is {}."),
    ("What distortion(s) stand out in the evaluated image?", "The distortion that stands out is {}."),
    ("What distortion(s) are most prominent in the evaluated image?", "The most prominent distortion is {}."),
    ("What critical quality degradation(s) are present in the evaluated image?",
     "The critical quality degradation presented is {}."),
    ("Highlight the most significant distortion(s) in the evaluated image.",
     "The most significant distortion in the evaluated image is {}."),
)
# (question, brief answer with "{}" for "A"/"B"); a subset of DepictQA's brief_qr_list
COMPARE_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("Which image do you believe has better overall quality: Image A or Image B?",
     "I believe Image {} has better overall quality."),
    ("Determine which image exhibits higher quality between Image A and Image B.",
     "In my assessment, Image {} exhibits higher quality."),
    ("Compare the general quality of Image A and Image B, and state your preference.",
     "My preference leans towards Image {} to have better general quality."),
    ("In your opinion, which image demonstrates superior quality: Image A or Image B?",
     "In my opinion, Image {} demonstrates superior quality."),
    (COMPARE_QUESTION, "I consider Image {} to be of better quality."),
    ("Evaluate the quality of Image A and Image B, and decide which one is superior.",
     "I conclude that Image {} is superior."),
    ("Determine which image, Image A or Image B, you perceive to have better quality.",
     "I determine that Image {} has better quality."),
    ("Which image stands out to you as having better quality: Image A or Image B?",
     "Image {} stands out as the superior choice in terms of quality."),
)


@dataclass(frozen=True)
class Turn:
    """One conversation turn: ``role`` is ``"human"`` or ``"gpt"`` (DepictQA's ``from``)."""

    role: str
    text: str


@dataclass(frozen=True)
class PromptLayout:
    """A DepictQA sequence as text pieces around image slots.

    Attributes:
        task_type: one of :data:`TASK_TYPES`.
        image_keys: record fields filling the image slots, in order (e.g. ``("image_A", "image_B")``).
        segments: ``len(image_keys)`` text pieces; image ``i`` follows ``segments[i]``.
        pieces: text after the last image as ``(text, is_answer)``; answers carry the loss.
    """

    task_type: str
    image_keys: tuple[str, ...]
    segments: tuple[str, ...]
    pieces: tuple[tuple[str, bool], ...]

    def render(self, image: str = "<image>", bos: str = "<s>") -> str:
        """The whole sequence as one string, ``image`` standing in for each image's tokens."""
        out = bos
        for seg in self.segments:
            out += seg + image
        return out + "".join(text for text, _ in self.pieces)

    @property
    def answers(self) -> list[str]:
        return [text for text, is_answer in self.pieces if is_answer]


def _check_task(task_type: str) -> None:
    if task_type not in SYSTEMS:
        raise ValueError(f"unknown DepictQA task_type {task_type!r}; expected one of {TASK_TYPES}")


def image_layout(task_type: str) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """(image keys, text segments before each image, closing tag) of ``fuse_vision_iqa``."""
    _check_task(task_type)
    system = SYSTEMS[task_type] + "\n\n"  # get_system: PROMPT_START is "" for quality tasks
    no_ref = task_type.endswith("_noref")
    if task_type.startswith("quality_compare"):
        keys = ("image_A", "image_B") if no_ref else ("image_ref", "image_A", "image_B")
        tags = ("A", "B") if no_ref else ("ref", "A", "B")
        names = {"ref": "Reference Image: ", "A": "Image A: ", "B": "Image B: "}
        closing = EOV["B"]
    else:
        single = "image_A" if "_single_A" in task_type else "image_B"
        keys = (single,) if no_ref else ("image_ref", single)
        tags = ("img",) if no_ref else ("ref", "img")
        names = {"ref": "Reference Image: ", "img": "Image: "}
        closing = EOV["img"]
    segments = []
    for i, tag in enumerate(tags):
        head = system if i == 0 else EOV[tags[i - 1]] + "\n\n"
        segments.append(head + SEPS[1] + names[tag] + SOV[tag])
    return keys, tuple(segments), closing


def build_layout(task_type: str, turns: Sequence[Turn]) -> PromptLayout:
    """The training sequence of a record (``_tokenize_conv``): human/gpt turns alternate, human first."""
    keys, segments, closing = image_layout(task_type)
    if not turns or turns[0].role != "human":
        raise ValueError(f"a DepictQA conversation starts with a human turn, got {[t.role for t in turns]}")
    pieces: list[tuple[str, bool]] = []
    for i, turn in enumerate(turns):
        expected = "human" if i % 2 == 0 else "gpt"
        if turn.role != expected:
            raise ValueError(f"turn {i} must come from {expected!r}, got {turn.role!r}")
        if i == 0:
            pieces.append((f"{closing}\n\n{SEPS[1]}{ROLES[0]}: {turn.text}\n{SEPS[0]}{ROLES[1]}: ", False))
        elif turn.role == "human":
            pieces.append((f"{ROLES[0]}: {turn.text}\n{SEPS[0]}{ROLES[1]}: ", False))
        else:
            pieces.append((turn.text + "\n" + SEPS[1].rstrip(), True))
    return PromptLayout(task_type, keys, segments, tuple(pieces))


def query_layout(task_type: str, question: str) -> PromptLayout:
    """The inference prompt of ``tokenize_query``: ends with ``"ASSISTANT: "``, no answer."""
    return build_layout(task_type, [Turn("human", question)])


def strip_terminator(text: str) -> str:
    """An answer piece without DepictQA's terminator: ``"Noise\\n </s>"`` → ``"Noise"``."""
    return text.removesuffix(SEPS[1].rstrip()).rstrip("\n")


def answer_text(answer: str) -> str:
    """An answer as it is trained: followed by DepictQA's terminator ``"\\n </s>"``."""
    return answer + "\n" + SEPS[1].rstrip()


def identification_answer(degradations: str) -> str:
    """Single-phrase identification answer: DepictQA capitalises the first letter, "None" if clean."""
    return degradations[0].upper() + degradations[1:] if degradations else "None"

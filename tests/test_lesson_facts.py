"""What the lessons say about the course, the lecture videos and the Imagenette leaderboard, checked against sources.

The sources are written out here, so the checks don't depend on the text they check:

- the course's notebooks (github.com/fastai/course-v3, nbs/dl2, as of commit fcd528f of 2021-01-06, which only moved
  the links to course19.fast.ai): every "Jump_to lesson N video" link of 05_anneal, 05b_early_stopping,
  06_cuda_cnn_hooks_init, 07a, 08, 09, 09b, 09c, 10b, 10c and 11. 10_augmentation's links are read from its jupytext
  copy (huangyingw/course-v3, nbs/dl2/10_augmentation.py). In 09_optimizers the t=5115 link follows the momentum
  code but reads "for discussion about weight decay interaction with batch normalisation".
- 10c_fp16: `MixedPrecision(loss_scale=512, flat_master=False)`, then the dynamic version
  `MixedPrecision(loss_scale=512, flat_master=False, dynamic=True, max_loss_scale=2.**24, div_factor=2., scale_wait=500)`,
  which starts at `max_loss_scale`.
- the Imagenette README (github.com/fastai/imagenette) at commit 6cab116 (2020-10-08), the 128 px / 5 epochs row:
  `fastai2 train_imagenette.py 2020-10 (mini net)` | 85.77% | 5, mean, linking pete88b/data-science's
  train-imagenette-mininet.ipynb: an XResNet of SEResNeXtBlocks, layers [1, 1, 1, 1], Mish, Ranger, wd 1e-4, bs 32.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import matplotlib
import nbformat
import pytest
import torch

matplotlib.use("Agg")

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
TAUGHT = ["07a_lsuv", "08_data_block", "09_optimizers", "09b_learner", "09c_add_progress_bar", "10_augmentation",
          "10b_mixup_label_smoothing", "10c_mixed_precision", "11_train_imagenette"]  # 11b: beyond the course

# (lesson, t) -> the course notebook's section that links it
COURSE_MOMENTS = {
    (9, 7202): "05 Annealing: Recorder, ParamScheduler", (9, 7730): "05 Annealing: the schedules",
    (10, 3230): "05b Better callback cancellation", (10, 3545): "05b LR Finder", (10, 4836): "06 Hook class",
    (10, 4972): "06 A Hooks class", (10, 5233): "06 Other statistics", (10, 5582): "06 histograms",
    (11, 235): "07a LSUV", (11, 600): "08 Data block API foundations", (11, 1325): "08 Get images",
    (11, 1728): "08 Prepare for modeling", (11, 2175): "08 Split validation set", (11, 2368): "08 Labeling",
    (11, 3044): "08 Transform to tensor", (11, 3226): "08 DataBunch", (11, 3360): "08 Model",
    (11, 3917): "09 Imagenette data", (11, 4074): "09 Refining the optimizer", (11, 4623): "09 Weight decay",
    (11, 4872): "09 With momentum", (11, 5115): "09 weight decay and batch normalisation",
    (11, 5487): "09 Momentum experiments", (11, 5889): "09 Adam and friends", (11, 6038): "09 LAMB",
    (11, 6571): "09b Imagenette data", (11, 6743): "09c Imagenette data", (11, 6882): "10 PIL transforms",
    (11, 7092): "10 Flip", (11, 7422): "10 Random crop", (11, 7629): "10 RandomResizeCrop",
    (11, 7751): "10 Perspective warping", (11, 7971): "10 Faster tensor creation",
    (11, 8029): "10 Batch data augmentation", (12, 65): "09b, revisited", (12, 226): "10b Mixup",
    (12, 490): "10b Implementation", (12, 1121): "10b Label smoothing", (12, 1318): "10c A little bit of theory",
    (12, 1425): "10c Converting the model to FP16", (12, 1452): "10c The main Callback",
    (12, 1472): "10c Dynamic loss scaling", (12, 1681): "11 Imagenet(te) training", (12, 1701): "11 XResNet",
    (12, 2515): "11 Train", (12, 2711): "11 cnn_learner",
}
VIDEO = re.compile(r"course19\.fast\.ai/videos/\?lesson=(\d+)(?:&t=(\d+))?")
HEADING = re.compile(r"^(#{2,3}) (.+)$", re.M)


def notebook(name: str) -> nbformat.NotebookNode:
    return nbformat.read(LESSONS / f"{name}.ipynb", as_version=4)


def markdown(name: str) -> str:
    return "\n\n".join(c.source for c in notebook(name).cells if c.cell_type == "markdown")


def code_cell(name: str, text: str) -> str:
    """The source of the one code cell of lesson `name` that contains `text`."""
    hits = [c.source for c in notebook(name).cells if c.cell_type == "code" and text in c.source]
    assert len(hits) == 1, f"{name}: {len(hits)} code cells contain {text!r}"
    return hits[0]


def sections(name: str) -> dict[str, str]:
    """Each level-2 or level-3 heading before the exercises -> its text, up to the next heading in the same cell."""
    out = {}
    for cell in (c for c in notebook(name).cells if c.cell_type == "markdown"):
        marks = list(HEADING.finditer(cell.source))
        for m, nxt in zip(marks, marks[1:] + [None]):
            title = m.group(2)
            if title.startswith("Exercise"):
                return out
            out[title] = cell.source[m.end():nxt.start() if nxt else None]
    return out


def moments(text: str) -> set[tuple[int, int]]:
    return {(int(lesson), int(t)) for lesson, t in VIDEO.findall(text) if t}


@pytest.mark.parametrize("name", TAUGHT)
def test_every_section_links_the_lecture_or_says_it_is_not_in_it(name):
    missing = [title for title, text in sections(name).items()
               if not VIDEO.search(text) and "not in the lecture" not in text.lower()]
    assert not missing, f"{name}: sections with neither a lecture link nor 'Not in the lecture': {missing}"


@pytest.mark.parametrize("name", TAUGHT + ["11b_data_parallel"])
def test_every_video_time_is_one_the_course_notebooks_link(name):
    unknown = moments(markdown(name)) - set(COURSE_MOMENTS)
    assert not unknown, f"{name} links moments no course notebook links: {sorted(unknown)}"


def test_readme_video_times_are_ones_the_course_notebooks_link():
    assert moments((LESSONS / "README.md").read_text()) <= set(COURSE_MOMENTS)


@pytest.mark.parametrize("name", TAUGHT)
def test_a_link_that_shows_a_time_shows_its_own(name):
    for lesson, shown, lesson2, t in re.findall(
            r"lesson (\d+) at ([\d:]+)\]\(https://course19\.fast\.ai/videos/\?lesson=(\d+)&t=(\d+)\)", markdown(name)):
        seconds = sum(int(v) * 60 ** i for i, v in enumerate(reversed(shown.split(":"))))
        assert (lesson, seconds) == (lesson2, int(t)), f"{name}: 'lesson {lesson} at {shown}' links lesson={lesson2}&t={t}"


# the course notebook 10_augmentation's own section links
LESSON_10 = {
    "Look at the data": {6882}, "Resizing is already a choice": {6882}, "Bytes are cheap, floats are not": {7971},
    "Random transforms on PIL images": {7092}, "Crops: the augmentation that matters most": {7422, 7629},
    "Perspective warping": {7751}, "On the GPU, a batch at a time": {8029}, "How the sampling grid is built": {8029},
    "Rotation: an inverse map, with an aspect fix": {8029}, "Padding: zeros, border or reflection": {8029},
}


def test_lesson_10_sections_link_the_course_notebooks_moments():
    found = {title: {t for _, t in moments(text)} for title, text in sections("10_augmentation").items()}
    assert {title: found.get(title) for title in LESSON_10} == LESSON_10
    assert 6800 not in {t for _, t in moments(markdown("10_augmentation"))}  # the old guess


def test_lesson_09_links_5115_to_weight_decay_and_batchnorm_not_to_momentum():
    found = sections("09_optimizers")
    assert (11, 5115) in moments(found["Weight decay or L2 regularisation?"])
    assert (11, 5115) not in moments(found["Momentum: the stateful optimizer and its statistics"])


def test_10c_gives_both_of_the_courses_loss_scales():
    text = markdown("10c_mixed_precision")
    assert "loss_scale=512" in text and "max_loss_scale=2.**24" in text and "scale_wait=500" in text
    assert not re.search(r"course\s+started\s+at\s+512", text)


def test_10c_float16_band_reaches_its_largest_finite_value():
    cell = code_cell("10c_mixed_precision", "axvspan")
    assert "min(top, 2)" not in cell and "ax.axvspan(normal, top," in cell
    assert torch.finfo(torch.float16).max == 65504 and "fi.max" in cell  # top is log10 of finfo's max


def test_11_describes_the_leaderboard_entry_as_its_row_and_notebook_say():
    text = markdown("11_train_imagenette")
    for fact in ["85.77", "mini net", "SEResNeXtBlock", "layers=[1, 1, 1, 1]", "Mish", "Ranger", "1e-4",
                 "batch size **32**", "6cab1169fbf9bfc2cf9cb56e9d10532dc8fa0d51", "pete88b/data-science", "87.43"]:
        assert fact in text, fact
    assert "**XResNet50 with Mish**" not in text and "in place of its default xresnet50" in text  # not the model
    readme = (LESSONS / "README.md").read_text()
    assert "XResNet with Mish, Ranger" not in readme and '"mini net"' in readme and "87.43" in readme


def cli_help(capsys) -> str:
    from teachkit.train import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--help"])
    return capsys.readouterr().out


def test_the_readme_and_the_cli_help_say_what_the_85_77_entry_was(capsys):
    """The same facts as lesson 11 (the module docstring): a "mini net", until March 2021; 87.43 % since."""
    for where, text in [("README.md", (LESSONS.parent / "README.md").read_text()), ("--help", cli_help(capsys))]:
        text = " ".join(text.split())
        at = text.index("85.77")
        assert '"mini net"' in text[at:at + 300] and "2021" in text[at:at + 300] and "87.43" in text, where
        for wrong in ["XResNet50 with Mish", "an XResNet with the recipe", "leaderboard for 128 px and 5 epochs is"]:
            assert wrong not in text, (where, wrong)


@pytest.mark.parametrize("name, facts", [
    ("07a_lsuv", ["the Kaiming gain", "a=0.1", "a=leak"]),
    ("09_optimizers", ["`zero_grad`", "`None`", "when the weights decay", "[adam_step, weight_decay]"]),
    ("10_augmentation", ["`align_corners`", "torch.linspace(-1, 1, W)", "align_corners=True"]),
])
def test_departures_from_the_course_are_stated(name, facts):
    text = markdown(name)
    assert "Where teachkit departs from the course" in text
    for fact in facts:
        assert fact in text, f"{name}: {fact!r}"


def test_07a_share_near_zero_panels_come_from_plot_mins_itself():
    """The headroom above 1 lives in `plot_mins` (tests/test_hooks.py), not in a patch in the lesson's cell."""
    source = code_cell("07a_lsuv", "plot_mins")
    assert source.count("plot_mins(ncols=4)") == 2 and "ylim" not in source and "def " not in source


def test_09b_lr_finder_plot_shows_the_explosion_and_marks_the_chosen_lr():
    import matplotlib.pyplot as plt
    nb = notebook("09b_learner")
    imports = next(c.source for c in nb.cells if c.cell_type == "code" and "from teachkit.callbacks import" in c.source)
    scope: dict = {}
    exec(imports, scope)
    exec(code_cell("09b_learner", "LRFinder(max_iter"), scope)  # it asserts the bottom and the blow-up itself
    ax = scope["ax"]
    marks = [line.get_xdata()[0] for line in ax.lines if len(set(line.get_xdata())) == 1]  # vertical lines
    assert scope["chosen"] in marks and max(ax.lines[0].get_xdata()) == scope["lrs"][-1]  # drawn to where it stopped
    assert scope["smoothed"][-1] > 2 * min(scope["smoothed"])
    plt.close("all")

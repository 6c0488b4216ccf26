"""The four panels in a real JupyterLab in headless Chromium: run the notebook, click, see the page change.

Every panel is photographed into build/screenshots/ (look at them: readouts beside sliders, labels beside controls).
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from .jupyter import jupyter_lab

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
TIMEOUT_MS = 180_000  # the first kernel start and import of torch can be slow on a busy 2-core machine

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                 "(`make test` installs it with apt when it can)")]

FIT = "learn.fit(20, cbs=panel.monitor)"  # run by its test, once the page is up: the page must watch it run
CELLS = [
    "import torch\nfrom teachkit.models import get_cnn_model, init_cnn\n"
    "from teachkit.widgets import augment_panel, lsuv_panel, optimizer_panel, training_panel\n"
    "torch.manual_seed(0)\ntorch.set_num_threads(1)  # the machine is shared: two threads fighting for a busy core crawl",
    "model = init_cnn(get_cnn_model(3, 10, [8, 16], leak=0.1, sub=0.4, maxv=6.0))\n"
    "lsuv_panel(model, torch.randn(16, 3, 32, 32))",
    "optimizer_panel('ill-conditioned')",
    "augment_panel(n=4)",
    "from teachkit.learner import Learner\nfrom teachkit.optim import adam_opt\nfrom teachkit.toy import toy_databunch\n"
    "learn = Learner(init_cnn(get_cnn_model(3, 4, [16, 32], leak=0.1, sub=0.4, maxv=6.0)),\n"
    "                toy_databunch('images', n_train=1024, n_valid=128, bs=32, size=16), lr=3e-3, opt_func=adam_opt)\n"
    "panel = training_panel(every=0.5, max_share=0.5)\npanel",
]


def write_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """JupyterLab with the panels notebook open and every cell run; the server stops afterwards, always."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    root.mkdir()
    write_notebook(root / "panels.ipynb")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with jupyter_lab(root, tmp) as lab, playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(lab.notebook_url("panels.ipynb"))
            page.wait_for_function("window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel?.status === 'idle'")
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            for panel in ("lsuv", "optimizer", "augment", "training"):
                page.locator(f".tk-{panel}-panel img").wait_for()
            page.screenshot(path=str(SHOTS / "notebook.png"))
            yield page
        finally:
            browser.close()


def shoot(page, panel: str, name: str) -> None:
    loc = page.locator(f".tk-{panel}-panel")
    loc.scroll_into_view_if_needed()
    loc.screenshot(path=str(SHOTS / f"{name}.png"))


def img_src(page, panel: str) -> str:
    return page.locator(f".tk-{panel}-panel img").first.get_attribute("src")


def wait_changed(page, selector: str, prop: str, old: str) -> None:
    """Wait until the element's `prop` (e.g. 'src', 'innerText') differs from `old`: the page really updated."""
    page.wait_for_function("([sel, prop, old]) => document.querySelector(sel)[prop] !== old", arg=[selector, prop, old])


def test_lsuv_step_changes_the_table(page):
    table = ".tk-lsuv-panel .tk-lsuv-table"
    before = page.locator(table).inner_text()
    assert "tuning" in before
    plot = img_src(page, "lsuv")
    shoot(page, "lsuv", "lsuv-before")
    page.locator(".tk-lsuv-panel").get_by_role("button", name="Step").click()
    wait_changed(page, table, "innerText", before)
    wait_changed(page, ".tk-lsuv-panel img", "src", plot)
    shoot(page, "lsuv", "lsuv-after-step")


def test_optimizer_lr_slider_changes_the_plot(page):
    before = img_src(page, "optimizer")
    shoot(page, "optimizer", "optimizer-before")
    handle = page.locator(".tk-optimizer-panel .tk-opt-lr .noUi-handle")
    handle.focus()
    for _ in range(5):
        handle.press("ArrowRight")
    wait_changed(page, ".tk-optimizer-panel img", "src", before)
    shoot(page, "optimizer", "optimizer-after-lr")


def test_augment_resample_shows_new_images(page):
    before = img_src(page, "augment")
    shoot(page, "augment", "augment-before")
    page.locator(".tk-augment-panel").get_by_role("button", name="Resample").click()
    wait_changed(page, ".tk-augment-panel img", "src", before)
    shoot(page, "augment", "augment-after-resample")


def test_training_panel_picture_changes_while_fit_runs(page):
    shoot(page, "training", "training-before")
    first = img_src(page, "training")
    kernel = "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
    page.wait_for_function(f"{kernel}.status === 'idle'")  # the other tests' clicks are done
    page.evaluate(f"window._tkSeen = new Set(); {kernel}.requestExecute({{code: {FIT!r}}})")  # as a cell would
    # three different pictures seen while the kernel is busy with fit: the panel is live, not drawn at the end
    page.wait_for_function(f"""([first]) => {{
        const src = document.querySelector('.tk-training-panel img').src;
        if ({kernel}.status === 'busy' && src !== first) window._tkSeen.add(src);
        return window._tkSeen.size >= 3;
    }}""", arg=[first], polling=100)
    shoot(page, "training", "training-during-fit")
    page.wait_for_function(f"{kernel}.status === 'idle'")
    assert "valid loss" in page.locator(".tk-training-panel").inner_text()
    shoot(page, "training", "training-after-fit")

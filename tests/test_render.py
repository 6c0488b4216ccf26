"""teachkit.render: a Blit draws its still part once per scene and is never stale; PNGs side by side."""
import io

from PIL import Image

from teachkit.render import Blit, canvas_png, fig_to_png, fixed_figure, new_figure

PNG = b"\x89PNG\r\n\x1a\n"


def blit_with_a_moving_dot():
    fig = fixed_figure(3, 2, 50, left=0.1, right=0.9, bottom=0.1, top=0.9)
    ax = fig.subplots()
    dot = ax.plot([], [], "o", animated=True)[0]
    scenes = []

    def set_scene(title):
        scenes.append(title)
        ax.set_title(title)

    return Blit(fig), dot, scenes, set_scene


def test_the_scene_is_drawn_once_per_key():
    blit, dot, scenes, set_scene = blit_with_a_moving_dot()
    for key in ["a", "a", "b", "b", "a"]:
        blit.draw(key, lambda: set_scene(key), [dot])
    assert scenes == ["a", "b", "a"]


def test_a_blitted_frame_equals_a_fresh_full_draw():
    blit, dot, _, set_scene = blit_with_a_moving_dot()
    blit.draw("a", lambda: set_scene("a"), [dot])
    dot.set_data([0.3], [0.7])
    blit.draw("a", lambda: set_scene("a"), [dot])  # restored background, dot drawn over it
    fast = canvas_png(blit.fig)
    fresh, fresh_dot, _, fresh_scene = blit_with_a_moving_dot()
    fresh_dot.set_data([0.3], [0.7])
    fresh.draw("a", lambda: fresh_scene("a"), [fresh_dot])
    assert fast == canvas_png(fresh.fig)


def test_a_failed_scene_is_not_kept():
    blit, dot, scenes, set_scene = blit_with_a_moving_dot()

    def broken():
        raise RuntimeError("boom")

    try:
        blit.draw("a", broken, [dot])
    except RuntimeError:
        pass
    blit.draw("a", lambda: set_scene("a"), [dot])
    assert scenes == ["a"]


def test_canvas_png_puts_figures_side_by_side():
    figs = [fixed_figure(w, 2, 50) for w in (2, 3)]
    for f in figs:
        f.canvas.draw()
    png = canvas_png(*figs)
    assert png.startswith(PNG) and Image.open(io.BytesIO(png)).size == (250, 100)


def test_one_off_figure_to_png():
    fig = new_figure(2, 1, 50)
    fig.subplots().plot([0, 1])
    assert fig_to_png(fig).startswith(PNG)

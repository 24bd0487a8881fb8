"""`zoo serve [CKPT_OR_NAME ...] [--host 127.0.0.1] [--port 7860]`: the Gradio page.

    zoo serve cnn-digits runs/names_rnn/<stamp>/checkpoints/best.ckpt

The page has a box to open any checkpoint path or pretrained name and one tab per kind of model
that is open (zoo/cli/serve/models.py says which kind a model is and does the work). Each tab has
a menu of the open models of its kind and shows the picked model's card and metrics; its inputs
and outputs are built once and every action reads the menu, so opening a model never rebuilds
the page. A bad path or a corrupt checkpoint shows a message under the box; the server goes on.

Nothing leaves the machine: the server binds 127.0.0.1 unless --host says otherwise, Gradio's
analytics and Hugging Face's telemetry are off before Gradio is imported, server-side rendering
(a Node process) is off, and Gradio 6 serves its fonts and scripts itself.
tests/test_serve.py records every request the page makes in a real browser, and every connection
the server tries through a proxy, and checks that.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from zoo.cli.serve.models import (
    KINDS,
    Loaded,
    Shelf,
    card_markdown,
    classify_image,
    classify_text,
    feature_fields,
    generate_text,
    interpolation,
    predict_rows,
    reconstructions,
    samples,
)
from zoo.errors import ZooError

OFFLINE_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_SSR_MODE": "False"}


def cmd_serve(args: argparse.Namespace) -> int:
    import importlib.util

    if importlib.util.find_spec("gradio") is None:
        raise ZooError("zoo serve needs Gradio: pip install 'zoo[serve]' (or pip install 'gradio>=6,<7')")
    check_address(args.host, args.port)  # before the models load and Gradio starts: a bad address fails at once
    shelf = Shelf()
    for name in args.models:  # a model named on the command line must open, or nothing starts
        shelf.open(name)
    serve(shelf, host=args.host, port=args.port)
    return 0


def check_address(host: str, port: int) -> None:
    """Raise ZooError unless this process can listen on host:port now (the port in range and free)."""
    import socket

    if not 1 <= port <= 65535:
        raise ZooError(f"--port must be between 1 and 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no obstacle
            probe.bind(infos[0][4])
    except OSError as e:
        raise ZooError(f"Cannot serve on {host}:{port} ({e.strerror or e}); pick another --port or --host") from None


def serve(shelf: Shelf, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Start the page for the models on `shelf` and serve it until Ctrl-C."""
    os.environ.update(OFFLINE_ENV)  # before Gradio is imported
    page = build_page(shelf)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"zoo serve: listening on {host}: anyone who reaches this machine can open files on it by path")
    print(f"zoo serve: http://{host}:{port} (Ctrl-C to stop)", flush=True)
    try:
        page.queue().launch(server_name=host, server_port=port, ssr_mode=False, share=False, inbrowser=False,
                            quiet=True, show_error=True, footer_links=["api", "settings"])
    except OSError as e:
        raise ZooError(f"Cannot serve on {host}:{port} ({str(e).splitlines()[0]}); pick another --port") from None


def build_page(shelf: Shelf) -> Any:
    """Return the Gradio Blocks of the page: the open box, then one tab per kind of model."""
    import gradio as gr

    from zoo.cli.index import load_index

    pretrained = sorted(load_index()["pretrained"])
    # delete_cache: the images handed to the browser are files in Gradio's cache; drop those older than a day
    with gr.Blocks(title="zoo serve", analytics_enabled=False, delete_cache=(3600, 86400)) as page:
        gr.Markdown("## zoo: play with trained models")
        with gr.Row(equal_height=True):
            box = gr.Dropdown(choices=pretrained, value=None, allow_custom_value=True, scale=5, elem_id="open-box",
                              label="Open a checkpoint (.ckpt, .safetensors) or a pretrained name")
            open_button = gr.Button("Open", variant="primary", scale=1, elem_id="open-button")
        status = gr.Markdown(elem_id="open-status")
        tabs, pickers = {}, {}
        with gr.Tabs() as tab_set:
            for kind, label in KINDS.items():
                names = shelf.names(kind)
                with gr.Tab(label, id=kind, visible=bool(names), elem_id=f"tab-{kind}") as tab:
                    picker = gr.Dropdown(choices=names, value=names[0] if names else None, label="model",
                                         elem_id=f"{kind}-model")
                    show, shown = TABS[kind](shelf, picker, names[0] if names else None)
                picker.change(show, picker, shown)  # (each tab is built for its first model already)
                tabs[kind], pickers[kind] = tab, picker

        def layout(current: dict[str, str | None], selected: str | None = None) -> list[Any]:
            """Return the updates of every tab (shown when it has models) and of its model menu."""
            out: list[Any] = [gr.Tabs(selected=selected) if selected else gr.skip()]
            for kind in KINDS:
                names = shelf.names(kind)
                value = current.get(kind) if current.get(kind) in names else (names[0] if names else None)
                out += [gr.Tab(visible=bool(names)), gr.Dropdown(choices=names, value=value)]
            return out

        outputs = [tab_set, *[c for kind in KINDS for c in (tabs[kind], pickers[kind])]]

        def on_open(name: str, *current: str | None) -> list[Any]:
            try:
                loaded = shelf.open(name)
            except ZooError as e:
                return [f"**error:** {e}", *[gr.skip()] * len(outputs)]
            except Exception as e:  # noqa: BLE001 - whatever the file holds, the server goes on
                first = (str(e).splitlines() or [""])[0][:300]
                return [f"**error:** cannot open {name}: {type(e).__name__}: {first}", *[gr.skip()] * len(outputs)]
            chosen = dict(zip(KINDS, current)) | {loaded.kind: loaded.name}
            return [f"Opened **{loaded.name}** in the {KINDS[loaded.kind]} tab.", *layout(chosen, loaded.kind)]

        open_button.click(on_open, [box, *pickers.values()], [status, *outputs])
        page.load(lambda *current: layout(dict(zip(KINDS, current))), list(pickers.values()), outputs)
    return page


def picked(shelf: Shelf, name: str | None) -> Loaded:
    """Return the model a tab's menu names, or stop the request with a message."""
    import gradio as gr

    m = shelf.get(name)
    if m is None:
        raise gr.Error("Open a model of this kind first")
    return m


def action(fn: Callable[..., Any], shelf: Shelf, name: str | None, *args: Any) -> Any:
    """Run a model action on the picked model; a ZooError becomes a message on the page."""
    import gradio as gr

    try:
        return fn(picked(shelf, name), *args)
    except ZooError as e:
        raise gr.Error(str(e)) from None


def card(shelf: Shelf, name: str | None) -> str:
    """Return the Markdown card of the picked model ('' when none is picked)."""
    m = shelf.get(name)
    return card_markdown(m) if m else ""


# -- one builder per kind of tab: it makes the tab's inputs and outputs once, wires them to the model
# its menu picks, and returns (what a new pick does, the components that changes) ----------------------

Shown = tuple[Callable[[str | None], list[Any]], list[Any]]


def image_tab(shelf: Shelf, picker: Any, first: str | None) -> Shown:
    import gradio as gr

    card_md = gr.Markdown(card(shelf, first), elem_id="image-card")
    with gr.Row():
        # a fixed size: the drawing board measures its box once, when it first appears
        pad = gr.Sketchpad(label="draw (pick the brush)", type="numpy", image_mode="RGBA", canvas_size=(280, 280),
                           width=420, height=420, elem_id="image-pad")
        with gr.Column():
            probabilities = gr.Label(num_top_classes=10, label="class probabilities", elem_id="image-label")
            upload = gr.Image(label="or upload an image", type="numpy", sources=["upload", "clipboard"], height=200,
                              elem_id="image-upload")

    def classify(name: str | None, value: Any) -> Any:
        composite = value.get("composite") if isinstance(value, dict) else value
        if composite is None or composite.min() == composite.max():  # a cleared canvas
            return None
        return action(classify_image, shelf, name, value)

    pad.change(classify, [picker, pad], probabilities)
    upload.change(classify, [picker, upload], probabilities)
    return (lambda name: [card(shelf, name), None]), [card_md, probabilities]


def lm_tab(shelf: Shelf, picker: Any, first: str | None) -> Shown:
    import gradio as gr

    m0 = shelf.get(first)
    vocab, context = (m0.model.spec.vocab_size, m0.model.spec.input_shape[0]) if m0 else (100, 64)
    card_md = gr.Markdown(card(shelf, first), elem_id="lm-card")
    prompt = gr.Textbox(label="prompt (may be empty)", elem_id="lm-prompt")
    with gr.Row():
        temperature = gr.Slider(0, 2, value=0.8, step=0.05, label="temperature (0: greedy)")
        top_k = gr.Slider(0, vocab, value=0, step=1, label="top-k (0: every token)")
        n = gr.Slider(1, 20, value=8, step=1, label="samples")
        max_new = gr.Slider(1, context, value=min(64, context), step=1, label="max new tokens")
        seed = gr.Number(0, precision=0, label="seed")
    button = gr.Button("Generate", variant="primary", elem_id="lm-generate")
    out = gr.Textbox(lines=8, label="samples", elem_id="lm-output")
    inputs = [picker, prompt, n, temperature, top_k, max_new, seed]
    for event in (button.click, prompt.submit):
        event(lambda *a: action(generate_text, shelf, *a), inputs, out)

    def show(name: str | None) -> list[Any]:
        m = shelf.get(name)
        if m is None:
            return [card(shelf, name), gr.skip(), gr.skip(), None]
        vocab, context = m.model.spec.vocab_size, m.model.spec.input_shape[0]
        return [card_markdown(m), gr.Slider(maximum=vocab), gr.Slider(maximum=context, value=min(64, context)), None]

    return show, [card_md, top_k, max_new, out]


def text_tab(shelf: Shelf, picker: Any, first: str | None) -> Shown:
    import gradio as gr

    card_md = gr.Markdown(card(shelf, first), elem_id="text-card")
    text = gr.Textbox(label="text", lines=3, elem_id="text-input")
    button = gr.Button("Classify", variant="primary", elem_id="text-classify")
    out = gr.Label(label="label probabilities", elem_id="text-label")
    for event in (button.click, text.submit):
        event(lambda name, t: action(classify_text, shelf, name, t), [picker, text], out)
    return (lambda name: [card(shelf, name), None]), [card_md, out]


def tabular_tab(shelf: Shelf, picker: Any, first: str | None) -> Shown:
    import gradio as gr

    def rows(name: str | None) -> Any:
        import pandas as pd

        m = shelf.get(name)
        if m is None:
            return None
        fields = feature_fields(m.model.spec)
        return pd.DataFrame([[mean for _, mean in fields]], columns=[feature for feature, _ in fields])

    card_md = gr.Markdown(card(shelf, first), elem_id="tabular-card")
    gr.Markdown("One column per feature, starting at the train split's means; edit them or add rows.")
    inputs = gr.Dataframe(rows(first), interactive=True, label="features", elem_id="tabular-input")
    button = gr.Button("Predict", variant="primary", elem_id="tabular-predict")
    with gr.Row():
        first_row = gr.Label(label="first row", elem_id="tabular-label")
        table = gr.Dataframe(label="predictions", interactive=False, elem_id="tabular-output")
    button.click(lambda name, frame: action(predict_rows, shelf, name, frame), [picker, inputs], [first_row, table])
    return (lambda name: [card(shelf, name), rows(name), None, None]), [card_md, inputs, first_row, table]


def generative_tab(shelf: Shelf, picker: Any, first: str | None, kind: str) -> tuple[list[Any], Any]:
    """Make the sample controls and outputs that the VAE and GAN tabs share; return (outputs, show)."""
    import gradio as gr

    def start(m: Loaded | None) -> tuple[list[str], bool, Any, Any]:
        """Return a model's class menu, whether it is conditional, and a first sample grid or table."""
        if m is None:
            return ["any"], False, None, None
        classes = ["any", *map(str, m.model.spec.class_names or range(m.model.spec.num_classes or 0))]
        return (classes, getattr(m.model, "conditional", False), *split_output(samples(m, 16, 0)))

    classes, conditional, picture, table = start(shelf.get(first))  # something to look at right away
    card_md = gr.Markdown(card(shelf, first), elem_id=f"{kind}-card")
    with gr.Row():
        n, seed = gr.Slider(1, 64, value=16, step=1, label="samples"), gr.Number(0, precision=0, label="seed")
        label = gr.Dropdown(classes, value="any", label="class", visible=conditional)
    button = gr.Button("Sample", variant="primary", elem_id=f"{kind}-sample")
    image = gr.Image(picture, type="numpy", label="samples", interactive=False, visible=table is None,
                     elem_id=f"{kind}-samples")
    rows = gr.Dataframe(table, label="samples", interactive=False, visible=table is not None,
                        elem_id=f"{kind}-sample-rows")
    button.click(lambda name, *a: split_output(action(samples, shelf, name, *a)), [picker, n, seed, label],
                 [image, rows])

    def show(name: str | None) -> list[Any]:
        classes, conditional, picture, table = start(shelf.get(name))
        return [card(shelf, name), gr.Dropdown(choices=classes, value="any", visible=conditional),
                gr.Image(picture, visible=table is None), gr.Dataframe(table, visible=table is not None)]

    return [card_md, label, image, rows], show


def split_output(value: Any) -> tuple[Any, Any]:
    """Return (image, None) for an image array, (None, table) for a DataFrame."""
    return (value, None) if hasattr(value, "dtype") and getattr(value, "ndim", 0) == 3 else (None, value)


def vae_tab(shelf: Shelf, picker: Any, first: str | None) -> Shown:
    import gradio as gr

    shown, show_samples = generative_tab(shelf, picker, first, "vae")
    m0 = shelf.get(first)
    images = m0 is None or m0.model.spec.modality == "image"
    gr.Markdown("**Reconstructions** of test items (each original, then its reconstruction)")
    with gr.Row():
        count, start = gr.Slider(1, 32, value=16, step=1, label="items"), gr.Number(0, precision=0, label="from")
    button = gr.Button("Reconstruct", elem_id="vae-reconstruct")
    image = gr.Image(type="numpy", label="reconstructions", interactive=False, visible=images,
                     elem_id="vae-reconstructions")
    rows = gr.Dataframe(label="reconstructions", interactive=False, visible=not images,
                        elem_id="vae-reconstruction-rows")
    button.click(lambda name, k, s: split_output(action(reconstructions, shelf, name, k, s)), [picker, count, start],
                 [image, rows])
    with gr.Group(visible=images) as interpolate_group:
        gr.Markdown("**Latent interpolation** between two test images")
        with gr.Row():
            a, b = gr.Number(0, precision=0, label="from test image"), gr.Number(1, precision=0, label="to")
            t = gr.Slider(0, 1, value=0.5, step=0.05, label="position", elem_id="vae-t")
        with gr.Row():
            at_t = gr.Image(type="numpy", label="decoded at the position", interactive=False, elem_id="vae-at-t")
            strip = gr.Image(type="numpy", label="the path, end to end", interactive=False, elem_id="vae-strip")
    for event in (t.release, a.submit, b.submit):
        event(lambda name, i, j, p: action(interpolation, shelf, name, i, j, p), [picker, a, b, t], [at_t, strip])

    def show(name: str | None) -> list[Any]:
        m = shelf.get(name)
        images = m is not None and m.model.spec.modality == "image"
        return [*show_samples(name), gr.Image(None, visible=images), gr.Dataframe(None, visible=not images),
                gr.Group(visible=images), None, None]

    return show, [*shown, image, rows, interpolate_group, at_t, strip]


def gan_tab(shelf: Shelf, picker: Any, first: str | None) -> Shown:
    shown, show = generative_tab(shelf, picker, first, "gan")
    return show, shown


TABS = {"image": image_tab, "lm": lm_tab, "text": text_tab, "tabular": tabular_tab, "vae": vae_tab, "gan": gan_tab}

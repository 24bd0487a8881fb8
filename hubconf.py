"""torch.hub entry points: one per pretrained card, generated from zoo's pretrained registry.

    import torch
    model = torch.hub.load("path/to/zoo", "cnn_digits", source="local")  # pretrained=True: the card's weights
    model = torch.hub.load("path/to/zoo", "cnn_digits", source="local", pretrained=False)  # fresh weights
    torch.hub.list("OWNER/zoo")                 # from a GitHub copy: ['cgan_digits', 'cnn_digits', ...]
    print(torch.hub.help("OWNER/zoo", "cnn_digits"))   # the model card

An entry is named after its card with `-` as `_` (`cnn-digits` -> `cnn_digits`). Nothing here is
kept by hand: a new card in zoo/hub/weights/ is a new entry point.
"""

dependencies = ["torch", "lightning", "safetensors", "yaml"]

from zoo.hub.cards import card_text as _card_text  # noqa: E402
from zoo.hub.cards import cards as _cards  # noqa: E402
from zoo.hub.cards import entry_point as _entry_point  # noqa: E402


def _entry(name: str):
    def load(pretrained: bool = True, progress: bool = True):
        from zoo.hub.pretrained import load_pretrained

        return load_pretrained(name, pretrained=pretrained, progress=progress)

    load.__name__ = load.__qualname__ = _entry_point(name)
    load.__doc__ = (f"Return zoo's '{name}' in eval mode (pretrained=False: the same architecture, freshly "
                    f"initialised).\n\n{_card_text(_cards()[name])}")
    return load


for _name in _cards():
    globals()[_entry_point(_name)] = _entry(_name)

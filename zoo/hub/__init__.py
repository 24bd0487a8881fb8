"""The hub: pretrained weights by name and models in and out of files.

- pretrained.py: the cards in weights/, the weights cache, `zoo.load` (names, .ckpt and
  .safetensors files) and `save_weights`;
- export.py: `zoo export` to other formats (Hugging Face transformers);
- weights/: the cards and the small weights that ship inside the package.

May import models/, data/ and the contracts; never training/, evaluation/, cli/ or zoo.fit.
"""

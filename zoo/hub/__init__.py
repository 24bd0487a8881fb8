"""The hub: pretrained weights by name and models in and out of files.

- cards.py: the pretrained cards (weights/*.yaml): checked, listed and rendered as text or as a
  Hugging Face README; needs yaml only, so listing never imports torch;
- pretrained.py: weights by name (package://, https://, hf://), the cache and `zoo verify`,
  `zoo.load` (names, .ckpt and .safetensors files, all pickle-free) and `save_weights`;
- graphs.py: each model as an inference graph from the raw inputs its API takes;
- export.py: `zoo export`, one function per format (onnx, torchscript, hf);
- weights/: the cards and the small weights that ship inside the package.

May import models/, data/ and the contracts; never training/, evaluation/, cli/ or zoo.fit.
"""

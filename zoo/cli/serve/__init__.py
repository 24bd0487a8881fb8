"""`zoo serve`: a local web page (Gradio) to play with loaded models, one tab per kind of model.

- models.py: what the page does with a model, with no Gradio in it: which kind it is, the
  loaded models, and one function per action (classify a drawing, generate text, sample, ...),
  so that each can be tested without a browser;
- page.py: the Gradio page (the open box, the tabs and their inputs) and the `zoo serve` command.

Part of the commands layer: may import fit, training/, evaluation/, hub/, models/, data/ and the contracts.
"""

"""`genlab export`: a trained run as a self-contained folder (safetensors weights, its config, a model card),
which genlab.load reads back without the run folder, through the same checks as a run's.

`layout.py` names the files, `read.py` loads a folder back (the checked road), `write.py` writes one,
`card.py` is its README.md, `onnx.py` the ONNX graph of a one-pass generator.
"""

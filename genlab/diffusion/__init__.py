"""Diffusion (DDPM) and flow matching: noise schedules, training targets, samplers and guidance.

Pure functions and small classes of tensors; the families whose math they make up are
genlab/families/ddpm.py and genlab/families/flow.py, and the UNet is genlab/nets/unet.py.
"""

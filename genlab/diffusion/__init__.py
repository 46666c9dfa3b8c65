"""Diffusion (DDPM) and flow matching: noise schedules, training targets, samplers and guidance.

Pure functions and small classes of tensors; the LightningModules that train with them are
genlab/modules/diffusion.py and genlab/modules/flow.py, and the UNet is genlab/nets/unet.py.
"""

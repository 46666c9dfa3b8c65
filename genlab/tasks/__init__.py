"""Image-to-image tasks: each turns a clean image into the (input, target) pair a translation family learns."""

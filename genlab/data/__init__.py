"""Data sets as uint8 tensors and the LightningDataModule that batches them on the device."""

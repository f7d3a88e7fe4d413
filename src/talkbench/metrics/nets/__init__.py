"""Feature networks written here (no torchvision), with the key layouts of the official weight files."""

"""Training and evaluation on FER-2013: data readers, augmentation, losses, the training loop."""

"""Building blocks shared by several components (Swin stages, patch layers, slice transforms)."""
